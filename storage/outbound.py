"""The one way the cluster opens HTTP connections to URLs its users give it.

Webhook deliveries and URL imports reach addresses chosen by users, so
without care a user could make a node talk to itself, to the metadata
database, to a cloud metadata endpoint (169.254.169.254) or to anything else
on the private network (SSRF).  This client refuses, unless the operator
allows them (``[outbound] allow_private`` / ``allowed_networks``), every
address that is not a public unicast one: loopback, link-local, private,
unique-local, shared (CGNAT), multicast, unspecified and reserved ranges, on
IPv4 and IPv6 alike, including IPv4 addresses embedded in IPv6 ones
(IPv4-mapped, NAT64, 6to4).

The check is made on the *resolved* address at connect time: the host name
is resolved once, every address is checked, and the socket is connected to
an allowed address itself, while the Host header and TLS SNI/certificate
check keep the original name.  A name that resolves to a public address when
the URL is registered and to 127.0.0.1 when it is used (DNS rebinding) is
therefore refused at the second step too.

``http`` and ``https`` are allowed (the product sends webhooks to both;
https certificates are verified).  Redirects are not followed: a 3xx is
returned to the caller as it is, so a public URL cannot bounce a request to
a private one.  Connect, read and write timeouts apply to every request, and
response bodies are read up to a cap.
"""

from __future__ import annotations

import ipaddress
import ssl
import typing
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpcore
import trio
from httpcore._backends.trio import TrioBackend

from storage.errors import Kind, StorageError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SCHEMES = {"http": 80, "https": 443}
MAX_URL_LENGTH = 2048

# Prefixes whose IPv6 addresses carry an IPv4 address in their last 32 bits;
# a private IPv4 address reached through them is still private.
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))


class OutboundRefused(StorageError):
    """The URL is not one the cluster may connect to."""

    code = "OutboundRefused"
    kind = Kind.INVALID


class OutboundFailed(StorageError):
    """The remote server could not be reached or did not answer properly."""

    code = "OutboundFailed"
    kind = Kind.UNAVAILABLE


class ResponseTooLarge(StorageError):
    """The remote server sent more than the response cap."""

    code = "ResponseTooLarge"
    kind = Kind.INVALID


@dataclass(frozen=True)
class OutboundPolicy:
    """Which addresses may be reached, and how long and how much to wait for."""

    # Every non-public unicast address (loopback, private, link-local, ...).
    allow_private: bool = False
    # Networks allowed whatever they are (e.g. one internal service).
    allowed_networks: tuple[IPNetwork, ...] = ()
    connect_timeout: float = 10.0
    # Per read or write of the socket (a stalled peer).
    io_timeout: float = 30.0
    max_response_bytes: int = 10 * 1024 * 1024
    ssl_context: ssl.SSLContext | None = field(default=None, compare=False)

    @classmethod
    def from_settings(cls, settings: typing.Any) -> OutboundPolicy:
        """The policy of a node's ``[outbound]`` settings section."""
        o = settings.outbound
        return cls(
            allow_private=o.allow_private,
            allowed_networks=tuple(parse_networks(o.allowed_networks)),
            connect_timeout=o.connect_timeout_seconds,
            io_timeout=o.timeout_seconds,
            max_response_bytes=o.max_response_bytes,
        )

    def allows(self, ip: IPAddress) -> bool:
        """May a connection be opened to ``ip``?"""
        if any(ip in net for net in self.allowed_networks if net.version == ip.version):
            return True
        if ip.is_multicast or ip.is_unspecified:
            return False
        return self.allow_private or is_public(ip)


