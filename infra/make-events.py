#!/usr/bin/env python3
"""Write the sample events under events/ (one per function and case).

Usage: infra/make-events.py [--now] [--check]

The events are what API Gateway (HTTP API, payload format 2.0), EventBridge and SQS hand to the
functions, so they work with `sam local invoke -e` and `cargo lambda invoke --data-file`, and
infra/lambda-local.sh replays the HTTP ones as real requests. Webhook bodies are signed exactly as
the providers sign them, over the very bytes stored in the event's `body`, with the dev-only keys
of infra/local-secrets.json. Output is deterministic (fixed ids and times) so a re-run only changes
files when this script changes; `--now` stamps the connect requests with the current time instead
(connect, disconnect and records API requests are accepted for 5 minutes around their `ts`), `--check` fails if a file differs from what would be
written (used by infra/check-template.sh so the committed events and their signatures cannot drift).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
import urllib.parse
import uuid
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVENTS = os.path.join(ROOT, "events")
with open(os.path.join(ROOT, "infra", "local-secrets.json"), encoding="utf-8") as _f:
    SECRETS = json.load(_f)

ACCOUNT = "123456789012"
REGION = "us-east-1"
FIXED_TIME = datetime(2026, 11, 24, 18, 0, 0, tzinfo=timezone.utc)
# Seeded in the provider sandbox (infra/sandbox/src/state.rs), so replayed events point at real data.
QBO_REALM = "9341452000000001"
XERO_TENANT = "4a3f5f2e-6c1b-4b8e-9f0a-1d2c3b4a5e61"
ZOHO_ORG = "700000001"
# The Zoho webhook sample names an organisation nothing connects: tests that connect the sandbox's
# seeded orgs register their own per-org secrets, and the sample's secret must not collide with them.
ZOHO_WEBHOOK_ORG = "700000099"
TENANT = "tenant-local-1"
USER = "user-local-1"


def stable_uuid(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"ttya-events/{name}"))


def compact(doc) -> str:
    """The exact body bytes a provider would send: compact JSON, key order as written."""
    return json.dumps(doc, separators=(",", ":"))


def hmac_b64(key: str, body: str) -> str:
    return base64.b64encode(hmac.new(key.encode(), body.encode(), hashlib.sha256).digest()).decode()


# ------------------------------------------------------------------------------------------------
# Event envelopes
# ------------------------------------------------------------------------------------------------


def http_event(method: str, route: str, path: str, *, query: list[tuple[str, str]] | None = None,
               headers: dict[str, str] | None = None, body: str | None = None, name: str, when: datetime,
               cookies: list[str] | None = None) -> dict:
    """API Gateway HTTP API payload format 2.0."""
    query = query or []
    raw_query = urllib.parse.urlencode(query)
    all_headers = {
        "host": "integrations.local.example",
        "user-agent": "ttya-sample-event",
        "x-forwarded-proto": "https",
        "x-correlation-id": stable_uuid(f"{name}/correlation"),
    }
    if body is not None:
        all_headers["content-length"] = str(len(body.encode()))
    all_headers.update(headers or {})
    path_params = {}
    for route_part, path_part in zip(route.split("/"), path.split("/")):
        if route_part.startswith("{") and route_part.endswith("}"):
            path_params[route_part[1:-1]] = path_part
    event = {
        "version": "2.0",
        "routeKey": f"{method} {route}",
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": all_headers,
    }
    if cookies:
        # HTTP API v2 hands the browser's cookies over in their own array, not as a header.
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = {k: v for k, v in query}
    event["pathParameters"] = path_params
    event["requestContext"] = {
        "accountId": ACCOUNT,
        "apiId": "local",
        "domainName": all_headers["host"],
        "domainPrefix": all_headers["host"].split(".")[0],
        "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.10", "userAgent": all_headers["user-agent"]},
        "requestId": stable_uuid(f"{name}/request"),
        "routeKey": f"{method} {route}",
        "stage": "$default",
        "time": when.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "timeEpoch": int(when.timestamp() * 1000),
    }
    if body is not None:
        event["body"] = body
    event["isBase64Encoded"] = False
    return event


def sqs_event(name: str, bodies: list[str], queue: str) -> dict:
    records = []
    for i, body in enumerate(bodies):
        sent = int(FIXED_TIME.timestamp() * 1000) + i
        records.append({
            "messageId": stable_uuid(f"{name}/message/{i}"),
            "receiptHandle": f"AQEB{hashlib.sha256(f'{name}/{i}'.encode()).hexdigest()}",
            "body": body,
            "attributes": {
                "ApproximateReceiveCount": "1",
                "SentTimestamp": str(sent),
                "SenderId": "AIDAEXAMPLEWEBHOOKRECEIVER",
                "ApproximateFirstReceiveTimestamp": str(sent + 5),
            },
            "messageAttributes": {},
            "md5OfBody": hashlib.md5(body.encode()).hexdigest(),  # noqa: S324 - SQS's own checksum
            "eventSource": "aws:sqs",
            "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:ttya-local-{queue}",
            "awsRegion": REGION,
        })
    return {"Records": records}


# ------------------------------------------------------------------------------------------------
# oauth-callback
# ------------------------------------------------------------------------------------------------


def rfc3986(s: str) -> str:
    return urllib.parse.quote(s, safe="-._~")


def connect_signature(key: str, method: str, path: str, params: list[tuple[str, str]]) -> str:
    """The main app's signature (shared/src/connect/app_auth.rs): lower-case hex of
    HMAC-SHA256(connect key, METHOD "\n" PATH "\n" QUERY), QUERY being every parameter but `sig`,
    RFC 3986-encoded, sorted, joined as name=value with '&'."""
    query = "&".join(f"{k}={v}" for k, v in sorted((rfc3986(k), rfc3986(v)) for k, v in params if k != "sig"))
    return hmac.new(key.encode(), f"{method}\n{path}\n{query}".encode(), hashlib.sha256).hexdigest()


def connect_event(provider: str, when: datetime) -> dict:
    # Signed URLs are accepted for 5 minutes around `ts`: with the fixed time these events show the
    # shape; `--now` makes them pass a real freshness check for a few minutes.
    kid = "local"
    key = SECRETS["AppSigningSecret"]["connect_keys"][kid]
    path = f"/connect/{provider}"
    query = [
        ("tenant", TENANT),
        ("user", USER),
        ("return_url", "http://127.0.0.1:3000/settings/integrations"),
        ("ts", str(int(when.timestamp()))),
        ("kid", kid),
        # Single use: the app sends a fresh random jti with every connect URL.
        ("jti", stable_uuid(f"jti/{provider}/{int(when.timestamp())}")),
    ]
    query.append(("sig", connect_signature(key, "GET", path, query)))
    return http_event("GET", "/connect/{provider}", path, query=query, name=f"connect-{provider}", when=when)


def disconnect_event(provider: str, when: datetime) -> dict:
    # The grant id the app got in connection.created; POST with the signed query and an empty body.
    kid = "local"
    key = SECRETS["AppSigningSecret"]["connect_keys"][kid]
    path = f"/disconnect/{provider}"
    query = [
        ("tenant", TENANT),
        ("user", USER),
        ("grant_id", stable_uuid(f"grant/{provider}")),
        ("ts", str(int(when.timestamp()))),
        ("kid", kid),
    ]
    query.append(("sig", connect_signature(key, "POST", path, query)))
    return http_event("POST", "/disconnect/{provider}", path, query=query, name=f"disconnect-{provider}", when=when)


def callback_quickbooks() -> dict:
    # What Intuit appends to the redirect URI after consent; the state is whatever the connect
    # step minted (a real one cannot be pre-computed: it is stored once and used once).
    # The browser also sends back the cookie /connect set, which binds the state to it
    # (ttya_oauth_<first 8 bytes of the state id, hex>=<hash of the state>).
    query = [("code", "AB11732564000sandboxcode"), ("state", "state-from-connect"), ("realmId", QBO_REALM)]
    return http_event("GET", "/oauth/{provider}/callback", "/oauth/quickbooks/callback", query=query,
                      name="callback-quickbooks", when=FIXED_TIME,
                      cookies=["ttya_oauth_0123456789abcdef=binding-cookie-from-connect"])


# ------------------------------------------------------------------------------------------------
# records-api
# ------------------------------------------------------------------------------------------------


def records_event(name: str, route: str, path: str, params: list[tuple[str, str]], when: datetime, sign: bool = True) -> dict:
    """A records API request signed like connect (docs/records-api.md): the signed path is the
    request path from /v1/ on, as sent."""
    kid = "local"
    key = SECRETS["AppSigningSecret"]["connect_keys"][kid]
    query = [("tenant", TENANT), ("user", USER), *params, ("ts", str(int(when.timestamp()))), ("kid", kid)]
    if sign:
        query.append(("sig", connect_signature(key, "GET", path, query)))
    return http_event("GET", route, path, query=query, name=name, when=when)


LIST_ROUTE = "/v1/tenants/{tenant}/connections/{provider}/{org}/records/{entity}"


def records_connections(when: datetime) -> dict:
    return records_event("records-connections", "/v1/tenants/{tenant}/connections", f"/v1/tenants/{TENANT}/connections", [], when)


def records_list(when: datetime) -> dict:
    # Xero invoices due in the first week of December, 50 a page.
    params = [("due_after", "2026-11-30"), ("due_before", "2026-12-08"), ("limit", "50")]
    return records_event("records-list", LIST_ROUTE, f"/v1/tenants/{TENANT}/connections/xero/{XERO_TENANT}/records/invoice", params, when)


def records_unknown_entity() -> dict:
    # Refused before the signature is even looked at: 400, 4000.
    return records_event("records-unknown-entity", LIST_ROUTE, f"/v1/tenants/{TENANT}/connections/xero/{XERO_TENANT}/records/invoices",
                         [], FIXED_TIME, sign=False)


# ------------------------------------------------------------------------------------------------
# webhook-receiver
# ------------------------------------------------------------------------------------------------


def webhook_event(provider: str, name: str, body: str, headers: dict[str, str], query=None) -> dict:
    headers = {"content-type": "application/json; charset=utf-8", **headers}
    return http_event("POST", "/webhooks/{provider}", f"/webhooks/{provider}", query=query, headers=headers, body=body,
                      name=name, when=FIXED_TIME)


def quickbooks_legacy() -> dict:
    body = compact({"eventNotifications": [{"realmId": QBO_REALM, "dataChangeEvent": {"entities": [
        {"name": "Invoice", "id": "145", "operation": "Update", "lastUpdated": "2026-11-24T17:59:41.000Z"},
        {"name": "Customer", "id": "58", "operation": "Create", "lastUpdated": "2026-11-24T17:59:12.000Z"},
    ]}}]})
    key = SECRETS["WebhookKeysSecret"]["quickbooks"]["current"]
    return webhook_event("quickbooks", "webhook-quickbooks", body, {"intuit-signature": hmac_b64(key, body)})


def quickbooks_cloudevents() -> dict:
    def ce(i: int, entity: str, op: str, entity_id: str) -> dict:
        return {
            "specversion": "1.0",
            "id": stable_uuid(f"qbo-cloudevent/{i}"),
            "source": "intuit.quickbooks",
            "type": f"qbo.{entity}.{op}.v1",
            "datacontenttype": "application/json",
            "time": "2026-11-24T17:59:41.000Z",
            "intuitentityid": entity_id,
            "intuitaccountid": QBO_REALM,
            "data": {},
        }

    body = compact([ce(0, "invoice", "updated", "145"), ce(1, "payment", "created", "77")])
    key = SECRETS["WebhookKeysSecret"]["quickbooks"]["current"]
    return webhook_event("quickbooks", "webhook-quickbooks-cloudevents", body, {"intuit-signature": hmac_b64(key, body)})


def xero_event() -> dict:
    invoice_id = "7e2d5a4b-3c1f-4e6a-9b8d-2f1e0c9a8b71"
    body = compact({
        "events": [{
            "resourceUrl": f"https://api.xero.com/api.xro/2.0/Invoices/{invoice_id}",
            "resourceId": invoice_id,
            "eventDateUtc": "2026-11-24T17:59:41.902",
            "eventType": "UPDATE",
            "eventCategory": "INVOICE",
            "tenantId": XERO_TENANT,
            "tenantType": "ORGANISATION",
        }],
        "firstEventSequence": 42,
        "lastEventSequence": 42,
        "entropy": "KJHGFDSAQWERTYUIOPLM",
    })
    key = SECRETS["WebhookKeysSecret"]["xero"]["current"]
    return webhook_event("xero", "webhook-xero", body, {"x-xero-signature": hmac_b64(key, body)})


def xero_intent_to_receive() -> dict:
    # Xero's validation request: no events, correctly signed; the receiver must answer 200.
    body = compact({"events": [], "firstEventSequence": 0, "lastEventSequence": 0, "entropy": "ZXCVBNMASDFGHJKLQWER"})
    key = SECRETS["WebhookKeysSecret"]["xero"]["current"]
    return webhook_event("xero", "webhook-xero-itr", body, {"x-xero-signature": hmac_b64(key, body)})


def zoho_event() -> dict:
    # Zoho Books has no signature scheme we can rely on (providers.md 3.2): the webhook we register
    # per organisation carries a random secret in the x-ttya-webhook-secret header and the org in
    # the query, and its body is our raw-JSON template (one webhook per entity and event, so the
    # event type and an event id are in it). The org is connected nowhere, so it is refused exactly
    # like a wrong secret (401): the receiver does not tell strangers which orgs are customers.
    body = compact({
        "organization_id": ZOHO_WEBHOOK_ORG,
        "entity": "invoice",
        "event_type": "updated",
        "entity_id": "460000000012345",
        "last_modified_time": "2026-11-24T17:59:41+0000",
        "event_id": f"{ZOHO_WEBHOOK_ORG}:invoice:460000000012345:updated:2026-11-24T17:59:41+0000",
    })
    return webhook_event("zoho", "webhook-zoho", body, {"x-ttya-webhook-secret": "localZohoWebhookSecret700000099"},
                         query=[("organization_id", ZOHO_WEBHOOK_ORG)])


# ------------------------------------------------------------------------------------------------
# token-refresher and sync-worker
# ------------------------------------------------------------------------------------------------


def schedule_event() -> dict:
    return {
        "version": "0",
        "id": stable_uuid("schedule"),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": FIXED_TIME.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/ttya-local-TokenRefresherFunctionSchedule"],
        "detail": {},
    }


def force_window_event() -> dict:
    """An operator's run: refresh everything due within two hours now (the local walk-through uses it)."""
    doc = schedule_event()
    doc.update({"id": stable_uuid("force-window"), "detail-type": "Operator Refresh", "source": "ttya.ops", "resources": []})
    doc["detail"] = {"window_seconds": 7200}
    return doc


