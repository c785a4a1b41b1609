"""SFTP benchmark: this cluster's SFTP server vs OpenSSH's sftp-server, same run.

Both servers are driven by the same client (OpenSSH ``sftp`` in batch mode,
cipher aes128-gcm@openssh.com, key auth) on this machine:

* ours: a real node process (``cloudstorage serve``) on free ports;
* reference: a local ``sshd`` on a free port whose sftp subsystem is
  ``/usr/lib/openssh/sftp-server`` writing into a temp directory.

Workloads: put and get of one 256 MiB file (MB/s) and of 1,000 small files
(files/s).  Usage: ``.venv/bin/python bench/sftp_bench.py [--size-mib 256]
[--small 1000]``.  Needs openssh-client and openssh-server (sshd) installed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.harness import free_port, prepare_node  # noqa: E402

CIPHER = "aes128-gcm@openssh.com"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"


def run_sftp(port: int, user: str, key: Path, batch: str, cwd: Path, known: Path) -> float:
    """Run one sftp batch; returns elapsed seconds."""
    script = cwd / "batch.txt"
    script.write_text(batch)
    start = time.perf_counter()
    done = subprocess.run(
        ["sftp", "-q", "-b", str(script), "-P", str(port), "-i", str(key), "-c", CIPHER,
         "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
         "-o", f"UserKnownHostsFile={known}", "-o", "LogLevel=ERROR", f"{user}@127.0.0.1"],
        cwd=cwd, capture_output=True, text=True, timeout=3600,
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"sftp failed on port {port}:\n{done.stderr}")
    return elapsed


def start_sshd(root: Path, key_pub: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A throwaway sshd serving OpenSSH's sftp-server on a free port."""
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not Path(sshd).exists() or not Path(SFTP_SERVER).exists():
        raise SystemExit("install openssh-server (sshd and sftp-server) for the reference run")
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege-separation directory
    host_key = root / "ssh_host_ed25519_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)],
                   check=True)
    auth = root / "authorized_keys"
    auth.write_text(key_pub.read_text())
    auth.chmod(0o600)
    port = free_port()
    config = root / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
        f"AuthorizedKeysFile {auth}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        f"UsePAM no\nStrictModes no\nPermitRootLogin yes\nPidFile {root / 'sshd.pid'}\n"
        f"Subsystem sftp {SFTP_SERVER}\nCiphers {CIPHER}\n"
    )
    proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    import socket

    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("sshd did not start")


def workloads(port: int, user: str, key: Path, work: Path, remote_dir: str,
              big: Path, small_dir: Path, n_small: int) -> dict[str, float]:
    """Put/get the big file and the small files; returns the figures."""
    known = work / "known_hosts"
    out = work / f"out-{port}"
    out.mkdir()
    size_mb = big.stat().st_size / 1e6
    t_put = run_sftp(port, user, key, f"cd {remote_dir}\nput {big} big.bin\n", work, known)
    t_get = run_sftp(port, user, key, f"cd {remote_dir}\nget big.bin {out / 'big.bin'}\n",
                     work, known)
    if out.joinpath("big.bin").stat().st_size != big.stat().st_size:
        raise SystemExit("size mismatch after get")
    names = sorted(os.listdir(small_dir))
    puts = "".join(f"put {small_dir / n} small/{n}\n" for n in names)
    t_sput = run_sftp(port, user, key, f"cd {remote_dir}\nmkdir small\n{puts}", work, known)
    gets = "".join(f"get small/{n} {out / n}\n" for n in names)
    t_sget = run_sftp(port, user, key, f"cd {remote_dir}\n{gets}", work, known)
    return {"put MB/s": size_mb / t_put, "get MB/s": size_mb / t_get,
            "small put files/s": n_small / t_sput, "small get files/s": n_small / t_sget}


def main() -> None:
    """Run both servers and print the comparison."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--small", type=int, default=1000)
    args = ap.parse_args()
    import httpx

    with tempfile.TemporaryDirectory(prefix="sftpbench-") as tmp:
        root = Path(tmp)
        work = root / "work"
        work.mkdir()
        key = work / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                       check=True)
        big = work / "big.src"
        with big.open("wb") as f:
            for _ in range(args.size_mib):
                f.write(os.urandom(1 << 20))
        small_dir = work / "small"
        small_dir.mkdir()
        for i in range(args.small):
            (small_dir / f"f{i:04d}.txt").write_bytes(os.urandom(1024))

        node = prepare_node(root / "node1", f"sqlite://{root / 'meta.sqlite3'}")
        node.start()
        sshd = None
        try:
            c = httpx.Client(base_url=node.web_url, timeout=60)
            r = c.post("/api/auth/signup",
                       json={"email": "bench@example.com", "password": "bench-password"})
            r.raise_for_status()
            bucket = r.json()["bucket"]
            c.post("/api/sftp", json={"password": "bench-password"}).raise_for_status()
            c.post("/api/sftp/keys", json={"publicKey": key.with_suffix(".pub").read_text()}
                   ).raise_for_status()
            user = c.get("/api/sftp").json()["username"]
            ours = workloads(node.ports["sftp"], user, key, work, bucket, big, small_dir,
                             args.small)
            ref_root = root / "openssh"
            ref_root.mkdir()
            (ref_root / "data").mkdir()
            sshd, port = start_sshd(ref_root, key.with_suffix(".pub"))
            import getpass

            ref = workloads(port, getpass.getuser(), key, work, str(ref_root / "data"), big,
                            small_dir, args.small)
        finally:
            if sshd is not None:
                sshd.terminate()
                sshd.wait()
            node.stop()
    print(f"\nSFTP benchmark ({args.size_mib} MiB file, {args.small} x 1 KiB files, "
          f"cipher {CIPHER}, OpenSSH sftp client)")
    print(f"{'workload':<22}{'cloudstorage':>14}{'openssh':>12}{'ratio':>9}")
    for name in ours:
        print(f"{name:<22}{ours[name]:>14.1f}{ref[name]:>12.1f}{ours[name] / ref[name]:>8.0%}")


if __name__ == "__main__":
    main()
