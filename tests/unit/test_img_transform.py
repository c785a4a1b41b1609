"""The image transform engine on real libvips (protocols/img/transform.py).

Every result is decoded again with pyvips and checked by its magic bytes,
its loader and its size, never by what the engine says about itself alone.
"""

from __future__ import annotations

import itertools
import os

import pytest
import pyvips

from protocols.img.errors import (
    OutputTooLarge,
    SourceTooLarge,
    TransformTimeout,
    UnsupportedImage,
)
from protocols.img.params import FITS, FORMATS, GRAVITIES, parse_params
from protocols.img.transform import Limits, TransformResult, probe, transform

RED = [255, 0, 0]
BLUE = [0, 0, 255]
WHITE = [255, 255, 255]


def sniff(data: bytes) -> str:
    """The format by magic bytes."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[4:12] == b"ftypavif":
        return "avif"
    return "unknown"


def decoded(result: TransformResult, fmt: str) -> pyvips.Image:
    """The result decoded, after checking that it is what it claims."""
    assert sniff(result.data) == fmt
    assert result.content_type == f"image/{fmt}"
    image = pyvips.Image.new_from_buffer(result.data, "")
    loader = image.get("vips-loader")
    assert loader.startswith("heifload" if fmt == "avif" else f"{fmt}load")
    assert (image.width, image.height) == (result.width, result.height)
    return image


def run(source: bytes, query: str, fmt: str = "png", **kwargs: object) -> pyvips.Image:
    """Transform and decode."""
    return decoded(transform(source, parse_params(query), fmt, **kwargs), fmt)  # type: ignore[arg-type]


def solid(width: int, height: int, colour: list[int]) -> pyvips.Image:
    """An sRGB image of one colour."""
    return (pyvips.Image.black(width, height) + colour).cast("uchar").copy(interpretation="srgb")


def halves(width: int, height: int) -> pyvips.Image:
    """Left half red, right half blue."""
    left = pyvips.Image.xyz(width, height)[0] < width // 2
    return left.ifthenelse(RED, BLUE).cast("uchar").copy(interpretation="srgb")


def close(pixel: list[float], colour: list[int], slack: int = 24) -> bool:
    return all(abs(a - b) <= slack for a, b in zip(pixel, colour, strict=False))


@pytest.fixture(scope="module")
def photo() -> bytes:
    """A 640x480 JPEG with detail at several scales, like a photo."""
    bands = [
        pyvips.Image.perlin(640, 480, cell_size=48).linear(90, 128),
        pyvips.Image.worley(640, 480, cell_size=64),
        pyvips.Image.gaussnoise(640, 480, sigma=30, mean=128),
    ]
    image = bands[0].bandjoin(bands[1:]).cast("uchar").copy(interpretation="srgb")
    return image.jpegsave_buffer(Q=90)


@pytest.fixture(scope="module")
def split_png() -> bytes:
    """A 400x200 PNG, left half red, right half blue."""
    return halves(400, 200).pngsave_buffer()


@pytest.mark.parametrize(
    ("fit", "fmt", "gravity"), list(itertools.product(FITS, FORMATS, GRAVITIES)))
def test_every_fit_format_and_gravity(photo: bytes, fit: str, fmt: str, gravity: str) -> None:
    image = run(photo, f"w=200&h=300&fit={fit}&gravity={gravity}", fmt)
    # A landscape source in a portrait box: fit leaves it landscape.
    expected = (200, 150) if fit in ("fit", "contain") else (200, 300)
    assert (image.width, image.height) == expected


@pytest.mark.parametrize(("query", "size"), [
    ("", (640, 480)),
    ("w=160", (160, 120)),
    ("h=120", (160, 120)),
    ("w=160&fit=cover", (160, 120)),  # one side: cover is fit
    ("h=120&fit=pad", (160, 120)),
    ("w=1280", (1280, 960)),  # fit enlarges
    ("w=160&fit=crop", (160, 480)),  # crop never scales
    ("w=1000&h=100&fit=crop", (640, 100)),  # ... nor enlarges
    ("w=160&dpr=2", (320, 240)),
    ("w=100&h=100&fit=cover&dpr=2.5", (250, 250)),
    ("w=400&h=300&fit=fill&rotate=90", (400, 300)),  # w/h describe the rotated result
    ("rotate=90", (480, 640)),
    ("rotate=270&w=120", (120, 160)),
    ("rotate=180", (640, 480)),
])
def test_sizes(photo: bytes, query: str, size: tuple[int, int]) -> None:
    image = run(photo, query, "webp")
    assert (image.width, image.height) == size


@pytest.mark.parametrize(("query", "top_left", "bottom_right"), [
    # cover: the 400x200 source scales to 200x100 and loses its sides.
    ("w=100&h=100&fit=cover&gravity=we", RED, RED),
    ("w=100&h=100&fit=cover&gravity=ea", BLUE, BLUE),
    ("w=100&h=100&fit=cover&gravity=ce", RED, BLUE),
    ("w=100&h=100&fit=cover&gravity=no", RED, BLUE),  # across the cut: centre
    # crop: a region at the source's own scale.
    ("w=100&h=100&fit=crop&gravity=we", RED, RED),
    ("w=100&h=100&fit=crop&gravity=ea", BLUE, BLUE),
    ("w=100&h=100&fit=crop&gravity=so", RED, BLUE),
    # Rotated 90 clockwise: the result's top is the source's left.
    ("w=100&h=50&fit=cover&gravity=no&rotate=90", RED, RED),
    ("w=100&h=50&fit=cover&gravity=so&rotate=90", BLUE, BLUE),
    ("w=100&h=50&fit=crop&gravity=no&rotate=270", BLUE, BLUE),
    ("rotate=90", RED, BLUE),  # top-left was bottom-left, bottom-right was top-right
    ("rotate=180", BLUE, RED),
    # pad: 400x200 in 200x200 is 200x100 plus white, placed by gravity.
    ("w=200&h=200&fit=pad&gravity=no", RED, WHITE),
    ("w=200&h=200&fit=pad&gravity=so", WHITE, BLUE),
])
def test_gravity_and_rotation_pick_the_right_part(
    split_png: bytes, query: str, top_left: list[int], bottom_right: list[int],
) -> None:
    image = run(split_png, query, "png")
    assert close(image(2, 2), top_left)
    assert close(image(image.width - 3, image.height - 3), bottom_right)


def test_smart_gravity_finds_the_subject() -> None:
    # Flat grey everywhere but a saturated, busy patch near the right edge.
    flat = solid(600, 200, [128, 128, 128])
    patch = pyvips.Image.gaussnoise(150, 150, sigma=80, mean=128).cast("uchar")
    busy = patch.bandjoin([patch.rot180(), patch.fliphor()]).copy(interpretation="srgb")
    source = flat.insert(busy, 430, 25).pngsave_buffer()
    for fit in ("cover", "crop"):
        smart = run(source, f"w=200&h=200&fit={fit}&gravity=sm")
        centre = run(source, f"w=200&h=200&fit={fit}&gravity=ce")
        assert smart.deviate() > 4 * max(centre.deviate(), 1), fit


def test_exif_orientation_is_applied_and_metadata_stripped() -> None:
    stored = halves(60, 40).copy()
    stored.set_type(pyvips.GValue.gint_type, "orientation", 6)  # shown turned 90 clockwise
    source = stored.jpegsave_buffer(Q=95)
    assert probe(source)[1:3] == (40, 60)
    image = run(source, "", "png")
    assert (image.width, image.height) == (40, 60)
    assert close(image(20, 5), RED) and close(image(20, 55), BLUE)
    jpeg = run(source, "w=20", "jpeg")
    assert not jpeg.get_typeof("exif-data")
    assert not jpeg.get_typeof("orientation")


def test_alpha_is_flattened_on_white_for_jpeg_and_kept_elsewhere() -> None:
    transparent = solid(40, 40, RED).bandjoin(0).copy(interpretation="srgb").pngsave_buffer()
    jpeg = run(transparent, "", "jpeg")
    assert jpeg.bands == 3 and close(jpeg(20, 20), WHITE)
    for fmt in ("png", "webp", "avif"):
        assert run(transparent, "", fmt).hasalpha(), fmt
    padded = run(solid(40, 20, RED).bandjoin(255).pngsave_buffer(), "w=40&h=40&fit=pad")
    assert padded(20, 1)[3] == 0 and padded(20, 20)[3] == 255  # transparent bars


def test_an_animated_gif_is_its_first_frame() -> None:
    frames = pyvips.Image.arrayjoin([solid(30, 20, RED), solid(30, 20, BLUE)], across=1).copy()
    frames.set_type(pyvips.GValue.gint_type, "page-height", 20)
    source = frames.gifsave_buffer()
    assert probe(source).pages == 2
    image = run(source, "w=60", "png")
    assert (image.width, image.height) == (60, 40)
    assert close(image(30, 20), RED)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_one_pixel_image(fmt: str) -> None:
    source = solid(1, 1, BLUE).pngsave_buffer()
    assert (run(source, "w=100", fmt).width, run(source, "w=100", fmt).height) == (100, 100)
    assert run(source, "w=100&h=50&fit=crop", fmt).width == 1
    assert run(source, "w=8&h=8&fit=cover&gravity=sm", fmt).height == 8


@pytest.mark.parametrize("source", [
    pyvips.Image.gaussnoise(50, 40).cast("ushort").copy(interpretation="rgb16")
    .bandjoin([1000, 2000]).pngsave_buffer(),  # 16-bit RGB
    solid(50, 40, [0, 0, 0]).extract_band(0).copy(interpretation="b-w").pngsave_buffer(),
    pyvips.Image.black(50, 40).new_from_image([0, 200, 0, 0]).cast("uchar")
    .copy(interpretation="cmyk").jpegsave_buffer(),
    solid(50, 40, RED).tiffsave_buffer(),
    solid(50, 40, RED).webpsave_buffer(),
    solid(50, 40, RED).heifsave_buffer(compression="av1"),
], ids=["png16", "grey", "cmyk-jpeg", "tiff", "webp", "avif"])
def test_other_sources_become_8_bit_srgb(source: bytes) -> None:
    for fmt in FORMATS:
        image = run(source, "w=25", fmt)
        assert image.format == "uchar" and image.width == 25
        assert image.interpretation in ("srgb", "b-w")


def _truncated_jpeg() -> bytes:
    data = pyvips.Image.gaussnoise(200, 200).cast("uchar").jpegsave_buffer()
    return data[: len(data) // 2]


@pytest.mark.parametrize("source", [
    b"",
    os.urandom(4096),
    b"hello, this is a text file\n" * 20,
    _truncated_jpeg(),
    pyvips.Image.gaussnoise(200, 200).cast("uchar").pngsave_buffer()[:1500],
    b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',  # a blocked loader
    b"\x89PNG\r\n\x1a\n" + b"\x00" * 100,
], ids=["empty", "random", "text", "truncated-jpeg", "truncated-png", "svg", "png-magic-only"])
def test_corrupt_or_foreign_sources_are_unsupported(source: bytes) -> None:
    with pytest.raises(UnsupportedImage) as caught:
        transform(source, parse_params("w=50"), "webp")
    assert caught.value.status == 415
    assert caught.value.message.startswith(
        ("the source is not a JPEG, PNG", "the image data is corrupt or truncated"))


def test_a_decompression_bomb_is_refused_from_its_header() -> None:
    bomb = pyvips.Image.black(10000, 10000).pngsave_buffer(compression=9)
    assert len(bomb) < 200_000  # 100 megapixels in a small file
    with pytest.raises(SourceTooLarge) as caught:
        transform(bomb, parse_params("w=10"), "webp")
    assert caught.value.status == 413 and "10000x10000" in caught.value.message


def test_outputs_over_the_limits_are_refused() -> None:
    strip = solid(1, 5000, RED).pngsave_buffer()
    with pytest.raises(OutputTooLarge) as caught:  # 8192 x 40,960,000
        transform(strip, parse_params("w=8192"), "webp")
    assert caught.value.status == 422
    with pytest.raises(OutputTooLarge, match="bytes"):
        transform(strip, parse_params(""), "png", limits=Limits(max_output_bytes=10))
    with pytest.raises(OutputTooLarge):
        transform(strip, parse_params(""), "png", limits=Limits(max_output_pixels=100))


def test_the_time_limit_stops_a_long_transform(photo: bytes) -> None:
    # Upscale to 67 megapixels and blur with a wide kernel: minutes of work.
    with pytest.raises(TransformTimeout) as caught:
        transform(photo, parse_params("w=8192&h=8192&fit=fill&blur=100"), "png",
                  limits=Limits(time_limit_seconds=0.2))
    assert caught.value.status == 503


def test_a_requested_format_must_be_the_output_format(photo: bytes) -> None:
    with pytest.raises(ValueError, match="format=png"):
        transform(photo, parse_params("format=png"), "webp")
