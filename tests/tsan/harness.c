/*
 * ThreadSanitizer harness for the thread protocol of _native/helpers.c
 * ("sharing with other threads" there), run by tests/test_tsan.py and by
 * .ci/run.  It includes helpers.c itself, so what runs is the real code,
 * built with -fsanitize=thread, and hammers it from real threads the way
 * reactor's Python does (Python's side, which TSan cannot see, is played by
 * this file: growing arrays, reading results, releasing states):
 *
 *   spin lock       threads bump a plain counter under reactor_lock;
 *   claim/release   threads claim one wait state and write its buffers;
 *   epoll           waits on one state and on states of their own while
 *                   other threads add, modify and delete registrations and
 *                   grow the slot table; then close() while waits block;
 *   poll, select    waits while other threads add, change and remove
 *                   entries and grow the arrays.
 *
 * Old arrays are never freed before the end (Python keeps them alive while
 * a wait may read them).  close() is counted per fd: an epoll fd closed
 * twice, or while a wait still uses it, fails the run.  Any TSan report
 * fails it too (TSAN_OPTIONS=halt_on_error=1 exitcode=66).
 *
 * Usage: harness [seconds per scenario, default 0.5]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Every close() of helpers.c goes through here, counted per fd. */
#define REACTOR_MAX_FD 65536
static int harness_closes[REACTOR_MAX_FD];
static int harness_close(int fd)
{
    if (fd >= 0 && fd < REACTOR_MAX_FD)
        __atomic_fetch_add(&harness_closes[fd], 1, __ATOMIC_RELAXED);
    return close(fd);
}
#define close(fd) harness_close(fd)
/* In the close races, a pause between an epoll wait reading the epoll fd
 * and waiting on it: where a close() that does not wait for the waits
 * would let the number go to another file. */
static int harness_slow_waits;
#define REACTOR_BEFORE_WAIT()                                                  \
    do {                                                                       \
        if (__atomic_load_n(&harness_slow_waits, __ATOMIC_RELAXED))            \
            usleep(300);                                                       \
    } while (0)
#include "../../_native/helpers.c"
#undef close

static double seconds = 0.5;
static int failures;

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "harness: %s:%d: ", __FILE__, __LINE__);           \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
            __atomic_fetch_add(&failures, 1, __ATOMIC_RELAXED);                \
        }                                                                      \
    } while (0)

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Memory handed to helpers.c, freed at the end (Python keeps it alive). */
static void *kept[1 << 16];
static int nkept;
static pthread_mutex_t kept_lock = PTHREAD_MUTEX_INITIALIZER;
static void *keep(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (p == NULL) {
        perror("calloc");
        exit(2);
    }
    pthread_mutex_lock(&kept_lock);
    if (nkept == (int)(sizeof kept / sizeof kept[0])) {
        fprintf(stderr, "harness: too many arrays\n");
        exit(2);
    }
    kept[nkept++] = p;
    pthread_mutex_unlock(&kept_lock);
    return p;
}
static void free_kept(void)
{
    while (nkept > 0)
        free(kept[--nkept]);
}

static void start(pthread_t *t, void *(*fn)(void *), void *arg)
{
    if (pthread_create(t, NULL, fn, arg)) {
        perror("pthread_create");
        exit(2);
    }
}

/* ---- the spin lock ------------------------------------------------------ */

static int spin_lock;
static long spin_counter;  /* plain: only ever touched under spin_lock */

static void *spin_worker(void *arg)
{
    int i;
    (void)arg;
    for (i = 0; i < 20000; i++) {
        reactor_lock(&spin_lock);
        spin_counter++;
        reactor_unlock(&spin_lock);
    }
    return NULL;
}

