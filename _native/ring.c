/*
 * The io_uring half of reactor._native: the rings, through the raw syscalls
 * (io_uring_setup, io_uring_enter, io_uring_register), no liburing.
 *
 * What each kernel quirk means is explained once, in the facts at the top
 * of reactor/_ring.py; [U1]-style pointers here refer to them.
 *
 * Rules for this file (as for helpers.c):
 *   - every function returns -errno on failure, read right after the call;
 *   - no policy: which setup flags to try, when to submit, what to do on
 *     EINTR or EBUSY, who owns an operation: all of that is Python's;
 *   - whole batches cross the FFI: one enter submits every prepared SQE,
 *     one reap copies up to `max` CQEs into three flat arrays;
 *   - memory: the ring struct is allocated by Python (ffi.new); the rings
 *     themselves are the kernel's, mapped here by reactor_ring_setup() and
 *     unmapped by reactor_ring_close() (or dropped unmapped by
 *     reactor_ring_forget() in a forked child, which never had them [U9]).
 *     Every buffer an SQE points to is Python's, kept alive by Python until
 *     that operation's last CQE [U6].
 */
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

/* ---- what this kernel knows but the installed header may not ----------
 * The one place where constants newer than the build machine's uapi header
 * are defined, each with the kernel release that introduced it.  Enum
 * members (IORING_OP_*) are not macros: a newer header's enum wins, and the
 * macro, defined after it with the same value, changes nothing. */
#ifndef __NR_io_uring_setup                      /* Linux 5.1: one number on */
#  define __NR_io_uring_setup 425                /* every architecture but alpha */
#endif
#ifndef __NR_io_uring_enter
#  define __NR_io_uring_enter 426
#endif
#ifndef __NR_io_uring_register
#  define __NR_io_uring_register 427
#endif
#ifndef IORING_SETUP_NO_SQARRAY                  /* Linux 6.6 */
#  define IORING_SETUP_NO_SQARRAY (1U << 16)
#endif
#ifndef IORING_FEAT_REG_REG_RING                 /* Linux 6.3 */
#  define IORING_FEAT_REG_REG_RING (1U << 13)
#endif
#ifndef IORING_FEAT_RECVSEND_BUNDLE              /* Linux 6.10 */
#  define IORING_FEAT_RECVSEND_BUNDLE (1U << 14)
#endif
#ifndef IORING_FEAT_MIN_TIMEOUT                  /* Linux 6.12 */
#  define IORING_FEAT_MIN_TIMEOUT (1U << 15)
#endif
#ifndef IORING_CQE_F_BUF_MORE                    /* Linux 6.12 */
#  define IORING_CQE_F_BUF_MORE (1U << 4)
#endif
#define REACTOR_IORING_OP_FTRUNCATE 55           /* Linux 6.9 */
#if !defined(IORING_OP_FTRUNCATE)
#  define IORING_OP_FTRUNCATE REACTOR_IORING_OP_FTRUNCATE
#endif

#define REACTOR_NR_IO_URING_SETUP __NR_io_uring_setup

/* Probe results are indexed by opcode; 256 covers every value of the u8. */
#define REACTOR_RING_PROBE_OPS 256

struct reactor_ring {
    int fd;
    unsigned setup_flags;         /* the flags the kernel accepted */
    unsigned features;            /* IORING_FEAT_* */
    unsigned sq_entries, cq_entries;
    unsigned sq_tail;             /* next SQE we fill; published by enter */
    unsigned sq_mask, cq_mask;
    unsigned *sq_khead, *sq_ktail, *sq_kflags, *sq_kdropped, *sq_array;
    unsigned *cq_khead, *cq_ktail, *cq_koverflow;
    struct io_uring_sqe *sqes;
    struct io_uring_cqe *cqes;
    void *sq_map, *cq_map, *sqe_map;
    size_t sq_map_size, cq_map_size, sqe_map_size;
};

static long reactor_sys_enter(int fd, unsigned submit, unsigned wait_nr, unsigned flags,
                              const void *arg, size_t argsz)
{
    return syscall(__NR_io_uring_enter, fd, submit, wait_nr, flags, arg, argsz);
}

