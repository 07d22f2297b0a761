/*
 * The raw syscall floor for benchmarks/selectors_bench.py: the same
 * syscalls the selectors make, timed from C with no Python work, so every
 * Python figure reads as "x above the kernel".
 *
 *   floor ROUNDS BATCH_NS CASE [CASE ...]
 *
 * CASE is one of
 *   epoll_wait:N:K   epoll_wait(epfd, events, N, 0), N fds registered, K ready
 *   poll:N:K         poll(pollfds, N, 0)
 *   select:N:K       select(maxfd + 1, &set, NULL, NULL, {0, 0}) on a copy of
 *                    the interest set (select overwrites it, so every caller
 *                    copies), sized at run time so fds >= 1024 work
 *   epoll_add_del:N  epoll_ctl ADD + DEL of one more fd, N registered
 *   epoll_mod:N      one epoll_ctl MOD, EPOLLIN <-> EPOLLIN|EPOLLOUT
 *
 * The fds are laid out as in the Python harness: N+1 socket ends made of
 * socketpairs, both ends used, opened first so they are the lowest fds; fd
 * i is made readable by one byte sent from its peer, and the last K of the
 * N are the ready ones.
 *
 * Each case: calibrate the op count so one batch takes about BATCH_NS, one
 * warm-up batch, then ROUNDS timed batches.  Output: one JSON object per
 * case on stdout, {"case", "n", "ready", "ops", "ns_per_op": [per round]}.
 * Exit status 2 when the kernel does not report the expected ready count.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int *fds;   /* the pool: fds[i] and fds[i ^ 1] are the two ends of a socketpair */
static int nfds_pool;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    perror(what);
    exit(2);
}

static void make_pool(int count)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)count + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    count += count & 1;
    fds = malloc(sizeof(int) * (size_t)count);
    for (int i = 0; i < count; i += 2) {
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds + i) != 0)
            die("socketpair");
    }
    nfds_pool = count;
}

/* Make exactly fds[n-k .. n-1] readable among fds[0 .. n-1]. */
static void set_ready(int n, int k)
{
    char buf[256];
    for (int i = 0; i < nfds_pool; i++) {
        while (recv(fds[i], buf, sizeof buf, 0) > 0) {
        }
    }
    for (int i = n - k; i < n; i++) {
        if (send(fds[i ^ 1], "x", 1, 0) != 1)
            die("send");
    }
}

struct state {
    int n, k, epfd, maxfd;
    struct epoll_event *events;
    struct pollfd *pfds;
    unsigned long *master, *work;
    size_t set_bytes;
    int flip;
};

typedef int (*op_fn)(struct state *);

static int op_epoll_wait(struct state *s) { return epoll_wait(s->epfd, s->events, s->n, 0); }
static int op_poll(struct state *s) { return poll(s->pfds, (nfds_t)s->n, 0); }

static int op_select(struct state *s)
{
    struct timeval tv = {0, 0};
    memcpy(s->work, s->master, s->set_bytes);
    return select(s->maxfd + 1, (fd_set *)s->work, NULL, NULL, &tv);
}

static int op_add_del(struct state *s)
{
    struct epoll_event ev = {.events = EPOLLIN};
    int fd = fds[s->n];
    ev.data.fd = fd;
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) != 0 ||
        epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL) != 0)
        return -1;
    return 0;
}

static int op_mod(struct state *s)
{
    int fd = fds[s->n / 2];
    struct epoll_event ev = {.events = s->flip ? EPOLLIN : (EPOLLIN | EPOLLOUT)};
    ev.data.fd = fd;
    s->flip = !s->flip;
    return epoll_ctl(s->epfd, EPOLL_CTL_MOD, fd, &ev);
}

