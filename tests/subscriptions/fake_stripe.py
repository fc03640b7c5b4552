"""A small in-memory Stripe for tests: the endpoints our gateway uses, answering objects of Stripe's real shape
(API 2026-10-28: billing periods on subscription items, invoice.parent.subscription_details, flexible billing).

Two ways in: `FakeHTTPClient` (a stripe HTTPClient the gateway builds from settings, for unit tests) and
`FakeStripeServer` (a local HTTP server with hosted Checkout and Portal pages that sends signed webhooks to the
app, for the browser tier). Both share one `FakeStripe` backend.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import stripe

WEBHOOK_SECRET = "whsec_test_lumen"
API_VERSION = "2026-10-28.endive"
DAY = 86400
# Price ids the tests configure in STRIPE_PRICE_IDS: "<plan>:<interval|overage_meter>" -> "price_<plan>_<kind>".
PRICE_IDS = {
    f"{plan}:{kind}": f"price_{plan}_{kind}"
    for plan in ("starter", "pro", "enterprise")
    for kind in ("month", "quarter", "year", "overage_images", "overage_texts")
}


def sign(payload: str, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """A Stripe-Signature header for `payload`, computed the way Stripe does."""
    ts = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{ts}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def decode_form(body: str) -> dict:
    """Stripe's form encoding (a[b][0][c]=v) back to nested dicts and lists."""
    root: dict = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+", key)
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value

    def listify(node):
        if isinstance(node, dict):
            node = {k: listify(v) for k, v in node.items()}
            if node and all(k.isdigit() for k in node):
                return [node[k] for k in sorted(node, key=int)]
        return node

    return listify(root)


