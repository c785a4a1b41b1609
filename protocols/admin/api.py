"""The admin API: ``/admin/v1/...`` on every node's web port (JSON, token auth).

Every node answers for the whole cluster: cluster-wide views (status,
workers) read the shared metadata database and ask each up node for its
local figures over HTTP (authenticated node-to-node with an HMAC of the
cluster secret, so operators' tokens need not be known to every machine).
The schema of every answer is in ``openapi.json`` next to this module.

Errors are JSON ``{"error": code, "message": text, "status": n}``; nothing
here ever answers with a traceback.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import trio
from quart import Blueprint, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from config import parse_size
from protocols import VERSION
from protocols.admin.control import ClusterControl
from protocols.admin.tokens import TokenStore
from protocols.admin.webhooks import create_webhooks_blueprint
from storage import admin_queries as queries
from storage import errors
from storage.core import StorageCore
from storage.crypto import derive_key
from storage.trace import TraceEvent

API_PREFIX = "/admin/v1"
OPENAPI_PATH = Path(__file__).with_name("openapi.json")
API_VERSION = "1"
_INTERNAL_HEADER = "X-Cluster-Admin"
_INTERNAL_MAX_SKEW = 60.0
_FANOUT_TIMEOUT = 1.5
_SSE_KEEPALIVE = 10.0
_STARTED = time.time()


class ApiError(Exception):
    """An error answered as JSON with ``status``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _error(status: int, code: str, message: str) -> Response:
    response = jsonify(error=code, message=message, status=status)
    response.status_code = status
    return response


def internal_signature(key: bytes, method: str, path: str, stamp: str) -> str:
    """The node-to-node MAC of one admin request (method, path and time bound),
    under a key derived from the cluster secret for this purpose only."""
    msg = f"{stamp}\n{method.upper()}\n{path}".encode()
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def _layout_json(layout: Any, *, full: bool = False) -> dict[str, Any] | None:
    if layout is None:
        return None
    counts = layout.replica_counts()
    out: dict[str, Any] = {
        "version": layout.version, "partitions": layout.num_partitions,
        "replication_factor": layout.replication_factor,
        "nodes": [{"id": n.id, "zone": n.zone, "capacity": n.capacity,
                   "partitions": counts.get(n.id, 0)} for n in layout.nodes],
    }
    if full:
        out["assignment"] = [list(a) for a in layout.assignment]
    return out


def _int_arg(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "InvalidArgument", f"{name} must be an integer") from None
    if not lo <= value <= hi:
        raise ApiError(400, "InvalidArgument", f"{name} must be between {lo} and {hi}")
    return value


async def _json_body() -> dict[str, Any]:
    data = await request.get_json(force=True, silent=True)
    if data is None and (await request.get_data()):
        raise ApiError(400, "InvalidJSON", "the request body is not valid JSON")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ApiError(400, "InvalidJSON", "the request body must be a JSON object")
    return data


def _size_field(body: dict[str, Any], name: str) -> int | None:
    if name not in body or body[name] is None:
        return None
    try:
        return parse_size(body[name])
    except (ValueError, TypeError):
        raise ApiError(400, "InvalidArgument",
                       f"{name} must be a byte count or a size like 10GiB") from None


class TraceFilter:
    """Which events a trace subscriber wants (all conditions must hold)."""

    def __init__(self, args: Any) -> None:
        self.protocols = {p for p in args.get("protocol", "").split(",") if p}
        self.include_admin = args.get("admin", "") in ("1", "true", "yes") or (
            "admin" in self.protocols)
        self.account = args.get("account", "").lower()
        self.bucket = args.get("bucket", "")
        self.status = args.get("status", "").lower()
        raw = args.get("min_duration_ms", "") or "0"
        try:
            self.min_duration = float(raw)
        except ValueError:
            raise ApiError(400, "InvalidArgument", "min_duration_ms must be a number") from None
        if self.status and not (self.status in ("error", "ok") or self.status.isdigit()
                                or (len(self.status) == 3 and self.status.endswith("xx")
                                    and self.status[0].isdigit())):
            raise ApiError(400, "InvalidArgument",
                           "status must be a code (404), a class (5xx), 'error' or 'ok'")

    def matches(self, ev: TraceEvent) -> bool:
        """True if ``ev`` passes every condition."""
        if ev.protocol == "admin" and not self.include_admin:
            return False
        if self.protocols and ev.protocol not in self.protocols:
            return False
        if self.account and self.account not in ev.account.lower() \
                and self.account != ev.access_key.lower():
            return False
        if self.bucket and ev.bucket != self.bucket:
            return False
        if ev.duration_ms < self.min_duration:
            return False
        s = self.status
        if s == "error":
            return ev.status >= 400
        if s == "ok":
            return ev.status < 400
        if s.endswith("xx"):
            return ev.status // 100 == int(s[0])
        return not s or ev.status == int(s)


