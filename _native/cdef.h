/* What Python sees of reactor._native.  Every constant and struct layout is
 * `...`: the compiler fills them in from the system headers (struct
 * epoll_event is packed to 12 bytes on x86-64; a hand-written layout would
 * silently get 16). */

struct epoll_event { uint32_t events; ...; };
struct pollfd { int fd; short events; short revents; };

#define EPOLLIN ...
#define EPOLLOUT ...
#define EPOLLPRI ...
#define EPOLLERR ...
#define EPOLLHUP ...
#define EPOLLRDHUP ...
#define EPOLLET ...
#define EPOLLONESHOT ...
#define EPOLLEXCLUSIVE ...
#define EPOLLWAKEUP ...
#define EPOLL_CTL_ADD ...
#define EPOLL_CTL_MOD ...
#define EPOLL_CTL_DEL ...

#define POLLIN ...
#define POLLOUT ...
#define POLLPRI ...
#define POLLERR ...
#define POLLHUP ...
#define POLLNVAL ...

#define EFD_CLOEXEC ...
#define EFD_NONBLOCK ...
#define EFD_SEMAPHORE ...

#define EINTR ...
#define EBADF ...
#define ENOENT ...

/* 1 when the headers offer epoll_pwait2; the kernel may still say ENOSYS,
 * which reactor_pwait2_available() reports after the first timed wait. */
#define HAS_EPOLL_PWAIT2 ...
#define REACTOR_NFDBITS ...

int reactor_pwait2_available(void);

/* Returned by the waits (below any -errno): see helpers.c. */
#define REACTOR_EGROW ...
#define REACTOR_ESTALE ...
#define REACTOR_EBUSY ...
#define REACTOR_ONE ...

int reactor_epoll_create(void);
struct reactor_stamps {
    int len;
    uint32_t *stamp;
};
struct reactor_epoll_shared {
    int lock;
    struct reactor_stamps *stamps;
    int want;
    unsigned long long stale;
};
struct reactor_epoll {
    int epfd;
    int capacity;
    struct epoll_event *events;
    int *ready_fds;
    uint32_t *ready;
    int64_t *codes;
    int64_t *lens;
    uint32_t read_bits, write_bits;
    struct reactor_epoll_shared *shared;
    int stale_fd;
    int stale_streak;
    unsigned long owner;
    long long deadline_ns;
};
int reactor_epoll_set_stamps(struct reactor_epoll_shared *sh, struct reactor_stamps *next);
int reactor_epoll_ctl(struct reactor_epoll *ep, int op, int fd, uint32_t events,
                      uint32_t interest);
long long reactor_epoll_wait(struct reactor_epoll *ep, long long timeout_ns);
#define REACTOR_AUTOREAD ...
#define REACTOR_NOT_READ ...
struct reactor_reads {
    char *buf;
    long long size;
    long long chunk;
    long long first;
};
long long reactor_epoll_wait_read(struct reactor_epoll *ep, long long timeout_ns,
                                  struct reactor_reads *rx);

struct reactor_pollfds {
    int lock;
    int capacity;
    int nfds;
    struct pollfd *fds;
};
struct reactor_poll {
    struct reactor_pollfds *list;
    int capacity;
    struct pollfd *work;
    int *ready_fds;
    uint32_t *ready;
    uint32_t read_bits, write_bits;
    unsigned long owner;
    long long deadline_ns;
};
long long reactor_poll_wait(struct reactor_poll *p, long long timeout_ns);
int reactor_poll_set_array(struct reactor_pollfds *list, struct pollfd *fds, int capacity);
int reactor_poll_add(struct reactor_pollfds *list, int fd, short events);
int reactor_poll_set_events(struct reactor_pollfds *list, int index, int fd, short events);
int reactor_poll_remove(struct reactor_pollfds *list, int index, int fd);

struct reactor_fdsets {
    int lock;
    int capacity;
    int nfds;
    unsigned long *readers, *writers;
};
struct reactor_select {
    struct reactor_fdsets *sets;
    int capacity;
    unsigned long *rwork, *wwork;
    int *ready_fds;
    uint32_t *ready;
    unsigned long owner;
    long long deadline_ns;
};
int reactor_select_set_arrays(struct reactor_fdsets *sets, unsigned long *readers,
                              unsigned long *writers, int capacity);
int reactor_select_add(struct reactor_fdsets *sets, int fd, uint32_t events);
int reactor_select_remove(struct reactor_fdsets *sets, int fd);
long long reactor_select_wait(struct reactor_select *s, long long timeout_ns);

/* ==== signal-driven IO (signals.c) =========================================
 * signalfd, and F_SETSIG, the fcntl command (Linux's own: _GNU_SOURCE) that
 * routes a socket's readiness to a real-time signal carrying its fd;
 * reactor/models/signaldriven.py explains them. */
struct signalfd_siginfo {
    uint32_t ssi_signo;
    int32_t ssi_fd;
    ...;
};
#define SFD_CLOEXEC ...
#define SFD_NONBLOCK ...
#define F_SETSIG ...
int reactor_signalfd(int fd, const int *signals, int count, int flags);
int reactor_signalfd_read(int fd, struct signalfd_siginfo *buf, int max, uint32_t *signo,
                          int32_t *fds);

int reactor_eventfd(unsigned int initval, int flags);
int reactor_close(int fd);
