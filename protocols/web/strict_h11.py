"""The web port's request heads held to the S3 port's strict HTTP/1.1 rules.

hypercorn parses HTTP/1.1 with h11, and h11 0.16 accepts what request
smuggling relies on when a proxy frames the same bytes differently:
Content-Length together with Transfer-Encoding (it lets the coding win),
obs-fold (it joins the lines), bare LF line endings and Transfer-Encoding in
an HTTP/1.0 request.  The S3 port's own parser (:mod:`protocols.http1`)
refuses all of these.

The ASGI app cannot check them: by the time it sees a request, h11 has
already framed the body and rewritten the head.  hypercorn has no hook for
the raw head either, so the check sits in the one place that sees it:
:class:`StrictConnection` is an ``h11.Connection`` that, whenever a new
request head is due (the client's state is IDLE), first runs the buffered
bytes through ``protocols.http1``'s head parser.  Only the verdict is used —
h11 still parses the head and frames the body for hypercorn — so nothing
else changes.  A refused head raises ``h11.RemoteProtocolError``, on which
hypercorn answers 400 (or the parser's 501/505) and closes the connection.
:func:`install` makes hypercorn's HTTP/1.1 protocol use it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import h11
import hypercorn.protocol
from hypercorn.events import Closed
from hypercorn.protocol.events import EndBody, Response
from hypercorn.protocol.h11 import H11Protocol

from protocols.http1 import ProtocolError, ServerConnection


def vet_head(buffered: bytes) -> None:
    """Raise ``h11.RemoteProtocolError`` if the head at the start of ``buffered``
    is one ``protocols.http1`` refuses; return quietly while it is incomplete."""
    # Size limits stay h11's (its own 431 for h11_max_incomplete_size).
    parser = ServerConnection(max_head_bytes=len(buffered) + 1)
    parser.feed(buffered)
    try:
        parser.next_request()
    except ProtocolError as exc:
        raise h11.RemoteProtocolError(str(exc), error_status_hint=exc.status_hint) from None


class StrictConnection(h11.Connection):
    """An ``h11.Connection`` that refuses heads the S3 port's parser refuses."""

    def next_event(self) -> Any:
        """h11's next event, after vetting a request head that is due."""
        if self.their_state is h11.IDLE:
            buffered, _closed = self.trailing_data
            if buffered:
                vet_head(buffered)
        return super().next_event()


class StrictH11Protocol(H11Protocol):
    """hypercorn's HTTP/1.1 protocol over a :class:`StrictConnection`, which
    also closes a connection whose request was answered before its body came.

    An app may answer without reading the body (a ``before_request`` hook
    refusing the request).  When the body then arrived after the answer,
    hypercorn kept the connection open without serving it: the client's next
    request on it waited until the client timed out (seen as 60-second web
    timeouts in the test suite, under load, where a body can trail its head).
    Such an answer now says ``Connection: close`` and the connection is
    closed as soon as the answer is out (hypercorn would wait for the app's
    stream to end, which may wait for that body), as servers do for a body
    they will not read.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connection = StrictConnection(
            h11.SERVER, max_incomplete_event_size=self.config.h11_max_incomplete_size)

    async def stream_send(self, event: Any) -> None:
        """hypercorn's, with ``Connection: close`` on a final response that
        starts while the request's body is still arriving."""
        if (isinstance(event, Response) and event.status_code >= 200
                and self.connection.their_state is h11.SEND_BODY):
            headers = [(k, v) for k, v in event.headers if k.lower() != b"connection"]
            event = replace(event, headers=[*headers, (b"connection", b"close")])
        await super().stream_send(event)
        if isinstance(event, EndBody) and self.connection.our_state is h11.MUST_CLOSE:
            # hypercorn would close only once the app's stream ends, which
            # may wait for the body that is still on its way.
            await self.send(Closed())


def install() -> None:
    """Make every hypercorn server of this process use :class:`StrictH11Protocol`
    (hypercorn's ``ProtocolWrapper`` looks the class up here per connection)."""
    hypercorn.protocol.H11Protocol = StrictH11Protocol  # type: ignore[misc]
