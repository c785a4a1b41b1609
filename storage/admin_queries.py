"""The admin API's reads and writes of the metadata database.

Each public function is one unit of work run through :meth:`Database.run`
(so on the asyncio side of the bridge, as the storage core requires).  They
return plain JSON-ready dicts: this module exists for operators' views
(cross-account listings, usage roll-ups) that the tenant-facing services in
storage/ deliberately do not offer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tortoise.functions import Count, Sum
from tortoise.transactions import in_transaction

from storage import errors
from storage.db import Database
from storage.models import (
    AccessKey,
    Account,
    Bucket,
    ChunkRef,
    ObjectVersion,
    Webhook,
    WebhookDelivery,
)

ACCOUNT_SORTS = {
    "email": "email", "used_bytes": "-used_bytes", "object_count": "-object_count",
    "created_at": "created_at", "quota_bytes": "-quota_bytes", "plan": "plan",
    "status": "status",
}
ACCOUNT_STATUSES = ("active", "suspended")


class NotFound(errors.StorageError):
    """The requested resource does not exist."""

    code = "NotFound"
    kind = errors.Kind.NOT_FOUND


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _account_json(a: dict[str, Any], buckets: int = 0, keys: int = 0) -> dict[str, Any]:
    quota = int(a["quota_bytes"])
    used = int(a["used_bytes"])
    return {
        "id": a["id"], "email": a["email"], "plan": a["plan"], "status": a["status"],
        "is_admin": bool(a["is_admin"]), "quota_bytes": quota, "used_bytes": used,
        "object_count": int(a["object_count"]),
        "quota_used_percent": round(100 * used / quota, 2) if quota > 0 else 0.0,
        "bucket_count": buckets, "key_count": keys, "created_at": _iso(a["created_at"]),
    }


_ACCOUNT_FIELDS = ("id", "email", "plan", "status", "is_admin", "quota_bytes", "used_bytes",
                   "object_count", "created_at")


async def _account_row(ref: str) -> dict[str, Any]:
    # The console addresses accounts by id or by email.
    query = Account.filter(email=ref.strip().lower()) if "@" in ref else Account.filter(id=ref)
    rows = await query.values(*_ACCOUNT_FIELDS)
    if not rows:
        raise NotFound(f"no account {ref!r}")
    return rows[0]


async def _counts(model: Any, account_ids: list[str]) -> dict[str, int]:
    rows = await (model.filter(account_id__in=account_ids).annotate(n=Count("account_id"))
                  .group_by("account_id").values("account_id", "n"))
    return {r["account_id"]: int(r["n"]) for r in rows}


async def list_accounts(
    db: Database, *, q: str = "", sort: str = "email", limit: int = 500, offset: int = 0
) -> dict[str, Any]:
    """Accounts with usage, filtered by an email/id substring, sorted."""

    async def work() -> dict[str, Any]:
        query = Account.all()
        if q:
            query = query.filter(email__icontains=q.strip().lower())
        total = await query.count()
        rows = await (query.order_by(ACCOUNT_SORTS[sort], "email").offset(offset).limit(limit)
                      .values(*_ACCOUNT_FIELDS))
        ids = [r["id"] for r in rows]
        buckets = await _counts(Bucket, ids) if ids else {}
        keys = await _counts(AccessKey, ids) if ids else {}
        return {
            "total": total,
            "accounts": [_account_json(r, buckets.get(r["id"], 0), keys.get(r["id"], 0))
                         for r in rows],
        }

    return await db.run(work)


async def get_account(db: Database, ref: str) -> dict[str, Any]:
    """One account with usage."""

    async def work() -> dict[str, Any]:
        row = await _account_row(ref)
        buckets = await Bucket.filter(account_id=row["id"]).count()
        keys = await AccessKey.filter(account_id=row["id"]).count()
        return _account_json(row, buckets, keys)

    return await db.run(work)


async def update_account(
    db: Database, ref: str, *, status: str | None = None, quota_bytes: int | None = None,
    plan: str | None = None,
) -> dict[str, Any]:
    """Suspend/reactivate, change quota or plan; returns the updated account."""
    changes: dict[str, Any] = {}
    if status is not None:
        if status not in ACCOUNT_STATUSES:
            raise ValueError(f"status must be one of {', '.join(ACCOUNT_STATUSES)}")
        changes["status"] = status
    if quota_bytes is not None:
        if quota_bytes < 0:
            raise ValueError("quota_bytes must not be negative")
        changes["quota_bytes"] = quota_bytes
    if plan is not None:
        if not plan.strip() or len(plan) > 32:
            raise ValueError("plan must be 1-32 characters")
        changes["plan"] = plan.strip()

    async def work() -> dict[str, Any]:
        async with in_transaction():
            row = await _account_row(ref)
            if changes:
                await Account.filter(id=row["id"]).update(**changes)
            row = await _account_row(row["id"])
            buckets = await Bucket.filter(account_id=row["id"]).count()
            keys = await AccessKey.filter(account_id=row["id"]).count()
        return _account_json(row, buckets, keys)

    return await db.run(work)


async def _bucket_stats(bucket_ids: list[int]) -> dict[int, dict[str, int]]:
    stats: dict[int, dict[str, int]] = {
        b: {"objects": 0, "bytes": 0, "versions": 0, "version_bytes": 0, "delete_markers": 0}
        for b in bucket_ids
    }
    if not bucket_ids:
        return stats
    latest = await (ObjectVersion.filter(bucket_id__in=bucket_ids, is_latest=True,
                                         is_delete_marker=False)
                    .annotate(n=Count("id"), b=Sum("size")).group_by("bucket_id")
                    .values("bucket_id", "n", "b"))
    for r in latest:
        stats[r["bucket_id"]].update(objects=int(r["n"]), bytes=int(r["b"] or 0))
    every = await (ObjectVersion.filter(bucket_id__in=bucket_ids)
                   .annotate(n=Count("id"), b=Sum("size")).group_by("bucket_id", "is_delete_marker")
                   .values("bucket_id", "is_delete_marker", "n", "b"))
    for r in every:
        s = stats[r["bucket_id"]]
        if r["is_delete_marker"]:
            s["delete_markers"] += int(r["n"])
        else:
            s["versions"] += int(r["n"])
            s["version_bytes"] += int(r["b"] or 0)
    return stats


def _bucket_json(b: dict[str, Any], stats: dict[str, int], email: str) -> dict[str, Any]:
    return {
        "name": b["name"], "account_id": b["account_id"], "account_email": email,
        "region": b["region"], "versioning": b["versioning"] or "Disabled",
        "created_at": _iso(b["created_at"]), **stats,
    }


async def account_buckets(db: Database, ref: str) -> dict[str, Any]:
    """The account's buckets with object count, bytes and version counts."""

    async def work() -> dict[str, Any]:
        row = await _account_row(ref)
        buckets = await (Bucket.filter(account_id=row["id"]).order_by("name")
                         .values("id", "name", "account_id", "region", "versioning",
                                 "created_at"))
        stats = await _bucket_stats([b["id"] for b in buckets])
        keys = await AccessKey.filter(account_id=row["id"]).count()
        return {"account": _account_json(row, len(buckets), keys),
                "buckets": [_bucket_json(b, stats[b["id"]], row["email"]) for b in buckets]}

    return await db.run(work)


