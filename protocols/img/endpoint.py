"""``GET /api/img/{bucket}/{path}``: image transforms over the engine, cached.

Flow: parameters (400 on any bad one) -> who is asking -> READ on the bucket
through storage/authz.py -> the source's latest version -> output format
(``format``, else from Accept with ``Vary: Accept``) -> cache key (source
bucket id, key, version, ETag + canonical parameters) -> 304 if
If-None-Match names it -> the cached result, or one computation shared by
every concurrent request for it (SingleFlight), stored in the blob layer
(storage/image_cache.py).

Who may transform:

* the owner or a member with READ, by session cookie, ``X-API-Key: AK:SK``
  or ``Authorization: Bearer AK:SK``;
* anyone holding a signed URL (``ak``, ``exp``, ``sig``: protocols/img/signing.py),
  made offline with one of the account's key pairs: the form for ``<img src>``;
* anyone, for a version exposed by a live share link without a password
  (the bytes are public already).  A transform is not a share download.

Anything else is 401 without saying whether the object exists.  Responses
are cached by browsers for 7 days (``Cache-Control: max-age=604800``,
``private`` unless the URL itself is the credential) with an ETag naming
the exact result.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import trio
from quart import Blueprint, Response, request

from protocols.img import signing
from protocols.img.errors import ImageError, SourceTooLarge
from protocols.img.negotiate import choose_format, format_of_content_type
from protocols.img.params import ImageParams, parse_params
from protocols.img.singleflight import SingleFlight
from protocols.img.transform import default_concurrency, transform_async
from protocols.rest.common import (
    ApiError,
    authenticate_api_key,
    check_rate,
    check_request_params,
    client_ip,
    error_response,
)
from storage import errors
from storage.authz import AccessDenied, Action
from storage.buckets import BucketInfo
from storage.core import StorageCore
from storage.image_cache import CachedImage, ImageCache
from storage.objects import ObjectInfo
from storage.ratelimit import RateLimiter
from storage.shares import ShareService

MAX_AGE = 7 * 24 * 3600
# Sources are read whole into memory: refuse bigger ones before reading.
MAX_SOURCE_BYTES = 128 * 1024 * 1024
SESSION_COOKIE = "session"


@dataclass(frozen=True)
class Caller:
    """Who the request is from: an account, or nobody (``public``)."""

    account_id: str | None
    public_url: bool  # the URL itself is the credential (signed, or a public share)


def cache_key(bucket: BucketInfo, obj: ObjectInfo, canonical: str) -> str:
    """The cache id of one transform of one source version."""
    identity = "\0".join((str(bucket.id), obj.key, obj.version_id, obj.etag, canonical))
    return hashlib.sha256(identity.encode()).hexdigest()


def etag_matches(header: str, etag: str) -> bool:
    """Whether an If-None-Match header names ``etag`` (weak comparison, RFC 9110)."""
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == etag:
            return True
    return False


def _image_error(exc: ImageError) -> ApiError:
    return ApiError(exc.status, exc.code, exc.message)


def create_images_blueprint(services: StorageCore) -> Blueprint:
    """The ``/api/img`` route over a node's services."""
    bp = Blueprint("images", __name__)
    bp.before_request(check_request_params)
    settings = services.settings
    shares = ShareService(services.db, services.events)
    cache = ImageCache(services.db, services.blobs, chunk_size=settings.storage.chunk_size,
                       max_bytes=settings.images.cache_max_bytes,
                       max_entries=settings.images.cache_max_entries)
    flights: SingleFlight[str, CachedImage] = SingleFlight()
    # Sources in memory at once (each up to MAX_SOURCE_BYTES): twice the
    # transforms that can run, so the next ones are read while others encode.
    loading = trio.CapacityLimiter(2 * default_concurrency())
    reads = RateLimiter(settings.accounts.rest_reads_per_second, 1.0)

    async def signed_caller() -> str:
        args = request.args
        signing.parse_expiry(args.get("exp", ""), settings.images.signed_url_max_seconds)
        found = await services.accounts.resolve_access_key(args.get("ak", "")[:128])
        # A dummy secret when the key is unknown: timing does not tell which exist.
        secret = found[1] if found else "x" * 40
        text = signing.string_to_sign(
            request.view_args["bucket"], request.view_args["key"], int(args["exp"]),
            args.get("ak", ""), args.items(multi=True))
        signing.check_signature(secret, args.get("sig", ""), text)
        if found is None:
            raise signing.BadSignature("the signature does not match")
        return found[0].id

    async def caller() -> Caller:
        if "sig" in request.args or "ak" in request.args:
            return Caller(await signed_caller(), public_url=True)
        token = request.cookies.get(SESSION_COOKIE, "")
        if token:
            account = await services.sessions.resolve(token)
            if account is None:
                raise ApiError(401, "Unauthorized", "The session has expired: log in again.")
            return Caller(account.id, public_url=False)
        if request.headers.get("X-API-Key") or request.headers.get("Authorization"):
            auth = await authenticate_api_key(services.accounts)
            return Caller(auth.account.id, public_url=False)
        return Caller(None, public_url=True)

    def anonymous() -> ApiError:
        return ApiError(401, "Unauthorized", "Transforming this image needs a session, an API "
                        "key, or a signed URL.")

    async def source(who: Caller, bucket_name: str, key: str) -> tuple[BucketInfo, ObjectInfo]:
        try:
            if who.account_id is None:
                bucket = await services.buckets.get(bucket_name)
            else:
                bucket = await services.authz.bucket(who.account_id, bucket_name, Action.READ)
            obj = await services.objects.head_object(bucket, key)
        except AccessDenied:
            raise ApiError(403, "AccessDenied", "You do not have access to this image.") from None
        except (errors.NoSuchBucket, errors.NoSuchKey, errors.NoSuchVersion):
            if who.account_id is None:
                raise anonymous() from None
            raise ApiError(404, "NotFound", "The image does not exist.") from None
        if who.account_id is None and not await shares.is_public(
                bucket.id, obj.key, obj.version_id, obj.etag):
            raise anonymous()
        return bucket, obj

    async def compute(obj: ObjectInfo, bucket_id: int, key: str, params: ImageParams,
                      fmt: str) -> CachedImage:
        hit = await cache.get(key)
        if hit is not None:
            return hit
        if obj.size > MAX_SOURCE_BYTES:
            raise SourceTooLarge(f"the source is {obj.size} bytes, over the limit of "
                                 f"{MAX_SOURCE_BYTES}")
        async with loading:
            data = await services.objects.get_bytes(obj)
            result = await transform_async(data, params, fmt)
        item = CachedImage(result.data, result.content_type, result.width, result.height)
        await cache.put(key, bucket_id, item)
        return item

    @bp.get("/api/img/<bucket>/<path:key>")
    async def transform_image(bucket: str, key: str) -> Any:
        try:
            params = parse_params(request.args.items(multi=True),
                                  ignore=signing.SIGNATURE_PARAMS)
            who = await caller()
        except ImageError as exc:
            return error_response(_image_error(exc))
        check_rate(reads, who.account_id or client_ip())
        found_bucket, obj = await source(who, bucket, key)
        headers = {"Cache-Control": f"{'public' if who.public_url else 'private'}, "
                                    f"max-age={MAX_AGE}",
                   "X-Content-Type-Options": "nosniff"}
        fmt = params.format
        if fmt is None:
            fmt = choose_format(request.headers.get("Accept"),
                                format_of_content_type(obj.content_type))
            headers["Vary"] = "Accept"
        ident = cache_key(found_bucket, obj, params.canonical(fmt))
        etag = f'"{ident[:32]}"'
        headers["ETag"] = etag
        if etag_matches(request.headers.get("If-None-Match", ""), etag):
            return Response(b"", status=304, headers=headers)
        # X-Cache: HIT (stored result), MISS (this request computed it) or
        # SHARED (it waited for a concurrent request computing the same one).
        state = "HIT"

        async def led() -> CachedImage:
            nonlocal state
            state = "MISS"
            return await compute(obj, found_bucket.id, ident, params, fmt)

        try:
            item = await cache.get(ident)
            if item is None:
                state = "SHARED"
                item = await flights.run(ident, led)
        except ImageError as exc:
            return error_response(_image_error(exc))
        headers.update({"Content-Type": item.content_type, "X-Cache": state,
                        "X-Image-Size": f"{item.width}x{item.height}"})
        return Response(item.data, status=200, headers=headers)

    return bp
