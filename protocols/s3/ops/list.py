"""Object listings: ListObjects (v1), ListObjectsV2, ListObjectVersions.
"""

from __future__ import annotations

from protocols.s3 import xml as s3xml
from protocols.s3.context import Ctx
from protocols.s3.errors import (
    invalid_argument,
)
from protocols.s3.names import (
    validate_key_prefix,
)
from protocols.s3.ops.common import (
    decode_token,
    encode_token,
    int_param,
)
from protocols.s3.request import Response, xml_response


async def list_objects(ctx: Ctx) -> Response:
    """ListObjects (v1)."""
    return await _list_objects(ctx, v2=False)


async def list_objects_v2(ctx: Ctx) -> Response:
    """ListObjectsV2."""
    return await _list_objects(ctx, v2=True)


async def _list_objects(ctx: Ctx, *, v2: bool) -> Response:
    """ListObjects (v1) and ListObjectsV2."""
    req = ctx.req
    bucket = await ctx.bucket(req.bucket)
    q = req.query
    url = s3xml.parse_encoding_type(q.get("encoding-type"))
    prefix = q.get("prefix", "")
    delimiter = q.get("delimiter", "")
    max_keys = int_param(req, "max-keys", 1000, 0, 1000)
    validate_key_prefix(prefix)
    token = q.get("continuation-token")
    start_after = q.get("start-after", "")
    if v2:
        marker_name = "start-after"
        if token is not None:
            marker_name = "continuation-token"
            marker = decode_token(token, marker_name) or ""
        else:
            marker = start_after
    else:
        marker_name, marker = "marker", q.get("marker", "")
    validate_key_prefix(marker, marker_name)
    page = await ctx.objects.list_objects(
        bucket, prefix=prefix, delimiter=delimiter, marker=marker, max_keys=max_keys
    )
    owner = ctx.owner()
    contents = [
        s3xml.ObjectInfo(e.key, e.last_modified, e.etag, e.size, owner=owner)
        for e in page.entries
    ]
    if v2:
        nxt = None
        if page.is_truncated and page.next_marker is not None:
            nxt = encode_token(page.next_marker)
        body = s3xml.render_list_objects_v2(
            bucket.name, contents=contents, common_prefixes=page.common_prefixes,
            prefix=prefix, delimiter=delimiter or None, max_keys=max_keys,
            is_truncated=page.is_truncated, continuation_token=token,
            next_continuation_token=nxt, start_after=start_after or None,
            fetch_owner=q.get("fetch-owner", "").lower() == "true", encoding_type_url=url,
        )
    else:
        body = s3xml.render_list_objects_v1(
            bucket.name, contents=contents, common_prefixes=page.common_prefixes,
            prefix=prefix, marker=marker, delimiter=delimiter or None,
            next_marker=page.next_marker if page.is_truncated else None,
            max_keys=max_keys, is_truncated=page.is_truncated, encoding_type_url=url,
        )
    return xml_response(body)


async def list_object_versions(ctx: Ctx) -> Response:
    """ListObjectVersions."""
    req = ctx.req
    bucket = await ctx.bucket(req.bucket)
    q = req.query
    url = s3xml.parse_encoding_type(q.get("encoding-type"))
    prefix = q.get("prefix", "")
    delimiter = q.get("delimiter", "")
    key_marker = q.get("key-marker", "")
    version_marker = q.get("version-id-marker", "")
    if version_marker and not key_marker:
        raise invalid_argument("A version-id marker cannot be specified without a key "
                               "marker.", "version-id-marker", version_marker)
    validate_key_prefix(prefix)
    validate_key_prefix(key_marker, "key-marker")
    max_keys = int_param(req, "max-keys", 1000, 0, 1000)
    page = await ctx.objects.list_versions(
        bucket, prefix=prefix, delimiter=delimiter, key_marker=key_marker,
        version_id_marker=version_marker, max_keys=max_keys,
    )
    owner = ctx.owner()
    versions = [
        s3xml.VersionInfo(
            key=e.key, version_id=e.version_id, is_latest=e.is_latest,
            last_modified=e.last_modified, etag=e.etag, size=e.size,
            is_delete_marker=e.is_delete_marker, owner=owner,
        )
        for e in page.entries
    ]
    body = s3xml.render_list_object_versions(
        bucket.name, versions=versions, common_prefixes=page.common_prefixes,
        prefix=prefix, key_marker=key_marker, version_id_marker=version_marker,
        next_key_marker=page.next_key_marker if page.is_truncated else None,
        next_version_id_marker=page.next_version_id_marker if page.is_truncated else None,
        delimiter=delimiter or None, max_keys=max_keys, is_truncated=page.is_truncated,
        encoding_type_url=url,
    )
    return xml_response(body)
