/* What Python sees of reactor._native.  Every constant and struct layout is
 * `...`: the compiler fills them in from the system headers and helpers.c
 * (struct epoll_event is packed to 12 bytes on x86-64; a hand-written
 * layout would silently get 16).  Fields listed are the ones Python reads
 * or writes; what each means is documented in helpers.c. */

struct epoll_event { uint32_t events; ...; };
struct pollfd { int fd; short events; short revents; ...; };

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
#define EINVAL ...

/* 1 when the headers offer epoll_pwait2; the kernel may still say ENOSYS,
 * which reactor_pwait2_available() reports after the first timed wait. */
#define HAS_EPOLL_PWAIT2 ...
#define REACTOR_NFDBITS ...

int reactor_pwait2_available(void);

/* Returned by the waits (below any -errno), and the one-fd results: see
 * "sharing with other threads" in helpers.c. */
#define REACTOR_EGROW ...
#define REACTOR_ESTALE ...
#define REACTOR_EBUSY ...
#define REACTOR_ONE ...
void reactor_release(unsigned long *owner);

int reactor_epoll_create(void);
#define REACTOR_SLOT_MAX ...
struct reactor_slots {
    int len;
    uint64_t *slot;
    ...;
};
struct reactor_epoll_shared {
    int lock;
    int epfd;
    unsigned int users;
    unsigned long long stale;
    ...;
};
struct reactor_epoll {
    int capacity;
    struct epoll_event *events;
    int *ready_fds;
    int64_t *codes;
    int64_t *lens;
    uint32_t read_bits, write_bits;
    struct reactor_epoll_shared *shared;
    uint64_t stale_data;
    int stale_streak;
    unsigned long owner;
    long long deadline_ns;
    ...;
};
int reactor_epoll_set_slots(struct reactor_epoll_shared *sh, struct reactor_slots *next);
long long reactor_epoll_add(struct reactor_epoll_shared *sh, int fd, uint32_t flags,
                            uint32_t interest);
int reactor_epoll_modify(struct reactor_epoll_shared *sh, long long code, uint32_t flags,
                         uint32_t interest);
int reactor_epoll_delete(struct reactor_epoll_shared *sh, long long code);
int reactor_epoll_readd(struct reactor_epoll_shared *sh, int fd, long long code,
                        uint32_t flags, uint32_t interest);
int reactor_epoll_forget_fd(struct reactor_epoll_shared *sh, int fd);
int reactor_epoll_fd_of(struct reactor_epoll_shared *sh, long long code);
int reactor_epoll_close(struct reactor_epoll_shared *sh);
int reactor_epoll_forked(struct reactor_epoll_shared *sh);
long long reactor_epoll_wait(struct reactor_epoll *ep, long long timeout_ns);
#define REACTOR_AUTOREAD ...
#define REACTOR_NOT_READ ...
struct reactor_reads {
    char *buf;
    long long size;
    long long chunk;
    long long first;
    ...;
};
long long reactor_epoll_wait_read(struct reactor_epoll *ep, long long timeout_ns,
                                  struct reactor_reads *rx);

struct reactor_pollfds {
    int lock;
    int capacity;
    int nfds;
    struct pollfd *fds;
    ...;
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
    ...;
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
    int count;
    unsigned long *readers, *writers;
    ...;
};
struct reactor_select {
    struct reactor_fdsets *sets;
    int capacity;
    unsigned long *rwork, *wwork;
    int ready_capacity;
    int *ready_fds;
    uint32_t *ready;
    unsigned long owner;
    long long deadline_ns;
    ...;
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
