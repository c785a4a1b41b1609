"""The query parameters of ``/api/img/{bucket}/{path}``: parsing, validation and
the canonical form used as a cache key. Sans-I/O: strings in, values out.

Parameters (all optional; an unknown or repeated name is an error):

``w``, ``h``
    Target width and height in CSS pixels, integers 1..8192. With only one of
    them the other follows from the source's aspect ratio.
``dpr``
    Device pixel ratio, 1..4, decimals allowed (``1.5``). It multiplies ``w``
    and ``h``; if a side would exceed 8192, both are scaled down by the same
    factor so the aspect ratio survives (the result is capped, not refused).
    Without ``w`` or ``h`` it has no effect.
``fit`` (default ``fit``), how the source meets the ``w`` x ``h`` box:

    - ``fit``: scale, keeping the aspect ratio, until the image fits inside the
      box; one side equals the box, the other is at most the box (CSS
      ``object-fit: contain`` without the bars, sharp ``inside``, Cloudinary
      ``fit``, imgix ``clip``). Enlarges small sources.
    - ``contain``: the same as ``fit`` (an alias, as in CSS).
    - ``fill``: stretch to exactly ``w`` x ``h``, ignoring the aspect ratio
      (sharp ``fill``, Cloudinary ``scale`` with both sides, imgix ``scale``).
    - ``cover``: scale, keeping the aspect ratio, until the image covers the
      box, then cut what overflows so the result is exactly ``w`` x ``h``
      (sharp ``cover``, Cloudinary ``fill``, imgix ``crop``); ``gravity``
      chooses which part stays.
    - ``crop``: cut a ``w`` x ``h`` region out of the source at its original
      scale, never scaling (Cloudinary ``crop``); a side larger than the
      source keeps the source's size. ``gravity`` anchors the region.
    - ``pad``: ``fit``, then extend with a background to exactly ``w`` x ``h``
      (Cloudinary ``pad``, sharp ``contain``, imgix ``fill``); ``gravity``
      places the image in the box. The background is white, or transparent
      when the image has an alpha channel and the output format keeps it.

    With only one of ``w``/``h``, every mode but ``crop`` is plain ``fit``
    (there is no box to fill, cover or pad).
``format``
    ``webp``, ``avif``, ``jpeg`` (``jpg`` is an alias) or ``png``. Without it
    the endpoint negotiates from the Accept header (see ``negotiate.py``).
``q``
    Quality 1..100 for the lossy formats; defaults: jpeg 80, webp 80, avif 60
    (AVIF's scale is steeper: 60 looks like JPEG 80 at a fraction of the
    size). PNG is lossless and ignores it.
``blur``
    Gaussian blur, the sigma in output pixels, 0.3..100 (as sharp's
    ``blur(sigma)``); ``0`` means none.
``sharpen``
    Unsharp-mask sharpening, the sigma of the mask in output pixels, 0..10
    (as sharp's ``sharpen({sigma})``); ``0`` means none.
``rotate``
    Clockwise rotation in degrees: 0, 90, 180 or 270. Arbitrary angles are
    refused: they need a background fill and a larger bounding box, and a
    right-angle rotation is lossless and cheap. ``w``, ``h`` and ``gravity``
    describe the *rotated* result, so ``w=400&h=300&rotate=90`` is 400x300.
    EXIF orientation is always applied first.
``gravity`` (default ``ce``)
    The anchor of ``cover``, ``crop`` and ``pad``: ``ce`` centre, ``no``
    north (top), ``so`` south (bottom), ``ea`` east (right), ``we`` west
    (left), ``sm`` smart: libvips' attention strategy (skin tones, saturated
    colour, edges), which finds subjects better than the entropy one; for
    ``pad`` ``sm`` is the centre.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from urllib.parse import parse_qsl

from protocols.img.errors import InvalidParameter

MAX_SIDE = 8192
MAX_DPR = 4.0
MAX_PARAMS = 32

FITS = ("fit", "contain", "fill", "cover", "crop", "pad")
FORMATS = ("webp", "avif", "jpeg", "png")
GRAVITIES = ("ce", "sm", "no", "so", "ea", "we")
ROTATIONS = (0, 90, 180, 270)
FORMAT_ALIASES = {"jpg": "jpeg"}
DEFAULT_QUALITY = {"jpeg": 80, "webp": 80, "avif": 60}
KNOWN = ("w", "h", "dpr", "fit", "format", "q", "blur", "sharpen", "rotate", "gravity")

# Plain decimal numbers only: no signs, exponents, "nan" or "inf" (all of which
# float() accepts), and short enough that a value cannot be a payload.
_INT = re.compile(r"[0-9]{1,6}")
_DECIMAL = re.compile(r"[0-9]{1,6}(\.[0-9]{1,3})?")


@dataclass(frozen=True)
class ImageParams:
    """A validated request. ``width``/``height`` already include ``dpr``."""

    width: int | None = None
    height: int | None = None
    fit: str = "fit"
    format: str | None = None  # None: negotiate from the Accept header
    quality: int | None = None  # None: the output format's default
    blur: float = 0.0
    sharpen: float = 0.0
    rotate: int = 0
    gravity: str = "ce"

    def quality_for(self, output_format: str) -> int | None:
        """The quality the encoder gets for ``output_format`` (None for PNG)."""
        if output_format not in DEFAULT_QUALITY:
            return None
        return self.quality if self.quality is not None else DEFAULT_QUALITY[output_format]

    def normalized(self) -> ImageParams:
        """The same transform with every choice that cannot change the output
        folded onto one value: ``contain`` is ``fit``; with only one side every
        mode but ``crop`` is ``fit``; gravity is ``ce`` where it is unused."""
        fit = "fit" if self.fit == "contain" else self.fit
        both = self.width is not None and self.height is not None
        either = self.width is not None or self.height is not None
        if not either or (not both and fit != "crop"):
            fit = "fit"
        gravity = self.gravity if fit in ("cover", "crop", "pad") else "ce"
        return replace(self, fit=fit, gravity=gravity)

    def canonical(self, output_format: str) -> str:
        """The cache key of this transform once its output format is known:
        sorted ``name=value`` pairs with every default filled in, so requests
        that must produce the same bytes (``w=200&h=200`` / ``h=200&w=200``,
        ``w=100&dpr=2`` / ``w=200``, ``fit=contain`` / ``fit=fit``) share one
        entry. The endpoint prefixes it with the source's identity (bucket,
        key and ETag or version)."""
        if self.format is not None and self.format != output_format:
            raise ValueError(f"format={self.format} was requested, not {output_format}")
        if output_format not in FORMATS:
            raise ValueError(f"unknown output format {output_format!r}")
        norm = self.normalized()
        quality = norm.quality_for(output_format)
        values = {
            "w": "auto" if norm.width is None else str(norm.width),
            "h": "auto" if norm.height is None else str(norm.height),
            "fit": norm.fit,
            "format": output_format,
            "q": "lossless" if quality is None else str(quality),
            "blur": _number(norm.blur),
            "sharpen": _number(norm.sharpen),
            "rotate": str(norm.rotate),
            "gravity": norm.gravity,
        }
        return "&".join(f"{name}={values[name]}" for name in sorted(values))


QueryInput = str | Mapping[str, str] | Iterable[tuple[str, str]]


def parse_params(query: QueryInput, *, ignore: Iterable[str] = ()) -> ImageParams:
    """Validate the transform parameters of a request.

    ``query`` is the raw query string, a mapping, or (name, value) pairs, e.g.
    Quart's ``request.args.items(multi=True)`` so repeated names are seen.
    ``ignore`` names parameters the endpoint consumes itself (a signature, an
    expiry). Raises :class:`InvalidParameter` naming the first bad parameter.
    """
    raw = _collect(_pairs(query), frozenset(ignore))
    width = _bounded_int(raw, "w", 1, MAX_SIDE)
    height = _bounded_int(raw, "h", 1, MAX_SIDE)
    dpr = _bounded_decimal(raw, "dpr", 1.0, MAX_DPR, "a device pixel ratio")
    width, height = apply_dpr(width, height, 1.0 if dpr is None else dpr)
    quality = _bounded_int(raw, "q", 1, 100)
    blur = _bounded_decimal(raw, "blur", 0.3, 100.0, "a blur sigma", zero_ok=True)
    sharpen = _bounded_decimal(raw, "sharpen", 0.0, 10.0, "a sharpen sigma")
    return ImageParams(
        width=width,
        height=height,
        fit=_choice(raw, "fit", FITS, "fit"),
        format=_format(raw),
        quality=quality,
        blur=blur or 0.0,
        sharpen=sharpen or 0.0,
        rotate=_rotation(raw),
        gravity=_choice(raw, "gravity", GRAVITIES, "ce"),
    )


def apply_dpr(width: int | None, height: int | None, dpr: float) -> tuple[int | None, int | None]:
    """Multiply the sides by ``dpr``, scaling both down by one factor if either
    would pass :data:`MAX_SIDE` (a capped request keeps its aspect ratio)."""
    sides = [side for side in (width, height) if side is not None]
    if not sides or dpr == 1.0:
        return width, height
    factor = min(dpr, MAX_SIDE / max(sides))

    def scaled(side: int | None) -> int | None:
        return None if side is None else min(MAX_SIDE, max(1, round(side * factor)))

    return scaled(width), scaled(height)


def _pairs(query: QueryInput) -> list[tuple[str, str]]:
    if isinstance(query, str):
        return _split_query(query)
    if isinstance(query, Mapping):
        return list(query.items())
    return list(query)


def _split_query(query: str) -> list[tuple[str, str]]:
    """``parse_qsl`` semantics (``+`` is a space, ``%xx`` decoded, a bare name
    has an empty value), with a bound on the number of fields."""
    try:
        return parse_qsl(query, keep_blank_values=True, max_num_fields=MAX_PARAMS)
    except ValueError:
        raise InvalidParameter("query", f"at most {MAX_PARAMS} query parameters") from None


def _collect(pairs: list[tuple[str, str]], ignore: frozenset[str]) -> dict[str, str]:
    if len(pairs) > MAX_PARAMS:
        raise InvalidParameter("query", f"at most {MAX_PARAMS} query parameters")
    raw: dict[str, str] = {}
    for name, value in pairs:
        if name in ignore:
            continue
        if name not in KNOWN:
            raise InvalidParameter(
                _printable(name),
                f"unknown parameter {_printable(name)!r}; known: {', '.join(KNOWN)}")
        if name in raw:
            raise InvalidParameter(name, f"{name} is given more than once")
        raw[name] = value
    return raw


def _bounded_int(raw: dict[str, str], name: str, low: int, high: int) -> int | None:
    value = raw.get(name)
    if value is None:
        return None
    if not _INT.fullmatch(value) or not low <= int(value) <= high:
        raise InvalidParameter(name, f"{name} must be an integer from {low} to {high}")
    return int(value)


def _bounded_decimal(
    raw: dict[str, str], name: str, low: float, high: float, what: str, *, zero_ok: bool = False,
) -> float | None:
    value = raw.get(name)
    if value is None:
        return None
    number = float(value) if _DECIMAL.fullmatch(value) else None
    if number is not None and (low <= number <= high or (zero_ok and number == 0)):
        return number
    zero = " or 0 for none" if zero_ok else ""
    raise InvalidParameter(
        name, f"{name} must be {what}, a number from {_number(low)} to {_number(high)}{zero}")


def _choice(raw: dict[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = raw.get(name)
    if value is None:
        return default
    if value.lower() not in allowed:
        raise InvalidParameter(name, f"{name} must be one of {', '.join(allowed)}")
    return value.lower()


def _format(raw: dict[str, str]) -> str | None:
    value = raw.get("format")
    if value is None:
        return None
    name = FORMAT_ALIASES.get(value.lower(), value.lower())
    if name not in FORMATS:
        raise InvalidParameter("format", "format must be one of webp, avif, jpeg (or jpg), png")
    return name


def _rotation(raw: dict[str, str]) -> int:
    value = raw.get("rotate")
    if value is None:
        return 0
    if not _INT.fullmatch(value) or int(value) not in ROTATIONS:
        raise InvalidParameter(
            "rotate",
            "rotate must be 0, 90, 180 or 270 (degrees clockwise); other angles are not supported")
    return int(value)


def _number(value: float) -> str:
    """A float as its shortest text: 2.0 -> "2", 0.5 -> "0.5"."""
    return f"{value:g}"


def _printable(name: str) -> str:
    """A client-supplied name, cut short and stripped of control characters,
    so the error message is safe to echo back."""
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in name[:40])
    return cleaned + ("..." if len(name) > 40 else "")
