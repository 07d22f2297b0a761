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
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/select.h>
#include <sys/socket.h>
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

/* ---- sharing with other threads ------------------------------------------
 * A selector's registrations may change in one thread while another blocks
 * in its wait (every call here runs without the GIL).  Two rules keep that
 * safe:
 *   - the kernel only ever reads or writes memory owned by the wait in
 *     progress: poll and select waits copy the interest list into their own
 *     work arrays first; an epoll wait writes only its own event buffer;
 *   - interest lists are changed, grown and copied under a small spin lock,
 *     held for a few stores or one memcpy, never across a blocking syscall
 *     (epoll_ctl never blocks).
 * A wait whose buffers are too small for the interest list does not grow
 * them itself (Python owns all memory): it returns REACTOR_EGROW before
 * waiting, and the caller grows them and calls again.
 *
 * A wait state (its buffers) serves one thread at a time: a wait claims it
 * by storing its thread in `owner`.  A wait finding it owned by another
 * thread returns REACTOR_EBUSY at once; the caller then waits with a state
 * of its own.  Finding it owned by this thread is not an error: a previous
 * call was interrupted (by an exception from a signal handler, say) before
 * its caller could release it.
 *
 * Results, and who releases the state:
 *   0                   nothing ready; released;
 *   REACTOR_ONE + code  exactly one fd ready, code = (fd << 2) | bits, so
 *                       the caller reads no array; released;
 *   n >= 2              n results in the state's arrays; the caller
 *                       releases the state (owner = 0) once it read them;
 *   REACTOR_EGROW, -EINTR   kept: the caller calls again (after growing
 *                       the buffers, or running the signal handlers);
 *   other negatives     REACTOR_ESTALE (epoll: only stale events),
 *                       -errno; released. */
#define REACTOR_EGROW (-1000000)
#define REACTOR_ESTALE (-1000001)
#define REACTOR_EBUSY (-1000002)
#define REACTOR_ONE (1LL << 40)

static int reactor_claim(unsigned long *owner)
{
    unsigned long me = (unsigned long)pthread_self(), expected = 0;
    if (__atomic_compare_exchange_n(owner, &expected, me, 0, __ATOMIC_ACQUIRE,
                                    __ATOMIC_RELAXED) || expected == me)
        return 0;
    return REACTOR_EBUSY;
}

/* Ends a wait with `result`, releasing the state unless the caller must
 * read arrays (n >= 2) or call again (see above). */
static long long reactor_finish(unsigned long *owner, long long result)
{
    int keep = (result >= 2 && result < REACTOR_ONE) || result == REACTOR_EGROW ||
               result == -EINTR;
    if (!keep)
        __atomic_store_n(owner, 0, __ATOMIC_RELEASE);
    return result;
}

/* Notes when a positive timeout ends, on time.monotonic_ns()'s clock, so
 * that the caller can resume a wait interrupted by a signal (PEP 475). */
static void reactor_note_deadline(long long *deadline_ns, long long timeout_ns)
{
    struct timespec now;
    if (timeout_ns > 0 && clock_gettime(CLOCK_MONOTONIC, &now) == 0)
        *deadline_ns = (long long)now.tv_sec * 1000000000LL + now.tv_nsec + timeout_ns;
}

static void reactor_lock(int *lock)
{
    while (__atomic_exchange_n(lock, 1, __ATOMIC_ACQUIRE))
        while (__atomic_load_n(lock, __ATOMIC_RELAXED))
            sched_yield();
}

static void reactor_unlock(int *lock)
{
    __atomic_store_n(lock, 0, __ATOMIC_RELEASE);
}

/* ---- epoll ------------------------------------------------------------ */

