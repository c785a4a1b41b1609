"""Real node processes: health, clean shutdown, operator-facing errors, the
local dev cluster that ``make run`` starts."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.harness import CLI, REPO, free_port, prepare_node, run_cli, write_config


def test_health_and_sigterm_stop_cleanly(running_node):
    body = httpx.get(f"{running_node.web_url}/health").json()
    assert body == {"status": "ok", "node": "node1", "zone": "dc1", "version": "0.1.0"}
    missing = httpx.get(f"{running_node.web_url}/no/such/page")
    assert missing.status_code == 404 and missing.json()["error"] == "NotFound"
    assert running_node.stop(signal.SIGTERM) == 0
    assert "ready" in running_node.read_log()
    assert "Traceback" not in running_node.read_log()


def test_sigint_stops_cleanly(running_node):
    assert running_node.stop(signal.SIGINT) == 0


def test_node_registers_and_heartbeats(running_node, tmp_path):
    db = sqlite3.connect(tmp_path / "meta.sqlite3")

    def beat() -> str:
        return db.execute("SELECT last_heartbeat FROM nodes WHERE id = 'node1'").fetchone()[0]

    first = beat()
    deadline = time.monotonic() + 10
    while beat() == first:
        assert time.monotonic() < deadline, "no heartbeat within 10 s"
        time.sleep(0.1)
    row = db.execute("SELECT zone, web_addr FROM nodes WHERE id = 'node1'").fetchone()
    assert row == ("dc1", f"127.0.0.1:{running_node.ports['web']}")


@pytest.mark.postgres
def test_node_on_postgresql(tmp_path, pg_url):
    node = prepare_node(tmp_path / "pg", pg_url)
    node.start()
    try:
        assert httpx.get(f"{node.web_url}/health").json()["status"] == "ok"
    finally:
        assert node.stop() == 0


def _one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


def test_bad_setting_is_a_one_line_error(tmp_path):
    config = tmp_path / "bad.toml"
    write_config(config, node_id="n1", data_dir=tmp_path / "d", db_url="sqlite://x",
                 secret_file=tmp_path / "s", extra='[storage]\nchunk_size = "lots"\n')
    line = _one_line_error(run_cli("serve", "--config", str(config)))
    assert "storage.chunk_size" in line and "lots" in line


def test_unknown_setting_and_missing_file(tmp_path):
    config = tmp_path / "typo.toml"
    config.write_text('[node]\nidd = "x"\n')
    assert "node.idd: unknown setting" in _one_line_error(run_cli("serve", "-c", str(config)))
    line = _one_line_error(run_cli("serve", "-c", str(tmp_path / "nope.toml")))
    assert "does not exist" in line


def test_missing_secret_is_a_one_line_error(tmp_path):
    config = tmp_path / "n.toml"
    write_config(config, node_id="n1", data_dir=tmp_path / "d",
                 db_url=f"sqlite://{tmp_path / 'm.sqlite3'}", secret_file=tmp_path / "absent")
    line = _one_line_error(run_cli("serve", "-c", str(config)))
    assert "cluster.secret_file" in line and "cloudstorage init" in line


def test_unreachable_database_is_a_one_line_error(tmp_path):
    config = tmp_path / "n.toml"
    secret = tmp_path / "secret"
    secret.write_text("x" * 32)
    write_config(config, node_id="n1", data_dir=tmp_path / "d", secret_file=secret,
                 db_url=f"postgres://postgres@127.0.0.1:{free_port()}/nothing")
    line = _one_line_error(run_cli("serve", "-c", str(config)))
    assert "metadata database" in line and "unreachable" in line


def test_env_overrides_config(tmp_path):
    config = tmp_path / "n.toml"
    write_config(config, node_id="n1", data_dir=tmp_path / "d", db_url="sqlite://x",
                 secret_file=tmp_path / "s")
    env = dict(os.environ, CLOUDSTORAGE_STORAGE_WRITE_QUORUM="9")
    done = subprocess.run([*CLI, "serve", "-c", str(config)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert "storage.write_quorum" in _one_line_error(done)


def test_dev_cluster_starts_three_nodes_and_ctrl_c_stops_them(tmp_path):
    """What ``make run`` does, on free ports: 3 healthy nodes, then Ctrl-C."""
    db_url = f"sqlite://{tmp_path / 'meta.sqlite3'}"
    lines, ports = [], []
    for i in (1, 2, 3):
        config = tmp_path / f"node{i}.toml"
        ports.append(write_config(config, node_id=f"node{i}", data_dir=tmp_path / f"n{i}",
                                  db_url=db_url, secret_file=tmp_path / "cluster.secret"))
        lines.append(f"node{i}: {' '.join(CLI)} serve --config {config}")
    procfile = tmp_path / "Procfile"
    procfile.write_text("\n".join(lines) + "\n")
    log = tmp_path / "dev.log"
    with open(log, "w") as out:
        dev = subprocess.Popen([*CLI, "dev", "--procfile", str(procfile)], cwd=REPO,
                               stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                               env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        deadline = time.monotonic() + 60
        while "local cluster is up" not in log.read_text():
            assert dev.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        text = log.read_text()
        assert "AWS_ACCESS_KEY_ID=CS" in text and "AWS_SECRET_ACCESS_KEY=" in text
        for p in ports:
            assert f"http://127.0.0.1:{p['s3']}" in text
            assert httpx.get(f"http://127.0.0.1:{p['web']}/health").status_code == 200
        dev.send_signal(signal.SIGINT)
        assert dev.wait(40) == 0, log.read_text()
    finally:
        if dev.poll() is None:
            os.killpg(dev.pid, signal.SIGKILL)
    text = log.read_text()
    for i in (1, 2, 3):
        assert f"node{i} stopped (status 0)" in text
    for p in ports:
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{p['web']}/health", timeout=1)


def test_init_is_idempotent(tmp_path):
    node = prepare_node(tmp_path / "a", f"sqlite://{tmp_path / 'm.sqlite3'}")
    again = run_cli("init", "--config", str(node.config))
    assert again.returncode == 0, again.stderr
    assert f"AWS_ACCESS_KEY_ID={node.access_key}" in again.stdout
    assert "(existing)" in again.stdout
    secret = Path(node.settings.cluster.secret_file)
    assert oct(secret.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("listener", ["s3", "sftp"])
def test_busy_port_is_a_one_line_error(tmp_path, listener):
    import socket

    node = prepare_node(tmp_path / "n", f"sqlite://{tmp_path / 'm.sqlite3'}")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", node.ports[listener]))
        busy.listen()
        done = run_cli("serve", "-c", str(node.config))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"cloudstorage: error: listen.{listener}_port: cannot listen on")
    assert "Address already in use" in last
