/*
 * The C half of reactor._native: thin wrappers over the readiness syscalls.
 *
 * Rules for this file (see STYLE.md):
 *   - every wrapper returns -errno on failure, read right after the call,
 *     so a Python signal handler running later cannot clobber it;
 *   - no policy: no EINTR retries, no timeout arithmetic beyond converting
 *     nanoseconds to what the syscall takes, no knowledge of keys;
 *   - whole batches move in one call: a wait fills flat arrays (one entry
 *     per event), so Python never touches a struct per event;
 *   - Python owns all memory: when an array is too small, a call returns
 *     REACTOR_EGROW and Python hands over a bigger one.
 *
 * Readiness bits: bit 0 = readable, bit 1 = writable.  The caller chooses
 * which kernel bits count as which through `read_bits` and `write_bits`
 * (the stdlib's rule: anything but OUT counts as readable, anything but IN
 * counts as writable, so HUP and ERR wake both).
 *
 * Memory grows with the number of registrations, never with fd numbers,
 * except select()'s fd sets, which the kernel reads as bitmaps up to the
 * highest fd (1 bit per fd number: 128 KiB per set at fs.nr_open = 2**20).
 * Arrays grow by doubling, so growing costs O(1) amortised per registration.
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

/* epoll_pwait2 (Linux 5.11) takes a timespec: nanosecond timeouts.  It is
 * called by number, never through glibc's wrapper: that came with glibc 2.35,
 * and an extension that links it loads nowhere older (a wheel would need
 * manylinux_2_35).  The number is 441 on every architecture but alpha (one
 * table from Linux 5.1 on), so headers older than the kernel need not know
 * it.  By number, struct timespec must be the kernel's __kernel_timespec,
 * which it is on 64-bit; 32-bit builds use the wrapper where glibc has it. */
#if !defined(SYS_epoll_pwait2) && !defined(__alpha__)
#  define SYS_epoll_pwait2 441
#endif
#if defined(SYS_epoll_pwait2) && ULONG_MAX > 0xffffffffUL
#  define HAS_EPOLL_PWAIT2 1
#  define reactor_sys_epoll_pwait2(epfd, ev, n, ts) \
       ((int)syscall(SYS_epoll_pwait2, (epfd), (ev), (n), (ts), NULL, (size_t)8))
#elif defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
#  define HAS_EPOLL_PWAIT2 1
#  define reactor_sys_epoll_pwait2(epfd, ev, n, ts) epoll_pwait2((epfd), (ev), (n), (ts), NULL)
#else
#  define HAS_EPOLL_PWAIT2 0
#  define reactor_sys_epoll_pwait2(epfd, ev, n, ts) (errno = ENOSYS, -1)
#endif

#define REACTOR_NFDBITS (8 * (int)sizeof(unsigned long))

/* Set once the running kernel answered ENOSYS (older than 5.11 or a
 * seccomp filter): from then on every wait uses epoll_wait.  Waits in any
 * thread read it, hence the atomics. */
static int reactor_pwait2_missing = !HAS_EPOLL_PWAIT2;

