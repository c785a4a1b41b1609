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
  or download limit (the bytes are public already).  A transform is not a
  share download.

Anything else is 401 without saying whether the object exists.  Responses
are cached by browsers for 7 days (``Cache-Control: max-age=604800``,
``private`` unless the URL itself is the credential) with an ETag naming
the exact result.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
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
    check_rate,
    check_request_params,
    client_ip,
    error_response,
)
from protocols.rest.session import COOKIE
from storage import errors
from storage.authz import AccessDenied, Action
from storage.buckets import BucketInfo
from storage.core import StorageCore
from storage.crypto import constant_time_equals
from storage.hotpath import Loaded, load
from storage.image_cache import CachedImage, ImageCache
from storage.objects import ObjectInfo
from storage.ratelimit import RateLimiter
from storage.shares import ShareService

MAX_AGE = 7 * 24 * 3600
# Sources are read whole into memory: refuse bigger ones before reading.
MAX_SOURCE_BYTES = 128 * 1024 * 1024


@dataclass(frozen=True)
class Caller:
    """Who the request is from: an account, or nobody (``public``)."""

    account_id: str | None
    public_url: bool  # the URL itself is the credential (signed, or a public share)
    # The key, bucket and object read in one round trip (key-authenticated callers).
    loaded: Loaded | None = None


def api_key_header() -> str:
    """``AK:SK`` from ``X-API-Key`` or ``Authorization: Bearer`` ("" if neither),
    as protocols/rest/common.py's authenticate_api_key reads them."""
    raw = request.headers.get("X-API-Key", "")
    if not raw:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            raw = token.strip()
    return raw


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

    async def lookup(access_key: str) -> tuple[str, Loaded]:
        """The key's plaintext secret (a dummy one if there is no such active
        key, so timing does not tell which exist) with the request's bucket
        and object, all in one round trip (storage/hotpath.py)."""
        view = request.view_args or {}
        loaded = await services.db.read(load, access_key, view.get("bucket", ""),
                                        view.get("key", ""), want_object=True)
        record = loaded.key
        if record is None or record.account.status != "active":
            return "x" * 40, replace(loaded, key=None)
        return services.accounts.open_secret(access_key, record.sealed_secret), loaded

    async def signed_caller() -> Caller:
        args = request.args
        exp = signing.parse_expiry(args.get("exp", ""), settings.images.signed_url_max_seconds)
        access_key = args.get("ak", "")[:128]
        secret, loaded = await lookup(access_key)
        view = request.view_args or {}
        text = signing.string_to_sign(view.get("bucket", ""), view.get("key", ""), exp,
                                      access_key, args.items(multi=True))
        signing.check_signature(secret, args.get("sig", ""), text)
        if loaded.key is None:
            raise signing.BadSignature("the signature does not match")
        return Caller(loaded.key.account.id, public_url=True, loaded=loaded)

    async def key_caller(header: str) -> Caller:
        access_key, sep, secret = header.partition(":")
        if not sep or not access_key or not secret or len(header) > 512:
            raise ApiError(401, "Unauthorized", "The API key must be ACCESS_KEY:SECRET_KEY.")
        expected, loaded = await lookup(access_key)
        if not constant_time_equals(secret, expected) or loaded.key is None:
            raise ApiError(401, "Unauthorized", "The API key is invalid or has been revoked.")
        return Caller(loaded.key.account.id, public_url=False, loaded=loaded)

    async def caller() -> Caller:
        if "sig" in request.args or "ak" in request.args:
            return await signed_caller()
        token = request.cookies.get(COOKIE, "")
        if token:
            account = await services.sessions.resolve(token)
            if account is None:
                raise ApiError(401, "Unauthorized", "The session has expired: log in again.")
            return Caller(account.id, public_url=False)
        header = api_key_header()
        if header:
            return await key_caller(header)
        return Caller(None, public_url=True)

    def anonymous() -> ApiError:
        return ApiError(401, "Unauthorized", "Transforming this image needs a session, an API "
                        "key, or a signed URL.")

    async def located(who: Caller, bucket_name: str, key: str) -> tuple[BucketInfo, ObjectInfo]:
        """The bucket and latest version, from the key lookup's round trip if
        there was one; NoSuchBucket / NoSuchKey as the core raises them."""
        if who.loaded is None:
            bucket = await services.buckets.get(bucket_name)
            return bucket, await services.objects.head_object(bucket, key)
        if who.loaded.bucket is None:
            raise errors.NoSuchBucket()
        if isinstance(who.loaded.obj, errors.StorageError):
            raise who.loaded.obj
        assert who.loaded.obj is not None
        return who.loaded.bucket, who.loaded.obj

    async def source(who: Caller, bucket_name: str, key: str) -> tuple[BucketInfo, ObjectInfo]:
        try:
            bucket, obj = await located(who, bucket_name, key)
            if who.account_id is not None:
                await services.authz.check(who.account_id, bucket, Action.READ)
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
            # One process of the node computes; the others find its result.
            async with services.node_locks.hold(f"img:{ident}"):
                made = await cache.get(ident)
                if made is not None:
                    return made
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
