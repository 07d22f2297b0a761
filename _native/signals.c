/*
 * signals.c: signalfd, for the signal-driven IO model (reactor/models/
 * signaldriven.py, whose opening "facts" explain O_ASYNC, F_SETSIG and the
 * real-time signal queue).
 *
 * The same rules as helpers.c: -errno read right after the call, no policy
 * (no EINTR retry, no choice of signals), and a whole batch of queued
 * signals crosses into Python in one call, unpacked into flat arrays, so
 * Python never touches a struct signalfd_siginfo field by field.
 */
#include <sys/signalfd.h>

/* signalfd(fd, {signals[0..count)}, flags): the new (or, with fd >= 0,
 * the same) fd, or -errno.  A signal number the libc refuses is -EINVAL. */
static int reactor_signalfd(int fd, const int *signals, int count, int flags)
{
    sigset_t mask;
    sigemptyset(&mask);
    for (int i = 0; i < count; i++)
        if (sigaddset(&mask, signals[i]) < 0)
            return -EINVAL;
    int rc = signalfd(fd, &mask, flags);
    return rc < 0 ? -errno : rc;
}

/* One read(2) of up to `max` queued signals into `buf` (the kernel hands
 * out whole struct signalfd_siginfo records only), unpacked into two flat
 * arrays: the signal numbers and their si_fd (the fd an F_SETSIG signal
 * names; 0 for other signals).  Returns how many, or -errno (-EAGAIN: none
 * queued, on a non-blocking signalfd). */
static int reactor_signalfd_read(int fd, struct signalfd_siginfo *buf, int max,
                                 uint32_t *signo, int32_t *fds)
{
    if (max <= 0)
        return -EINVAL;
    ssize_t n = read(fd, buf, (size_t)max * sizeof *buf);
    if (n < 0)
        return -errno;
    int count = (int)((size_t)n / sizeof *buf);
    for (int i = 0; i < count; i++) {
        signo[i] = buf[i].ssi_signo;
        fds[i] = buf[i].ssi_fd;
    }
    return count;
}
