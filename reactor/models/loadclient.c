/*
 * Echo load client of the echo driver (reactor/models/driver.py), which
 * `python -m reactor models` and `python -m benchmarks` share.  Built with
 * the package, without OpenSSL, into reactor._native (_native/build.py
 * defines REACTOR_EXTENSION and NO_TLS), where main() is
 * reactor_loadclient_main(), run in a child Python process by
 * reactor/models/_loadclient.py: once per process, as a program (its state
 * is global).  The benchmarks' TLS case compiles it as a program of its own.
 *
 *   client HOST PORT CONNECTIONS SIZE WARMUP_S DURATION_S [--sync] [--prime] [--tls]
 *          [--http] [--idle N]
 *
 * Opens CONNECTIONS TCP connections (TCP_NODELAY) to HOST:PORT and drives them
 * from one epoll loop.  Every connection does ping-pong: send SIZE bytes, wait
 * until SIZE bytes have come back, compare them with what was sent, repeat.
 * The first WARMUP_S seconds are not counted; then counters and the latency
 * histogram are reset and the next DURATION_S seconds are measured.
 *
 * --sync   at the start of the measured window, print "measuring" on stdout and
 *          wait for one byte on stdin, so the harness can read the server's CPU
 *          times (/proc) at that instant; the window starts after the byte.
 *          After the report, wait (idle, connections open) until stdin closes.
 * --prime  first, one connection makes 10 verified round trips and closes
 *          (asyncio's first large reads otherwise keep glibc mapping and
 *          unmapping a 256 KiB buffer per read, CPython issue 85451).
 * --idle N first, N more connections that stay open and never send (libevent's
 *          "1 active + N idle" benchmark), opened before the active ones.
 * --http   HTTP/1.1 keep-alive instead of echo: every message is the request
 *          "GET / HTTP/1.1" (SIZE is ignored) and completes when the whole
 *          response is in; the first response (of --prime, which --http
 *          needs) fixes the response's length, which every later response
 *          must have (a hello-world server's does).
 * --tls    TLS over every connection (OpenSSL; the handshake is made at connect
 *          time, before the load; the server's certificate is not verified:
 *          loopback benchmark, self-signed certificate).
 *
 * Output: one JSON object on stdout; "served" counts the active connections
 * that completed at least one round trip in the measured window (a server
 * that serves one client at a time serves 1 of CONNECTIONS).  Exit status 0 on a completed run
 * (errors are counted in the JSON), 2 on a setup failure.
 *
 * Latency: every round trip (send of the first byte -> last byte received) is
 * recorded in a log-linear histogram (64 sub-buckets per power of two, so a
 * reported percentile is within ~1.6% of the true value).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#ifdef REACTOR_EXTENSION
#define main reactor_loadclient_main
int reactor_loadclient_main(int argc, char **argv);
#endif
#ifndef NO_TLS
#include <openssl/err.h>
#include <openssl/ssl.h>
#else
typedef struct ssl_st SSL;
#endif

#define SUB_BITS 6
#define SUB (1 << SUB_BITS)
#define NBUCKETS ((64 - SUB_BITS + 1) * SUB)
#define PATTERN_VARIANTS 251 /* prime: offsets into the pattern buffer */

struct conn {
    int fd;
    int idx;
    int alive;
    int want_out;      /* EPOLLOUT currently requested */
    SSL *ssl;          /* NULL without --tls */
    size_t sent;       /* bytes of the current message sent */
    size_t got;        /* bytes of the current message received */
    uint64_t seq;      /* message number on this connection */
    uint64_t t_start;  /* ns, when the current message was started */
    uint64_t done;     /* messages completed in the measured window */
    const unsigned char *msg; /* expected content of the current message */
};

static uint64_t hist[NBUCKETS];
static unsigned char *pattern;
static unsigned char *rbuf;
static size_t msg_size;
static int epfd;
static int n_alive;
#ifndef NO_TLS
static SSL_CTX *tls_ctx;
#endif

