#!/usr/bin/env python3
"""Send a sample event to a function running under `cargo lambda watch`, and check the outcome.

  invoke.py run   --port P FUNCTION EVENT_FILE              print the outcome as JSON
  invoke.py show  --port P FUNCTION EVENT_FILE              print it as one short line
  invoke.py check --port P FUNCTION EVENT_FILE EXPECTATION  exit 1 unless the outcome matches

HTTP events (API Gateway payload 2.0) are replayed as real HTTP requests at
http://127.0.0.1:P/lambda-url/FUNCTION/<rawPath>?<rawQueryString> with the event's method, headers
and exact body bytes, the way the function is reached locally. Other events go through
`cargo lambda invoke FUNCTION --data-file EVENT_FILE`.

EXPECTATION is space-separated terms, all of which must hold:
  http=N              HTTP status N
  ok | error          the invocation succeeded / the function returned an error
  json:a.b.c=V        the JSON body (HTTP) or result (invoke) has V at path a.b.c
  contains=TEXT       the body/result/error text contains TEXT (%20 for a space)
  failures=all|none   SQS events: batchItemFailures lists every / no message of the event
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from base64 import b64decode

# The first call of a function builds it inside cargo lambda watch: minutes on a cold target dir.
TIMEOUT = int(os.environ.get("INVOKE_TIMEOUT_SECONDS", "900"))
HOP_BY_HOP = {"host", "content-length", "connection", "transfer-encoding"}


def run_http(port: int, function: str, event: dict) -> dict:
    http = event["requestContext"]["http"]
    url = f"http://127.0.0.1:{port}/lambda-url/{function}{event.get('rawPath') or http['path']}"
    if event.get("rawQueryString"):
        url += "?" + event["rawQueryString"]
    body = event.get("body")
    data = None
    if body is not None:
        data = b64decode(body) if event.get("isBase64Encoded") else body.encode()
    headers = {k: v for k, v in (event.get("headers") or {}).items() if k.lower() not in HOP_BY_HOP}
    req = urllib.request.Request(url, data=data, method=http["method"], headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
            status, resp_headers, raw = resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        status, resp_headers, raw = e.code, dict(e.headers), e.read()
    except urllib.error.URLError as e:
        raise SystemExit(f"invoke.py: nothing answers at {url} ({e.reason}): is infra/lambda-local.sh start running?")
    return {"kind": "http", "url": url, "status": status, "headers": resp_headers, "body": raw.decode("utf-8", "replace")}


def run_invoke(port: int, function: str, event_file: str) -> dict:
    cmd = ["cargo", "lambda", "invoke", function, "--data-file", event_file, "--invoke-address", "127.0.0.1", "--invoke-port", str(port), "--output-format", "json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT)
    return {"kind": "invoke", "ok": proc.returncode == 0, "body": proc.stdout.strip(), "stderr": proc.stderr.strip()}


def run(port: int, function: str, event_file: str) -> dict:
    with open(event_file, encoding="utf-8") as f:
        event = json.load(f)
    if isinstance(event, dict) and "http" in (event.get("requestContext") or {}):
        return run_http(port, function, event)
    return run_invoke(port, function, event_file)


def json_path(doc, path: str):
    for part in path.split("."):
        if isinstance(doc, list):
            doc = doc[int(part)]
        elif isinstance(doc, dict):
            doc = doc[part]
        else:
            raise KeyError(part)
    return doc


def check(outcome: dict, expectation: str, event_file: str) -> list[str]:
    """The terms of `expectation` that do not hold (empty when all do)."""
    problems = []
    text = outcome["body"] + ("\n" + outcome.get("stderr", "") if outcome.get("stderr") else "")
    try:
        parsed = json.loads(outcome["body"]) if outcome["body"] else None
    except json.JSONDecodeError:
        parsed = None
    for term in expectation.split():
        key, _, value = term.partition("=")
        value = urllib.parse.unquote(value)
        if key == "http":
            if outcome["kind"] != "http" or outcome["status"] != int(value):
                problems.append(f"{term}: got {outcome.get('status', outcome['kind'])}")
        elif key in ("ok", "error"):
            if outcome["kind"] != "invoke" or outcome["ok"] != (key == "ok"):
                problems.append(f"{term}: invocation {'succeeded' if outcome.get('ok') else 'failed'}")
        elif key.startswith("json:"):
            try:
                got = json_path(parsed, key[5:])
            except (KeyError, IndexError, ValueError, TypeError):
                problems.append(f"{term}: no {key[5:]} in the response")
                continue
            if str(got) != value and json.dumps(got) != value:
                problems.append(f"{term}: got {json.dumps(got)}")
        elif key == "contains":
            if value not in text:
                problems.append(f"{term}: not found")
        elif key == "failures":
            with open(event_file, encoding="utf-8") as f:
                ids = {r["messageId"] for r in json.load(f)["Records"]}
            try:
                failed = {f["itemIdentifier"] for f in parsed["batchItemFailures"]}
            except (KeyError, TypeError):
                problems.append(f"{term}: no batchItemFailures in the response")
                continue
            want = ids if value == "all" else set() if value == "none" else None
            if want is None:
                problems.append(f"{term}: unknown failures value")
            elif failed != want:
                problems.append(f"{term}: failed {sorted(failed)}, expected {sorted(want)}")
        else:
            problems.append(f"{term}: unknown expectation")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["run", "show", "check"])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("function")
    ap.add_argument("event_file")
    ap.add_argument("expectation", nargs="?")
    args = ap.parse_args()
    outcome = run(args.port, args.function, args.event_file)
    if args.mode == "run":
        print(json.dumps(outcome, indent=2))
        return 0 if outcome["kind"] == "http" or outcome["ok"] else 1
    if args.mode == "show":
        if outcome["kind"] == "http":
            print(f"HTTP {outcome['status']}  {outcome['body'][:300]}")
        elif outcome["ok"]:
            try:
                text = json.dumps(json.loads(outcome["body"]), separators=(",", ":"))
            except json.JSONDecodeError:
                text = outcome["body"]
            print(f"ok     {text[:300]}")
        else:
            # cargo lambda prints the function's error message on a line of its own, after a type name.
            lines = [ln.strip(" ×") for ln in outcome["stderr"].splitlines() if ln.strip()]
            message = next((ln for ln in lines[1:] if not ln.startswith(("Was this", "Start a thread"))), outcome["stderr"])
            print(f"error  {message[:300]}")
        return 0
    if not args.expectation:
        ap.error("check needs an EXPECTATION")
    problems = check(outcome, args.expectation, args.event_file)
    summary = f"HTTP {outcome['status']}" if outcome["kind"] == "http" else ("ok" if outcome["ok"] else "error")
    if problems:
        print(f"  got {summary}: {outcome['body'][:400]}")
        if outcome.get("stderr"):
            print(f"  stderr: {outcome['stderr'][-400:]}")
        for p in problems:
            print(f"  mismatch: {p}")
        return 1
    print(f"  got {summary}: {outcome['body'][:160]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
