"""Reading a POST Object form: its fields first, then its file as a stream.

The fields before the ``file`` part (policy, signature, key, metadata) are
small and read whole, bounded by :data:`post_policy.MAX_FORM_FIELDS_BYTES`;
the file streams through with the policy's content-length-range enforced as
it goes.  S3 ignores fields after the file, but the body must still end
with the closing boundary before the upload counts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from protocols.s3.errors import S3Error, entity_too_large, entity_too_small
from protocols.s3.form_data import FormDataError, FormParser, PartData, PartEnd, PartStart
from protocols.s3.post_policy import MAX_FORM_FIELDS_BYTES

Event = PartStart | PartData | PartEnd


def _malformed(exc: FormDataError) -> S3Error:
    return S3Error("MalformedPOSTRequest", detail=str(exc))


class FormUpload:
    """One multipart/form-data body; :meth:`read_fields`, then :meth:`file`."""

    def __init__(self, body: AsyncIterator[bytes], boundary: str) -> None:
        self._body = body
        self._parser = FormParser(boundary)
        self._events = self._iterate()
        #: The file part's filename (what ``${filename}`` in the key stands for).
        self.filename = ""

    async def _iterate(self) -> AsyncIterator[Event]:
        try:
            async for data in self._body:
                for event in self._parser.feed(data):
                    yield event
            self._parser.finish()
        except FormDataError as exc:
            raise _malformed(exc) from exc

    async def read_fields(self) -> dict[str, str]:
        """The fields before the file (lower-case names; the first of repeated ones).

        InvalidArgument if there is no file part at all.
        """
        fields: dict[str, str] = {}
        total = 0
        name: str | None = None
        value = bytearray()
        async for event in self._events:
            if isinstance(event, PartStart):
                if event.name.lower() == "file":
                    self.filename = (event.filename or "").replace("\\", "/").rsplit("/", 1)[-1]
                    return fields
                name = event.name.lower()
                value.clear()
            elif isinstance(event, PartData):
                total += len(event.data)
                if total > MAX_FORM_FIELDS_BYTES:
                    raise S3Error("MaxPostPreDataLengthExceededError")
                value += event.data
            elif name is not None:
                try:
                    fields.setdefault(name, value.decode("utf-8"))
                except UnicodeDecodeError:
                    raise S3Error("InvalidArgument", f"The form field {name!r} is not UTF-8",
                                  extra={"ArgumentName": name}) from None
                name = None
        raise S3Error("InvalidArgument", "POST requires exactly one file upload per request.",
                      extra={"ArgumentName": "file", "ArgumentValue": "0"})

    async def file(self, min_size: int, max_size: int) -> AsyncIterator[bytes]:
        """The file's content; EntityTooSmall / EntityTooLarge outside the bounds.

        It finishes only once the whole body has arrived and is well-formed.
        """
        size = 0
        in_file = True
        async for event in self._events:
            if not in_file:
                continue  # fields after the file: S3 ignores them
            if isinstance(event, PartData):
                size += len(event.data)
                if size > max_size:
                    raise entity_too_large(size, max_size)
                yield event.data
            elif isinstance(event, PartEnd):
                if size < min_size:
                    raise entity_too_small(size, min_size)
                in_file = False