static void scenario_spin_lock(void)
{
    pthread_t t[4];
    int i;
    for (i = 0; i < 4; i++)
        start(&t[i], spin_worker, NULL);
    for (i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    CHECK(spin_counter == 4 * 20000, "spin lock lost updates: %ld", spin_counter);
}

/* ---- claim and release ---------------------------------------------------- */

static unsigned long claim_owner;
static long claim_buffer[16];  /* plain: only ever touched by the claimer */
static long claims;

static void *claim_worker(void *arg)
{
    long me = (long)(intptr_t)arg, i, j;
    double end = now() + seconds / 4;
    while (now() < end) {
        if (reactor_claim(&claim_owner) != 0)
            continue;
        CHECK(reactor_claim(&claim_owner) == REACTOR_EBUSY,
              "a state held by this thread was claimed again");
        for (j = 0; j < 16; j++)
            claim_buffer[j] = me;
        for (j = 0; j < 16; j++)
            CHECK(claim_buffer[j] == me, "two claimers at once");
        __atomic_fetch_add(&claims, 1, __ATOMIC_RELAXED);
        /* Released the three ways reactor's Python does: reactor_finish
         * (a wait's end), `state.owner = 0` (a store), reactor_release. */
        i = claims % 3;
        if (i == 0)
            reactor_finish(&claim_owner, 0);
        else if (i == 1)
            __atomic_store_n(&claim_owner, 0, __ATOMIC_RELEASE);
        else
            reactor_release(&claim_owner);
    }
    reactor_release(&claim_owner);  /* not ours: no effect */
    return NULL;
}

static void scenario_claims(void)
{
    pthread_t t[4];
    long i;
    for (i = 0; i < 4; i++)
        start(&t[i], claim_worker, (void *)(intptr_t)(i + 1));
    for (i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    CHECK(claims > 0, "no claim succeeded");
    CHECK(claim_owner == 0, "the state was left claimed");
}

/* ---- epoll ---------------------------------------------------------------- */

#define PAIRS 48

struct epoll_world {
    struct reactor_epoll_shared sh;
    struct reactor_epoll main;
    int fds[2 * PAIRS];          /* socket ends; the even ones are registered */
    int stop, closed;
    long waits, events;
    int slots_len;               /* touched by the registrar only */
    pthread_mutex_t grow;        /* Python's GIL, for growing the slots */
};

static void epoll_size_wait(struct reactor_epoll *ep, int capacity)
{
    ep->events = keep((size_t)capacity, sizeof(struct epoll_event));
    ep->ready_fds = keep((size_t)capacity, sizeof(int));
    ep->codes = keep((size_t)capacity, sizeof(int64_t));
    ep->capacity = capacity;
}

static int epoll_slots_len(struct epoll_world *w)
{
    return __atomic_load_n(&w->sh.slots, __ATOMIC_ACQUIRE)->len;
}

static void epoll_grow_slots(struct epoll_world *w)
{
    struct reactor_slots *next = keep(1, sizeof *next);
    pthread_mutex_lock(&w->grow);
    next->len = w->slots_len ? 2 * w->slots_len : 4;
    next->slot = keep((size_t)next->len, sizeof(uint64_t));
    CHECK(reactor_epoll_set_slots(&w->sh, next) == 0, "set_slots refused");
    w->slots_len = next->len;
    pthread_mutex_unlock(&w->grow);
}

static int epoll_fd_known(struct epoll_world *w, int fd)
{
    int i;
    for (i = 0; i < 2 * PAIRS; i += 2)
        if (w->fds[i] == fd)
            return 1;
    return 0;
}

/* One wait and what reactor's Python does with its result. */
static void epoll_wait_once(struct epoll_world *w, struct reactor_epoll *ep, long long timeout_ns)
{
    long long n = reactor_epoll_wait(ep, timeout_ns);
    int i;
    while (n == REACTOR_EGROW) {  /* ours to resize */
        epoll_size_wait(ep, epoll_slots_len(w));
        __atomic_store_n(&ep->owner, 0, __ATOMIC_RELEASE);
        n = reactor_epoll_wait(ep, timeout_ns);
    }
    if (n == REACTOR_EBUSY || n == -EBADF || n == REACTOR_ESTALE || n == 0)
        return;
    __atomic_fetch_add(&w->waits, 1, __ATOMIC_RELAXED);
    if (n >= REACTOR_ONE) {
        int fd = reactor_epoll_fd_of(&w->sh, n);
        CHECK(fd == -1 || epoll_fd_known(w, fd), "one event for unknown fd %d", fd);
        __atomic_fetch_add(&w->events, 1, __ATOMIC_RELAXED);
        return;
    }
    CHECK(n > 0, "wait failed: %lld", n);
    if (n < 0)
        return;
    CHECK(n <= ep->capacity, "%lld events in %d slots", n, ep->capacity);
    for (i = 0; i < n; i++) {
        CHECK(ep->codes[i] >= REACTOR_ONE, "bad code %lld", (long long)ep->codes[i]);
        CHECK(epoll_fd_known(w, ep->ready_fds[i]), "event for unknown fd %d", ep->ready_fds[i]);
    }
    __atomic_fetch_add(&w->events, n, __ATOMIC_RELAXED);
    __atomic_store_n(&ep->owner, 0, __ATOMIC_RELEASE);  /* arrays read */
}

static void *epoll_waiter(void *arg)
{
    struct epoll_world *w = arg;
    struct reactor_epoll own;
    memset(&own, 0, sizeof own);
    own.shared = &w->sh;
    own.read_bits = ~(uint32_t)EPOLLOUT;
    own.write_bits = ~(uint32_t)EPOLLIN;
    epoll_size_wait(&own, 1);
    while (!__atomic_load_n(&w->stop, __ATOMIC_RELAXED)) {
        epoll_wait_once(w, &w->main, 200000);   /* the selector's main state */
        epoll_wait_once(w, &own, 200000);       /* a spare: select() aside */
    }
    return NULL;
}

/* Registers, modifies and unregisters fds [base, base + PAIRS / 2) of the
 * registered ends, as reactor's EpollSelector does (code kept per fd). */
struct registrar {
    struct epoll_world *w;
    int first;
};

static void *epoll_registrar(void *arg)
{
    struct registrar *r = arg;
    struct epoll_world *w = r->w;
    long long codes[PAIRS];
    int i, k, round = 0;
    for (i = 0; i < PAIRS; i++)
        codes[i] = 0;
    while (!__atomic_load_n(&w->stop, __ATOMIC_RELAXED)) {
        round++;
        for (k = r->first; k < r->first + PAIRS / 2; k++) {
            int fd = w->fds[2 * k];
            int closed = __atomic_load_n(&w->closed, __ATOMIC_ACQUIRE);
            long long rc;
            if (codes[k] == 0) {
                rc = reactor_epoll_add(&w->sh, fd, 0, 1u + (uint32_t)(round & 1));
                while (rc == REACTOR_EGROW) {
                    epoll_grow_slots(w);
                    rc = reactor_epoll_add(&w->sh, fd, 0, 1u);
                }
                if (rc == -EBADF && __atomic_load_n(&w->closed, __ATOMIC_ACQUIRE))
                    return NULL;  /* closed meanwhile */
                CHECK(rc >= REACTOR_ONE, "add failed: %lld", rc);
                codes[k] = rc > 0 ? rc : 0;
                CHECK(closed || reactor_epoll_fd_of(&w->sh, rc) == fd, "fd_of disagrees");
            } else if ((k + round) % 3 == 0) {
                rc = reactor_epoll_modify(&w->sh, codes[k], 0, 3u);
                if (rc == -EBADF && __atomic_load_n(&w->closed, __ATOMIC_ACQUIRE))
                    return NULL;
                CHECK(rc == 0, "modify failed: %lld", rc);
            } else {
                rc = reactor_epoll_delete(&w->sh, codes[k]);
                if (rc == -EBADF && __atomic_load_n(&w->closed, __ATOMIC_ACQUIRE))
                    return NULL;
                CHECK(rc == 0, "delete failed: %lld", rc);
                CHECK(reactor_epoll_fd_of(&w->sh, codes[k]) == -1, "deleted but live");
                rc = reactor_epoll_delete(&w->sh, codes[k]);
                CHECK(rc == -ENOENT || rc == -EBADF, "deleted twice: %lld", rc);
                codes[k] = 0;
            }
        }
    }
    return NULL;
}

static void scenario_epoll(void)
{
    struct epoll_world *w = keep(1, sizeof *w);
    struct registrar regs[2];
    pthread_t t[5];
    int i, epfd;
    pthread_mutex_init(&w->grow, NULL);
    for (i = 0; i < PAIRS; i++) {
        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, &w->fds[2 * i]) == 0,
              "socketpair");
        if (i % 2 == 0)  /* half of them readable: waits return at once */
            CHECK(write(w->fds[2 * i + 1], "x", 1) == 1, "write");
    }
    epfd = reactor_epoll_create();
    CHECK(epfd >= 0, "epoll_create");
    w->sh.epfd = epfd;
    epoll_grow_slots(w);
    w->main.shared = &w->sh;
    w->main.read_bits = ~(uint32_t)EPOLLOUT;
    w->main.write_bits = ~(uint32_t)EPOLLIN;
    epoll_size_wait(&w->main, 1);
    for (i = 0; i < 2; i++) {
        regs[i].w = w;
        regs[i].first = i * PAIRS / 2;
        start(&t[i], epoll_registrar, &regs[i]);
    }
    for (i = 2; i < 5; i++)
        start(&t[i], epoll_waiter, w);
    usleep((useconds_t)(seconds * 1e6));
    /* Close while the waiters wait: the number must stay taken until the
     * last of them returns, and be closed exactly once. */
    __atomic_store_n(&w->closed, 1, __ATOMIC_RELEASE);
    CHECK(reactor_epoll_close(&w->sh) >= 0, "close failed");
    CHECK(reactor_epoll_close(&w->sh) == -EBADF, "closed twice");
    CHECK(reactor_epoll_add(&w->sh, w->fds[1], 0, 1u) == -EBADF, "add after close");
    __atomic_store_n(&w->stop, 1, __ATOMIC_RELAXED);
    for (i = 0; i < 5; i++)
        pthread_join(t[i], NULL);
    CHECK(harness_closes[epfd] == 1, "epoll fd closed %d times", harness_closes[epfd]);
    CHECK(fcntl(epfd, F_GETFD) < 0, "epoll fd left open");
    CHECK(w->waits > 0 && w->events > 0, "no wait saw an event");
    CHECK(reactor_epoll_wait(&w->main, 0) == -EBADF, "wait after close");
    for (i = 0; i < 2 * PAIRS; i++)
        close(w->fds[i]);
    pthread_mutex_destroy(&w->grow);
}