class StripeFailure(Exception):
    def __init__(self, status: int, message: str, code: str = "", type_: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.body = status, {"error": {"type": type_, "message": message, "code": code or None}}


class FakeStripe:
    """State and behaviour. `now` can be moved to test time-dependent handling."""

    def __init__(self, base_url: str = "https://fake-stripe.test") -> None:
        self.base_url = base_url.rstrip("/")
        self.lock = threading.RLock()
        self.counter = itertools.count(1)
        self.customers: dict[str, dict] = {}
        self.sessions: dict[str, dict] = {}
        self.subscriptions: dict[str, dict] = {}
        self.invoices: dict[str, dict] = {}
        self.meter_events: dict[str, dict] = {}
        self.meter_event_posts: list[dict] = []
        self.requests: list[dict] = []
        self.idempotent: dict[str, tuple[int, dict]] = {}
        self.fail_next: list[int] = []  # statuses to answer the next requests with
        self.prices: dict[str, dict] = {}

    # --- object builders -------------------------------------------------------------------------------------
    def _id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self.counter):06d}"

    def price(self, price_id: str) -> dict:
        metered = "overage" in price_id
        interval = "year" if "year" in price_id else "month"
        count = 3 if "quarter" in price_id else 1
        return self.prices.get(price_id) or {
            "id": price_id, "object": "price", "active": True, "currency": "gbp", "type": "recurring",
            "unit_amount": None if metered else 4900, "livemode": False, "product": f"prod_{price_id}",
            "recurring": {"interval": interval, "interval_count": count, "usage_type": "metered" if metered else
                          "licensed", "meter": "mtr_fake" if metered else None},
        }

    def subscription_create(self, *, customer: str, prices: list[str], trial_days: int = 0,
                            metadata: dict | None = None, status: str | None = None) -> dict:
        now = int(time.time())
        sub_id = self._id("sub")
        period_end = now + (trial_days * DAY if trial_days else 30 * DAY)
        sub = {
            "id": sub_id, "object": "subscription", "customer": customer, "created": now, "start_date": now,
            "status": status or ("trialing" if trial_days else "active"), "currency": "gbp", "livemode": False,
            "billing_mode": {"type": "flexible", "flexible": {"proration_discounts": "included"}, "updated_at": now},
            "cancel_at_period_end": False, "cancel_at": None, "canceled_at": None, "ended_at": None,
            "collection_method": "charge_automatically", "metadata": dict(metadata or {}),
            "trial_start": now if trial_days else None, "trial_end": now + trial_days * DAY if trial_days else None,
            "latest_invoice": None, "billing_cycle_anchor": period_end,
            "items": {"object": "list", "data": [], "has_more": False,
                      "url": f"/v1/subscription_items?subscription={sub_id}"},
        }
        for pid in prices:
            sub["items"]["data"].append(self._item(sub_id, pid, now, period_end))
        self.subscriptions[sub_id] = sub
        return sub

    def _item(self, sub_id: str, price_id: str, start: int, end: int) -> dict:
        price = self.price(price_id)
        return {"id": self._id("si"), "object": "subscription_item", "subscription": sub_id, "created": start,
                "price": price, "quantity": None if price["recurring"]["usage_type"] == "metered" else 1,
                "current_period_start": start, "current_period_end": end, "metadata": {}}

    def invoice_create(self, *, sub: dict, status: str = "paid", amount: int = 0) -> dict:
        now = int(time.time())
        inv_id = self._id("in")
        number = f"LUMEN-{len(self.invoices) + 1:04d}"
        inv = {
            "id": inv_id, "object": "invoice", "customer": sub["customer"], "status": status, "number": number,
            "currency": "gbp", "amount_due": amount, "amount_paid": amount if status == "paid" else 0,
            "amount_remaining": 0 if status == "paid" else amount, "created": now, "livemode": False,
            "period_start": now, "period_end": now, "billing_reason": "subscription_create",
            "hosted_invoice_url": f"{self.base_url}/invoices/{inv_id}",
            "invoice_pdf": f"{self.base_url}/invoices/{inv_id}/pdf",
            "parent": {"type": "subscription_details", "quote_details": None,
                       "subscription_details": {"metadata": dict(sub["metadata"]), "subscription": sub["id"]}},
            "lines": {"object": "list", "data": [], "has_more": False, "url": f"/v1/invoices/{inv_id}/lines"},
        }
        self.invoices[inv_id] = inv
        sub["latest_invoice"] = inv_id
        return inv

    def event(self, type_: str, obj: dict, *, previous: dict | None = None) -> dict:
        data: dict[str, Any] = {"object": json.loads(json.dumps(obj))}
        if previous is not None:
            data["previous_attributes"] = previous
        return {"id": self._id("evt"), "object": "event", "api_version": API_VERSION, "created": int(time.time()),
                "data": data, "livemode": False, "pending_webhooks": 1,
                "request": {"id": None, "idempotency_key": None}, "type": type_}

    # --- behaviour the hosted pages and tests trigger --------------------------------------------------------
    def checkout_complete(self, session_id: str) -> list[dict]:
        """The customer paid on the hosted page: subscription + first invoice; returns the events Stripe sends."""
        with self.lock:
            session = self.sessions[session_id]
            data = session["_subscription_data"]
            prices = [item["price"] for item in session["_line_items"]]
            sub = self.subscription_create(customer=session["customer"], prices=prices,
                                           trial_days=int(data.get("trial_period_days") or 0),
                                           metadata=data.get("metadata") or {})
            inv = self.invoice_create(sub=sub, amount=0 if sub["status"] == "trialing" else 4900)
            session.update(status="complete", subscription=sub["id"],
                           payment_status="no_payment_required" if sub["status"] == "trialing" else "paid")
            public = {k: v for k, v in session.items() if not k.startswith("_")}
            return [self.event("customer.subscription.created", sub), self.event("invoice.paid", inv),
                    self.event("checkout.session.completed", public)]

    # --- the API ------------------------------------------------------------------------------------------
    def handle(self, method: str, path: str, params: dict, headers: dict) -> tuple[int, dict]:
        with self.lock:
            self.requests.append({"method": method, "path": path, "params": params, "headers": headers})
            if self.fail_next:
                status = self.fail_next.pop(0)
                return status, {"error": {"type": "api_error", "message": "Simulated failure."}}
            key = headers.get("Idempotency-Key") if method == "POST" else None
            if key and key in self.idempotent:
                return self.idempotent[key]
            try:
                result = 200, self._route(method, path, params)
            except StripeFailure as exc:
                result = exc.status, exc.body
            if key and path == "/v1/customers":
                self.idempotent[key] = result
            return result

    def _get(self, store: dict, kind: str, obj_id: str) -> dict:
        if obj_id not in store:
            raise StripeFailure(404, f"No such {kind}: '{obj_id}'", "resource_missing")
        return store[obj_id]

    def _route(self, method: str, path: str, p: dict) -> dict:
        now = int(time.time())
        if (method, path) == ("POST", "/v1/customers"):
            cus = {"id": self._id("cus"), "object": "customer", "created": now, "email": p.get("email"),
                   "name": p.get("name"), "metadata": p.get("metadata", {}), "livemode": False}
            self.customers[cus["id"]] = cus
            return cus
        if (method, path) == ("POST", "/v1/checkout/sessions"):
            self._get(self.customers, "customer", p.get("customer", ""))
            if p.get("mode") != "subscription" or not p.get("line_items"):
                raise StripeFailure(400, "mode=subscription and line_items are required", "parameter_missing")
            sid = f"cs_test_{self._id('s')}"
            session = {"id": sid, "object": "checkout.session", "mode": "subscription", "status": "open",
                       "payment_status": "unpaid", "customer": p["customer"], "subscription": None,
                       "client_reference_id": p.get("client_reference_id"), "metadata": p.get("metadata", {}),
                       "success_url": p.get("success_url"), "cancel_url": p.get("cancel_url"), "created": now,
                       "expires_at": now + DAY, "livemode": False, "url": f"{self.base_url}/checkout/{sid}",
                       "_line_items": p["line_items"], "_subscription_data": p.get("subscription_data", {})}
            self.sessions[sid] = session
            return {k: v for k, v in session.items() if not k.startswith("_")}
        if m := re.fullmatch(r"/v1/checkout/sessions/([\w]+)", path):
            session = self._get(self.sessions, "checkout.session", m[1])
            return {k: v for k, v in session.items() if not k.startswith("_")}
        if (method, path) == ("POST", "/v1/billing_portal/sessions"):
            self._get(self.customers, "customer", p.get("customer", ""))
            bps = self._id("bps")
            return {"id": bps, "object": "billing_portal.session", "customer": p["customer"], "created": now,
                    "livemode": False, "return_url": p.get("return_url"), "url": f"{self.base_url}/portal/{bps}"
                    f"?return_url={p.get('return_url', '')}"}
        if m := re.fullmatch(r"/v1/subscriptions/(\w+)", path):
            sub = self._get(self.subscriptions, "subscription", m[1])
            if method == "POST":
                self._subscription_update(sub, p)
            return sub
        if m := re.fullmatch(r"/v1/invoices/(\w+)", path):
            return self._get(self.invoices, "invoice", m[1])
        if (method, path) == ("POST", "/v1/billing/meter_events"):
            ident = p.get("identifier") or self._id("mev")
            self.meter_event_posts.append(p)
            event = {"object": "billing.meter_event", "created": now, "event_name": p["event_name"],
                     "identifier": ident, "livemode": False, "payload": p["payload"],
                     "timestamp": int(p.get("timestamp") or now)}
            self.meter_events.setdefault(ident, event)  # Stripe de-duplicates on the identifier
            return event
        raise StripeFailure(404, f"Unrecognized request URL ({method}: {path}).")

    def _subscription_update(self, sub: dict, p: dict) -> None:
        if "cancel_at_period_end" in p:
            sub["cancel_at_period_end"] = p["cancel_at_period_end"] == "true"
        if "metadata" in p:
            sub["metadata"].update(p["metadata"])
        items = p.get("items")
        if items:
            data = sub["items"]["data"]
            start, end = data[0]["current_period_start"], data[0]["current_period_end"]
            for change in items:
                existing = next((i for i in data if i["id"] == change.get("id")), None)
                if change.get("deleted") == "true" and existing is not None:
                    data.remove(existing)
                elif existing is not None:
                    existing["price"] = self.price(change["price"])
                else:
                    data.append(self._item(sub["id"], change["price"], start, end))

    # --- test helpers -------------------------------------------------------------------------------------
    def set_status(self, sub_id: str, status: str) -> dict:
        sub = self.subscriptions[sub_id]
        sub["status"] = status
        if status == "canceled":
            sub["canceled_at"] = sub["ended_at"] = int(time.time())
        return sub


