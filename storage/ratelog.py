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

    def admit(self, cause: str) -> int | None:
        """None if ``cause`` was logged within the interval (counted as held
        back), else the number of repeats held back since its last line."""
        now = self._clock()
        state = self._causes.get(cause)
        if state is not None and now - state[0] < self.interval:
            state[1] += 1
            return None
        if len(self._causes) >= _MAX_CAUSES:
            self._causes.clear()  # many distinct causes: forget, never grow
        self._causes[cause] = [now, 0]
        return int(state[1]) if state is not None else 0

    def log(self, cause: str, message: str, level: int = logging.WARNING) -> bool:
        """Write ``message`` unless ``cause`` was logged within the interval.

        Returns whether a line was written.
        """
        held_back = self.admit(cause)
        if held_back is None:
            return False
        self.logger.log(level, message + self.repeats(held_back))
        return True

    def repeats(self, held_back: int) -> str:
        """The suffix telling how many lines were held back (or nothing)."""
        return f" ({held_back} more like this held back)" if held_back else ""


class ThrottleFilter(logging.Filter):
    """A filter for other libraries' loggers: one record per message per
    interval, as one line (the traceback is reduced to its last line)."""

    def __init__(self, interval: float = DEFAULT_INTERVAL) -> None:
        super().__init__()
        self._throttle = ThrottledLog(logging.getLogger(__name__), interval)

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether ``record`` is written (shortened in place when it is)."""
        held_back = self._throttle.admit(f"{record.name} {record.msg}")
        if held_back is None:
            return False
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            message += f": {type(exc).__name__}: {exc}"
        record.msg, record.args = message + self._throttle.repeats(held_back), None
        record.exc_info, record.exc_text = None, None
        return True
