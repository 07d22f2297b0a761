/*
 * Minimal epoll echo server: the floor for benchmarks/driver.py.
 *
 *   server HOST PORT       (PORT 0: any free port, the one chosen is logged)
 *
 * Level-triggered epoll, one recv() of up to 256 KiB per readiness event
 * (asyncio's read size: with 64 KiB a 100 KiB message took two reads and
 * two sends, and asyncio beat the "floor"), echoed back with send(); bytes
 * the socket does not take are kept and flushed on EPOLLOUT (reading pauses
 * meanwhile).  Logs "listening on HOST:PORT" to
 * stderr when ready; SIGTERM/SIGINT stop it.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUFSZ (256 * 1024)

struct conn {
    int fd;
    size_t off, len; /* pending output in buf[off, len) */
    char buf[BUFSZ];
};

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static void drop(int epfd, struct conn *c)
{
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
}

/* 0: all flushed, 1: more pending, -1: error */
static int flush(struct conn *c)
{
    while (c->off < c->len) {
        ssize_t n = send(c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);
        if (n > 0) {
            c->off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 1;
        } else {
            return -1;
        }
    }
    c->off = c->len = 0;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s HOST PORT\n", argv[0]);
        return 2;
    }
    struct sigaction sa_sig = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa_sig, NULL);
    sigaction(SIGINT, &sa_sig, NULL);
    signal(SIGPIPE, SIG_IGN);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1 ||
        bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(lfd, 1024) != 0) {
        perror("bind/listen");
        return 1;
    }
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
    socklen_t salen = sizeof sa;
    getsockname(lfd, (struct sockaddr *)&sa, &salen);
    fprintf(stderr, "c-epoll echo: listening on %s:%d\n", argv[1], ntohs(sa.sin_port));

    struct epoll_event evs[256];
    while (!stop) {
        int n = epoll_wait(epfd, evs, 256, 1000);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c == NULL) { /* listening socket */
                for (;;) {
                    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0)
                        break;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct conn *nc = malloc(sizeof *nc);
                    nc->fd = fd;
                    nc->off = nc->len = 0;
                    struct epoll_event cev = {.events = EPOLLIN, .data.ptr = nc};
                    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &cev);
                }
                continue;
            }
            if (c->len) { /* EPOLLOUT with pending output */
                int r = flush(c);
                if (r < 0) {
                    drop(epfd, c);
                } else if (r == 0) {
                    struct epoll_event cev = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &cev);
                }
                continue;
            }
            ssize_t got = recv(c->fd, c->buf, BUFSZ, 0);
            if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
                drop(epfd, c);
                continue;
            }
            if (got < 0)
                continue;
            c->off = 0;
            c->len = (size_t)got;
            int r = flush(c);
            if (r < 0) {
                drop(epfd, c);
            } else if (r == 1) {
                struct epoll_event cev = {.events = EPOLLOUT, .data.ptr = c};
                epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &cev);
            }
        }
    }
    return 0;
}
