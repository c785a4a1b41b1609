"""Image transform throughput: the engine against libvips called directly.

    .venv/bin/python bench/img_bench.py [--ops 12] [--repeat 9] [--concurrency 8]

A 4000x3000 JPEG, generated here from libvips noise (several octaves of
Perlin noise, Worley cells and fine grain, so it compresses like a photo
rather than like a flat test card), becomes a 400x300 WebP at q=80:

- engine: ``protocols.img.transform.transform_async`` (header probe, limits,
  shrink-on-load resize, colour and alpha handling, metadata stripped, on a
  worker thread behind the engine's CapacityLimiter), cold: nothing is
  cached, every operation decodes the source again;
- direct: the simplest correct libvips call,
  ``thumbnail_buffer(src, 400, height=300).webpsave_buffer(Q=80, keep=NONE)``,
  in the same process and with the same libvips settings (one thread per
  operation, no operation cache: importing the engine sets them), run inline
  at c=1 and on threads behind a limiter of the same size at c>1.

Each figure is the median of ``--repeat`` runs of ``--ops`` operations; the
engine and direct runs alternate so noise on a shared machine hits both. One
warm-up operation each is not counted. ``ratio`` is engine time per op over
direct time per op, of the medians (target: at most 1.3); ``best`` is the
same ratio for the fastest run of each, the one least disturbed by other
load on a shared machine.

The endpoint (``--endpoint``, on by default) is measured in the same run on
a node started here (SQLite, one replica, rate limits lifted), through raw
keep-alive HTTP/1.1 connections (bench/s3_bench.py's client) with an API key:

- endpoint cold: ``GET /api/img/default/cold/N.jpg?w=400&h=300&format=webp``
  for a new copy of the source each time (nothing cached anywhere), against
  direct libvips: the whole request (auth, metadata, reading the 4000x3000
  source from the chunk store, transform, storing the result) per op;
- endpoint cached: the same URL again and again (target: at least 1,000
  requests/s on one node); no baseline.

Cases are :class:`Case` entries: :func:`main` builds its list with
:func:`transform_cases` and :func:`endpoint_cases`, and :func:`measure` times
any async operation at a given concurrency.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pyvips
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.s3_bench import HttpConnection, start_node
from protocols.img.params import parse_params
from protocols.img.transform import default_concurrency, default_limiter, transform_async

SOURCE_SIZE = (4000, 3000)
TARGET = "w=400&h=300&format=webp"
QUALITY = 80

Operation = Callable[[], Awaitable[object]]


@dataclass(frozen=True)
class Case:
    """One row of the table: an operation of the system under test, the
    baseline it is compared with, and the concurrency to run both at."""

    name: str
    concurrency: int
    subject: Operation
    baseline: Operation | None  # None: throughput only
    ops: int | None = None  # operations per run, if not --ops


@dataclass(frozen=True)
class Measurement:
    """Wall time of ``ops`` operations at a concurrency."""

    ops: int
    seconds: float

    @property
    def ms_per_op(self) -> float:
        """Latency of one operation as the throughput implies it."""
        return self.seconds * 1000 / self.ops

    @property
    def ops_per_second(self) -> float:
        """Throughput."""
        return self.ops / self.seconds


def photo_like_jpeg(width: int, height: int) -> bytes:
    """A JPEG (q=85) with structure at several scales and per-channel variation."""

    def octaves(seed: int) -> pyvips.Image:
        # From broad shapes (a quarter of the width) down to 16-pixel texture.
        layers = [(width // 4, 0.45), (width // 16, 0.3), (width // 64, 0.15),
                  (width // 250, 0.2)]
        total = pyvips.Image.worley(width, height, cell_size=width // 20, seed=seed) * 0.04
        for cell, weight in layers:
            total += pyvips.Image.perlin(width, height, cell_size=cell, seed=seed + cell) * weight
        return total

    # Each channel its own structure and sensor-like grain; the amplitude
    # keeps most values in range, as clipped flat areas compress too well.
    def grain(seed: int) -> pyvips.Image:
        return pyvips.Image.gaussnoise(width, height, sigma=6, mean=0, seed=seed)

    bands = [octaves(seed) * 90 + 128 + grain(seed) for seed in (1, 2, 3)]
    image = bands[0].bandjoin(bands[1:]).cast("uchar").copy(interpretation="srgb")
    return image.jpegsave_buffer(Q=85)


def direct_webp(source: bytes) -> bytes:
    """The baseline: libvips with nothing around it."""
    thumbnail = pyvips.Image.thumbnail_buffer(source, 400, height=300)
    return thumbnail.webpsave_buffer(Q=QUALITY, keep=pyvips.enums.ForeignKeep.NONE)


def transform_cases(source: bytes, concurrency: int) -> list[Case]:
    """The engine's cold transform against direct libvips, at c=1 and c=N."""
    params = parse_params(TARGET)
    limiter = default_limiter()  # the engine's own, shared with the threaded baseline

    async def engine() -> object:
        return await transform_async(source, params, "webp", limiter=limiter)

    async def direct_inline() -> object:
        return direct_webp(source)

    async def direct_threaded() -> object:
        return await trio.to_thread.run_sync(direct_webp, source, limiter=limiter)

    return [
        Case("cold transform, c=1", 1, engine, direct_inline),
        Case(f"cold transform, c={concurrency}", concurrency, engine, direct_threaded),
    ]


