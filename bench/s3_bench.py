"""S3 throughput of one node, measured with a load generator that is not the bottleneck.

    .venv/bin/python bench/s3_bench.py                 # starts its own node in a temp dir
    .venv/bin/python bench/s3_bench.py --endpoint http://127.0.0.1:9000 \\
        --access-key CS... --secret-key ...            # an existing node
    .venv/bin/python bench/s3_bench.py --postgres      # its node on a fresh PostgreSQL db
    .venv/bin/python bench/s3_bench.py --compare-postgres --only 4KiB
        # a SQLite node and a PostgreSQL node, alternated run by run, with ratios
    .venv/bin/python bench/s3_bench.py --against /tmp/base --only 4KiB
        # this checkout's node and one run from another checkout (``git
        # worktree add /tmp/base <rev>``), alternated, with ratios

``--postgres`` / ``--compare-postgres`` create a database of their own on the
server of ``--pg-admin-url`` (default: the local trust-auth server the tests
use) with ``psql`` and drop it afterwards.  The node connects as that URL
says: ``postgres://postgres@/test?host=/var/run/postgresql`` for a Unix
socket (the run prints which).

boto3 with threads tops out near 400 requests/s on this machine, so the client
here is a minimal async HTTP/1.1 client on trio: keep-alive connections,
SigV4 headers from protocols/s3/sigv4.py (the PUT/GET runs sign their
requests before the clock starts, as the load generator shares the machine's
two cores with the node), responses parsed by hand and large bodies read
into one reused 1 MiB buffer.  Each figure is the median of ``--repeat``
runs.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, urlsplit

import trio

from protocols.s3.sigv4 import UNSIGNED_PAYLOAD, sign_request

# Its sibling modules, however this one is reached (script, bench.s3_bench).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from pg_db import create_pg_database, drop_pg_database, transport
from proc_cpu import tree_cpu

MiB = 1024 * 1024
RECV = 1024 * 1024


class HttpConnection:
    """One keep-alive HTTP/1.1 connection, on a plain non-blocking socket.

    The load generator shares the machine's two cores with the node, so each
    request costs it as little as it can: trio's low-level readiness waits
    instead of its stream layers, the response head scanned only for the
    status and Content-Length, large bodies received into one reused buffer.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = bytearray()
        self._sink = memoryview(bytearray(RECV))

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        stream = await trio.open_tcp_stream(host, port)
        sock = socket.socket(fileno=stream.socket.detach())
        sock.setblocking(False)
        return cls(sock)

    async def request(
        self, method: str, target: str, headers: dict[str, str], body: bytes = b"",
        *, keep_body: bool = True,
    ) -> tuple[int, dict[str, str], bytes, int]:
        """Send one request; returns status, headers, body (empty unless kept or
        an error) and the number of body bytes received."""
        status, head, data, length = await self.exchange(
            method, request_head(method, target, headers, len(body)), body, keep_body=keep_body)
        return status, parse_headers(head), data, length

    async def exchange(
        self, method: str, header_bytes: bytes, body: bytes = b"", *, keep_body: bool = True,
    ) -> tuple[int, bytes, bytes, int]:
        """One request with its head already built (signed ahead of the clock);
        returns status, the raw response head, body and body bytes received."""
        if len(body) <= 64 * 1024:  # one write for small requests
            await self._send_all(header_bytes + body)
        else:  # no 64 MiB concatenation for big ones
            await self._send_all(header_bytes)
            await self._send_all(body)
        buf = self._buf
        while (end := buf.find(b"\r\n\r\n")) < 0:
            await self._fill()
        head = bytes(buf[:end + 2])
        del buf[: end + 4]
        status = int(head[9:12])
        if method != "HEAD" and _CHUNKED.search(head):
            # Go servers (rclone serve s3) send listings chunked.
            data = await self._read_chunked()
            return status, head, data, len(data)
        match = _CONTENT_LENGTH.search(head)
        length = int(match[1]) if match and method != "HEAD" else 0
        if keep_body or status >= 300:
            while len(buf) < length:
                await self._fill()
            data = bytes(buf[:length])
            del buf[:length]
            return status, head, data, length
        # Large GETs: count the bytes and drop them into one reused buffer.
        take = min(length, len(buf))
        del buf[:take]
        remaining = length - take
        while remaining:
            got = await self._recv_into(min(RECV, remaining))
            if not got:
                raise ConnectionError("server closed the connection")
            remaining -= got
        return status, head, b"", length

    async def _read_chunked(self) -> bytes:
        """A chunked body (RFC 9112 section 7.1), trailer fields skipped."""
        buf, body = self._buf, bytearray()
        while True:
            while (eol := buf.find(b"\r\n")) < 0:
                await self._fill()
            size = int(bytes(buf[:eol]).split(b";")[0], 16)
            del buf[:eol + 2]
            if size == 0:
                while (eol := buf.find(b"\r\n")) != 0:  # trailer lines, then CRLF
                    if eol > 0:
                        del buf[:eol + 2]
                    else:
                        await self._fill()
                del buf[:2]
                return bytes(body)
            while len(buf) < size + 2:
                await self._fill()
            body += buf[:size]
            del buf[:size + 2]

    async def _send_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[self._sock.send(view):]
            except BlockingIOError:
                await trio.lowlevel.wait_writable(self._sock)

    async def _recv_into(self, size: int) -> int:
        while True:
            try:
                return self._sock.recv_into(self._sink, size)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(self._sock)

    async def _fill(self) -> None:
        got = await self._recv_into(RECV)
        if not got:
            raise ConnectionError("server closed the connection")
        self._buf += self._sink[:got]

    async def aclose(self) -> None:
        trio.lowlevel.notify_closing(self._sock)
        self._sock.close()


