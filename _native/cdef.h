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

/* 1 when the headers offer epoll_pwait2; the kernel may still say ENOSYS,
 * which reactor_pwait2_available() reports after the first timed wait. */
#define HAS_EPOLL_PWAIT2 ...
#define REACTOR_NFDBITS ...

int reactor_pwait2_available(void);

int reactor_epoll_create(void);
struct reactor_epoll {
    int epfd;
    int capacity;
    struct epoll_event *events;
    int *fds;
    uint32_t *ready;
    int64_t *codes;
    uint32_t read_bits, write_bits;
    uint32_t *generations;
    int generations_len;
    unsigned long long stale;
};
int reactor_epoll_ctl(struct reactor_epoll *ep, int op, int fd, uint32_t events,
                      uint32_t interest);
int reactor_epoll_wait(struct reactor_epoll *ep, long long timeout_ns);

struct reactor_poll {
    struct pollfd *fds;
    unsigned long nfds;
    int *ready_fds;
    uint32_t *ready;
    uint32_t read_bits, write_bits;
};
int reactor_poll_wait(struct reactor_poll *p, long long timeout_ns);
int reactor_poll_add(struct reactor_poll *p, int fd, short events);
int reactor_poll_remove(struct reactor_poll *p, unsigned long index);

void reactor_fdset_add(unsigned long *set, int fd);
void reactor_fdset_discard(unsigned long *set, int fd);
int reactor_fdset_last(const unsigned long *a, const unsigned long *b, int nwords);
struct reactor_select {
    int capacity;
    int nfds;
    unsigned long *readers, *writers;
    unsigned long *rwork, *wwork;
    int *ready_fds;
    uint32_t *ready;
};
int reactor_select_add(struct reactor_select *s, int fd, uint32_t events);
int reactor_select_remove(struct reactor_select *s, int fd);
int reactor_select_wait(struct reactor_select *s, long long timeout_ns);

int reactor_eventfd(unsigned int initval, int flags);
int reactor_close(int fd);