static void reactor_ring_unmap(struct reactor_ring *r)
{
    if (r->sqe_map != NULL)
        munmap(r->sqe_map, r->sqe_map_size);
    if (r->cq_map != NULL && r->cq_map != r->sq_map)
        munmap(r->cq_map, r->cq_map_size);
    if (r->sq_map != NULL)
        munmap(r->sq_map, r->sq_map_size);
    r->sqe_map = r->cq_map = r->sq_map = NULL;
}

/* Maps `size` bytes of the ring fd at `offset`, not inherited by a child [U9]. */
static void *reactor_ring_map(int fd, size_t size, off_t offset)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, offset);
    if (p == MAP_FAILED)
        return NULL;
    if (madvise(p, size, MADV_DONTFORK) < 0) {
        int err = errno;
        munmap(p, size);
        errno = err;
        return NULL;
    }
    return p;
}

/* io_uring_setup() with `flags` (plus IORING_SETUP_CQSIZE when cq_entries
 * is not 0), then maps the rings: one mapping for both when the kernel
 * offers IORING_FEAT_SINGLE_MMAP (5.4), two otherwise.  0 or -errno; on
 * failure nothing is left open or mapped and r->fd is -1. */
static int reactor_ring_setup(struct reactor_ring *r, unsigned entries, unsigned cq_entries,
                              unsigned flags)
{
    struct io_uring_params p;
    size_t sq_size, cq_size;
    unsigned i;
    int fd, err;

    memset(r, 0, sizeof *r);
    r->fd = -1;
    memset(&p, 0, sizeof p);
    p.flags = flags;
    if (cq_entries) {
        p.flags |= IORING_SETUP_CQSIZE;
        p.cq_entries = cq_entries;
    }
    fd = (int)syscall(__NR_io_uring_setup, entries, &p);
    if (fd < 0)
        return -errno;
    /* With IORING_SETUP_NO_SQARRAY there is no index array: sq_off.array is 0. */
    sq_size = (p.flags & IORING_SETUP_NO_SQARRAY)
        ? 0 : p.sq_off.array + p.sq_entries * sizeof(unsigned);
    cq_size = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    if (p.features & IORING_FEAT_SINGLE_MMAP) {
        if (cq_size > sq_size)
            sq_size = cq_size;
        r->sq_map = reactor_ring_map(fd, sq_size, IORING_OFF_SQ_RING);
        r->cq_map = r->sq_map;
        if (r->sq_map == NULL)
            goto fail;
    } else {
        r->sq_map = reactor_ring_map(fd, sq_size, IORING_OFF_SQ_RING);
        if (r->sq_map == NULL)
            goto fail;
        r->cq_map = reactor_ring_map(fd, cq_size, IORING_OFF_CQ_RING);
        if (r->cq_map == NULL)
            goto fail;
    }
    r->sq_map_size = sq_size;
    r->cq_map_size = cq_size;
    r->sqe_map_size = p.sq_entries * sizeof(struct io_uring_sqe);
    r->sqe_map = reactor_ring_map(fd, r->sqe_map_size, IORING_OFF_SQES);
    if (r->sqe_map == NULL)
        goto fail;

    r->fd = fd;
    r->setup_flags = p.flags;
    r->features = p.features;
    r->sq_entries = p.sq_entries;
    r->cq_entries = p.cq_entries;
    r->sq_khead = (unsigned *)((char *)r->sq_map + p.sq_off.head);
    r->sq_ktail = (unsigned *)((char *)r->sq_map + p.sq_off.tail);
    r->sq_kflags = (unsigned *)((char *)r->sq_map + p.sq_off.flags);
    r->sq_kdropped = (unsigned *)((char *)r->sq_map + p.sq_off.dropped);
    r->sq_mask = *(unsigned *)((char *)r->sq_map + p.sq_off.ring_mask);
    r->cq_khead = (unsigned *)((char *)r->cq_map + p.cq_off.head);
    r->cq_ktail = (unsigned *)((char *)r->cq_map + p.cq_off.tail);
    r->cq_koverflow = (unsigned *)((char *)r->cq_map + p.cq_off.overflow);
    r->cq_mask = *(unsigned *)((char *)r->cq_map + p.cq_off.ring_mask);
    r->cqes = (struct io_uring_cqe *)((char *)r->cq_map + p.cq_off.cqes);
    r->sqes = (struct io_uring_sqe *)r->sqe_map;
    r->sq_tail = *r->sq_ktail;
    if (!(p.flags & IORING_SETUP_NO_SQARRAY)) {
        /* Slot i always holds SQE i: the indirection is never used. */
        r->sq_array = (unsigned *)((char *)r->sq_map + p.sq_off.array);
        for (i = 0; i < p.sq_entries; i++)
            r->sq_array[i] = i;
    }
    return 0;
fail:
    err = errno;
    reactor_ring_unmap(r);
    close(fd);
    r->fd = -1;
    return -err;
}

