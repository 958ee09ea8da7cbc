#!/usr/bin/env python3
"""The provider's own SDK reads the sandbox: Xero's official Python SDK (xero-python, pinned in
infra/requirements-sdk.txt) against the sandbox binary.

Issue 22 asks that the providers' official SDKs read every entity the sandbox serves, and issue 24
that they read back what was written there. A sandbox that our own client reads but Xero's SDK
cannot (an enum value Xero never sends, a date in the wrong form, a missing field) would only prove
that the sandbox and our client agree with each other. So this script:

  1. starts target/debug/sandbox on a free loopback port and seeds one Xero org with every entity
     the sandbox serves for Xero;
  2. connects as a real app does (authorize -> code -> token with PKCE, then GET /connections);
  3. points the SDK's AccountingApi at the sandbox and calls its getters for every entity (lists,
     paging, If-Modified-Since, one get-by-id each), checking that the SDK deserialises every answer
     and that ids, numbers, totals, amounts due, types, statuses, lines and allocations equal the
     sandbox's own records (/_sandbox/records);
  4. writes through the SDK's create and update methods (with Idempotency-Key), then reads back.

QuickBooks and Zoho Books are not checked: Intuit's official SDKs are Java/.NET/PHP packages from
registries this project's machines cannot reach, and Zoho publishes no official Books API SDK (see
docs/testing.md). Exit status 0 when every check passed, 1 when any failed (each failure printed),
2 when the run could not start.

Usage: .local/venv-sdk/bin/python infra/sdk_check.py [--sandbox PATH]
(scripts/test-all runs it in its second lane; infra/lib.sh's ensure_venv makes the venv.)
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import enum
import hashlib
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REDIRECT = "http://127.0.0.1:9/callback"
# The granular scopes of a Xero app created after 2 March 2026 (shared/src/connect/scopes.rs).
SCOPES = (
    "openid profile email offline_access accounting.invoices accounting.payments accounting.contacts "
    "accounting.settings accounting.manualjournals"
)
MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")


class CheckFailed(Exception):
    pass


# ------------------------------------------------------------------ the sandbox process and its API


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sandbox:
    def __init__(self, binary: Path):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        # Its log to a file, not a pipe: a pipe nobody reads would stall the sandbox once full.
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [str(binary), "--host", "127.0.0.1", "--port", str(self.port), "--no-seed"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise SystemExit(f"sandbox exited: {self.log.read().decode(errors='replace')[-2000:]}")
            try:
                urllib.request.urlopen(f"{self.base}/_sandbox/health", timeout=1).read()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise SystemExit("sandbox did not answer /_sandbox/health within 20 s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def call(self, method: str, path: str, body=None, headers=None, form=None, follow=True):
        data = None
        hdrs = dict(headers or {})
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        elif form is not None:
            data = urllib.parse.urlencode(form).encode()
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=hdrs)
        opener = urllib.request.build_opener() if follow else urllib.request.build_opener(NoRedirect)
        try:
            with opener.open(req, timeout=10) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def control(self, method: str, path: str, body=None):
        status, _, raw = self.call(method, f"/_sandbox/{path}", body)
        if status != 200:
            raise CheckFailed(f"control {method} {path}: {status} {raw[:300]!r}")
        return json.loads(raw) if raw else None

    def records(self, org: str, entity: str) -> dict[str, dict]:
        q = urllib.parse.urlencode({"provider": "xero", "org_id": org, "entity": entity})
        out = self.control("GET", f"records?{q}")
        return {r["id"].lower(): r["value"] for r in out["records"] if not r["deleted"]}


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


# ------------------------------------------------------------------ connect as a real app


def client_credentials(sb: Sandbox) -> tuple[str, str]:
    """The app's client id and secret: the dev-only pair infra/local-secrets.json gives the local
    stack, with the secret confirmed among those the sandbox itself reports."""
    creds = json.loads((ROOT / "infra/local-secrets.json").read_text())["ProviderCredentialsSecret"]["xero"]
    known = {s["value"] for s in sb.control("GET", "secrets")["secrets"] if s["kind"] == "client_secret"}
    if creds["client_secret"] not in known:
        raise CheckFailed("infra/local-secrets.json's Xero client secret is not the sandbox's")
    return creds["client_id"], creds["client_secret"]


def connect(sb: Sandbox, org: str, client_id: str, client_secret: str) -> dict:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state = secrets.token_urlsafe(16)
    q = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "scope": SCOPES,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            # The sandbox's consent screen: which of its orgs the user picks.
            "sandbox_tenants": org,
        }
    )
    status, headers, _ = sb.call("GET", f"/xero/identity/connect/authorize?{q}", follow=False)
    location = headers.get("Location") or headers.get("location") or ""
    if status != 302 or not location.startswith(REDIRECT):
        raise CheckFailed(f"authorize: {status} to {location!r}")
    params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
    if params.get("state") != state or "code" not in params:
        raise CheckFailed(f"authorize redirect without code or with another state: {params}")
    basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
    status, _, raw = sb.call(
        "POST",
        "/xero/identity/connect/token",
        form={"grant_type": "authorization_code", "code": params["code"], "redirect_uri": REDIRECT, "code_verifier": verifier},
        headers={"Authorization": f"Basic {basic}"},
    )
    if status != 200:
        raise CheckFailed(f"token: {status} {raw[:300]!r}")
    token = json.loads(raw)
    token.setdefault("expires_at", time.time() + token["expires_in"])
    return token


# ------------------------------------------------------------------ comparing the SDK's objects with the sandbox's records


def ms_date(raw: str) -> dt.datetime | None:
    m = MS_DATE.match(raw)
    if not m:
        return None
    t = dt.datetime.fromtimestamp(int(m.group(1)) / 1000, tz=dt.timezone.utc)
    if m.group(2):
        sign = 1 if m.group(2)[0] == "+" else -1
        t = t.astimezone(dt.timezone(sign * dt.timedelta(hours=int(m.group(2)[1:3]), minutes=int(m.group(2)[3:]))))
    return t


def ev(v):
    """An SDK enum's wire value (the SDK keeps some enums as Enum members, others as checked str)."""
    return v.value if isinstance(v, enum.Enum) else v


