"""The admin API against real node processes; every answer is checked
against protocols/admin/openapi.json."""

from __future__ import annotations

import json
import time

import boto3
import httpx
import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from tests.admin.conftest import Admin, console_token, validate
from tests.harness import TraceReader, run_cli


def _s3(node, access_key=None, secret_key=None):
    return boto3.client(
        "s3", endpoint_url=node.s3_url, region_name=node.region,
        aws_access_key_id=access_key or node.access_key,
        aws_secret_access_key=secret_key or node.secret_key,
        config=BotoConfig(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
    )


def _poll(fn, what: str, deadline: float = 15.0):
    end = time.monotonic() + deadline
    while True:
        value = fn()
        if value:
            return value
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_token_auth_and_scopes(running_node):
    url = f"{running_node.web_url}/admin/v1/status"
    missing = httpx.get(url)
    assert missing.status_code == 401
    assert validate(missing, "/admin/v1/status")["error"] == "Unauthorized"
    wrong = httpx.get(url, headers={"Authorization": "Bearer csadm_not-a-token"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "Unauthorized"

    done = run_cli("admin-token", "create", "--config", str(running_node.config),
                   "--name", "auditor", "--read-only")
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    stored = running_node.settings.admin_token_file().read_text()
    assert token not in stored and "auditor" in stored  # only the hash is kept
    # A token created while the node runs works at once (file re-read).
    ro = {"Authorization": f"Bearer {token}"}
    assert httpx.get(url, headers=ro).status_code == 200
    denied = httpx.patch(f"{running_node.web_url}/admin/v1/accounts/admin@localhost",
                         headers=ro, json={"plan": "pro"})
    assert denied.status_code == 403
    assert validate(denied, "/admin/v1/accounts/{account}", "patch")["error"] == "Forbidden"
    # X-Admin-Token works as well as Bearer.
    rw = {"X-Admin-Token": console_token(running_node)}
    assert httpx.get(url, headers=rw).status_code == 200


def test_status_node_layout_workers_match_the_spec(admin: Admin):
    # Under load a heartbeat can be late: wait for the node to count as up.
    _poll(lambda: admin.get("/status").json()["totals"]["nodes_up"] == 1, "node1 up")
    status = validate(admin.get("/status"), "/admin/v1/status")
    assert status["node"] == "node1"
    [node] = status["nodes"]
    assert node["id"] == "node1" and node["up"] and node["reachable"] and node["zone"] == "dc1"
    assert status["zones"] == [{"zone": "dc1", "nodes": 1, "up": 1, "capacity": 10 * 1024**3,
                                "used_bytes": node["used_bytes"]}]
    assert status["totals"]["accounts"] == 1 and status["totals"]["buckets"] == 1
    local = validate(admin.get("/node"), "/admin/v1/node")
    assert local["id"] == "node1" and local["chunks"]["count"] >= 0
    detail = validate(admin.get("/nodes/node1"), "/admin/v1/nodes/{node}")
    assert detail["local"]["id"] == "node1"
    assert validate(admin.get("/nodes/nope"), "/admin/v1/nodes/{node}")["error"] == "NotFound"
    # The node bootstraps layout v1 in its first maintenance pass.
    _poll(lambda: admin.get("/layout").json()["current"], "layout v1")
    layout = validate(admin.get("/layout"), "/admin/v1/layout")
    assert layout["current"]["nodes"][0]["id"] == "node1" and layout["staged"] is None
    full = admin.get("/layout", params={"full": "1"}).json()
    assert len(full["current"]["assignment"]) == full["current"]["partitions"]
    nothing = admin.get("/layout/preview")
    assert validate(nothing, "/admin/v1/layout/preview")["error"] == "NothingStaged"
    workers = validate(admin.get("/workers"), "/admin/v1/workers")
    names = {w["name"] for w in workers["workers"]}
    assert {"rebalance", "repair", "scrub", "gc"} <= names


def test_worker_pause_and_resume(admin: Admin):
    paused = admin.post("/workers/node1/scrub/pause")
    assert validate(paused, "/admin/v1/workers/{node}/{name}/{action}", "post")["state"] == \
        "paused"
    listed = {w["name"]: w for w in admin.get("/workers").json()["workers"]}
    assert listed["scrub"]["state"] == "paused"
    resumed = admin.post("/workers/node1/scrub/resume").json()
    assert resumed["state"] in ("idle", "running")
    assert admin.post("/workers/node1/nope/pause").status_code == 404
    assert admin.post("/workers/node1/scrub/explode").status_code == 404


def test_accounts_keys_and_quota(admin: Admin):
    created = admin.post("/accounts", json={"email": "Carol@Example.com", "quota_bytes": "2GiB",
                                            "plan": "pro"})
    body = validate(created, "/admin/v1/accounts", "post")
    assert created.status_code == 201
    assert body["account"]["email"] == "carol@example.com"
    assert body["account"]["quota_bytes"] == 2 * 1024**3 and body["account"]["plan"] == "pro"
    assert body["access_key"] and body["secret_key"]
    dup = admin.post("/accounts", json={"email": "carol@example.com"})
    assert dup.status_code == 409 and dup.json()["error"] == "AccountExists"
    bad = admin.post("/accounts", content=b"{not json")
    assert validate(bad, "/admin/v1/accounts", "post")["error"] == "InvalidJSON"

    listed = validate(admin.get("/accounts", params={"q": "carol"}), "/admin/v1/accounts")
    assert [a["email"] for a in listed["accounts"]] == ["carol@example.com"]
    assert listed["accounts"][0]["key_count"] == 1
    by_usage = admin.get("/accounts", params={"sort": "used_bytes"})
    assert by_usage.status_code == 200 and by_usage.json()["total"] == 2
    assert admin.get("/accounts", params={"sort": "shoe_size"}).status_code == 400

    changed = admin.patch("/accounts/carol@example.com",
                          json={"status": "suspended", "quota_bytes": 1000})
    acct = validate(changed, "/admin/v1/accounts/{account}", "patch")
    assert acct["status"] == "suspended" and acct["quota_bytes"] == 1000
    assert admin.patch("/accounts/carol@example.com", json={"status": "gone"}).status_code == 400
    # A suspended account's key no longer works on S3.
    s3 = _s3(admin.node, body["access_key"], body["secret_key"])
    with pytest.raises(ClientError) as denied:
        s3.list_buckets()
    assert "403" in str(denied.value) or "AccessDenied" in str(denied.value) \
        or "InvalidAccessKeyId" in str(denied.value)
    same = validate(admin.get(f"/accounts/{acct['id']}"), "/admin/v1/accounts/{account}")
    assert same["email"] == "carol@example.com"

    keys = validate(admin.get("/keys", params={"account": "carol@example.com"}), "/admin/v1/keys")
    assert [k["access_key"] for k in keys["keys"]] == [body["access_key"]]
    assert "secret" not in json.dumps(keys).lower().replace("secret_key", "")
    revoked = admin.delete(f"/keys/{body['access_key']}")
    assert validate(revoked, "/admin/v1/keys/{access_key}", "delete") == {
        "revoked": body["access_key"]}
    again = admin.delete(f"/keys/{body['access_key']}")
    assert validate(again, "/admin/v1/keys/{access_key}", "delete")["error"] == "NotFound"
    assert admin.get("/accounts/carol@example.com/keys").json() == {"keys": []}
    missing = admin.get("/accounts/nobody@example.com")
    assert validate(missing, "/admin/v1/accounts/{account}")["error"] == "NotFound"


def test_bucket_usage_after_s3_uploads(admin: Admin):
    s3 = _s3(admin.node)
    s3.create_bucket(Bucket="photos")
    s3.put_object(Bucket="photos", Key="a.txt", Body=b"x" * 1000)
    s3.put_object(Bucket="photos", Key="b.bin", Body=b"y" * 70000)
    s3.put_object(Bucket="photos", Key="a.txt", Body=b"z" * 10)  # overwrite: still 2 objects
    body = validate(admin.get("/accounts/admin@localhost/buckets"),
                    "/admin/v1/accounts/{account}/buckets")
    photos = {b["name"]: b for b in body["buckets"]}["photos"]
    assert photos["objects"] == 2 and photos["bytes"] == 70010
    assert photos["account_email"] == "admin@localhost"
    # The account is charged for the Time Machine copy of the replaced a.txt too.
    assert body["account"]["used_bytes"] == 71010 and body["account"]["object_count"] == 3
    every = validate(admin.get("/buckets", params={"q": "phot"}), "/admin/v1/buckets")
    assert [b["name"] for b in every["buckets"]] == ["photos"]
    totals = admin.get("/status").json()["totals"]
    assert totals["objects"] == 3 and totals["used_bytes"] == 71010  # with the history


def test_trace_stream_shows_s3_requests_with_account(admin: Admin):
    reader = TraceReader(admin.node.web_url, admin.token, protocol="s3")
    try:
        s3 = _s3(admin.node)
        s3.put_object(Bucket="default", Key="dir/report.csv", Body=b"r" * 5000)
        with pytest.raises(ClientError):
            s3.get_object(Bucket="default", Key="missing")
        events = _poll(lambda: len(reader.requests()) >= 2 and reader.requests(),
                       "two trace events")
        put, get = events[0], events[1]
        assert put["operation"] == "PutObject" and put["status"] == 200
        assert put["protocol"] == "s3" and put["node"] == "node1"
        assert put["bucket"] == "default" and put["key"] == "dir/report.csv"
        assert put["bytes_in"] >= 5000 and put["duration_ms"] > 0
        assert put["account"] == "admin@localhost" and put["access_key"] == admin.node.access_key
        assert get["operation"] == "GetObject" and get["status"] == 404
        for event in events:
            jsonschema_event(event)
        # Only s3 was asked for: the web request below must not appear.
        assert admin.node.web_url and httpx.get(f"{admin.node.web_url}/health").status_code == 200
        s3.head_bucket(Bucket="default")
        _poll(lambda: any(e["operation"] == "HeadBucket" for e in reader.requests()),
              "HeadBucket event")
        assert all(e["protocol"] == "s3" for e in reader.requests())
    finally:
        reader.close()


def jsonschema_event(event: dict) -> None:
    import jsonschema

    from tests.admin.conftest import SPEC

    jsonschema.validate(event, {"$ref": "#/components/schemas/TraceEvent",
                                "components": SPEC["components"]})


def test_trace_filters_status_and_rejects_bad_filters(admin: Admin):
    bad = admin.get("/trace", params={"status": "teapot"})
    assert bad.status_code == 400 and bad.json()["error"] == "InvalidArgument"
    reader = TraceReader(admin.node.web_url, admin.token, status="4xx")
    try:
        httpx.get(f"{admin.node.web_url}/health")
        httpx.get(f"{admin.node.web_url}/no/such/page")
        [event] = _poll(reader.requests, "a 4xx event")
        assert event["status"] == 404 and event["protocol"] == "web"
        assert event["operation"] == "GET /no/such/page"
    finally:
        reader.close()


def test_request_rates_count_traffic(admin: Admin):
    for _ in range(20):
        httpx.get(f"{admin.node.web_url}/health")
    # Rates are over complete seconds, and a node's other worker processes
    # report theirs once a second: poll until the whole burst is counted.
    stats = _poll(lambda: (s := admin.get("/node").json()["requests"])["request_rate"] > 0
                  and s["requests_total"] >= 20 and s, "the burst counted at a non-zero rate")
    assert stats["rate_by_protocol"]["web"] > 0


def test_errors_are_json_never_tracebacks(admin: Admin):
    for method, path, status in [("GET", "/admin/v1/nope", 404), ("PUT", "/admin/v1/status", 405),
                                 ("POST", "/admin/v1/layout/apply", 400),
                                 ("GET", "/admin/v1/accounts?limit=x", 400)]:
        r = admin.client.request(method, path)
        assert r.status_code == status, (path, r.text)
        assert r.json()["error"], r.text
    assert "Traceback" not in admin.node.read_log()
    spec = httpx.get(f"{admin.node.web_url}/admin/v1/openapi.json").json()
    assert spec["openapi"].startswith("3.1") and "/admin/v1/trace" in spec["paths"]


def test_two_nodes_layout_apply_and_node_down(two_nodes):
    first, second = two_nodes
    token = console_token(first)
    api = httpx.Client(base_url=f"{first.web_url}/admin/v1", timeout=10,
                       headers={"Authorization": f"Bearer {token}"})
    status = _poll(lambda: (s := api.get("/status").json())["totals"]["nodes_up"] == 2 and s,
                   "both nodes up")
    assert {n["id"] for n in status["nodes"]} == {"node1", "node2"}
    assert all(n["reachable"] for n in status["nodes"])  # node2 answered node1's fan-out
    assert {z["zone"] for z in status["zones"]} == {"dc1", "dc2"}
    # node2 stages itself when it finds a layout without it; the operator applies.
    layout = _poll(lambda: (lay := api.get("/layout").json())["staged"] and lay,
                   "node2 staged")
    staged = layout["staged"]
    assert {n["id"] for n in staged["nodes"]} == {"node1", "node2"}
    preview = validate(api.get("/layout/preview"), "/admin/v1/layout/preview")
    assert preview["new_version"] == staged["version"] and preview["partitions_changed"] > 0
    stale = api.post("/layout/apply", json={"version": staged["version"] + 1})
    assert validate(stale, "/admin/v1/layout/apply", "post")["error"] == "LayoutConflict"
    applied = validate(api.post("/layout/apply", json={"version": staged["version"]}),
                       "/admin/v1/layout/apply", "post")
    assert applied["current"]["version"] == staged["version"]
    assert {n["id"]: n["partitions"] > 0 for n in applied["current"]["nodes"]} == {
        "node1": True, "node2": True}
    # Stage then revert a capacity change.
    upd = api.post("/layout/stage", json={"action": "update", "node": "node2",
                                          "capacity": "20GiB"})
    assert validate(upd, "/admin/v1/layout/stage", "post")["staged"]["version"] == \
        staged["version"] + 1
    assert validate(api.post("/layout/revert"), "/admin/v1/layout/revert", "post") == {
        "reverted": True}
    # Worker control is forwarded to the node that runs the worker.
    paused = api.post("/workers/node2/scrub/pause").json()
    assert paused["node"] == "node2" and paused["state"] == "paused"
    workers = api.get("/workers").json()["workers"]
    assert {(w["node"], w["state"]) for w in workers if w["name"] == "scrub"} >= {
        ("node2", "paused")}
    # A killed node turns down within the heartbeat window.
    second.kill()
    down = _poll(lambda: (s := api.get("/status").json())["totals"]["nodes_up"] == 1 and s,
                 "node2 down", deadline=20)
    node2 = {n["id"]: n for n in down["nodes"]}["node2"]
    assert node2["up"] is False and node2["reachable"] is False and node2["used_bytes"] is None
    assert api.post("/workers/node2/scrub/resume").status_code == 503
    api.close()