/* Unmaps the rings and closes the ring fd; a no-op once closed.  The
 * caller has waited for every operation's last CQE [U8]. */
static int reactor_ring_close(struct reactor_ring *r)
{
    int fd = r->fd;
    reactor_ring_unmap(r);
    r->fd = -1;
    if (fd >= 0 && close(fd) < 0)
        return -errno;
    return 0;
}

/* In a forked child: the rings were never mapped here (MADV_DONTFORK), so
 * only the child's copy of the ring fd is closed; nothing is unmapped (the
 * addresses may hold other mappings by now) [U9]. */
static int reactor_ring_forget(struct reactor_ring *r)
{
    int fd = r->fd;
    r->sq_map = r->cq_map = r->sqe_map = NULL;
    r->sqes = NULL;
    r->cqes = NULL;
    r->fd = -1;
    if (fd >= 0 && close(fd) < 0)
        return -errno;
    return 0;
}

/* SQEs prepared and not yet taken by the kernel. */
static unsigned reactor_ring_unsubmitted(const struct reactor_ring *r)
{
    return r->sq_tail - __atomic_load_n(r->sq_khead, __ATOMIC_ACQUIRE);
}

/* CQEs waiting in the ring; flags that ask for an enter [U4]. */
static unsigned reactor_ring_ready(const struct reactor_ring *r)
{
    return __atomic_load_n(r->cq_ktail, __ATOMIC_ACQUIRE) - *r->cq_khead;
}

static unsigned reactor_ring_sq_flags(const struct reactor_ring *r)
{
    return __atomic_load_n(r->sq_kflags, __ATOMIC_RELAXED);
}

/* The next free SQE, zeroed, with its user_data; NULL when the SQ is full
 * (the caller submits and tries again [U5]). */
static struct io_uring_sqe *reactor_ring_sqe(struct reactor_ring *r, uint64_t user_data)
{
    struct io_uring_sqe *sqe;
    if (r->sq_tail - __atomic_load_n(r->sq_khead, __ATOMIC_ACQUIRE) >= r->sq_entries)
        return NULL;
    sqe = &r->sqes[r->sq_tail & r->sq_mask];
    memset(sqe, 0, sizeof *sqe);
    sqe->user_data = user_data;
    r->sq_tail++;
    return sqe;
}

/* The common shape: opcode, fd, addr, len, off and the op's flags word
 * (rw_flags, msg_flags, open_flags, fsync_flags, timeout_flags ... share
 * one union).  0, or -EBUSY when the SQ is full. */
static int reactor_ring_prep(struct reactor_ring *r, uint64_t user_data, int opcode, int fd,
                             const void *addr, unsigned len, int64_t off, unsigned op_flags)
{
    struct io_uring_sqe *sqe = reactor_ring_sqe(r, user_data);
    if (sqe == NULL)
        return -EBUSY;
    sqe->opcode = (uint8_t)opcode;
    sqe->fd = fd;
    sqe->addr = (uint64_t)(uintptr_t)addr;
    sqe->len = len;
    sqe->off = (uint64_t)off;
    sqe->rw_flags = op_flags;
    return 0;
}

/* Everything else an SQE may carry: ioprio (multishot and poll-first bits
 * of accept/recv), sqe flags (IOSQE_*), the buffer group for
 * IOSQE_BUFFER_SELECT, and addr2 as a pointer (statx's buffer, accept's
 * addrlen). */
