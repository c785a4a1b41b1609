"""SFTP benchmark: this cluster's SFTP server vs OpenSSH's sftp-server, same run.

Both servers are driven by the same client (OpenSSH ``sftp`` in batch mode,
cipher aes128-gcm@openssh.com, key auth, no ssh_config) on this machine:

* ours: a real node process (``cloudstorage serve``) on free ports;
* reference: a local ``sshd`` on a free port whose sftp subsystem is
  ``/usr/lib/openssh/sftp-server`` writing into a temp directory
  (bench/refs.py);
* with ``--against DIR``, also a node run from another checkout (``git
  worktree add DIR <rev>``): a change measured against the code before it,
  in the same run.

Workloads: put and get of one 256 MiB file (MB/s) and of 1,000 x 4 KiB
files (files/s).  Every repeat runs each workload on every target back to
back, rotating which goes first; figures are medians, ratios are medians of
the per-repeat ratios.  On a shared machine the speeds swing by tens of
percent from one minute to the next, so each server's CPU seconds per
workload are printed too: a steadier measure of what a change saves.  A
node's is its whole process tree's, from /proc; OpenSSH's is its sshd's,
with the per-connection processes it forked and reaped (sshd, sftp-server).

``--workers N`` runs the nodes with N processes as bench/compare.py does
(one per core): the kernel hands each sftp batch (one connection) to one of
them, and on a secondary every commit is relayed to the primary, so with
``--verbose`` every run says which process served it.

Usage: ``.venv/bin/python bench/sftp_bench.py [--size-mib 256] [--small 1000]
[--repeat 3] [--against DIR] [--workers N] [--verbose]``.  Needs
openssh-client and openssh-server (sshd) installed.  bench/compare.py runs
the same workloads next to the S3 comparison.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402
from proc_cpu import process_cpu, tree_cpu  # noqa: E402
from refs import Missing, keygen, openssh_sftp  # noqa: E402

import tests.harness as harness  # noqa: E402
from tests.harness import NodeProcess, prepare_node  # noqa: E402

CIPHER = "aes128-gcm@openssh.com"


@dataclass(frozen=True)
class SftpTarget:
    """Where one sftp batch logs in: port, user and the directory to work in."""

    port: int
    user: str
    remote_dir: str


@dataclass(frozen=True)
class SftpClient:
    """OpenSSH's ``sftp`` with one key, one known_hosts file and one work dir."""

    key: Path
    work: Path

    def run(self, target: SftpTarget, commands: str) -> float:
        """Run one batch in ``target.remote_dir``; returns elapsed seconds."""
        script = self.work / "batch.txt"
        script.write_text(f"cd {target.remote_dir}\n{commands}")
        start = time.perf_counter()
        done = subprocess.run(
            # -F /dev/null: the same client settings whatever ~/.ssh/config says.
            ["sftp", "-q", "-F", "/dev/null", "-b", str(script), "-P", str(target.port),
             "-i", str(self.key), "-c", CIPHER, "-o", "IdentitiesOnly=yes",
             "-o", "StrictHostKeyChecking=no",
             "-o", f"UserKnownHostsFile={self.work / 'known_hosts'}",
             "-o", "LogLevel=ERROR", f"{target.user}@127.0.0.1"],
            cwd=self.work, capture_output=True, text=True, timeout=3600,
        )
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"sftp failed on port {target.port}:\n{done.stderr}")
        return elapsed

    def out_dir(self, target: SftpTarget) -> Path:
        """Where downloads from ``target`` land."""
        out = self.work / f"out-{target.port}"
        out.mkdir(exist_ok=True)
        return out


def make_inputs(work: Path, size_mib: int, n_small: int, small_bytes: int) -> tuple[Path, Path]:
    """One big random file and a directory of ``n_small`` small ones."""
    big = work / "big.src"
    with big.open("wb") as f:
        for _ in range(size_mib):
            f.write(os.urandom(1 << 20))
    small_dir = work / "small"
    small_dir.mkdir()
    for i in range(n_small):
        (small_dir / f"f{i:04d}.txt").write_bytes(os.urandom(small_bytes))
    return big, small_dir


def vary(big: Path) -> None:
    """New random bytes at the start of every MiB of ``big``, before each
    repeat: the node stores chunks by content, so a repeated upload of the
    same file would only find its chunks already stored (no write, no fsync)
    while OpenSSH's sftp-server writes the file again."""
    with big.open("r+b") as f:
        for offset in range(0, big.stat().st_size, 1 << 20):
            f.seek(offset)
            f.write(os.urandom(16))