_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:[ \t]*chunked", re.IGNORECASE)


def parse_headers(head: bytes) -> dict[str, str]:
    """A response head's fields, names lower-cased (the last of repeats wins)."""
    headers = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers


def request_head(method: str, target: str, headers: dict[str, str], length: int) -> bytes:
    """The bytes of a request head."""
    head = [f"{method} {target} HTTP/1.1"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    head.append(f"content-length: {length}")
    return "\r\n".join(head).encode() + b"\r\n\r\n"


def unique_body(base: bytes, i: int) -> bytes:
    """``base`` with ``i`` stamped into every 1 MiB, so no chunk of any object
    equals another: the store cannot deduplicate its way through the bench."""
    body = bytearray(base)
    stamp = i.to_bytes(8, "big")
    for offset in range(0, len(body), MiB):
        body[offset:offset + 8] = stamp[: len(body) - offset]
    return bytes(body)


class S3Client:
    """Just enough S3 to benchmark, signing every request."""

    def __init__(self, endpoint: str, access_key: str, secret_key: str, region: str,
                 pid: int | None = None) -> None:
        parts = urlsplit(endpoint)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.hostport = f"{self.host}:{self.port}"
        self.access_key, self.secret_key, self.region = access_key, secret_key, region
        # The node's process (when the bench started it): its CPU time per
        # operation is measured too, a figure other work on the machine
        # disturbs far less than a rate.
        self.pid = pid
        self.cpu_per_op: dict[str, list[float]] = {}

    def node_cpu(self) -> float:
        """The node's CPU seconds so far (0 when its process is not known)."""
        return tree_cpu(self.pid) if self.pid else 0.0

    def headers(self, method: str, path: str, query: str, body: bytes, signed: bool) -> dict:
        extra = {"host": self.hostport}
        signed_req = sign_request(
            method, path, query, extra, access_key=self.access_key,
            secret_key=self.secret_key, region=self.region,
            payload_hash=None if signed else UNSIGNED_PAYLOAD, body=body,
        )
        return {k: (v.decode() if isinstance(v, bytes) else v)
                for k, v in signed_req.headers.items()}

    def prepare(self, method: str, path: str, body: bytes = b"", *, signed: bool = True) -> bytes:
        """A signed request head, built before the timed part of a run (signing
        in Python costs the load generator more than the rest of a request)."""
        return request_head(method, path, self.headers(method, path, "", body, signed),
                            len(body))

    async def call(
        self, conn: HttpConnection, method: str, path: str, query: str = "",
        body: bytes = b"", *, signed: bool = True, expect: int = 200, keep_body: bool = True,
    ) -> tuple[dict[str, str], bytes, int]:
        target = path + (f"?{query}" if query else "")
        status, headers, data, length = await conn.request(
            method, target, self.headers(method, path, query, body, signed), body,
            keep_body=keep_body,
        )
        if status != expect:
            raise RuntimeError(f"{method} {target}: HTTP {status}: {data[:300]!r}")
        return headers, data, length


async def run_parallel(
    client: S3Client, concurrency: int, ops: int,
    op: Callable[[HttpConnection, int], object],
) -> float:
    """Run ``ops`` operations over ``concurrency`` connections; seconds taken."""
    conns = [await HttpConnection.open(client.host, client.port) for _ in range(concurrency)]
    counter = iter(range(ops))

    async def worker(conn: HttpConnection) -> None:
        for i in counter:
            await op(conn, i)

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for conn in conns:
            nursery.start_soon(worker, conn)
    elapsed = time.perf_counter() - start
    for conn in conns:
        await conn.aclose()
    return elapsed


def rate_unit(size: int) -> str:
    """The unit a PUT/GET run of ``size``-byte objects is reported in."""
    return "ops/s" if size <= 4096 else "MiB/s"


async def put_get_run(
    client: S3Client, bucket: str, label: str, size: int, concurrency: int, n: int,
    base: bytes | None = None,
) -> tuple[float, float]:
    """PUT then GET ``n`` distinct ``size``-byte objects over ``concurrency``
    connections; returns the two rates in :func:`rate_unit`.

    Every request is signed before the clock starts; the same keys are
    overwritten when a run is repeated."""
    base = base if base is not None else os.urandom(size)
    paths = [f"/{bucket}/{quote(label)}/{i}" for i in range(n)]
    # Sign small bodies' hash like SDKs do; stream big ones unsigned.
    put_heads = [client.prepare("PUT", path, unique_body(base, i), signed=size <= MiB)
                 for i, path in enumerate(paths)]
    get_heads = [client.prepare("GET", path) for path in paths]

    async def put(cn: HttpConnection, i: int) -> None:
        status, _, data, _ = await cn.exchange("PUT", put_heads[i], unique_body(base, i))
        if status != 200:
            raise RuntimeError(f"PUT {paths[i]}: HTTP {status}: {data[:300]!r}")

    async def get(cn: HttpConnection, i: int) -> None:
        status, _, data, received = await cn.exchange("GET", get_heads[i],
                                                      keep_body=size <= 4096)
        if status != 200 or received != size:
            raise RuntimeError(f"GET {paths[i]}: HTTP {status}: {data[:300]!r}")

    def rate(seconds: float) -> float:
        return n / seconds if size <= 4096 else n * size / MiB / seconds

    rates = []
    for op, fn in (("PUT", put), ("GET", get)):
        cpu = client.node_cpu()
        rates.append(rate(await run_parallel(client, concurrency, n, fn)))
        client.cpu_per_op.setdefault(f"{op} {label}", []).append(
            (client.node_cpu() - cpu) / n * 1e6)
    return rates[0], rates[1]


async def seed_keys(client: S3Client, bucket: str, prefix: str, n: int) -> None:
    """Upload ``n`` one-byte objects ``prefix00000``... for the LIST run."""

    async def put(cn: HttpConnection, i: int) -> None:
        # Untimed set-up, so a server error is retried (rclone serve s3 1.75
        # sometimes answers 500 "Dir.Rename error" to concurrent PUTs into a
        # new directory), and said.
        for attempt in range(3):
            try:
                await client.call(cn, "PUT", f"/{bucket}/{prefix}{i:05d}", body=b"x")
                return
            except RuntimeError as e:
                if attempt == 2 or "HTTP 5" not in str(e):
                    raise
                print(f"    seeding {client.host}:{client.port}: {e}; retrying", flush=True)

    await run_parallel(client, 16, n, put)


async def list_run(client: S3Client, bucket: str, prefix: str, n: int) -> float:
    """List the ``n`` keys under ``prefix`` with ListObjectsV2, 1,000 a page,
    on a fresh connection; returns the seconds taken."""
    conn = await HttpConnection.open(client.host, client.port)
    start = time.perf_counter()
    token, keys = None, 0
    while True:
        query = f"list-type=2&max-keys=1000&prefix={quote(prefix, safe='')}"
        if token:
            query += f"&continuation-token={quote(token, safe='')}"
        _, data, _ = await client.call(conn, "GET", f"/{bucket}", query)
        keys += data.count(b"<Key>")
        if b"<IsTruncated>true</IsTruncated>" not in data:
            break
        token = data.split(b"<NextContinuationToken>")[1].split(b"<")[0].decode()
    elapsed = time.perf_counter() - start
    await conn.aclose()
    if keys != n:
        raise RuntimeError(f"LIST returned {keys} keys, expected {n}")
    return elapsed


async def multipart_run(
    client: S3Client, bucket: str, key: str, total_mib: int, seed: int,
    part_mib: int = 8, concurrency: int = 4,
) -> float:
    """Upload ``total_mib`` MiB as one multipart upload of distinct
    ``part_mib`` MiB parts, ``concurrency`` in flight, and complete it;
    returns MiB/s from the first part to the completion's answer."""
    part = os.urandom(part_mib * MiB)
    path = f"/{bucket}/{key}"
    conn = await HttpConnection.open(client.host, client.port)
    _, data, _ = await client.call(conn, "POST", path, "uploads=")
    upload_id = quote(data.split(b"<UploadId>")[1].split(b"<")[0].decode(), safe="")
    start = time.perf_counter()
    etags: dict[int, str] = {}

    async def upload(cn: HttpConnection, i: int) -> None:
        headers, _, _ = await client.call(
            cn, "PUT", path, f"partNumber={i + 1}&uploadId={upload_id}",
            body=unique_body(part, seed * 1000 + i), signed=False,
        )
        etags[i + 1] = headers["etag"]

    await run_parallel(client, concurrency, total_mib // part_mib, upload)
    xml = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>{etags[n]}</ETag></Part>"
                  for n in sorted(etags))
    await client.call(conn, "POST", path, f"uploadId={upload_id}",
                      f"<CompleteMultipartUpload>{xml}</CompleteMultipartUpload>".encode())
    rate = total_mib / (time.perf_counter() - start)
    await conn.aclose()
    return rate


def s3_plan(quick: bool, only: list[str] | None = None) -> list[tuple[str, int, int, int]]:
    """The PUT/GET runs: (label, object size, concurrency, objects); with
    ``only``, just the sizes named there ("4KiB", "1MiB", "64MiB")."""
    plan = [("4 KiB", 4096, 16, 2000 if quick else 10000),
            ("1 MiB", MiB, 8, 200 if quick else 500),
            ("64 MiB", 64 * MiB, 2, 4 if quick else 8)]
    if only is None:
        return plan
    return [p for p in plan if p[0].replace(" ", "") in only]


def _record(results: list[tuple[str, str]], name: str, values: list[float], unit: str) -> None:
    results.append((name, f"{statistics.median(values):10.1f} {unit}  "
                          f"(min {min(values):.1f}, max {max(values):.1f})"))
    print(f"{name:34} {results[-1][1]}", flush=True)


async def make_bucket(client: S3Client) -> str:
    """A new bucket for this benchmark process."""
    bucket = f"bench-{os.getpid()}"
    conn = await HttpConnection.open(client.host, client.port)
    await client.call(conn, "PUT", f"/{bucket}")
    await conn.aclose()
    return bucket


async def bench(client: S3Client, repeat: int, quick: bool,
                only: list[str] | None = None) -> list[tuple[str, str]]:
    bucket = await make_bucket(client)
    results: list[tuple[str, str]] = []

    def record(name: str, values: list[float], unit: str) -> None:
        _record(results, name, values, unit)

    for label, size, c, n in s3_plan(quick, only):
        base = os.urandom(size)
        runs = [await put_get_run(client, bucket, label, size, c, n, base)
                for _ in range(repeat)]
        record(f"PUT {label} (c={c})", [put for put, _ in runs], rate_unit(size))
        record(f"GET {label} (c={c})", [get for _, get in runs], rate_unit(size))
        if client.pid:
            print("    node CPU per operation: " + ", ".join(
                f"{op} {statistics.median(us):.0f} us" for op, us in client.cpu_per_op.items()
                if op.endswith(label)), flush=True)
    if only is not None:
        return results

    # LIST: 10,000 keys under one prefix, paged 1,000 at a time (ListObjectsV2).
    await seed_keys(client, bucket, "list/", 10000)
    list_times = [await list_run(client, bucket, "list/", 10000) for _ in range(repeat)]
    record("LIST 10,000 keys", list_times, "s")

    # Multipart: 256 MiB in 8 MiB parts, 4 in flight.
    mp_rates = [await multipart_run(client, bucket, f"multipart-{r}", 256, r)
                for r in range(repeat)]
    record("multipart 256 MiB (8 MiB parts, c=4)", mp_rates, "MiB/s")
    return results


async def compare_nodes(clients: dict[str, S3Client], repeat: int, quick: bool,
                        only: list[str] | None) -> None:
    """The PUT/GET runs on two nodes, alternated run by run (so both see
    the same machine load), then both medians and the second node's figure
    as a share of the first's."""
    buckets = {name: await make_bucket(c) for name, c in clients.items()}
    first, second = clients
    for label, size, c, n in s3_plan(quick, only):
        base = os.urandom(size)
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in clients}
        for _ in range(repeat):
            for name, client in clients.items():
                runs[name].append(await put_get_run(client, buckets[name], label, size, c, n,
                                                    base))
        unit = rate_unit(size)
        for i, op in enumerate(("PUT", "GET")):
            medians = {name: statistics.median(r[i] for r in rs) for name, rs in runs.items()}
            detail = "  ".join(
                f"{name} {medians[name]:9.1f} {unit} "
                f"[{', '.join(f'{r[i]:.0f}' for r in rs)}]" for name, rs in runs.items())
            ratio = medians[second] / medians[first]
            print(f"{op} {label} (c={c}):  {detail}  {second}/{first} {ratio:.0%}", flush=True)
            cpu = {name: statistics.median(c.cpu_per_op[f"{op} {label}"])
                   for name, c in clients.items()}
            print("    node CPU per operation: " + ", ".join(
                f"{name} {us:.0f} us" for name, us in cpu.items()), flush=True)


