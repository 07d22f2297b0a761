/*
 * The C half of reactor._native: thin wrappers over the readiness syscalls.
 *
 * Rules for this file (see STYLE.md):
 *   - every wrapper returns -errno on failure, read right after the call,
 *     so a Python signal handler running later cannot clobber it;
 *   - no policy: no EINTR retries, no timeout arithmetic beyond converting
 *     nanoseconds to what the syscall takes, no knowledge of keys;
 *   - whole batches move in one call: a wait fills flat arrays of
 *     (tag or fd, readiness bits), so Python never touches a struct per event.
 *
 * Readiness bits written to `ready[]`: bit 0 = readable, bit 1 = writable.
 * The caller chooses which kernel bits count as which through `read_bits`
 * and `write_bits` (the stdlib's rule: anything but OUT counts as readable,
 * anything but IN counts as writable, so HUP and ERR wake both).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* epoll_pwait2 (Linux 5.11) takes a timespec: nanosecond timeouts.  glibc
 * wraps it from 2.35 on; older glibc on 64-bit can reach it by number, where
 * struct timespec is the kernel's __kernel_timespec. */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
#  define HAS_EPOLL_PWAIT2 1
#  define reactor_sys_epoll_pwait2(epfd, ev, n, ts) epoll_pwait2((epfd), (ev), (n), (ts), NULL)
#elif defined(SYS_epoll_pwait2) && ULONG_MAX > 0xffffffffUL
#  define HAS_EPOLL_PWAIT2 1
#  define reactor_sys_epoll_pwait2(epfd, ev, n, ts) \
       ((int)syscall(SYS_epoll_pwait2, (epfd), (ev), (n), (ts), NULL, (size_t)8))
#else
#  define HAS_EPOLL_PWAIT2 0
#  define reactor_sys_epoll_pwait2(epfd, ev, n, ts) (errno = ENOSYS, -1)
#endif

#define REACTOR_NFDBITS (8 * (int)sizeof(unsigned long))

/* Set once the running kernel answered ENOSYS (older than 5.11 or a
 * seccomp filter): from then on every wait uses epoll_wait. */
static int reactor_pwait2_missing = !HAS_EPOLL_PWAIT2;

static int reactor_pwait2_available(void)
{
    return !reactor_pwait2_missing;
}

static struct timespec reactor_timespec(long long timeout_ns)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(timeout_ns / 1000000000LL);
    ts.tv_nsec = (long)(timeout_ns % 1000000000LL);
    return ts;
}

/* Milliseconds for epoll_wait: rounded up so a wait is never shorter than
 * asked; clamped to INT_MAX (2147483 s), the most epoll_wait accepts. */
