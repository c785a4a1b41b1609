"""What an S3 operation handler receives: :class:`Ctx`, one per request.

A handler is ``async def handler(ctx: Ctx) -> Response``: the request, the
authenticated requester (access key, account, signing context, what the
authentication round trip already loaded) and, through :class:`S3Services`,
the node's storage core, the S3 app's caches and its rate limits.  No
handler reaches for module globals.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from protocols.s3 import xml as s3xml
from protocols.s3.errors import S3Error, access_denied, too_many_requests
from protocols.s3.request import Request
from protocols.s3.router import Op, action_of
from protocols.s3.sigv4 import SigningContext
from storage import errors as serr
from storage.accounts import AccountInfo
from storage.authz import Action
from storage.buckets import BucketInfo, BucketService
from storage.core import StorageCore
from storage.hotpath import KeyRecord, Loaded, load
from storage.multipart import MultipartService
from storage.objects import ObjectService
from storage.ratelimit import RateLimited, RateLimiter

#: Requests per second per access key and operation class (0 disables a class).
#: Node settings may override them (``accounts.s3_writes_per_second`` ...).
DEFAULT_RATE_LIMITS: dict[str, float] = {"write": 100.0, "read": 300.0, "list": 50.0}
#: How long a bucket's metadata is trusted without asking the database again,
#: for buckets a request names besides its own (a copy source).  The access
#: key and the request's own bucket are read fresh on every request, in the
#: same round trip (storage/hotpath.py), so revoking a key, suspending an
#: account or deleting a bucket takes effect at once on every node.
BUCKET_CACHE_SECONDS = 1.0
# A cache past this many entries is emptied (bounded memory, refilled at once).
_CACHE_ENTRIES = 10_000


def _now() -> float:
    return time.monotonic()


class RateLimits:
    """Per-access-key token buckets for each operation class (one second of burst)."""

    def __init__(self, rates: Mapping[str, float]) -> None:
        self.rates = dict(rates)
        self._limiters = {
            op_class: RateLimiter(max(1, round(rate)), 1.0)
            for op_class, rate in rates.items() if rate > 0
        }

    def check(self, access_key: str, op_class: str) -> None:
        """Take a token or raise TooManyRequests with a Retry-After."""
        limiter = self._limiters.get(op_class)
        if limiter is None:
            return
        try:
            limiter.check(access_key)
        except RateLimited as exc:
            raise too_many_requests(exc.retry_after) from None


def rate_limits_from(core: StorageCore) -> dict[str, float]:
    """The per-key rates of the node settings (``accounts.s3_*_per_second``)."""
    # Named like the REST API's limits; absent settings keep the documented defaults.
    limits = dict(DEFAULT_RATE_LIMITS)
    section = core.settings.accounts
    for op_class in limits:
        value = getattr(section, f"s3_{op_class}s_per_second", None)
        if value is not None:
            limits[op_class] = float(value)
    return limits


def vhost_domains(core: StorageCore) -> tuple[str, ...]:
    """The domains whose sub-domains name a bucket (virtual-host style)."""
    domains = ["localhost"]
    public = core.settings.listen.public_host.strip().lower()
    if public and not public.replace(".", "").isdigit() and public not in domains:
        domains.insert(0, public)
    return tuple(domains)


class S3Services:
    """The S3 app's long-lived state: the storage core, caches, rate limits."""

    def __init__(self, core: StorageCore, rate_limits: Mapping[str, float] | None = None) -> None:
        self.core = core
        self.objects: ObjectService = core.objects
        self.buckets: BucketService = core.buckets
        self.multipart = MultipartService(core.db, core.objects)
        self.region: str = core.settings.cluster.region
        self.limiter = RateLimits(
            rate_limits if rate_limits is not None else rate_limits_from(core))
        self._buckets: dict[str, tuple[float, BucketInfo]] = {}
        # bucket id -> (expiry, CORS rules): cached like the bucket cache.
        self._cors: dict[int, tuple[float, list[s3xml.CORSRule]]] = {}

    async def load_key(
        self, req: Request, access_key: str, *, want_object: bool = False
    ) -> tuple[KeyRecord, Loaded, str]:
        """The key record, what :func:`load` finds for ``req``, and the key's secret.

        InvalidAccessKeyId for an unknown key or an account that is not active.
        """
        loaded = await self.core.db.read(
            load, access_key, req.bucket, req.key, req.query.get("versionId") or None,
            want_object=want_object,
        )
        record = loaded.key
        if record is None or record.account.status != "active":
            raise S3Error("InvalidAccessKeyId", extra={"AWSAccessKeyId": access_key})
        secret = self.core.accounts.open_secret(access_key, record.sealed_secret)
        if req.trace_notes is not None:
            req.trace_notes["account"] = record.account.email
        if loaded.bucket is not None:
            self.remember_bucket(loaded.bucket)
        elif loaded.bucket_missing:
            self.forget_bucket(req.bucket)
        return record, loaded, secret

    async def cached_bucket(self, name: str, *, fresh: bool = False) -> BucketInfo:
        """The bucket ``name``, whoever owns it (NoSuchBucket if absent)."""
        hit = self._buckets.get(name)
        if hit is not None and hit[0] > _now() and not fresh:
            return hit[1]
        info = await self.buckets.get(name)
        self.remember_bucket(info)
        return info

    def remember_bucket(self, info: BucketInfo) -> None:
        """Cache ``info`` for :data:`BUCKET_CACHE_SECONDS`."""
        if len(self._buckets) > _CACHE_ENTRIES:
            self._buckets.clear()
        self._buckets[info.name] = (_now() + BUCKET_CACHE_SECONDS, info)

    def forget_bucket(self, name: str) -> None:
        """Drop the cached bucket ``name`` (it changed or is gone)."""
        self._buckets.pop(name, None)

    async def cors_rules(self, bucket: BucketInfo) -> list[s3xml.CORSRule]:
        """The bucket's CORS rules (cached like buckets)."""
        now = _now()
        hit = self._cors.get(bucket.id)
        if hit is not None and hit[0] > now:
            return hit[1]
        rules = [s3xml.CORSRule.from_dict(r) for r in await self.buckets.get_cors(bucket) or ()]
        if len(self._cors) > _CACHE_ENTRIES:
            self._cors.clear()
        self._cors[bucket.id] = (now + BUCKET_CACHE_SECONDS, rules)
        return rules

    def forget_cors(self, bucket_id: int) -> None:
        """Drop the cached CORS rules of a bucket (they changed)."""
        self._cors.pop(bucket_id, None)


