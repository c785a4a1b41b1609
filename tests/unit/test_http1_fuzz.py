"""Fuzzing protocols/http1.py: mutated and split requests.

For each input the parser must either give requests or refuse with
ProtocolError (never another exception), give the same result however the
bytes are split into reads, and accept nothing that h11 would read
differently: every request it accepts, h11 accepts too with the same method,
target, headers and body.  It is stricter than h11 on purpose (bare LF,
obs-fold, Content-Length with Transfer-Encoding...), so a refusal needs no
agreement.

Seeded, so a failure is reproducible: the assertion message names the seed.
"""

from __future__ import annotations

import itertools
import random
from typing import NamedTuple

import h11
import pytest

from protocols import http1

MAX_HEAD = 8192

CORPUS = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /bucket/key?list-type=2&prefix=a%2Fb HTTP/1.1\r\nHost: s3.local\r\n"
    b"X-Amz-Date: 20260101T000000Z\r\nAuthorization: AWS4-HMAC-SHA256 Credential=x\r\n\r\n",
    b"PUT /b/k HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    b"PUT /b/k HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nx-trailer: 1\r\n\r\n",
    b"POST /b?delete HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n"
    b"\r\nxyz",
    b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    b"HEAD /x HTTP/1.0\r\nUser-Agent: t\r\n\r\n",
    b"DELETE /b/k HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nX-Meta:  padded value \t\r\n\r\n",
]

# Bytes that matter to HTTP framing: line ends, separators, digits, controls.
INTERESTING = [b"\r", b"\n", b"\r\n", b"\x00", b" ", b"\t", b":", b",", b";", b"0", b"9",
               b"a", b"F", b"\x7f", b"\xff", b"-", b"\r\n\r\n", b"Content-Length: 2\r\n",
               b"Transfer-Encoding: chunked\r\n", b"Host: b\r\n"]


class Parsed(NamedTuple):
    """What a parser made of the bytes: complete requests, then whether it refused."""

    requests: list[tuple[bytes, bytes, list[tuple[bytes, bytes]], bytes]]
    refused: bool


def ours(data: bytes, cuts: list[int]) -> Parsed:
    """Feed ``data`` to http1 in pieces split at ``cuts``; answer each request."""
    conn = http1.ServerConnection(MAX_HEAD)
    done: list[tuple[bytes, bytes, list[tuple[bytes, bytes]], bytes]] = []
    request: http1.Request | None = None
    body = bytearray()
    bounds = [0, *cuts, len(data)]
    try:
        for lo, hi in itertools.pairwise(bounds):
            conn.feed(data[lo:hi])
            while True:
                if request is None:
                    request = conn.next_request()
                    if request is None:
                        break
                    body = bytearray()
                piece, end = conn.read_body()
                body += piece
                if not end:
                    if piece:
                        continue  # as the server does: the app asks again
                    break
                done.append((request.method, request.target, request.headers, bytes(body)))
                conn.start_response(200, [(b"content-length", b"0")], date=b"x")
                conn.send_body(b"", True)
                if not conn.reusable:
                    return Parsed(done, False)
                conn.start_next()
                request = None
    except http1.ProtocolError:
        return Parsed(done, True)
    return Parsed(done, False)


def theirs(data: bytes) -> Parsed:
    """The same bytes through h11, answering each request the same way.

    Each request gets a fresh h11 connection fed what the previous one left,
    less up to ``http1.MAX_EMPTY_LINES`` empty lines: RFC 9112 §2.2 lets a
    server ignore empty lines before a request line, which h11 refuses.
    """
    done: list[tuple[bytes, bytes, list[tuple[bytes, bytes]], bytes]] = []
    while True:
        for _ in range(http1.MAX_EMPTY_LINES):
            if data.startswith(b"\r\n"):
                data = data[2:]
        if not data:
            return Parsed(done, False)  # (h11 reads b"" as the end of the stream)
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        conn.receive_data(data)
        current: h11.Request | None = None
        body = bytearray()
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    break
                if isinstance(event, h11.Request):
                    current, body = event, bytearray()
                elif isinstance(event, h11.Data):
                    body += event.data
                else:
                    break
        except h11.RemoteProtocolError:
            return Parsed(done, True)
        if not isinstance(event, h11.EndOfMessage):
            return Parsed(done, False)  # needs more bytes
        assert current is not None
        done.append((current.method, current.target,
                     [(n.lower(), v) for n, v in current.headers.raw_items()], bytes(body)))
        conn.send(h11.Response(status_code=200, headers=[(b"content-length", b"0")]))
        conn.send(h11.EndOfMessage())
        if conn.our_state is h11.MUST_CLOSE:
            return Parsed(done, False)
        conn.start_next_cycle()
        data, _closed = conn.trailing_data
        if not data:
            return Parsed(done, False)


def mutate(rng: random.Random, data: bytes) -> bytes:
    """One to three random edits of the kinds that break framing."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(out) + 1)
        kind = rng.randrange(6)
        if kind == 0:
            out[at:at] = rng.choice(INTERESTING)
        elif kind == 1 and out:
            del out[at:at + rng.randint(1, 4)]
        elif kind == 2 and at < len(out):
            out[at] = rng.randrange(256)
        elif kind == 3:
            lines = bytes(out).split(b"\r\n")
            i = rng.randrange(len(lines))
            lines.insert(i, lines[i])
            out = bytearray(b"\r\n".join(lines))
        elif kind == 4:
            out = out[:at]
        else:
            out = bytearray(bytes(out).swapcase())
    return bytes(out)


def random_cuts(rng: random.Random, size: int) -> list[int]:
    if size < 2:
        return []
    return sorted(rng.sample(range(1, size), min(size - 1, rng.randint(1, 8))))


def normalised(parsed: Parsed) -> Parsed:
    """Header values as h11 shows them (it strips the same whitespace)."""
    return Parsed([(m, t, [(n, v.strip(b" \t")) for n, v in h], b)
                   for m, t, h, b in parsed.requests], parsed.refused)


@pytest.mark.parametrize("seed", range(8))
def test_mutated_requests_parse_or_are_refused_the_same_however_split(seed: int) -> None:
    rng = random.Random(seed)
    for case in range(1500):
        data = mutate(rng, rng.choice(CORPUS))
        whole = ours(data, [])
        split = ours(data, random_cuts(rng, len(data)))
        every_byte = ours(data, list(range(1, len(data))))
        where = f"seed {seed} case {case}: {data!r}"
        assert split == whole, where
        assert every_byte == whole, where
        # Every request we accepted, h11 read the same way (we may refuse more).
        mine = normalised(whole)
        assert mine.requests == normalised(theirs(data)).requests[:len(mine.requests)], where


def test_the_corpus_itself_is_accepted_by_both() -> None:
    for data in CORPUS:
        mine = normalised(ours(data, []))
        assert not mine.refused and mine.requests, data
        assert mine.requests == normalised(theirs(data)).requests, data


@pytest.mark.parametrize("size_line", [b"2 ;ext=1", b"2\t;ext=1"])
def test_whitespace_before_a_chunk_extension_is_refused_as_h11_does(size_line: bytes) -> None:
    # Found by the fuzzer: RFC 9112 allows it, h11 does not; two parsers that
    # disagree on a chunk line are what smuggling needs, so we refuse it too.
    data = (b"PUT /k HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            + size_line + b"\r\nde\r\n0\r\n\r\n")
    assert ours(data, []) == Parsed([], True)
    assert theirs(data) == Parsed([], True)