static uint64_t n_msgs, n_bytes, n_mismatch, n_closed, n_overrun, n_ioerr;
static uint64_t lat_sum, lat_max;
static uint64_t t_window; /* messages sent before (held up by --sync) are not counted */
static int http;          /* --http */
static size_t resp_size;  /* --http: the length of every response */
static const char request[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int bucket_of(uint64_t v)
{
    if (v < SUB)
        return (int)v;
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - SUB_BITS;
    return (shift + 1) * SUB + (int)((v >> shift) & (SUB - 1));
}

/* midpoint of a bucket, in ns */
static double bucket_value(int b)
{
    if (b < SUB)
        return (double)b;
    int shift = b / SUB - 1;
    uint64_t sub = (uint64_t)(b % SUB);
    double lo = (double)((SUB + sub) << shift);
    double width = (double)(1ull << shift);
    return lo + width / 2.0;
}

static double percentile(double q)
{
    uint64_t total = 0;
    for (int i = 0; i < NBUCKETS; i++)
        total += hist[i];
    if (total == 0)
        return 0.0;
    uint64_t rank = (uint64_t)(q * (double)total);
    if (rank >= total)
        rank = total - 1;
    uint64_t seen = 0;
    for (int i = 0; i < NBUCKETS; i++) {
        seen += hist[i];
        if (seen > rank)
            return bucket_value(i);
    }
    return bucket_value(NBUCKETS - 1);
}

/* Plain or TLS, one convention: > 0 bytes moved; 0 the peer closed (recv);
   -1 with errno EAGAIN when the socket is not ready, another errno on error. */
#ifndef NO_TLS
static ssize_t tls_result(SSL *ssl, int n)
{
    switch (SSL_get_error(ssl, n)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN: /* close_notify */
        return 0;
    case SSL_ERROR_SYSCALL:
        if (errno == 0) /* EOF without close_notify */
            return 0;
        return -1;
    default:
        errno = EPROTO;
        return -1;
    }
}
#endif

static ssize_t io_send(struct conn *c, const void *buf, size_t len)
{
#ifndef NO_TLS
    if (c->ssl) {
        int n = SSL_write(c->ssl, buf, (int)len);
        return n > 0 ? n : tls_result(c->ssl, n);
    }
#endif
    return send(c->fd, buf, len, MSG_NOSIGNAL);
}

static ssize_t io_recv(struct conn *c, void *buf, size_t len)
{
#ifndef NO_TLS
    if (c->ssl) {
        int n = SSL_read(c->ssl, buf, (int)len);
        return n > 0 ? n : tls_result(c->ssl, n);
    }
#endif
    return recv(c->fd, buf, len, 0);
}

static int tls_pending(struct conn *c)
{
#ifndef NO_TLS
    return c->ssl && SSL_pending(c->ssl) > 0;
#else
    (void)c;
    return 0;
#endif
}

static void set_events(struct conn *c, int want_out)
{
    if (c->want_out == want_out)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->want_out = want_out;
}

static void close_conn(struct conn *c)
{
#ifndef NO_TLS
    if (c->ssl)
        SSL_free(c->ssl);
#endif
    c->ssl = NULL;
    close(c->fd);
}

static void kill_conn(struct conn *c)
{
    if (!c->alive)
        return;
    c->alive = 0;
    n_alive--;
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close_conn(c);
}

/* Write as much of the current message as the socket takes. */
static void do_send(struct conn *c)
{
    while (c->sent < msg_size) {
        ssize_t n = io_send(c, c->msg + c->sent, msg_size - c->sent);
        if (n > 0) {
            c->sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_events(c, 1);
            return;
        }
        n_ioerr++;
        kill_conn(c);
        return;
    }
    set_events(c, 0);
}

static void start_msg(struct conn *c)
{
    c->sent = 0;
    c->got = 0;
    c->seq++;
    c->msg = http ? (const unsigned char *)request
                  : pattern + (size_t)((c->seq * 7 + (uint64_t)c->idx * 13) % PATTERN_VARIANTS);
    c->t_start = now_ns();
    do_send(c);
}

/* One recv() per readiness event: when a message completes the next one is
   sent and its echo cannot be there yet, and a short read means the socket
   is drained (level-triggered epoll reports the rest), so looping until
   EAGAIN would only add a failed syscall per message to the client.  TLS
   is the exception: bytes OpenSSL has already decrypted are invisible to
   epoll, so they are read at once. */
static void do_recv(struct conn *c)
{
    for (int tries = 0; tries < 2 || tls_pending(c); tries++) {
        /* ask for more than outstanding so that a server that echoes too
           much is noticed */
        size_t expect = http ? resp_size : msg_size;
        size_t room = expect - c->got + 1;
        ssize_t n = io_recv(c, rbuf, room);
        if (n > 0) {
            size_t k = (size_t)n;
            if (c->got + k > expect) {
                n_overrun++;
                kill_conn(c);
                return;
            }
            if (!http && memcmp(rbuf, c->msg + c->got, k) != 0)
                n_mismatch++;
            c->got += k;
            if (c->got == expect) {
                uint64_t lat = now_ns() - c->t_start;
                if (c->t_start >= t_window) { /* sent in the window: counted */
                    hist[bucket_of(lat)]++;
                    lat_sum += lat;
                    if (lat > lat_max)
                        lat_max = lat;
                    n_msgs++;
                    n_bytes += expect;
                    c->done++;
                }
                if (c->sent != msg_size) { /* echoed bytes we never sent */
                    n_overrun++;
                    kill_conn(c);
                    return;
                }
                start_msg(c);
            }
            if (!tls_pending(c))
                return;
            continue;
        }
        if (n == 0) {
            n_closed++;
            kill_conn(c);
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        n_ioerr++;
        kill_conn(c);
        return;
    }
}

static void reset_counters(struct conn *conns, int nconn)
{
    memset(hist, 0, sizeof hist);
    n_msgs = n_bytes = n_mismatch = n_closed = n_overrun = n_ioerr = 0;
    lat_sum = lat_max = 0;
    for (int i = 0; i < nconn; i++)
        conns[i].done = 0;
}

/* A blocking connection (loopback: the kernel completes the handshake even
   before the server accepts), with the TLS handshake made here when asked. */
static int open_conn(struct conn *c, const struct sockaddr_in *sa, int tls)
{
    c->fd = -1;
    for (int attempt = 0; attempt < 50 && c->fd < 0; attempt++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -1;
        if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) == 0) {
            c->fd = fd;
            break;
        }
        int e = errno;
        close(fd);
        if (e != ECONNREFUSED && e != EAGAIN && e != ETIMEDOUT && e != EINTR) {
            errno = e;
            return -1;
        }
        usleep(20000);
    }
    if (c->fd < 0)
        return -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
#ifndef NO_TLS
    if (tls) {
        c->ssl = SSL_new(tls_ctx);
        SSL_set_fd(c->ssl, c->fd);
        if (SSL_connect(c->ssl) != 1) {
            ERR_print_errors_fp(stderr);
            errno = EPROTO;
            return -1;
        }
    }
#else
    if (tls) {
        errno = ENOTSUP;
        return -1;
    }
#endif
    return 0;
}