def parse_networks(values: Iterable[str]) -> list[IPNetwork]:
    """``["10.1.0.0/16", "fd00::/8", "127.0.0.1"]`` as networks (ValueError if malformed)."""
    return [ipaddress.ip_network(v.strip(), strict=False) for v in values]


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if it stands for one."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public(ip: IPAddress) -> bool:
    """True for a globally routable unicast address, on IPv4 or IPv6."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return is_public(embedded)
    # is_global alone misses multicast (224/4 is "global") and, on some
    # Python versions, a few special ranges: spell each out.
    return ip.is_global and not (
        ip.is_multicast or ip.is_loopback or ip.is_link_local or ip.is_private
        or ip.is_reserved or ip.is_unspecified
    )


@dataclass(frozen=True)
class Target:
    """A parsed, syntactically acceptable outgoing URL."""

    url: str
    scheme: str
    host: str  # without IPv6 brackets, lower case
    port: int


def parse_url(url: str) -> Target:
    """Check the form of ``url`` (http/https, a host, no credentials)."""
    if not isinstance(url, str) or not url:
        raise OutboundRefused("url: must be a non-empty string")
    if len(url) > MAX_URL_LENGTH:
        raise OutboundRefused(f"url: longer than {MAX_URL_LENGTH} characters")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise OutboundRefused("url: must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise OutboundRefused(f"url: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise OutboundRefused("url: only http:// and https:// URLs are allowed")
    if not parts.hostname:
        raise OutboundRefused("url: has no host")
    if parts.username is not None or parts.password is not None:
        raise OutboundRefused("url: must not carry credentials (user:password@)")
    return Target(url, scheme, parts.hostname.lower(), port or SCHEMES[scheme])


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


async def resolve(host: str, port: int, policy: OutboundPolicy) -> list[str]:
    """The addresses of ``host`` that ``policy`` allows, in resolver order;
    OutboundRefused when there is none (naming why)."""
    literal = _literal(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = await trio.socket.getaddrinfo(host, port, type=trio.socket.SOCK_STREAM)
        except OSError as exc:
            raise OutboundRefused(f"url: cannot resolve host {host!r} ({exc.strerror or exc})") \
                from None
        addresses = []
        for info in infos:
            ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
            if ip not in addresses:
                addresses.append(ip)
    allowed = [str(ip) for ip in addresses if policy.allows(ip)]
    if not allowed:
        shown = ", ".join(str(ip) for ip in addresses[:4]) or "nothing"
        raise OutboundRefused(
            f"url: host {host!r} resolves to {shown}, a loopback, private, link-local or "
            "otherwise non-public address; the operator can allow such networks in "
            "[outbound] settings"
        )
    return allowed


async def check_url(url: str, policy: OutboundPolicy) -> Target:
    """Refuse (OutboundRefused, kind INVALID) a URL the cluster may not
    connect to now; the parsed target otherwise.  Connecting checks again."""
    target = parse_url(url)
    await resolve(target.host, target.port, policy)
    return target


class _CheckedBackend(TrioBackend):
    """httpcore's trio backend, connecting only to addresses the policy allows.

    httpcore calls ``connect_tcp`` with the URL's host and later starts TLS
    with that same name as SNI, so resolving here and connecting to the IP
    keeps Host, SNI and certificate checks on the name while the socket goes
    to an address that was checked."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self._policy = policy

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: typing.Iterable[typing.Any] | None = None
                          ) -> httpcore.AsyncNetworkStream:
        addresses = await resolve(host, port, self._policy)
        error: Exception | None = None
        for address in addresses:
            try:
                return await super().connect_tcp(address, port, timeout, local_address,
                                                  socket_options)
            except httpcore.ConnectError as exc:
                error = exc
        assert error is not None
        raise error


@dataclass
class Response:
    """Status, headers and the body stream of an answer."""

    status: int
    headers: Mapping[str, str]
    _stream: httpcore.Response
    _limit: int

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        """The body, refusing (ResponseTooLarge) past the policy's byte cap."""
        seen = 0
        async for chunk in _mapped(self._stream.aiter_stream()):
            seen += len(chunk)
            if seen > self._limit:
                raise ResponseTooLarge(f"the response is larger than {self._limit} bytes")
            yield chunk

    async def read_prefix(self, limit: int) -> bytes:
        """Up to ``limit`` bytes of the body; the rest is not read."""
        buf = bytearray()
        async for chunk in _mapped(self._stream.aiter_stream()):
            buf += chunk[: limit - len(buf)]
            if len(buf) >= limit:
                break
        return bytes(buf)


async def _mapped(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        async for chunk in chunks:
            yield chunk
    except httpcore.TimeoutException:
        raise OutboundFailed("the remote server stopped sending (timeout)") from None
    except httpcore.NetworkError as exc:
        raise OutboundFailed(f"the connection failed while reading: {exc}") from None
    except httpcore.ProtocolError as exc:
        raise OutboundFailed(f"the remote server broke HTTP: {exc}") from None


@asynccontextmanager
async def open(  # shadows the builtin on purpose: used as ``outbound.open(...)``
    url: str, policy: OutboundPolicy, *, method: str = "GET",
    headers: Mapping[str, str] | None = None, content: bytes | None = None,
) -> AsyncIterator[Response]:
    """Send one request to ``url`` and yield the answer while its body streams.

    Raises OutboundRefused for a URL or address the policy refuses,
    OutboundFailed when the server cannot be reached or breaks HTTP (timeouts
    included).  A 3xx is yielded as it is: redirects are not followed.
    """
    parse_url(url)
    timeouts = {"connect": policy.connect_timeout, "read": policy.io_timeout,
                "write": policy.io_timeout, "pool": policy.connect_timeout}
    context = policy.ssl_context or ssl.create_default_context()
    async with httpcore.AsyncConnectionPool(
        ssl_context=context, max_connections=1, retries=0,
        network_backend=_CheckedBackend(policy),
    ) as pool:
        try:
            async with pool.stream(
                method, url, headers=list((headers or {}).items()), content=content,
                extensions={"timeout": timeouts},
            ) as raw:
                yield Response(raw.status, _headers(raw.headers), raw, policy.max_response_bytes)
        except httpcore.ConnectTimeout:
            raise OutboundFailed("could not connect to the remote server in time") from None
        except httpcore.TimeoutException:
            raise OutboundFailed("the remote server did not answer in time") from None
        except httpcore.ConnectError as exc:
            raise OutboundFailed(f"could not connect to the remote server: {exc}") from None
        except httpcore.NetworkError as exc:
            raise OutboundFailed(f"the connection failed: {exc}") from None
        except (httpcore.ProtocolError, httpcore.UnsupportedProtocol) as exc:
            raise OutboundFailed(f"the remote server broke HTTP: {exc}") from None


def _headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Response headers, lower-cased names; repeated ones joined as HTTP allows."""
    out: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        out[key] = f"{out[key]}, {text}" if key in out else text
    return out
