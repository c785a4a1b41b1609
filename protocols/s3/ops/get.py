"""GetObject and HeadObject: versions, conditions, ranges, parts, overrides.
"""

from __future__ import annotations

from datetime import datetime

from protocols.s3 import xml as s3xml
from protocols.s3.conditions import evaluate_conditions, http_date, parse_range
from protocols.s3.context import Ctx
from protocols.s3.errors import (
    S3Error,
    not_implemented,
)
from protocols.s3.ops.common import (
    addressed_object,
    part_number,
    version_headers,
)
from protocols.s3.request import Request, Response, mail_safe
from storage.bounded import BoundedMemo
from storage.buckets import BucketInfo
from storage.objects import ObjectInfo

RESPONSE_OVERRIDES = {
    "response-content-type": "content-type",
    "response-content-language": "content-language",
    "response-expires": "expires",
    "response-cache-control": "cache-control",
    "response-content-disposition": "content-disposition",
    "response-content-encoding": "content-encoding",
}


# Last-Modified values already formatted, by the second they name (objects
# written in the same second share one; bounded, emptied when full).
_HTTP_DATES: BoundedMemo[float, str] = BoundedMemo(4096)


def _last_modified(moment: datetime) -> str:
    second = moment.timestamp() // 1  # what an HTTP date keeps of it
    text = _HTTP_DATES.get(second)
    if text is None:
        text = _HTTP_DATES.keep(second, http_date(moment))
    return text


def object_headers(
    req: Request, bucket: BucketInfo, info: ObjectInfo
) -> list[tuple[str, str]]:
    headers: dict[str, str] = {
        "content-type": info.content_type or "binary/octet-stream",
        "etag": s3xml.quote_etag(info.etag),
        "last-modified": _last_modified(info.last_modified),
        "accept-ranges": "bytes",
    }
    if info.headers:
        headers.update(info.headers)
    if req.query:
        for name, header in RESPONSE_OVERRIDES.items():
            if name in req.query:
                headers[header] = req.query[name]
    out = list(headers.items())
    out += [(f"x-amz-meta-{k}", mail_safe(v)) for k, v in info.user_metadata.items()]
    out += version_headers(bucket, info)
    if info.tags:
        out.append(("x-amz-tagging-count", str(len(info.tags))))
    return out


def part_range(info: ObjectInfo, number: int) -> tuple[int, int, int | None]:
    """``(start, stop, parts count)`` of part ``number`` (GetObject ?partNumber=).

    An object stored in one piece is its own part 1 (count None: S3 sends
    no x-amz-mp-parts-count then); beyond the count is 416 InvalidPartNumber.
    """
    sizes = info.part_sizes
    if not sizes and "-" in info.etag:
        # Completed before part sizes were recorded: the boundaries are unknown.
        raise not_implemented("GetObject by partNumber of a multipart object completed "
                              "before part boundaries were recorded")
    count = len(sizes) if sizes else None
    if number > (count or 1):
        raise S3Error("InvalidPartNumber", extra={
            "PartNumberRequested": number, "ActualPartCount": count or 1})
    if not sizes:
        return 0, info.size, None
    start = sum(sizes[: number - 1])
    return start, start + sizes[number - 1], count


async def get_object(ctx: Ctx) -> Response:
    """GetObject: versions, conditions, ranges, overrides."""
    return await read_object(ctx, head=False)


async def head_object(ctx: Ctx) -> Response:
    """HeadObject: GetObject's answer without the body."""
    return await read_object(ctx, head=True)


async def read_object(ctx: Ctx, *, head: bool) -> Response:
    """GetObject / HeadObject: versions, conditions, ranges, overrides."""
    req = ctx.req
    bucket = await ctx.bucket(req.bucket)
    number: int | None = None
    if "partNumber" in req.query:
        number = part_number(req)
        if req.headers.get("range") is not None:
            raise S3Error("InvalidRequest", "Cannot specify both Range header and "
                          "partNumber query parameter")
    info = await addressed_object(ctx, bucket)
    h = req.headers
    evaluate_conditions(info, h.get("if-match"), h.get("if-none-match"),
                        h.get("if-modified-since"), h.get("if-unmodified-since"))
    headers = object_headers(req, bucket, info)
    if number is not None:
        first, last, count = part_range(info, number)
        # S3 answers a part as a range (206 + Content-Range) unless the
        # object is empty, where no range exists.
        rng = (first, last) if info.size else None
        if count is not None:
            headers.append(("x-amz-mp-parts-count", str(count)))
    else:
        rng = parse_range(h.get("range"), info.size)
    if rng is None and h.get("x-amz-checksum-mode", "").upper() == "ENABLED":
        headers += [(f"x-amz-checksum-{alg}", v) for alg, v in info.checksums.items()]
        if info.checksums:
            kind = "COMPOSITE" if any("-" in v for v in info.checksums.values()) else (
                "FULL_OBJECT")
            headers.append(("x-amz-checksum-type", kind))
    start, stop = rng if rng is not None else (0, info.size)
    status = 206 if rng is not None else 200
    if rng is not None:
        headers.append(("content-range", f"bytes {start}-{stop - 1}/{info.size}"))
    headers.append(("content-length", str(stop - start)))
    if head:
        return Response(status, headers)
    if info.inline_data is not None:
        return Response(status, headers, info.inline_data[start:stop])
    return Response(status, headers, stream=ctx.objects.read_object(info, start, stop))