static int reactor_ring_prep_ext(struct reactor_ring *r, uint64_t user_data, int opcode, int fd,
                                 const void *addr, unsigned len, int64_t off, unsigned op_flags,
                                 const void *addr2, unsigned ioprio, unsigned sqe_flags,
                                 unsigned buf_group)
{
    struct io_uring_sqe *sqe = reactor_ring_sqe(r, user_data);
    if (sqe == NULL)
        return -EBUSY;
    sqe->opcode = (uint8_t)opcode;
    sqe->fd = fd;
    sqe->addr = (uint64_t)(uintptr_t)addr;
    sqe->len = len;
    sqe->off = addr2 != NULL ? (uint64_t)(uintptr_t)addr2 : (uint64_t)off;
    sqe->rw_flags = op_flags;
    sqe->ioprio = (uint16_t)ioprio;
    sqe->flags = (uint8_t)sqe_flags;
    sqe->buf_group = (uint16_t)buf_group;
    return 0;
}

/* IORING_OP_ASYNC_CANCEL of the operation whose user_data is `target`
 * (with IORING_ASYNC_CANCEL_ANY in `flags`: every operation) [U7]. */
static int reactor_ring_prep_cancel(struct reactor_ring *r, uint64_t user_data, uint64_t target,
                                    unsigned flags)
{
    struct io_uring_sqe *sqe = reactor_ring_sqe(r, user_data);
    if (sqe == NULL)
        return -EBUSY;
    sqe->opcode = IORING_OP_ASYNC_CANCEL;
    sqe->fd = -1;
    sqe->addr = target;
    sqe->cancel_flags = flags;
    return 0;
}

/* IORING_OP_ASYNC_CANCEL of every operation on `fd` (IORING_ASYNC_CANCEL_FD
 * | _ALL, 5.19): a file closing with operations in flight. */
static int reactor_ring_prep_cancel_fd(struct reactor_ring *r, uint64_t user_data, int fd)
{
    struct io_uring_sqe *sqe = reactor_ring_sqe(r, user_data);
    if (sqe == NULL)
        return -EBUSY;
    sqe->opcode = IORING_OP_ASYNC_CANCEL;
    sqe->fd = fd;
    sqe->cancel_flags = IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_ALL;
    return 0;
}

/* An SQE with a direct descriptor slot (sqe->file_index, 1-based: 0 means
 * none): an openat into that slot, or a close of it (fd 0) [U16]. */
static int reactor_ring_prep_slot(struct reactor_ring *r, uint64_t user_data, int opcode,
                                  int fd, const void *addr, unsigned len, unsigned op_flags,
                                  unsigned sqe_flags, unsigned file_index)
{
    struct io_uring_sqe *sqe = reactor_ring_sqe(r, user_data);
    if (sqe == NULL)
        return -EBUSY;
    sqe->opcode = (uint8_t)opcode;
    sqe->fd = fd;
    sqe->addr = (uint64_t)(uintptr_t)addr;
    sqe->len = len;
    sqe->rw_flags = op_flags;
    sqe->flags = (uint8_t)sqe_flags;
    sqe->file_index = file_index;
    return 0;
}

/* Publishes the prepared SQEs (release: the kernel must see them filled)
 * and enters the kernel once: it takes them all and, with wait_nr > 0,
 * waits for that many CQEs, for at most timeout_ns when >= 0 (with
 * IORING_ENTER_EXT_ARG, Linux 5.11).  The kernel is also entered, without
 * anything to submit, when it asked for it: completions are waiting to run
 * as task work or on the overflow list [U4].  Returns the number of SQEs
 * the kernel took, or -errno. */
