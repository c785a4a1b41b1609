"""Automatic output format: what to send when the request has no ``format``.

The endpoint answers with ``Vary: Accept`` whenever it used this, so caches
keep one copy per format.

Rules:

1. AVIF if the Accept header names ``image/avif`` with q > 0, WebP if it
   names ``image/webp`` with q > 0; when both are named the higher q wins and
   a tie goes to AVIF (smaller files). Only an explicit mention counts:
   ``image/*`` and ``*/*`` are sent by browsers that cannot decode either
   (Safari before 14 sent ``image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5``),
   which is why image CDNs (Cloudflare, imgix, Cloudinary) key on the
   explicit type too.
2. Otherwise a format every browser decodes, chosen from the source: JPEG
   stays JPEG; PNG and GIF become PNG (graphics: flat colour, transparency;
   an animated GIF is its first frame, see ``transform.py``); anything else
   (WebP, AVIF, HEIF, TIFF, unknown) becomes PNG if it has an alpha channel,
   else JPEG (HEIC camera photos would be huge as PNG).
3. If the Accept header refuses that one (q=0, or lists types without a
   wildcard that would cover it), the other of JPEG/PNG is tried; if both are
   refused the rule-2 choice is sent anyway: an ``<img>`` has no use for a
   406, and an ``Accept`` that refuses every image format is a broken client.
"""

from __future__ import annotations

from dataclasses import dataclass

CONTENT_TYPES = {
    "webp": "image/webp",
    "avif": "image/avif",
    "jpeg": "image/jpeg",
    "png": "image/png",
}

# Source formats as transform.probe() names them, by the content type an
# object might be stored with, so the endpoint can pick the output format
# (and so the cache key) before reading the source.
_SOURCE_TYPES = {
    "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/pjpeg": "jpeg",
    "image/png": "png", "image/apng": "png",
    "image/gif": "gif",
    "image/webp": "webp",
    "image/avif": "avif",
    "image/heic": "heif", "image/heif": "heif",
    "image/tiff": "tiff",
}


@dataclass(frozen=True)
class MediaRange:
    """One entry of an Accept header: ``type/subtype`` and its q-value."""

    type: str
    subtype: str
    q: float

    def specificity(self, media_type: str) -> int:
        """How precisely this range matches ``media_type``: 2 exact, 1
        ``type/*``, 0 ``*/*``, -1 no match (RFC 9110 section 12.5.1: the
        most specific match decides the q-value)."""
        kind, _, sub = media_type.partition("/")
        if self.type == "*" and self.subtype == "*":
            return 0
        if self.type != kind:
            return -1
        if self.subtype == "*":
            return 1
        return 2 if self.subtype == sub else -1


def parse_accept(header: str | None) -> list[MediaRange]:
    """The media ranges of an Accept header; malformed entries are skipped
    (a client's typo should cost it a preference, not the image)."""
    ranges = []
    for entry in (header or "").split(",")[:64]:
        media, *params = (part.strip() for part in entry.split(";"))
        kind, slash, sub = media.lower().partition("/")
        if not slash or not kind or not sub:
            continue
        q = _q_value(params)
        if q is not None:
            ranges.append(MediaRange(kind, sub, q))
    return ranges


def quality_of(ranges: list[MediaRange], media_type: str, *, wildcards: bool = True) -> float:
    """The q-value the client gives ``media_type``: that of the most specific
    matching range, 0 if none matches. No Accept header at all accepts
    everything; ``wildcards=False`` counts only an exact mention."""
    if not ranges:
        return 1.0 if wildcards else 0.0
    best, best_q = -1, 0.0
    for media_range in ranges:
        rank = media_range.specificity(media_type)
        if rank < (0 if wildcards else 2):
            continue
        if rank > best or (rank == best and media_range.q > best_q):
            best, best_q = rank, media_range.q
    return best_q


def choose_format(accept: str | None, source_format: str | None,
                  has_alpha: bool | None = None) -> str:
    """The output format for a request without ``format`` (see the module
    docstring). ``source_format`` is ``probe().format`` or
    :func:`format_of_content_type`; None when unknown; ``has_alpha`` None
    when unknown (treated as opaque)."""
    ranges = parse_accept(accept)
    avif = quality_of(ranges, CONTENT_TYPES["avif"], wildcards=False)
    webp = quality_of(ranges, CONTENT_TYPES["webp"], wildcards=False)
    if avif > 0 and avif >= webp:
        return "avif"
    if webp > 0:
        return "webp"
    preferred = fallback_format(source_format, has_alpha)
    other = "png" if preferred == "jpeg" else "jpeg"
    for candidate in (preferred, other):
        if quality_of(ranges, CONTENT_TYPES[candidate]) > 0:
            return candidate
    return preferred


def fallback_format(source_format: str | None, has_alpha: bool | None = None) -> str:
    """The universally decodable format closest to the source: jpeg or png."""
    if source_format == "jpeg":
        return "jpeg"
    if source_format in ("png", "gif") or has_alpha:
        return "png"
    return "jpeg"


def format_of_content_type(content_type: str | None) -> str | None:
    """The source format an object's Content-Type names, or None."""
    if not content_type:
        return None
    return _SOURCE_TYPES.get(content_type.split(";")[0].strip().lower())


def _q_value(params: list[str]) -> float | None:
    """The q parameter (default 1); None if it is not a valid qvalue."""
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() != "q":
            continue
        try:
            q = float(value.strip())
        except ValueError:
            return None
        return q if 0.0 <= q <= 1.0 else None
    return 1.0