def norm(sdk_value, raw_value):
    """Both sides in one comparable form, led by the SDK's type (the SDK decides what a field is)."""
    if isinstance(sdk_value, enum.Enum):
        sdk_value = sdk_value.value
    if isinstance(sdk_value, bool) or isinstance(raw_value, bool):
        return sdk_value, raw_value
    if isinstance(sdk_value, (int, float, Decimal)) and isinstance(raw_value, (int, float)):
        cents = lambda v: int((Decimal(str(v)) * 100).to_integral_value())  # noqa: E731
        return cents(sdk_value), cents(raw_value)
    if isinstance(sdk_value, dt.datetime) and isinstance(raw_value, str):
        raw_t = ms_date(raw_value)
        if raw_t is None:
            raw_t = dt.datetime.fromisoformat(raw_value.replace("Z", "+00:00"))
        if raw_t.tzinfo is None:
            raw_t = raw_t.replace(tzinfo=dt.timezone.utc)
        return int(sdk_value.timestamp()), int(raw_t.timestamp())
    if isinstance(sdk_value, dt.date) and isinstance(raw_value, str):
        raw_t = ms_date(raw_value)
        return sdk_value.isoformat(), (raw_t.astimezone(dt.timezone.utc).date().isoformat() if raw_t else raw_value[:10])
    if isinstance(sdk_value, uuid.UUID):
        sdk_value = str(sdk_value)
    if isinstance(sdk_value, str) and isinstance(raw_value, str) and re.fullmatch(r"[0-9a-fA-F-]{36}", raw_value):
        return sdk_value.lower(), raw_value.lower()
    return sdk_value, raw_value


class Checker:
    def __init__(self, quiet: bool = False):
        self.failures: list[str] = []
        self.checked = 0
        self.quiet = quiet

    def fail(self, msg: str) -> None:
        self.failures.append(msg)
        if not self.quiet:
            print(f"FAIL {msg}")

    def equal(self, where: str, got, want) -> None:
        self.checked += 1
        if got != want:
            self.fail(f"{where}: SDK read {got!r}, sandbox has {want!r}")

    def compare(self, where: str, obj, raw: dict, spec) -> None:
        """`spec`: (sdk attribute, raw key[, sub-spec for each element of a list]). A field the
        sandbox's record lacks is not compared; one the record has must reach the SDK's object."""
        self.known_keys(where, obj, raw)
        for entry in spec:
            attr, key = entry[0], entry[1]
            if key not in raw:
                continue
            got = getattr(obj, attr, None)
            want = raw[key]
            if len(entry) == 3:
                got = got or []
                self.equal(f"{where}.{key} (count)", len(got), len(want))
                for i, (g, w) in enumerate(zip(got, want)):
                    self.compare(f"{where}.{key}[{i}]", g, w, entry[2])
            elif isinstance(want, dict):
                if got is None:
                    self.fail(f"{where}.{key}: the SDK lost it (sandbox has {want!r})")
                    continue
                self.compare(f"{where}.{key}", got, want, [(a, k) for a, k in SUB.items() if k in want])
            else:
                if got is None and want is not None:
                    self.fail(f"{where}.{key}: the SDK lost it (sandbox has {want!r})")
                    continue
                g, w = norm(got, want)
                self.equal(f"{where}.{key}", g, w)

    def known_keys(self, where: str, obj, raw: dict) -> None:
        """Every member the sandbox sends is one the SDK's model (generated from Xero's OpenAPI
        spec) knows: a member it does not know is one the sandbox made up, which the SDK drops
        without a word and a client could come to rely on."""
        known = getattr(type(obj), "attribute_map", None)
        if known is None:
            return
        self.checked += 1
        unknown = sorted(set(raw) - set(known.values()) - EXTRA_MEMBERS)
        if unknown:
            self.fail(f"{where}: members the SDK's {type(obj).__name__} does not have: {unknown}")
        for key, attr in ((k, a) for a, k in known.items() if k in raw):
            value, child = raw[key], getattr(obj, attr, None)
            if isinstance(value, dict) and child is not None:
                self.known_keys(f"{where}.{key}", child, value)
            elif isinstance(value, list) and isinstance(child, list):
                for i, (c, v) in enumerate(zip(child, value)):
                    if isinstance(v, dict):
                        self.known_keys(f"{where}.{key}[{i}]", c, v)


# Members Xero sends that the schemas of its OpenAPI spec (so the SDK's models) leave out: the
# spec's own example answers carry them (xero_accounting.yaml: Invoices, CreditNotes and
# PurchaseOrders examples show DateString, DueDateString, DeliveryDateString; PurchaseOrders HasErrors).
EXTRA_MEMBERS = {"DateString", "DueDateString", "DeliveryDateString", "HasErrors"}

