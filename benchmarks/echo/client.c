/*
 * Echo load client for benchmarks/echo_bench.py.
 *
 *   client HOST PORT CONNECTIONS SIZE WARMUP_S DURATION_S [SERVER_PID]
 *
 * Opens CONNECTIONS TCP connections (TCP_NODELAY) to HOST:PORT and drives them
 * from one epoll loop.  Every connection does ping-pong: send SIZE bytes, wait
 * until SIZE bytes have come back, compare them with what was sent, repeat.
 * The first WARMUP_S seconds are not counted; then counters and the latency
 * histogram are reset and the next DURATION_S seconds are measured.
 *
 * When SERVER_PID is given the client reads the server's CPU times
 * (/proc/PID/stat utime+stime, and the precise total from
 * /proc/PID/task/ * /schedstat) exactly at the start and at the end of the
 * measured window, so the harness gets the server CPU used during the window
 * only.
 *
 * Output: one JSON object on stdout.  Exit status 0 on a completed run
 * (errors are counted in the JSON), 2 on a setup failure.
 *
 * Latency: every round trip (send of the first byte -> last byte received) is
 * recorded in a log-linear histogram (64 sub-buckets per power of two, so a
 * reported percentile is within ~1.6% of the true value).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
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
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define SUB_BITS 6
#define SUB (1 << SUB_BITS)
#define NBUCKETS ((64 - SUB_BITS + 1) * SUB)
#define PATTERN_VARIANTS 251 /* prime: offsets into the pattern buffer */

struct conn {
    int fd;
    int idx;
    int alive;
    int want_out;      /* EPOLLOUT currently requested */
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

static uint64_t n_msgs, n_bytes, n_mismatch, n_closed, n_overrun, n_ioerr;
static uint64_t lat_sum, lat_max;

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

struct cpu { long long utime, stime; long long sched_ns; int ok; };

static void read_server_cpu(int pid, struct cpu *c)
{
    char path[64], buf[4096];
    c->ok = 0;
    c->utime = c->stime = c->sched_ns = 0;
    if (pid <= 0)
        return;
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p)
        return;
    p += 2; /* field 3 (state) */
    /* utime is field 14, stime field 15 */
    int field = 3;
    char *save = NULL;
    for (char *tok = strtok_r(p, " ", &save); tok; tok = strtok_r(NULL, " ", &save), field++) {
        if (field == 14)
            c->utime = atoll(tok);
        else if (field == 15) {
            c->stime = atoll(tok);
            break;
        }
    }
    /* precise on-CPU time, summed over the threads */
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    DIR *d = opendir(path);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d))) {
            if (de->d_name[0] == '.')
                continue;
            char sp[320];
            snprintf(sp, sizeof sp, "/proc/%d/task/%s/schedstat", pid, de->d_name);
            int sfd = open(sp, O_RDONLY);
            if (sfd < 0)
                continue;
            ssize_t m = read(sfd, buf, sizeof buf - 1);
            close(sfd);
            if (m > 0) {
                buf[m] = 0;
                c->sched_ns += atoll(buf);
            }
        }
        closedir(d);
    }
    c->ok = 1;
}

/* Per-CPU times from /proc/stat (user nice system idle iowait irq softirq
   steal, in USER_HZ ticks), to show how busy each core was in the window. */
#define MAXCPU 64
#define NCPUF 8
struct cpustat { int n; long long v[MAXCPU][NCPUF]; };

static void read_cpustat(struct cpustat *cs)
{
    cs->n = 0;
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        int cpu;
        long long a[NCPUF] = {0};
        if (strncmp(line, "cpu", 3) != 0 || line[3] < '0' || line[3] > '9')
            continue;
        if (sscanf(line + 3, "%d %lld %lld %lld %lld %lld %lld %lld %lld", &cpu,
                   &a[0], &a[1], &a[2], &a[3], &a[4], &a[5], &a[6], &a[7]) < 5)
            continue;
        if (cpu < 0 || cpu >= MAXCPU)
            continue;
        memcpy(cs->v[cpu], a, sizeof a);
        if (cpu + 1 > cs->n)
            cs->n = cpu + 1;
    }
    fclose(f);
}

static void set_events(struct conn *c, int want_out)
{
    if (c->want_out == want_out)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->want_out = want_out;
}

static void kill_conn(struct conn *c)
{
    if (!c->alive)
        return;
    c->alive = 0;
    n_alive--;
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
}