static int reactor_epoll_create(void)
{
    int fd = epoll_create1(EPOLL_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

/* Stale registrations (epoll(7) Q&A 6: an fd closed while a dup keeps its
 * file open stays registered under its old number) are recognised by a
 * stamp: each EPOLL_CTL_ADD of fd gets a new stamp, and epoll_data carries
 * (stamp << 35) | (interest << 32) | fd.  A wait drops, and counts, every
 * event whose stamp is not its fd's current one; `interest` is the readiness
 * bits the caller asked for, which mask what a wait reports.  DEL, and a
 * failed MOD (after which the caller forgets the fd), move the stamp on too,
 * so a registration the kernel kept (the DEL failed: the fd number was
 * already closed) is stale from then on. */
#define REACTOR_STAMP_MASK 0x1FFFFFFFu

/* Interest bit 2 (REACTOR_AUTOREAD) asks reactor_epoll_wait_read() to
 * recv() from the fd when it is readable, so that a loop dispatching
 * stream transports makes one native call per wait, not one per event. */
#define REACTOR_AUTOREAD 4u
/* lens[i] of an event that was not read for the caller. */
#define REACTOR_NOT_READ (-1000003)

/* One array of stamps, indexed by fd; replaced whole (never resized in
 * place) when a larger fd comes, so a wait reading it is never cut short. */
struct reactor_stamps {
    int len;
    uint32_t *stamp;
};

/* What every wait of one EpollSelector shares. */
struct reactor_epoll_shared {
    int lock;                     /* guards stamps and stamp changes */
    struct reactor_stamps *stamps;
    int want;                     /* maxevents the caller wants: waits with a
                                     smaller buffer return REACTOR_EGROW */
    unsigned long long stale;     /* events dropped as stale, by any wait */
};

/* One wait's state: the buffers it fills, kept between calls so a wait
 * allocates nothing and crosses the FFI with two arguments. */
struct reactor_epoll {
    int epfd;
    int capacity;                 /* length of events/ready_fds/ready/codes: maxevents */
    struct epoll_event *events;
    int *ready_fds;               /* out: fd of each live event */
    uint32_t *ready;              /* out: its readiness bits & interest */
    int64_t *codes;               /* out: REACTOR_ONE + ((fd << 2) | those bits) */
    int64_t *lens;                /* out (reactor_epoll_wait_read): bytes read from
                                     the fd, 0 at EOF, -errno, or REACTOR_NOT_READ */
    uint32_t read_bits, write_bits;
    struct reactor_epoll_shared *shared;
    int stale_fd;                 /* an fd with stale events in the last wait */
    int stale_streak;             /* consecutive waits with stale events of it */
    unsigned long owner;          /* the thread using this state, or 0 */
    long long deadline_ns;        /* when a positive timeout ends */
};

/* Publishes `next` (at least as long) as the stamps, copying the current
 * ones into it.  The caller keeps the old array alive: a wait in another
 * thread may still be reading it. */
static int reactor_epoll_set_stamps(struct reactor_epoll_shared *sh,
                                    struct reactor_stamps *next)
{
    struct reactor_stamps *cur;
    reactor_lock(&sh->lock);
    cur = sh->stamps;
    if (cur != NULL) {
        if (next->len < cur->len) {
            reactor_unlock(&sh->lock);
            return -EINVAL;
        }
        memcpy(next->stamp, cur->stamp, (size_t)cur->len * sizeof(uint32_t));
    }
    __atomic_store_n(&sh->stamps, next, __ATOMIC_RELEASE);
    reactor_unlock(&sh->lock);
    return 0;
}

/* op is EPOLL_CTL_ADD (a new stamp), EPOLL_CTL_MOD or EPOLL_CTL_DEL.  The
 * stamp is stored before the syscall: an event of the new registration can
 * reach a wait in another thread as soon as the kernel has it. */
static int reactor_epoll_ctl(struct reactor_epoll *ep, int op, int fd, uint32_t events,
                             uint32_t interest)
{
    struct reactor_epoll_shared *sh = ep->shared;
    struct reactor_stamps *stamps;
    struct epoll_event ev;
    uint32_t old, stamp;
    int err = 0;
    reactor_lock(&sh->lock);
    stamps = sh->stamps;
    if (fd < 0 || fd >= stamps->len) {
        reactor_unlock(&sh->lock);
        return -EBADF;
    }
    old = stamps->stamp[fd];
    stamp = op == EPOLL_CTL_MOD ? old : (old + 1) & REACTOR_STAMP_MASK;
    __atomic_store_n(&stamps->stamp[fd], stamp, __ATOMIC_RELAXED);
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.u64 = ((uint64_t)stamp << 35) | ((uint64_t)(interest & 7u) << 32) | (uint32_t)fd;
    if (epoll_ctl(ep->epfd, op, fd, &ev) < 0) {
        err = errno;
        if (op == EPOLL_CTL_ADD)  /* nothing was registered */
            __atomic_store_n(&stamps->stamp[fd], old, __ATOMIC_RELAXED);
        else if (op == EPOLL_CTL_MOD)  /* the caller forgets fd */
            __atomic_store_n(&stamps->stamp[fd], (old + 1) & REACTOR_STAMP_MASK,
                             __ATOMIC_RELAXED);
    }
    reactor_unlock(&sh->lock);
    return -err;
}

/* Where reactor_epoll_wait_read() puts what it reads: `buf` holds `size`
 * bytes, each recv() asks for `chunk`, and reads stop once less than
 * `chunk` is left (the remaining events are reported unread). */
struct reactor_reads {
    char *buf;
    long long size;
    long long chunk;
    long long first;              /* out: lens[0], where Python reads it fastest */
};

/* One recv() for the caller [REACTOR_AUTOREAD]: the byte count, 0 at EOF,
 * or -errno (-EAGAIN: nothing after all). */
static int64_t reactor_read_for_caller(int fd, struct reactor_reads *rx, long long *used)
{
    ssize_t got;
    if (rx->size - *used < rx->chunk)
        return REACTOR_NOT_READ;
    got = recv(fd, rx->buf + *used, (size_t)rx->chunk, MSG_DONTWAIT);
    if (got < 0)
        return -errno;
    *used += got;
    return got;
}

static long long reactor_epoll_wait_core(struct reactor_epoll *ep, long long timeout_ns,
                                         struct reactor_reads *rx);

/* timeout_ns < 0 blocks, 0 polls.  Returns the number of live events
 * written to ready_fds/ready/codes; REACTOR_ESTALE when every event was stale;
 * REACTOR_EBUSY or REACTOR_EGROW (without waiting); or -errno. */
static long long reactor_epoll_wait(struct reactor_epoll *ep, long long timeout_ns)
{
    return reactor_epoll_wait_core(ep, timeout_ns, NULL);
}

/* reactor_epoll_wait(), and for every live event of a registration with
 * REACTOR_AUTOREAD that is readable, one recv() into rx->buf (one after
 * the other, in event order), its result in lens[i]; other events get
 * REACTOR_NOT_READ.  The reads happen before the state is released. */
static long long reactor_epoll_wait_read(struct reactor_epoll *ep, long long timeout_ns,
                                         struct reactor_reads *rx)
{
    return reactor_epoll_wait_core(ep, timeout_ns, rx);
}

static long long reactor_epoll_wait_core(struct reactor_epoll *ep, long long timeout_ns,
                                         struct reactor_reads *rx)
{
    struct epoll_event *events = ep->events;
    const struct reactor_stamps *stamps;
    int n, i, err, count = 0, capacity = ep->capacity, stale_fd = -1, seen_again = 0;
    long long used = 0;
    if (reactor_claim(&ep->owner))
        return REACTOR_EBUSY;
    if (__atomic_load_n(&ep->shared->want, __ATOMIC_RELAXED) > capacity)
        return reactor_finish(&ep->owner, REACTOR_EGROW);
    reactor_note_deadline(&ep->deadline_ns, timeout_ns);
    if (timeout_ns > 0 && !reactor_pwait2_missing) {
        struct timespec ts = reactor_timespec(timeout_ns);
        n = reactor_sys_epoll_pwait2(ep->epfd, events, capacity, &ts);
        if (n < 0) {
            err = errno;
            if (err != ENOSYS)
                return reactor_finish(&ep->owner, -err);
            reactor_pwait2_missing = 1;
            n = epoll_wait(ep->epfd, events, capacity, reactor_ms_ceil(timeout_ns));
        }
    } else {
        n = epoll_wait(ep->epfd, events, capacity, reactor_ms_ceil(timeout_ns));
    }
    if (n < 0)
        return reactor_finish(&ep->owner, -errno);
    stamps = __atomic_load_n(&ep->shared->stamps, __ATOMIC_ACQUIRE);
    for (i = 0; i < n; i++) {
        uint64_t data = events[i].data.u64;
        int fd = (int)(uint32_t)data;
        uint32_t ready;
        if (fd >= stamps->len ||
            __atomic_load_n(&stamps->stamp[fd], __ATOMIC_RELAXED) != (uint32_t)(data >> 35)) {
            __atomic_fetch_add(&ep->shared->stale, 1, __ATOMIC_RELAXED);
            stale_fd = fd;
            seen_again |= fd == ep->stale_fd;
            continue;
        }
        ready = reactor_ready_bits(events[i].events, ep->read_bits, ep->write_bits)
                & (uint32_t)((data >> 32) & 3u);
        ep->ready_fds[count] = fd;
        ep->ready[count] = ready;
        ep->codes[count] = REACTOR_ONE + (((int64_t)fd << 2) | ready);
        if (rx != NULL)
            ep->lens[count] = ((data >> 32) & REACTOR_AUTOREAD) && (ready & 1u)
                              ? reactor_read_for_caller(fd, rx, &used) : REACTOR_NOT_READ;
        count++;
    }
    /* A stale registration that stays ready shows up in wait after wait;
     * one that a racing EPOLL_CTL_DEL removes does not. */
    if (stale_fd < 0) {
        ep->stale_streak = 0;
    } else if (seen_again) {
        ep->stale_streak++;
    } else {
        ep->stale_fd = stale_fd;
        ep->stale_streak = 1;
    }
    if (rx != NULL && count > 0)
        rx->first = ep->lens[0];
    if (count == 1)
        return reactor_finish(&ep->owner, ep->codes[0]);
    return reactor_finish(&ep->owner, (n > 0 && count == 0) ? REACTOR_ESTALE : count);
}

/* ---- poll ------------------------------------------------------------- */

/* One PollSelector's interest list: entries 0..nfds-1 of fds. */
struct reactor_pollfds {
    int lock;
    int capacity;
    int nfds;
    struct pollfd *fds;
};

/* One wait's state: its own copy of the list, and its results. */
struct reactor_poll {
    struct reactor_pollfds *list;
    int capacity;                 /* length of work, ready_fds, ready */
    struct pollfd *work;
    int *ready_fds;               /* out */
    uint32_t *ready;              /* out: readiness bits */
    uint32_t read_bits, write_bits;
    unsigned long owner;          /* the thread using this state, or 0 */
    long long deadline_ns;        /* when a positive timeout ends */
};

/* Copies the interest list, polls the copy (poll() for timeouts <= 0, which
 * is cheaper, ppoll() with nanoseconds for a positive one) and writes the fd
 * and readiness bits of every entry with revents. */
static long long reactor_poll_wait(struct reactor_poll *p, long long timeout_ns)
{
    struct reactor_pollfds *list = p->list;
    struct pollfd *work = p->work;
    int n, i, nfds, count = 0;
    if (reactor_claim(&p->owner))
        return REACTOR_EBUSY;
    reactor_note_deadline(&p->deadline_ns, timeout_ns);
    reactor_lock(&list->lock);
    nfds = list->nfds;
    if (nfds > p->capacity) {
        reactor_unlock(&list->lock);
        return reactor_finish(&p->owner, REACTOR_EGROW);
    }
    memcpy(work, list->fds, (size_t)nfds * sizeof(struct pollfd));
    reactor_unlock(&list->lock);
    if (timeout_ns <= 0) {
        n = poll(work, (nfds_t)nfds, timeout_ns < 0 ? -1 : 0);
    } else {
        struct timespec ts = reactor_timespec(timeout_ns);
        n = ppoll(work, (nfds_t)nfds, &ts, NULL);
    }
    if (n < 0)
        return reactor_finish(&p->owner, -errno);
    for (i = 0; i < nfds && count < n; i++) {
        if (work[i].revents) {
            p->ready_fds[count] = work[i].fd;
            p->ready[count] = reactor_ready_bits((uint16_t)work[i].revents,
                                                 p->read_bits, p->write_bits);
            count++;
        }
    }
    if (count == 1)
        return reactor_finish(&p->owner, REACTOR_ONE + (((long long)p->ready_fds[0] << 2) | p->ready[0]));
    return reactor_finish(&p->owner, count);
}

/* Publishes `fds` (room for `capacity` entries, at least nfds) as the
 * list's array, copying the current entries into it. */
static int reactor_poll_set_array(struct reactor_pollfds *list, struct pollfd *fds,
                                  int capacity)
{
    reactor_lock(&list->lock);
    if (capacity < list->nfds) {
        reactor_unlock(&list->lock);
        return -EINVAL;
    }
    if (list->fds != NULL)
        memcpy(fds, list->fds, (size_t)list->nfds * sizeof(struct pollfd));
    list->fds = fds;
    list->capacity = capacity;
    reactor_unlock(&list->lock);
    return 0;
}

/* Appends fd; returns its index, or REACTOR_EGROW when the array is full. */
static int reactor_poll_add(struct reactor_pollfds *list, int fd, short events)
{
    int index;
    reactor_lock(&list->lock);
    index = list->nfds;
    if (index >= list->capacity) {
        reactor_unlock(&list->lock);
        return REACTOR_EGROW;
    }
    list->fds[index].fd = fd;
    list->fds[index].events = events;
    list->fds[index].revents = 0;
    list->nfds = index + 1;
    reactor_unlock(&list->lock);
    return index;
}

/* Sets the events of entry `index`, which must hold fd; -ENOENT if not. */
static int reactor_poll_set_events(struct reactor_pollfds *list, int index, int fd,
                                   short events)
{
    int rc = -ENOENT;
    reactor_lock(&list->lock);
    if (index >= 0 && index < list->nfds && list->fds[index].fd == fd) {
        list->fds[index].events = events;
        rc = 0;
    }
    reactor_unlock(&list->lock);
    return rc;
}

/* Removes entry `index`, which must hold fd, by moving the last entry into
 * its place; returns the fd that moved there, -1 when `index` was the last
 * one, or -ENOENT. */
static int reactor_poll_remove(struct reactor_pollfds *list, int index, int fd)
{
    int last, moved = -1;
    reactor_lock(&list->lock);
    if (index < 0 || index >= list->nfds || list->fds[index].fd != fd) {
        reactor_unlock(&list->lock);
        return -ENOENT;
    }
    last = --list->nfds;
    if (index != last) {
        list->fds[index] = list->fds[last];
        moved = list->fds[index].fd;
    }
    reactor_unlock(&list->lock);
    return moved;
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

/* One SelectSelector's interest sets. */
struct reactor_fdsets {
    int lock;
    int capacity;                 /* bits in each set */
    int nfds;                     /* highest fd in the sets + 1 */
    unsigned long *readers, *writers;
};

/* One wait's state: scratch sets (select() overwrites its sets) and
 * results, all for `capacity` fds. */
struct reactor_select {
    struct reactor_fdsets *sets;
    int capacity;
    unsigned long *rwork, *wwork;
    int *ready_fds;               /* out */
    uint32_t *ready;              /* out: readiness bits */
    unsigned long owner;          /* the thread using this state, or 0 */
    long long deadline_ns;        /* when a positive timeout ends */
};

/* Publishes new sets (room for `capacity` bits, a multiple of
 * REACTOR_NFDBITS, at least the current), copying the current bits. */
static int reactor_select_set_arrays(struct reactor_fdsets *sets, unsigned long *readers,
                                     unsigned long *writers, int capacity)
{
    size_t bytes = (size_t)(sets->capacity / REACTOR_NFDBITS) * sizeof(unsigned long);
    reactor_lock(&sets->lock);
    if (capacity < sets->capacity || capacity % REACTOR_NFDBITS) {
        reactor_unlock(&sets->lock);
        return -EINVAL;
    }
    if (sets->readers != NULL) {
        memcpy(readers, sets->readers, bytes);
        memcpy(writers, sets->writers, bytes);
    }
    sets->readers = readers;
    sets->writers = writers;
    sets->capacity = capacity;
    reactor_unlock(&sets->lock);
    return 0;
}

/* Adds fd to the readers (bit 0 of `events`) and writers (bit 1) sets. */
static int reactor_select_add(struct reactor_fdsets *sets, int fd, uint32_t events)
{
    int rc = 0;
    reactor_lock(&sets->lock);
    if (fd < 0 || fd >= sets->capacity) {
        rc = -EINVAL;
    } else {
        if (events & 1u)
            reactor_fdset_add(sets->readers, fd);
        if (events & 2u)
            reactor_fdset_add(sets->writers, fd);
        if (fd >= sets->nfds)
            sets->nfds = fd + 1;
    }
    reactor_unlock(&sets->lock);
    return rc;
}

/* Removes fd from both sets, keeping nfds exact. */
static int reactor_select_remove(struct reactor_fdsets *sets, int fd)
{
    int rc = 0;
    reactor_lock(&sets->lock);
    if (fd < 0 || fd >= sets->capacity) {
        rc = -EINVAL;
    } else {
        reactor_fdset_discard(sets->readers, fd);
        reactor_fdset_discard(sets->writers, fd);
        if (fd + 1 == sets->nfds)
            sets->nfds = 1 + reactor_fdset_last(sets->readers, sets->writers,
                                                fd / REACTOR_NFDBITS + 1);
    }
    reactor_unlock(&sets->lock);
    return rc;
}

/* Copies the interest sets into the scratch sets, waits (select() for
 * timeouts <= 0, pselect() with nanoseconds for a positive one), then writes
 * fd and readiness bits for each ready fd (fewer than nfds <= capacity). */
static long long reactor_select_wait(struct reactor_select *s, long long timeout_ns)
{
    struct reactor_fdsets *sets = s->sets;
    unsigned long *rwork = s->rwork, *wwork = s->wwork;
    int n, w, nfds, nwords, count = 0;
    size_t bytes;
    if (reactor_claim(&s->owner))
        return REACTOR_EBUSY;
    reactor_note_deadline(&s->deadline_ns, timeout_ns);
    reactor_lock(&sets->lock);
    nfds = sets->nfds;
    if (nfds > s->capacity) {
        reactor_unlock(&sets->lock);
        return reactor_finish(&s->owner, REACTOR_EGROW);
    }
    nwords = (nfds + REACTOR_NFDBITS - 1) / REACTOR_NFDBITS;
    bytes = (size_t)nwords * sizeof(unsigned long);
    memcpy(rwork, sets->readers, bytes);
    memcpy(wwork, sets->writers, bytes);
    reactor_unlock(&sets->lock);
    /* The kernel reads and writes back only as many bits as the fd table
     * holds (at least BITS_PER_LONG): bits past it would come back as they
     * went in, ready.  The table covers every fd below an open one, so when
     * the highest fd is open all is well; when it is not, fail as the
     * kernel does for a closed fd inside the table. */
    if (nfds > REACTOR_NFDBITS && fcntl(nfds - 1, F_GETFD) < 0)
        return reactor_finish(&s->owner, -errno);
    if (timeout_ns < 0) {
        n = select(nfds, (fd_set *)rwork, (fd_set *)wwork, NULL, NULL);
    } else if (timeout_ns == 0) {
        struct timeval tv = {0, 0};
        n = select(nfds, (fd_set *)rwork, (fd_set *)wwork, NULL, &tv);
    } else {
        struct timespec ts = reactor_timespec(timeout_ns);
        n = pselect(nfds, (fd_set *)rwork, (fd_set *)wwork, NULL, &ts, NULL);
    }
    if (n < 0)
        return reactor_finish(&s->owner, -errno);
    for (w = 0; w < nwords; w++) {
        unsigned long rbits = rwork[w], wbits = wwork[w];
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
    if (count == 1)
        return reactor_finish(&s->owner, REACTOR_ONE + (((long long)s->ready_fds[0] << 2) | s->ready[0]));
    return reactor_finish(&s->owner, count);
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
