"""``/s/{code}`` in a real browser: Debian's Chromium, headless, against a live node.

``--dump-dom`` gives the DOM Chromium built (what a person would see), and
``--screenshot`` a PNG that is decoded and checked for content.  Chromium is
installed by scripts/test-services.sh (``apt-get install chromium``).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import pyvips

from tests.harness import NodeProcess, started_node
from tests.rest.conftest import User, signup

WINDOW = (900, 700)


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium is not installed: run scripts/test-services.sh "
                    "(apt-get install chromium)")
    return path


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    with started_node(tmp_path_factory.mktemp("browsernode")) as n:
        yield n


@pytest.fixture(scope="module")
def user(node: NodeProcess) -> Iterator[User]:
    u = signup(node)
    yield u
    u.client.close()


def run_chromium(chromium: str, profile: Path, *args: str) -> str:
    """One headless Chromium run (its own profile, bounded in time); stdout."""
    done = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-extensions", "--hide-scrollbars", f"--user-data-dir={profile}",
         f"--window-size={WINDOW[0]},{WINDOW[1]}", *args],
        capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def make_share(user: User, key: str, data: bytes, **options: object) -> str:
    r = user.client.post("/api/v1/files", params={"bucket": user.bucket, "key": key},
                         content=data, headers=user.api_headers)
    assert r.status_code == 201, r.text
    r = user.client.post("/api/shares", json={"bucket": user.bucket, "objectKey": key,
                                              **options})
    assert r.status_code == 201, r.text
    return r.json()["url"]


def test_share_page_renders_in_chromium(chromium: str, user: User, tmp_path: Path) -> None:
    url = make_share(user, "docs/presentation.pdf", b"%PDF" + b"x" * 5_242_876)
    dom = run_chromium(chromium, tmp_path / "profile", "--dump-dom", url)
    assert '<h1 id="file-name">presentation.pdf</h1>' in dom
    assert '<p class="meta" id="file-size">5.2 MB</p>' in dom
    assert 'id="download"' in dom and "?download=1" in dom
    assert 'type="password"' not in dom

    shot = tmp_path / "share.png"
    run_chromium(chromium, tmp_path / "profile", f"--screenshot={shot}", url)
    assert shot.stat().st_size > 1000
    image = pyvips.Image.new_from_file(str(shot))
    assert image.get("vips-loader") == "pngload"
    assert (image.width, image.height) == WINDOW
    # Not a blank page: the card, the text and the button differ from the background.
    assert image.deviate() > 10


def test_protected_and_dead_links_in_chromium(chromium: str, user: User,
                                              tmp_path: Path) -> None:
    url = make_share(user, "secret.txt", b"secret", password="pw", maxDownloads=1)
    dom = run_chromium(chromium, tmp_path / "profile", "--dump-dom", url)
    assert 'type="password"' in dom and 'method="post"' in dom and "secret.txt" in dom
    shot = tmp_path / "locked.png"
    run_chromium(chromium, tmp_path / "profile", f"--screenshot={shot}", url)
    assert shot.stat().st_size > 1000

    user.client.delete("/api/shares",
                       params={"id": user.client.get("/api/shares").json()["shares"][0]["id"]})
    dom = run_chromium(chromium, tmp_path / "profile", "--dump-dom", url)
    assert "Link unavailable" in dom and "secret.txt" not in dom