def start_node(tmp: Path, metadata_url: str | None = None, workers: int | None = None,
               checkout: Path | None = None) -> tuple[subprocess.Popen, str, str, str]:
    """Start a single node in ``tmp`` (SQLite there unless ``metadata_url``
    names another database; ``workers`` processes if given, else the node's
    default; the code of ``checkout`` if given, else this one's); returns
    (process, endpoint, ak, sk)."""
    tmp.mkdir(parents=True, exist_ok=True)
    metadata_url = metadata_url or f"sqlite://{tmp}/meta.sqlite3"

    def port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    s3, web = port(), port()
    cli = [sys.executable, "-m", "cluster.cli"]
    # `python -m` puts the working directory first on sys.path: run there.
    cwd = (checkout or Path(__file__).resolve().parent.parent).resolve()
    env = dict(os.environ, PYTHONPATH=str(cwd))
    if not (cwd / "cluster" / "supervisor.py").exists():
        workers = None  # a checkout from before [node] workers: one process
    config = tmp / "node.toml"
    config.write_text(
        f'[node]\nid = "bench"\ndata_dir = "{tmp}/data"\n'
        + (f"workers = {workers}\n" if workers is not None else "") +
        f'[listen]\nweb_port = {web}\ns3_port = {s3}\nsftp_port = {port()}\n'
        f'transport_port = {port()}\n[metadata]\nurl = "{metadata_url}"\n'
        f'[storage]\nreplication_factor = 1\nwrite_quorum = 1\n'
        f'[cluster]\nsecret_file = "{tmp}/secret"\n[accounts]\ndefault_quota = "1TiB"\n'
        # One benchmark key does the work of many clients: lift its rate limits.
        's3_writes_per_second = 0\ns3_reads_per_second = 0\ns3_lists_per_second = 0\n'
    )
    out = subprocess.run([*cli, "init", "-c", str(config)], capture_output=True, text=True,
                         check=True, cwd=cwd, env=env).stdout
    ak = out.split("AWS_ACCESS_KEY_ID=")[1].split()[0]
    sk = out.split("AWS_SECRET_ACCESS_KEY=")[1].split()[0]
    log = tmp / "node.log"
    with log.open("wb") as out_file:
        proc = subprocess.Popen([*cli, "serve", "-c", str(config)], stdout=out_file,
                                stderr=subprocess.STDOUT, cwd=cwd, env=env)
    # The node prints its ready line once every worker process serves: a
    # run started before that would measure the first process alone.
    deadline = time.monotonic() + 60
    while b"[bench] ready" not in log.read_bytes():
        if time.monotonic() > deadline or proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise SystemExit(f"the benchmark node did not start; its log ends:\n{tail}")
        time.sleep(0.1)
    return proc, f"http://127.0.0.1:{s3}", ak, sk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--endpoint")
    parser.add_argument("--access-key")
    parser.add_argument("--secret-key")
    parser.add_argument("--region", default="eu-central-1")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="fewer operations per run")
    parser.add_argument("--only", help="comma-separated PUT/GET sizes (4KiB,1MiB,64MiB); "
                        "skips LIST and multipart")
    parser.add_argument("--workers", type=int,
                        help="[node] workers of the node(s) started (default: the node's own)")
    parser.add_argument("--postgres", action="store_true",
                        help="start the node (with --against: both) on a fresh "
                        "PostgreSQL database")
    parser.add_argument("--compare-postgres", action="store_true",
                        help="a SQLite node and a PostgreSQL node, alternated, with ratios")
    parser.add_argument("--against", type=Path,
                        help="another checkout: a node of its code and one of this, "
                        "alternated, with ratios")
    parser.add_argument("--pg-admin-url", default=os.environ.get(
        "CLOUDSTORAGE_TEST_PG", "postgres://postgres@127.0.0.1:5432/test"),
                        help="the PostgreSQL server (and a database to connect to) in which "
                        "to create the benchmark's database")
    args = parser.parse_args()
    only = [o.strip().replace(" ", "") for o in args.only.split(",")] if args.only else None
    procs: list[subprocess.Popen] = []
    databases: list[str] = []

    def pg_url() -> str:
        name, url = create_pg_database(args.pg_admin_url)
        if not databases:
            print(f"PostgreSQL: {transport(url)}", flush=True)
        databases.append(name)
        return url

    with tempfile.TemporaryDirectory() as tmp:
        try:
            if args.compare_postgres or args.against:
                if args.against:
                    # Each on a database of its own with --postgres.
                    nodes = {"base": (pg_url() if args.postgres else None, args.against),
                             "this": (pg_url() if args.postgres else None, None)}
                else:
                    nodes = {"sqlite": (None, None), "postgres": (pg_url(), None)}
                clients = {}
                for name, (url, checkout) in nodes.items():
                    proc, endpoint, ak, sk = start_node(Path(tmp) / name, url, args.workers,
                                                        checkout)
                    procs.append(proc)
                    clients[name] = S3Client(endpoint, ak, sk, args.region, proc.pid)
                print(f"{' vs '.join(nodes)} node, alternated; medians of {args.repeat} "
                      "runs", flush=True)
                trio.run(compare_nodes, clients, args.repeat, args.quick, only)
                return
            if args.endpoint:
                endpoint, ak, sk = args.endpoint, args.access_key, args.secret_key
            else:
                proc, endpoint, ak, sk = start_node(
                    Path(tmp), pg_url() if args.postgres else None, args.workers)
                procs.append(proc)
            print(f"endpoint {endpoint}; medians of {args.repeat} runs", flush=True)
            client = S3Client(endpoint, ak, sk, args.region, procs[0].pid if procs else None)
            trio.run(bench, client, args.repeat, args.quick, only)
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(30)
            for name in databases:
                drop_pg_database(args.pg_admin_url, name)


if __name__ == "__main__":
    main()
