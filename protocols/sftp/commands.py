"""The few commands the SFTP port answers over SSH exec, as SFTPGo does.

rclone's SFTP backend asks the server for checksums instead of downloading
files (``rclone check``, ``sync --checksum``).  It first probes the remote
shell with ``echo ${ShellId}%ComSpec%`` (a POSIX shell prints ``%ComSpec%``,
so the remote is "unix") and the hash commands with ``md5sum`` / ``sha1sum``
of an empty stdin; then it runs ``md5sum 'PATH'`` per file, the path quoted
for a POSIX shell.  Both rclone 1.60 and 1.75 do this.

No shell is ever run: the command line is split with :func:`shlex.split`
(POSIX quoting) and only ``md5sum``, ``sha1sum`` and ``echo`` are answered;
``;``, ``|``, ``$(...)`` and the like are plain characters of an argument.
Paths go through the same resolution as SFTP paths (the caller's ``digest``),
so ``..`` cannot leave the account's root and other accounts' buckets do not
exist.  Output follows GNU coreutils: ``<hex>  <name>`` per file, errors on
stderr as ``md5sum: NAME: REASON`` and exit status 1 if any file failed.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Awaitable, Callable
from typing import Protocol

import asyncssh

HASH_COMMANDS = {"md5sum": "md5", "sha1sum": "sha1"}
ANSWERED = ("md5sum", "sha1sum", "echo")
STATUS_SYNTAX = 2  # a shell's status for a command line it cannot parse
STATUS_NOT_FOUND = 127  # a shell's status for an unknown command
STDIN_BLOCK = 256 * 1024

# $NAME and ${NAME}: no variable is set here, so each expands to nothing, as in
# a shell where it is unset (rclone's probe relies on exactly that).
_VARIABLE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}|\$[A-Za-z_][A-Za-z0-9_]*")

# The hex digest of an object for a path and an algorithm ("md5", "sha1");
# raises an SFTPError whose reason names the problem.
Digest = Callable[[str, str], Awaitable[str]]


class _Reader(Protocol):
    async def read(self, n: int = -1) -> bytes: ...


class _Writer(Protocol):
    def write(self, data: bytes) -> None: ...


class Refused(Exception):
    """The command line is not one this server answers."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def parse(command: str) -> list[str]:
    """The words of an answered command line; :class:`Refused` otherwise."""
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise Refused(f"cannot parse the command: {exc}", STATUS_SYNTAX) from None
    if not words or words[0] not in ANSWERED:
        name = words[0] if words else "(empty command)"
        raise Refused(
            f"{name}: command not supported: this server runs no shell and only "
            f"answers {', '.join(ANSWERED)}", STATUS_NOT_FOUND)
    return words


def echo_output(args: list[str]) -> bytes:
    """What ``echo ARGS`` prints with no variable set."""
    return (" ".join(_VARIABLE.sub("", arg) for arg in args) + "\n").encode()


def digest_line(hexdigest: str, name: str) -> bytes:
    """One line of ``md5sum`` output for ``name`` (GNU coreutils' format: a name
    with a backslash or a line break is escaped and the line starts with ``\\``)."""
    if any(c in name for c in "\\\n\r"):
        escaped = name.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
        return f"\\{hexdigest}  {escaped}\n".encode()
    return f"{hexdigest}  {name}\n".encode()


def _operands(tool: str, args: list[str]) -> list[str]:
    """File operands of a hash command; options are refused (none is needed)."""
    files: list[str] = []
    options_done = False
    for arg in args:
        if arg == "--" and not options_done:
            options_done = True
        elif arg.startswith("-") and arg != "-" and not options_done:
            raise Refused(f"{tool}: option {arg} is not supported", 1)
        else:
            files.append(arg)
    return files or ["-"]


async def _stdin_digest(stdin: _Reader, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    while block := await stdin.read(STDIN_BLOCK):
        h.update(block)
    return h.hexdigest()


async def run(command: str, stdin: _Reader, stdout: _Writer, stderr: _Writer,
              digest: Digest) -> int:
    """Answer one exec request; returns its exit status."""
    try:
        words = parse(command)
        tool, args = words[0], words[1:]
        if tool == "echo":
            stdout.write(echo_output(args))
            return 0
        files = _operands(tool, args)
    except Refused as exc:
        stderr.write(f"{exc.message}\n".encode())
        return exc.status
    algorithm = HASH_COMMANDS[tool]
    status = 0
    for name in files:
        try:
            if name == "-":
                hexdigest = await _stdin_digest(stdin, algorithm)
            else:
                hexdigest = await digest(name, algorithm)
        except asyncssh.SFTPError as exc:
            stderr.write(f"{tool}: {name}: {exc.reason}\n".encode())
            status = 1
            continue
        stdout.write(digest_line(hexdigest, name))
    return status
