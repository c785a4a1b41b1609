"""Settings: TOML + environment, sizes, one-line errors."""

from __future__ import annotations

import pytest

from config import ConfigError, load_settings, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [(0, 0), (4096, 4096), ("4MiB", 4 * 1024**2), ("4 mib", 4 * 1024**2), ("100GB", 100 * 10**9),
     ("1.5TiB", int(1.5 * 1024**4)), ("512", 512), ("3KiB", 3072), ("2k", 2000)],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["", "lots", "-1", "4XB", True, -5])
def test_parse_size_rejects(bad):
    with pytest.raises(ValueError):
        parse_size(bad)


def test_defaults_without_a_file():
    s = load_settings(env={"CLOUDSTORAGE_CLUSTER_SECRET": "s" * 20})
    assert s.node.id == "node1"
    assert s.storage.chunk_size == 4 * 1024**2
    assert (s.storage.replication_factor, s.storage.write_quorum) == (3, 2)
    assert s.cluster.region == "eu-central-1"
    assert s.cluster_secret() == b"s" * 20


def test_file_and_env_overrides(tmp_path):
    f = tmp_path / "n.toml"
    f.write_text('[node]\nid = "a"\ncapacity = "2TiB"\n[storage]\nchunk_size = "1MiB"\n'
                 '[cluster]\nsecret = "0123456789abcdef"\n')
    s = load_settings(f, env={"CLOUDSTORAGE_NODE_ID": "b", "CLOUDSTORAGE_LISTEN_S3_PORT": "9100",
                              "CLOUDSTORAGE_ACCOUNTS_ALLOW_SIGNUP": "false"})
    assert (s.node.id, s.node.capacity) == ("b", 2 * 1024**4)
    assert s.storage.chunk_size == 1024**2
    assert s.listen.s3_port == 9100
    assert s.accounts.allow_signup is False


@pytest.mark.parametrize(
    ("toml", "env", "needle"),
    [
        ('[node]\nid = "has space"\n', {}, "node.id"),
        ("[listen]\nweb_port = 70000\n", {}, "listen.web_port"),
        ("[listen]\nweb_port = \"eighty\"\n", {}, "listen.web_port"),
        ("[storage]\nwrite_quorum = 4\n", {}, "storage.write_quorum"),
        ("[storage]\nchunk_size = \"1KiB\"\n", {}, "storage.chunk_size"),
        ("[metadata]\nurl = \"mysql://x\"\n", {}, "metadata.url"),
        ("[nodes]\nid = 1\n", {}, "nodes: unknown section"),
        ("[node]\nzone = \"\"\n", {}, "node.zone"),
        ("node = 5\n", {}, "node: must be a table"),
        ("", {"CLOUDSTORAGE_ACCOUNTS_ALLOW_SIGNUP": "maybe"}, "accounts.allow_signup"),
        ("[node\n", {}, "invalid TOML"),
    ],
)
def test_errors_name_the_setting(tmp_path, toml, env, needle):
    f = tmp_path / "bad.toml"
    f.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_settings(f, env={"CLOUDSTORAGE_CLUSTER_SECRET": "0123456789abcdef", **env})
    message = str(info.value)
    assert needle in message and "\n" not in message


def test_secret_file_created_once_and_private(tmp_path):
    f = tmp_path / "n.toml"
    f.write_text(f'[cluster]\nsecret_file = "{tmp_path / "sec" / "cluster.secret"}"\n')
    s = load_settings(f, env={})
    with pytest.raises(ConfigError, match="cloudstorage init"):
        s.cluster_secret()
    s.ensure_cluster_secret()
    first = s.cluster_secret()
    s.ensure_cluster_secret()
    assert s.cluster_secret() == first and len(first) >= 32
    assert (s.cluster.secret_file.stat().st_mode & 0o777) == 0o600