def node_target(web_url: str, sftp_port: int, key_pub: Path) -> SftpTarget:
    """Sign up an account on a node, register ``key_pub`` for SFTP; the
    target is its bucket."""
    with httpx.Client(base_url=web_url, timeout=60) as c:
        r = c.post("/api/auth/signup",
                   json={"email": f"bench-{os.getpid()}@example.com",
                         "password": "bench-password"})
        r.raise_for_status()
        bucket = r.json()["bucket"]
        c.post("/api/sftp", json={"password": "bench-password"}).raise_for_status()
        c.post("/api/sftp/keys", json={"publicKey": key_pub.read_text()}).raise_for_status()
        user = c.get("/api/sftp").json()["username"]
    return SftpTarget(sftp_port, user, bucket)


def put_big(client: SftpClient, target: SftpTarget, big: Path) -> float:
    """Upload the big file; MB/s."""
    return big.stat().st_size / 1e6 / client.run(target, f"put {big} big.bin\n")


def get_big(client: SftpClient, target: SftpTarget, big: Path) -> float:
    """Download the big file (uploaded by :func:`put_big`); MB/s."""
    dest = client.out_dir(target) / "big.bin"
    elapsed = client.run(target, f"get big.bin {dest}\n")
    if dest.stat().st_size != big.stat().st_size:
        raise RuntimeError("size mismatch after get")
    return big.stat().st_size / 1e6 / elapsed


def put_small(client: SftpClient, target: SftpTarget, small_dir: Path) -> float:
    """Upload every small file, one ``put`` each, in one session; files/s."""
    names = sorted(os.listdir(small_dir))
    # "-mkdir": a repeated run finds the directory there; batch mode would stop.
    puts = "".join(f"put {small_dir / n} small/{n}\n" for n in names)
    return len(names) / client.run(target, f"-mkdir small\n{puts}")


def get_small(client: SftpClient, target: SftpTarget, small_dir: Path) -> float:
    """Download every small file, one ``get`` each, in one session; files/s."""
    names = sorted(os.listdir(small_dir))
    out = client.out_dir(target)
    gets = "".join(f"get small/{n} {out / n}\n" for n in names)
    return len(names) / client.run(target, gets)


def workloads(client: SftpClient, target: SftpTarget, big: Path,
              small_dir: Path) -> dict[str, float]:
    """Put/get the big file and the small files; returns the figures."""
    return {"put MB/s": put_big(client, target, big),
            "get MB/s": get_big(client, target, big),
            "small put files/s": put_small(client, target, small_dir),
            "small get files/s": get_small(client, target, small_dir)}


def sshd_cpu(pid: int) -> float:
    """CPU seconds used so far by a throwaway sshd: itself, the per-connection
    processes it forked and reaped (sshd, sftp-server), and those still alive."""
    tick = os.sysconf("SC_CLK_TCK")
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    reaped = (int(fields[13]) + int(fields[14])) / tick
    return reaped + tree_cpu(pid)