def create_admin_blueprint(services: StorageCore, control: ClusterControl) -> Blueprint:
    """The ``/admin/v1`` blueprint over a node's storage core and cluster control."""
    bp = Blueprint("admin_api", __name__, url_prefix=API_PREFIX)
    settings = services.settings
    node_id = settings.node.id
    tokens = TokenStore(settings)
    bus = services.trace
    secret = derive_key(settings.cluster_secret(), "admin-internal")
    clients: list[httpx.AsyncClient] = []

    def http() -> httpx.AsyncClient:
        # One pooled client per node process, made inside the trio run.
        if not clients:
            clients.append(httpx.AsyncClient(timeout=_FANOUT_TIMEOUT))
        return clients[0]

    # -- auth ------------------------------------------------------------------

    def _internal_ok() -> bool:
        value = request.headers.get(_INTERNAL_HEADER, "")
        stamp, _, mac = value.partition(":")
        try:
            fresh = abs(time.time() - float(stamp)) <= _INTERNAL_MAX_SKEW
        except ValueError:
            return False
        want = internal_signature(secret, request.method, request.path, stamp)
        return fresh and hmac.compare_digest(want, mac)

    @bp.before_request
    async def authenticate() -> Any:
        if request.path == f"{API_PREFIX}/openapi.json":
            return None  # the schema is public, like any API documentation
        if request.headers.get(_INTERNAL_HEADER):
            if _internal_ok():
                return None
            return _error(401, "Unauthorized", "invalid node-to-node signature")
        auth = request.headers.get("Authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        token = token or request.headers.get("X-Admin-Token", "")
        if not token:
            return _error(401, "Unauthorized",
                          "an admin token is required (Authorization: Bearer <token>)")
        entry = tokens.check(token)
        if entry is None:
            return _error(401, "Unauthorized", "the admin token is not valid")
        if entry.scope != "write" and request.method not in ("GET", "HEAD"):
            return _error(403, "Forbidden", "this admin token is read-only")
        return None

    @bp.errorhandler(ApiError)
    async def api_error(exc: ApiError) -> Any:
        return _error(exc.status, exc.code, exc.message)

    @bp.errorhandler(queries.NotFound)
    async def not_found(exc: queries.NotFound) -> Any:
        return _error(404, "NotFound", exc.message)

    @bp.errorhandler(errors.StorageError)
    async def storage_error(exc: errors.StorageError) -> Any:
        return _error(409, exc.code, exc.message)

    @bp.errorhandler(ValueError)
    async def value_error(exc: ValueError) -> Any:
        return _error(400, "InvalidArgument", str(exc))

    @bp.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Any:
        return _error(exc.code or 500, (exc.name or "Error").replace(" ", ""),
                      exc.description or "")

    # -- fan-out ---------------------------------------------------------------

    def _node_url(addr: str) -> str:
        host, _, port = addr.rpartition(":")
        if host in ("", "0.0.0.0", "::", "[::]"):
            host = "127.0.0.1"  # a wildcard bind is reachable on loopback
        return f"http://{host}:{port}"

    async def _call_node(
        row: dict[str, Any], method: str, path: str
    ) -> dict[str, Any] | None:
        """``method path`` on another node's admin API (None if it fails)."""
        stamp = f"{time.time():.3f}"
        headers = {_INTERNAL_HEADER: f"{stamp}:{internal_signature(secret, method, path, stamp)}"}
        try:
            r = await http().request(method, _node_url(row["web_addr"]) + path, headers=headers)
        except httpx.HTTPError:
            return None
        if r.status_code != 200:
            return None
        try:
            return r.json()
        except ValueError:
            return None

    async def _local_node() -> dict[str, Any]:
        try:
            disk = shutil.disk_usage(settings.node.data_dir)
            disk_json = {"total": disk.total, "used": disk.used, "free": disk.free}
        except OSError:
            disk_json = {"total": 0, "used": 0, "free": 0}
        workers = control.workers
        return {
            "id": node_id, "zone": settings.node.zone, "capacity": settings.node.capacity,
            "version": VERSION, "pid": os.getpid(), "started_at": _STARTED,
            "uptime_seconds": round(time.time() - _STARTED, 1),
            "data_dir": str(settings.node.data_dir), "disk": disk_json,
            "chunks": await control.chunk_stats(), "requests": bus.stats(),
            "workers": [_with_percent(w) for w in workers.status()] if workers else [],
            "workers_available": workers is not None,
        }

    async def _gather_nodes(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any] | None]:
        found: dict[str, dict[str, Any] | None] = {}

        async def one(row: dict[str, Any]) -> None:
            if row["id"] == node_id:
                found[row["id"]] = await _local_node()
            elif row["up"] and row.get("web_addr"):
                found[row["id"]] = await _call_node(row, "GET", f"{API_PREFIX}/node")
            else:
                found[row["id"]] = None

        async with trio.open_nursery() as nursery:
            for row in rows:
                nursery.start_soon(one, row)
        return found

    async def _node_rows() -> list[dict[str, Any]]:
        return await control.node_states()

    # -- endpoints: cluster --------------------------------------------------------

    @bp.get("/node")
    async def node_local() -> Any:
        return jsonify(await _local_node())

    @bp.get("/status")
    async def status() -> Any:
        rows = await _node_rows()
        layouts = control.layouts
        current, staged = await layouts.current(), await layouts.staged()
        local, totals = await _gather_nodes(rows), await queries.totals(services.db)
        partitions = current.replica_counts() if current is not None else {}
        nodes: list[dict[str, Any]] = []
        zones: dict[str, dict[str, Any]] = {}
        rate = err_rate = 0.0
        for row in rows:
            info = local.get(row["id"])
            node = {
                "id": row["id"], "zone": row["zone"], "capacity": row["capacity"],
                "up": bool(row["up"]), "reachable": info is not None,
                "last_heartbeat": row["last_heartbeat"].isoformat(),
                "started_at": row["started_at"].isoformat(),
                "web_addr": row["web_addr"], "s3_addr": row["s3_addr"],
                "sftp_addr": row["sftp_addr"], "transport_addr": row["transport_addr"],
                "in_layout": current is not None and row["id"] in partitions,
                "partitions": partitions.get(row["id"], 0),
                "version": info["version"] if info else None,
                "used_bytes": info["chunks"]["bytes"] if info else None,
                "chunk_count": info["chunks"]["count"] if info else None,
                "disk_free": info["disk"]["free"] if info else None,
                "request_rate": info["requests"]["request_rate"] if info else 0.0,
                "error_rate": info["requests"]["error_rate"] if info else 0.0,
                "workers": info["workers"] if info else [],
            }
            nodes.append(node)
            rate += node["request_rate"]
            err_rate += node["error_rate"]
            z = zones.setdefault(row["zone"], {"zone": row["zone"], "nodes": 0, "up": 0,
                                               "capacity": 0, "used_bytes": 0})
            z["nodes"] += 1
            z["up"] += int(node["up"])
            z["capacity"] += row["capacity"]
            z["used_bytes"] += node["used_bytes"] or 0
        return jsonify({
            "node": node_id, "time": time.time(), "api_version": API_VERSION,
            "nodes": nodes, "zones": sorted(zones.values(), key=lambda z: z["zone"]),
            "totals": {**totals, "nodes": len(nodes), "nodes_up": sum(n["up"] for n in nodes),
                       "capacity": sum(n["capacity"] for n in nodes),
                       "request_rate": round(rate, 2), "error_rate": round(err_rate, 2)},
            "layout": {"version": current.version if current else None,
                       "staged_version": staged.version if staged else None},
        })

    @bp.get("/nodes/<nid>")
    async def node_detail(nid: str) -> Any:
        rows = {r["id"]: r for r in await _node_rows()}
        if nid not in rows:
            raise ApiError(404, "NotFound", f"no node {nid!r}")
        row = rows[nid]
        info = (await _gather_nodes([row]))[nid]
        current = await control.layouts.current()
        return jsonify({
            "id": nid, "zone": row["zone"], "capacity": row["capacity"], "up": row["up"],
            "reachable": info is not None, "last_heartbeat": row["last_heartbeat"].isoformat(),
            "started_at": row["started_at"].isoformat(), "web_addr": row["web_addr"],
            "s3_addr": row["s3_addr"], "sftp_addr": row["sftp_addr"],
            "transport_addr": row["transport_addr"],
            "partitions": current.replica_counts().get(nid, 0) if current else 0,
            "local": info,
        })

    # -- layout ------------------------------------------------------------------

    @bp.get("/layout")
    async def layout_show() -> Any:
        layouts = control.layouts
        full = request.args.get("full") in ("1", "true")
        current, staged = await layouts.current(), await layouts.staged()
        return jsonify({"current": _layout_json(current, full=full),
                        "staged": _layout_json(staged, full=full),
                        "history": await layouts.history()})

    @bp.get("/layout/preview")
    async def layout_preview() -> Any:
        preview = await control.layouts.preview()
        if preview is None:
            raise ApiError(404, "NothingStaged", "no layout change is staged")
        preview["moves"] = preview.get("moves", [])[:_int_arg("moves", 200, 0, 100000)]
        return jsonify(preview)

    async def _layout_call(fn: Callable[[], Awaitable[Any]]) -> Any:
        try:
            return await fn()
        except errors.StorageError as exc:
            if exc.kind is not errors.Kind.CONFLICT:
                raise
            raise ApiError(409, exc.code, exc.message) from None

    @bp.post("/layout/stage")
    async def layout_stage() -> Any:
        body = await _json_body()
        action, nid = body.get("action"), body.get("node")
        if action not in ("add", "remove", "update") or not isinstance(nid, str) or not nid:
            raise ApiError(400, "InvalidArgument",
                           "give action (add, remove or update) and node")
        zone = body.get("zone")
        if zone is not None and (not isinstance(zone, str) or not zone):
            raise ApiError(400, "InvalidArgument", "zone must be a non-empty string")
        capacity = _size_field(body, "capacity")
        layouts = control.layouts

        async def stage() -> Any:
            if action == "add":
                return await layouts.stage_add(nid, zone=zone, capacity=capacity)
            if action == "remove":
                return await layouts.stage_remove(nid)
            return await layouts.stage_update(nid, zone=zone, capacity=capacity)

        staged = await _layout_call(stage)
        return jsonify({"staged": _layout_json(staged), "preview": await layouts.preview()})

    @bp.post("/layout/apply")
    async def layout_apply() -> Any:
        body = await _json_body()
        version = body.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise ApiError(400, "InvalidArgument",
                           "give the staged version to apply: {\"version\": N}")
        layouts = control.layouts
        applied = await _layout_call(lambda: layouts.apply(version))
        return jsonify({"current": _layout_json(applied)})

    @bp.post("/layout/revert")
    async def layout_revert() -> Any:
        return jsonify({"reverted": await control.layouts.revert()})

    # -- workers -----------------------------------------------------------------

    @bp.get("/workers")
    async def workers_all() -> Any:
        rows = await _node_rows()
        local = await _gather_nodes(rows)
        out = []
        for row in rows:
            info = local.get(row["id"])
            for w in (info or {}).get("workers", []):
                out.append({"node": row["id"], **w})
        return jsonify({"workers": out,
                        "nodes": [{"id": r["id"], "up": r["up"],
                                   "reachable": local.get(r["id"]) is not None} for r in rows]})

    @bp.post("/workers/<nid>/<name>/<action>")
    async def worker_action(nid: str, name: str, action: str) -> Any:
        action = "trigger" if action == "run" else action
        if action not in ("pause", "resume", "trigger"):
            raise ApiError(404, "NotFound", f"unknown worker action {action!r}")
        if nid != node_id:
            rows = {r["id"]: r for r in await _node_rows()}
            if nid not in rows:
                raise ApiError(404, "NotFound", f"no node {nid!r}")
            if not rows[nid]["up"]:
                raise ApiError(503, "NodeDown", f"node {nid} is down")
            answer = await _call_node(rows[nid], "POST",
                                      f"{API_PREFIX}/workers/{nid}/{name}/{action}")
            if answer is None:
                raise ApiError(502, "NodeUnreachable", f"node {nid} did not answer")
            return jsonify(answer)
        registry = control.workers
        if registry is None or name not in registry.names():
            raise ApiError(404, "NotFound", f"node {nid} has no worker {name!r}")
        getattr(registry, action)(name)
        return jsonify({"node": nid, **_with_percent(registry.get(name).status())})

    # -- accounts, buckets, keys ---------------------------------------------------

    @bp.get("/accounts")
    async def accounts_list() -> Any:
        sort = request.args.get("sort", "email")
        if sort not in queries.ACCOUNT_SORTS:
            raise ApiError(400, "InvalidArgument",
                           f"sort must be one of {', '.join(queries.ACCOUNT_SORTS)}")
        return jsonify(await queries.list_accounts(
            services.db, q=request.args.get("q", ""), sort=sort,
            limit=_int_arg("limit", 500, 1, 5000), offset=_int_arg("offset", 0, 0, 10**9)))

    @bp.post("/accounts")
    async def accounts_create() -> Any:
        body = await _json_body()
        email = body.get("email")
        if not isinstance(email, str):
            raise ApiError(400, "InvalidArgument", "email is required")
        plan = body.get("plan", "free")
        if not isinstance(plan, str) or not plan:
            raise ApiError(400, "InvalidArgument", "plan must be a non-empty string")
        account = await services.accounts.create_account(
            email, quota_bytes=_size_field(body, "quota_bytes"), plan=plan)
        out = await queries.get_account(services.db, account.id)
        response: dict[str, Any] = {"account": out}
        if body.get("create_key", True):
            creds = await services.accounts.create_access_key(account.id, "first key")
            response["access_key"] = creds.access_key
            response["secret_key"] = creds.secret_key
        return jsonify(response), 201

    @bp.get("/accounts/<ref>")
    async def account_show(ref: str) -> Any:
        return jsonify(await queries.get_account(services.db, ref))

    @bp.patch("/accounts/<ref>")
    async def account_update(ref: str) -> Any:
        body = await _json_body()
        status_, plan = body.get("status"), body.get("plan")
        for name, value in (("status", status_), ("plan", plan)):
            if value is not None and not isinstance(value, str):
                raise ApiError(400, "InvalidArgument", f"{name} must be a string")
        return jsonify(await queries.update_account(
            services.db, ref, status=status_, plan=plan,
            quota_bytes=_size_field(body, "quota_bytes")))

    @bp.get("/accounts/<ref>/buckets")
    async def account_buckets(ref: str) -> Any:
        return jsonify(await queries.account_buckets(services.db, ref))

    @bp.get("/accounts/<ref>/keys")
    async def account_keys(ref: str) -> Any:
        return jsonify({"keys": await queries.list_keys(services.db, ref)})

    @bp.get("/buckets")
    async def buckets_all() -> Any:
        return jsonify({"buckets": await queries.list_buckets(
            services.db, q=request.args.get("q", ""))})

    @bp.get("/keys")
    async def keys_all() -> Any:
        return jsonify({"keys": await queries.list_keys(
            services.db, request.args.get("account") or None)})

    @bp.delete("/keys/<access_key>")
    async def key_revoke(access_key: str) -> Any:
        await queries.revoke_key(services.db, access_key)
        return jsonify({"revoked": access_key})

    # -- trace -------------------------------------------------------------------

    @bp.get("/trace")
    async def trace() -> Any:
        wanted = TraceFilter(request.args)
        buffer = _int_arg("buffer", 1000, 1, 100000)
        sub = bus.subscribe(buffer)

        async def stream() -> AsyncIterator[bytes]:
            try:
                hello = {"node": node_id, "buffer": buffer, "time": time.time()}
                yield f"event: hello\ndata: {json.dumps(hello)}\n\n".encode()
                while True:
                    with trio.move_on_after(_SSE_KEEPALIVE) as timer:
                        try:
                            ev = await sub.receive.receive()
                        except trio.EndOfChannel:
                            yield b"event: bye\ndata: {}\n\n"  # node shutting down
                            return
                    if timer.cancelled_caught:
                        yield b": keepalive\n\n"  # lets both ends notice a dead peer
                        continue
                    if dropped := sub.take_dropped():
                        yield (f"event: dropped\ndata: "
                               f"{json.dumps({'node': node_id, 'dropped': dropped})}\n\n"
                               ).encode()
                    if wanted.matches(ev):
                        yield f"event: request\ndata: {json.dumps(ev.to_json())}\n\n".encode()
            finally:
                sub.close()

        response = Response(stream(), mimetype="text/event-stream")
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Accel-Buffering"] = "no"
        response.timeout = None  # a stream lasts as long as the console watches
        return response

    @bp.get("/openapi.json")
    async def openapi() -> Any:
        return Response(OPENAPI_PATH.read_text(), mimetype="application/json")

    # Nested: the bearer-token check and error handlers above cover it too.
    bp.register_blueprint(create_webhooks_blueprint(services.db))
    return bp


def _with_percent(status: dict[str, Any]) -> dict[str, Any]:
    """Add ``percent`` (0-100, or None) from the pass's done/remaining counters,
    so every client shows the same progress."""
    p = status.get("progress") or {}
    percent = None
    for unit in ("chunks", "bytes", "items"):
        done, left = p.get(f"{unit}_done"), p.get(f"{unit}_remaining")
        if isinstance(done, int | float) and isinstance(left, int | float):
            total = done + max(left, 0)
            percent = 100.0 if total <= 0 else round(100 * done / total, 1)
            break
    return {**status, "percent": percent}
