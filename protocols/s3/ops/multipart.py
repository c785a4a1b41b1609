"""Multipart uploads: create, upload (and copy) parts, complete, abort, list.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Mapping

from protocols.s3 import checksums as cks
from protocols.s3 import xml as s3xml
from protocols.s3.body import BodyReader, summed
from protocols.s3.conditions import write_condition
from protocols.s3.context import Ctx
from protocols.s3.errors import (
    S3Error,
    entity_too_large,
    invalid_argument,
)
from protocols.s3.names import (
    validate_key_prefix,
)
from protocols.s3.ops.acl import check_acl_headers
from protocols.s3.ops.common import (
    check_room,
    content_md5,
    int_param,
    object_fields,
    part_number,
    tagging_header,
    written_version_headers,
)
from protocols.s3.ops.copy import copy_source_info
from protocols.s3.request import Request, Response, xml_response
from storage import errors as serr
from storage.buckets import BucketInfo
from storage.multipart import MAX_PART_NUMBER, MAX_PART_SIZE, CompletionPlan
from storage.objects import ObjectInfo


async def create_multipart_upload(ctx: Ctx) -> Response:
    """CreateMultipartUpload (metadata fixed now; optional checksum algorithm/type)."""
    req = ctx.req
    bucket = await ctx.bucket(req.bucket)
    content_type, meta, stored = object_fields(req.headers)
    check_acl_headers(req.headers, ctx)
    tags = tagging_header(req.headers)
    alg, kind = cks.multipart_checksum_type(req.headers.get("x-amz-checksum-algorithm", ""),
                                            req.headers.get("x-amz-checksum-type", ""))
    upload = await ctx.multipart.create(
        bucket, req.key, content_type=content_type, user_metadata=meta, headers=stored,
        checksum_algorithm=alg, checksum_type=kind, tags=tags,
    )
    headers: list[tuple[str, str]] = []
    if alg:
        headers += [("x-amz-checksum-algorithm", alg.upper()), ("x-amz-checksum-type", kind)]
    return xml_response(s3xml.render_initiate_multipart_upload(bucket.name, req.key,
                                                       upload.upload_id), 200, headers)


async def upload_part(ctx: Ctx) -> Response:
    """UploadPart, streamed and verified like PutObject."""
    req = ctx.req
    bucket = await ctx.bucket(req.bucket)
    number = part_number(req)
    upload_id = req.query.get("uploadId", "")
    # The upload's algorithm is computed for every part, sent or not, as
    # S3 does: its object checksum needs every part's.
    upload = await ctx.multipart.get_upload(bucket, upload_id)
    reader = BodyReader(req, ctx.signing, compute=upload.checksum_algorithm or None)
    if reader.size is not None and reader.size > MAX_PART_SIZE:
        raise entity_too_large(reader.size, MAX_PART_SIZE)
    await check_room(ctx, bucket, reader.size)
    part = await ctx.multipart.upload_part(
        bucket, upload_id, number, reader, content_md5=content_md5(req),
        expected_size=reader.size, checksums=reader.checksums,
    )
    headers = [("etag", s3xml.quote_etag(part.etag))]
    headers += [(f"x-amz-checksum-{alg}", v) for alg, v in reader.checksums.items()]
    return Response(200, headers)


async def upload_part_copy(ctx: Ctx) -> Response:
    """UploadPartCopy: a part from (a byte range of) an existing object."""
    req = ctx.req
    bucket = await ctx.bucket(req.bucket)
    number = part_number(req)
    upload_id = req.query.get("uploadId", "")
    _, src = await copy_source_info(ctx)
    start, stop = 0, src.size
    raw_range = req.headers.get("x-amz-copy-source-range")
    if raw_range is not None:
        unit, _, spec = raw_range.strip().partition("=")
        first, _, last = spec.partition("-")
        if unit != "bytes" or not first.isdigit() or not last.isdigit():
            raise invalid_argument("The x-amz-copy-source-range value must be of the form "
                                   "bytes=first-last", "x-amz-copy-source-range", raw_range)
        start, stop = int(first), int(last) + 1
        if start >= stop or stop > src.size:
            raise invalid_argument(f"Range specified is not valid for source object of size: "
                                   f"{src.size}", "x-amz-copy-source-range", raw_range)
    if stop - start > MAX_PART_SIZE:
        raise entity_too_large(stop - start, MAX_PART_SIZE)
    upload = await ctx.multipart.get_upload(bucket, upload_id)
    checksums: dict[str, str] = {}
    data: AsyncIterator[bytes] = ctx.objects.read_object(src, start, stop)
    if upload.checksum_algorithm:
        # Like an uploaded part, a copied one gets the upload's checksum.
        data = summed(data, upload.checksum_algorithm, checksums)
    part = await ctx.multipart.upload_part(bucket, upload_id, number, data,
                                            checksums=checksums)
    headers: list[tuple[str, str]] = []
    if src.version_id != "null":
        headers.append(("x-amz-copy-source-version-id", src.version_id))
    return xml_response(s3xml.render_copy_part_result(part.etag, part.last_modified, checksums),
                200, headers)


async def complete_multipart_upload(ctx: Ctx) -> Response:
    """CompleteMultipartUpload: validate the part list and commit atomically."""
    req = ctx.req
    bucket = await ctx.bucket(req.bucket)
    upload_id = req.query.get("uploadId", "")
    condition = write_condition(req.headers)
    body = await BodyReader(req, ctx.signing, checksum_headers=False).read_all(
        s3xml.MAX_COMPLETE_BODY_SIZE)
    requested = s3xml.parse_complete_multipart(body)
    listed = [(p.part_number, p.etag) for p in requested]
    try:
        plan = await ctx.multipart.plan_completion(bucket, upload_id, listed)
    except serr.NoSuchUpload:
        # A retry of a completion that succeeded (its answer was lost):
        # S3 answers it as it answered the first.
        done = await ctx.multipart.completed(bucket, req.key, upload_id, listed)
        if done is None:
            raise
        return completed_response(req, bucket, done, done.checksums, None)
    upload = plan.upload
    checksums = completion_checksums(req, requested, plan)
    info = await ctx.multipart.complete(bucket, plan, checksums=checksums,
                                         condition=condition)
    return completed_response(req, bucket, info, checksums,
                                    upload.checksum_type or None)


def completion_checksums(req: Request, requested: list[s3xml.CompletedPart],
                          plan: CompletionPlan) -> dict[str, str]:
    """The object checksum of a completion (``{alg: value}``, empty without one).

    Each listed part checksum must be the stored one (InvalidPart); the
    object's is combined from the parts' -- the CRC of the whole object
    (FULL_OBJECT) or the checksum of the part checksums with a ``-<parts>``
    suffix (COMPOSITE) -- and checked against the client's
    ``x-amz-checksum-<alg>`` / ``x-amz-checksum-type`` when sent.
    """
    upload = plan.upload
    alg = upload.checksum_algorithm
    if not alg:
        # No algorithm was chosen, so no part checksum can be relied on:
        # there is nothing to compare a client's object checksum with.
        return {}
    cks.check_completion_type(req.headers.get("x-amz-checksum-type"), upload.checksum_type)
    for name in req.headers:
        other = cks.algorithm_from_header(name)
        if other is not None and other != alg:
            raise S3Error("InvalidRequest", f"The upload was created using the {alg} "
                          f"checksum algorithm, not {other}.")
    claimed = req.headers.get(f"x-amz-checksum-{alg}")
    parsed = cks.parse_object_checksum(alg, claimed) if claimed is not None else None
    for asked, part in zip(requested, plan.parts, strict=True):
        sent = asked.checksums.get(alg)
        if sent is not None and sent != part.checksums.get(alg):
            raise S3Error("InvalidPart", detail=f"checksum of part {part.part_number}")
    if not all(alg in p.checksums for p in plan.parts):
        return {}  # a part stored before its upload recorded checksums
    digests = [base64.b64decode(p.checksums[alg]) for p in plan.parts]
    if upload.checksum_type == "FULL_OBJECT":
        value = cks.full_object_crc(
            alg, [(d, p.size) for d, p in zip(digests, plan.parts, strict=True)])
        count = None
    else:
        value = cks.composite_checksum(alg, digests)
        count = len(digests)
    if parsed is not None and (
            parsed[0] != base64.b64decode(value.partition("-")[0])
            or parsed[1] not in (None, count)):
        raise S3Error("BadDigest", f"The {alg.upper()} you specified did not match the "
                      "calculated checksum.")
    return {alg: value}


def completed_response(req: Request, bucket: BucketInfo, info: ObjectInfo,
                        checksums: Mapping[str, str],
                        checksum_type: str | None) -> Response:
    location = f"/{bucket.name}/{req.key}"
    xml_body = s3xml.render_complete_multipart_upload(
        location, bucket.name, req.key, info.etag, checksums=checksums,
        checksum_type=checksum_type,
    )
    return xml_response(xml_body, 200, written_version_headers(info))


async def abort_multipart_upload(ctx: Ctx) -> Response:
    """AbortMultipartUpload: the parts' chunks are released."""
    req = ctx.req
    bucket = await ctx.bucket(req.bucket)
    await ctx.multipart.abort(bucket, req.query.get("uploadId", ""))
    return Response(204)