async def list_buckets(db: Database, *, q: str = "") -> list[dict[str, Any]]:
    """Every bucket of the cluster with its usage."""

    async def work() -> list[dict[str, Any]]:
        query = Bucket.all()
        if q:
            query = query.filter(name__icontains=q)
        buckets = await query.order_by("name").values(
            "id", "name", "account_id", "region", "versioning", "created_at",
            email="account__email")
        stats = await _bucket_stats([b["id"] for b in buckets])
        return [_bucket_json(b, stats[b["id"]], b["email"]) for b in buckets]

    return await db.run(work)


async def list_keys(db: Database, account_ref: str | None = None) -> list[dict[str, Any]]:
    """Access keys (never secrets), optionally of one account."""

    async def work() -> list[dict[str, Any]]:
        query = AccessKey.all()
        if account_ref:
            query = query.filter(account_id=(await _account_row(account_ref))["id"])
        rows = await query.order_by("created_at").values(
            "access_key", "account_id", "name", "created_at", "last_used_at",
            email="account__email", account_status="account__status")
        return [{"access_key": r["access_key"], "account_id": r["account_id"],
                 "account_email": r["email"], "account_status": r["account_status"],
                 "name": r["name"], "created_at": _iso(r["created_at"]),
                 "last_used_at": _iso(r["last_used_at"])} for r in rows]

    return await db.run(work)


