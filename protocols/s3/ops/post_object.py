"""PostObject: a browser form upload, authorized by its signed policy.

The form is read with :class:`FormUpload`: the fields before the ``file``
part (policy, signature, key, metadata) are small and read whole, bounded by
:data:`post_policy.MAX_FORM_FIELDS_BYTES`; the file streams through with the
policy's content-length-range enforced as it goes.  S3 ignores fields after
the file, but the body must still end with the closing boundary before the
upload counts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from urllib.parse import quote, urlencode

from protocols.multipart_form import (
    FormDataError,
    FormParser,
    PartData,
    PartEnd,
    PartStart,
    boundary_of,
)
from protocols.s3 import xml as s3xml
from protocols.s3.context import Ctx
from protocols.s3.errors import (
    S3Error,
    access_denied,
    entity_too_large,
    entity_too_small,
)
from protocols.s3.names import (
    validate_object_key,
)
from protocols.s3.ops.acl import check_acl_headers
from protocols.s3.ops.common import (
    MAX_PUT_SIZE,
    object_fields,
    refuse_unsupported_headers,
    written_version_headers,
)
from protocols.s3.post_policy import (
    MAX_FORM_FIELDS_BYTES,
    check_policy,
    form_credentials,
    missing_field,
    parse_policy,
)
from protocols.s3.post_policy import verify_signature as verify_form_signature
from protocols.s3.request import Response, xml_response

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


async def post_object(ctx: Ctx) -> Response:
    """PostObject: a browser form upload, authorized by its signed policy."""
    req = ctx.req
    boundary = boundary_of(req.headers.get("content-type", ""))
    if boundary is None:
        condition = "Bucket POST must be of the enclosure-type multipart/form-data"
        raise S3Error("PreconditionFailed", condition, extra={"Condition": condition})
    if not req.has_framed_body():
        raise S3Error("MissingContentLength")
    form = FormUpload(req.receive_body(), boundary)
    fields = await form.read_fields()
    creds = form_credentials(fields)
    if creds is None:
        raise access_denied("Anonymous access is not allowed; sign the form's policy.")
    record, _, secret = await ctx.node.load_key(req, creds.access_key)
    verify_form_signature(creds, fields["policy"], secret)
    # Authenticated by the form's policy: its body is not signed (no signing context).
    ctx.access_key, ctx.account = creds.access_key, record.account
    ctx.node.limiter.check(ctx.access_key, "write")
    policy = parse_policy(fields["policy"])
    if "key" not in fields:
        raise missing_field("key")
    fields["key"] = key = fields["key"].replace("${filename}", form.filename)
    validate_object_key(key)
    check_policy(policy, fields, req.bucket, dt.datetime.now(dt.UTC))
    bucket = await ctx.bucket(req.bucket)
    refuse_unsupported_headers(fields)
    # The form's object fields are named as PutObject's headers, but the ACL.
    headers = {**fields, "x-amz-acl": fields["acl"]} if "acl" in fields else fields
    content_type, meta, stored = object_fields(headers)
    check_acl_headers(headers, ctx)
    tags = s3xml.parse_tagging(fields["tagging"].encode()) if "tagging" in fields else None
    low, high = policy.length_range or (0, MAX_PUT_SIZE)
    info = await ctx.objects.put_object(
        bucket, key, form.file(low, min(high, MAX_PUT_SIZE)), content_type=content_type,
        user_metadata=meta, headers=stored, tags=tags,
    )
    etag = s3xml.quote_etag(info.etag)
    redirect = fields.get("success_action_redirect") or fields.get("redirect")
    if redirect and redirect.startswith(("http://", "https://")):
        query = urlencode({"bucket": req.bucket, "key": key, "etag": etag})
        joiner = "&" if "?" in redirect else "?"
        return Response(303, [("location", f"{redirect}{joiner}{query}"), ("etag", etag)])
    host = req.headers.get("host", "")
    location = f"{req.scheme}://{host}/{quote(req.bucket)}/{quote(key)}"
    out = [("etag", etag), ("location", location), *written_version_headers(info)]
    status = fields.get("success_action_status")
    if status == "201":
        return xml_response(s3xml.render_post_response(location, req.bucket, key, etag), 201, out)
    return Response(200 if status == "200" else 204, out)