static int reactor_ms_ceil(long long timeout_ns)
{
    long long ms;
    if (timeout_ns < 0)
        return -1;
    ms = timeout_ns / 1000000LL + (timeout_ns % 1000000LL != 0);
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

static uint32_t reactor_ready_bits(uint32_t kernel_events, uint32_t read_bits,
                                   uint32_t write_bits)
{
    return ((kernel_events & read_bits) ? 1u : 0u) |
           ((kernel_events & write_bits) ? 2u : 0u);
}

/* ---- epoll ------------------------------------------------------------ */

static int reactor_epoll_create(void)
{
    int fd = epoll_create1(EPOLL_CLOEXEC);
    return fd < 0 ? -errno : fd;
}


/* One EpollSelector's kernel-facing state, kept between calls so a wait
 * allocates nothing and crosses the FFI with two arguments.
 *
 * Stale registrations (epoll(7) Q&A 6: an fd closed while a dup keeps its
 * file open stays registered under its old number) are recognised by a
 * stamp: each EPOLL_CTL_ADD of fd gets generations[fd] + 1, and epoll_data
 * carries (stamp << 34) | (interest << 32) | fd.  A wait drops, and counts,
 * every event whose stamp is not its fd's current one; `interest` is the
 * readiness bits the caller asked for, which mask what a wait reports. */
#define REACTOR_STAMP_MASK 0x3FFFFFFFu

struct reactor_epoll {
    int epfd;
    int capacity;                 /* length of events/fds/ready: maxevents */
    struct epoll_event *events;
    int *fds;                     /* out: fd of each live event */
    uint32_t *ready;              /* out: its readiness bits & interest */
    int64_t *codes;               /* out: (fd << 2) | those bits, one number */
    uint32_t read_bits, write_bits;
    uint32_t *generations;        /* stamp of each fd's registration */
    int generations_len;          /* the caller keeps every fd it passes below this */
    unsigned long long stale;     /* events dropped as stale */
};

/* op is EPOLL_CTL_ADD (a new stamp), EPOLL_CTL_MOD or EPOLL_CTL_DEL. */
static int reactor_epoll_ctl(struct reactor_epoll *ep, int op, int fd, uint32_t events,
                             uint32_t interest)
{
    struct epoll_event ev;
    uint32_t stamp;
    if (fd < 0 || fd >= ep->generations_len)
        return -EBADF;
    stamp = ep->generations[fd];
    if (op == EPOLL_CTL_ADD)
        stamp = (stamp + 1) & REACTOR_STAMP_MASK;
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.u64 = ((uint64_t)stamp << 34) | ((uint64_t)(interest & 3u) << 32) | (uint32_t)fd;
    if (epoll_ctl(ep->epfd, op, fd, &ev) < 0)
        return -errno;
    ep->generations[fd] = stamp;
    return 0;
}

/* timeout_ns < 0 blocks, 0 polls.  Returns the number of live events
 * written to fds/ready, or -errno. */
static int reactor_epoll_wait(struct reactor_epoll *ep, long long timeout_ns)
{
    int n, i, err, count = 0;
    if (timeout_ns > 0 && !reactor_pwait2_missing) {
        struct timespec ts = reactor_timespec(timeout_ns);
        n = reactor_sys_epoll_pwait2(ep->epfd, ep->events, ep->capacity, &ts);
        if (n < 0) {
            err = errno;
            if (err != ENOSYS)
                return -err;
            reactor_pwait2_missing = 1;
            n = epoll_wait(ep->epfd, ep->events, ep->capacity, reactor_ms_ceil(timeout_ns));
        }
    } else {
        n = epoll_wait(ep->epfd, ep->events, ep->capacity, reactor_ms_ceil(timeout_ns));
    }
    if (n < 0)
        return -errno;
    for (i = 0; i < n; i++) {
        uint64_t data = ep->events[i].data.u64;
        int fd = (int)(uint32_t)data;
        if (fd >= ep->generations_len ||
            ep->generations[fd] != (uint32_t)(data >> 34)) {
            ep->stale++;
            continue;
        }
        ep->fds[count] = fd;
        ep->ready[count] = reactor_ready_bits(ep->events[i].events, ep->read_bits,
                                              ep->write_bits) & (uint32_t)((data >> 32) & 3u);
        ep->codes[count] = ((int64_t)fd << 2) | ep->ready[count];
        count++;
    }
    return count;
}

/* ---- poll ------------------------------------------------------------- */

/* One PollSelector's arrays, kept between calls. */
struct reactor_poll {
    struct pollfd *fds;           /* the interest list, entries 0..nfds-1 */
    unsigned long nfds;
    int *ready_fds;               /* out, at least nfds long */
    uint32_t *ready;              /* out: readiness bits */
    uint32_t read_bits, write_bits;
};

/* Polls the pollfd array as it stands and writes the fd and readiness bits
 * of every entry with revents.  poll() for timeouts <= 0 (cheaper), ppoll()
 * for a positive one (nanoseconds). */
static int reactor_poll_wait(struct reactor_poll *p, long long timeout_ns)
{
    int n, count = 0;
    unsigned long i;
    if (timeout_ns <= 0) {
        n = poll(p->fds, (nfds_t)p->nfds, timeout_ns < 0 ? -1 : 0);
    } else {
        struct timespec ts = reactor_timespec(timeout_ns);
        n = ppoll(p->fds, (nfds_t)p->nfds, &ts, NULL);
    }
    if (n < 0)
        return -errno;
    for (i = 0; i < p->nfds && count < n; i++) {
        if (p->fds[i].revents) {
            p->ready_fds[count] = p->fds[i].fd;
            p->ready[count] = reactor_ready_bits((uint16_t)p->fds[i].revents,
                                                 p->read_bits, p->write_bits);
            count++;
        }
    }
    return count;
}

/* Appends fd to the array (the caller keeps it long enough); returns its
 * index. */
static int reactor_poll_add(struct reactor_poll *p, int fd, short events)
{
    unsigned long index = p->nfds;
    p->fds[index].fd = fd;
    p->fds[index].events = events;
    p->fds[index].revents = 0;
    p->nfds = index + 1;
    return (int)index;
}

/* Removes entry `index` by moving the last entry into its place; returns
 * the fd that moved there, or -1 when `index` was the last one. */
static int reactor_poll_remove(struct reactor_poll *p, unsigned long index)
{
    unsigned long last;
    if (index >= p->nfds)
        return -1;
    last = --p->nfds;
    if (index == last)
        return -1;
    p->fds[index] = p->fds[last];
    return p->fds[index].fd;
}

/* ---- select ----------------------------------------------------------- */
/* fd sets here are arrays of `nwords` unsigned longs sized at run time, the
 * kernel's layout for any nfds (fd_set is just the first FD_SETSIZE bits).
 * FD_SET & co. are not used: with _FORTIFY_SOURCE they abort past 1023. */

static void reactor_fdset_add(unsigned long *set, int fd)
{
    set[fd / REACTOR_NFDBITS] |= 1UL << (fd % REACTOR_NFDBITS);
}

static void reactor_fdset_discard(unsigned long *set, int fd)
{
    set[fd / REACTOR_NFDBITS] &= ~(1UL << (fd % REACTOR_NFDBITS));
}

/* The highest fd set in either of two sets of `nwords` words, or -1. */
static int reactor_fdset_last(const unsigned long *a, const unsigned long *b, int nwords)
{
    int w;
    for (w = nwords - 1; w >= 0; w--) {
        unsigned long bits = a[w] | b[w];
        if (bits)
            return w * REACTOR_NFDBITS + (REACTOR_NFDBITS - 1 - __builtin_clzl(bits));
    }
    return -1;
}

/* One SelectSelector's fd sets, kept between calls. */
struct reactor_select {
    int capacity;                 /* bits in each set; length of ready_fds, ready */
    int nfds;                     /* highest fd in the sets + 1 */
    unsigned long *readers, *writers;   /* interest, kept */
    unsigned long *rwork, *wwork;       /* scratch: select() overwrites its sets */
    int *ready_fds;               /* out: at most nfds of them */
    uint32_t *ready;              /* out: readiness bits */
};

/* Adds fd to the readers (bit 0 of `events`) and writers (bit 1) sets. */
static int reactor_select_add(struct reactor_select *s, int fd, uint32_t events)
{
    if (fd < 0 || fd >= s->capacity)
        return -EINVAL;
    if (events & 1u)
        reactor_fdset_add(s->readers, fd);
    if (events & 2u)
        reactor_fdset_add(s->writers, fd);
    if (fd >= s->nfds)
        s->nfds = fd + 1;
    return 0;
}

/* Removes fd from both sets, keeping nfds exact. */
static int reactor_select_remove(struct reactor_select *s, int fd)
{
    if (fd < 0 || fd >= s->capacity)
        return -EINVAL;
    reactor_fdset_discard(s->readers, fd);
    reactor_fdset_discard(s->writers, fd);
    if (fd + 1 == s->nfds)
        s->nfds = 1 + reactor_fdset_last(s->readers, s->writers, fd / REACTOR_NFDBITS + 1);
    return 0;
}

/* Copies the interest sets into the scratch sets, waits (select() for
 * timeouts <= 0, pselect() with nanoseconds for a positive one), then writes
 * fd and readiness bits for each ready fd (fewer than nfds <= capacity). */
static int reactor_select_wait(struct reactor_select *s, long long timeout_ns)
{
    int n, w, count = 0;
    int nwords = (s->nfds + REACTOR_NFDBITS - 1) / REACTOR_NFDBITS;
    size_t bytes = (size_t)nwords * sizeof(unsigned long);
    /* The kernel reads and writes back only as many bits as the fd table
     * holds (at least BITS_PER_LONG): bits past it would come back as they
     * went in, ready.  The table covers every fd below an open one, so when
     * the highest fd is open all is well; when it is not, fail as the
     * kernel does for a closed fd inside the table. */
    if (s->nfds > REACTOR_NFDBITS && fcntl(s->nfds - 1, F_GETFD) < 0)
        return -errno;
    memcpy(s->rwork, s->readers, bytes);
    memcpy(s->wwork, s->writers, bytes);
    if (timeout_ns < 0) {
        n = select(s->nfds, (fd_set *)s->rwork, (fd_set *)s->wwork, NULL, NULL);
    } else if (timeout_ns == 0) {
        struct timeval tv = {0, 0};
        n = select(s->nfds, (fd_set *)s->rwork, (fd_set *)s->wwork, NULL, &tv);
    } else {
        struct timespec ts = reactor_timespec(timeout_ns);
        n = pselect(s->nfds, (fd_set *)s->rwork, (fd_set *)s->wwork, NULL, &ts, NULL);
    }
    if (n < 0)
        return -errno;
    for (w = 0; w < nwords; w++) {
        unsigned long rbits = s->rwork[w], wbits = s->wwork[w];
        unsigned long bits = rbits | wbits;
        while (bits) {
            int b = __builtin_ctzl(bits);
            unsigned long one = 1UL << b;
            s->ready_fds[count] = w * REACTOR_NFDBITS + b;
            s->ready[count] = ((rbits & one) ? 1u : 0u) | ((wbits & one) ? 2u : 0u);
            count++;
            bits &= bits - 1;
        }
    }
    return count;
}

/* ---- misc ------------------------------------------------------------- */

static int reactor_eventfd(unsigned int initval, int flags)
{
    int fd = eventfd(initval, flags);
    return fd < 0 ? -errno : fd;
}

static int reactor_close(int fd)
{
    return close(fd) < 0 ? -errno : 0;
}