async def revoke_key(db: Database, access_key: str) -> None:
    """Delete an access key; raises NotFound."""

    async def work() -> int:
        return await AccessKey.filter(access_key=access_key).delete()

    if not await db.run(work):
        raise NotFound(f"no access key {access_key!r}")


async def account_label_of_key(db: Database, access_key: str) -> str:
    """The email of the account owning ``access_key`` ("" if unknown)."""

    async def work() -> str:
        rows = await AccessKey.filter(access_key=access_key).values(email="account__email")
        return rows[0]["email"] if rows else ""

    return await db.run(work)


async def totals(db: Database) -> dict[str, int]:
    """Cluster-wide counts from the metadata database."""

    async def work() -> dict[str, int]:
        usage = await Account.all().annotate(b=Sum("used_bytes"), n=Sum("object_count")) \
            .values("b", "n")
        chunks = await ChunkRef.all().annotate(n=Count("chunk_id"), b=Sum("size")).values("n", "b")
        return {
            "accounts": await Account.all().count(),
            "buckets": await Bucket.all().count(),
            "objects": int(usage[0]["n"] or 0) if usage else 0,
            "used_bytes": int(usage[0]["b"] or 0) if usage else 0,
            "chunks": int(chunks[0]["n"] or 0) if chunks else 0,
            "chunk_bytes": int(chunks[0]["b"] or 0) if chunks else 0,
            "unreferenced_chunks": await ChunkRef.filter(refcount__lte=0).count(),
        }

    return await db.run(work)


# A delivery row's answer/error prefix is already bounded when stored; this
# keeps a cluster-wide listing small even so.
_DELIVERY_TEXT = 200


def _delivery_json(d: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": int(d["id"]), "event_id": int(d["event_id"]), "event_type": d["event_type"],
        "status": d["status"], "attempts": int(d["attempts"]),
        "response_code": d["response_code"], "duration_ms": d["duration_ms"],
        "response_body": (d["response_body"] or "")[:_DELIVERY_TEXT],
        "error": (d["error"] or "")[:_DELIVERY_TEXT],
        "created_at": _iso(d["created_at"]), "updated_at": _iso(d["updated_at"]),
    }


async def list_webhooks(
    db: Database, *, limit: int = 200, deliveries: int = 20
) -> list[dict[str, Any]]:
    """Every webhook of the cluster (newest first, at most ``limit``), each with
    its ``deliveries`` most recent delivery rows, newest first."""

    async def work() -> list[dict[str, Any]]:
        hooks = await (Webhook.all().order_by("-created_at", "id").limit(limit).values(
            "id", "account_id", "url", "events", "active", "failures", "disabled_reason",
            "created_at", email="account__email"))
        out = []
        for h in hooks:
            # One bounded query per webhook (index on webhook, id): at most
            # ``limit`` small reads, never a scan of the whole log.
            # (Tortoise reads ``limit(0)`` as "no limit": ask for nothing instead.)
            rows = await (WebhookDelivery.filter(webhook_id=h["id"]).order_by("-id")
                          .limit(deliveries).values()) if deliveries > 0 else []
            out.append({
                "id": h["id"], "account_id": h["account_id"], "account_email": h["email"],
                "url": h["url"], "events": list(h["events"] or []), "active": bool(h["active"]),
                "failures": int(h["failures"]), "disabled_reason": h["disabled_reason"],
                "created_at": _iso(h["created_at"]),
                "deliveries": [_delivery_json(d) for d in rows],
            })
        return out

    return await db.run(work)
