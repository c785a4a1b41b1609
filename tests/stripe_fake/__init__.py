"""A stateful Stripe fake for tests: localstripe, plus a small proxy in front.

localstripe (PyPI) keeps customers, plans, payment methods, subscriptions
and invoices like Stripe does.  The proxy, which is what the product's
``stripe`` client talks to, adds only what localstripe lacks:

- Checkout sessions (``POST /v1/checkout/sessions``) and billing-portal
  sessions (``POST /v1/billing_portal/sessions``), answered here and kept in
  :attr:`StripeFake.checkout_sessions` for the test to complete "as Stripe";
- today's parameter names for localstripe's older ones on subscriptions
  (``items[][price]`` for ``items[][plan]``, ``proration_behavior`` for
  ``prorate``), and a ``price`` next to each ``plan`` in answers.

Never the real Stripe: the client's API base points at the proxy.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx

from tests.harness import free_port

SECRET_KEY = "sk_test_cloudstorage"
WEBHOOK_SECRET = "whsec_cloudstorage_test"
LOCALSTRIPE = Path(sys.executable).parent / "localstripe"


def sign(payload: str, secret: str = WEBHOOK_SECRET, at: int | None = None) -> str:
    """A ``Stripe-Signature`` header for ``payload``, as Stripe computes it."""
    t = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def _with_prices(value: Any) -> Any:
    """``value`` with a ``price`` beside every ``plan`` object (today's field)."""
    if isinstance(value, list):
        return [_with_prices(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: _with_prices(v) for k, v in value.items()}
    plan = out.get("plan")
    if isinstance(plan, dict) and "price" not in out:
        out["price"] = {**plan, "object": "price", "unit_amount": plan.get("amount")}
    return out


def _legacy_names(path: str, body: bytes) -> bytes:
    """Today's subscription parameters in localstripe's older names."""
    if not path.startswith("/v1/subscriptions"):
        return body
    pairs = []
    for key, value in parse_qsl(body.decode(), keep_blank_values=True):
        if key.endswith("[price]"):
            key = key[: -len("[price]")] + "[plan]"
        elif key == "proration_behavior":
            key, value = "prorate", "true" if value == "create_prorations" else "false"
        pairs.append((key, value))
    return httpx.QueryParams(pairs).__str__().encode()


class StripeFake:
    """localstripe on a free port behind the proxy; ``api_base`` is the proxy."""

    def __init__(self, log_dir: Path) -> None:
        self._log = log_dir / "localstripe.log"
        self._upstream_port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._server: ThreadingHTTPServer | None = None
        self.checkout_sessions: list[dict[str, Any]] = []
        self.portal_sessions: list[dict[str, Any]] = []

    @property
    def api_base(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def upstream(self) -> str:
        return f"http://127.0.0.1:{self._upstream_port}"

    def start(self) -> None:
        """Start localstripe and the proxy; returns once localstripe answers."""
        with open(self._log, "ab") as log:
            self._process = subprocess.Popen(
                [str(LOCALSTRIPE), "--port", str(self._upstream_port), "--from-scratch"],
                stdout=log, stderr=subprocess.STDOUT)
        end = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.upstream}/v1/customers", timeout=1,
                             auth=(SECRET_KEY, "")).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self._process.poll() is not None or time.monotonic() > end:
                raise AssertionError(f"localstripe did not start:\n{self._log.read_text()}")
            time.sleep(0.1)
        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), self._handler())
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(10)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _forward(self, method: str) -> None:
                body = _legacy_names(self.path, self._body()) if method == "POST" else b""
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() in ("authorization", "content-type")}
                r = httpx.request(method, fake.upstream + self.path, content=body,
                                  headers=headers, timeout=30)
                self._answer(r.status_code, _with_prices(r.json()))

            def do_GET(self) -> None:
                self._forward("GET")

            def do_DELETE(self) -> None:
                self._forward("DELETE")

            def do_POST(self) -> None:
                path = self.path.split("?")[0]
                if path == "/v1/checkout/sessions":
                    form = dict(parse_qsl(self._body().decode()))
                    sid = "cs_test_" + secrets.token_hex(12)
                    session = {"id": sid, "object": "checkout.session", "status": "open",
                               "mode": form.get("mode"), "customer": form.get("customer"),
                               "client_reference_id": form.get("client_reference_id"),
                               "url": f"https://checkout.stripe.test/c/pay/{sid}", "form": form}
                    fake.checkout_sessions.append(session)
                    self._answer(200, session)
                elif path == "/v1/billing_portal/sessions":
                    form = dict(parse_qsl(self._body().decode()))
                    sid = "bps_" + secrets.token_hex(12)
                    session = {"id": sid, "object": "billing_portal.session",
                               "customer": form.get("customer"),
                               "return_url": form.get("return_url"),
                               "url": f"https://billing.stripe.test/p/session/{sid}"}
                    fake.portal_sessions.append(session)
                    self._answer(200, session)
                else:
                    self._forward("POST")

        return Handler
