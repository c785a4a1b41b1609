"""``/api/versions``: Time Machine over the session cookie (see storage/versions.py).

``POST`` (multipart: ``file``, ``bucket``, ``key``) stores a new version,
exactly as an overwrite through any other protocol would, and answers 201
``{versionId, key, bucket, size, versionNumber, createdAt}``.
``GET ?bucket=`` lists the bucket's files with their version counts (paged
with ``cursor``); ``GET ?bucket=&key=`` the file's versions, newest first.
``PATCH {versionId}`` restores a version as a new current version and
answers ``{success, restoredVersion, newVersionNumber, versionId}``.
``GET``/``PUT /api/versions/settings`` read and set the account's own
retention ``{maxVersions, maxAgeDays}``.  Version ids are ``ver_<n>``: they
name one stored version, whichever protocol wrote it.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, request

from protocols.rest.common import (
    ApiError,
    check_request_params,
    decode_cursor,
    encode_cursor,
    iso,
    json_response,
    read_json,
    string_field,
)
from protocols.rest.files import guess_type
from protocols.rest.session import SessionGate, from_dashboard
from protocols.rest.transfer import read_upload_form
from storage import errors, names, versions
from storage.accounts import AccountInfo
from storage.authz import AccessDenied, Action
from storage.buckets import BucketInfo
from storage.core import StorageCore
from storage.objects import ObjectInfo

PAGE = 1000


def _created(info: ObjectInfo) -> dict[str, Any]:
    assert info.row_id is not None
    return {"versionId": versions.public_id(info.row_id), "key": info.key,
            "bucket": info.bucket, "size": info.size, "versionNumber": info.version_number,
            "createdAt": iso(info.last_modified)}


def _version(v: versions.VersionRow) -> dict[str, Any]:
    return {"versionId": versions.public_id(v.row_id), "versionNumber": v.number,
            "size": v.size, "createdAt": iso(v.created_at), "isCurrent": v.is_current,
            "contentType": v.content_type}


def _int_field(body: dict[str, Any], name: str) -> int:
    value = body.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ApiError(400, "InvalidField", f"The field '{name}' must be an integer.")
    return value


def create_versions_blueprint(services: StorageCore, gate: SessionGate) -> Blueprint:
    """The /api/versions routes over a node's storage core."""
    bp = Blueprint("versions", __name__)
    bp.before_request(from_dashboard)
    bp.before_request(check_request_params)
    session_required = gate.required
    objects, db = services.objects, services.db
    max_upload = services.settings.accounts.rest_max_upload

    async def bucket_for(account: AccountInfo, name: str, action: Action) -> BucketInfo:
        if not name:
            raise ApiError(400, "MissingParameter", "The parameter 'bucket' is required.")
        return await services.authz.bucket(account.id, name, action)

    @bp.post("/api/versions")
    @session_required
    async def upload(account: AccountInfo) -> Any:
        if request.mimetype != "multipart/form-data":
            raise ApiError(400, "InvalidMultipart", "Send file, bucket and key as "
                           "multipart/form-data.")
        # The bucket may come first in the form; it is checked before the
        # commit either way, and bytes of a refused upload are never referenced.
        form = await read_upload_form(
            request.mimetype_params.get("boundary", ""), objects.store_stream,
            max_upload=max_upload)
        bucket = await bucket_for(account, form.fields.get("bucket", ""), Action.WRITE)
        key = names.check_key(form.fields.get("key") or form.file_name)
        info = await objects.commit(bucket, key, form.stored, etag=form.stored.md5.hex(),
                                    content_type=guess_type(key, form.content_type))
        return json_response(_created(info), 201)

    @bp.get("/api/versions")
    @session_required
    async def listing(account: AccountInfo) -> Any:
        bucket = await bucket_for(account, request.args.get("bucket", ""), Action.READ)
        key = request.args.get("key")
        if key is not None:
            found = await versions.key_versions(db, bucket, names.check_key(key))
            if not found:
                raise errors.NoSuchKey("The file has no versions.")
            return json_response({"bucket": bucket.name, "key": key,
                                  "versions": [_version(v) for v in found]})
        after = decode_cursor(request.args.get("cursor", ""))
        rows = await versions.files_with_versions(db, bucket, after, PAGE + 1)
        more = len(rows) > PAGE
        rows = rows[:PAGE]
        files = [{"key": r["key"], "versionCount": int(r["versions"]),
                  "size": int(r["size"]) if r["size"] is not None else None,
                  "updatedAt": iso(versions.as_datetime(r["updated"]))} for r in rows]
        out: dict[str, Any] = {"bucket": bucket.name, "files": files, "hasMore": more}
        if more:
            out["nextCursor"] = encode_cursor(rows[-1]["key"])
        return json_response(out)

    @bp.patch("/api/versions")
    @session_required
    async def restore(account: AccountInfo) -> Any:
        body = await read_json()
        version_id = string_field(body, "versionId", max_len=40)
        row_id = versions.row_of(version_id)
        where = await versions.locate(db, row_id)
        if where is None:
            raise errors.NoSuchVersion("The specified version does not exist.")
        # Someone without access learns nothing: the same 404 as a missing id.
        try:
            bucket = await services.authz.bucket(account.id, where[0], Action.WRITE)
        except errors.NoSuchBucket:
            raise errors.NoSuchVersion("The specified version does not exist.") from None
        except AccessDenied as exc:
            if exc.has_access:  # a reader of the bucket: allowed to know, not to write
                raise
            raise errors.NoSuchVersion("The specified version does not exist.") from None
        info = await objects.restore_version(bucket, where[1], row_id)
        assert info.row_id is not None
        return json_response({"success": True, "restoredVersion": version_id,
                              "newVersionNumber": info.version_number,
                              "versionId": versions.public_id(info.row_id)})

    @bp.get("/api/versions/settings")
    @session_required
    async def get_settings(account: AccountInfo) -> Any:
        policy = await versions.get_policy(db, account.id, objects.retention)
        return json_response({"maxVersions": policy.max_versions,
                              "maxAgeDays": policy.max_age_days})

    @bp.put("/api/versions/settings")
    @session_required
    async def put_settings(account: AccountInfo) -> Any:
        body = await read_json()
        policy = versions.Retention(_int_field(body, "maxVersions"),
                                    _int_field(body, "maxAgeDays"))
        await versions.set_policy(db, account.id, policy)
        return json_response({"maxVersions": policy.max_versions,
                              "maxAgeDays": policy.max_age_days})

    return bp