static uint64_t batch(op_fn op, struct state *s, long ops, int expect)
{
    uint64_t t0 = now_ns();
    for (long i = 0; i < ops; i++) {
        int r = op(s);
        if (r != expect) {
            fprintf(stderr, "unexpected result %d (want %d): %s\n", r, expect, strerror(errno));
            exit(2);
        }
    }
    return now_ns() - t0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s ROUNDS BATCH_NS CASE...\n", argv[0]);
        return 2;
    }
    int rounds = atoi(argv[1]);
    double batch_ns = atof(argv[2]);
    int maxn = 1;
    for (int c = 3; c < argc; c++) {
        int n = 0;
        char *colon = strchr(argv[c], ':');
        if (colon)
            n = atoi(colon + 1);
        if (n + 1 > maxn)
            maxn = n + 1;
    }
    make_pool(maxn);

    for (int c = 3; c < argc; c++) {
        char mode[32];
        int n = 0, k = -1;
        if (sscanf(argv[c], "%31[^:]:%d:%d", mode, &n, &k) < 2 || n < 1 || n >= nfds_pool) {
            fprintf(stderr, "bad case %s\n", argv[c]);
            return 2;
        }
        struct state s = {.n = n, .k = k < 0 ? 0 : k};
        op_fn op;
        int expect = 0;
        set_ready(n, s.k);
        if (!strcmp(mode, "epoll_wait") || !strcmp(mode, "epoll_add_del") ||
            !strcmp(mode, "epoll_mod")) {
            s.epfd = epoll_create1(EPOLL_CLOEXEC);
            if (s.epfd < 0)
                die("epoll_create1");
            for (int i = 0; i < n; i++) {
                struct epoll_event ev = {.events = EPOLLIN, .data.fd = fds[i]};
                if (epoll_ctl(s.epfd, EPOLL_CTL_ADD, fds[i], &ev) != 0)
                    die("epoll_ctl");
            }
            s.events = calloc((size_t)n, sizeof *s.events);
            if (!strcmp(mode, "epoll_wait")) {
                op = op_epoll_wait;
                expect = s.k;
            } else {
                op = !strcmp(mode, "epoll_mod") ? op_mod : op_add_del;
            }
        } else if (!strcmp(mode, "poll")) {
            s.pfds = calloc((size_t)n, sizeof *s.pfds);
            for (int i = 0; i < n; i++)
                s.pfds[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
            op = op_poll;
            expect = s.k;
        } else if (!strcmp(mode, "select")) {
            for (int i = 0; i < n; i++)
                if (fds[i] > s.maxfd)
                    s.maxfd = fds[i];
            size_t bits = 8 * sizeof(unsigned long);
            size_t words = (size_t)s.maxfd / bits + 1;
            s.set_bytes = words * sizeof(unsigned long);
            s.master = calloc(words, sizeof(unsigned long));
            s.work = calloc(words, sizeof(unsigned long));
            for (int i = 0; i < n; i++)
                s.master[(size_t)fds[i] / bits] |= 1ul << ((size_t)fds[i] % bits);
            op = op_select;
            expect = s.k;
        } else {
            fprintf(stderr, "unknown mode %s\n", mode);
            return 2;
        }

        long ops = 2;
        for (;;) {
            uint64_t t = batch(op, &s, ops, expect);
            if ((double)t >= batch_ns || ops >= (1l << 26))
                break;
            double scale = batch_ns / (double)(t ? t : 1);
            long next = (long)((double)ops * scale * 1.1) + 1;
            if (next > ops * 8)
                next = ops * 8;
            if (next < ops * 2)
                next = ops * 2;
            ops = next;
        }
        ops += ops & 1; /* even: MOD alternates, so both masks are timed */
        batch(op, &s, ops, expect); /* warm-up */
        printf("{\"case\": \"%s\", \"n\": %d, \"ready\": %d, \"ops\": %ld, \"ns_per_op\": [",
               mode, n, k, ops);
        for (int r = 0; r < rounds; r++) {
            uint64_t t = batch(op, &s, ops, expect);
            printf("%s%.2f", r ? ", " : "", (double)t / (double)ops);
        }
        printf("]}\n");
        fflush(stdout);
        if (s.epfd > 0)
            close(s.epfd);
        free(s.events);
        free(s.pfds);
        free(s.master);
        free(s.work);
    }
    return 0;
}