# Nested references (Contact, Invoice, Account, Item ...): their ids and names.
SUB = {
    "contact_id": "ContactID",
    "invoice_id": "InvoiceID",
    "invoice_number": "InvoiceNumber",
    "account_id": "AccountID",
    "code": "Code",
    "item_id": "ItemID",
    "credit_note_id": "CreditNoteID",
    "type": "Type",
}

LINE = [
    ("line_item_id", "LineItemID"),
    ("description", "Description"),
    ("quantity", "Quantity"),
    ("unit_amount", "UnitAmount"),
    ("line_amount", "LineAmount"),
    ("account_code", "AccountCode"),
    ("account_id", "AccountID"),
    ("item_code", "ItemCode"),
    ("tax_type", "TaxType"),
    ("tax_amount", "TaxAmount"),
    ("tracking", "Tracking", [("tracking_category_id", "TrackingCategoryID"), ("name", "Name"), ("option", "Option")]),
]
ALLOCATION = [("allocation_id", "AllocationID"), ("amount", "Amount"), ("date", "Date"), ("invoice", "Invoice")]
DOCUMENT = [
    ("type", "Type"),
    ("status", "Status"),
    ("contact", "Contact"),
    ("date", "Date"),
    ("due_date", "DueDate"),
    ("currency_code", "CurrencyCode"),
    ("currency_rate", "CurrencyRate"),
    ("line_amount_types", "LineAmountTypes"),
    ("sub_total", "SubTotal"),
    ("total_tax", "TotalTax"),
    ("total", "Total"),
    ("reference", "Reference"),
    ("updated_date_utc", "UpdatedDateUTC"),
    ("line_items", "LineItems", LINE),
]

# Per entity: the sandbox's record kind, the SDK's list getter and its answer's attribute, the
# by-id getter, the id field, and what to compare.
ENTITIES = {
    "invoice": dict(
        getter="get_invoices",
        attr="invoices",
        by_id="get_invoice",
        id="InvoiceID",
        sdk_id="invoice_id",
        paged=True,
        spec=[("invoice_id", "InvoiceID"), ("invoice_number", "InvoiceNumber")]
        + DOCUMENT
        + [("amount_due", "AmountDue"), ("amount_paid", "AmountPaid"), ("amount_credited", "AmountCredited")],
    ),
    "contact": dict(
        getter="get_contacts",
        attr="contacts",
        by_id="get_contact",
        id="ContactID",
        sdk_id="contact_id",
        paged=True,
        spec=[
            ("contact_id", "ContactID"),
            ("name", "Name"),
            ("contact_status", "ContactStatus"),
            ("email_address", "EmailAddress"),
            ("first_name", "FirstName"),
            ("last_name", "LastName"),
            ("is_customer", "IsCustomer"),
            ("is_supplier", "IsSupplier"),
            ("tax_number", "TaxNumber"),
            ("updated_date_utc", "UpdatedDateUTC"),
            (
                "addresses",
                "Addresses",
                [("address_type", "AddressType"), ("address_line1", "AddressLine1"), ("city", "City"), ("postal_code", "PostalCode")],
            ),
            ("phones", "Phones", [("phone_type", "PhoneType"), ("phone_number", "PhoneNumber")]),
        ],
    ),
    "account": dict(
        getter="get_accounts",
        attr="accounts",
        by_id="get_account",
        id="AccountID",
        sdk_id="account_id",
        spec=[
            ("account_id", "AccountID"),
            ("code", "Code"),
            ("name", "Name"),
            ("type", "Type"),
            ("_class", "Class"),
            ("status", "Status"),
            ("tax_type", "TaxType"),
            ("bank_account_number", "BankAccountNumber"),
            ("updated_date_utc", "UpdatedDateUTC"),
        ],
    ),
    "payment": dict(
        getter="get_payments",
        attr="payments",
        by_id="get_payment",
        id="PaymentID",
        sdk_id="payment_id",
        paged=True,
        spec=[
            ("payment_id", "PaymentID"),
            ("payment_type", "PaymentType"),
            ("status", "Status"),
            ("amount", "Amount"),
            ("date", "Date"),
            ("reference", "Reference"),
            ("invoice", "Invoice"),
            ("credit_note", "CreditNote"),
            ("account", "Account"),
            ("updated_date_utc", "UpdatedDateUTC"),
        ],
    ),
    "credit_note": dict(
        getter="get_credit_notes",
        attr="credit_notes",
        by_id="get_credit_note",
        id="CreditNoteID",
        sdk_id="credit_note_id",
        paged=True,
        spec=[("credit_note_id", "CreditNoteID"), ("credit_note_number", "CreditNoteNumber")]
        + DOCUMENT
        + [("remaining_credit", "RemainingCredit"), ("allocations", "Allocations", ALLOCATION)],
    ),
    "purchase_order": dict(
        getter="get_purchase_orders",
        attr="purchase_orders",
        by_id="get_purchase_order",
        id="PurchaseOrderID",
        sdk_id="purchase_order_id",
        paged=True,
        spec=[("purchase_order_id", "PurchaseOrderID"), ("purchase_order_number", "PurchaseOrderNumber"), ("delivery_date", "DeliveryDate")]
        + DOCUMENT,
    ),
    "tax_rate": dict(
        getter="get_tax_rates",
        attr="tax_rates",
        by_id="get_tax_rate_by_tax_type",
        id="TaxType",
        sdk_id="tax_type",
        spec=[
            ("tax_type", "TaxType"),
            ("name", "Name"),
            ("status", "Status"),
            ("report_tax_type", "ReportTaxType"),
            ("display_tax_rate", "DisplayTaxRate"),
            ("effective_rate", "EffectiveRate"),
            ("tax_components", "TaxComponents", [("name", "Name"), ("rate", "Rate"), ("is_compound", "IsCompound")]),
        ],
    ),
    "item": dict(
        getter="get_items",
        attr="items",
        by_id="get_item",
        id="ItemID",
        sdk_id="item_id",
        spec=[
            ("item_id", "ItemID"),
            ("code", "Code"),
            ("name", "Name"),
            ("description", "Description"),
            ("is_sold", "IsSold"),
            ("is_purchased", "IsPurchased"),
            ("is_tracked_as_inventory", "IsTrackedAsInventory"),
            ("updated_date_utc", "UpdatedDateUTC"),
        ],
    ),
    "tracking_category": dict(
        getter="get_tracking_categories",
        attr="tracking_categories",
        by_id="get_tracking_category",
        id="TrackingCategoryID",
        sdk_id="tracking_category_id",
        spec=[
            ("tracking_category_id", "TrackingCategoryID"),
            ("name", "Name"),
            ("status", "Status"),
            ("options", "Options", [("tracking_option_id", "TrackingOptionID"), ("name", "Name"), ("status", "Status")]),
        ],
    ),
    "journal": dict(
        getter="get_manual_journals",
        attr="manual_journals",
        by_id="get_manual_journal",
        id="ManualJournalID",
        sdk_id="manual_journal_id",
        paged=True,
        spec=[
            ("manual_journal_id", "ManualJournalID"),
            ("narration", "Narration"),
            ("status", "Status"),
            ("date", "Date"),
            ("line_amount_types", "LineAmountTypes"),
            ("updated_date_utc", "UpdatedDateUTC"),
            (
                "journal_lines",
                "JournalLines",
                [
                    ("line_amount", "LineAmount"),
                    ("account_code", "AccountCode"),
                    ("account_id", "AccountID"),
                    ("description", "Description"),
                    ("tax_type", "TaxType"),
                    ("tax_amount", "TaxAmount"),
                ],
            ),
        ],
    ),
}