static int reactor_ring_enter(struct reactor_ring *r, unsigned wait_nr, long long timeout_ns)
{
    unsigned submit, flags = 0;
    long rc;
    __atomic_store_n(r->sq_ktail, r->sq_tail, __ATOMIC_RELEASE);
    submit = r->sq_tail - __atomic_load_n(r->sq_khead, __ATOMIC_ACQUIRE);
    if (wait_nr > 0 ||
        (__atomic_load_n(r->sq_kflags, __ATOMIC_RELAXED) &
         (IORING_SQ_CQ_OVERFLOW | IORING_SQ_TASKRUN)))
        flags |= IORING_ENTER_GETEVENTS;
    if (submit == 0 && flags == 0)
        return 0;
    if (timeout_ns >= 0 && wait_nr > 0) {
        struct __kernel_timespec ts;
        struct io_uring_getevents_arg arg;
        ts.tv_sec = timeout_ns / 1000000000LL;
        ts.tv_nsec = timeout_ns % 1000000000LL;
        memset(&arg, 0, sizeof arg);
        arg.ts = (uint64_t)(uintptr_t)&ts;
        rc = reactor_sys_enter(r->fd, submit, wait_nr, flags | IORING_ENTER_EXT_ARG, &arg,
                               sizeof arg);
    } else {
        rc = reactor_sys_enter(r->fd, submit, wait_nr, flags, NULL, 0);
    }
    return rc < 0 ? -errno : (int)rc;
}

/* Copies up to `max` CQEs into user_data[], res[] and flags[] and gives
 * their slots back to the kernel (release: we are done reading them).
 * When the ring runs dry before `max` while the kernel holds completions
 * back (task work to run, or CQEs on the overflow list [U4]), enters the
 * kernel once to get them, and copies on.  Returns the number copied, or
 * -errno when that enter failed and nothing was copied. */
static int reactor_ring_reap(struct reactor_ring *r, uint64_t *user_data, int32_t *res,
                             uint32_t *flags, int max)
{
    unsigned head = *r->cq_khead, tail, mask = r->cq_mask;
    int n = 0, entered = 0;
    for (;;) {
        tail = __atomic_load_n(r->cq_ktail, __ATOMIC_ACQUIRE);
        while (head != tail && n < max) {
            const struct io_uring_cqe *cqe = &r->cqes[head & mask];
            user_data[n] = cqe->user_data;
            res[n] = cqe->res;
            flags[n] = cqe->flags;
            head++;
            n++;
        }
        __atomic_store_n(r->cq_khead, head, __ATOMIC_RELEASE);
        if (n >= max || entered ||
            !(__atomic_load_n(r->sq_kflags, __ATOMIC_RELAXED) &
              (IORING_SQ_CQ_OVERFLOW | IORING_SQ_TASKRUN)))
            return n;
        entered = 1;
        if (reactor_sys_enter(r->fd, 0, 0, IORING_ENTER_GETEVENTS, NULL, 0) < 0)
            return n > 0 ? n : -errno;
    }
}

/* reactor_ring_enter(r, 0, -1) then reactor_ring_reap(): one crossing of
 * the FFI for a loop's flush [U2].  Returns the number of CQEs copied; when
 * none was, the enter's -errno if it failed (a failed enter with CQEs to
 * copy shows again at the next call). */
static int reactor_ring_submit_reap(struct reactor_ring *r, uint64_t *user_data, int32_t *res,
                                    uint32_t *flags, int max)
{
    int rc = reactor_ring_enter(r, 0, -1);
    int n = reactor_ring_reap(r, user_data, res, flags, max);
    return n == 0 && rc < 0 ? rc : n;
}

/* io_uring_register(2) as it is: 0 (or the opcode's result) or -errno. */
static int reactor_ring_register(struct reactor_ring *r, unsigned opcode, const void *arg,
                                 unsigned nr_args)
{
    long rc = syscall(__NR_io_uring_register, r->fd, opcode, arg, nr_args);
    return rc < 0 ? -errno : (int)rc;
}

/* IORING_REGISTER_PROBE (5.6): supported[op] = 1 for each opcode this
 * kernel implements, for op < n (n <= REACTOR_RING_PROBE_OPS).  Returns the
 * kernel's last opcode, or -errno. */
static int reactor_ring_probe(struct reactor_ring *r, uint8_t *supported, int n)
{
    union {
        struct io_uring_probe probe;
        char room[sizeof(struct io_uring_probe) +
                  REACTOR_RING_PROBE_OPS * sizeof(struct io_uring_probe_op)];
    } buf;
    int i, rc;
    if (n < 0 || n > REACTOR_RING_PROBE_OPS)
        return -EINVAL;
    memset(&buf, 0, sizeof buf);
    rc = reactor_ring_register(r, IORING_REGISTER_PROBE, &buf.probe, REACTOR_RING_PROBE_OPS);
    if (rc < 0)
        return rc;
    for (i = 0; i < n; i++)
        supported[i] = i < buf.probe.ops_len &&
                       (buf.probe.ops[i].flags & IO_URING_OP_SUPPORTED) != 0;
    return buf.probe.last_op;
}

