"""The geometry of a transform, sans-I/O: output sizes, boxes and anchors.

The engine does the resize and crop in the *source's* orientation (after EXIF
autorotation) and applies ``rotate`` last, because rotating a small result is
cheaper than rotating a large source. The request, though, describes the
rotated result, so its box and gravity are carried back into source space
here: for ``rotate=90`` the box is ``h`` x ``w`` and the result's north is the
source's west.
"""

from __future__ import annotations

from protocols.img.params import ImageParams

# libvips' largest coordinate: the "unbounded" side given to thumbnail when a
# request names only one side.
VIPS_MAX_COORD = 10_000_000

# EXIF orientations 5-8 are transposed: the upright image swaps the sides.
_TRANSPOSING_ORIENTATIONS = frozenset({5, 6, 7, 8})

# Directions in clockwise order; a clockwise rotation by k quarter turns moves
# a source direction k steps along this list.
_COMPASS = ("no", "ea", "so", "we")

Size = tuple[int, int]


def upright_size(width: int, height: int, orientation: int) -> Size:
    """The size of a source once its EXIF orientation (1..8) is applied."""
    return (height, width) if orientation in _TRANSPOSING_ORIENTATIONS else (width, height)


def rotated_size(width: int, height: int, rotate: int) -> Size:
    """The size after a clockwise rotation by ``rotate`` (a multiple of 90)."""
    return (height, width) if rotate % 180 else (width, height)


def source_box(params: ImageParams) -> tuple[int | None, int | None]:
    """The requested ``w`` x ``h`` box, seen from the unrotated source."""
    if params.rotate % 180:
        return params.height, params.width
    return params.width, params.height


def source_gravity(gravity: str, rotate: int) -> str:
    """The source-space anchor of a result-space ``gravity``: the result's
    north after a clockwise quarter turn is the source's west, and so on."""
    if gravity not in _COMPASS:
        return gravity  # centre and smart do not turn
    steps = (rotate // 90) % 4
    return _COMPASS[(_COMPASS.index(gravity) - steps) % 4]


def fit_size(width: int, height: int, box_w: int | None, box_h: int | None) -> Size:
    """``width`` x ``height`` scaled, aspect kept, to fit inside the box (a
    missing side is unbounded), enlarging if the box is bigger."""
    scales = []
    if box_w is not None:
        scales.append(box_w / width)
    if box_h is not None:
        scales.append(box_h / height)
    if not scales:
        return width, height
    scale = min(scales)
    return max(1, round(width * scale)), max(1, round(height * scale))


def planned_size(width: int, height: int, params: ImageParams) -> Size:
    """The size of the result for an upright source of ``width`` x ``height``.

    Exact for every mode but ``fit`` (and ``pad``'s inner image), where
    libvips may round the free side one pixel differently; precise enough for
    the output limits, which is what this is for.
    """
    norm = params.normalized()
    box_w, box_h = source_box(norm)
    if box_w is None and box_h is None:
        size = (width, height)
    elif norm.fit == "crop":
        size = (width if box_w is None else min(box_w, width),
                height if box_h is None else min(box_h, height))
    elif norm.fit in ("fill", "cover", "pad") and box_w is not None and box_h is not None:
        size = (box_w, box_h)
    else:
        size = fit_size(width, height, box_w, box_h)
    return rotated_size(*size, norm.rotate)


def placement(inner: Size, outer: Size, gravity: str) -> Size:
    """The offset (x, y) of an ``inner`` rectangle inside ``outer`` anchored
    by a source-space ``gravity``: used both to place a region to cut out of
    an image (``crop``) and to place an image in a larger box (``pad``)."""

    def offset(inner_side: int, outer_side: int, low: str, high: str) -> int:
        room = outer_side - inner_side
        if gravity == low:
            return 0
        if gravity == high:
            return room
        return room // 2

    return (offset(inner[0], outer[0], "we", "ea"), offset(inner[1], outer[1], "no", "so"))


def cover_interest(width: int, height: int, box: Size, gravity: str) -> str:
    """libvips' ``crop`` strategy for ``cover`` (thumbnail scales to cover the
    box, then cuts along one axis): ``low`` keeps the top or left, ``high``
    the bottom or right. A compass gravity across the cut axis has no say,
    so it falls back to the centre."""
    if gravity == "sm":
        return "attention"
    cuts_sides = width * box[1] > height * box[0]  # the source is wider than the box
    low, high = ("we", "ea") if cuts_sides else ("no", "so")
    if gravity == low:
        return "low"
    if gravity == high:
        return "high"
    return "centre"