/* close() racing waits that are about to start, in progress, or ending:
 * many short rounds. */
struct close_round {
    struct reactor_epoll_shared sh;
    struct reactor_epoll ep[2];
};

static void *close_round_waiter(void *arg)
{
    struct reactor_epoll *ep = arg;
    int i;
    for (i = 0; i < 3; i++) {
        long long n = reactor_epoll_wait(ep, 100000 * (i + 1));
        CHECK(n == 0 || n == -EBADF, "wait: %lld", n);
        if (n == -EBADF)
            break;
    }
    return NULL;
}

static void scenario_epoll_close_races(void)
{
    double end = now() + seconds / 2;
    int rounds = 0;
    __atomic_store_n(&harness_slow_waits, 1, __ATOMIC_RELAXED);
    while (now() < end || rounds < 20) {
        struct close_round *r = keep(1, sizeof *r);
        struct reactor_slots *slots = keep(1, sizeof *slots);
        pthread_t t[2];
        int i, reuse[2], epfd = reactor_epoll_create();
        CHECK(epfd >= 0 && epfd < REACTOR_MAX_FD, "epoll_create");
        r->sh.epfd = epfd;
        slots->len = 4;
        slots->slot = keep(4, sizeof(uint64_t));
        reactor_epoll_set_slots(&r->sh, slots);
        for (i = 0; i < 2; i++) {
            r->ep[i].shared = &r->sh;
            epoll_size_wait(&r->ep[i], 4);
            start(&t[i], close_round_waiter, &r->ep[i]);
        }
        usleep((useconds_t)(rounds % 7) * 100);
        CHECK(reactor_epoll_close(&r->sh) >= 0, "close failed");
        /* New files take the lowest free numbers: were the epoll fd's free
         * while a wait could still use it, that wait would land on a pipe
         * (EINVAL) instead. */
        CHECK(pipe(reuse) == 0, "pipe");
        for (i = 0; i < 2; i++)
            pthread_join(t[i], NULL);
        close(reuse[0]);
        close(reuse[1]);
        CHECK(harness_closes[epfd] == 1, "epoll fd %d closed %d times", epfd,
              harness_closes[epfd]);
        CHECK(fcntl(epfd, F_GETFD) < 0, "epoll fd left open");
        harness_closes[epfd] = 0;
        rounds++;
    }
    __atomic_store_n(&harness_slow_waits, 0, __ATOMIC_RELAXED);
}