static int reactor_pwait2_available(void)
{
    return !__atomic_load_n(&reactor_pwait2_missing, __ATOMIC_RELAXED);
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
 * in its wait (every call here runs without the GIL).  Three rules keep
 * that safe:
 *   - the kernel only ever reads or writes memory owned by the wait in
 *     progress: poll and select waits copy the interest list into their own
 *     work arrays first; an epoll wait writes only its own event buffer;
 *   - interest lists and epoll's registration slots are changed, grown and
 *     copied under a small spin lock, held for a few stores or one memcpy,
 *     never across a blocking syscall (epoll_ctl never blocks); an array
 *     that is replaced stays alive (Python keeps it) while a wait may read it;
 *   - an epoll fd is closed only once no wait is using its number (see
 *     reactor_epoll_close): a wait never lands on another file that reuses
 *     the number.
 * A wait whose buffers are too small for the interest list does not grow
 * them itself: it returns REACTOR_EGROW before waiting, and the caller
 * grows them and calls again.
 *
 * A wait state (its buffers) serves one call at a time: a wait claims it by
 * storing its thread in `owner` (compare-and-swap from 0).  A wait finding
 * it owned returns REACTOR_EBUSY at once, even when the owner is its own
 * thread (a signal handler or a finalizer calling select() while an outer
 * select() of the same thread holds the state between two waits): the
 * caller then waits with a state of its own, and the outer call's results,
 * deadline and buffers are left alone.
 *
 * Results, and who releases the state:
 *   0                   nothing ready; released;
 *   >= REACTOR_ONE      exactly one fd ready, the result is its code (see
 *                       each wait), so the caller reads no array; released;
 *   2 .. REACTOR_ONE-1  that many results in the state's arrays; the caller
 *                       releases the state (owner = 0) once it read them;
 *   REACTOR_EGROW, -EINTR   kept: the caller grows the buffers, or reads
 *                       deadline_ns, and releases the state, then calls
 *                       again (and may then find it taken: REACTOR_EBUSY);
 *   other negatives     REACTOR_ESTALE (epoll: only stale events),
 *                       -errno; released.
 * A Python exception can leave select() while the state is kept (a signal
 * handler raising as the wait returns -EINTR, KeyboardInterrupt say): the
 * caller then releases it with reactor_release(), which frees the state
 * only if this thread holds it. */
#define REACTOR_EGROW (-1000000)
#define REACTOR_ESTALE (-1000001)
#define REACTOR_EBUSY (-1000002)
/* Above any count of results (buffers hold fewer than 2**31 entries). */
#define REACTOR_ONE (1LL << 31)

static int reactor_claim(unsigned long *owner)
{
    unsigned long expected = 0;
    if (__atomic_compare_exchange_n(owner, &expected, (unsigned long)pthread_self(), 0,
                                    __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        return 0;
    return REACTOR_EBUSY;
}

/* Frees a wait state if, and only if, this thread holds it. */
static void reactor_release(unsigned long *owner)
{
    unsigned long me = (unsigned long)pthread_self();
    __atomic_compare_exchange_n(owner, &me, 0, 0, __ATOMIC_RELEASE, __ATOMIC_RELAXED);
}

/* Ends a wait with `result`, releasing the state unless the caller must
 * read arrays (2 <= n < REACTOR_ONE) or call again (see above). */
static long long reactor_finish(unsigned long *owner, long long result)
{
    int keep = (result >= 2 && result < REACTOR_ONE) || result == REACTOR_EGROW ||
               result == -EINTR;
    if (!keep)
        __atomic_store_n(owner, 0, __ATOMIC_RELEASE);
    return result;
}

/* Notes when a positive timeout ends, on time.monotonic_ns()'s clock, so
 * that the caller can resume a wait interrupted by a signal (PEP 475).
 * Saturates at LLONG_MAX: SelectSelector takes timeouts up to 2**63 - 1 ns,
 * and now + timeout would overflow (undefined behaviour, in practice a
 * deadline in the past that ended the wait at the first signal). */
static void reactor_note_deadline(long long *deadline_ns, long long timeout_ns)
{
    struct timespec now;
    long long now_ns;
    if (timeout_ns > 0 && clock_gettime(CLOCK_MONOTONIC, &now) == 0) {
        now_ns = (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
        *deadline_ns = timeout_ns > LLONG_MAX - now_ns ? LLONG_MAX : now_ns + timeout_ns;
    }
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

/* Registrations live in slots: each EPOLL_CTL_ADD takes a free slot (Python
 * keeps fd -> code), so memory follows the number of registrations, not fd
 * numbers.  A slot's generation `gen` counts up on every take and every
 * release: odd while the slot holds a registration, even while it is free.
 * Each event is reported with a code:
 *
 *     code = gen << 31 | slot << 3 | readiness bits (bits 0-1; bit 2 is 0)
 *
 * gen takes bits 31-62 and slot bits 3-30 (so codes are positive int64s),
 * and since gen >= 1 every code is >= REACTOR_ONE: a wait that finds one
 * event returns its code.  `code & ~7` is the registration's code base,
 * which reactor_epoll_add returns and which names that registration for as
 * long as it lasts (reactor_epoll_modify keeps it): a later registration of
 * the same fd number, in the same slot or another, has another one.
 * epoll_data.u64 of a registration is its code base | the `interest`
 * argument's bits 0-2: the EVENT_* bits asked for (which mask what waits
 * report) and bit 2, left to the caller (a wait that reads for its caller
 * can mark the registrations it reads for there).
 *
 * Stale registrations (epoll(7) Q&A 6: an fd closed while a dup keeps its
 * file open stays registered under its old number) are recognised by the
 * generation: a wait drops, and counts, every event whose slot no longer
 * holds that generation.  EPOLL_CTL_DEL and a failed EPOLL_CTL_MOD (after
 * which the caller forgets the registration) release the slot, so a
 * registration the kernel kept (DEL failed: the fd number was already
 * closed) is stale from then on.  A stale registration's generation comes
 * back only after 2**31 more registrations in its slot. */
#define REACTOR_SLOT_BITS 28
#define REACTOR_SLOT_MAX (1 << REACTOR_SLOT_BITS)   /* registrations per selector */
#define REACTOR_NO_SLOT 0xFFFFFFFFu

/* One array of slots: (uint64_t)gen << 32 | low, read by waits in one
 * atomic load; low is the registration's fd while gen is odd, the next free
 * slot (REACTOR_NO_SLOT: none) while gen is even.  Replaced whole (never
 * resized in place) when more slots are needed, so a wait reading it is
 * never cut short. */
struct reactor_slots {
    int len;
    uint64_t *slot;
};

#define REACTOR_CLOSED 0x80000000u

/* What every wait of one EpollSelector shares. */
struct reactor_epoll_shared {
    int lock;                     /* guards slots, free_slot and epoll_ctl */
    int epfd;
    unsigned int users;           /* REACTOR_CLOSED | the waits using epfd */
    struct reactor_slots *slots;  /* its len is the maxevents waits want */
    int free_slot;                /* first free slot, -1 if none */
    unsigned long long stale;     /* events dropped as stale, by any wait */
};

/* One wait's state: the buffers it fills, kept between calls so a wait
 * allocates nothing and crosses the FFI with two arguments.
 *
 * Per event i < n (the wait's result; for n == 1 the result is codes[0]):
 *   codes[i]      the event's code (above): its registration's code base |
 *                 its readiness bits, masked by the interest the
 *                 registration had.  A caller may key what it derives from
 *                 a registration (its key, its callback, its (key, mask)
 *                 results) by code base, or by code: an event of a
 *                 registration that was replaced since the wait, even by
 *                 one of the same fd number, has a code base no live
 *                 registration has (reactor_epoll_fd_of says -1).
 *   ready_fds[i]  the fd the registration was made for. */
struct reactor_epoll {
    int capacity;                 /* length of events/ready_fds/codes: maxevents */
    struct epoll_event *events;
    int *ready_fds;
    int64_t *codes;
    int64_t *lens;                /* out (reactor_epoll_wait_read): bytes read from
                                     the fd, 0 at EOF, -errno, or REACTOR_NOT_READ */
    uint32_t read_bits, write_bits;
    struct reactor_epoll_shared *shared;
    uint64_t stale_data;          /* a stale registration in the last wait */
    int stale_streak;             /* consecutive waits with stale events of it */
    unsigned long owner;          /* the thread using this state, or 0 */
    long long deadline_ns;        /* when a positive timeout ends */
};

static uint64_t reactor_slot_entry(uint32_t gen, uint32_t low)
{
    return (uint64_t)gen << 32 | low;
}

static uint64_t reactor_epoll_data(uint32_t gen, int slot, uint32_t low_bits)
{
    return (uint64_t)gen << 31 | (uint64_t)slot << 3 | (low_bits & 7u);
}

/* Publishes `next` as the slots, copying the current ones into it and
 * adding the new ones to the free list.  The caller keeps the old array
 * alive: a wait in another thread may still be reading it. */
static int reactor_epoll_set_slots(struct reactor_epoll_shared *sh, struct reactor_slots *next)
{
    struct reactor_slots *cur;
    int i, old_len = 0;
    if (next->len > REACTOR_SLOT_MAX)
        return -EINVAL;
    reactor_lock(&sh->lock);
    cur = sh->slots;
    if (cur != NULL) {
        old_len = cur->len;
        if (next->len < old_len) {
            reactor_unlock(&sh->lock);
            return -EINVAL;
        }
        memcpy(next->slot, cur->slot, (size_t)old_len * sizeof(uint64_t));
    } else {
        sh->free_slot = -1;
    }
    for (i = old_len; i < next->len; i++)
        next->slot[i] = reactor_slot_entry(0, i + 1 < next->len ? (uint32_t)(i + 1)
                                                                : (uint32_t)sh->free_slot);
    if (old_len < next->len)
        sh->free_slot = old_len;
    __atomic_store_n(&sh->slots, next, __ATOMIC_RELEASE);
    reactor_unlock(&sh->lock);
    return 0;
}

/* Puts `slot` (holding generation gen, odd) back on the free list.  Under
 * the lock. */
static void reactor_slot_release(struct reactor_epoll_shared *sh, int slot, uint32_t gen)
{
    __atomic_store_n(&sh->slots->slot[slot],
                     reactor_slot_entry(gen + 1, (uint32_t)sh->free_slot), __ATOMIC_RELAXED);
    sh->free_slot = slot;
}

/* The slot that holds registration `code`, or -1 when none does (it was
 * released).  Under the lock. */
static int reactor_slot_of(struct reactor_epoll_shared *sh, long long code)
{
    int slot = (int)(((uint64_t)code >> 3) & (REACTOR_SLOT_MAX - 1));
    uint32_t gen = (uint32_t)((uint64_t)code >> 31);
    if (code < REACTOR_ONE || !(gen & 1u) || slot >= sh->slots->len ||
        (uint32_t)(sh->slots->slot[slot] >> 32) != gen)
        return -1;
    return slot;
}

static uint32_t reactor_epoll_events(uint32_t flags, uint32_t interest)
{
    return ((interest & 1u) ? (uint32_t)EPOLLIN : 0u) |
           ((interest & 2u) ? (uint32_t)EPOLLOUT : 0u) | flags;
}

/* A new registration of fd: `interest` (EVENT_* bits, and bit 2 for the
 * caller: see above) and `flags` (EPOLLET & co.) make its epoll events, and
 * the interest also masks what waits report.  Returns its code base;
 * REACTOR_EGROW when no slot is free (the caller adds slots with
 * reactor_epoll_set_slots and calls again); -ENOSPC past REACTOR_SLOT_MAX
 * registrations; -EBADF after reactor_epoll_close; or -errno.  The slot is filled in before the
 * syscall: an event of the new registration can reach a wait in another
 * thread as soon as the kernel has it. */
static long long reactor_epoll_add(struct reactor_epoll_shared *sh, int fd, uint32_t flags,
                                   uint32_t interest)
{
    struct epoll_event ev;
    uint64_t entry;
    uint32_t gen;
    int slot, err;
    memset(&ev, 0, sizeof ev);
    ev.events = reactor_epoll_events(flags, interest);
    reactor_lock(&sh->lock);
    if (__atomic_load_n(&sh->users, __ATOMIC_RELAXED) & REACTOR_CLOSED) {
        reactor_unlock(&sh->lock);
        return -EBADF;
    }
    slot = sh->free_slot;
    if (slot < 0) {
        /* Read under the lock: another thread may be installing a larger
         * array (reactor_epoll_set_slots) as soon as we let go. */
        int full = sh->slots->len >= REACTOR_SLOT_MAX;
        reactor_unlock(&sh->lock);
        return full ? -ENOSPC : REACTOR_EGROW;
    }
    entry = sh->slots->slot[slot];
    gen = (uint32_t)(entry >> 32) + 1;
    sh->free_slot = (int)(uint32_t)entry;   /* REACTOR_NO_SLOT -> -1 */
    __atomic_store_n(&sh->slots->slot[slot], reactor_slot_entry(gen, (uint32_t)fd),
                     __ATOMIC_RELAXED);
    ev.data.u64 = reactor_epoll_data(gen, slot, interest);
    if (epoll_ctl(sh->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        err = errno;
        reactor_slot_release(sh, slot, gen);  /* nothing was registered */
        reactor_unlock(&sh->lock);
        return -err;
    }
    reactor_unlock(&sh->lock);
    return (long long)(ev.data.u64 & ~(uint64_t)7);
}

/* New events for registration `code` (as for reactor_epoll_add) of the fd
 * it was made for.  0, or -errno, after which the registration is released
 * (the caller forgets it); -ENOENT without a syscall when no slot holds
 * `code`; -EBADF after reactor_epoll_close. */
static int reactor_epoll_modify(struct reactor_epoll_shared *sh, long long code,
                                uint32_t flags, uint32_t interest)
{
    struct epoll_event ev;
    uint32_t gen = (uint32_t)((uint64_t)code >> 31);
    int slot, fd, err = 0;
    memset(&ev, 0, sizeof ev);
    ev.events = reactor_epoll_events(flags, interest);
    reactor_lock(&sh->lock);
    if (__atomic_load_n(&sh->users, __ATOMIC_RELAXED) & REACTOR_CLOSED) {
        err = EBADF;
    } else if ((slot = reactor_slot_of(sh, code)) < 0) {
        err = ENOENT;
    } else {
        fd = (int)(uint32_t)sh->slots->slot[slot];
        ev.data.u64 = reactor_epoll_data(gen, slot, interest);
        if (epoll_ctl(sh->epfd, EPOLL_CTL_MOD, fd, &ev) < 0) {
            err = errno;
            reactor_slot_release(sh, slot, gen);
        }
    }
    reactor_unlock(&sh->lock);
    return -err;
}

/* Releases registration `code` and removes it from the kernel (EPOLL_CTL_DEL
 * of the fd it was made for).  0 or -errno (the registration is released
 * either way); -ENOENT without a syscall when no slot holds `code`; -EBADF
 * after reactor_epoll_close. */
static int reactor_epoll_delete(struct reactor_epoll_shared *sh, long long code)
{
    struct epoll_event ev;
    int slot, fd, err = 0;
    memset(&ev, 0, sizeof ev);
    reactor_lock(&sh->lock);
    if (__atomic_load_n(&sh->users, __ATOMIC_RELAXED) & REACTOR_CLOSED) {
        err = EBADF;
    } else if ((slot = reactor_slot_of(sh, code)) < 0) {
        err = ENOENT;
    } else {
        fd = (int)(uint32_t)sh->slots->slot[slot];
        reactor_slot_release(sh, slot, (uint32_t)((uint64_t)code >> 31));
        if (epoll_ctl(sh->epfd, EPOLL_CTL_DEL, fd, &ev) < 0)
            err = errno;
    }
    reactor_unlock(&sh->lock);
    return -err;
}

/* Registration `code` of fd added again, as it is, to the epoll fd the
 * selector now has (in a child after fork(): see reactor_epoll_forked).
 * 0, -ENOENT (no slot holds it) or -errno. */
static int reactor_epoll_readd(struct reactor_epoll_shared *sh, int fd, long long code,
                               uint32_t flags, uint32_t interest)
{
    struct epoll_event ev;
    int slot, rc = 0;
    memset(&ev, 0, sizeof ev);
    ev.events = reactor_epoll_events(flags, interest);
    reactor_lock(&sh->lock);
    slot = reactor_slot_of(sh, code);
    if (__atomic_load_n(&sh->users, __ATOMIC_RELAXED) & REACTOR_CLOSED) {
        rc = -EBADF;
    } else if (slot < 0 || (uint32_t)sh->slots->slot[slot] != (uint32_t)fd) {
        rc = -ENOENT;
    } else {
        ev.data.u64 = reactor_epoll_data((uint32_t)((uint64_t)code >> 31), slot, interest);
        if (epoll_ctl(sh->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
            rc = -errno;
    }
    reactor_unlock(&sh->lock);
    return rc;
}

/* The slot holding a registration of fd, released and removed from the
 * kernel: for a caller that lost track of its code (an exception between
 * EPOLL_CTL_ADD and its bookkeeping).  Scans every slot.  1 if one was
 * found, else 0. */
static int reactor_epoll_forget_fd(struct reactor_epoll_shared *sh, int fd)
{
    struct epoll_event ev;
    uint64_t entry;
    int slot, found = 0;
    memset(&ev, 0, sizeof ev);
    reactor_lock(&sh->lock);
    for (slot = 0; slot < sh->slots->len && !found; slot++) {
        entry = sh->slots->slot[slot];
        if (((entry >> 32) & 1u) && (uint32_t)entry == (uint32_t)fd) {
            reactor_slot_release(sh, slot, (uint32_t)(entry >> 32));
            if (!(__atomic_load_n(&sh->users, __ATOMIC_RELAXED) & REACTOR_CLOSED))
                epoll_ctl(sh->epfd, EPOLL_CTL_DEL, fd, &ev);  /* gone already: fine */
            found = 1;
        }
    }
    reactor_unlock(&sh->lock);
    return found;
}

/* The fd registration `code` was made for, or -1 if it is gone (its slot
 * was released, or holds a later registration). */
static int reactor_epoll_fd_of(struct reactor_epoll_shared *sh, long long code)
{
    const struct reactor_slots *slots = __atomic_load_n(&sh->slots, __ATOMIC_ACQUIRE);
    int slot = (int)(((uint64_t)code >> 3) & (REACTOR_SLOT_MAX - 1));
    uint64_t entry;
    if (code < REACTOR_ONE || slot >= slots->len)
        return -1;
    entry = __atomic_load_n(&slots->slot[slot], __ATOMIC_RELAXED);
    if ((uint32_t)(entry >> 32) != (uint32_t)((uint64_t)code >> 31) || !((entry >> 32) & 1u))
        return -1;
    return (int)(uint32_t)entry;
}

/* Closing the epoll fd while another thread waits on it would let that
 * wait (which read the number before) block on whatever file reuses the
 * number.  So a wait counts itself in `users` while it uses epfd, and the
 * fd is closed by whoever leaves it unused: close() itself when no wait is
 * in progress, else the last wait, as it returns.  REACTOR_CLOSED, set
 * under the lock, turns away later waits and epoll_ctl calls.
 * Returns 1 (closed now), 0 (a wait will close it) or -EBADF (closed
 * before). */
static int reactor_epoll_close(struct reactor_epoll_shared *sh)
{
    unsigned int before;
    reactor_lock(&sh->lock);
    before = __atomic_fetch_or(&sh->users, REACTOR_CLOSED, __ATOMIC_ACQ_REL);
    reactor_unlock(&sh->lock);
    if (before & REACTOR_CLOSED)
        return -EBADF;
    if (before != 0)
        return 0;
    close(sh->epfd);
    return 1;
}

/* Empty: tests/tsan/harness.c makes it a pause, which widens the window
 * between reading epfd and waiting on it to where close() can hit it. */
#ifndef REACTOR_BEFORE_WAIT
#define REACTOR_BEFORE_WAIT() ((void)0)
#endif

static int reactor_epoll_enter(struct reactor_epoll_shared *sh)
{
    unsigned int users = __atomic_load_n(&sh->users, __ATOMIC_RELAXED);
    do {
        if (users & REACTOR_CLOSED)
            return 0;
    } while (!__atomic_compare_exchange_n(&sh->users, &users, users + 1, 1,
                                          __ATOMIC_ACQUIRE, __ATOMIC_RELAXED));
    return 1;
}

static void reactor_epoll_leave(struct reactor_epoll_shared *sh)
{
    if (__atomic_sub_fetch(&sh->users, 1, __ATOMIC_ACQ_REL) == REACTOR_CLOSED)
        close(sh->epfd);  /* closed while we waited: the last wait closes it */
}

/* In a child after fork(): the other threads, and the waits they counted
 * and the lock they held, did not come along.  Returns the epoll fd the
 * child inherited, which the caller replaces (the parent uses it too), or
 * -EBADF when the selector was closed, after closing the child's copy if a
 * wait of another thread was to close it. */
static int reactor_epoll_forked(struct reactor_epoll_shared *sh)
{
    unsigned int users = sh->users;
    sh->lock = 0;
    if (users & REACTOR_CLOSED) {
        sh->users = REACTOR_CLOSED;
        if (users != REACTOR_CLOSED)
            close(sh->epfd);
        return -EBADF;
    }
    sh->users = 0;
    return sh->epfd;
}

/* timeout_ns < 0 blocks, 0 polls.  Returns the number of live events
 * written to codes/ready_fds, or the one event's code; REACTOR_ESTALE when
 * every event was stale; REACTOR_EBUSY or REACTOR_EGROW (without waiting);
 * -EBADF after reactor_epoll_close; or -errno. */
/* Interest bit 2 (REACTOR_AUTOREAD) asks reactor_epoll_wait_read() to
 * recv() from the fd when it is readable, so that a loop dispatching
 * stream transports makes one native call per wait, not one per event. */
#define REACTOR_AUTOREAD 4u
/* lens[i] of an event that was not read for the caller. */
#define REACTOR_NOT_READ (-1000003)

/* Where reactor_epoll_wait_read() puts what it reads: `buf` holds `size`
 * bytes, each recv() asks for `chunk`, and reads stop once less than
 * `chunk` is left (the remaining events are reported unread). */
struct reactor_reads {
    char *buf;
    long long size;
    long long chunk;
    long long first;              /* out: lens[0], where Python reads it fastest */
    long long count;              /* out: events in codes/lens, also when the caller
                                     cannot see the return value (a signal handler
                                     raised as the call returned); 0 for none */
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

static long long reactor_epoll_wait(struct reactor_epoll *ep, long long timeout_ns)
{
    return reactor_epoll_wait_core(ep, timeout_ns, NULL);
}

/* reactor_epoll_wait(), and for every live event of a registration with
 * REACTOR_AUTOREAD that is readable, one recv() into rx->buf (one after
 * the other, in event order), its result in lens[i]; other events get
 * REACTOR_NOT_READ.  The reads happen while the wait holds its state. */
static long long reactor_epoll_wait_read(struct reactor_epoll *ep, long long timeout_ns,
                                         struct reactor_reads *rx)
{
    return reactor_epoll_wait_core(ep, timeout_ns, rx);
}

static long long reactor_epoll_wait_core(struct reactor_epoll *ep, long long timeout_ns,
                                         struct reactor_reads *rx)
{
    struct reactor_epoll_shared *sh = ep->shared;
    struct epoll_event *events;
    const struct reactor_slots *slots;
    uint64_t stale_data = 0;
    int n, i, err = 0, epfd, count = 0, capacity, stale = 0, seen_again = 0;
    long long used = 0;
    if (rx != NULL)
        rx->count = 0;
    if (reactor_claim(&ep->owner))
        return REACTOR_EBUSY;
    /* Only now: until we hold the state, its holder may replace them. */
    events = ep->events;
    capacity = ep->capacity;
    slots = __atomic_load_n(&sh->slots, __ATOMIC_ACQUIRE);
    if (slots->len > capacity)
        return reactor_finish(&ep->owner, REACTOR_EGROW);
    if (!reactor_epoll_enter(sh))
        return reactor_finish(&ep->owner, -EBADF);
    reactor_note_deadline(&ep->deadline_ns, timeout_ns);
    epfd = sh->epfd;
    REACTOR_BEFORE_WAIT();
    if (timeout_ns > 0 && !__atomic_load_n(&reactor_pwait2_missing, __ATOMIC_RELAXED)) {
        struct timespec ts = reactor_timespec(timeout_ns);
        n = reactor_sys_epoll_pwait2(epfd, events, capacity, &ts);
        if (n < 0 && errno == ENOSYS) {
            __atomic_store_n(&reactor_pwait2_missing, 1, __ATOMIC_RELAXED);
            n = epoll_wait(epfd, events, capacity, reactor_ms_ceil(timeout_ns));
        }
    } else {
        n = epoll_wait(epfd, events, capacity, reactor_ms_ceil(timeout_ns));
    }
    if (n < 0)
        err = errno;
    reactor_epoll_leave(sh);
    if (n < 0)
        return reactor_finish(&ep->owner, -err);
    slots = __atomic_load_n(&sh->slots, __ATOMIC_ACQUIRE);
    for (i = 0; i < n; i++) {
        uint64_t data = events[i].data.u64, entry = 0;
        int slot = (int)((data >> 3) & (REACTOR_SLOT_MAX - 1));
        uint32_t ready;
        if (slot < slots->len)
            entry = __atomic_load_n(&slots->slot[slot], __ATOMIC_RELAXED);
        if (slot >= slots->len || (uint32_t)(entry >> 32) != (uint32_t)(data >> 31)) {
            __atomic_fetch_add(&sh->stale, 1, __ATOMIC_RELAXED);
            stale = 1;
            stale_data = data;
            seen_again |= data == ep->stale_data;
            continue;
        }
        ready = reactor_ready_bits(events[i].events, ep->read_bits, ep->write_bits)
                & (uint32_t)(data & 3u);
        ep->ready_fds[count] = (int)(uint32_t)entry;
        ep->codes[count] = (int64_t)((data & ~(uint64_t)7) | ready);
        if (rx != NULL)
            ep->lens[count] = (data & REACTOR_AUTOREAD) && (ready & 1u)
                              ? reactor_read_for_caller((int)(uint32_t)entry, rx, &used)
                              : REACTOR_NOT_READ;
        count++;
    }
    if (rx != NULL && count > 0) {
        rx->first = ep->lens[0];
        rx->count = count;
    }
    /* A stale registration that stays ready shows up in wait after wait;
     * one that a racing EPOLL_CTL_DEL removes does not. */
    if (!stale) {
        ep->stale_streak = 0;
    } else if (seen_again) {
        ep->stale_streak++;
    } else {
        ep->stale_data = stale_data;
        ep->stale_streak = 1;
    }
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

/* One wait's state: its own copy of the list, and its results: per ready
 * fd i < n, ready_fds[i] and its readiness bits ready[i].  The one-fd
 * result is REACTOR_ONE + (fd << 2 | bits). */
struct reactor_poll {
    struct reactor_pollfds *list;
    int capacity;                 /* length of work, ready_fds, ready */
    struct pollfd *work;
    int *ready_fds;
    uint32_t *ready;
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
    struct pollfd *work;
    int n, i, nfds, count = 0;
    if (reactor_claim(&p->owner))
        return REACTOR_EBUSY;
    work = p->work;  /* only now: until we hold the state, its holder may replace it */
    reactor_lock(&list->lock);
    nfds = list->nfds;
    if (nfds > p->capacity) {
        reactor_unlock(&list->lock);
        return reactor_finish(&p->owner, REACTOR_EGROW);
    }
    memcpy(work, list->fds, (size_t)nfds * sizeof(struct pollfd));
    reactor_unlock(&list->lock);
    reactor_note_deadline(&p->deadline_ns, timeout_ns);
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

static int reactor_fdset_has(const unsigned long *set, int fd)
{
    return (set[fd / REACTOR_NFDBITS] >> (fd % REACTOR_NFDBITS)) & 1;
}

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
    int count;                    /* fds in either set: at most this many are ready */
    unsigned long *readers, *writers;
};

/* One wait's state: scratch sets for `capacity` fds (select() overwrites
 * its sets) and results for `ready_capacity` fds: per ready fd i < n,
 * ready_fds[i] and its readiness bits ready[i].  The one-fd result is
 * REACTOR_ONE + (fd << 2 | bits). */
struct reactor_select {
    struct reactor_fdsets *sets;
    int capacity;
    unsigned long *rwork, *wwork;
    int ready_capacity;
    int *ready_fds;
    uint32_t *ready;
    unsigned long owner;          /* the thread using this state, or 0 */
    long long deadline_ns;        /* when a positive timeout ends */
};

/* Publishes new sets (room for `capacity` bits, a multiple of
 * REACTOR_NFDBITS, at least the current), copying the current bits. */
static int reactor_select_set_arrays(struct reactor_fdsets *sets, unsigned long *readers,
                                     unsigned long *writers, int capacity)
{
    size_t bytes;
    reactor_lock(&sets->lock);
    if (capacity < sets->capacity || capacity % REACTOR_NFDBITS) {
        reactor_unlock(&sets->lock);
        return -EINVAL;
    }
    bytes = (size_t)(sets->capacity / REACTOR_NFDBITS) * sizeof(unsigned long);
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

/* Adds fd to the readers (bit 0 of `events`) and writers (bit 1) sets;
 * -EINVAL for an fd outside them. */
static int reactor_select_add(struct reactor_fdsets *sets, int fd, uint32_t events)
{
    int rc = 0;
    reactor_lock(&sets->lock);
    if (fd < 0 || fd >= sets->capacity) {
        rc = -EINVAL;
    } else if (events & 3u) {
        if (!reactor_fdset_has(sets->readers, fd) && !reactor_fdset_has(sets->writers, fd))
            sets->count++;
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

/* Removes fd from both sets, keeping nfds exact; -EINVAL for an fd outside
 * them. */
static int reactor_select_remove(struct reactor_fdsets *sets, int fd)
{
    int rc = 0;
    reactor_lock(&sets->lock);
    if (fd < 0 || fd >= sets->capacity) {
        rc = -EINVAL;
    } else {
        if (reactor_fdset_has(sets->readers, fd) || reactor_fdset_has(sets->writers, fd))
            sets->count--;
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
 * fd and readiness bits for each ready fd (at most `count` of them). */
static long long reactor_select_wait(struct reactor_select *s, long long timeout_ns)
{
    struct reactor_fdsets *sets = s->sets;
    unsigned long *rwork, *wwork;
    int n, w, nfds, nwords, count = 0;
    size_t bytes;
    if (reactor_claim(&s->owner))
        return REACTOR_EBUSY;
    rwork = s->rwork;  /* only now: until we hold the state, its holder may replace them */
    wwork = s->wwork;
    reactor_lock(&sets->lock);
    nfds = sets->nfds;
    if (nfds > s->capacity || sets->count > s->ready_capacity) {
        reactor_unlock(&sets->lock);
        return reactor_finish(&s->owner, REACTOR_EGROW);
    }
    nwords = (nfds + REACTOR_NFDBITS - 1) / REACTOR_NFDBITS;
    bytes = (size_t)nwords * sizeof(unsigned long);
    memcpy(rwork, sets->readers, bytes);
    memcpy(wwork, sets->writers, bytes);
    reactor_unlock(&sets->lock);
    reactor_note_deadline(&s->deadline_ns, timeout_ns);
    /* The kernel reads and writes back only as many bits as the fd table
     * holds (at least BITS_PER_LONG): bits past it would come back as they
     * went in, ready.  The table covers every fd below an open one, so when
     * the highest fd is open all is well; when it is not, fail as the
     * kernel does for a closed fd inside the table.  (We call
     * fcntl by number: glibc 2.28 renamed the function fcntl64 for
     * _FILE_OFFSET_BITS=64 (which Python's CFLAGS set), and linking that
     * would make the extension need glibc 2.28 for this one check. */
    if (nfds > REACTOR_NFDBITS && syscall(SYS_fcntl, nfds - 1, F_GETFD) < 0)
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
    /* Only bits that went in come back, so at most `count` fds (copied with
     * the sets) are ready; the bound is checked all the same. */
    for (w = 0; w < nwords; w++) {
        unsigned long rbits = rwork[w], wbits = wwork[w];
        unsigned long bits = rbits | wbits;
        while (bits && count < s->ready_capacity) {
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