# The sandbox's record kinds whose records an SDK list holds (Xero keeps bills among Invoices,
# suppliers among Contacts, supplier credits among CreditNotes, payments made among Payments).
KINDS = {
    "invoice": ["invoice", "bill"],
    "contact": ["contact", "vendor"],
    "credit_note": ["credit_note", "vendor_credit"],
    "payment": ["payment", "bill_payment"],
}

# What to seed, in order (accounts first, so documents post to the chart's income, expense and bank
# accounts). Eight invoices and bills make three pages for the paging check's pages of 3.
SEED = [
    ("account", 5),
    ("contact", 3),
    ("vendor", 3),
    ("tax_rate", 2),
    ("item", 2),
    ("tracking_category", 2),
    ("invoice", 4),
    ("bill", 4),
    ("payment", 2),
    ("bill_payment", 2),
    ("credit_note", 3),
    ("vendor_credit", 3),
    ("journal", 3),
    ("purchase_order", 3),
]
OPTIONAL_SEED = [("bank_transaction", 3)]


# ------------------------------------------------------------------ the checks


def run(sb: Sandbox, tamper=None, quiet: bool = False) -> Checker:
    """All the checks against one fresh org. `tamper(sb, org)`, when given, changes the seeded
    records before the SDK reads them (infra/test_sdk_check.py proves the checks can fail)."""
    from xero_python.accounting import AccountingApi
    from xero_python.api_client import ApiClient, Configuration
    from xero_python.api_client.oauth2 import OAuth2Token
    from xero_python.identity import IdentityApi

    ck = Checker(quiet)
    # About a hundred calls in a second or two, over Xero's 60 a minute per tenant: the SDK then waits
    # out the sandbox's 429 Retry-After (it does, a minute), so the limit is raised for this run.
    # Formats are checked here; the limits are the sandbox's own tests' business.
    sb.control("POST", "config", {"provider": "xero", "rate_limit_per_minute": 10_000})
    org = str(uuid.uuid4())
    # Seeded an hour in the past (as tests/support's make_org does), so If-Modified-Since can tell
    # them from what the SDK writes later.
    sb.control("POST", "clock", {"advance_seconds": -3600})
    sb.control("POST", "seed", {"provider": "xero", "org_id": org, "name": "SDK Check Ltd"})
    for entity, count in SEED:
        sb.control("POST", "seed", {"provider": "xero", "org_id": org, "entity": entity, "count": count})
    # An archived tracking category (the generator makes active ones): listed only with includeArchived.
    category = dict(next(iter(sb.records(org, "tracking_category").values())))
    archived_id = str(uuid.uuid4())
    category.update(
        TrackingCategoryID=archived_id,
        Name="Archived region",
        Status="ARCHIVED",
        Options=[{**o, "TrackingCategoryID": archived_id, "TrackingOptionID": str(uuid.uuid4())} for o in category["Options"]],
    )
    sb.control("POST", "seed", {"provider": "xero", "org_id": org, "entity": "tracking_category", "records": [category]})
    optional = []
    for entity, count in OPTIONAL_SEED:
        status, _, _ = sb.call("POST", "/_sandbox/seed", {"provider": "xero", "org_id": org, "entity": entity, "count": count})
        if status == 200:
            optional.append(entity)
        elif not quiet:
            print(f"note: the sandbox serves no {entity} for Xero yet; not checked")
    if tamper:
        tamper(sb, org)
    sb.control("POST", "clock", {"advance_seconds": 3600})
    seeded_before = sandbox_now(sb) - dt.timedelta(minutes=30)

    client_id, client_secret = client_credentials(sb)
    token = connect(sb, org, client_id, client_secret)
    api_client = ApiClient(
        Configuration(oauth2_token=OAuth2Token(client_id=client_id, client_secret=client_secret)),
        pool_threads=1,
    )
    store = {"token": token}
    api_client.oauth2_token_getter(lambda: store["token"])
    api_client.oauth2_token_saver(lambda t: store.update(token=t))
    api_client.set_oauth2_token(token)

    identity = IdentityApi(api_client, base_url=f"{sb.base}/xero")
    conns = identity.get_connections()
    tenants = [str(c.tenant_id) for c in conns]
    ck.equal("connections: tenant ids", tenants, [org])
    if not conns:
        return ck
    tenant = tenants[0]
    ck.equal("connections: tenant type", ev(conns[0].tenant_type), "ORGANISATION")

    api = AccountingApi(api_client, base_url=f"{sb.base}/xero/api.xro/2.0")

    # Organisation: the org the sandbox made.
    orgs = api.get_organisations(tenant).organisations
    ck.equal("Organisation: count", len(orgs), 1)
    if orgs:
        ck.equal("Organisation.OrganisationID", str(orgs[0].organisation_id).lower(), org)
        ck.equal("Organisation.Name", orgs[0].name, "SDK Check Ltd")
        ck.equal("Organisation.BaseCurrency present", orgs[0].base_currency is not None, True)

    for name, e in ENTITIES.items():
        want = {}
        for kind in KINDS.get(name, [name]):
            want.update(sb.records(org, kind))
        if e["getter"] == "get_tracking_categories":
            want = {k: v for k, v in want.items() if v.get("Status") != "ARCHIVED"}
        try:
            got = read_all(api, tenant, e)
        except Exception as err:  # the SDK refusing an answer is this check's finding
            ck.fail(f"{e['getter']}: the SDK could not read the answer: {type(err).__name__}: {err}")
            continue
        got_ids = {str(getattr(o, e["sdk_id"])).lower(): o for o in got}
        ck.equal(f"{e['getter']}: ids", sorted(got_ids), sorted(want))
        for rid, raw in want.items():
            if rid in got_ids:
                ck.compare(f"{e['getter']}[{rid[:8]}]", got_ids[rid], raw, e["spec"])
        # One get-by-id each (a bill, a supplier, a supplier credit and a payment made where the
        # list holds both kinds).
        for kind in KINDS.get(name, [name]):
            recs = sb.records(org, kind)
            if not recs:
                ck.fail(f"the sandbox seeded no {kind}")
                continue
            rid, raw = next(iter(recs.items()))
            try:
                one = getattr(api, e["by_id"])(tenant, raw[e["id"]])
                objs = getattr(one, e["attr"])
            except Exception as err:
                ck.fail(f"{e['by_id']}({kind}): the SDK could not read the answer: {type(err).__name__}: {err}")
                continue
            ck.equal(f"{e['by_id']}({kind}): count", len(objs), 1)
            if objs:
                ck.compare(f"{e['by_id']}({kind})", objs[0], raw, e["spec"])

    # The rest in sections: an answer the SDK refuses fails its section, and the others still run.
    def paging_and_since() -> None:
        # Paging: the SDK's page and page_size reach every invoice once.
        all_invoices = set(sb.records(org, "invoice")) | set(sb.records(org, "bill"))
        paged, page = [], 1
        while True:
            ans = api.get_invoices(tenant, page=page, page_size=3)
            paged += [str(i.invoice_id).lower() for i in ans.invoices]
            if ans.pagination is not None:
                ck.equal(f"get_invoices page {page}: pagination.page", ans.pagination.page, page)
                ck.equal(f"get_invoices page {page}: pagination.item_count", ans.pagination.item_count, len(all_invoices))
            if len(ans.invoices) < 3 or page > 20:
                break
            page += 1
        ck.equal("get_invoices by pages of 3: ids", sorted(paged), sorted(all_invoices))
        ck.equal("get_invoices by pages of 3: each once", len(paged), len(set(paged)))

        # If-Modified-Since as the SDK sends it: nothing was changed since the seeding.
        for getter, attr in [
            ("get_invoices", "invoices"),
            ("get_contacts", "contacts"),
            ("get_credit_notes", "credit_notes"),
            ("get_manual_journals", "manual_journals"),
            ("get_payments", "payments"),
        ]:
            ans = getattr(api, getter)(tenant, if_modified_since=seeded_before)
            ck.equal(f"{getter}(if_modified_since=after seeding): count", len(getattr(ans, attr) or []), 0)

    def written_and_since() -> None:
        written = write_then_read(api, sb, tenant, org, ck)

        # If-Modified-Since again: exactly what the SDK wrote (or changed) since.
        ans = api.get_invoices(tenant, if_modified_since=seeded_before)
        ck.equal(
            "get_invoices(if_modified_since): the written ones",
            sorted(str(i.invoice_id).lower() for i in ans.invoices),
            sorted(written["invoices"]),
        )
        ans = api.get_manual_journals(tenant, if_modified_since=seeded_before)
        ck.equal(
            "get_manual_journals(if_modified_since): the written one",
            sorted(str(j.manual_journal_id).lower() for j in ans.manual_journals),
            sorted(written["journals"]),
        )

    def archived_categories() -> None:
        # Archived tracking categories come only with includeArchived (xero_accounting.yaml).
        want = sb.records(org, "tracking_category")
        got = api.get_tracking_categories(tenant, include_archived=True).tracking_categories or []
        ck.equal("get_tracking_categories(include_archived): ids", sorted(str(c.tracking_category_id).lower() for c in got), sorted(want))
        for c in got:
            ck.compare(
                f"get_tracking_categories(include_archived)[{str(c.tracking_category_id)[:8]}]",
                c,
                want[str(c.tracking_category_id).lower()],
                ENTITIES["tracking_category"]["spec"],
            )

    def filters() -> None:
        # The filters as the SDK sends them (where, IDs, Statuses, ContactIDs, summaryOnly, order).
        def ids(objs, attr):
            return sorted(str(getattr(o, attr)).lower() for o in objs or [])

        bills, invoices = sb.records(org, "bill"), sb.records(org, "invoice")
        got = api.get_invoices(tenant, where='Type=="ACCPAY"').invoices
        ck.equal('get_invoices(where=Type=="ACCPAY"): the bills', ids(got, "invoice_id"), sorted(bills))
        two = sorted(invoices)[:2]
        ck.equal("get_invoices(i_ds=two)", ids(api.get_invoices(tenant, i_ds=two).invoices, "invoice_id"), two)
        for status in sorted({v["Status"] for v in {**bills, **invoices}.values()}):
            want = sorted(k for k, v in {**bills, **invoices}.items() if v["Status"] == status)
            ck.equal(f"get_invoices(statuses=[{status}])", ids(api.get_invoices(tenant, statuses=[status]).invoices, "invoice_id"), want)
        contact = next(iter(invoices.values()))["Contact"]["ContactID"]
        want = sorted(k for k, v in {**bills, **invoices}.items() if v["Contact"]["ContactID"].lower() == contact.lower())
        ck.equal("get_invoices(contact_i_ds=[one])", ids(api.get_invoices(tenant, contact_i_ds=[contact]).invoices, "invoice_id"), want)
        summary = api.get_invoices(tenant, summary_only=True).invoices
        ck.equal("get_invoices(summary_only): no lines", [len(i.line_items or []) for i in summary], [0] * len(summary))
        ordered = api.get_invoices(tenant, order="UpdatedDateUTC DESC").invoices
        stamps = [i.updated_date_utc for i in ordered]
        ck.equal("get_invoices(order=UpdatedDateUTC DESC): newest first", stamps, sorted(stamps, reverse=True))
        got = api.get_contacts(tenant, where="IsSupplier==true").contacts
        want = sorted(k for k, v in {**sb.records(org, "contact"), **sb.records(org, "vendor")}.items() if v.get("IsSupplier"))
        ck.equal("get_contacts(where=IsSupplier==true): the suppliers", ids(got, "contact_id"), want)
        got = api.get_credit_notes(tenant, where='Type=="ACCPAYCREDIT"').credit_notes
        ck.equal('get_credit_notes(where=Type=="ACCPAYCREDIT")', ids(got, "credit_note_id"), sorted(sb.records(org, "vendor_credit")))
        got = api.get_payments(tenant, where='PaymentType=="ACCPAYPAYMENT"').payments
        ck.equal('get_payments(where=PaymentType=="ACCPAYPAYMENT")', ids(got, "payment_id"), sorted(sb.records(org, "bill_payment")))

    for section in [paging_and_since, filters, archived_categories, written_and_since]:
        try:
            section()
        except Exception as err:  # the SDK refusing an answer is this check's finding
            ck.fail(f"{section.__name__}: {type(err).__name__}: {err}")
    if "bank_transaction" in optional:
        check_bank_transactions(api, sb, tenant, org, ck)
    return ck