@dataclass(frozen=True)
class WebNode:
    """The node the endpoint cases run against."""

    process: subprocess.Popen
    web: tuple[str, int]
    api_key: str


def start_web_node(tmp: Path) -> WebNode:
    """A one-replica SQLite node (bench/s3_bench.py's), REST rate limits lifted:
    one benchmark key does the work of many clients."""
    for name in ("READS", "WRITES"):  # inherited by the node's processes
        os.environ[f"CLOUDSTORAGE_ACCOUNTS_REST_{name}_PER_SECOND"] = "1000000"
    process, _s3, ak, sk = start_node(tmp)
    port = re.search(r"web_port = (\d+)", (tmp / "node.toml").read_text())
    assert port is not None
    return WebNode(process, ("127.0.0.1", int(port[1])), f"{ak}:{sk}")


class Endpoint:
    """Keep-alive connections to ``/api/img`` and the sources it transforms."""

    def __init__(self, address: tuple[str, int], api_key: str) -> None:
        self._address = address
        self._idle: list[HttpConnection] = []
        self._open: list[HttpConnection] = []
        self.headers = {"host": f"{address[0]}:{address[1]}", "x-api-key": api_key}
        self.cold_next = 0

    @classmethod
    @asynccontextmanager
    async def open(cls, address: tuple[str, int], api_key: str, source: bytes,
                   cold_keys: int) -> AsyncIterator[Endpoint]:
        """Upload ``cold_keys`` copies of ``source`` (cold/0.jpg, ...) first."""
        endpoint = cls(address, api_key)
        try:
            for i in range(cold_keys):
                status = await endpoint.call(
                    "POST", f"/api/v1/files?bucket=default&key=cold/{i}.jpg", source,
                    {"content-type": "image/jpeg"})
                if status != 201:
                    raise SystemExit(f"uploading the source failed: HTTP {status}")
            yield endpoint
        finally:
            for conn in endpoint._open:
                await conn.aclose()

    async def call(self, method: str, target: str, body: bytes = b"",
                   headers: dict[str, str] | None = None) -> int:
        """One request on an idle connection (a new one if none is idle); the status."""
        conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = await HttpConnection.open(*self._address)
            self._open.append(conn)
        status, _headers, _body, _n = await conn.request(
            method, target, {**self.headers, **(headers or {})}, body, keep_body=False)
        self._idle.append(conn)
        return status

    async def transform(self, key: str) -> None:
        """GET the benchmark transform of ``key``; it must succeed."""
        status = await self.call("GET", f"/api/img/default/{key}?{TARGET}")
        if status != 200:
            raise SystemExit(f"/api/img answered HTTP {status}")


def endpoint_cases(endpoint: Endpoint, source: bytes, concurrency: int,
                   cached_ops: int) -> list[Case]:
    """The endpoint, cold (a new source copy each op) and cached, at c=1 and c=N."""
    limiter = default_limiter()

    async def cold() -> object:
        key = f"cold/{endpoint.cold_next}.jpg"
        endpoint.cold_next += 1
        return await endpoint.transform(key)

    async def cached() -> object:
        return await endpoint.transform("cold/0.jpg")

    async def direct_inline() -> object:
        return direct_webp(source)

    async def direct_threaded() -> object:
        return await trio.to_thread.run_sync(direct_webp, source, limiter=limiter)

    return [
        Case("endpoint cold, c=1", 1, cold, direct_inline),
        Case(f"endpoint cold, c={concurrency}", concurrency, cold, direct_threaded),
        Case("endpoint cached, c=1", 1, cached, None, cached_ops),
        Case(f"endpoint cached, c={concurrency}", concurrency, cached, None, cached_ops),
    ]