def job(i: int, provider: str, org_id: str, operation: str, entity: str, priority: str, source: str, **extra) -> str:
    """A sync job as shared/src/jobs.rs (SyncJob, version 1) writes it."""
    doc = {
        "version": 1,
        "job_id": stable_uuid(f"job/{i}/id"),
        "tenant_id": TENANT,
        "provider": provider,
        "org_id": org_id,
        "operation": operation,
        "entity": entity,
        **extra,
        "priority": priority,
        "idempotency_key": stable_uuid(f"job/{i}"),
        "correlation_id": stable_uuid(f"job/{i}/correlation"),
        "requested_at": "2026-11-24T17:59:45Z",
        "source": source,
    }
    return compact(doc)


def sync_batch() -> dict:
    return sqs_event("sync-batch", [
        job(0, "quickbooks", QBO_REALM, "webhook", "invoice", "high", "webhook", entity_id="145", change="updated"),
        job(1, "xero", XERO_TENANT, "pull", "contact", "high", "app"),
        job(2, "zoho", ZOHO_ORG, "pull", "account", "high", "schedule"),
    ], "sync-high")


def sync_push() -> dict:
    # Push jobs carry one write request (schemas/write-request.v1.json): the record in the common
    # model, or the provider's own JSON under `raw` (the escape hatch).
    return sqs_event("sync-push", [
        job(5, "xero", XERO_TENANT, "push", "invoice", "normal", "app",
            payload={"action": "create", "requested_by": USER,
                     "record": {"contact": {"id": "7f5bd2a4-0c47-4a58-bb13-4bd0a0c1e0a1"}, "issue_date": "2026-11-24",
                                "due_date": "2026-12-24", "currency": "NZD", "status": "draft",
                                "lines": [{"description": "Consulting", "quantity": "1", "unit_price": "120.50",
                                           "account": {"code": "200"}}]}}),
        job(6, "zoho", ZOHO_ORG, "push", "contact", "normal", "app",
            payload={"action": "create", "requested_by": USER, "raw": {"contact_name": "Local Demo Ltd"}}),
    ], "sync-normal")


