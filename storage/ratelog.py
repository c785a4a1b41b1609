"""Rate-limited log lines for failures that repeat on every request.

When the metadata database or a write quorum is away, every request fails the
same way; one traceback per request buried a 30 s outage under ~10,000 lines
per node.  A :class:`ThrottledLog` writes the first line of each *cause* at
once, then at most one line per cause per interval, saying how many repeats
it held back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

DEFAULT_INTERVAL = 10.0
_MAX_CAUSES = 1024


class ThrottledLog:
    """At most one line per cause per ``interval`` seconds, with a repeat count."""

    def __init__(
        self, logger: logging.Logger, interval: float = DEFAULT_INTERVAL, *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self._clock = clock
        # cause -> [time of the last line written, repeats held back since]
        self._causes: dict[str, list[float]] = {}

    def log(self, cause: str, message: str, level: int = logging.WARNING) -> bool:
        """Write ``message`` unless ``cause`` was logged within the interval.

        Returns whether a line was written.
        """
        now = self._clock()
        state = self._causes.get(cause)
        if state is not None and now - state[0] < self.interval:
            state[1] += 1
            return False
        if state is not None and state[1]:
            message += (f" ({int(state[1])} more like this in the last "
                        f"{now - state[0]:.0f} s)")
        if len(self._causes) >= _MAX_CAUSES:
            self._causes.clear()  # many distinct causes: forget, never grow
        self._causes[cause] = [now, 0]
        self.logger.log(level, message)
        return True
