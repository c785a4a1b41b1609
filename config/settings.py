"""Typed node settings loaded from a TOML file with environment overrides.

Every value can be overridden with ``CLOUDSTORAGE_<SECTION>_<KEY>`` (for
example ``CLOUDSTORAGE_NODE_ID=node7`` or ``CLOUDSTORAGE_METADATA_URL=...``).
Relative paths are taken relative to the current working directory.
Any problem is reported as a :class:`ConfigError` whose message is one line
naming the offending setting.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

ENV_PREFIX = "CLOUDSTORAGE_"


class ConfigError(Exception):
    """A setting is missing, malformed or out of range."""


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?)b?\s*$", re.IGNORECASE)


def parse_size(value: int | str) -> int:
    """Parse ``4194304``, ``"4MiB"``, ``"100GB"`` or ``"1.5TiB"`` into bytes."""
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"size must not be negative: {value}")
        return value
    m = _SIZE_RE.match(str(value))
    if not m:
        raise ValueError(f"not a size: {value!r} (use e.g. 4MiB, 100GB or a byte count)")
    number, unit, binary = m.groups()
    base = 1024 if binary or not unit else 1000
    power = " kmgtp".index(unit.lower() or " ")
    return int(float(number) * base**power)


@dataclass(frozen=True)
class NodeSettings:
    id: str = "node1"
    zone: str = "default"
    capacity: int = parse_size("100GiB")
    data_dir: Path = Path("var/node1")
    # Processes serving the client ports (S3, web, SFTP) on this node,
    # sharing them with SO_REUSEPORT; 0 = one per CPU core (cluster/supervisor.py).
    workers: int = 0

    def worker_count(self) -> int:
        """``workers``, with 0 resolved to the number of CPU cores."""
        return self.workers or os.cpu_count() or 1


@dataclass(frozen=True)
class ListenSettings:
    host: str = "127.0.0.1"
    # The name clients should use; printed in banners and SFTP/API answers.
    public_host: str = ""
    web_port: int = 8000
    s3_port: int = 9000
    sftp_port: int = 2022
    transport_port: int = 7000
    max_header_bytes: int = 16384
    # The S3 port's connection cap and how long a request head may take once
    # it started arriving (protocols/http_server.py).
    max_connections: int = 1024
    head_timeout_seconds: float = 10.0
    # How long a request body may stall (no bytes) before it is refused, on
    # the S3 and the web port alike (S3 gives up after about 20 s).
    body_timeout_seconds: float = 20.0


@dataclass(frozen=True)
class MetadataSettings:
    url: str = "sqlite://var/meta.sqlite3"


@dataclass(frozen=True)
class StorageSettings:
    chunk_size: int = parse_size("4MiB")
    # One 4 KiB page: an object that fits in it costs a row instead of
    # replication_factor chunk files, each written and fsynced on its own.
    inline_threshold: int = parse_size("4KiB")
    replication_factor: int = 3
    write_quorum: int = 2
    gc_grace_seconds: int = 3600
    io_threads: int = 8


@dataclass(frozen=True)
class ClusterSettings:
    # Either the secret itself or a file holding it; ``cloudstorage init``
    # creates the file when it does not exist.
    secret: str = ""
    secret_file: Path | None = None
    region: str = "eu-central-1"
    heartbeat_seconds: float = 2.0
    down_after_seconds: float = 10.0
    shutdown_grace_seconds: float = 10.0
    # The first layout (version 1) is created automatically once this many
    # nodes are up and no layout exists; later joiners are only staged.
    bootstrap_expect: int = 1
    # How often a node re-reads the applied layout and the node list.
    layout_refresh_seconds: float = 2.0
    # Node-to-node transport: per-request deadline and the time a write
    # waits for replicas beyond the quorum before leaving them to repair.
    transport_timeout_seconds: float = 30.0
    straggler_seconds: float = 2.0


@dataclass(frozen=True)
class WorkerSettings:
    # Seconds between passes of each background worker of the blob layer.
    repair_interval: float = 300.0
    rebalance_interval: float = 30.0
    scrub_interval: float = 86400.0
    gc_interval: float = 600.0
    # Throttles (bytes per second) so maintenance never starves client I/O.
    rebalance_rate: int = parse_size("200MiB")
    scrub_rate: int = parse_size("50MiB")


@dataclass(frozen=True)
class AccountSettings:
    allow_signup: bool = True
    default_quota: int = parse_size("10GiB")
    max_buckets: int = 10
    max_access_keys: int = 5
    # Dashboard sessions (the ``session`` cookie) expire after this long.
    session_ttl_seconds: int = 7 * 86400
    # Per-account limit of the session-authenticated dashboard API (the
    # documented 30 requests per minute) and of failed logins per email.
    dashboard_requests_per_minute: int = 30
    login_attempts_per_minute: int = 10
    # Simple REST API (/api/v1/files), per access key, as the rate-limit table.
    rest_writes_per_second: int = 100
    rest_reads_per_second: int = 300
    rest_lists_per_second: int = 50
    # S3 API, per access key and node (the documented rate-limit table); 0 disables.
    s3_writes_per_second: int = 100
    s3_reads_per_second: int = 300
    s3_lists_per_second: int = 50
    # Largest single upload through the Simple REST API.
    rest_max_upload: int = parse_size("5GiB")


@dataclass(frozen=True)
class SftpSettings:
    enabled: bool = True
    # Failed SFTP logins allowed per username per minute (10x that per client address).
    login_attempts_per_minute: int = 10
    # Out-of-order SFTP writes are reassembled within this window.
    reorder_window: int = parse_size("16MiB")
    idle_timeout_seconds: int = 3600


@dataclass(frozen=True)
class SmtpSettings:
    # Outgoing mail (team invites).  host "" = no mail: invites are logged
    # for the operator instead.
    host: str = ""
    port: int = 587
    username: str = ""
    password: str = ""
    sender: str = "cloudstorage@localhost"
    # STARTTLS after connecting (port 587); ssl = implicit TLS (port 465).
    starttls: bool = True
    ssl: bool = False
    timeout_seconds: float = 20.0


@dataclass(frozen=True)
class BillingSettings:
    # Stripe.  No secret key = billing is off: the billing endpoints answer
    # 503 BillingNotConfigured and every account keeps its quota.
    stripe_secret_key: str = ""
    stripe_webhook_secret: str = ""
    # Another Stripe API base (a local Stripe fake in tests); "" = Stripe's.
    stripe_api_base: str = ""
    # The Stripe price id of each plan (monthly prices of the product documents).
    price_1tb: str = ""
    price_5tb: str = ""
    price_10tb: str = ""
    price_25tb: str = ""
    price_50tb: str = ""
    # Where Stripe Checkout and the billing portal send the user back.
    success_url: str = "http://localhost:8000/billing/success"
    cancel_url: str = "http://localhost:8000/billing/cancel"
    return_url: str = "http://localhost:8000/billing"
    # Signed webhook events older than this are refused (replays).
    webhook_tolerance_seconds: int = 300


@dataclass(frozen=True)
class AdminSettings:
    # Hashes ("sha256:<64 hex>") of admin-API tokens with write access, in
    # addition to those in ``token_file``.  Only hashes: a leaked config file
    # does not leak a token.
    tokens: tuple[str, ...] = ()
    # Token hashes written by ``cloudstorage admin-token create`` (re-read when
    # it changes).  Default: ``admin-tokens`` next to ``cluster.secret_file``.
    token_file: Path | None = None


@dataclass(frozen=True)
class OutboundSettings:
    # Outgoing HTTP to user-given URLs (webhooks, URL imports): storage/outbound.py.
    # Non-public addresses (loopback, private, link-local, ...) are refused
    # unless allowed here: all of them, or only these networks (CIDR list).
    allow_private: bool = False
    allowed_networks: tuple[str, ...] = ()
    connect_timeout_seconds: float = 10.0
    timeout_seconds: float = 30.0
    max_response_bytes: int = parse_size("10MiB")


@dataclass(frozen=True)
class WebhookSettings:
    # The delivery worker (cluster/delivery.py): how often it looks for new
    # events when nothing woke it, how long a claimed delivery stays claimed,
    # how many events and deliveries it keeps.
    poll_seconds: float = 2.0
    lease_seconds: float = 60.0
    timeout_seconds: float = 10.0
    retries: int = 3
    retry_base_seconds: float = 5.0
    disable_after_failures: int = 10
    # Events are also the audit log's source (storage/audit.py reads a year).
    event_retention_days: int = 365
    log_retention_days: int = 30
    log_per_webhook: int = 100
    max_per_account: int = 20


@dataclass(frozen=True)
class VersionSettings:
    # Time Machine defaults (accounts may override both): how many previous
    # versions of a file are kept and for how long; 0 keeps none.
    max_versions: int = 10
    max_age_days: int = 30
    prune_interval: float = 3600.0


@dataclass(frozen=True)
class ShareSettings:
    # Wrong share passwords allowed per share per minute, counted cluster-wide
    # (10x that per client address).
    password_attempts_per_minute: int = 10


@dataclass(frozen=True)
class ImageSettings:
    # The transform-result cache (storage/image_cache.py): its bound, and how
    # often the collector trims it to that bound.
    cache_max_bytes: int = parse_size("1GiB")
    cache_max_entries: int = 100_000
    cache_interval: float = 300.0
    # Longest lifetime of a signed /api/img URL.
    signed_url_max_seconds: int = 7 * 86400


@dataclass(frozen=True)
class V1ProSettings:
    # The v1-pro REST dialect (seed 002): off answers 503 feature_disabled.
    enabled: bool = True
    # Per csb_live_ key, in a 60-second sliding window counted cluster-wide.
    requests_per_minute: int = 60
    max_keys: int = 10
    # Lifetime of the signed ``link`` URLs the API hands out.
    link_ttl_seconds: int = 7 * 86400
    # URL imports (cluster/imports.py): a claimed task stays claimed this long
    # without a renewal; a task interrupted this many times is marked failed.
    import_lease_seconds: float = 30.0
    import_max_attempts: int = 3
    import_poll_seconds: float = 1.0
    import_concurrency: int = 2


@dataclass(frozen=True)
class V2DriveSettings:
    # Requests of one account in flight at once, by plan tier (seed 004's
    # "Concurrent" column); each node admits its share (storage/concurrency.py).
    concurrent_free: int = 5
    concurrent_pro: int = 20
    concurrent_business: int = 50


@dataclass(frozen=True)
class Settings:
    node: NodeSettings = field(default_factory=NodeSettings)
    listen: ListenSettings = field(default_factory=ListenSettings)
    metadata: MetadataSettings = field(default_factory=MetadataSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    accounts: AccountSettings = field(default_factory=AccountSettings)
    admin: AdminSettings = field(default_factory=AdminSettings)

    def admin_token_file(self) -> Path | None:
        """Where admin token hashes live (``admin.token_file`` or its default)."""
        if self.admin.token_file is not None:
            return self.admin.token_file
        if self.cluster.secret_file is not None:
            return self.cluster.secret_file.parent / "admin-tokens"
        return None

    def console_token_file(self) -> Path | None:
        """The plaintext token ``cloudstorage init`` leaves for the local console."""
        hashes = self.admin_token_file()
        return None if hashes is None else hashes.parent / "admin.token"
    sftp: SftpSettings = field(default_factory=SftpSettings)
    workers: WorkerSettings = field(default_factory=WorkerSettings)
    v1pro: V1ProSettings = field(default_factory=V1ProSettings)
    v2drive: V2DriveSettings = field(default_factory=V2DriveSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    billing: BillingSettings = field(default_factory=BillingSettings)
    outbound: OutboundSettings = field(default_factory=OutboundSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    versions: VersionSettings = field(default_factory=VersionSettings)
    shares: ShareSettings = field(default_factory=ShareSettings)
    images: ImageSettings = field(default_factory=ImageSettings)

    def cluster_secret(self) -> bytes:
        """The shared cluster secret; raises ConfigError if it is not set."""
        if self.cluster.secret:
            return self.cluster.secret.encode()
        path = self.cluster.secret_file
        if path is None:
            raise ConfigError("cluster.secret: not set (set cluster.secret or cluster.secret_file)")
        try:
            value = path.read_text().strip()
        except FileNotFoundError:
            raise ConfigError(
                f"cluster.secret_file: {path} does not exist (run `cloudstorage init`)"
            ) from None
        except OSError as exc:
            raise ConfigError(f"cluster.secret_file: cannot read {path}: {exc.strerror}") from None
        if len(value) < 16:
            raise ConfigError(f"cluster.secret_file: {path} holds fewer than 16 characters")
        return value.encode()

    def ensure_cluster_secret(self) -> None:
        """Create the cluster secret file if one is configured but missing."""
        path = self.cluster.secret_file
        if self.cluster.secret or path is None or path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48) + "\n")


def _coerce(section: str, name: str, kind: Any, value: Any) -> Any:
    where = f"{section}.{name}"
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"expected true or false, got {value!r}")
        if kind is int:
            if name in _SIZE_FIELDS:
                return parse_size(value)
            if isinstance(value, bool):
                raise ValueError(f"expected an integer, got {value!r}")
            return int(value)
        if kind is float:
            return float(value)
        if kind is str:
            if not isinstance(value, str):
                raise ValueError(f"expected a string, got {value!r}")
            return value
        if kind == tuple[str, ...]:
            # A TOML list, or a comma-separated string (environment variables).
            items = value.split(",") if isinstance(value, str) else value
            if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
                raise ValueError(f"expected a list of strings, got {value!r}")
            return tuple(i.strip() for i in items if i.strip())
        if kind in (Path, Path | None):
            if value in ("", None):
                return None if kind != Path else Path(".")
            return Path(str(value))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    raise ConfigError(f"{where}: unsupported setting type")  # pragma: no cover


_SIZE_FIELDS = {"capacity", "chunk_size", "inline_threshold", "default_quota", "max_header_bytes",
                "rebalance_rate", "scrub_rate", "rest_max_upload", "reorder_window",
                "max_response_bytes", "cache_max_bytes"}


def _section_types(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def load_settings(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Load settings from ``path`` (optional) and the environment, then validate."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            raw = tomllib.loads(p.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {p} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {p}: invalid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"config file {p}: {exc.strerror}") from None

    sections: dict[str, Any] = {}
    top_types = _section_types(Settings)
    for key in raw:
        if key not in top_types:
            raise ConfigError(f"{key}: unknown section (known: {', '.join(top_types)})")
    for section, cls in top_types.items():
        given = raw.get(section, {})
        if not isinstance(given, dict):
            raise ConfigError(f"{section}: must be a table")
        types = _section_types(cls)
        for name in given:
            if name not in types:
                raise ConfigError(f"{section}.{name}: unknown setting")
        values = {n: _coerce(section, n, types[n], v) for n, v in given.items()}
        for name, kind in types.items():
            env_name = f"{ENV_PREFIX}{section}_{name}".upper()
            if env_name in env:
                values[name] = _coerce(section, name, kind, env[env_name])
        sections[section] = cls(**values)
    settings = Settings(**sections)
    _validate(settings)
    return settings


def _validate(s: Settings) -> None:
    def need(cond: bool, msg: str) -> None:
        if not cond:
            raise ConfigError(msg)

    need(bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", s.node.id)),
         f"node.id: {s.node.id!r} must be 1-64 letters, digits, '.', '_' or '-'")
    need(bool(s.node.zone), "node.zone: must not be empty")
    # Both are stored in fixed-width columns (nodes.zone, buckets.region).
    need(len(s.node.zone) <= 64, "node.zone: must be at most 64 characters")
    need(0 <= s.node.workers <= 256, "node.workers: must be 0 (one per core) to 256")
    need(1 <= len(s.cluster.region) <= 32, "cluster.region: must be 1-32 characters")
    need(min(s.v2drive.concurrent_free, s.v2drive.concurrent_pro,
             s.v2drive.concurrent_business) >= 1, "v2drive.concurrent_*: must be at least 1")
    for name in ("web_port", "s3_port", "sftp_port", "transport_port"):
        port = getattr(s.listen, name)
        need(0 <= port <= 65535, f"listen.{name}: {port} is not a TCP port")
    need(64 * 1024 <= s.storage.chunk_size <= 64 * 1024 * 1024,
         "storage.chunk_size: must be between 64KiB and 64MiB")
    need(0 <= s.storage.inline_threshold <= 64 * 1024,
         "storage.inline_threshold: must be between 0 and 64KiB")
    need(1 <= s.storage.replication_factor <= 7, "storage.replication_factor: must be 1..7")
    need(1 <= s.storage.write_quorum <= s.storage.replication_factor,
         "storage.write_quorum: must be between 1 and storage.replication_factor")
    need(s.storage.io_threads >= 1, "storage.io_threads: must be at least 1")
    need(s.metadata.url.startswith(("sqlite://", "postgres://", "postgresql://", "psql://")),
         f"metadata.url: {s.metadata.url!r} must start with sqlite:// or postgres://")
    need(s.cluster.heartbeat_seconds > 0, "cluster.heartbeat_seconds: must be positive")
    need(s.cluster.bootstrap_expect >= 1, "cluster.bootstrap_expect: must be at least 1")
    need(s.cluster.layout_refresh_seconds > 0, "cluster.layout_refresh_seconds: must be positive")
    need(s.listen.body_timeout_seconds > 0, "listen.body_timeout_seconds: must be positive")
    need(s.cluster.transport_timeout_seconds > 0,
         "cluster.transport_timeout_seconds: must be positive")
    for name in ("repair_interval", "rebalance_interval", "scrub_interval", "gc_interval",
                 "rebalance_rate", "scrub_rate"):
        need(getattr(s.workers, name) > 0, f"workers.{name}: must be positive")
    need(s.cluster.down_after_seconds > s.cluster.heartbeat_seconds,
         "cluster.down_after_seconds: must exceed cluster.heartbeat_seconds")
    for token in s.admin.tokens:
        need(bool(re.fullmatch(r"sha256:[0-9a-f]{64}", token)),
             "admin.tokens: entries must be token hashes 'sha256:<64 hex digits>' "
             "(see `cloudstorage admin-token create`)")
    need(bool(s.cluster.secret) or s.cluster.secret_file is not None,
         "cluster.secret: set cluster.secret or cluster.secret_file")
    try:
        for net in s.outbound.allowed_networks:
            ipaddress.ip_network(net, strict=False)
    except ValueError as exc:
        raise ConfigError(f"outbound.allowed_networks: {exc}") from None
    need(s.outbound.connect_timeout_seconds > 0 and s.outbound.timeout_seconds > 0,
         "outbound: timeouts must be positive")
    need(s.webhooks.poll_seconds > 0 and s.webhooks.lease_seconds > 0,
         "webhooks: poll_seconds and lease_seconds must be positive")
    need(s.webhooks.retries >= 0 and s.webhooks.disable_after_failures >= 1,
         "webhooks: retries must be >= 0 and disable_after_failures >= 1")
    # A delivery still running when its lease ends would be sent twice at once.
    need(s.webhooks.lease_seconds > s.webhooks.timeout_seconds,
         "webhooks.lease_seconds: must exceed webhooks.timeout_seconds")
    need(s.versions.max_versions >= 0 and s.versions.max_age_days >= 0,
         "versions: max_versions and max_age_days must not be negative")


def replace(settings: Settings, **sections: Mapping[str, Any]) -> Settings:
    """A copy of ``settings`` with some fields of some sections replaced (tests, dev)."""
    updated = {
        name: dataclasses.replace(getattr(settings, name), **values)
        for name, values in sections.items()
    }
    result = dataclasses.replace(settings, **updated)
    _validate(result)
    return result
