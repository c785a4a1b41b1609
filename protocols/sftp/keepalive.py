"""An SSH connection's keepalive timer, re-armed lazily instead of on every read.

asyncssh restarts a connection's keepalive timer whenever data arrives:
it cancels a timer handle and schedules a new one on the event loop (a heap
push, and a cancelled handle left in the heap).  A small SFTP request is one
read: py-spy put ``_reset_keepalive_timer`` at 7 % of the asyncio thread's
samples of 1,000 x 4 KiB puts.

:func:`lazy_keepalive` keeps asyncssh's behaviour -- a keepalive request
once the client has been silent for the interval, the connection dropped
after too many unanswered ones -- with one timer: data arriving only records
the time, and a timer that fires early (data came meanwhile) re-arms itself
for the rest of the interval.
"""

from __future__ import annotations

from typing import Any

import asyncssh


def lazy_keepalive(conn: asyncssh.SSHServerConnection) -> None:
    """Replace a new connection's keepalive timer resets (from its owner's
    ``connection_made``)."""
    c: Any = conn  # asyncssh internals: _loop, _auth_complete, _keepalive_*
    loop = c._loop
    expire = c._keepalive_timer_callback  # asyncssh's own: count, ask, or drop
    last = [loop.time()]

    def reset() -> None:
        # Called by asyncssh for every read once logged in.
        if c._auth_complete:
            last[0] = loop.time()
            if c._keepalive_timer is None:
                c._set_keepalive_timer()

    def fired() -> None:
        interval = c._keepalive_interval
        silent = loop.time() - last[0]
        if interval and silent < interval:
            c._keepalive_timer = loop.call_later(interval - silent, fired)
            return
        expire()

    c._reset_keepalive_timer = reset
    c._keepalive_timer_callback = fired  # what _set_keepalive_timer schedules