/* ---- poll ----------------------------------------------------------------- */

struct poll_world {
    struct reactor_pollfds list;
    struct reactor_poll main;
    int fds[2 * PAIRS];
    int stop;
    long events;
};

static void poll_size_wait(struct reactor_poll *p, int capacity)
{
    p->work = keep((size_t)capacity, sizeof(struct pollfd));
    p->ready_fds = keep((size_t)capacity, sizeof(int));
    p->ready = keep((size_t)capacity, sizeof(uint32_t));
    p->capacity = capacity;
}

static int poll_capacity(struct poll_world *w)
{
    int capacity;
    reactor_lock(&w->list.lock);
    capacity = w->list.capacity;
    reactor_unlock(&w->list.lock);
    return capacity;
}

static void poll_wait_once(struct poll_world *w, struct reactor_poll *p)
{
    long long n = reactor_poll_wait(p, 200000);
    int i;
    while (n == REACTOR_EGROW) {
        poll_size_wait(p, poll_capacity(w));
        __atomic_store_n(&p->owner, 0, __ATOMIC_RELEASE);
        n = reactor_poll_wait(p, 200000);
    }
    if (n == REACTOR_EBUSY || n == 0)
        return;
    if (n >= REACTOR_ONE) {
        __atomic_fetch_add(&w->events, 1, __ATOMIC_RELAXED);
        return;
    }
    CHECK(n > 0 && n <= p->capacity, "poll wait: %lld", n);
    for (i = 0; i < n; i++)
        CHECK(p->ready_fds[i] >= 0, "bad fd");
    __atomic_fetch_add(&w->events, n, __ATOMIC_RELAXED);
    __atomic_store_n(&p->owner, 0, __ATOMIC_RELEASE);
}

