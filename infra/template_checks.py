#!/usr/bin/env python3
"""Checks on template.yaml that cfn-lint cannot make: agreement with the Rust code and with the
rules this project set itself (least privilege, queue timing, table settings).

Run by infra/check-template.sh. Prints one line per check and a closing `N passed, N failed`.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cfn import intrinsic, load_template  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Lambda sets these itself and refuses a function configuration that defines them.
LAMBDA_RESERVED = {"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                   "AWS_LAMBDA_FUNCTION_NAME", "AWS_EXECUTION_ENV", "_HANDLER", "LAMBDA_TASK_ROOT"}
KMS_CONTEXT_KEYS = {"tenant_id", "provider", "grant_id"}


def config_variables() -> set[str]:
    """Every variable shared/src/config.rs reads (required and optional)."""
    with open(os.path.join(ROOT, "shared", "src", "config.rs"), encoding="utf-8") as f:
        src = f.read()
    names = set(re.findall(r'r\.(?:required|optional_or|parsed|seconds|url)\(\s*"([A-Z0-9_]+)"', src))
    if not names:
        raise AssertionError("found no variables in shared/src/config.rs: did the Reader calls change?")
    return names


def functions(t: dict) -> dict[str, dict]:
    return {n: r for n, r in t["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}


def statements(t: dict, role: str) -> list[dict]:
    out = []
    for policy in t["Resources"][role]["Properties"].get("Policies", []):
        out += policy["PolicyDocument"]["Statement"]
    return out


def as_list(v) -> list:
    return v if isinstance(v, list) else [v]


def role_of(fn: dict) -> str | None:
    call = intrinsic(fn["Properties"].get("Role"))
    return call[1][0] if call and call[0] == "Fn::GetAtt" else None


# ---------------------------------------------------------------------------------------------------


def check_environment_matches_config(t):
    env = set(t["Globals"]["Function"]["Environment"]["Variables"])
    wanted = config_variables()
    missing = wanted - env - LAMBDA_RESERVED
    unread = env - wanted
    reserved = env & LAMBDA_RESERVED
    assert not missing, f"config.rs reads {sorted(missing)} but Globals.Function.Environment does not set them"
    assert not unread, f"the template sets {sorted(unread)} which config.rs never reads"
    assert not reserved, f"Lambda reserves {sorted(reserved)}; the template must not set them"


def check_binaries_exist(t):
    crates = {}
    for d in os.listdir(os.path.join(ROOT, "functions")):
        manifest = os.path.join(ROOT, "functions", d, "Cargo.toml")
        if os.path.exists(manifest):
            with open(manifest, "rb") as f:
                crates[tomllib.load(f)["package"]["name"]] = d
    bound = {}
    for name, fn in functions(t).items():
        meta = fn.get("Metadata", {})
        assert meta.get("BuildMethod") == "rust-cargolambda", f"{name}: BuildMethod must be rust-cargolambda"
        binary = meta.get("BuildProperties", {}).get("Binary")
        assert binary in crates, f"{name}: Binary {binary!r} is not a crate under functions/ ({sorted(crates)})"
        bound[binary] = name
    assert set(bound) == set(crates), f"function crates without a template function: {sorted(set(crates) - set(bound))}"


def check_sync_queue_timing(t):
    worker = t["Resources"]["SyncWorkerFunction"]["Properties"]
    timeout = int(worker.get("Timeout", t["Globals"]["Function"]["Timeout"]))
    sources = {}
    for ev in worker["Events"].values():
        if ev["Type"] == "SQS":
            sources[intrinsic(ev["Properties"]["Queue"])[1][0]] = ev["Properties"]
    assert sources, "the sync worker has no SQS event sources"
    for queue, props in sources.items():
        q = t["Resources"][queue]["Properties"]
        assert int(q["VisibilityTimeout"]) == 6 * timeout, f"{queue}: VisibilityTimeout {q['VisibilityTimeout']} != 6 x {timeout}"
        assert props.get("FunctionResponseTypes") == ["ReportBatchItemFailures"], f"{queue}: needs ReportBatchItemFailures"
        assert int(props.get("BatchSize", 10)) == 10, f"{queue}: BatchSize should be 10"
        assert "RedrivePolicy" in q, f"{queue}: no dead-letter queue"
    for name in ("SyncHighQueue", "SyncNormalQueue", "SyncLowQueue"):
        assert name in sources, f"{name} does not feed the sync worker"


def check_dead_letter_queues_alarmed(t):
    res = t["Resources"]
    dlqs = set()
    for name, r in res.items():
        if r["Type"] == "AWS::SQS::Queue" and "RedrivePolicy" in r["Properties"]:
            dlqs.add(intrinsic(r["Properties"]["RedrivePolicy"]["deadLetterTargetArn"])[1][0])
    alarmed = set()
    for r in res.values():
        if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"].get("Namespace") == "AWS/SQS":
            for d in r["Properties"].get("Dimensions", []):
                call = intrinsic(d["Value"])
                if call and call[0] == "Fn::GetAtt":
                    alarmed.add(call[1][0])
    for dlq in dlqs:
        assert int(res[dlq]["Properties"].get("MessageRetentionPeriod", 0)) == 1209600, f"{dlq}: keep dead letters 14 days"
    assert dlqs <= alarmed, f"dead-letter queues without a depth alarm: {sorted(dlqs - alarmed)}"


def check_tables(t):
    for name, r in t["Resources"].items():
        if r["Type"] != "AWS::DynamoDB::Table":
            continue
        p = r["Properties"]
        assert p.get("BillingMode") == "PAY_PER_REQUEST", f"{name}: on-demand"
        assert p.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled") is True, f"{name}: PITR"
        assert p.get("SSESpecification", {}).get("SSEEnabled") is True, f"{name}: SSE"
        ttl = p.get("TimeToLiveSpecification", {})
        assert ttl.get("AttributeName") == "expires_at" and ttl.get("Enabled") is True, f"{name}: TTL on expires_at"
        keys = [(k["AttributeName"], k["KeyType"]) for k in p["KeySchema"]]
        assert keys == [("pk", "HASH"), ("sk", "RANGE")], f"{name}: key schema pk/sk"
        assert r.get("DeletionPolicy") == "Retain", f"{name}: DeletionPolicy Retain"
    gsis = {g["IndexName"]: g for g in t["Resources"]["GrantsTable"]["Properties"]["GlobalSecondaryIndexes"]}
    assert set(gsis) == {"due", "org"}, f"GrantsTable indexes {sorted(gsis)}"
    # The Rust store queries these by name and key (shared/src/store/grants.rs).
    assert [k["AttributeName"] for k in gsis["due"]["KeySchema"]] == ["due_pk", "due_at"]
    assert [k["AttributeName"] for k in gsis["org"]["KeySchema"]] == ["org_key", "pk"]


def check_least_privilege(t):
    for name, fn in functions(t).items():
        role = role_of(fn)
        assert role, f"{name}: must use its own explicit Role (SAM's default role adds broad managed policies)"
        assert "Policies" not in fn["Properties"], f"{name}: policies belong in {role}"
        rp = t["Resources"][role]["Properties"]
        assert not rp.get("ManagedPolicyArns"), f"{role}: no managed policies"
        others = [role_of(f) for n, f in functions(t).items() if n != name]
        assert role not in others, f"{role} is shared between functions"
        for st in statements(t, role):
            sid = st.get("Sid", "?")
            for res in as_list(st["Resource"]):
                assert res != "*", f"{role}/{sid}: Resource '*'"
            for action in as_list(st["Action"]):
                assert not action.endswith(":*") and action != "*", f"{role}/{sid}: wildcard action {action}"
                if action.startswith("kms:"):
                    cond = st.get("Condition", {})
                    keys = set(cond.get("ForAllValues:StringEquals", {}).get("kms:EncryptionContextKeys", []))
                    assert keys == KMS_CONTEXT_KEYS, f"{role}/{sid}: {action} must be bound to the encryption context keys"
                    present = cond.get("Null", {})
                    for k in KMS_CONTEXT_KEYS:
                        assert present.get(f"kms:EncryptionContext:{k}") == "false", f"{role}/{sid}: {k} must be present"


def check_routes(t):
    routes = set()
    for name, fn in functions(t).items():
        for ev in fn["Properties"].get("Events", {}).values():
            if ev["Type"] == "HttpApi":
                routes.add((ev["Properties"]["Method"], ev["Properties"]["Path"], fn["Metadata"]["BuildProperties"]["Binary"]))
    expected = {
        ("GET", "/connect/{provider}", "oauth-callback"),
        ("GET", "/oauth/{provider}/callback", "oauth-callback"),
        ("POST", "/disconnect/{provider}", "oauth-callback"),
        ("POST", "/webhooks/{provider}", "webhook-receiver"),
    }
    assert expected <= routes, f"missing routes: {sorted(expected - routes)}"


CHECKS = [v for k, v in sorted(globals().items()) if k.startswith("check_")]


def main() -> int:
    t = load_template(os.path.join(ROOT, "template.yaml"))
    passed = failed = 0
    for check in CHECKS:
        name = check.__name__[len("check_"):]
        try:
            check(t)
        except (AssertionError, KeyError, TypeError) as e:
            failed += 1
            print(f"FAIL {name}: {e!r}" if not isinstance(e, AssertionError) else f"FAIL {name}: {e}")
        else:
            passed += 1
            print(f"ok   {name}")
    print(f"template checks: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
