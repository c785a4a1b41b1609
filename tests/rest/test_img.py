"""``/api/img`` against a live node: every parameter value through the endpoint
(outputs decoded with libvips), Accept negotiation, the cache and 304, access
rules, and the bomb and corrupt-input cases."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import pyvips

from protocols.img.signing import sign_query
from tests.harness import NodeProcess, prepare_node, started_node
from tests.rest.conftest import User, signup

MAX_ENTRIES = 40


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    extra = ("[accounts]\ndashboard_requests_per_minute = 10000\n"
             "login_attempts_per_minute = 200\n"
             f"[images]\ncache_max_entries = {MAX_ENTRIES}\ncache_interval = 0.5\n")
    with started_node(tmp_path_factory.mktemp("imgnode"), extra) as n:
        yield n


@pytest.fixture(scope="module")
def user(node: NodeProcess) -> Iterator[User]:
    u = signup(node)
    yield u
    u.client.close()


def two_colour_jpeg(width: int = 800, height: int = 600) -> bytes:
    """Left half red, right half blue: crops show which side they kept."""
    red = pyvips.Image.black(width // 2, height).new_from_image([255, 0, 0])
    blue = pyvips.Image.black(width - width // 2, height).new_from_image([0, 0, 255])
    image = red.join(blue, "horizontal").cast("uchar").copy(interpretation="srgb")
    return image.jpegsave_buffer(Q=90)


def put(user: User, key: str, data: bytes, content_type: str = "image/jpeg") -> None:
    r = user.client.post("/api/v1/files", params={"bucket": user.bucket, "key": key},
                         content=data, headers={**user.api_headers, "Content-Type": content_type})
    assert r.status_code == 201, r.text


def decode(data: bytes) -> pyvips.Image:
    return pyvips.Image.new_from_buffer(data, "")


def loader(image: pyvips.Image) -> str:
    return image.get("vips-loader").removesuffix("_buffer").removesuffix("_source")


@pytest.fixture(scope="module")
def photo(user: User) -> str:
    put(user, "photos/hero.jpg", two_colour_jpeg())
    return f"/api/img/{user.bucket}/photos/hero.jpg"


def test_spec_example_smart_cover(user: User, photo: str) -> None:
    r = user.client.get(photo, params={"w": 200, "h": 200, "fit": "cover", "gravity": "sm"})
    assert r.status_code == 200, r.text
    image = decode(r.content)
    assert (image.width, image.height) == (200, 200) and loader(image) == "jpegload"
    assert r.headers["content-type"] == "image/jpeg"
    assert "max-age=604800" in r.headers["cache-control"]
    assert r.headers["vary"] == "Accept" and r.headers["etag"]


@pytest.mark.parametrize(("fit", "size"), [
    ("fit", (133, 100)), ("contain", (133, 100)), ("fill", (200, 100)),
    ("cover", (200, 100)), ("crop", (200, 100)), ("pad", (200, 100)),
])
def test_every_fit(user: User, photo: str, fit: str, size: tuple[int, int]) -> None:
    r = user.client.get(photo, params={"w": 200, "h": 100, "fit": fit, "format": "png"})
    assert r.status_code == 200, r.text
    image = decode(r.content)
    assert (image.width, image.height) == size


@pytest.mark.parametrize(("fmt", "content_type", "load"), [
    ("webp", "image/webp", "webpload"), ("avif", "image/avif", "heifload"),
    ("jpeg", "image/jpeg", "jpegload"), ("jpg", "image/jpeg", "jpegload"),
    ("png", "image/png", "pngload"),
])
def test_every_format(user: User, photo: str, fmt: str, content_type: str, load: str) -> None:
    r = user.client.get(photo, params={"w": 120, "format": fmt, "q": 70})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == content_type and "vary" not in r.headers
    image = decode(r.content)
    assert loader(image) == load and (image.width, image.height) == (120, 90)


@pytest.mark.parametrize(("gravity", "colour"), [
    ("we", "red"), ("ea", "blue"), ("no", None), ("so", None), ("ce", None), ("sm", None)])
def test_every_gravity(user: User, photo: str, gravity: str, colour: str | None) -> None:
    for fit in ("crop", "cover"):
        r = user.client.get(photo, params={"w": 300, "h": 600 if fit == "crop" else 100,
                                           "fit": fit, "gravity": gravity, "format": "png"})
        assert r.status_code == 200, r.text
        image = decode(r.content)
        assert (image.width, image.height) == ((300, 600) if fit == "crop" else (300, 100))
        if colour is not None and fit == "crop":
            r_, _g, b = image(150, 300)[:3]
            assert (r_ > 200 and b < 50) if colour == "red" else (b > 200 and r_ < 50)


def test_dpr_rotate_and_effects(user: User, photo: str) -> None:
    r = user.client.get(photo, params={"w": 100, "dpr": 2, "format": "png"})
    assert (decode(r.content).width, decode(r.content).height) == (200, 150)
    r = user.client.get(photo, params={"rotate": 90, "format": "png"})
    assert (decode(r.content).width, decode(r.content).height) == (600, 800)
    r = user.client.get(photo, params={"w": 100, "blur": 10, "sharpen": 2, "format": "webp"})
    assert r.status_code == 200 and decode(r.content).width == 100


def test_accept_negotiation(user: User, photo: str) -> None:
    cases = [("image/avif,image/webp,*/*", "image/avif"), ("image/webp,*/*", "image/webp"),
             ("*/*", "image/jpeg"), ("image/png", "image/png"), (None, "image/jpeg")]
    for accept, expected in cases:
        headers = {"Accept": accept} if accept else {}
        r = user.client.get(photo, params={"w": 64}, headers=headers)
        assert r.status_code == 200 and r.headers["content-type"] == expected, accept
        assert r.headers["vary"] == "Accept"
        assert decode(r.content).width == 64


def test_cache_etag_304_and_changed_source(user: User) -> None:
    put(user, "photos/changing.jpg", two_colour_jpeg(400, 300))
    path = f"/api/img/{user.bucket}/photos/changing.jpg"
    first = user.client.get(path, params={"w": 50})
    assert first.headers["x-cache"] == "MISS"
    again = user.client.get(path, params={"w": 50})
    assert again.headers["x-cache"] == "HIT" and again.content == first.content
    assert again.headers["etag"] == first.headers["etag"]
    r = user.client.get(path, params={"w": 50}, headers={"If-None-Match": first.headers["etag"]})
    assert r.status_code == 304 and r.content == b""
    assert "max-age=604800" in r.headers["cache-control"]
    put(user, "photos/changing.jpg", two_colour_jpeg(200, 400))  # a new source
    changed = user.client.get(path, params={"w": 50},
                              headers={"If-None-Match": first.headers["etag"]})
    assert changed.status_code == 200 and changed.headers["etag"] != first.headers["etag"]
    assert changed.headers["x-cache"] == "MISS" and decode(changed.content).height == 100


def test_concurrent_requests_compute_once(user: User) -> None:
    put(user, "photos/big.jpg", two_colour_jpeg(3000, 2000))
    url = f"/api/img/{user.bucket}/photos/big.jpg"
    states: list[str] = []
    start = threading.Barrier(6)

    def fetch() -> None:
        with httpx.Client(base_url=str(user.client.base_url), cookies=user.client.cookies,
                          timeout=60) as c:
            start.wait(timeout=30)
            r = c.get(url, params={"w": 301, "format": "webp"})
            assert r.status_code == 200
            states.append(r.headers["x-cache"])

    threads = [threading.Thread(target=fetch) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(states) == 6 and states.count("MISS") == 1, states


def test_access_rules(node: NodeProcess, user: User, photo: str) -> None:
    url = f"{node.web_url}{photo}"
    assert httpx.get(url, params={"w": 10}).status_code == 401  # anonymous, private
    r = httpx.get(f"{node.web_url}/api/img/{user.bucket}/nope.jpg", params={"w": 10})
    assert r.status_code == 401  # the same answer: existence is not revealed
    r = httpx.get(url, params={"w": 10}, headers=user.api_headers)
    assert r.status_code == 200 and "private" in r.headers["cache-control"]
    other = signup(node)
    try:
        r = other.client.get(photo, params={"w": 10})
        assert r.status_code == 403 and r.json()["error"] == "AccessDenied"
        # A URL signed with someone else's key grants nothing.
        q = sign_query(user.bucket, "photos/hero.jpg", {"w": "10"}, other.access_key,
                       other.secret_key)
        assert httpx.get(f"{url}?{q}").status_code == 403
    finally:
        other.client.close()


def test_signed_urls(node: NodeProcess, user: User, photo: str) -> None:
    url = f"{node.web_url}{photo}"
    q = sign_query(user.bucket, "photos/hero.jpg", {"w": "40", "format": "png"},
                   user.access_key, user.secret_key)
    r = httpx.get(f"{url}?{q}")
    assert r.status_code == 200 and decode(r.content).width == 40
    assert r.headers["cache-control"].startswith("public")
    assert httpx.get(f"{url}?{q.replace('w=40', 'w=800')}").status_code == 403  # edited
    bad = httpx.get(f"{url}?{q[:-4]}0000")
    assert bad.status_code == 403 and bad.json()["error"] == "InvalidSignature"
    old = sign_query(user.bucket, "photos/hero.jpg", {"w": "40"}, user.access_key,
                     user.secret_key, expires_in=-10)
    assert httpx.get(f"{url}?{old}").json()["error"] == "InvalidSignature"
    far = sign_query(user.bucket, "photos/hero.jpg", {"w": "40"}, user.access_key,
                     user.secret_key, expires_in=30 * 86400)
    assert httpx.get(f"{url}?{far}").status_code == 403


def test_public_share_allows_anonymous_transforms(node: NodeProcess, user: User) -> None:
    put(user, "photos/public.jpg", two_colour_jpeg(300, 200))
    url = f"{node.web_url}/api/img/{user.bucket}/photos/public.jpg"
    assert httpx.get(url, params={"w": 30}).status_code == 401
    locked = user.client.post("/api/shares", json={"bucket": user.bucket,
                                                   "objectKey": "photos/public.jpg",
                                                   "password": "pw"})
    assert locked.status_code == 201
    assert httpx.get(url, params={"w": 30}).status_code == 401  # a password share is not public
    limited = user.client.post("/api/shares", json={"bucket": user.bucket, "maxDownloads": 1,
                                                    "objectKey": "photos/public.jpg"})
    assert limited.status_code == 201
    assert httpx.get(url, params={"w": 30}).status_code == 401  # nor is a limited one
    created = user.client.post("/api/shares", json={"bucket": user.bucket,
                                                    "objectKey": "photos/public.jpg"})
    r = httpx.get(url, params={"w": 30})
    assert r.status_code == 200 and decode(r.content).width == 30
    user.client.delete("/api/shares", params={"id": created.json()["id"]})
    assert httpx.get(url, params={"w": 30}).status_code == 401


def test_bad_parameters(user: User, photo: str) -> None:
    for params in ({"w": 0}, {"fit": "zoom"}, {"format": "gif"}, {"rotate": 45},
                   {"gravity": "nw"}, {"q": 101}, {"dpr": 5}, {"x": 1}):
        r = user.client.get(photo, params=params)
        body = r.json()
        assert r.status_code == 400 and body["error"] == "InvalidParameter", params
        assert body["status"] == 400 and body["message"]


def test_bomb_and_corrupt_sources(user: User) -> None:
    bomb = pyvips.Image.black(8000, 8000).cast("uchar").pngsave_buffer(compression=9)
    assert len(bomb) < 1024 * 1024  # small file, 64 megapixels
    put(user, "bad/bomb.png", bomb, "image/png")
    r = user.client.get(f"/api/img/{user.bucket}/bad/bomb.png", params={"w": 100})
    assert r.status_code == 413 and r.json()["error"] == "SourceTooLarge"
    put(user, "bad/noise.jpg", os.urandom(5000))
    r = user.client.get(f"/api/img/{user.bucket}/bad/noise.jpg", params={"w": 100})
    assert r.status_code == 415 and r.json()["error"] == "UnsupportedImage"
    put(user, "bad/cut.jpg", two_colour_jpeg()[:3000])
    r = user.client.get(f"/api/img/{user.bucket}/bad/cut.jpg", params={"w": 100})
    assert r.status_code == 415 and r.json()["error"] == "UnsupportedImage"
    r = user.client.get(f"/api/img/{user.bucket}/photos/hero.jpg",
                        params={"w": 8192, "h": 8192, "fit": "fill", "format": "png"})
    assert r.status_code in (200, 422)  # 67 MP is the output limit itself
    r = user.client.get(f"/api/img/{user.bucket}/missing.jpg", params={"w": 1})
    assert r.status_code == 404


def test_cache_is_bounded_and_collected(node: NodeProcess, user: User) -> None:
    db = node.db_url.removeprefix("sqlite://")
    put(user, "photos/many.jpg", two_colour_jpeg(200, 150))
    for w in range(10, 10 + MAX_ENTRIES + 10):
        r = user.client.get(f"/api/img/{user.bucket}/photos/many.jpg", params={"w": w})
        assert r.status_code == 200
    deadline = time.monotonic() + 30
    while True:
        with sqlite3.connect(db) as conn:
            count = conn.execute("SELECT COUNT(*) FROM image_variants").fetchone()[0]
            orphans = conn.execute(
                "SELECT COUNT(*) FROM chunk_refs WHERE refcount < 0").fetchone()[0]
        if count <= MAX_ENTRIES:
            break
        assert time.monotonic() < deadline, f"cache still holds {count} entries"
        time.sleep(0.2)
    assert orphans == 0
    # Every remaining entry's chunks are referenced, evicted ones released.
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT chunks FROM image_variants").fetchall()
        for (chunks,) in rows:
            for cid, _size in json.loads(chunks):
                ref = conn.execute("SELECT refcount FROM chunk_refs WHERE chunk_id = ?",
                                   (cid,)).fetchone()
                assert ref is not None and ref[0] >= 1


@pytest.mark.postgres
def test_cache_on_postgres(tmp_path: Path, pg_url: str) -> None:
    """The cache's statements (insert-or-nothing, LRU eviction) on PostgreSQL."""
    import asyncpg

    node = prepare_node(tmp_path / "node1", pg_url,
                        extra="[images]\ncache_max_entries = 2\ncache_interval = 0.3\n")
    node.start()
    try:
        user = signup(node)
        put(user, "p.jpg", two_colour_jpeg(200, 150))
        for w in (10, 11, 12, 13):
            r = user.client.get(f"/api/img/{user.bucket}/p.jpg", params={"w": w})
            assert r.status_code == 200 and r.headers["x-cache"] == "MISS"
        r = user.client.get(f"/api/img/{user.bucket}/p.jpg", params={"w": 13})
        assert r.headers["x-cache"] == "HIT"
        user.client.close()

        async def count() -> tuple[int, int]:
            conn = await asyncpg.connect(pg_url)
            try:
                n = await conn.fetchval("SELECT COUNT(*) FROM image_variants")
                bad = await conn.fetchval("SELECT COUNT(*) FROM chunk_refs WHERE refcount < 0")
                return n, bad
            finally:
                await conn.close()

        deadline = time.monotonic() + 30
        while (found := asyncio.run(count()))[0] > 2:
            assert time.monotonic() < deadline, found
            time.sleep(0.2)
        assert found[1] == 0
    finally:
        node.stop()