def request_job(i: int, provider: str, org_id: str, operation: str, **extra) -> str:
    """A report or passthrough job: no entity; its request beside the job (`report` / `passthrough`)."""
    doc = json.loads(job(i, provider, org_id, operation, "invoice", "high", "app"))
    del doc["entity"]
    doc.update(extra)
    return compact(doc)


def sync_report() -> dict:
    # Report and passthrough jobs from the main app (schemas/sync-job.v1.json, examples in schemas/examples).
    return sqs_event("sync-report", [
        request_job(7, "quickbooks", QBO_REALM, "report",
                    report={"kind": "profit_and_loss", "from": "2026-07-01", "to": "2026-09-30", "basis": "accrual"}),
        request_job(8, "zoho", ZOHO_ORG, "report", report={"kind": "aged_receivables", "as_of": "2026-11-24"}),
        request_job(9, "xero", XERO_TENANT, "passthrough", passthrough={"method": "GET", "path": "Invoices", "query": {"page": "1"}}),
    ], "sync-high")


def sync_poison() -> dict:
    # Each message is wrong in a different way; none may be retried forever or crash the batch.
    return sqs_event("sync-poison", [
        "{not json",
        compact({"version": 99, "tenant_id": TENANT, "provider": "xero", "operation": "pull", "entity": "invoice"}),
        job(3, "freshbooks", "1", "pull", "invoice", "low", "app"),
        job(4, "quickbooks", QBO_REALM, "pull", "ledger", "low", "app"),
    ], "sync-low")

