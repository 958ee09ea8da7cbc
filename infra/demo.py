"""The end-to-end walk-through scripts/run-local runs against the running local system.

1. creates a demo tenant (professional plan) and its owner with the ops CLI (ttya-ops: the same
   shared stores the functions use; TTYA_OPS names the binary, else `cargo run -p ttya-ops`);
2. connects QuickBooks, Xero and Zoho Books the way a user would: a connect URL signed as the main
   app signs it (docs/connect-auth.md) -> oauth-callback -> the sandbox's consent page -> back to
   oauth-callback, which exchanges the code, discovers the organisations and stores a sealed grant;
3. has the provider sandbox send a signed QuickBooks and a signed Xero webhook to webhook-receiver;
4. shows the sync jobs the receiver put on the sync queue.

Needs the environment of .local/aws.env plus PROVIDER_BASE_URL (the sandbox) and LAMBDA_PORT; runs
with the moto venv's python (boto3). Exits non-zero when a step does not do what it should.
"""

import hashlib
import hmac
import http.client
import json
import subprocess
import os
import sys
import tempfile
import time
import urllib.parse
import uuid

import boto3

CONNECT_KEY_ID = "local"
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
    """Runs the ops CLI against the local stack (the caller's environment is .local/aws.env)."""
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
    lambda_base = f"http://127.0.0.1:{env['LAMBDA_PORT']}/lambda-url"
    sandbox = env.get("PROVIDER_BASE_URL")
    if not sandbox:
        fail("PROVIDER_BASE_URL (the provider sandbox) is not set")
    aws = dict(endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env.get("AWS_REGION", "us-east-1"))
    ddb = boto3.client("dynamodb", **aws)
    sqs = boto3.client("sqs", **aws)

    tenant = f"demo-{uuid.uuid4().hex[:8]}"
    user = "demo-owner"
    ops("tenants", "create", tenant, "--name", "Demo Ltd", "--plan", "professional", "--return-url", RETURN_URL,
        "--providers", "quickbooks,xero,zoho")
    ops("users", "set-role", tenant, user, "owner")
    pk = {"S": f"TENANT#{tenant}"}
    print(f"[demo] tenant {tenant} with owner {user}")

    key = local_secrets()["AppSigningSecret"]["connect_keys"][CONNECT_KEY_ID]
    for provider in ["quickbooks", "xero", "zoho"]:
        # jti: a signed connect URL works once (shared/src/connect/state.rs).
        params = {"tenant": tenant, "user": user, "ts": str(int(time.time())), "kid": CONNECT_KEY_ID, "return_url": RETURN_URL,
                  "jti": str(uuid.uuid4())}
        url = f"{lambda_base}/oauth-callback/connect/{provider}?{signed_query(key, 'GET', f'/connect/{provider}', params)}"
        hops = []
        # Plays the browser: /connect sets a cookie binding the state to this browser, and the
        # callback refuses the state without it. (Marked Secure; a browser still sends it to
        # 127.0.0.1, which counts as a secure context, so this jar does the same.)
        jar = {}
        for _ in range(3):
            headers = {"cookie": "; ".join(f"{k}={v}" for k, v in jar.items())} if jar and url.startswith(lambda_base) else {}
            status, resp_headers, body = request("GET", url, headers=headers)
            if status != 302:
                fail(f"{provider}: {url.split('?')[0]} answered {status}: {body[:300]!r}")
            set_cookie = resp_headers.get("set-cookie")
            if set_cookie and url.startswith(lambda_base):
                name, _, value = set_cookie.split(";")[0].partition("=")
                jar[name.strip()] = value.strip()
            url = resp_headers["location"]
            hops.append(url.split("?")[0])
        if not url.startswith(RETURN_URL) or "status=connected" not in url:
            fail(f"{provider}: connect ended at {url}")
        print(f"[demo] connected {provider}: {' -> '.join(hops[:2])} -> back to the app: {url}")

    orgs = {}
    for line in ops("connections", "list", "--tenant", tenant).splitlines():
        _tenant, provider, org_id, org_name, _grant, status = line.split("\t")
        orgs.setdefault(provider, []).append(org_id)
        print(f"[demo] connection {provider} org {org_id} ({org_name}) status {status}")
    for provider in ["quickbooks", "xero", "zoho"]:
        if not orgs.get(provider):
            fail(f"no {provider} connection stored")

    queue = env["SYNC_QUEUE_NORMAL_URL"]
    for provider in ["quickbooks", "xero"]:
        emit = {
            "provider": provider,
            "target_url": f"{lambda_base}/webhook-receiver/webhooks/{provider}",
            "org_id": orgs[provider][0],
            "entity": "invoice",
            "operation": "create",
        }
        status, _, body = request("POST", f"{sandbox.rstrip('/')}/_sandbox/webhooks/emit", json.dumps(emit), {"content-type": "application/json"})
        answer = json.loads(body or b"{}")
        if status != 200 or answer.get("status") != 200:
            fail(f"{provider} webhook: sandbox {status}, receiver {answer.get('status')}: {answer.get('body')}")
        print(f"[demo] signed {provider} webhook delivered by the sandbox: receiver answered {answer['status']}")

    jobs, messages = [], []
    for _ in range(10):
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1, AttributeNames=["All"]).get("Messages", [])
        for m in got:
            job = json.loads(m["Body"])
            if job.get("tenant_id") == tenant:
                jobs.append(job)
                messages.append(m)
        if len(jobs) >= 2:
            break
    for job in jobs:
        print(f"[demo] sync job on the normal queue: {job['provider']} {job['operation']} {job['entity']} {job.get('entity_id', '')} (org {job['org_id']}, idempotency key {job['idempotency_key'][:16]}...)")
    if len(jobs) != 2:
        fail(f"expected 2 sync jobs for {tenant}, found {len(jobs)}")
    sync(env, ddb, sqs, queue, pk, messages)
    refresh(env, ddb, pk)
    record_handled_secrets(sandbox)
    print("[demo] done")