def find_sshd(config: Path) -> int | None:
    """The process id of the sshd started with ``config``, if found."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(config).encode() in (entry / "cmdline").read_bytes():
                    return int(entry.name)
            except OSError:
                continue
    return None


def busiest(pid: int, before: dict[int, float]) -> str:
    """Which of a node's processes did the work since ``before``: with
    several worker processes the kernel hands each connection (each sftp
    batch) to one of them, and a secondary relays its commits to the primary."""
    after = process_cpu(pid)
    used = {p: t - before.get(p, 0.0) for p, t in after.items()}
    top = max(used, key=lambda p: used[p])
    return "primary" if top == pid else "secondary"


def start_node(root: Path, checkout: Path | None, workers: int = 1) -> NodeProcess:
    """A node on SQLite under ``root``, run from ``checkout`` (default: this
    one), with ``workers`` processes."""
    saved = harness.REPO
    if checkout is not None:
        harness.REPO = checkout  # the harness runs `python -m cluster.cli` there
    try:
        node = prepare_node(root / "node1", f"sqlite://{root / 'meta.sqlite3'}",
                            workers=workers)
        node.start()
    finally:
        harness.REPO = saved
    return node


WORKLOADS = (("put MB/s", put_big, "big"), ("get MB/s", get_big, "big"),
             ("small put files/s", put_small, "small"),
             ("small get files/s", get_small, "small"))


def main() -> None:
    """Run the servers and print the comparison."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--small", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--against", type=Path, help="another checkout to run a node from")
    ap.add_argument("--workers", type=int, default=1,
                    help="the nodes' [node] workers (bench/compare.py runs one per core)")
    ap.add_argument("--verbose", action="store_true",
                    help="print every run's figure and which node process served it")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="sftpbench-") as tmp:
        root = Path(tmp)
        work = root / "work"
        work.mkdir()
        key_pub = keygen(work / "id_ed25519")
        client = SftpClient(work / "id_ed25519", work)
        big, small_dir = make_inputs(work, args.size_mib, args.small, 4096)
        sources = {"big": big, "small": small_dir}
        nodes = {"ours": None} | ({"base": args.against.resolve()} if args.against else {})
        started: dict[str, NodeProcess] = {}
        speed: dict[tuple[str, str], list[float]] = {}
        cpu: dict[tuple[str, str], list[float]] = {}
        try:
            targets = {}
            for side, checkout in nodes.items():
                node = started[side] = start_node(root / side, checkout, args.workers)
                targets[side] = node_target(node.web_url, node.ports["sftp"], key_pub)
            data = root / "openssh" / "data"
            data.mkdir(parents=True)
            with openssh_sftp(root / "openssh", key_pub, CIPHER) as (port, user):
                targets["openssh"] = SftpTarget(port, user, str(data))
                sshd = find_sshd(root / "openssh" / "sshd_config")
                order = list(targets)
                for run in range(args.repeat):
                    vary(big)
                    for name, fn, src in WORKLOADS:
                        shift = run % len(order)
                        for side in order[shift:] + order[:shift]:
                            pid = started[side].process.pid if side in started else None
                            before = process_cpu(pid) if pid else {}
                            ssh_before = sshd_cpu(sshd) if sshd and not pid else 0.0
                            value = fn(client, targets[side], sources[src])
                            speed.setdefault((name, side), []).append(value)
                            served = ""
                            if sshd and not pid:
                                time.sleep(0.2)  # let sshd reap the session's processes
                                cpu.setdefault((name, side), []).append(
                                    sshd_cpu(sshd) - ssh_before)
                            if pid:
                                cpu.setdefault((name, side), []).append(
                                    tree_cpu(pid) - sum(before.values()))
                                served = busiest(pid, before)
                            if args.verbose:
                                print(f"run {run + 1} {name:<20} {side:<8} {value:>8.1f} "
                                      f"{served}", flush=True)
        except Missing as e:
            raise SystemExit(str(e)) from None
        finally:
            for node in started.values():
                node.stop()
    report(args, list(targets), speed, cpu)


def report(args: argparse.Namespace, sides: list[str],
           speed: dict[tuple[str, str], list[float]],
           cpu: dict[tuple[str, str], list[float]]) -> None:
    """Print medians, ratios (medians of per-repeat ratios) and node CPU."""
    def ratio(name: str, a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(speed[name, a], speed[name, b],
                                                       strict=True))

    print(f"\nSFTP benchmark ({args.size_mib} MiB file, {args.small} x 4 KiB files, "
          f"cipher {CIPHER}, OpenSSH sftp client, medians of {args.repeat})")
    nodes = [s for s in sides if s != "openssh"]
    measured = [s for s in sides if (WORKLOADS[0][0], s) in cpu]
    head = f"{'workload':<20}" + "".join(f"{s:>10}" for s in sides) + f"{'ours/ossh':>11}"
    if "base" in nodes:
        head += f"{'ours/base':>11}"
    head += "".join(f"{'cpu s ' + s:>14}" for s in measured)
    print(head)
    for name, _fn, _src in WORKLOADS:
        line = f"{name:<20}" + "".join(
            f"{statistics.median(speed[name, s]):>10.1f}" for s in sides)
        line += f"{ratio(name, 'ours', 'openssh'):>10.0%} "
        if "base" in nodes:
            line += f"{ratio(name, 'ours', 'base'):>10.2f} "
        line += "".join(f"{statistics.median(cpu[name, s]):>14.2f}" for s in measured)
        print(line)


if __name__ == "__main__":
    main()