def sync_schedule_event() -> dict:
    """EventBridge Scheduler's every-minute run of the sync scheduler (every shard of sync_due)."""
    doc = schedule_event()
    doc.update({"id": stable_uuid("sync-schedule"),
                "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/ttya-local-SyncSchedulerFunctionSchedule"]})
    return doc


def sync_schedule_shards_event() -> dict:
    """A run over some shards of sync_due only (a second schedule group, or an operator)."""
    doc = sync_schedule_event()
    doc.update({"id": stable_uuid("sync-schedule-shards")})
    doc["detail"] = {"shards": [0, 1, 2, 3, 4, 5, 6, 7]}
    return doc


def all_events(now: datetime) -> dict[str, dict]:
    return {
        "oauth-callback/connect-quickbooks.json": connect_event("quickbooks", now),
        "oauth-callback/connect-xero.json": connect_event("xero", now),
        "oauth-callback/connect-zoho.json": connect_event("zoho", now),
        "oauth-callback/callback-quickbooks.json": callback_quickbooks(),
        "oauth-callback/disconnect-quickbooks.json": disconnect_event("quickbooks", now),
        "webhook-receiver/quickbooks.json": quickbooks_legacy(),
        "webhook-receiver/quickbooks-cloudevents.json": quickbooks_cloudevents(),
        "webhook-receiver/xero.json": xero_event(),
        "webhook-receiver/xero-intent-to-receive.json": xero_intent_to_receive(),
        "webhook-receiver/zoho.json": zoho_event(),
        "token-refresher/schedule.json": schedule_event(),
        "token-refresher/force-window.json": force_window_event(),
        "sync-worker/batch.json": sync_batch(),
        "sync-worker/poison.json": sync_poison(),
        "sync-worker/push.json": sync_push(),
        "sync-scheduler/schedule.json": sync_schedule_event(),
        "sync-scheduler/shards.json": sync_schedule_shards_event(),
        "sync-worker/report.json": sync_report(),
        "records-api/connections.json": records_connections(now),
        "records-api/list-invoices.json": records_list(now),
        "records-api/unknown-entity.json": records_unknown_entity(),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--now", action="store_true", help="stamp connect requests with the current time")
    ap.add_argument("--check", action="store_true", help="fail if any committed event differs")
    args = ap.parse_args()
    if args.now and args.check:
        ap.error("--now and --check exclude each other")
    when = datetime.now(timezone.utc).replace(microsecond=0) if args.now else FIXED_TIME
    stale = []
    for rel, event in all_events(when).items():
        path = os.path.join(EVENTS, rel)
        text = json.dumps(event, indent=2) + "\n"
        current = None
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                current = f.read()
        if current == text:
            continue
        if args.check:
            stale.append(rel)
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote events/{rel}")
    if stale:
        print("events out of date (run infra/make-events.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