static void *poll_waiter(void *arg)
{
    struct poll_world *w = arg;
    struct reactor_poll own;
    memset(&own, 0, sizeof own);
    own.list = &w->list;
    own.read_bits = 0xFFFF & ~(uint32_t)POLLOUT;
    own.write_bits = 0xFFFF & ~(uint32_t)POLLIN;
    poll_size_wait(&own, 1);
    while (!__atomic_load_n(&w->stop, __ATOMIC_RELAXED)) {
        poll_wait_once(w, &w->main);
        poll_wait_once(w, &own);
    }
    return NULL;
}

/* Python's PollSelector, in one thread: fd -> index, kept in step with the
 * array (the last entry moves into a removed one's place). */
static void *poll_registrar(void *arg)
{
    struct poll_world *w = arg;
    int index_of[2 * PAIRS], i, k, round = 0;
    for (i = 0; i < 2 * PAIRS; i++)
        index_of[i] = -1;
    while (!__atomic_load_n(&w->stop, __ATOMIC_RELAXED)) {
        round++;
        for (k = 0; k < PAIRS; k++) {
            int fd = w->fds[2 * k];
            if (index_of[k] < 0) {
                int index = reactor_poll_add(&w->list, fd, POLLIN);
                while (index == REACTOR_EGROW) {
                    int capacity = 2 * poll_capacity(w);
                    struct pollfd *fds = keep((size_t)capacity, sizeof *fds);
                    CHECK(reactor_poll_set_array(&w->list, fds, capacity) == 0, "set_array");
                    index = reactor_poll_add(&w->list, fd, POLLIN);
                }
                index_of[k] = index;
            } else if ((k + round) % 3 == 0) {
                CHECK(reactor_poll_set_events(&w->list, index_of[k], fd, POLLIN | POLLOUT) == 0,
                      "set_events");
            } else {
                int moved = reactor_poll_remove(&w->list, index_of[k], fd), j;
                CHECK(moved != -ENOENT, "remove");
                if (moved >= 0)
                    for (j = 0; j < PAIRS; j++)
                        if (w->fds[2 * j] == moved)
                            index_of[j] = index_of[k];
                index_of[k] = -1;
            }
        }
    }
    return NULL;
}

