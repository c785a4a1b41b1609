"""The image transform: source bytes + parameters -> encoded image, on libvips.

Pipeline (geometry in ``geometry.py``): read the header only and refuse what
is not a supported image or is over the pixel budget; plan the output size
and refuse it if it is over the output limits; resize with
``thumbnail_buffer`` (shrink-on-load: a JPEG is decoded at 1/2, 1/4 or 1/8
scale when that is enough, the biggest saving of the whole pipeline; EXIF
orientation applied); crop or pad; rotate; flatten alpha for JPEG; blur,
sharpen; convert to 8-bit sRGB; encode with all metadata stripped (EXIF may
carry GPS positions; the ICC profile is applied by the sRGB conversion).

Decisions:

- Sources: JPEG, PNG, WebP, GIF, HEIF/AVIF, TIFF. Every other libvips loader
  (SVG, PDF, matrix, CSV, raw, ...) is blocked process-wide, so an object is
  never parsed by a loader this service does not offer. An animated GIF or
  WebP is its first frame: the output formats' animation support differs
  (JPEG has none) and a frame-by-frame resize multiplies the cost.
- A truncated or corrupt source is an error (libvips ``fail_on=error``)
  rather than an image with a grey band.
- libvips runs one thread per transform (``concurrency_set(1)``):
  parallelism comes from running transforms side by side behind a
  ``trio.CapacityLimiter``; letting every transform also fan out to all cores
  only adds contention, and keeps one request from taking the machine.
- libvips' operation cache is off: it would keep recent sources and results
  in memory across requests; the endpoint's cache is the cache.

Time limit (``Limits.time_limit_seconds``, counted from when the transform
starts running, not from when it queued): libvips computes pixels lazily, so
decode, resize, effects and encode mostly happen while the result is written;
a progress callback kills that computation once the deadline passes (or the
trio caller is cancelled), and the deadline is checked between stages. Not
interruptible: the smart-crop analysis inside ``thumbnail_buffer`` (it works
on a downscaled copy) and the AV1 encoder, which libheif runs on the
gathered pixels (bounded by the output pixel limit).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import pyvips
import trio

from protocols.img import geometry
from protocols.img.errors import (
    OutputTooLarge,
    SourceTooLarge,
    TransformTimeout,
    UnsupportedImage,
)
from protocols.img.negotiate import CONTENT_TYPES
from protocols.img.params import FORMATS, ImageParams

# The loaders the engine offers, by libvips class and by the nickname a
# loaded image reports in "vips-loader".
_ALLOWED_LOADER_CLASSES = (
    "VipsForeignLoadJpeg", "VipsForeignLoadPng", "VipsForeignLoadWebp",
    "VipsForeignLoadNsgif", "VipsForeignLoadHeif", "VipsForeignLoadTiff",
)
_FORMAT_OF_LOADER = {
    "jpegload": "jpeg", "pngload": "png", "webpload": "webp",
    "gifload": "gif", "heifload": "heif", "tiffload": "tiff",
}
_SUPPORTED = "JPEG, PNG, WebP, GIF, HEIF/AVIF or TIFF"
# Loader options: fail on corrupt or truncated data instead of padding with grey.
_LOAD_OPTIONS = "fail_on=error"
_WHITE = 255.0


def _configure_libvips() -> None:
    """Process-wide libvips settings; see the module docstring for why."""
    pyvips.concurrency_set(1)
    pyvips.cache_set_max(0)
    pyvips.operation_block_set("VipsForeignLoad", True)
    for name in _ALLOWED_LOADER_CLASSES:
        pyvips.operation_block_set(name, False)


_configure_libvips()


@dataclass(frozen=True)
class Limits:
    """What one transform may cost. The defaults let every request within the
    parameter ranges through (8192 x 8192 is 67 MP) while refusing sources
    that would take hundreds of MB to decode and outputs whose free side a
    thin source blows up (``w=8192`` on a 1 x 5000 strip)."""

    max_source_pixels: int = 50_000_000
    max_output_pixels: int = 8192 * 8192
    max_output_side: int = 16383  # the largest WebP; the other formats allow more
    max_output_bytes: int = 32 * 1024 * 1024
    time_limit_seconds: float = 20.0


DEFAULT_LIMITS = Limits()


class SourceInfo(NamedTuple):
    """What the header says: ``format`` is jpeg, png, webp, gif, heif, avif or
    tiff; ``width`` x ``height`` is the upright size (EXIF orientation
    applied), of the first frame for an animation."""

    format: str
    width: int
    height: int
    has_alpha: bool
    pages: int


class TransformResult(NamedTuple):
    """An encoded image; unpacks as ``(data, content_type, width, height)``."""

    data: bytes
    content_type: str
    width: int
    height: int


def probe(source: bytes) -> SourceInfo:
    """Read the header of ``source`` without decoding pixels.

    Raises :class:`UnsupportedImage` for anything that is not a supported
    image (random bytes, text, a blocked format such as SVG).
    """
    try:
        header = pyvips.Image.new_from_buffer(source, _LOAD_OPTIONS, access="sequential")
        loader = header.get("vips-loader")
    except pyvips.Error:
        raise UnsupportedImage(f"the source is not a {_SUPPORTED} image") from None
    base = loader.removesuffix("_buffer").removesuffix("_source")
    fmt = _FORMAT_OF_LOADER.get(base)
    if fmt is None:  # unreachable while the other loaders are blocked
        raise UnsupportedImage(f"the source is not a {_SUPPORTED} image")
    if fmt == "heif" and _field(header, "heif-compression") == "av1":
        fmt = "avif"
    orientation = _int_field(header, "orientation", 1)
    width, height = geometry.upright_size(header.width, header.height, orientation)
    pages = _int_field(header, "n-pages", 1)
    return SourceInfo(fmt, width, height, bool(header.hasalpha()), pages)


def transform(
    source: bytes,
    params: ImageParams,
    output_format: str,
    *,
    limits: Limits = DEFAULT_LIMITS,
    cancel: threading.Event | None = None,
) -> TransformResult:
    """Transform ``source`` as ``params`` asks and encode it as ``output_format``.

    Blocking and CPU-bound: from trio, use :func:`transform_async`. Raises
    :class:`UnsupportedImage`, :class:`SourceTooLarge`,
    :class:`OutputTooLarge` or :class:`TransformTimeout`; setting ``cancel``
    (from another thread) stops the work as the time limit does.
    """
    if output_format not in FORMATS or params.format not in (None, output_format):
        raise ValueError(f"cannot encode {output_format!r} for format={params.format}")
    watchdog = _Watchdog(limits.time_limit_seconds, cancel)
    info = probe(source)
    _check_limits(info, params, limits)
    try:
        image = _build(source, info, params.normalized(), output_format, watchdog)
        watchdog.check()
        data = _encode(image, output_format, params.quality_for(output_format), watchdog)
    except pyvips.Error as exc:
        watchdog.check()  # a kill surfaces as a libvips error: report it as what it is
        raise UnsupportedImage(f"the image data is corrupt or truncated: {_reason(exc)}") from None
    if len(data) > limits.max_output_bytes:
        raise OutputTooLarge(
            f"the result is {len(data)} bytes, over the limit of {limits.max_output_bytes}")
    return TransformResult(data, CONTENT_TYPES[output_format], image.width, image.height)


async def transform_async(
    source: bytes,
    params: ImageParams,
    output_format: str,
    *,
    limits: Limits = DEFAULT_LIMITS,
    limiter: trio.CapacityLimiter | None = None,
) -> TransformResult:
    """:func:`transform` on a worker thread, at most ``limiter`` at a time
    (default: :func:`default_limiter`, one per core).

    If the caller is cancelled (client gone, the endpoint's own deadline) it
    returns at once and the running transform is killed at its next progress
    tick; its thread keeps the limiter slot until it has actually stopped,
    so cancelled work never oversubscribes the cores.
    """
    cancel = threading.Event()
    work = partial(transform, source, params, output_format, limits=limits, cancel=cancel)
    try:
        return await trio.to_thread.run_sync(
            work, limiter=limiter or default_limiter(), abandon_on_cancel=True)
    except trio.Cancelled:
        cancel.set()
        raise


_LIMITER: trio.lowlevel.RunVar[trio.CapacityLimiter] = trio.lowlevel.RunVar("img_limiter")


def default_limiter() -> trio.CapacityLimiter:
    """This trio run's transform limiter, sized :func:`default_concurrency`."""
    try:
        return _LIMITER.get()
    except LookupError:
        limiter = trio.CapacityLimiter(default_concurrency())
        _LIMITER.set(limiter)
        return limiter


def default_concurrency() -> int:
    """The cores this process may use: one libvips thread per transform."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class _Watchdog:
    """Stops a transform past its deadline or when its caller is gone."""

    def __init__(self, seconds: float, cancel: threading.Event | None) -> None:
        self._deadline = time.monotonic() + seconds
        self._seconds = seconds
        self._cancel = cancel

    def expired(self) -> bool:
        """Whether the work should stop now."""
        cancelled = self._cancel is not None and self._cancel.is_set()
        return cancelled or time.monotonic() > self._deadline

    def check(self) -> None:
        """Raise :class:`TransformTimeout` if the work should stop."""
        if self.expired():
            raise TransformTimeout(
                f"the transform took longer than {self._seconds:g} seconds and was stopped")

    def watch(self, image: pyvips.Image) -> None:
        """Kill the computation of ``image`` (and of the pipeline behind it)
        at the first progress tick after the deadline."""
        image.set_progress(True)
        image.signal_connect("eval", self._on_eval)

    def _on_eval(self, image: pyvips.Image, _progress: object) -> None:
        if self.expired():
            image.set_kill(True)


def _check_limits(info: SourceInfo, params: ImageParams, limits: Limits) -> None:
    """Refuse, from the header alone, sources and outputs over the limits."""
    pixels = info.width * info.height
    if pixels > limits.max_source_pixels:
        raise SourceTooLarge(
            f"the source is {info.width}x{info.height} ({pixels / 1e6:.1f} megapixels), "
            f"over the limit of {limits.max_source_pixels / 1e6:g} megapixels")
    width, height = geometry.planned_size(info.width, info.height, params)
    if width * height > limits.max_output_pixels or max(width, height) > limits.max_output_side:
        raise OutputTooLarge(
            f"the result would be {width}x{height}, over the limit of "
            f"{limits.max_output_pixels / 1e6:g} megapixels or {limits.max_output_side} "
            "pixels a side")


def _build(
    source: bytes, info: SourceInfo, params: ImageParams, output_format: str,
    watchdog: _Watchdog,
) -> pyvips.Image:
    """The lazy pipeline up to, not including, encoding."""
    image = _resize(source, info, params, watchdog)
    if params.rotate:
        # rot reads its input in another order than a sequential load
        # delivers it ("out of order read" when no resize came between):
        # render the (resized, so bounded by the output limit) image first.
        watchdog.watch(image)
        image = image.copy_memory()
        watchdog.check()
        image = image.rot(f"d{params.rotate}")
    if output_format == "jpeg" and image.hasalpha():
        image = image.flatten(background=[_WHITE] * (image.bands - 1))
    if params.blur:
        image = image.gaussblur(params.blur)
    if params.sharpen:
        image = image.sharpen(sigma=params.sharpen)
    return _to_web_colour(image)


def _resize(
    source: bytes, info: SourceInfo, params: ImageParams, watchdog: _Watchdog,
) -> pyvips.Image:
    """Scale, crop or pad in the source's (upright) orientation."""
    box_w, box_h = geometry.source_box(params)
    gravity = geometry.source_gravity(params.gravity, params.rotate)
    both = box_w is not None and box_h is not None
    if box_w is None and box_h is None:
        # No resize; thumbnail at the source's own size still applies EXIF orientation.
        return _thumbnail(source, info.width, info.height)
    if params.fit == "crop":
        return _crop(source, info, box_w, box_h, gravity, watchdog)
    if not both:
        # One side (or none): fit, the other side unbounded.
        return _thumbnail(source, box_w or geometry.VIPS_MAX_COORD,
                          box_h or geometry.VIPS_MAX_COORD)
    assert box_w is not None and box_h is not None
    if params.fit == "fill":
        return _thumbnail(source, box_w, box_h, size="force")
    if params.fit == "cover":
        crop = geometry.cover_interest(info.width, info.height, (box_w, box_h), gravity)
        return _thumbnail(source, box_w, box_h, crop=crop)
    image = _thumbnail(source, box_w, box_h)
    if params.fit == "pad":
        image = _pad(image, (box_w, box_h), gravity)
    return image


def _thumbnail(source: bytes, width: int, height: int, **options: str) -> pyvips.Image:
    # fail_on has to go in the loader's option string: thumbnail's own
    # fail_on argument does not reach the loader in libvips 8.18.
    return pyvips.Image.thumbnail_buffer(
        source, width, height=height, option_string=_LOAD_OPTIONS, **options)


def _crop(
    source: bytes, info: SourceInfo, box_w: int | None, box_h: int | None, gravity: str,
    watchdog: _Watchdog,
) -> pyvips.Image:
    """Cut a region at the source's own scale (``fit=crop``)."""
    width = info.width if box_w is None else min(box_w, info.width)
    height = info.height if box_h is None else min(box_h, info.height)
    # thumbnail at the source's own size: no resampling, EXIF orientation applied.
    image = _thumbnail(source, info.width, info.height)
    if gravity == "sm":
        # smartcrop reads the image more than once: decode it to memory first
        # (bounded by the source pixel budget), under the watchdog.
        watchdog.watch(image)
        image = image.copy_memory()
        watchdog.check()
        return image.smartcrop(width, height, interesting="attention")
    left, top = geometry.placement((width, height), (image.width, image.height), gravity)
    return image.crop(left, top, width, height)


def _pad(image: pyvips.Image, box: geometry.Size, gravity: str) -> pyvips.Image:
    """Extend ``image`` to ``box``: white, or transparent if it has alpha."""
    if (image.width, image.height) == box:
        return image
    left, top = geometry.placement((image.width, image.height), box, gravity)
    colour = image.bands - 1 if image.hasalpha() else image.bands
    background = [_WHITE] * colour + [0.0] * (image.bands - colour)
    return image.embed(left, top, box[0], box[1], extend="background", background=background)


def _to_web_colour(image: pyvips.Image) -> pyvips.Image:
    """8-bit sRGB (or 8-bit grey): what browsers expect, whatever the source
    (16-bit PNG, CMYK or Lab TIFF). thumbnail has already applied an embedded
    ICC profile for CMYK sources."""
    grey = image.interpretation in ("b-w", "grey16")
    target = "b-w" if grey else "srgb"
    if image.interpretation != target or image.format != "uchar":
        image = image.colourspace(target)
        if image.format != "uchar":
            image = image.cast("uchar")
    return image


def _encode(
    image: pyvips.Image, output_format: str, quality: int | None, watchdog: _Watchdog,
) -> bytes:
    """Encode with no metadata; this is where libvips computes the pixels."""
    watchdog.watch(image)
    strip = pyvips.enums.ForeignKeep.NONE
    if output_format == "jpeg":
        return image.jpegsave_buffer(Q=quality, keep=strip, optimize_coding=True)
    if output_format == "webp":
        return image.webpsave_buffer(Q=quality, keep=strip)
    if output_format == "avif":
        return image.heifsave_buffer(Q=quality, compression="av1", bitdepth=8, keep=strip)
    return image.pngsave_buffer(keep=strip)


def _field(image: pyvips.Image, name: str) -> object:
    """A header field, or None if the image does not have it."""
    return image.get(name) if image.get_typeof(name) else None


def _int_field(image: pyvips.Image, name: str, default: int) -> int:
    """An integer header field, or ``default`` if the image does not have one."""
    value = _field(image, name)
    return value if isinstance(value, int) and value else default


def _reason(exc: pyvips.Error) -> str:
    """libvips' own reason, one line: "VipsJpeg: premature end of JPEG image"."""
    lines = [line.strip() for line in str(exc.detail or exc.message).splitlines() if line.strip()]
    return lines[0][:200] if lines else "unknown error"
