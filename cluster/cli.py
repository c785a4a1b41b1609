"""The ``cloudstorage`` command.

    cloudstorage serve --config node.toml     run one node
    cloudstorage init --config node.toml      create the secret, schema, first admin
    cloudstorage dev [--procfile Procfile]    run a local cluster from a Procfile
    cloudstorage admin                        the operator console
    cloudstorage admin-token create           a new admin-API token (only its hash is kept)

Problems the operator can fix (a bad setting, an unreachable database) are
printed as one line, not a traceback.
"""

from __future__ import annotations

import argparse
import functools
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
    if args.worker_index:
        from cluster.secondary import run_secondary

        trio.run(run_secondary, settings, args.worker_index, args.worker_link)
        return 0
    trio.run(functools.partial(run_node, settings, config_path=args.config))
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    """Prepare a fresh cluster: secret file, schema, first admin and key."""
    from cluster.bootstrap import bootstrap, format_credentials
    from protocols.admin.tokens import ensure_console_token

    settings = _settings(args)
    creds = trio.run(bootstrap, settings, args.admin_email)
    print(format_credentials(creds))
    console = ensure_console_token(settings)
    if console is not None:
        print(f"admin console token: {console} (used by `cloudstorage admin`)")
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


def cmd_admin_token_create(args: argparse.Namespace) -> int:
    """Create an admin-API token: print it once, store only its hash."""
    from protocols.admin.tokens import append_token

    settings = _settings(args)
    path = settings.admin_token_file()
    if path is None:
        raise CliError("admin.token_file: not set (and no cluster.secret_file to put it next to)")
    try:
        token = append_token(path, args.name, "read" if args.read_only else "write")
    except OSError as exc:
        raise CliError(f"admin.token_file: cannot write {path}: {exc.strerror}") from None
    print(token)
    print(f"(hash stored in {path}; the token is not stored anywhere: keep it now)",
          file=sys.stderr)
    return 0


def cmd_admin(args: argparse.Namespace) -> int:
    """The operator console (Textual; imported here, since it is a heavy import
    the nodes themselves never need)."""
    from admin_tui.app import main as console_main

    return console_main(args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``cloudstorage`` command."""
    parser = argparse.ArgumentParser(prog="cloudstorage", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run one node")
    serve.add_argument("--config", "-c", help="TOML settings file (env overrides apply)")
    # Set by a node's primary process for the secondary workers it starts
    # (cluster/supervisor.py); not for operators.
    serve.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    serve.add_argument("--worker-link", default="", help=argparse.SUPPRESS)
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
    admin.add_argument("--url", default=None,
                       help="any node's web URL (default: from --config, else :8000)")
    admin.add_argument("--token", default=None,
                       help="admin token (default: $CLOUDSTORAGE_ADMIN_TOKEN, else --token-file)")
    admin.add_argument("--token-file", default=None,
                       help="file holding the token (default: the one `init` wrote, "
                            "var/admin.token)")
    admin.add_argument("--config", "-c", default=None,
                       help="a node's TOML settings (to find its URL and token file)")
    admin.add_argument("--write", action="store_true", help="allow changes")
    admin.set_defaults(func=cmd_admin)

    token = sub.add_parser("admin-token", help="manage admin-API tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    token_create = token_sub.add_parser("create", help="create a token and print it once")
    token_create.add_argument("--config", "-c", help="TOML settings file")
    token_create.add_argument("--name", default="", help="a label shown to operators")
    token_create.add_argument("--read-only", action="store_true",
                              help="the token may only read (GET) the admin API")
    token_create.set_defaults(func=cmd_admin_token_create)

    from cluster.layout_cli import add_commands as add_layout_commands

    add_layout_commands(sub)  # layout show|stage|preview|apply|revert, workers
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except BaseException as exc:
        problem = _operator_problem(exc)
        if problem is None:
            raise
        print(f"cloudstorage: error: {problem}", file=sys.stderr)
        return 2


def _operator_problem(exc: BaseException) -> BaseException | None:
    """The operator-fixable error in ``exc``, if there is one."""
    from cluster.node import ListenError, find_exception
    from cluster.supervisor import WorkerStartError

    return find_exception(exc, (ConfigError, DatabaseUnavailable, CliError, ListenError,
                                WorkerStartError))


if __name__ == "__main__":
    sys.exit(main())