class Ctx:
    """One request as its handler sees it (requester fields set by authentication)."""

    __slots__ = ("access_key", "account", "bucket_name", "loaded", "node", "op", "req",
                 "signing")

    def __init__(self, node: S3Services, req: Request, op: Op) -> None:
        self.node = node
        self.req = req
        self.op = op
        self.access_key = ""
        # None until authenticated (a preflight never is).
        self.account: AccountInfo | None = None
        # None for a POST form: its policy is signed, its body is not.
        self.signing: SigningContext | None = None
        # What the authentication round trip also fetched: the request's
        # bucket (None if it does not exist) and, for GET/HEAD of an object,
        # the version or the error looking it up raises.
        self.loaded: Loaded | None = None
        self.bucket_name = ""

    def authenticated(self, access_key: str, account: AccountInfo,
                      signing: SigningContext | None, loaded: Loaded | None) -> None:
        """Record the requester that authentication established."""
        self.access_key = access_key
        self.account = account
        self.signing = signing
        self.loaded = loaded
        self.bucket_name = self.req.bucket

    @property
    def core(self) -> StorageCore:
        """The node's storage core."""
        return self.node.core

    @property
    def objects(self) -> ObjectService:
        """The object service."""
        return self.node.objects

    @property
    def buckets(self) -> BucketService:
        """The bucket service."""
        return self.node.buckets

    @property
    def multipart(self) -> MultipartService:
        """The multipart-upload service."""
        return self.node.multipart

    @property
    def region(self) -> str:
        """This cluster's region (cluster.region)."""
        return self.node.region

    def owner(self) -> s3xml.Owner:
        """The requester as S3's Owner element."""
        account = self.requester()
        return s3xml.Owner(account.id, account.email.split("@", 1)[0])

    def requester(self) -> AccountInfo:
        """The authenticated account (a handler of a signed operation has one)."""
        if self.account is None:
            raise access_denied()
        return self.account

    async def bucket(
        self, name: str, *, fresh: bool = False, action: Action | None = None
    ) -> BucketInfo:
        """The bucket ``name`` if the requester may do ``action`` on it (by
        default what the request's operation needs), as storage.authz decides."""
        loaded = self.loaded
        if loaded is not None and name == self.bucket_name and (
            loaded.bucket is not None or loaded.bucket_missing
        ):
            # Read in this request's authentication round trip.
            if loaded.bucket is None:
                raise serr.NoSuchBucket()
            info = loaded.bucket
        else:
            info = await self.node.cached_bucket(name, fresh=fresh)
        if action is None:
            action = action_of(self.op, self.req.method)
        return await self.node.core.authz.check(self.requester().id, info, action)
