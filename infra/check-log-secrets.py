#!/usr/bin/env python3
"""Greps a local run's logs for every secret the run handled; exits 1 naming the kind and file of
each one found (never the value itself), 2 when the secrets list is missing or implausibly short.

    python3 infra/check-log-secrets.py .local/handled-secrets.json LOG [LOG...]
    python3 infra/check-log-secrets.py --self-test

A secret counts as leaked in its raw form, URL-encoded, JSON-escaped, or base64-encoded (as in
an HTTP Basic header), and so does any 12-character run of a long one (a truncated token in a log
line is still a leak of most of it).
"""
import base64
import json
import os
import sys
import tempfile
import urllib.parse

# Fewer than this and the run did not do what it should have (3 providers, connect + refresh).
MIN_SECRETS = 12
MIN_TOKENS = 6
PIECE = 12


def forms(value):
    out = {value, urllib.parse.quote(value, safe=""), json.dumps(value)[1:-1]}
    out.add(base64.b64encode(value.encode()).decode().rstrip("="))
    if len(value) >= 24:
        # Pieces from a few places in the value; any one of them in a log is a truncated leak.
        for start in range(0, len(value) - PIECE + 1, max(1, (len(value) - PIECE) // 4)):
            out.add(value[start:start + PIECE])
    return {f for f in out if len(f) >= 8}


def check(secrets_file, logs, say=print):
    with open(secrets_file) as f:
        secrets = [s for s in json.load(f)["secrets"] if s.get("value")]
    tokens = [s for s in secrets if s["kind"] in ("access_token", "refresh_token")]
    if len(secrets) < MIN_SECRETS or len(tokens) < MIN_TOKENS:
        say(f"check-log-secrets: only {len(secrets)} secrets ({len(tokens)} tokens) listed; the run handled fewer than it should")
        return 2
    texts = {}
    for path in logs:
        with open(path, errors="replace") as f:
            texts[path] = f.read()
    leaks = []
    for s in secrets:
        for path, text in texts.items():
            if any(form in text for form in forms(s["value"])):
                leaks.append((s["kind"], path))
    scanned = sum(len(t) for t in texts.values())
    if leaks:
        for kind, path in sorted(set(leaks)):
            say(f"check-log-secrets: a {kind} appears in {path}")
        return 1
    by_kind = {}
    for s in secrets:
        by_kind[s["kind"]] = by_kind.get(s["kind"], 0) + 1
    say(f"check-log-secrets: none of {len(secrets)} secrets {by_kind} in {len(logs)} logs ({scanned} bytes)")
    return 0


def self_test():
    """The check must be able to fail: a planted token (whole, URL-encoded, truncated) is found."""
    def quiet(_msg):
        pass
    token = "eyJhbGciOiJIUzI1NiJ9.sandbox-access-token-0123456789abcdef"
    secrets = [{"kind": "access_token", "value": token}] + [
        {"kind": "refresh_token", "value": f"rt-{i:04d}-abcdefghijklmnopqrstuvwxyz"} for i in range(MIN_SECRETS)]
    with tempfile.TemporaryDirectory() as d:
        sf = os.path.join(d, "s.json")
        with open(sf, "w") as f:
            json.dump({"secrets": secrets}, f)
        clean = os.path.join(d, "clean.log")
        with open(clean, "w") as f:
            f.write('{"level":"INFO","message":"refreshed","tenant_id":"t1"}\n')
        assert check(sf, [clean], quiet) == 0, "clean log flagged"
        for planted in (token, urllib.parse.quote(token, safe=""), token[10:30]):
            leaky = os.path.join(d, "leaky.log")
            with open(leaky, "w") as f:
                f.write(f'{{"message":"calling with Bearer {planted}"}}\n')
            assert check(sf, [clean, leaky], quiet) == 1, f"planted form not found: {planted[:6]}..."
        with open(sf, "w") as f:
            json.dump({"secrets": secrets[:3]}, f)
        assert check(sf, [clean], quiet) == 2, "a short secrets list passed"
    print("check-log-secrets: self-test passed")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        sys.exit(self_test())
    if len(sys.argv) < 3:
        print(__doc__)
        sys.exit(2)
    sys.exit(check(sys.argv[1], sys.argv[2:]))
