"""Instructions per S3 request, counted by valgrind: a noise-free A/B of the request path.

    .venv/bin/python bench/s3_instructions.py [--against DIR] [--ops GET,PUT]

Timings on this shared 2-core machine swing by 20 % from one minute to the
next, and a node's CPU per request with them (a busy neighbour evicts its
caches), so a change of a few percent in what a request costs cannot be
seen in req/s.  An instruction count can: cachegrind counts the same total
for the same code and inputs whatever else the machine does.

What is counted: the node's S3 application as cluster/node.py serves it
(the trace middleware, the S3 app, the storage core on a SQLite file; the
group-commit writer inline), driven in-process through ASGI with signed
PutObject 4 KiB overwrites or GetObject 4 KiB reads of 300 keys, one at a
time.  Not counted: the HTTP/1.1 server in front of the app, the kernel,
and other processes.  Start-up is removed by running two lengths
(``--runs``) and taking the difference; the client's own signing by
subtracting a dry run that signs the same requests and sends none.

With ``--against DIR`` (a checkout, e.g. ``git worktree add /tmp/base
<rev>``) the same is counted for that code, with the ratio.  Needs
``valgrind`` (Debian's package); each count takes a minute or two.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BENCH = Path(__file__).resolve().parent
WARM_KEYS = 300


def _drive(op: str, n: int, dry: bool) -> None:
    """The child: make a node's S3 app, then send ``n`` requests (or only sign them)."""
    sys.path.insert(0, str(BENCH))
    import trio
    from s3_bench import S3Client

    async def main(tmp: Path) -> None:
        from cluster.services import build_services
        from config.settings import Settings, replace
        from protocols.admin.trace import TraceBus, TraceMiddleware
        from protocols.s3.app import create_s3_app
        from storage.bridge import AsyncioBridge
        from storage.db import Database

        settings = replace(
            Settings(), node={"data_dir": tmp / "node"},
            metadata={"url": f"sqlite://{tmp / 'meta.sqlite3'}"},
            cluster={"secret": "instruction-count-cluster-secret-0123456789"},
            accounts={"default_quota": 10 * 1024**4, "s3_writes_per_second": 0,
                      "s3_reads_per_second": 0, "s3_lists_per_second": 0})
        bridge = AsyncioBridge()
        bridge.start()
        db = Database(settings.metadata.url, bridge)
        await db.open()
        try:
            services = build_services(settings, bridge, db)
            app = TraceMiddleware(create_s3_app(services), protocol="s3",
                                  bus=TraceBus("n1"), node_id="n1")
            account = await services.accounts.create_account("bench@example.com")
            creds = await services.accounts.create_access_key(account.id)
            client = S3Client("http://127.0.0.1:9000", creds.access_key, creds.secret_key,
                              settings.cluster.region)

            async def send(method: str, path: str, body: bytes = b"") -> None:
                headers = client.headers(method, path, "", body, True)
                await exchange(method, path, headers, body)

            async def exchange(method: str, path: str, headers: dict[str, str],
                               body: bytes) -> None:
                sent: list[dict] = []

                async def receive() -> dict:
                    return {"type": "http.request", "body": body, "more_body": False}

                async def collect(message: dict) -> None:
                    sent.append(message)

                raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
                raw.append((b"content-length", str(len(body)).encode()))
                scope = {"type": "http", "method": method, "path": path,
                         "raw_path": path.encode(), "query_string": b"", "headers": raw,
                         "client": ("127.0.0.1", 50000), "http_version": "1.1",
                         "scheme": "http"}
                await app(scope, receive, collect)
                if sent[0]["status"] != 200:
                    raise SystemExit(f"{method} {path}: {sent}")

            await send("PUT", "/bench")
            base = os.urandom(4096)
            for i in range(WARM_KEYS):
                await send("PUT", f"/bench/k/{i}", base[:-8] + i.to_bytes(8, "big"))
            # Start from an empty WAL: otherwise the writer's idle checkpoint
            # (storage/sqlite_writer.py) lands inside the counted requests or
            # not, and every read looks its pages up in a WAL of some size.
            with contextlib.closing(sqlite3.connect(tmp / "meta.sqlite3")) as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            requests = []
            for i in range(n):
                path = f"/bench/k/{i % WARM_KEYS}"
                body = base[:-8] + (WARM_KEYS + i).to_bytes(8, "big") if op == "PUT" else b""
                requests.append((op, path, client.headers(op, path, "", body, True), body))
            if not dry:
                for request in requests:
                    await exchange(*request)
        finally:
            await db.close()
            bridge.stop()

    with tempfile.TemporaryDirectory() as tmp:
        trio.run(main, Path(tmp))


def _count(root: Path, op: str, n: int, dry: bool) -> int:
    """Instructions of one child run with the code of ``root``."""
    cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
           sys.executable, str(Path(__file__).resolve()), "--child", op, str(n)]
    if dry:
        cmd.append("--dry")
    # `python path` puts the script's directory first on sys.path, the
    # checkout's code comes from PYTHONPATH (ahead of the editable install).
    # A fixed hash seed: dict and set layouts, hence lookups, repeat exactly.
    env = dict(os.environ, PYTHONPATH=str(root), PYTHONHASHSEED="0")
    out = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    found = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
    if out.returncode != 0 or found is None:
        raise SystemExit(f"the count failed ({root}, {op} {n}):\n{out.stderr[-3000:]}")
    return int(found.group(1).replace(",", ""))


def per_request(root: Path, op: str, short: int, long: int) -> int:
    """Instructions one ``op`` request costs the app with the code of ``root``."""
    runs = [(short, False), (long, False), (short, True), (long, True)]
    with ThreadPoolExecutor(2) as pool:  # valgrind runs one thread: two fit two cores
        a, b, c, d = pool.map(lambda r: _count(root, op, *r), runs)
    return round(((b - a) - (d - c)) / (long - short))


def main() -> None:
    """Count, print one line per checkout and operation, and the ratios."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--against", type=Path, help="another checkout to count too")
    ap.add_argument("--ops", default="GET,PUT", help="comma-separated: GET, PUT")
    ap.add_argument("--runs", default="100,400", help="the two run lengths (requests)")
    ap.add_argument("--child", nargs=2, metavar=("OP", "N"), help=argparse.SUPPRESS)
    ap.add_argument("--dry", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _drive(args.child[0], int(args.child[1]), args.dry)
        return
    short, long = (int(x) for x in args.runs.split(","))
    roots = {"this": BENCH.parent}
    if args.against:
        roots = {"base": args.against.resolve(), **roots}
    for op in args.ops.upper().split(","):
        counts = {}
        for name, root in roots.items():
            counts[name] = per_request(root, op, short, long)
            print(f"{op} 4 KiB, {name} ({root}): {counts[name]:,} instructions per request",
                  flush=True)
        if "base" in counts:
            print(f"{op} 4 KiB: this/base {counts['this'] / counts['base']:.1%}", flush=True)


if __name__ == "__main__":
    main()