static void scenario_poll(void)
{
    struct poll_world *w = keep(1, sizeof *w);
    pthread_t t[3];
    int i;
    for (i = 0; i < PAIRS; i++) {
        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, &w->fds[2 * i]) == 0,
              "socketpair");
        if (i % 2 == 0)
            CHECK(write(w->fds[2 * i + 1], "x", 1) == 1, "write");
    }
    reactor_poll_set_array(&w->list, keep(2, sizeof(struct pollfd)), 2);
    w->main.list = &w->list;
    w->main.read_bits = 0xFFFF & ~(uint32_t)POLLOUT;
    w->main.write_bits = 0xFFFF & ~(uint32_t)POLLIN;
    poll_size_wait(&w->main, 1);
    start(&t[0], poll_registrar, w);
    start(&t[1], poll_waiter, w);
    start(&t[2], poll_waiter, w);
    usleep((useconds_t)(seconds * 1e6));
    __atomic_store_n(&w->stop, 1, __ATOMIC_RELAXED);
    for (i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    CHECK(w->events > 0, "no poll wait saw an event");
    for (i = 0; i < 2 * PAIRS; i++)
        close(w->fds[i]);
}

/* ---- select --------------------------------------------------------------- */

struct select_world {
    struct reactor_fdsets sets;
    struct reactor_select main;
    int fds[2 * PAIRS];
    int stop;
    long events;
};

static void select_size_wait(struct select_world *w, struct reactor_select *s)
{
    int capacity, count;
    reactor_lock(&w->sets.lock);
    capacity = w->sets.capacity;
    count = w->sets.count;
    reactor_unlock(&w->sets.lock);
    s->rwork = keep((size_t)(capacity / REACTOR_NFDBITS), sizeof(unsigned long));
    s->wwork = keep((size_t)(capacity / REACTOR_NFDBITS), sizeof(unsigned long));
    s->capacity = capacity;
    s->ready_fds = keep((size_t)count + 1, sizeof(int));
    s->ready = keep((size_t)count + 1, sizeof(uint32_t));
    s->ready_capacity = count + 1;
}