/* --prime --http: ten requests on one connection; the first response's
   length (headers, then Content-Length bytes) is every response's. */
static int prime_http(struct conn *c)
{
    char *buf = (char *)rbuf;
    for (int round = 0; round < 10; round++) {
        size_t got = 0, want = 0;
        for (size_t off = 0; off < msg_size;) {
            ssize_t n = io_send(c, request + off, msg_size - off);
            if (n <= 0)
                return -1;
            off += (size_t)n;
        }
        while (want == 0 || got < want) {
            ssize_t n = io_recv(c, buf + got, 65536 - 1 - got);
            if (n <= 0)
                return -1;
            got += (size_t)n;
            buf[got] = 0;
            char *end = strstr(buf, "\r\n\r\n");
            char *length = strcasestr(buf, "\r\ncontent-length:");
            if (want == 0 && end && length && length < end)
                want = (size_t)(end + 4 - buf) + (size_t)atol(length + 17);
            else if (want == 0 && got >= 65536 - 1)
                return -1;
        }
        if (resp_size == 0)
            resp_size = want;
        if (got != resp_size || strncmp(buf, "HTTP/1.1 200", 12) != 0)
            return -1;
    }
    return 0;
}

/* --prime: one connection, ten verified round trips, blocking. */
static int prime(const struct sockaddr_in *sa, int tls)
{
    struct conn c = {0};
    if (open_conn(&c, sa, tls) != 0)
        return -1;
    if (http) {
        int rc = prime_http(&c);
        close_conn(&c);
        return rc;
    }
    int ok = 1;
    for (int round = 0; round < 10 && ok; round++) {
        for (size_t off = 0; ok && off < msg_size;) {
            ssize_t n = io_send(&c, pattern + round + off, msg_size - off);
            ok = n > 0;
            off += ok ? (size_t)n : 0;
        }
        for (size_t off = 0; ok && off < msg_size;) {
            ssize_t n = io_recv(&c, rbuf + off, msg_size - off);
            ok = n > 0;
            off += ok ? (size_t)n : 0;
        }
        ok = ok && memcmp(rbuf, pattern + round, msg_size) == 0;
    }
    close_conn(&c);
    return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: %s HOST PORT CONNECTIONS SIZE WARMUP_S DURATION_S "
                "[--sync] [--prime] [--tls] [--http] [--idle N]\n", argv[0]);
        return 2;
    }
    const char *host = argv[1];
    int port = atoi(argv[2]);
    int nconn = atoi(argv[3]);
    msg_size = (size_t)atol(argv[4]);
    double warmup = atof(argv[5]);
    double duration = atof(argv[6]);
    int sync = 0, do_prime = 0, tls = 0, nidle = 0;
    for (int i = 7; i < argc; i++) {
        if (!strcmp(argv[i], "--idle") && i + 1 < argc)
            nidle = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--sync"))
            sync = 1;
        else if (!strcmp(argv[i], "--prime"))
            do_prime = 1;
        else if (!strcmp(argv[i], "--tls"))
            tls = 1;
        else if (!strcmp(argv[i], "--http"))
            http = 1;
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (nconn <= 0 || nidle < 0 || msg_size == 0 || duration <= 0 || warmup < 0 ||
        (http && !do_prime)) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    if (http)
        msg_size = sizeof request - 1;
    signal(SIGPIPE, SIG_IGN);
#ifndef NO_TLS
    if (tls) {
        tls_ctx = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_mode(tls_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    }
#endif

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)nconn + (rlim_t)nidle + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    pattern = malloc(msg_size + PATTERN_VARIANTS);
    rbuf = malloc(msg_size + 1 > 65536 ? msg_size + 1 : 65536);
    struct conn *conns = calloc((size_t)nconn, sizeof *conns);
    struct conn *idle = calloc((size_t)nidle + 1, sizeof *idle);
    if (!pattern || !rbuf || !conns || !idle) {
        fprintf(stderr, "out of memory\n");
        return 2;
    }
    uint32_t x = 2463534242u; /* xorshift: bytes that differ from message to message */
    for (size_t i = 0; i < msg_size + PATTERN_VARIANTS; i++) {
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        pattern[i] = (unsigned char)x;
    }

    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "bad host %s (an IPv4 address is expected)\n", host);
        return 2;
    }
    if (do_prime && prime(&sa, tls) != 0) {
        fprintf(stderr, "priming %s:%d failed: %s\n", host, port, strerror(errno));
        return 2;
    }
    for (int i = 0; i < nidle; i++) { /* open until exit, never used */
        if (open_conn(&idle[i], &sa, tls) != 0) {
            fprintf(stderr, "connect %s:%d (idle connection %d): %s\n", host, port, i,
                    strerror(errno));
            return 2;
        }
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) {
        perror("epoll_create1");
        return 2;
    }
    for (int i = 0; i < nconn; i++) {
        conns[i] = (struct conn){.idx = i, .alive = 1};
        if (open_conn(&conns[i], &sa, tls) != 0) {
            fprintf(stderr, "connect %s:%d: %s\n", host, port, strerror(errno));
            return 2;
        }
        fcntl(conns[i].fd, F_SETFL, fcntl(conns[i].fd, F_GETFL) | O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &conns[i]};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, conns[i].fd, &ev) != 0) {
            perror("epoll_ctl");
            return 2;
        }
    }

    uint64_t t_begin = now_ns();
    uint64_t t_measure = t_begin + (uint64_t)(warmup * 1e9);
    uint64_t t_end = t_measure + (uint64_t)(duration * 1e9);
    uint64_t t_m0 = t_begin, t_m1 = 0;
    int measuring = 0;

    n_alive = nconn;
    for (int i = 0; i < nconn; i++)
        start_msg(&conns[i]);

    int maxev = nconn < 1024 ? nconn : 1024;
    struct epoll_event *evs = calloc((size_t)maxev, sizeof *evs);
    uint64_t epoll_calls = 0;
    for (;;) {
        uint64_t t = now_ns();
        if (!measuring && t >= t_measure) {
            if (sync) { /* the harness reads the server's CPU, then says go */
                char go;
                printf("measuring\n");
                fflush(stdout);
                if (read(0, &go, 1) != 1) {
                    fprintf(stderr, "--sync: no go byte on stdin\n");
                    return 2;
                }
            }
            reset_counters(conns, nconn);
            epoll_calls = 0;
            t_m0 = t_window = now_ns();
            t_end = t_m0 + (uint64_t)(duration * 1e9);
            measuring = 1;
        }
        if ((measuring && t >= t_end) || n_alive == 0) {
            /* done, or every connection failed: report what we have */
            t_m1 = now_ns();
            break;
        }
        uint64_t until = measuring ? t_end : t_measure;
        int timeout_ms = (int)((until - t) / 1000000ull) + 1;
        if (timeout_ms > 100)
            timeout_ms = 100;
        int n = epoll_wait(epfd, evs, maxev, timeout_ms);
        epoll_calls++;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("epoll_wait");
            return 2;
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (!c->alive)
                continue;
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                do_recv(c);
            if (c->alive && (evs[i].events & EPOLLOUT)) {
                do_send(c);
                if (c->alive && c->ssl) /* a TLS read may have waited for EPOLLOUT */
                    do_recv(c);
            }
        }
    }

    uint64_t per_min = UINT64_MAX, per_max = 0;
    int served = 0;
    for (int i = 0; i < nconn; i++) {
        served += conns[i].done > 0;
        if (conns[i].done < per_min) per_min = conns[i].done;
        if (conns[i].done > per_max) per_max = conns[i].done;
    }
    double secs = measuring ? (double)(t_m1 - t_m0) / 1e9 : 0.0;
    printf("{\"connections\": %d, \"size\": %zu, \"tls\": %s, \"warmup_s\": %.3f, \"duration_s\": %.6f, "
           "\"messages\": %llu, \"bytes\": %llu, \"msgs_per_s\": %.1f, "
           "\"errors\": {\"total\": %llu, \"mismatch\": %llu, \"closed\": %llu, \"overrun\": %llu, \"io\": %llu}, "
           "\"alive_connections\": %d, \"per_conn_min\": %llu, \"per_conn_max\": %llu, "
           "\"served\": %d, \"idle_connections\": %d, ",
           nconn, msg_size, tls ? "true" : "false", warmup, secs,
           (unsigned long long)n_msgs, (unsigned long long)n_bytes, secs > 0 ? (double)n_msgs / secs : 0.0,
           (unsigned long long)(n_mismatch + n_closed + n_overrun + n_ioerr),
           (unsigned long long)n_mismatch, (unsigned long long)n_closed,
           (unsigned long long)n_overrun, (unsigned long long)n_ioerr,
           n_alive, (unsigned long long)per_min, (unsigned long long)per_max, served, nidle);
    printf("\"latency_us\": {\"p50\": %.2f, \"p90\": %.2f, \"p99\": %.2f, \"p999\": %.2f, \"mean\": %.2f, \"max\": %.2f}, ",
           percentile(0.50) / 1e3, percentile(0.90) / 1e3, percentile(0.99) / 1e3, percentile(0.999) / 1e3,
           n_msgs ? (double)lat_sum / (double)n_msgs / 1e3 : 0.0, (double)lat_max / 1e3);
    printf("\"epoll_waits\": %llu}\n", (unsigned long long)epoll_calls);
    fflush(stdout);
    if (sync) { /* idle, connections open, until the harness has read the CPU times */
        char done;
        if (read(0, &done, 1) < 0)
            perror("--sync: stdin");
    }
    return 0;
}
