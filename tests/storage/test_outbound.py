"""The SSRF-safe outgoing HTTP client against real local HTTP servers."""

from __future__ import annotations

import ipaddress
import socket
import threading

import pytest
import trio

from storage import outbound
from storage.outbound import OutboundFailed, OutboundPolicy, OutboundRefused, ResponseTooLarge
from tests.rest.webhook_support import receiver

LOOPBACK = OutboundPolicy(allowed_networks=tuple(outbound.parse_networks(["127.0.0.0/8"])),
                          connect_timeout=2, io_timeout=2)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/", "http://127.1.2.3:8080/x", "http://10.0.0.1/", "http://192.168.1.1/",
    "http://172.16.0.1/", "http://169.254.169.254/latest/meta-data/", "http://[::1]/",
    "http://[fe80::1]/", "http://[fd00::1]/", "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:10.0.0.1]/", "http://[64:ff9b::a00:1]/", "http://[2002:a00:1::]/",
    "http://0.0.0.0/", "http://[::]/", "http://224.0.0.1/", "http://100.64.0.1/",
    "http://localhost:9/", "https://LOCALHOST/",
])
@pytest.mark.trio
async def test_non_public_addresses_are_refused_by_default(url: str) -> None:
    with pytest.raises(OutboundRefused) as err:
        await outbound.check_url(url, OutboundPolicy())
    assert err.value.kind.value == "invalid"
    assert "non-public" in err.value.message


@pytest.mark.parametrize("url", ["ftp://example.com/", "file:///etc/passwd", "http:///x",
                                 "http://user:pw@example.com/", "http://exa mple.com/",
                                 "http://example.com:99999/", "", "gopher://x/"])
def test_malformed_or_unsupported_urls_are_refused(url: str) -> None:
    with pytest.raises(OutboundRefused):
        outbound.parse_url(url)


def test_public_addresses_pass_the_address_check() -> None:
    policy = OutboundPolicy()
    for text in ("8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "::ffff:8.8.8.8"):
        assert policy.allows(ipaddress.ip_address(text)), text


@pytest.mark.trio
async def test_connect_time_check_refuses_loopback_without_any_prior_check() -> None:
    # The request path resolves and checks itself (the DNS-rebinding
    # defence): nothing reaches the server, even for a name.
    with receiver() as rec:
        for host in ("127.0.0.1", "localhost"):
            with pytest.raises(OutboundRefused):
                async with outbound.open(f"http://{host}:{rec.port}/", OutboundPolicy()):
                    pass
        assert rec.requests() == []


@pytest.mark.trio
async def test_allowed_network_reaches_the_server_with_the_original_host() -> None:
    with receiver(body=b"pong") as rec:
        url = f"http://localhost:{rec.port}/hook?a=1"
        await outbound.check_url(url, LOOPBACK)
        async with outbound.open(url, LOOPBACK, method="POST", content=b'{"x":1}',
                                 headers={"Content-Type": "application/json"}) as resp:
            assert resp.status == 200
            assert await resp.read_prefix(100) == b"pong"
        (got,) = rec.requests()
        assert (got.method, got.path, got.body) == ("POST", "/hook?a=1", b'{"x":1}')
        assert got.headers["Host"] == f"localhost:{rec.port}"


@pytest.mark.trio
async def test_allow_private_allows_loopback_but_never_unspecified() -> None:
    policy = OutboundPolicy(allow_private=True)
    assert policy.allows(ipaddress.ip_address("127.0.0.1"))
    assert policy.allows(ipaddress.ip_address("10.1.2.3"))
    assert not policy.allows(ipaddress.ip_address("0.0.0.0"))
    assert not policy.allows(ipaddress.ip_address("ff02::1"))


@pytest.mark.trio
async def test_redirects_are_not_followed() -> None:
    with receiver(status=302, headers={"Location": "http://10.0.0.1/"}) as rec:
        async with outbound.open(rec.url, LOOPBACK) as resp:
            assert resp.status == 302
            assert resp.headers["location"] == "http://10.0.0.1/"
        assert len(rec.requests()) == 1


@pytest.mark.trio
async def test_response_bytes_are_capped() -> None:
    policy = OutboundPolicy(allowed_networks=LOOPBACK.allowed_networks, max_response_bytes=1000)
    with receiver(body=b"x" * 5000) as rec:
        async with outbound.open(rec.url, policy) as resp:
            with pytest.raises(ResponseTooLarge):
                async for _ in resp.iter_bytes():
                    pass
        async with outbound.open(rec.url, policy) as resp:
            assert await resp.read_prefix(10) == b"x" * 10


@pytest.mark.trio
async def test_a_silent_server_times_out() -> None:
    policy = OutboundPolicy(allowed_networks=LOOPBACK.allowed_networks, io_timeout=0.5)
    with receiver(hold=threading.Event()) as rec:
        with trio.fail_after(10), pytest.raises(OutboundFailed) as err:
            async with outbound.open(rec.url, policy):
                pass
        assert "in time" in err.value.message


@pytest.mark.trio
async def test_an_unreachable_server_is_a_clear_failure() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(OutboundFailed):
        async with outbound.open(f"http://127.0.0.1:{port}/", LOOPBACK):
            pass