async def list_parts(ctx: Ctx) -> Response:
    """ListParts."""
    req = ctx.req
    bucket = await ctx.bucket(req.bucket)
    upload_id = req.query.get("uploadId", "")
    marker = int_param(req, "part-number-marker", 0, 0, MAX_PART_NUMBER)
    max_parts = int_param(req, "max-parts", 1000, 0, 1000)
    upload, page = await ctx.multipart.list_parts(
        bucket, upload_id, marker=marker, max_parts=max_parts
    )
    owner = ctx.owner()
    parts = [
        s3xml.PartInfo(p.part_number, p.last_modified, p.etag, p.size,
                       {a.upper(): v for a, v in p.checksums.items()})
        for p in page.parts
    ]
    body = s3xml.render_list_parts(
        bucket.name, upload.key, upload_id, parts=parts, part_number_marker=marker,
        next_part_number_marker=page.next_part_number_marker, max_parts=max_parts,
        is_truncated=page.is_truncated, owner=owner,
        checksum_algorithm=upload.checksum_algorithm.upper() or None,
        checksum_type=upload.checksum_type or None,
    )
    return xml_response(body)


async def list_multipart_uploads(ctx: Ctx) -> Response:
    """ListMultipartUploads."""
    req = ctx.req
    bucket = await ctx.bucket(req.bucket)
    q = req.query
    url = s3xml.parse_encoding_type(q.get("encoding-type"))
    prefix = q.get("prefix", "")
    validate_key_prefix(prefix)
    delimiter = q.get("delimiter", "")
    key_marker = q.get("key-marker", "")
    id_marker = q.get("upload-id-marker", "")
    max_uploads = int_param(req, "max-uploads", 1000, 0, 1000)
    page = await ctx.multipart.list_uploads(
        bucket, prefix=prefix, delimiter=delimiter, key_marker=key_marker,
        upload_id_marker=id_marker, max_uploads=max_uploads,
    )
    owner = ctx.owner()
    uploads = [
        s3xml.UploadInfo(u.key, u.upload_id, u.initiated, owner=owner,
                         checksum_algorithm=u.checksum_algorithm.upper() or None)
        for u in page.uploads
    ]
    body = s3xml.render_list_multipart_uploads(
        bucket.name, uploads=uploads, common_prefixes=page.common_prefixes,
        prefix=prefix or None, delimiter=delimiter or None, key_marker=key_marker,
        upload_id_marker=id_marker, next_key_marker=page.next_key_marker,
        next_upload_id_marker=page.next_upload_id_marker, max_uploads=max_uploads,
        is_truncated=page.is_truncated, encoding_type_url=url,
    )
    return xml_response(body)