static void select_wait_once(struct select_world *w, struct reactor_select *s)
{
    long long n = reactor_select_wait(s, 200000);
    int i;
    while (n == REACTOR_EGROW) {
        select_size_wait(w, s);
        __atomic_store_n(&s->owner, 0, __ATOMIC_RELEASE);
        n = reactor_select_wait(s, 200000);
    }
    if (n == REACTOR_EBUSY || n == 0)
        return;
    if (n >= REACTOR_ONE) {
        __atomic_fetch_add(&w->events, 1, __ATOMIC_RELAXED);
        return;
    }
    CHECK(n > 0 && n <= s->ready_capacity, "select wait: %lld", n);
    for (i = 0; i < n; i++)
        CHECK(s->ready_fds[i] >= 0 && s->ready_fds[i] < s->capacity, "bad fd");
    __atomic_fetch_add(&w->events, n, __ATOMIC_RELAXED);
    __atomic_store_n(&s->owner, 0, __ATOMIC_RELEASE);
}

static void *select_waiter(void *arg)
{
    struct select_world *w = arg;
    struct reactor_select own;
    memset(&own, 0, sizeof own);
    own.sets = &w->sets;
    select_size_wait(w, &own);
    while (!__atomic_load_n(&w->stop, __ATOMIC_RELAXED)) {
        select_wait_once(w, &w->main);
        select_wait_once(w, &own);
    }
    return NULL;
}

static void *select_registrar(void *arg)
{
    struct select_world *w = arg;
    int in[PAIRS], k, round = 0;
    for (k = 0; k < PAIRS; k++)
        in[k] = 0;
    while (!__atomic_load_n(&w->stop, __ATOMIC_RELAXED)) {
        round++;
        for (k = 0; k < PAIRS; k++) {
            int fd = w->fds[2 * k];
            if (!in[k]) {
                if (fd >= w->sets.capacity) {  /* only this thread changes it */
                    int capacity = 2 * w->sets.capacity;
                    while (capacity <= fd)
                        capacity *= 2;
                    CHECK(reactor_select_set_arrays(
                              &w->sets, keep((size_t)(capacity / REACTOR_NFDBITS), sizeof(unsigned long)),
                              keep((size_t)(capacity / REACTOR_NFDBITS), sizeof(unsigned long)),
                              capacity) == 0, "set_arrays");
                }
                CHECK(reactor_select_add(&w->sets, fd, 1u + (uint32_t)(round & 1)) == 0, "add");
                in[k] = 1;
            } else {
                CHECK(reactor_select_remove(&w->sets, fd) == 0, "remove");
                in[k] = 0;
            }
        }
    }
    return NULL;
}

static void scenario_select(void)
{
    struct select_world *w = keep(1, sizeof *w);
    pthread_t t[3];
    int i;
    for (i = 0; i < PAIRS; i++) {
        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, &w->fds[2 * i]) == 0,
              "socketpair");
        if (i % 2 == 0)
            CHECK(write(w->fds[2 * i + 1], "x", 1) == 1, "write");
    }
    reactor_select_set_arrays(&w->sets, keep(1, sizeof(unsigned long)),
                              keep(1, sizeof(unsigned long)), REACTOR_NFDBITS);
    w->main.sets = &w->sets;
    select_size_wait(w, &w->main);
    start(&t[0], select_registrar, w);
    start(&t[1], select_waiter, w);
    start(&t[2], select_waiter, w);
    usleep((useconds_t)(seconds * 1e6));
    __atomic_store_n(&w->stop, 1, __ATOMIC_RELAXED);
    for (i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    CHECK(w->events > 0, "no select wait saw an event");
    for (i = 0; i < 2 * PAIRS; i++)
        close(w->fds[i]);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        seconds = atof(argv[1]);
    scenario_spin_lock();
    scenario_claims();
    scenario_epoll();
    scenario_epoll_close_races();
    scenario_poll();
    scenario_select();
    free_kept();
    if (failures) {
        fprintf(stderr, "harness: %d check(s) failed\n", failures);
        return 1;
    }
    printf("harness: spin lock, claims, epoll (waits, registrations, slot growth, "
           "close), poll and select: all passed\n");
    return 0;
}
