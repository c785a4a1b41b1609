"""Typed errors of the image engine.

The engine never speaks HTTP, but every error carries the status and the
stable code the ``/api/img`` endpoint answers with, so the mapping lives in one
place: the endpoint turns any :class:`ImageError` into the web port's JSON
error ``{error: code, message, status}``.
"""

from __future__ import annotations


class ImageError(Exception):
    """Base class: ``status`` is the HTTP status, ``code`` a stable machine name."""

    status = 500
    code = "InternalError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidParameter(ImageError):
    """A query parameter is unknown, repeated or out of range (400).

    ``param`` names the parameter so a client can tell which one to fix.
    """

    status = 400
    code = "InvalidParameter"

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


class UnsupportedImage(ImageError):
    """The source is not an image the engine decodes, or it is corrupt (415)."""

    status = 415
    code = "UnsupportedImage"


class SourceTooLarge(ImageError):
    """The source has more pixels than the engine decodes (413).

    Checked from the header alone, before any pixel is decoded, so a small
    file that claims a huge canvas (a decompression bomb) costs nothing.
    """

    status = 413
    code = "SourceTooLarge"


class OutputTooLarge(ImageError):
    """The requested output is too large in pixels, side or encoded bytes (422).

    Retrying the same request cannot succeed; smaller ``w``/``h`` can.
    """

    status = 422
    code = "OutputTooLarge"


class TransformTimeout(ImageError):
    """The transform ran past its time limit and was stopped (503).

    503 rather than 4xx: the limit is wall-clock time on a shared machine, so
    the same request may succeed when the node is less busy, and a 5xx is
    not cached by browsers or proxies.
    """

    status = 503
    code = "TransformTimeout"
