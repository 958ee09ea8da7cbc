"""The end-to-end walk-through scripts/run-local runs against the deployed local stack (MiniStack).

It only does what a user, the main app or a provider does, and then waits for the system to do the
rest, printing what it did:

1. creates a demo tenant (enterprise plan, pulls every SYNC_MINUTES minutes) and its owner with the
   ops CLI (ttya-ops; TTYA_OPS names the binary, else `cargo run -p ttya-ops`);
2. connects QuickBooks, Xero and Zoho Books the way a user would, through the HTTP API's routes: a
   connect URL signed as the main app signs it (docs/connect-auth.md) -> oauth-callback -> the
   sandbox's consent page -> back to oauth-callback, which stores a sealed grant and puts each
   connection's initial full sync on the low queue;
3. waits for the initial sync: the low queue's event source mapping feeds sync-worker;
4. has the provider sandbox send a signed QuickBooks and a signed Xero webhook to the HTTP API's
   /webhooks route, and waits for the record each one announced to be stored;
5. waits for the schedules: token-refresher refreshing every grant (EventBridge Scheduler, every
   5 minutes, or REFRESH_SCHEDULE) and sync-scheduler enqueueing incremental pulls (every minute), which sync-worker runs;
6. prints records per entity, refreshes, queue depths and the dead-letter queues (which must be
   empty: no step of the walk-through is meant to dead-letter).

Needs the environment of .local/stack.env (infra/deploy_local.py) plus PROVIDER_BASE_URL (the
sandbox); runs with the stack venv's python (boto3). Exits non-zero when the system does not do
what it should within the step's time limit.
"""

import hashlib
import hmac
import http.client
import json
import subprocess
import os
import sys
import time
import urllib.parse
import uuid

import boto3

CONNECT_KEY_ID = "local"
PROVIDERS = ["quickbooks", "xero", "zoho"]
# The demo tenant's pull interval: short, so the walk-through sees the scheduler at work.
SYNC_MINUTES = int(os.environ.get("DEMO_SYNC_MINUTES", "2"))
RETURN_URL = "http://localhost:3000/integrations"


def local_secrets():
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "local-secrets.json")) as f:
        return json.load(f)


def enc(s):
    return urllib.parse.quote(s, safe="-._~")


def signed_query(key, method, path, params):
    query = "&".join(f"{enc(k)}={enc(v)}" for k, v in sorted(params.items()))
    sig = hmac.new(key.encode(), f"{method}\n{path}\n{query}".encode(), hashlib.sha256).hexdigest()
    return f"{query}&sig={sig}"


