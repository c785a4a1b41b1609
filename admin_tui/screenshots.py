"""Write SVG screenshots of the console's Overview and Layout screens (README).

    .venv/bin/python -m admin_tui.screenshots [--url URL] [--token T] [--out docs]

Run it against a live cluster (``make run``); it reads the same token as
``cloudstorage admin``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from admin_tui.app import AdminApp, resolve_target

SIZE = (150, 40)


async def _wait_loaded(app: AdminApp, pilot: object, deadline: float = 20) -> None:
    end = time.monotonic() + deadline
    screen = app.screen
    while getattr(screen, "loads", 0) < 2:  # two polls: rates and previews settled
        if time.monotonic() > end:
            raise SystemExit(f"{app.client.url}: no data within {deadline:.0f} s")
        await pilot.pause(0.2)  # type: ignore[attr-defined]


async def capture(url: str, token: str, out: Path) -> list[Path]:
    """Save ``admin-overview.svg`` and ``admin-layout.svg`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    app = AdminApp(url, token)
    async with app.run_test(size=SIZE) as pilot:
        for name in ("overview", "layout"):
            app.show(name)
            await pilot.pause(0.1)
            await _wait_loaded(app, pilot)
            await pilot.pause(0.3)
            path = out / f"admin-{name}.svg"
            app.save_screenshot(filename=path.name, path=str(out))
            written.append(path)
    return written


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url")
    parser.add_argument("--token")
    parser.add_argument("--token-file")
    parser.add_argument("--config")
    parser.add_argument("--out", default="docs")
    args = parser.parse_args()
    url, token = resolve_target(args)
    import anyio

    for path in anyio.run(capture, url, token, Path(args.out)):
        print(path)


if __name__ == "__main__":
    main()
