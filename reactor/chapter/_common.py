"""What the chapter's servers share: the chapter's log line, and the fd
limit a server of many connections needs (each connection is an fd)."""

from __future__ import annotations

import logging
import resource

__all__ = ["CHAPTER_FORMAT", "WANTED_CONNECTIONS", "SPARE_FDS", "raise_fd_limit"]

# The chapter's server logs each message in this format.
CHAPTER_FORMAT = "%(asctime)s %(threadName)s %(thread)d %(message)s"
WANTED_CONNECTIONS = 10_000
SPARE_FDS = 64  # listener, eventfd or ring, signal socket, logging, stdio ...


def raise_fd_limit(log: logging.Logger, wanted: int = WANTED_CONNECTIONS + SPARE_FDS) -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (to `wanted` when the
    hard limit is infinite); return the new soft limit, warning on `log`
    when it cannot hold `wanted` fds."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = max(wanted if hard == resource.RLIM_INFINITY else hard, soft)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise RLIMIT_NOFILE from %d to %d: %s", soft, target, exc)
    if soft < wanted:
        log.warning(
            "RLIMIT_NOFILE is %d (hard limit %s): this server can hold about %d "
            "connections, not %d; raise the hard limit (ulimit -Hn) to hold more",
            soft,
            hard,
            max(soft - SPARE_FDS, 0),
            wanted - SPARE_FDS,
        )
    return soft
