#!/usr/bin/env python3
"""Left up, it lives: watches the idle local stack for a while and checks every connection stays
healthy with fresh tokens, with nothing but the template's schedules and queues at work.

    soak.py --hours 2 [--every 300]      (environment: .local/stack.env + PROVIDER_BASE_URL)

scripts/run-local soak runs it after the walk-through. Every --every seconds it checks:
- every grant is `active` and its access token is still valid (the refresher, fired by the
  EventBridge Scheduler schedules, renewed it before it expired), and counts its refreshes;
- every connection is `active` and its scheduled incremental pulls keep completing (sync-scheduler
  every minute -> queue -> event source mapping -> sync-worker);
- the dead-letter queues are empty, MiniStack and the provider sandbox answer.
At the end it prints one line per grant and exits 1 when any check failed at any point.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.request

import boto3

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from demo import queue_depths, refreshes  # noqa: E402


def log(msg: str) -> None:
    print(f"[soak] {time.strftime('%H:%M:%S')} {msg}", flush=True)


def scan_all(ddb, **kw) -> list[dict]:
    items, start = [], None
    while True:
        page = ddb.scan(**kw, **({"ExclusiveStartKey": start} if start else {}))
        items += page["Items"]
        start = page.get("LastEvaluatedKey")
        if not start:
            return items


def grants(ddb, table: str) -> dict[str, dict]:
    items = scan_all(ddb, TableName=table, FilterExpression="kind = :k", ExpressionAttributeValues={":k": {"S": "grant"}})
    return {
        f"{it['tenant_id']['S']}/{it['provider']['S']}/{it['grant_id']['S'][:8]}": {
            "status": it["status"]["S"],
            "version": int(it["version"]["N"]),
            "expires": int(it["access_expires_at"]["N"]),
        }
        for it in items
    }


def connections(ddb, table: str) -> dict[str, str]:
    items = scan_all(ddb, TableName=table, FilterExpression="kind = :k", ExpressionAttributeValues={":k": {"S": "connection"}})
    return {f"{it['tenant_id']['S']}/{it['provider']['S']}/{it['org_id']['S']}": it["status"]["S"] for it in items}


def scheduled_pulls(ddb, table: str) -> int:
    items = scan_all(ddb, TableName=table, FilterExpression="begins_with(sk, :j) AND #s = :c",
                     ExpressionAttributeNames={"#s": "status"},
                     ExpressionAttributeValues={":j": {"S": "JOB#sch1:"}, ":c": {"S": "COMPLETED"}})
    return len(items)


def ministack_rss_mb() -> int | None:
    """MiniStack's resident memory (it keeps every table, queue and log line in memory)."""
    try:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        with open(os.path.join(root, ".local", "stack-ministack.pid")) as f:
            pid = f.read().strip()
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) // 1024 for line in f if line.startswith("VmRSS:"))
    except (OSError, StopIteration, ValueError):
        return None


def answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=5).read()
        return True
    except Exception:
        return False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, required=True)
    ap.add_argument("--every", type=int, default=300, help="seconds between checks")
    args = ap.parse_args()
    env = os.environ
    aws = dict(endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env.get("AWS_REGION", "us-east-1"))
    ddb, sqs = boto3.client("dynamodb", **aws), boto3.client("sqs", **aws)
    sandbox = env["PROVIDER_BASE_URL"].rstrip("/")
    with urllib.request.urlopen(f"{sandbox}/_sandbox/config", timeout=5) as r:
        lifetimes = {p: v["access_token_ttl"] for p, v in json.load(r).items() if isinstance(v, dict) and "access_token_ttl" in v}

    start = grants(ddb, env["GRANTS_TABLE"])
    if not start:
        log("no grants to watch: run the walk-through first")
        return 2
    pulls_start = scheduled_pulls(ddb, env["SYNC_TABLE"])
    log(f"watching {len(start)} grants for {args.hours} h, a check every {args.every}s; "
        f"sandbox access-token lifetimes {lifetimes}")
    began = time.time()
    deadline = began + args.hours * 3600
    failures: list[str] = []
    min_left: dict[str, int] = {}
    checks = 0
    while True:
        now = int(time.time())
        problems = []
        if not answers(f"{env['AWS_ENDPOINT_URL']}/_ministack/health"):
            problems.append("MiniStack does not answer")
        if not answers(f"{sandbox}/_sandbox/health"):
            problems.append("the provider sandbox does not answer")
        current = grants(ddb, env["GRANTS_TABLE"])
        for key, g in current.items():
            left = g["expires"] - now
            min_left[key] = min(min_left.get(key, left), left)
            if g["status"] != "active":
                problems.append(f"grant {key} is {g['status']}")
            if left <= 0:
                problems.append(f"grant {key}: access token expired {-left}s ago")
        for key, status in connections(ddb, env["GRANTS_TABLE"]).items():
            if status != "active":
                problems.append(f"connection {key} is {status}")
        depths = queue_depths(sqs, env)
        for q, (visible, inflight) in depths.items():
            if q.endswith("dlq") and visible + inflight:
                problems.append(f"{q} holds {visible + inflight} messages")
        pulls = scheduled_pulls(ddb, env["SYNC_TABLE"]) - pulls_start
        scheduled = len(refreshes(env, "TokenRefresherFunction", since_ms=int(began * 1000)))
        on_demand = len(refreshes(env, "SyncWorkerFunction", since_ms=int(began * 1000)))
        checks += 1
        log(f"check {checks}: {len(current)} grants; since the start {scheduled} refreshes by token-refresher, "
            f"{on_demand} on demand by sync-worker, {pulls} scheduled pulls; "
            f"sync queues {sum(sum(v) for q, v in depths.items() if '-sync-' in q and not q.endswith('dlq'))} messages; "
            f"MiniStack RSS {ministack_rss_mb()} MB; "
            + ("OK" if not problems else "PROBLEMS: " + "; ".join(problems)))
        failures += [f"{time.strftime('%H:%M:%S')} {p}" for p in problems]
        if time.time() >= deadline:
            break
        time.sleep(max(1, min(args.every, deadline - time.time())))

    elapsed = time.time() - began
    # Pulls must keep running through the idle hours, not only right after the walk-through.
    if elapsed >= 600 and pulls == 0:
        failures.append("no scheduled pull completed during the soak")
    if elapsed >= 600 and scheduled == 0:
        failures.append("token-refresher refreshed nothing during the soak")
    print(f"[soak] after {elapsed / 3600:.2f} h idle ({checks} checks):")
    for key, g in sorted(current.items()):
        print(f"[soak]   grant {key}: {g['status']}, refreshed {g['version'] - start.get(key, g)['version']} times, "
              f"access token valid {g['expires'] - int(time.time())}s more (never less than {min_left[key]}s at a check)")
    print(f"[soak]   refreshes by token-refresher: {scheduled}, on demand by sync-worker: {on_demand}; "
          f"scheduled incremental pulls completed: {pulls}; dead-letter queues: "
          + ", ".join(f"{q} {sum(v)}" for q, v in depths.items() if q.endswith("dlq")))
    if failures:
        print(f"[soak] FAILED ({len(failures)} problems):")
        for f in failures[:30]:
            print(f"[soak]   {f}")
        return 1
    print("[soak] PASSED: every connection active, every token renewed before it expired, pulls running, DLQs empty")
    return 0


if __name__ == "__main__":
    sys.exit(main())