async def measure(operation: Operation, concurrency: int, ops: int) -> Measurement:
    """Run ``ops`` operations, ``concurrency`` at a time."""
    remaining = ops

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await operation()

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(worker)
    return Measurement(ops, time.perf_counter() - started)


@dataclass(frozen=True)
class Comparison:
    """The median and the fastest run of a subject and its baseline."""

    subject: Measurement
    baseline: Measurement
    best_subject: Measurement
    best_baseline: Measurement


async def compare(case: Case, ops: int, repeat: int) -> Comparison:
    """Subject and baseline runs, alternating so both share the noise."""
    ops = case.ops or ops
    await case.subject()  # warm-up: first-use costs are not what we measure
    if case.baseline is not None:
        await case.baseline()
    subject, baseline = [], []
    for _ in range(repeat):
        subject.append(await measure(case.subject, case.concurrency, ops))
        if case.baseline is not None:
            baseline.append(await measure(case.baseline, case.concurrency, ops))
    baseline = baseline or subject  # no baseline: the ratio columns are not printed

    def median(runs: list[Measurement]) -> Measurement:
        return Measurement(ops, statistics.median(run.seconds for run in runs))

    def best(runs: list[Measurement]) -> Measurement:
        return min(runs, key=lambda run: run.seconds)

    if baseline is subject:
        m, b = median(subject), best(subject)
        return Comparison(m, m, b, b)
    return Comparison(median(subject), median(baseline), best(subject), best(baseline))


def print_row(name: str, result: Comparison) -> None:
    """One table row: medians of both sides in ms/op and ops/s, their ratio,
    and the ratio of the fastest runs (the least disturbed by other load)."""
    subject, baseline = result.subject, result.baseline
    if baseline is subject or result.best_baseline is result.best_subject:
        print(f"{name:28} {subject.ms_per_op:9.2f} {subject.ops_per_second:8.1f}"
              f" {'-':>10} {'-':>8} {'-':>7} {'-':>6}")
        return
    best = result.best_subject.ms_per_op / result.best_baseline.ms_per_op
    print(f"{name:28} {subject.ms_per_op:9.1f} {subject.ops_per_second:8.1f}"
          f" {baseline.ms_per_op:10.1f} {baseline.ops_per_second:8.1f}"
          f" {subject.ms_per_op / baseline.ms_per_op:7.2f} {best:6.2f}")


async def main(args: argparse.Namespace) -> None:
    """Build the source, run every case, print the table."""
    source = photo_like_jpeg(*SOURCE_SIZE)
    sample = direct_webp(source)
    print(f"machine: nproc {default_concurrency()} ({os.cpu_count()} CPUs), "
          f"transform limiter {default_limiter().total_tokens}")
    print(f"pyvips {pyvips.__version__}, libvips {pyvips.version(0)}.{pyvips.version(1)}."
          f"{pyvips.version(2)}, libvips threads per op {pyvips.concurrency_get()}")
    print(f"source: {SOURCE_SIZE[0]}x{SOURCE_SIZE[1]} JPEG q=85, {len(source):,} bytes -> "
          f"400x300 WebP q={QUALITY}, {len(sample):,} bytes; "
          f"median of {args.repeat} x {args.ops} ops")
    print()
    print(f"{'case':28} {'engine ms':>9} {'ops/s':>8} {'direct ms':>10} {'ops/s':>8}"
          f" {'ratio':>7} {'best':>6}")
    for case in transform_cases(source, args.concurrency):
        print_row(case.name, await compare(case, args.ops, args.repeat))
    if not args.endpoint:
        return
    with tempfile.TemporaryDirectory(prefix="img-bench-") as tmp:
        node = start_web_node(Path(tmp))
        try:
            cold_keys = 2 * (1 + args.repeat * args.ops)
            async with Endpoint.open(node.web, node.api_key, source, cold_keys) as endpoint:
                for case in endpoint_cases(endpoint, source, args.concurrency, args.cached_ops):
                    print_row(case.name, await compare(case, args.ops, args.repeat))
        finally:
            node.process.terminate()
            node.process.wait(30)


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=12, help="operations per run")
    parser.add_argument("--repeat", type=int, default=9, help="runs per figure (median)")
    parser.add_argument("--concurrency", type=int, default=8, help="the c>1 case")
    parser.add_argument("--cached-ops", type=int, default=2000,
                        help="operations per run of the cached endpoint cases")
    parser.add_argument("--no-endpoint", dest="endpoint", action="store_false",
                        help="only the engine against direct libvips")
    return parser.parse_args()


if __name__ == "__main__":
    trio.run(main, parse_args())