def record_handled_secrets(sandbox):
    """Writes every secret this run handled (the sandbox's issued codes, tokens, PKCE verifiers and
    Zoho webhook secrets, plus the local stack's own keys) to .local/handled-secrets.json, for
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
    out = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".local", "handled-secrets.json")
    with open(out, "w") as f:
        json.dump({"secrets": found}, f)
    kinds = {}
    for s in found:
        kinds[s["kind"]] = kinds.get(s["kind"], 0) + 1
    print(f"[demo] secrets handled in this run (written to .local/handled-secrets.json for the log check): {kinds}")


def sync(env, ddb, sqs, queue, pk, messages):
    """Hands the webhook jobs to the sync worker as Lambda's SQS event source would (one batch),
    then shows the normalised records it wrote for the tenant."""
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    records = [
        {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": {"ApproximateReceiveCount": m.get("Attributes", {}).get("ApproximateReceiveCount", "1"), "SentTimestamp": m.get("Attributes", {}).get("SentTimestamp", "0")},
            "messageAttributes": {},
            "md5OfBody": m["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": arn,
            "awsRegion": env.get("AWS_REGION", "us-east-1"),
        }
        for m in messages
    ]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"Records": records}, f)
        event = f.name
    try:
        proc = subprocess.run(
            [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "invoke.py"), "run", "--port", env["LAMBDA_PORT"], "sync-worker", event],
            capture_output=True, text=True, timeout=300,
        )
    finally:
        os.unlink(event)
    outcome = json.loads(proc.stdout or "{}")
    answer = json.loads(outcome.get("body") or "{}")
    failures = answer.get("batchItemFailures", [])
    if not outcome.get("ok") or failures:
        fail(f"sync-worker did not finish the batch: {proc.stdout.strip()[:400]} {proc.stderr.strip()[:400]}")
    # What Lambda does after a batch without failures: the messages are deleted.
    for m in messages:
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
    items = ddb.query(
        TableName=env["SYNC_TABLE"],
        KeyConditionExpression="pk = :pk AND begins_with(sk, :r)",
        ExpressionAttributeValues={":pk": pk, ":r": {"S": "REC#"}},
    )["Items"]
    if not items:
        fail("the sync worker wrote no records for the tenant")
    for it in items:
        print(f"[demo] synced record {it['sk']['S']}")


def grant_versions(env, ddb, pk):
    items = ddb.query(
        TableName=env["GRANTS_TABLE"],
        KeyConditionExpression="pk = :pk AND begins_with(sk, :g)",
        ExpressionAttributeValues={":pk": pk, ":g": {"S": "GRANT#"}},
    )["Items"]
    return {it["sk"]["S"]: (int(it["version"]["N"]), it["status"]["S"]) for it in items}


def refresh(env, ddb, pk):
    """Forces a refresh run (everything due within two hours: every grant just connected) through the
    token-refresher under the emulator, and checks each of this tenant's grants got a new pair."""
    before = grant_versions(env, ddb, pk)
    event = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "events", "token-refresher", "force-window.json")
    proc = subprocess.run(
        [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "invoke.py"), "run", "--port", env["LAMBDA_PORT"], "token-refresher", event],
        capture_output=True, text=True, timeout=300,
    )
    print(f"[demo] token-refresher run: {proc.stdout.strip()[:400]}")
    after = grant_versions(env, ddb, pk)
    for sk, (version, status) in before.items():
        new_version, new_status = after.get(sk, (version, status))
        if new_version <= version or new_status != "active":
            fail(f"grant {sk} was not refreshed (version {version} -> {new_version}, status {new_status})")
        print(f"[demo] refreshed {sk}: version {version} -> {new_version}, still {new_status}")


if __name__ == "__main__":
    main()
