"""The ``cloudstorage`` command.

    cloudstorage serve --config node.toml     run one node
    cloudstorage init --config node.toml      create the secret, schema, first admin
    cloudstorage dev [--procfile Procfile]    run a local cluster from a Procfile
    cloudstorage admin                        the operator console

Problems the operator can fix (a bad setting, an unreachable database) are
printed as one line, not a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import trio

from config import ConfigError, Settings, load_settings
from storage.db import DatabaseUnavailable


class CliError(Exception):
    """A one-line, user-facing failure."""


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


def cmd_serve(args: argparse.Namespace) -> int:
    """Run one node in the foreground."""
    from cluster.node import run_node

    settings = _settings(args)
    trio.run(run_node, settings)
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    """Prepare a fresh cluster: secret file, schema, first admin and key."""
    from cluster.bootstrap import bootstrap, format_credentials

    settings = _settings(args)
    creds = trio.run(bootstrap, settings, args.admin_email)
    print(format_credentials(creds))
    return 0


def cmd_account_create(args: argparse.Namespace) -> int:
    """Create an account with its first key pair (operator-side signup)."""
    from cluster.bootstrap import create_account

    settings = _settings(args)
    creds = trio.run(create_account, settings, args.email, args.quota)
    print(f"account {args.email}\n  AWS_ACCESS_KEY_ID={creds.access_key}\n"
          f"  AWS_SECRET_ACCESS_KEY={creds.secret_key}")
    return 0


def cmd_dev(args: argparse.Namespace) -> int:
    """Run the local multi-node cluster described by a Procfile."""
    from cluster.devcluster import run_dev_cluster

    return trio.run(run_dev_cluster, args.procfile, args.admin_email)


def cmd_admin(args: argparse.Namespace) -> int:
    """The operator console (Textual)."""
    try:
        from admin_tui.app import main as console_main
    except ImportError:
        raise CliError(
            "the operator console is not part of this build yet (admin_tui/ is empty)"
        ) from None
    return console_main(args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``cloudstorage`` command."""
    parser = argparse.ArgumentParser(prog="cloudstorage", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run one node")
    serve.add_argument("--config", "-c", help="TOML settings file (env overrides apply)")
    serve.set_defaults(func=cmd_serve)

    init = sub.add_parser("init", help="create secret, schema and the first admin account")
    init.add_argument("--config", "-c", help="TOML settings file")
    init.add_argument("--admin-email", default="admin@localhost")
    init.set_defaults(func=cmd_init)

    account = sub.add_parser("account", help="manage accounts")
    account_sub = account.add_subparsers(dest="account_command", required=True)
    create = account_sub.add_parser("create", help="create an account and its first key")
    create.add_argument("--config", "-c", help="TOML settings file")
    create.add_argument("--email", required=True)
    create.add_argument("--quota", default=None, help="e.g. 1TiB (default: accounts.default_quota)")
    create.set_defaults(func=cmd_account_create)

    dev = sub.add_parser("dev", help="run a local cluster from a Procfile")
    dev.add_argument("--procfile", default="Procfile")
    dev.add_argument("--admin-email", default="admin@localhost")
    dev.set_defaults(func=cmd_dev)

    admin = sub.add_parser("admin", help="the operator console")
    admin.add_argument("--url", default="http://127.0.0.1:8000")
    admin.add_argument("--token", default=None)
    admin.add_argument("--write", action="store_true", help="allow changes")
    admin.set_defaults(func=cmd_admin)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, DatabaseUnavailable, CliError) as exc:
        print(f"cloudstorage: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