/* A table of `count` empty direct-descriptor slots (IORING_REGISTER_FILES2
 * with IORING_RSRC_REGISTER_SPARSE, 5.19) [U16]. */
static int reactor_ring_register_slots(struct reactor_ring *r, unsigned count)
{
    struct io_uring_rsrc_register reg;
    memset(&reg, 0, sizeof reg);
    reg.nr = count;
    reg.flags = IORING_RSRC_REGISTER_SPARSE;
    return reactor_ring_register(r, IORING_REGISTER_FILES2, &reg, sizeof reg);
}

/* ---- provided buffer rings (IORING_REGISTER_PBUF_RING, 5.19) ---------
 * The ring is an array of struct io_uring_buf in page-aligned memory that
 * Python owns (an anonymous mmap); its tail overlays bufs[0].resv, so an
 * entry is written field by field, never as a whole struct (which would
 * overwrite the tail) [U12]. */

static int reactor_pbuf_register(struct reactor_ring *r, void *ring_addr, unsigned entries,
                                 unsigned group)
{
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (uint64_t)(uintptr_t)ring_addr;
    reg.ring_entries = entries;
    reg.bgid = (uint16_t)group;
    return reactor_ring_register(r, IORING_REGISTER_PBUF_RING, &reg, 1);
}

static int reactor_pbuf_unregister(struct reactor_ring *r, unsigned group)
{
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.bgid = (uint16_t)group;
    return reactor_ring_register(r, IORING_UNREGISTER_PBUF_RING, &reg, 1);
}

/* Hands n buffers back to the kernel: buffer ids[i] is the buf_size bytes
 * at base + ids[i] * buf_size.  `entries` is the ring's size (a power of
 * two); the tail is published once, after the entries (release). */
static void reactor_pbuf_give(void *ring_addr, unsigned entries, char *base, unsigned buf_size,
                              const uint16_t *ids, int n)
{
    struct io_uring_buf_ring *br = ring_addr;
    unsigned short tail = br->tail;
    unsigned mask = entries - 1;
    int i;
    for (i = 0; i < n; i++) {
        struct io_uring_buf *buf = &br->bufs[(unsigned short)(tail + i) & mask];
        buf->addr = (uint64_t)(uintptr_t)(base + (size_t)ids[i] * buf_size);
        buf->len = buf_size;
        buf->bid = ids[i];
    }
    __atomic_store_n(&br->tail, (unsigned short)(tail + n), __ATOMIC_RELEASE);
}

/* ---- socket addresses -------------------------------------------------
 * Filled here so the compiler owns sockaddr layouts; the address bytes
 * come from socket.inet_pton().  Return the length to pass, or -errno. */

static int reactor_sockaddr_inet(struct sockaddr_storage *ss, int family, const void *packed,
                                 unsigned port, uint32_t flowinfo, uint32_t scope_id)
{
    memset(ss, 0, sizeof *ss);
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        memcpy(&sin->sin_addr, packed, sizeof sin->sin_addr);
        return (int)sizeof *sin;
    }
    if (family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        sin6->sin6_flowinfo = htonl(flowinfo);
        memcpy(&sin6->sin6_addr, packed, sizeof sin6->sin6_addr);
        sin6->sin6_scope_id = scope_id;
        return (int)sizeof *sin6;
    }
    return -EAFNOSUPPORT;
}

/* path: n bytes, without a terminating NUL (a leading NUL: the abstract
 * namespace). */
static int reactor_sockaddr_unix(struct sockaddr_storage *ss, const char *path, size_t n)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)ss;
    memset(ss, 0, sizeof *ss);
    if (n >= sizeof sun->sun_path)
        return -ENAMETOOLONG;
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, path, n);
    return (int)(offsetof(struct sockaddr_un, sun_path) + n + (n > 0 && path[0] != '\0'));
}