def request(method, url, body=None, headers=None):
    """One HTTP request, never following redirects. Returns (status, headers, body)."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    path = u.path + (f"?{u.query}" if u.query else "")
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data


def ops(*args):
    """Runs the ops CLI against the local stack (the caller's environment is .local/stack.env)."""
    binary = os.environ.get("TTYA_OPS")
    cmd = [binary, *args] if binary else ["cargo", "run", "-q", "-p", "ttya-ops", "--", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        fail(f"ttya-ops {' '.join(args)}: {proc.stderr.strip()[:400]}")
    print(f"[demo] ttya-ops {' '.join(args[:3])}: {proc.stdout.strip().splitlines()[0] if proc.stdout.strip() else 'ok'}")
    return proc.stdout


def fail(msg):
    print(f"[demo] FAILED: {msg}")
    sys.exit(1)


def main():
    env = os.environ
    api = env["API_URL"].rstrip("/")
    sandbox = env.get("PROVIDER_BASE_URL")
    if not sandbox:
        fail("PROVIDER_BASE_URL (the provider sandbox) is not set")
    aws = dict(endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env.get("AWS_REGION", "us-east-1"))
    ddb = boto3.client("dynamodb", **aws)
    sqs = boto3.client("sqs", **aws)
    started = time.monotonic()

    tenant = f"demo-{uuid.uuid4().hex[:8]}"
    user = "demo-owner"
    ops("tenants", "create", tenant, "--name", "Demo Ltd", "--plan", "enterprise", "--return-url", RETURN_URL,
        "--providers", "quickbooks,xero,zoho")
    ops("tenants", "set-config", tenant, f"sync_frequency_minutes={SYNC_MINUTES}")
    ops("users", "set-role", tenant, user, "owner")
    pk = {"S": f"TENANT#{tenant}"}
    print(f"[demo] tenant {tenant} (enterprise plan, pulls every {SYNC_MINUTES} min) with owner {user}")

    key = local_secrets()["AppSigningSecret"]["connect_keys"][CONNECT_KEY_ID]
    for provider in PROVIDERS:
        connect(api, key, tenant, user, provider)

    orgs = {}
    for line in ops("connections", "list", "--tenant", tenant).splitlines():
        _tenant, provider, org_id, org_name, _grant, status = line.split("\t")
        orgs.setdefault(provider, []).append(org_id)
        print(f"[demo] connection {provider} org {org_id} ({org_name}) status {status}")
    for provider in PROVIDERS:
        if not orgs.get(provider):
            fail(f"no {provider} connection stored")
    versions_at_connect = grant_versions(env, ddb, pk)

    # 3. Initial sync, from the low queue through its event source mapping.
    print("[demo] waiting for the initial sync (low queue -> event source mapping -> sync-worker) ...")
    wait_for("every connection's initial sync", 600, lambda: initial_sync_done(env, ddb, pk))
    print(f"[demo] initial sync complete after {time.monotonic() - started:.0f}s")
    show_records(env, ddb, pk, "after the initial sync")

    # 4. Webhooks through the HTTP API route; nobody hands the job over.
    for provider in ["quickbooks", "xero"]:
        before = record_keys(env, ddb, pk, f"REC#{provider}#{orgs[provider][0]}#invoice#")
        emit = {
            "provider": provider,
            "target_url": f"{api}/webhooks/{provider}",
            "org_id": orgs[provider][0],
            "entity": "invoice",
            "operation": "create",
        }
        status, _, body = request("POST", f"{sandbox.rstrip('/')}/_sandbox/webhooks/emit", json.dumps(emit), {"content-type": "application/json"})
        answer = json.loads(body or b"{}")
        if status != 200 or answer.get("status") != 200:
            fail(f"{provider} webhook: sandbox {status}, receiver {answer.get('status')}: {answer.get('body')}")
        print(f"[demo] signed {provider} webhook (a new invoice) POSTed by the sandbox to {api}/webhooks/{provider}: {answer['status']}")
        new = wait_for(
            f"the {provider} webhook's invoice to be stored", 180,
            lambda: record_keys(env, ddb, pk, f"REC#{provider}#{orgs[provider][0]}#invoice#") - before,
        )
        print(f"[demo] stored from the webhook (receiver -> normal queue -> sync-worker): {', '.join(sorted(new))}")

    # 5. The schedules: refresher and scheduler, with nobody invoking them.
    print(f"[demo] waiting for the schedules: token-refresher ({env.get('REFRESH_SCHEDULE', 'rate(5 minutes)')}) "
          "and sync-scheduler (every minute) ...")
    wait_for("a scheduled incremental pull of every connection", 600, lambda: scheduled_pulls_done(env, ddb, pk, orgs))
    print("[demo] sync-scheduler enqueued incremental pulls and sync-worker ran them: " + ", ".join(
        f"{p} {n}" for p, n in sorted(scheduled_pulls_done(env, ddb, pk, orgs).items())))
    grant_ids = {sk.split("#", 2)[2] for sk in versions_at_connect}
    if env.get("DEMO_WAIT_REFRESH", "1") == "1":
        # The sandbox's tokens live ACCESS_TOKEN_TTL (scripts/run-local): within the refresher's
        # 600 s window at once, so the next run of either schedule renews them.
        wait_for("token-refresher (on its schedule) to refresh every grant", 660,
                 lambda: grant_ids <= {r["grant_id"] for r in refreshes(env, "TokenRefresherFunction", tenant)})
    else:
        print("[demo] tokens keep the providers' lifetimes: the refresher renews them 10 minutes before they expire")
    by_refresher = refreshes(env, "TokenRefresherFunction", tenant)
    on_demand = refreshes(env, "SyncWorkerFunction", tenant)
    after = grant_versions(env, ddb, pk)
    for sk, (version, status, expires) in sorted(after.items()):
        gid = sk.split("#", 2)[2]
        runs = [r["timestamp"][11:19] for r in by_refresher if r["grant_id"] == gid]
        print(f"[demo] grant {sk}: {status}, version {versions_at_connect[sk][0]} -> {version}; refreshed by token-refresher at "
              f"{', '.join(runs) or '-'} (UTC), on demand by sync-worker {sum(r['grant_id'] == gid for r in on_demand)} times; "
              f"access token valid {expires - int(time.time())}s more")

    show_records(env, ddb, pk, "now")
    depths = queue_depths(sqs, env)
    print_depths(depths)
    dead = {q: d for q, d in depths.items() if q.endswith("dlq") and sum(d) > 0}
    if dead:
        fail(f"messages dead-lettered (no step of the walk-through is meant to): {dead}")
    print("[demo] every dead-letter queue is empty (no step of the walk-through is meant to dead-letter)")
    record_handled_secrets(sandbox)
    print(f"[demo] done in {time.monotonic() - started:.0f}s: the system did the work")


def connect(api, key, tenant, user, provider):
    """Plays the browser through the connect flow, from the app's signed URL back to the app."""
    # jti: a signed connect URL works once (shared/src/connect/state.rs).
    params = {"tenant": tenant, "user": user, "ts": str(int(time.time())), "kid": CONNECT_KEY_ID, "return_url": RETURN_URL,
              "jti": str(uuid.uuid4())}
    url = f"{api}/connect/{provider}?{signed_query(key, 'GET', f'/connect/{provider}', params)}"
    hops = []
    # /connect sets a cookie binding the state to this browser, and the callback refuses the state
    # without it. (Marked Secure; a browser still sends it to 127.0.0.1, a secure context.)
    jar = {}
    for _ in range(3):
        headers = {"cookie": "; ".join(f"{k}={v}" for k, v in jar.items())} if jar and url.startswith(api) else {}
        status, resp_headers, body = request("GET", url, headers=headers)
        if status != 302:
            fail(f"{provider}: {url.split('?')[0]} answered {status}: {body[:300]!r}")
        set_cookie = resp_headers.get("set-cookie")
        if set_cookie and url.startswith(api):
            name, _, value = set_cookie.split(";")[0].partition("=")
            jar[name.strip()] = value.strip()
        url = resp_headers["location"]
        hops.append(url.split("?")[0])
    if not url.startswith(RETURN_URL) or "status=connected" not in url:
        fail(f"{provider}: connect ended at {url}")
    print(f"[demo] connected {provider}: {' -> '.join(hops[:2])} -> back to the app: {url}")


def wait_for(what, seconds, probe, every=3):
    """Polls probe() until it returns something truthy; fails after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            fail(f"waited {seconds}s for {what}")
        time.sleep(every)


def query_all(ddb, **kw):
    items, start = [], None
    while True:
        page = ddb.query(**kw, **({"ExclusiveStartKey": start} if start else {}))
        items += page["Items"]
        start = page.get("LastEvaluatedKey")
        if not start:
            return items


def tenant_items(env, ddb, table, pk, prefix):
    return query_all(ddb, TableName=env[table], KeyConditionExpression="pk = :pk AND begins_with(sk, :p)",
                     ExpressionAttributeValues={":pk": pk, ":p": {"S": prefix}})


def initial_sync_done(env, ddb, pk):
    conns = tenant_items(env, ddb, "GRANTS_TABLE", pk, "CONN#")
    return bool(conns) and all("init_completed_at" in c for c in conns)


def record_keys(env, ddb, pk, prefix):
    return {it["sk"]["S"] for it in tenant_items(env, ddb, "SYNC_TABLE", pk, prefix)}


def show_records(env, ddb, pk, when):
    counts = {}
    for sk in record_keys(env, ddb, pk, "REC#"):
        _rec, provider, _org, entity, _id = sk.split("#", 4)
        counts[(provider, entity)] = counts.get((provider, entity), 0) + 1
    print(f"[demo] records stored {when} (provider / entity: count):")
    for provider in PROVIDERS:
        row = ", ".join(f"{e} {n}" for (p, e), n in sorted(counts.items()) if p == provider)
        print(f"[demo]   {provider}: {row or 'none'}")


def completed_jobs(env, ddb, pk, prefix):
    items = tenant_items(env, ddb, "SYNC_TABLE", pk, f"JOB#{prefix}")
    return [it for it in items if it.get("status", {}).get("S") == "COMPLETED"]


def scheduled_pulls_done(env, ddb, pk, orgs):
    """Completed scheduled pulls per provider, when every connection has at least one."""
    done = {}
    for it in completed_jobs(env, ddb, pk, "sch1:"):
        provider = it["sk"]["S"].split(":")[1]
        done[provider] = done.get(provider, 0) + 1
    return done if all(done.get(p) for p in orgs) else None


def grant_versions(env, ddb, pk):
    return {
        it["sk"]["S"]: (int(it["version"]["N"]), it["status"]["S"], int(it["access_expires_at"]["N"]))
        for it in tenant_items(env, ddb, "GRANTS_TABLE", pk, "GRANT#")
    }


def refreshes(env, function, tenant=None, since_ms=0):
    """The "grant refreshed" log lines of one function (its CloudWatch log group, where MiniStack
    files a function's output), as dicts; the tenant's only when `tenant` is given."""
    logs = boto3.client("logs", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env.get("AWS_REGION", "us-east-1"))
    group = f"/aws/lambda/{env[f'FUNCTION_{function}']}"
    out = []
    for page in logs.get_paginator("filter_log_events").paginate(logGroupName=group, startTime=since_ms):
        for e in page["events"]:
            if '"grant refreshed"' not in e["message"]:
                continue
            line = json.loads(e["message"])
            if tenant is None or line.get("tenant_id") == tenant:
                out.append(line)
    return out


def queue_depths(sqs, env):
    """(visible, in flight) per queue of the stack, dead-letter queues included."""
    out = {}
    urls = sqs.list_queues(QueueNamePrefix=env.get("TTYA_STACK", "ttya-local")).get("QueueUrls", [])
    for url in sorted(urls):
        a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        out[url.rsplit("/", 1)[-1]] = (int(a["ApproximateNumberOfMessages"]), int(a["ApproximateNumberOfMessagesNotVisible"]))
    return out


def print_depths(depths):
    print("[demo] queue depths (visible / in flight):")
    for q, (visible, inflight) in depths.items():
        note = "  (the main app's outbound events: nobody consumes them locally)" if q.endswith("-events") else ""
        print(f"[demo]   {q:40} {visible} / {inflight}{note}")


def record_handled_secrets(sandbox):
    """Writes every secret this run handled (the sandbox's issued codes, tokens, PKCE verifiers and
    Zoho webhook secrets, plus the local stack's own keys) to $TTYA_LOCAL/handled-secrets.json, for
    infra/check-log-secrets.py to grep the run's logs for. Local files only; nothing here is real."""
    status, _, body = request("GET", f"{sandbox.rstrip('/')}/_sandbox/secrets")
    if status != 200:
        fail(f"sandbox secrets list answered {status}")
    found = json.loads(body)["secrets"]
    local = local_secrets()
    for provider, creds in local["ProviderCredentialsSecret"].items():
        found.append({"kind": "client_secret", "value": creds["client_secret"]})
    for provider, keys in local["WebhookKeysSecret"].items():
        for v in keys.values():
            if v:
                found.append({"kind": "webhook_key", "value": v})
    for v in local["AppSigningSecret"]["connect_keys"].values():
        found.append({"kind": "connect_signing_key", "value": v})
    found.append({"kind": "state_signing_key", "value": local["AppSigningSecret"]["state_key"]})
    state_dir = os.environ.get("TTYA_LOCAL") or os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".local")
    out = os.path.join(state_dir, "handled-secrets.json")
    with open(out, "w") as f:
        json.dump({"secrets": found}, f)
    kinds = {}
    for s in found:
        kinds[s["kind"]] = kinds.get(s["kind"], 0) + 1
    print(f"[demo] secrets handled in this run (written to {out} for the log check): {kinds}")


if __name__ == "__main__":
    main()