def sandbox_now(sb: Sandbox) -> dt.datetime:
    """The sandbox's clock (RFC 3339 with nanoseconds, which Python's parser does not take)."""
    now = re.sub(r"(\.\d{6})\d+", r"\1", sb.control("GET", "clock")["now"].replace("Z", "+00:00"))
    return dt.datetime.fromisoformat(now)


def read_all(api, tenant: str, e: dict) -> list:
    getter = getattr(api, e["getter"])
    if not e.get("paged"):
        return getattr(getter(tenant), e["attr"]) or []
    out, page = [], 1
    while page < 50:
        batch = getattr(getter(tenant, page=page), e["attr"]) or []
        out += batch
        if len(batch) < 100:
            return out
        page += 1
    raise CheckFailed(f"{e['getter']}: more than 50 pages")


def check_bank_transactions(api, sb: Sandbox, tenant: str, org: str, ck: Checker) -> None:
    want = sb.records(org, "bank_transaction")
    try:
        got = api.get_bank_transactions(tenant).bank_transactions or []
    except Exception as err:
        ck.fail(f"get_bank_transactions: the SDK could not read the answer: {type(err).__name__}: {err}")
        return
    by_id = {str(b.bank_transaction_id).lower(): b for b in got}
    ck.equal("get_bank_transactions: ids", sorted(by_id), sorted(want))
    spec = [("bank_transaction_id", "BankTransactionID"), ("bank_account", "BankAccount")] + DOCUMENT + [("is_reconciled", "IsReconciled")]
    for rid, raw in want.items():
        if rid in by_id:
            ck.compare(f"get_bank_transactions[{rid[:8]}]", by_id[rid], raw, spec)


