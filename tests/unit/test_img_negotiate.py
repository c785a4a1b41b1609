"""Automatic output format from the Accept header (protocols/img/negotiate.py)."""

from __future__ import annotations

import pytest

from protocols.img.negotiate import (
    choose_format,
    format_of_content_type,
    parse_accept,
    quality_of,
)

CHROME = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
FIREFOX = "image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5"
SAFARI_13 = "image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5"
SAFARI_14 = "image/webp,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5"


@pytest.mark.parametrize(("accept", "source", "alpha", "expected"), [
    (CHROME, "jpeg", False, "avif"),
    (FIREFOX, "png", True, "avif"),
    (SAFARI_14, "jpeg", False, "webp"),
    (SAFARI_13, "jpeg", False, "jpeg"),  # image/* does not promise WebP or AVIF
    (SAFARI_13, "png", True, "png"),
    ("*/*", "jpeg", False, "jpeg"),
    (None, "png", False, "png"),  # no Accept header: the source's own kind
    ("", "jpeg", False, "jpeg"),
    ("image/webp", "jpeg", False, "webp"),
    ("image/avif;q=0,image/webp", "jpeg", False, "webp"),  # q=0 refuses
    ("image/avif;q=0,image/webp;q=0,*/*", "png", False, "png"),
    ("image/avif;q=0.5,image/webp;q=0.9", "jpeg", False, "webp"),  # higher q wins
    ("image/avif;q=0.9,image/webp;q=0.9", "jpeg", False, "avif"),  # a tie goes to AVIF
    ("IMAGE/AVIF ; Q=0.7", "jpeg", False, "avif"),  # case and spaces
    ("image/avif;q=abc,image/webp", "jpeg", False, "webp"),  # a malformed entry is skipped
    ("image/avif;q=2,*/*", "jpeg", False, "jpeg"),  # so is an out-of-range q
    # Sources that are not jpeg/png: PNG if they have alpha, else JPEG; GIF is PNG.
    ("*/*", "gif", False, "png"),
    ("*/*", "webp", False, "jpeg"),
    ("*/*", "webp", True, "png"),
    ("*/*", "heif", False, "jpeg"),
    ("*/*", "tiff", True, "png"),
    ("*/*", "avif", None, "jpeg"),
    ("*/*", None, None, "jpeg"),
    # The fallback respects a refusal, and gives up gracefully.
    ("image/png", "jpeg", False, "png"),
    ("image/*,image/jpeg;q=0", "jpeg", False, "png"),
    ("text/html", "jpeg", False, "jpeg"),
])
def test_choose_format(accept: str | None, source: str | None, alpha: bool | None,
                       expected: str) -> None:
    assert choose_format(accept, source, alpha) == expected


def test_the_most_specific_range_decides() -> None:
    ranges = parse_accept("image/*;q=0.3,image/png;q=0.9,*/*;q=0.1")
    assert quality_of(ranges, "image/png") == 0.9
    assert quality_of(ranges, "image/jpeg") == 0.3
    assert quality_of(ranges, "text/plain") == 0.1
    assert quality_of(ranges, "image/jpeg", wildcards=False) == 0.0
    assert quality_of([], "image/png") == 1.0


@pytest.mark.parametrize(("content_type", "expected"), [
    ("image/jpeg", "jpeg"), ("image/JPEG; charset=x", "jpeg"), ("image/png", "png"),
    ("image/heic", "heif"), ("application/octet-stream", None), (None, None), ("", None),
])
def test_format_of_content_type(content_type: str | None, expected: str | None) -> None:
    assert format_of_content_type(content_type) == expected
