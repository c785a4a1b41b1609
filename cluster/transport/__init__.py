"""Node-to-node chunk transport: plain HTTP/1.1 with keep-alive over trio sockets.

Why not hypercorn: this path moves every replica of every chunk, and the
spike measured the HTTP layer itself as the limit.  Why not h11 either: it
cost about 120 µs of Python per exchange on each side (a replicated PUT
makes two exchanges on the coordinator).  The server parses requests with
protocols/http1.py (the S3 port's parser); the client writes its few known
message shapes itself and reads Content-Length answers only (``framing``).
Bodies bigger than what came with the head are received straight into one
buffer (``wire.receive_rest``), bypassing any parser.

Authentication: every request carries

    X-CS-Node:   the sender's node id
    X-CS-Date:   unix seconds
    X-CS-Sha256: hex SHA-256 of the body (of b"" when there is none)
    X-CS-Nonce:  random, unique per request
    X-CS-Body-Nonce: random, unique per body (requests with a body; the same
                 for every replica of one chunk)
    X-CS-Body-Mac: hex GMAC (AES-256-GCM) tag of the body, under the one-time
                 key HMAC-SHA256(K, "body mac v2"\\nBODY-NONCE)
    Authorization: CS-HMAC <hex HMAC-SHA256(K, METHOD\\nTARGET\\nDATE\\nNODE\\nSHA256
                             \\nNONCE[\\nBODY-NONCE\\nBODY-MAC])> (one line)

with ``K = HKDF(cluster secret, "transport v1")`` (storage.crypto.derive_key).  The
signature is checked (constant time, +-5 minutes of clock skew) *before* the
body is read, so an unauthenticated peer gets a bare 401 and the connection
is closed.  A DELETE's nonce is remembered for the skew window, so a captured
DELETE cannot be replayed (PUTs are content-addressed and idempotent, reads
reveal nothing a captured response did not).  The body must then match its
signed MAC (a body without one: its signed SHA-256), and a chunk PUT's signed
hash must be its id; why a MAC and not SHA-256 is in ``wire.body_tag``.

Endpoints (all under ``/v1``):

    PUT    /v1/chunks/<id>          store (idempotent, touches an existing copy)
    GET    /v1/chunks/<id>          verified bytes, 404 when absent or corrupt
    HEAD   /v1/chunks/<id>          200 / 404
    DELETE /v1/chunks/<id>          204
    GET    /v1/chunks?partitions=1,2&bits=8   ids held locally, one per line
    GET    /v1/workers              background workers' state (JSON)
    POST   /v1/workers/<name>/<pause|resume|run>
"""

from cluster.transport.client import TransportClient
from cluster.transport.server import ControlHandler, Response, TransportServer
from cluster.transport.wire import (
    CLOCK_SKEW,
    DISK_FULL,
    IDLE_TIMEOUT,
    MAX_BODY,
    POOL_IDLE_SECONDS,
    RECV_SIZE,
    BodyTag,
    NonceLedger,
    PeerDiskFull,
    PeerUnreachable,
    TransportError,
    body_mac_ok,
    body_tag,
    sign,
    transport_key,
)

__all__ = [
    "CLOCK_SKEW",
    "DISK_FULL",
    "IDLE_TIMEOUT",
    "MAX_BODY",
    "POOL_IDLE_SECONDS",
    "RECV_SIZE",
    "BodyTag",
    "ControlHandler",
    "NonceLedger",
    "PeerDiskFull",
    "PeerUnreachable",
    "Response",
    "TransportClient",
    "TransportError",
    "TransportServer",
    "body_mac_ok",
    "body_tag",
    "sign",
    "transport_key",
]