def write_then_read(api, sb: Sandbox, tenant: str, org: str, ck: Checker) -> dict:
    """Creates through the SDK's own create methods (each with an Idempotency-Key), changes two
    records, and reads each back with the SDK."""
    from xero_python.accounting import (
        Account,
        Contact,
        CreditNote,
        CreditNotes,
        Contacts,
        Invoice,
        Invoices,
        LineItem,
        LineItemTracking,
        ManualJournal,
        ManualJournalLine,
        ManualJournals,
        Payment,
        Payments,
    )

    today = sandbox_now(sb).date()
    accounts = {a["Code"]: a for a in sb.records(org, "account").values()}
    written = {"invoices": [], "journals": []}

    def key() -> str:
        return str(uuid.uuid4())

    # A contact.
    k = key()
    made = api.create_contacts(
        tenant, Contacts(contacts=[Contact(name="SDK Written Ltd", email_address="sdk@example.com", is_supplier=False)]), idempotency_key=k
    ).contacts
    ck.equal("create_contacts: count", len(made), 1)
    cid = str(made[0].contact_id)
    again = api.create_contacts(
        tenant, Contacts(contacts=[Contact(name="SDK Written Ltd", email_address="sdk@example.com")]), idempotency_key=k
    ).contacts
    ck.equal("create_contacts retried with its Idempotency-Key: same contact", str(again[0].contact_id), cid)
    back = api.get_contact(tenant, cid).contacts[0]
    ck.equal("get_contact(written).name", back.name, "SDK Written Ltd")
    ck.equal("get_contact(written).email_address", back.email_address, "sdk@example.com")
    ck.compare("get_contact(written) vs sandbox", back, sb.records(org, "contact")[cid.lower()], ENTITIES["contact"]["spec"])

    # An invoice of two lines, the first tracked, then voided.
    category = next(c for c in sb.records(org, "tracking_category").values() if c.get("Status") == "ACTIVE")
    option = category["Options"][0]
    tracking = [
        LineItemTracking(
            tracking_category_id=category["TrackingCategoryID"],
            tracking_option_id=option["TrackingOptionID"],
            name=category["Name"],
            option=option["Name"],
        )
    ]
    lines = [
        LineItem(description="SDK consulting", quantity=2.0, unit_amount=150.25, account_code="200", tax_type="NONE", tracking=tracking),
        LineItem(description="SDK support", quantity=1.0, unit_amount=99.5, account_code="200", tax_type="NONE"),
    ]
    k = key()
    inv = Invoice(
        type="ACCREC",
        contact=Contact(contact_id=cid),
        line_items=lines,
        date=today,
        due_date=today + dt.timedelta(days=30),
        status="AUTHORISED",
        reference="SDK-1",
    )
    made = api.create_invoices(tenant, Invoices(invoices=[inv]), idempotency_key=k).invoices
    ck.equal("create_invoices: count", len(made), 1)
    iid = str(made[0].invoice_id)
    written["invoices"].append(iid.lower())
    again = api.create_invoices(tenant, Invoices(invoices=[inv]), idempotency_key=k).invoices
    ck.equal("create_invoices retried with its Idempotency-Key: same invoice", str(again[0].invoice_id), iid)
    back = api.get_invoice(tenant, iid).invoices[0]
    ck.equal("get_invoice(written).total", norm(back.total, 0)[0], 40000)
    ck.equal("get_invoice(written).amount_due", norm(back.amount_due, 0)[0], 40000)
    ck.equal("get_invoice(written).status", ev(back.status), "AUTHORISED")
    ck.equal("get_invoice(written).reference", back.reference, "SDK-1")
    ck.equal(
        "get_invoice(written).line_items",
        [(li.description, norm(li.line_amount, 0)[0]) for li in back.line_items],
        [("SDK consulting", 30050), ("SDK support", 9950)],
    )
    ck.equal(
        "get_invoice(written).line_items[0].tracking",
        [(str(t.tracking_category_id).lower(), t.name, t.option) for t in back.line_items[0].tracking or []],
        [(category["TrackingCategoryID"].lower(), category["Name"], option["Name"])],
    )
    ck.compare("get_invoice(written) vs sandbox", back, sb.records(org, "invoice")[iid.lower()], ENTITIES["invoice"]["spec"])
    api.update_invoice(tenant, iid, Invoices(invoices=[Invoice(status="VOIDED")]), idempotency_key=key())
    back = api.get_invoice(tenant, iid).invoices[0]
    ck.equal("get_invoice(voided).status", ev(back.status), "VOIDED")
    ck.compare("get_invoice(voided) vs sandbox", back, sb.records(org, "invoice")[iid.lower()], ENTITIES["invoice"]["spec"])

    # Credit notes of both kinds.
    vendor = next(v for v in sb.records(org, "vendor").values())
    for kind, contact, account in [("ACCRECCREDIT", cid, "200"), ("ACCPAYCREDIT", vendor["ContactID"], "453")]:
        note = CreditNote(
            type=kind,
            contact=Contact(contact_id=contact),
            date=today,
            status="AUTHORISED",
            line_items=[LineItem(description=f"SDK {kind}", quantity=1.0, unit_amount=42.5, account_code=account, tax_type="NONE")],
        )
        made = api.create_credit_notes(tenant, CreditNotes(credit_notes=[note]), idempotency_key=key()).credit_notes
        ck.equal(f"create_credit_notes({kind}): count", len(made), 1)
        nid = str(made[0].credit_note_id)
        back = api.get_credit_note(tenant, nid).credit_notes[0]
        ck.equal(f"get_credit_note({kind}).type", ev(back.type), kind)
        ck.equal(f"get_credit_note({kind}).total", norm(back.total, 0)[0], 4250)
        ck.equal(f"get_credit_note({kind}).remaining_credit", norm(back.remaining_credit, 0)[0], 4250)
        raw = {**sb.records(org, "credit_note"), **sb.records(org, "vendor_credit")}[nid.lower()]
        ck.compare(f"get_credit_note({kind}) vs sandbox", back, raw, ENTITIES["credit_note"]["spec"])

    # A manual journal, drafted then posted with a new narration.
    jl = [
        ManualJournalLine(line_amount=125.0, account_code="453", description="SDK accrual"),
        ManualJournalLine(line_amount=-125.0, account_code="090", description="SDK accrual"),
    ]
    made = api.create_manual_journals(
        tenant,
        ManualJournals(manual_journals=[ManualJournal(narration="SDK accrual", date=today, status="DRAFT", journal_lines=jl)]),
        idempotency_key=key(),
    ).manual_journals
    ck.equal("create_manual_journals: count", len(made), 1)
    jid = str(made[0].manual_journal_id)
    written["journals"].append(jid.lower())
    api.update_manual_journal(
        tenant,
        jid,
        ManualJournals(manual_journals=[ManualJournal(narration="SDK accrual (posted)", status="POSTED", date=today, journal_lines=jl)]),
        idempotency_key=key(),
    )
    back = api.get_manual_journal(tenant, jid).manual_journals[0]
    ck.equal("get_manual_journal(updated).narration", back.narration, "SDK accrual (posted)")
    ck.equal("get_manual_journal(updated).status", ev(back.status), "POSTED")
    ck.equal("get_manual_journal(updated).lines", [norm(x.line_amount, 0)[0] for x in back.journal_lines], [12500, -12500])
    ck.compare("get_manual_journal(updated) vs sandbox", back, sb.records(org, "journal")[jid.lower()], ENTITIES["journal"]["spec"])

    # A payment of part of an unpaid bill: the bill then owes less.
    bills = [b for b in sb.records(org, "bill").values() if b.get("Status") == "AUTHORISED" and b.get("AmountDue", 0) > 10]
    if not bills:
        ck.fail("the sandbox seeded no unpaid bill to pay")
        return written
    bill = bills[0]
    due_before = norm(0, bill["AmountDue"])[1]
    bank = accounts.get("090")
    pay = Payment(
        invoice=Invoice(invoice_id=bill["InvoiceID"]),
        account=Account(code=bank["Code"] if bank else "090"),
        amount=10.0,
        date=today,
        reference="SDK pay",
    )
    made = api.create_payments(tenant, Payments(payments=[pay]), idempotency_key=key()).payments
    ck.equal("create_payments(bill): count", len(made), 1)
    pid = str(made[0].payment_id)
    written["invoices"].append(bill["InvoiceID"].lower())
    back = api.get_payment(tenant, pid).payments[0]
    ck.equal("get_payment(written).payment_type", ev(back.payment_type), "ACCPAYPAYMENT")
    ck.equal("get_payment(written).amount", norm(back.amount, 0)[0], 1000)
    ck.equal("get_payment(written).invoice", str(back.invoice.invoice_id).lower(), bill["InvoiceID"].lower())
    ck.compare("get_payment(written) vs sandbox", back, sb.records(org, "bill_payment")[pid.lower()], ENTITIES["payment"]["spec"])
    paid = api.get_invoice(tenant, bill["InvoiceID"]).invoices[0]
    ck.equal("get_invoice(paid bill).amount_due", norm(paid.amount_due, 0)[0], due_before - 1000)
    return written


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sandbox", type=Path, default=Path(os.environ.get("SANDBOX_BIN", ROOT / "target/debug/sandbox")))
    args = ap.parse_args()
    if not args.sandbox.is_file():
        print(f"no sandbox binary at {args.sandbox} (cargo build -p sandbox)", file=sys.stderr)
        return 2
    try:
        import xero_python  # noqa: F401
    except ImportError:
        print("xero-python is not installed: run with the venv of infra/requirements-sdk.txt", file=sys.stderr)
        return 2
    started = time.monotonic()
    sb = Sandbox(args.sandbox)
    try:
        ck = run(sb)
    except CheckFailed as err:
        print(f"FAIL {err}")
        return 1
    except Exception as err:  # an SDK exception outside a per-entity check: report, fail
        import traceback

        traceback.print_exc()
        print(f"FAIL {type(err).__name__}: {err}")
        return 1
    finally:
        sb.stop()
    took = time.monotonic() - started
    if ck.failures:
        print(f"sdk_check: {len(ck.failures)} of {ck.checked} checks FAILED (xero-python against the sandbox, {took:.1f}s)")
        return 1
    print(f"sdk_check: {ck.checked} checks passed (xero-python against the sandbox, {took:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