/* Write as much of the current message as the socket takes. */
static void do_send(struct conn *c)
{
    while (c->sent < msg_size) {
        ssize_t n = send(c->fd, c->msg + c->sent, msg_size - c->sent, MSG_NOSIGNAL);
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
    c->msg = pattern + (size_t)((c->seq * 7 + (uint64_t)c->idx * 13) % PATTERN_VARIANTS);
    c->t_start = now_ns();
    do_send(c);
}

/* One recv() per readiness event: when a message completes the next one is
   sent and its echo cannot be there yet, and a short read means the socket
   is drained (level-triggered epoll reports the rest), so looping until
   EAGAIN would only add a failed syscall per message to the client. */
static void do_recv(struct conn *c)
{
    for (int tries = 0; tries < 2; tries++) {
        /* ask for more than outstanding so that a server that echoes too
           much is noticed */
        size_t room = msg_size - c->got + 1;
        ssize_t n = recv(c->fd, rbuf, room, 0);
        if (n > 0) {
            size_t k = (size_t)n;
            if (c->got + k > msg_size) {
                n_overrun++;
                kill_conn(c);
                return;
            }
            if (memcmp(rbuf, c->msg + c->got, k) != 0)
                n_mismatch++;
            c->got += k;
            if (c->got == msg_size) {
                uint64_t t = now_ns();
                uint64_t lat = t - c->t_start;
                hist[bucket_of(lat)]++;
                lat_sum += lat;
                if (lat > lat_max)
                    lat_max = lat;
                n_msgs++;
                n_bytes += msg_size;
                c->done++;
                if (c->sent != msg_size) { /* echoed bytes we never sent */
                    n_overrun++;
                    kill_conn(c);
                    return;
                }
                start_msg(c);
            }
            return;
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

static double tv_s(struct timeval tv) { return (double)tv.tv_sec + (double)tv.tv_usec / 1e6; }

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: %s HOST PORT CONNECTIONS SIZE WARMUP_S DURATION_S [SERVER_PID]\n", argv[0]);
        return 2;
    }
    const char *host = argv[1];
    int port = atoi(argv[2]);
    int nconn = atoi(argv[3]);
    msg_size = (size_t)atol(argv[4]);
    double warmup = atof(argv[5]);
    double duration = atof(argv[6]);
    int server_pid = argc > 7 ? atoi(argv[7]) : 0;
    if (nconn <= 0 || msg_size == 0 || duration <= 0 || warmup < 0) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)nconn + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    pattern = malloc(msg_size + PATTERN_VARIANTS);
    rbuf = malloc(msg_size + 1);
    struct conn *conns = calloc((size_t)nconn, sizeof *conns);
    if (!pattern || !rbuf || !conns) {
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
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) {
        perror("epoll_create1");
        return 2;
    }
    /* Blocking connects (loopback: the kernel completes the handshake even
       before the server accepts), then non-blocking for the run. */
    for (int i = 0; i < nconn; i++) {
        int fd = -1;
        for (int attempt = 0; attempt < 50; attempt++) {
            fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (fd < 0) {
                perror("socket");
                return 2;
            }
            if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
                break;
            int e = errno;
            close(fd);
            fd = -1;
            if (e != ECONNREFUSED && e != EAGAIN && e != ETIMEDOUT && e != EINTR) {
                fprintf(stderr, "connect %s:%d: %s\n", host, port, strerror(e));
                return 2;
            }
            usleep(20000);
        }
        if (fd < 0) {
            fprintf(stderr, "connect %s:%d: gave up after retries\n", host, port);
            return 2;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        conns[i] = (struct conn){.fd = fd, .idx = i, .alive = 1};
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &conns[i]};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            perror("epoll_ctl");
            return 2;
        }
    }

    struct cpu cpu0 = {0}, cpu1 = {0};
    struct rusage ru0, ru1;
    static struct cpustat cs0, cs1;
    uint64_t t_begin = now_ns();
    uint64_t t_measure = t_begin + (uint64_t)(warmup * 1e9);
    uint64_t t_end = t_measure + (uint64_t)(duration * 1e9);
    uint64_t t_m0 = 0, t_m1 = 0;
    int measuring = 0;
    if (warmup == 0) {
        measuring = 1;
        read_server_cpu(server_pid, &cpu0);
        getrusage(RUSAGE_SELF, &ru0);
        read_cpustat(&cs0);
        t_m0 = now_ns();
    }

    n_alive = nconn;
    for (int i = 0; i < nconn; i++)
        start_msg(&conns[i]);

    int maxev = nconn < 1024 ? nconn : 1024;
    struct epoll_event *evs = calloc((size_t)maxev, sizeof *evs);
    uint64_t epoll_calls = 0;
    for (;;) {
        uint64_t t = now_ns();
        if (!measuring && t >= t_measure) {
            read_server_cpu(server_pid, &cpu0);
            getrusage(RUSAGE_SELF, &ru0);
            read_cpustat(&cs0);
            reset_counters(conns, nconn);
            epoll_calls = 0;
            t_m0 = now_ns();
            measuring = 1;
        }
        if (measuring && t >= t_end) {
            t_m1 = now_ns();
            read_server_cpu(server_pid, &cpu1);
            getrusage(RUSAGE_SELF, &ru1);
            read_cpustat(&cs1);
            break;
        }
        if (n_alive == 0) {
            /* every connection failed: stop now, report what we have */
            t_m1 = now_ns();
            if (!measuring) {
                read_server_cpu(server_pid, &cpu0);
                getrusage(RUSAGE_SELF, &ru0);
                read_cpustat(&cs0);
                t_m0 = t_m1;
            }
            read_server_cpu(server_pid, &cpu1);
            getrusage(RUSAGE_SELF, &ru1);
            read_cpustat(&cs1);
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
            if (c->alive && (evs[i].events & EPOLLOUT))
                do_send(c);
        }
    }

    uint64_t per_min = UINT64_MAX, per_max = 0;
    for (int i = 0; i < nconn; i++) {
        if (conns[i].done < per_min) per_min = conns[i].done;
        if (conns[i].done > per_max) per_max = conns[i].done;
        if (conns[i].alive)
            close(conns[i].fd);
    }
    double secs = (double)(t_m1 - t_m0) / 1e9;
    long tck = sysconf(_SC_CLK_TCK);
    printf("{\"connections\": %d, \"size\": %zu, \"warmup_s\": %.3f, \"duration_s\": %.6f, "
           "\"messages\": %llu, \"bytes\": %llu, \"msgs_per_s\": %.1f, "
           "\"errors\": {\"total\": %llu, \"mismatch\": %llu, \"closed\": %llu, \"overrun\": %llu, \"io\": %llu}, "
           "\"alive_connections\": %d, \"per_conn_min\": %llu, \"per_conn_max\": %llu, ",
           nconn, msg_size, warmup, secs,
           (unsigned long long)n_msgs, (unsigned long long)n_bytes, secs > 0 ? (double)n_msgs / secs : 0.0,
           (unsigned long long)(n_mismatch + n_closed + n_overrun + n_ioerr),
           (unsigned long long)n_mismatch, (unsigned long long)n_closed,
           (unsigned long long)n_overrun, (unsigned long long)n_ioerr,
           n_alive, (unsigned long long)per_min, (unsigned long long)per_max);
    printf("\"latency_us\": {\"p50\": %.2f, \"p90\": %.2f, \"p99\": %.2f, \"p999\": %.2f, \"mean\": %.2f, \"max\": %.2f}, ",
           percentile(0.50) / 1e3, percentile(0.90) / 1e3, percentile(0.99) / 1e3, percentile(0.999) / 1e3,
           n_msgs ? (double)lat_sum / (double)n_msgs / 1e3 : 0.0, (double)lat_max / 1e3);
    printf("\"server_cpu\": {\"ok\": %s, \"clk_tck\": %ld, \"utime_ticks\": %lld, \"stime_ticks\": %lld, \"sched_ns\": %lld}, ",
           (cpu0.ok && cpu1.ok) ? "true" : "false", tck,
           cpu1.utime - cpu0.utime, cpu1.stime - cpu0.stime, cpu1.sched_ns - cpu0.sched_ns);
    printf("\"cpu_ticks\": {\"fields\": [\"user\", \"nice\", \"system\", \"idle\", \"iowait\", \"irq\", \"softirq\", \"steal\"]");
    for (int i = 0; i < cs1.n && i < cs0.n; i++) {
        printf(", \"cpu%d\": [", i);
        for (int j = 0; j < NCPUF; j++)
            printf("%s%lld", j ? ", " : "", cs1.v[i][j] - cs0.v[i][j]);
        printf("]");
    }
    printf("}, ");
    printf("\"client_cpu\": {\"user_s\": %.6f, \"sys_s\": %.6f}, \"epoll_waits\": %llu}\n",
           tv_s(ru1.ru_utime) - tv_s(ru0.ru_utime), tv_s(ru1.ru_stime) - tv_s(ru0.ru_stime),
           (unsigned long long)epoll_calls);
    fflush(stdout);
    return 0;
}
