"""``cloudstorage dev``: run a local cluster from a Procfile.

Each ``name: command`` line starts one node process.  Once every node answers
its health endpoint, the endpoints and the first admin's credentials are
printed.  Ctrl-C (or SIGTERM) is passed on to every node as SIGTERM so they
drain and close cleanly; a node that does not stop within its deadline is
killed.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import trio

from cluster.bootstrap import bootstrap, format_credentials
from config import ConfigError, Settings, load_settings

STARTUP_DEADLINE = 60.0
STOP_DEADLINE = 20.0


@dataclass(frozen=True)
class ProcSpec:
    """One Procfile line."""

    name: str
    argv: list[str]
    settings: Settings


def parse_procfile(path: Path) -> list[ProcSpec]:
    """Read a Procfile whose commands pass ``--config FILE`` to ``serve``."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise ConfigError(f"Procfile {path} does not exist") from None
    specs = []
    for lineno, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, command = line.partition(":")
        if not sep or not name.strip() or not command.strip():
            raise ConfigError(f"{path}:{lineno}: expected 'name: command'")
        argv = shlex.split(command)
        config = None
        for flag in ("--config", "-c"):
            if flag in argv and argv.index(flag) + 1 < len(argv):
                config = argv[argv.index(flag) + 1]
        specs.append(ProcSpec(name.strip(), argv, load_settings(config)))
    if not specs:
        raise ConfigError(f"{path}: no processes")
    return specs


async def _wait_healthy(url: str, proc: trio.Process, deadline: float) -> None:
    async with httpx.AsyncClient(timeout=2.0) as client:
        while True:
            if proc.returncode is not None:
                raise RuntimeError(f"exited with status {proc.returncode} before becoming healthy")
            try:
                response = await client.get(url)
                if response.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if trio.current_time() > deadline:
                raise RuntimeError(f"{url} did not answer within {STARTUP_DEADLINE:.0f} s")
            await trio.sleep(0.2)


def _banner(specs: list[ProcSpec], credentials: str, console: str = "") -> str:
    lines = ["", "local cluster is up:"]
    for spec in specs:
        listen = spec.settings.listen
        host = listen.public_host or listen.host
        lines.append(
            f"  {spec.name:8} S3 http://{host}:{listen.s3_port}   "
            f"web http://{host}:{listen.web_port}   sftp {host}:{listen.sftp_port}   "
            f"transport {host}:{listen.transport_port}"
        )
    region = specs[0].settings.cluster.region
    lines += ["", credentials, f"  AWS_REGION={region}", "",
              "try: aws --endpoint-url http://"
              f"{specs[0].settings.listen.host}:{specs[0].settings.listen.s3_port} s3 ls",
              *([console] if console else []),
              "Ctrl-C stops every node.", ""]
    return "\n".join(lines)


async def _stop(procs: list[trio.Process]) -> None:
    for proc in procs:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
    with trio.move_on_after(STOP_DEADLINE):
        for proc in procs:
            await proc.wait()
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def run_dev_cluster(procfile: str, admin_email: str) -> int:
    """Start every Procfile process, supervise them, stop them on a signal."""
    specs = parse_procfile(Path(procfile))
    creds = await bootstrap(specs[0].settings, admin_email)
    from protocols.admin.tokens import ensure_console_token

    console = ""
    if ensure_console_token(specs[0].settings) is not None:
        listen = specs[0].settings.listen
        console = (f"console: .venv/bin/cloudstorage admin --url http://{listen.host}:"
                   f"{listen.web_port} --write")
    procs: list[trio.Process] = []
    status = 0
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            try:
                for spec in specs:
                    # Own process group: the terminal's Ctrl-C reaches only us,
                    # and we hand each node a clean SIGTERM.
                    proc = await trio.lowlevel.open_process(
                        spec.argv, start_new_session=True, stdin=subprocess.DEVNULL,
                        env=dict(os.environ, PYTHONUNBUFFERED="1"),
                    )
                    procs.append(proc)
                deadline = trio.current_time() + STARTUP_DEADLINE
                for spec, proc in zip(specs, procs, strict=True):
                    listen = spec.settings.listen
                    url = f"http://{listen.host}:{listen.web_port}/health"
                    try:
                        await _wait_healthy(url, proc, deadline)
                    except RuntimeError as exc:
                        print(f"cloudstorage: error: {spec.name}: {exc}", file=sys.stderr)
                        await _stop(procs)
                        return 1
                print(_banner(specs, format_credentials(creds), console), flush=True)

                async def watch(spec: ProcSpec, proc: trio.Process) -> None:
                    await proc.wait()
                    if not stopping:
                        print(f"[dev] {spec.name} exited with status {proc.returncode}",
                              flush=True)

                stopping = False
                for spec, proc in zip(specs, procs, strict=True):
                    nursery.start_soon(watch, spec, proc)
                async for _ in signals:
                    break
                stopping = True
                print("\n[dev] stopping every node ...", flush=True)
            finally:
                with trio.CancelScope(shield=True):
                    await _stop(procs)
                nursery.cancel_scope.cancel()
    for spec, proc in zip(specs, procs, strict=True):
        print(f"[dev] {spec.name} stopped (status {proc.returncode})", flush=True)
        if proc.returncode not in (0, -signal.SIGTERM):
            status = 1
    return status