class FakeHTTPClient(stripe.HTTPClient):
    """Routes the SDK's requests to `FakeHTTPClient.backend` (set by a fixture) instead of the network."""

    name = "fake"
    backend: FakeStripe | None = None

    def request(self, method, url, headers, post_data=None, *, _usage=None):
        parts = urlsplit(url)
        params = decode_form(post_data or parts.query or "")
        status, body = self.backend.handle(method.upper(), parts.path, params, dict(headers or {}))
        return json.dumps(body), status, {"Request-Id": "req_fake"}

    def request_stream(self, *args, **kwargs):
        raise NotImplementedError

    def close(self):
        return None


class FakeStripeServer:
    """The fake over HTTP, with hosted Checkout/Portal pages. Paying posts signed webhooks to `webhook_url`."""

    def __init__(self, *, webhook_url: str = "", secret: str = WEBHOOK_SECRET) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.backend = FakeStripe(self.url)
        self.webhook_url, self.secret = webhook_url, secret
        self.deliveries: list[tuple[str, int]] = []
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeStripeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def deliver(self, event: dict) -> int:
        payload = json.dumps(event)
        req = urllib.request.Request(self.webhook_url, data=payload.encode(), method="POST", headers={
            "Content-Type": "application/json", "Stripe-Signature": sign(payload, self.secret)})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status = resp.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        self.deliveries.append((event["type"], status))
        return status

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                return None

            def _send(self, status: int, body: str, ctype: str = "application/json", location: str = ""):
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                if location:
                    self.send_header("Location", location)
                self.end_headers()
                self.wfile.write(data)

            def _api(self, method: str):
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else parts.query
                status, result = server.backend.handle(method, parts.path, decode_form(body), dict(self.headers))
                self._send(status, json.dumps(result))

            def do_GET(self):  # noqa: N802
                parts = urlsplit(self.path)
                if parts.path.startswith("/v1/"):
                    return self._api("GET")
                if m := re.fullmatch(r"/checkout/(\w+)", parts.path):
                    session = server.backend.sessions.get(m[1])
                    if session is None:
                        return self._send(404, "No such session", "text/plain")
                    return self._send(200, (
                        "<!doctype html><html><head><title>Fake Stripe Checkout</title></head><body>"
                        f"<h1>Fake Stripe Checkout</h1><p>Subscription for customer {session['customer']}</p>"
                        f"<form method='post' action='/checkout/{m[1]}/pay'><button type='submit'>Subscribe</button>"
                        f"</form><a href='{session['cancel_url']}'>Back</a></body></html>"), "text/html")
                if parts.path.startswith("/portal/"):
                    back = dict(parse_qsl(parts.query)).get("return_url", "/")
                    return self._send(200, f"<!doctype html><h1>Fake Customer Portal</h1><a href='{back}'>Return</a>",
                                      "text/html")
                return self._send(404, "Not found", "text/plain")

            def do_POST(self):  # noqa: N802
                parts = urlsplit(self.path)
                if parts.path.startswith("/v1/"):
                    return self._api("POST")
                if m := re.fullmatch(r"/checkout/(\w+)/pay", parts.path):
                    self.rfile.read(int(self.headers.get("Content-Length") or 0))
                    for event in server.backend.checkout_complete(m[1]):
                        server.deliver(event)
                    return self._send(303, "", "text/plain", location=server.backend.sessions[m[1]]["success_url"])
                return self._send(404, "Not found", "text/plain")

        return Handler
