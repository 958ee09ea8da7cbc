#!/usr/bin/env python3
"""Checks on template.yaml that cfn-lint cannot make: agreement with the Rust code and with the
rules this project set itself (least privilege, queue timing, table settings).

Run by infra/check-template.sh. Prints one line per check and a closing `N passed, N failed`.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tomllib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import emitted_metrics  # noqa: E402
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
    assert set(gsis) == {"due", "org", "sync_due"}, f"GrantsTable indexes {sorted(gsis)}"
    # The Rust store queries these by name and key (shared/src/store/grants.rs, shared/src/sync/schedule.rs).
    assert [k["AttributeName"] for k in gsis["due"]["KeySchema"]] == ["due_pk", "due_at"]
    assert [k["AttributeName"] for k in gsis["org"]["KeySchema"]] == ["org_key", "pk"]
    assert [k["AttributeName"] for k in gsis["sync_due"]["KeySchema"]] == ["sync_pk", "next_sync_at"]
    with open(os.path.join(ROOT, "shared", "src", "sync", "schedule.rs"), encoding="utf-8") as f:
        assert 'SYNC_INDEX: &str = "sync_due"' in f.read(), "shared/src/sync/schedule.rs queries another index name"


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


# Roles that handle OAuth tokens and may open any sealed blob. Every other role that may use the
# token key must be held to the Zoho webhook secrets' context (grant_id "webhook:<org>").
TOKEN_ROLES = {"OAuthCallbackRole", "TokenRefresherRole", "SyncWorkerRole", "OperatorRole"}
WEBHOOK_SECRET_GRANT = "webhook:*"


def _refers_to(value, resource: str) -> bool:
    call = intrinsic(value)
    if not call:
        return False
    if call[0] == "Fn::GetAtt":
        return call[1][0] == resource
    if call[0] == "Ref":
        return call[1] == resource
    if call[0] == "Fn::Sub":
        text = call[1] if isinstance(call[1], str) else call[1][0]
        return f"${{{resource}." in text or f"${{{resource}}}" in text
    return False


def check_only_token_roles_can_decrypt_token_blobs(t):
    for name, r in t["Resources"].items():
        if r["Type"] != "AWS::IAM::Role":
            continue
        for st in statements(t, name):
            if st.get("Effect") != "Allow":
                continue
            actions = [a for a in as_list(st["Action"]) if a.startswith("kms:")]
            if not any(a in ("kms:Decrypt", "kms:ReEncryptFrom") or a.startswith("kms:ReEncrypt") for a in actions):
                continue
            if name in TOKEN_ROLES:
                continue
            cond = st.get("Condition", {})
            grant = cond.get("StringLike", {}).get("kms:EncryptionContext:grant_id") or cond.get("StringEquals", {}).get(
                "kms:EncryptionContext:grant_id")
            assert grant == WEBHOOK_SECRET_GRANT, (
                f"{name}/{st.get('Sid', '?')}: may decrypt token blobs; only {sorted(TOKEN_ROLES)} may "
                f"(others need kms:EncryptionContext:grant_id like {WEBHOOK_SECRET_GRANT!r})")
            assert cond.get("StringEquals", {}).get("kms:EncryptionContext:provider") == "zoho", (
                f"{name}/{st.get('Sid', '?')}: webhook secrets exist for Zoho only")


def check_webhook_receiver_reads_only_the_org_index(t):
    for st in statements(t, "WebhookReceiverRole"):
        for res in as_list(st["Resource"]):
            assert not _refers_to(res, "GrantsTable") or isinstance(intrinsic(res)[1], str) and "/index/org" in intrinsic(res)[1], (
                f"WebhookReceiverRole/{st.get('Sid', '?')}: the grants table itself (GRANT# items hold sealed tokens); "
                "only its org index")
    assert not any(any(_refers_to(res, "WebhookKeysSecret") for res in as_list(st["Resource"]))
                   for st in statements(t, "OAuthCallbackRole")), "OAuthCallbackRole does not need the webhook keys"


def check_ephemeral_table_statements_have_leading_keys(t):
    # shared/src/connect/state.rs keys states and connect URL ids under TENANT#<t>;
    # shared/src/webhooks/nonce.rs keys nonces WEBHOOK#<provider>#<key>.
    expected = {"OAuthCallbackRole": ["TENANT#*"], "WebhookReceiverRole": ["WEBHOOK#*"], "SyncWorkerRole": ["WEBHOOK#*"]}
    for name, r in t["Resources"].items():
        if r["Type"] != "AWS::IAM::Role":
            continue
        for st in statements(t, name):
            if not any(_refers_to(res, "EphemeralTable") for res in as_list(st["Resource"])):
                continue
            keys = st.get("Condition", {}).get("ForAllValues:StringLike", {}).get("dynamodb:LeadingKeys")
            assert keys, f"{name}/{st.get('Sid', '?')}: ephemeral table access without dynamodb:LeadingKeys"
            if name in expected:
                assert keys == expected[name], f"{name}/{st.get('Sid', '?')}: LeadingKeys {keys}, expected {expected[name]}"
    receiver = [a for st in statements(t, "WebhookReceiverRole") if any(_refers_to(r, "EphemeralTable") for r in as_list(st["Resource"]))
                for a in as_list(st["Action"])]
    for action in ("dynamodb:PutItem", "dynamodb:DeleteItem"):
        assert action in receiver, f"WebhookReceiverRole needs {action} on nonces (claim, release)"
    # The worker confirms a delivery's claim when it takes one of its jobs, and does nothing else there.
    worker = [a for st in statements(t, "SyncWorkerRole") if any(_refers_to(r, "EphemeralTable") for r in as_list(st["Resource"]))
              for a in as_list(st["Action"])]
    assert worker == ["dynamodb:UpdateItem"], f"SyncWorkerRole on nonces: {worker}, expected UpdateItem (confirm) only"


CRYPTO_ACTIONS = {"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncryptFrom",
                  "kms:ReEncryptTo", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:*", "*"}


def check_key_policy_separates_administration_from_use(t):
    policy = t["Resources"]["TokenKey"]["Properties"]["KeyPolicy"]["Statement"]
    admin = [st for st in policy if st.get("Effect") == "Allow" and any(a.startswith("kms:Create") or a == "kms:*" for a in as_list(st["Action"]))]
    assert admin, "TokenKey: no administration statement"
    for st in admin:
        crypto = CRYPTO_ACTIONS & set(as_list(st["Action"]))
        assert not crypto, f"TokenKey/{st.get('Sid', '?')}: administration also grants {sorted(crypto)}"
    for st in policy:
        if st.get("Effect") == "Allow" and {"kms:Decrypt", "kms:GenerateDataKey"} & set(as_list(st["Action"])):
            assert st.get("Condition"), f"TokenKey/{st.get('Sid', '?')}: use of the key is not limited to the stack's roles"
    for st in admin:
        # kms:Create* includes CreateGrant, with which the administrator could grant itself Decrypt.
        bad = {a for a in as_list(st["Action"]) if a in ("kms:Create*", "kms:CreateGrant", "kms:*")}
        assert not bad, f"TokenKey/{st.get('Sid', '?')}: administration may {sorted(bad)} (a grant of Decrypt to itself)"
    deny = [st for st in policy if st.get("Effect") == "Deny" and "kms:Decrypt" in as_list(st["Action"])
            and st.get("Condition", {}).get("Null", {}).get("kms:EncryptionContextKeys") == "true"]
    assert deny, "TokenKey: no Deny of kms:Decrypt without an encryption context"


def check_alarms_page_for_handled_failures(t):
    """Handled failures never reach Lambda's Errors metric: the EMF totals, the queues' age and the
    receiver's latency must be alarmed."""
    alarms = [r["Properties"] for r in t["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    emf = {a["MetricName"] for a in alarms if a.get("Namespace") == "TalkToYourAccounts/Integrations"}
    with open(os.path.join(ROOT, "shared", "src", "telemetry.rs"), encoding="utf-8") as f:
        m = re.search(r"ALARMED_TOTALS: \[&str; \d+\] =\s*\[([^\]]*)\]", f.read())
    assert m, "ALARMED_TOTALS not found in shared/src/telemetry.rs"
    totals = set(re.findall(r'"([A-Za-z]+)"', m.group(1)))
    assert totals <= emf, f"EMF totals without an alarm: {sorted(totals - emf)}"
    # telemetry.rs publishes each total with exactly the deployment's dimensions (service, stage):
    # an alarm with any other set reads a series nothing writes, and one without stage mixes dev
    # into prod.
    for a in alarms:
        if a.get("Namespace") == "TalkToYourAccounts/Integrations":
            dims = {d["Name"]: d["Value"] for d in a.get("Dimensions", [])}
            assert set(dims) == {"service", "stage"}, f"{a['MetricName']}: alarm must read the service+stage total, has {sorted(dims)}"
            assert dims["service"] == "ttya-integrations", f"{a['MetricName']}: service must be ttya-integrations (telemetry::SERVICE)"
            assert intrinsic(dims["stage"]) == ("Ref", "Stage"), f"{a['MetricName']}: stage must be !Ref Stage"
    aged = set()
    for a in alarms:
        if a.get("MetricName") == "ApproximateAgeOfOldestMessage":
            for d in a.get("Dimensions", []):
                call = intrinsic(d["Value"])
                if call and call[0] == "Fn::GetAtt":
                    aged.add(call[1][0])
    want = {"SyncHighQueue", "SyncNormalQueue", "SyncLowQueue", "EventsQueue"}
    assert want <= aged, f"queues without an age alarm: {sorted(want - aged)}"
    slow = [a for a in alarms if a.get("MetricName") == "Duration" and a.get("ExtendedStatistic") == "p99"
            and any(intrinsic(d["Value"]) == ("Ref", "WebhookReceiverFunction") for d in a.get("Dimensions", []))]
    assert slow and min(float(a["Threshold"]) for a in slow) < 3000, "webhook-receiver p99 duration must alarm below 3 s"


def check_schedules_retry_and_dead_letter(t):
    """Every scheduled function: EventBridge Scheduler (ScheduleV2) with a bounded retry policy and a
    dead-letter queue that is alarmed (check_dead_letter_queues_alarmed covers redrive DLQs only)."""
    alarmed = set()
    for r in t["Resources"].values():
        if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"].get("Namespace") == "AWS/SQS":
            for d in r["Properties"].get("Dimensions", []):
                call = intrinsic(d["Value"])
                if call and call[0] == "Fn::GetAtt":
                    alarmed.add(call[1][0])
    seen = 0
    for name, fn in functions(t).items():
        for ev_name, ev in fn["Properties"].get("Events", {}).items():
            if ev["Type"] in ("Schedule", "ScheduleV2"):
                assert ev["Type"] == "ScheduleV2", f"{name}/{ev_name}: use EventBridge Scheduler (ScheduleV2)"
                p = ev["Properties"]
                retry = p.get("RetryPolicy", {})
                assert "MaximumRetryAttempts" in retry and "MaximumEventAgeInSeconds" in retry, f"{name}/{ev_name}: RetryPolicy"
                dlq = intrinsic(p.get("DeadLetterConfig", {}).get("Arn"))
                assert dlq and dlq[0] == "Fn::GetAtt", f"{name}/{ev_name}: DeadLetterConfig.Arn"
                assert dlq[1][0] in alarmed, f"{name}/{ev_name}: dead-letter queue {dlq[1][0]} has no depth alarm"
                seen += 1
    assert "SyncSchedulerFunction" in functions(t), "no SyncSchedulerFunction"
    assert any(ev["Type"] == "ScheduleV2" for ev in t["Resources"]["SyncSchedulerFunction"]["Properties"]["Events"].values()), (
        "the sync scheduler has no schedule")
    assert seen >= 3, f"expected the refresher's two schedules and the sync scheduler's, found {seen}"


def _actions_on(t, role: str, resource: str) -> list[tuple[str, dict]]:
    out = []
    for st in statements(t, role):
        if any(_refers_to(r, resource) for r in as_list(st["Resource"])):
            out += [(a, st) for a in as_list(st["Action"])]
    return out


RESILIENCE_KEYS = ["ORG#*", "APP#*"]


def check_resilience_table_statements_admit_its_keys(t):
    """The resilience table's items are keyed per provider org (ORG#<provider>#<org>, shared by
    every tenant connected to it) and per provider (APP#<provider>), as shared/src/resilience writes
    them. A statement limited to TENANT# would be refused on AWS (moto does not enforce IAM), so every
    statement on the table carries exactly these LeadingKeys."""
    src = os.path.join(ROOT, "shared", "src", "resilience")
    with open(os.path.join(src, "limiter.rs"), encoding="utf-8") as f:
        assert 'format!("ORG#{}#{}", provider.as_str(), org_id)' in f.read(), "limiter.rs keys orgs otherwise: update RESILIENCE_KEYS"
    with open(os.path.join(src, "breaker.rs"), encoding="utf-8") as f:
        assert 'format!("APP#{}", provider.as_str())' in f.read(), "breaker.rs keys the app item otherwise: update RESILIENCE_KEYS"
    seen = False
    for name, r in t["Resources"].items():
        if r["Type"] != "AWS::IAM::Role":
            continue
        for st in statements(t, name):
            if not any(_refers_to(res, "ResilienceTable") for res in as_list(st["Resource"])):
                continue
            seen = True
            keys = st.get("Condition", {}).get("ForAllValues:StringLike", {}).get("dynamodb:LeadingKeys")
            assert keys == RESILIENCE_KEYS, (
                f"{name}/{st.get('Sid', '?')}: resilience table LeadingKeys {keys}, expected {RESILIENCE_KEYS} "
                "(org items are ORG#<provider>#<org>, app items APP#<provider>)")
    assert seen, "no role reaches the resilience table"
    # The sync worker's calls and the connect flow's (Zoho webhook registration, issue 20 #10) both
    # go through the guard, which reads and updates the org's limit and breaker items.
    for role in ("SyncWorkerRole", "OAuthCallbackRole"):
        actions = {a for st in statements(t, role) if any(_refers_to(r, "ResilienceTable") for r in as_list(st["Resource"]))
                   for a in as_list(st["Action"])}
        assert {"dynamodb:GetItem", "dynamodb:UpdateItem"} <= actions, f"{role} on the resilience table: {sorted(actions)}"


def check_sync_scheduler_role(t):
    """The scheduler handles no tokens: no KMS, no secrets; on the grants table only conditional
    updates of tenant-owned items and queries of the sync_due index (never GRANT# reads)."""
    role = "SyncSchedulerRole"
    for st in statements(t, role):
        for a in as_list(st["Action"]):
            assert not a.startswith("kms:") and not a.startswith("secretsmanager:"), f"{role}/{st.get('Sid', '?')}: {a}"
    for action, st in _actions_on(t, role, "GrantsTable"):
        res = [intrinsic(r) for r in as_list(st["Resource"])]
        index_only = all(r and r[0] == "Fn::Sub" and isinstance(r[1], str) and r[1].endswith("/index/sync_due") for r in res)
        if index_only:
            assert action == "dynamodb:Query", f"{role}/{st.get('Sid', '?')}: only Query on the sync_due index"
            continue
        assert action == "dynamodb:UpdateItem", f"{role}/{st.get('Sid', '?')}: {action} on the grants table (only UpdateItem)"
        keys = st.get("Condition", {}).get("ForAllValues:StringLike", {}).get("dynamodb:LeadingKeys")
        assert keys == ["TENANT#*"], f"{role}/{st.get('Sid', '?')}: grants updates need LeadingKeys TENANT#*"
    for table in ("TenantsTable", "ResilienceTable", "EphemeralTable"):
        for action, st in _actions_on(t, role, table):
            assert action == "dynamodb:GetItem" and table != "EphemeralTable", f"{role}/{st.get('Sid', '?')}: {action} on {table}"
    # The sync table: only the parked jobs it releases (Query and DeleteItem under a tenant).
    for action, st in _actions_on(t, role, "SyncTable"):
        assert action in ("dynamodb:Query", "dynamodb:DeleteItem"), f"{role}/{st.get('Sid', '?')}: {action} on SyncTable"
        keys = st.get("Condition", {}).get("ForAllValues:StringLike", {}).get("dynamodb:LeadingKeys")
        assert keys == ["TENANT#*"], f"{role}/{st.get('Sid', '?')}: sync table access needs LeadingKeys TENANT#*"
    # The callback may start an initial sync on the low queue, nothing else.
    sent = {intrinsic(r)[1][0] for st in statements(t, "OAuthCallbackRole") if "sqs:SendMessage" in as_list(st["Action"])
            for r in as_list(st["Resource"])}
    assert sent == {"EventsQueue", "SyncLowQueue"}, f"OAuthCallbackRole sends to {sorted(sent)}"


# What the scheduler's grants-table updates may name (its update and condition expressions in
# shared/src/sync/schedule.rs and initial.rs). Token, status-changing and version attributes are
# never among them.
SCHEDULER_ATTRIBUTES = {"pk", "sk", "status", "grant_id", "sync_pk", "next_sync_at", "init_claim_until", "init_entities",
                        "init_sent_at", "init_done", "init_completed_at", "parked_jobs_at"}


def check_sync_scheduler_updates_only_schedule_attributes(t):
    """IAM cannot condition on a sort key, so the scheduler's UpdateItem on the grants table is held
    to the schedule's attributes and returns nothing of the item."""
    for action, st in _actions_on(t, "SyncSchedulerRole", "GrantsTable"):
        if action != "dynamodb:UpdateItem":
            continue
        cond = st.get("Condition", {})
        attrs = set(cond.get("ForAllValues:StringEquals", {}).get("dynamodb:Attributes", []))
        assert attrs, f"SyncSchedulerRole/{st.get('Sid', '?')}: UpdateItem without a dynamodb:Attributes allowlist"
        assert attrs <= SCHEDULER_ATTRIBUTES, f"SyncSchedulerRole/{st.get('Sid', '?')}: may also write {sorted(attrs - SCHEDULER_ATTRIBUTES)}"
        rv = set(cond.get("StringEqualsIfExists", {}).get("dynamodb:ReturnValues", []))
        assert rv and rv <= {"NONE", "UPDATED_OLD", "UPDATED_NEW"}, f"SyncSchedulerRole/{st.get('Sid', '?')}: ReturnValues {sorted(rv)}"
    # Every attribute the scheduler's update and condition expressions name must be allowed.
    words = {"SET", "REMOVE", "ADD", "DELETE", "AND", "OR", "NOT", "attribute_exists", "attribute_not_exists", "IN", "BETWEEN"}
    for src in ("sync/schedule.rs", "initial_sync.rs"):
        with open(os.path.join(ROOT, "shared", "src", src), encoding="utf-8") as f:
            code = f.read()
        named = set(re.findall(r'expression_attribute_names\("#\w+",\s*"(\w+)"\)', code))
        exprs = re.findall(r'(?:update|condition)_expression\(\s*"((?:[^"\\]|\\.)*)"', code)
        raw = {w for e in exprs for w in re.findall(r'(?<![:#\w])([A-Za-z_]\w*)', e)} - words
        unknown = (named | raw) - SCHEDULER_ATTRIBUTES
        assert not unknown, f"shared/src/{src} names {sorted(unknown)}, outside SyncSchedulerRole's dynamodb:Attributes"
    # The scheduler also clears the parked-jobs mark on connection items (sync/parked.rs clear_mark).
    with open(os.path.join(ROOT, "shared", "src", "sync", "parked.rs"), encoding="utf-8") as f:
        m = re.search(r'pub const CONNECTION_MARK: &str = "(\w+)"', f.read())
    assert m, "CONNECTION_MARK not found in shared/src/sync/parked.rs"
    for action, st in _actions_on(t, "SyncSchedulerRole", "GrantsTable"):
        if action == "dynamodb:UpdateItem":
            attrs = set(st.get("Condition", {}).get("ForAllValues:StringEquals", {}).get("dynamodb:Attributes", []))
            assert m.group(1) in attrs, f"SyncSchedulerRole may not clear the parked-jobs mark {m.group(1)!r} (sync/parked.rs)"


def check_sync_worker_deletes_nothing(t):
    """The worker releases a job claim by update; no DeleteItem on tenant data."""
    for st in statements(t, "SyncWorkerRole"):
        assert "dynamodb:DeleteItem" not in as_list(st["Action"]), f"SyncWorkerRole/{st.get('Sid', '?')}: DeleteItem"


def check_operator_role(t):
    """ttya-ops runs as OperatorRole: the token key's policy admits it by name, and it opens tokens
    only under the encryption context, as the function roles do."""
    import fnmatch
    r = t["Resources"].get("OperatorRole")
    assert r and r["Type"] == "AWS::IAM::Role", "no OperatorRole (ttya-ops is locked out of the token key on AWS)"
    policy = t["Resources"]["TokenKey"]["Properties"]["KeyPolicy"]["Statement"]
    use = [st for st in policy if st.get("Effect") == "Allow" and "kms:Decrypt" in as_list(st["Action"])]
    patterns = []
    for st in use:
        arn = intrinsic(st.get("Condition", {}).get("ArnLike", {}).get("aws:PrincipalArn"))
        if arn and arn[0] == "Fn::Sub":
            patterns.append(arn[1].replace("${AWS::Partition}", "aws").replace("${AWS::AccountId}", "123456789012")
                            .replace("${AWS::StackName}", "ttya-dev"))
    # CloudFormation names an unnamed role <stack>-<LogicalId>-<suffix>; a RoleName would break that.
    for name, res in t["Resources"].items():
        if res["Type"] != "AWS::IAM::Role":
            continue
        uses_key = any(a.startswith("kms:") for st in statements(t, name) for a in as_list(st["Action"]))
        if not uses_key:
            continue
        assert "RoleName" not in res["Properties"], f"{name}: a RoleName would take it out of the key policy's pattern"
        arn = f"arn:aws:iam::123456789012:role/ttya-dev-{name}-ABCDEF123456"
        assert any(fnmatch.fnmatch(arn, p) for p in patterns), f"{name}: the token key's policy does not admit {arn}"
    kms = [(a, st) for st in statements(t, "OperatorRole") for a in as_list(st["Action"]) if a.startswith("kms:")]
    assert {"kms:Decrypt", "kms:GenerateDataKey"} <= {a for a, _ in kms}, "OperatorRole cannot open or seal tokens"
    for a, st in kms:
        if a == "kms:DescribeKey":
            continue
        cond = st.get("Condition", {})
        assert set(cond.get("ForAllValues:StringEquals", {}).get("kms:EncryptionContextKeys", [])) == KMS_CONTEXT_KEYS, (
            f"OperatorRole/{st.get('Sid', '?')}: {a} must be bound to the encryption context keys")
    for st in statements(t, "OperatorRole"):
        for res in as_list(st["Resource"]):
            assert res != "*", f"OperatorRole/{st.get('Sid', '?')}: Resource '*'"
        for a in as_list(st["Action"]):
            assert not a.endswith(":*") and a != "*", f"OperatorRole/{st.get('Sid', '?')}: wildcard action {a}"
    outputs = t.get("Outputs", {})
    assert intrinsic(outputs.get("OperatorRoleArn", {}).get("Value")) == ("Fn::GetAtt", ["OperatorRole", "Arn"]), "no OperatorRoleArn output"
    with open(os.path.join(ROOT, "infra", "README.md"), encoding="utf-8") as f:
        assert "OperatorRole" in f.read(), "infra/README.md does not tell operators to run ttya-ops as OperatorRole"


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
        ("GET", "/v1/tenants/{tenant}/connections", "records-api"),
        ("GET", "/v1/tenants/{tenant}/connections/{provider}/{org}/records/{entity}", "records-api"),
        ("GET", "/v1/tenants/{tenant}/connections/{provider}/{org}/records/{entity}/{id}", "records-api"),
    }
    assert expected <= routes, f"missing routes: {sorted(expected - routes)}"
    # The OpenAPI document of the records API names exactly the routes the template sends it.
    with open(os.path.join(ROOT, "schemas", "records-api.v1.json"), encoding="utf-8") as f:
        documented = {("GET", p) for p in json.load(f)["paths"]}
    served = {(m, p) for m, p, b in routes if b == "records-api"}
    assert documented == served, f"records API: template routes {sorted(served)} != schemas/records-api.v1.json {sorted(documented)}"


# The record indexes: name -> (hash, range), as shared/src/sync/record_index.rs writes them.
RECORD_INDEXES = {
    "records_by_modified": ("rx_scope", "rx_mod"),
    "records_by_due": ("rx_scope", "rx_due"),
    "records_by_issue": ("rx_scope", "rx_issue"),
    "records_by_status": ("rx_status", "rx_mod"),
    "records_by_contact": ("rx_contact", "rx_mod"),
}


def check_sync_table_record_indexes(t):
    """The sync table's GSIs are the records API's, keyed as the record writer keys them, and every
    attribute the API filters on within an index is projected into it (a filter on an attribute the
    index lacks silently matches nothing)."""
    with open(os.path.join(ROOT, "shared", "src", "sync", "record_index.rs"), encoding="utf-8") as f:
        code = f.read()
    consts = dict(re.findall(r'pub const (\w+): &str = "(\w+)";', code))
    for index, (h, r) in RECORD_INDEXES.items():
        assert index in consts.values(), f"record_index.rs does not name the index {index}"
        assert h in consts.values() and r in consts.values(), f"record_index.rs does not name {h}/{r}"
    p = t["Resources"]["SyncTable"]["Properties"]
    gsis = {g["IndexName"]: g for g in p.get("GlobalSecondaryIndexes", [])}
    assert set(gsis) == set(RECORD_INDEXES), f"SyncTable indexes {sorted(gsis)}, expected {sorted(RECORD_INDEXES)}"
    defined = {a["AttributeName"]: a["AttributeType"] for a in p["AttributeDefinitions"]}
    filters = {"records_by_modified": {"deleted"}, "records_by_due": {"deleted", "rx_mod", "rx_issue"},
               "records_by_issue": {"deleted", "rx_mod"}, "records_by_status": {"deleted", "rx_due", "rx_issue"},
               "records_by_contact": {"deleted", "rx_due", "rx_issue", "rx_status"}}
    for name, (h, r) in RECORD_INDEXES.items():
        g = gsis[name]
        assert [(k["AttributeName"], k["KeyType"]) for k in g["KeySchema"]] == [(h, "HASH"), (r, "RANGE")], f"{name}: key schema"
        assert defined.get(h) == "S" and defined.get(r) == "S", f"{name}: {h}/{r} need string AttributeDefinitions"
        proj = g["Projection"]
        projected = set(proj.get("NonKeyAttributes", [])) | {h, r, "pk", "sk"}
        assert proj["ProjectionType"] == "ALL" or {"doc"} | filters[name] <= projected, (
            f"{name}: projects {sorted(projected)}, the API reads doc and filters on {sorted(filters[name])}")
    unused = set(defined) - {"pk", "sk"} - {a for k in RECORD_INDEXES.values() for a in k}
    assert not unused, f"SyncTable AttributeDefinitions no index uses: {sorted(unused)}"


def check_records_api_role(t):
    """The records API reads, and only what it serves: the tenant and role, connections, and records
    (GetItem/BatchGetItem on the table, Query only through the record indexes), every one under
    TENANT#; the app's signing keys; no KMS, no queues, no writes."""
    role = "RecordsApiRole"
    assert role_of(t["Resources"]["RecordsApiFunction"]) == role, "RecordsApiFunction must use RecordsApiRole"
    allowed = {"TenantsTable": {"dynamodb:GetItem"}, "GrantsTable": {"dynamodb:GetItem", "dynamodb:Query"},
               "SyncTable": {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"}}
    index_queries = set()
    for st in statements(t, role):
        sid = st.get("Sid", "?")
        assert st.get("Effect") == "Allow", f"{role}/{sid}: only Allow statements"
        actions = as_list(st["Action"])
        if sid == "Logs":
            continue
        if any(a.startswith("secretsmanager:") for a in actions):
            assert actions == ["secretsmanager:GetSecretValue"], f"{role}/{sid}: {actions}"
            assert [intrinsic(r) for r in as_list(st["Resource"])] == [("Ref", "AppSigningSecret")], f"{role}/{sid}: only the app signing keys"
            continue
        for a in actions:
            assert a.startswith("dynamodb:"), f"{role}/{sid}: {a} (no KMS, SQS or anything else)"
        keys = st.get("Condition", {}).get("ForAllValues:StringLike", {}).get("dynamodb:LeadingKeys")
        assert keys == ["TENANT#*"], f"{role}/{sid}: needs dynamodb:LeadingKeys TENANT#*"
        for res in as_list(st["Resource"]):
            call = intrinsic(res)
            if call and call[0] == "Fn::Sub" and isinstance(call[1], str) and "/index/" in call[1]:
                base, index = call[1].split("/index/")
                assert base == "${SyncTable.Arn}" and index in RECORD_INDEXES, f"{role}/{sid}: index {call[1]}"
                assert actions == ["dynamodb:Query"], f"{role}/{sid}: only Query on the record indexes"
                index_queries.add(index)
                continue
            table = call[1][0] if call and call[0] == "Fn::GetAtt" else None
            assert table in allowed, f"{role}/{sid}: {res}"
            extra = set(actions) - allowed[table] - ({"dynamodb:Query"} if table == "GrantsTable" else set())
            assert not extra, f"{role}/{sid}: {sorted(extra)} on {table}"
            assert not (table == "SyncTable" and "dynamodb:Query" in actions), f"{role}/{sid}: Query the record indexes, not the table"
    assert index_queries == set(RECORD_INDEXES), f"{role}: may query {sorted(index_queries)}, the API queries {sorted(RECORD_INDEXES)}"


# What the operations dashboard must show (issue 23's "picture of health"); the check below proves
# each is a metric the code emits, with the dimensions the dashboard reads.
DASHBOARD_MUST_SHOW = {"WebhookJobsEnqueued", "WebhookDuplicate", "WebhookNoEvents", "WebhookRejected", "WebhookFailed",
                       "SyncJobCompleted", "SyncJobFailed", "SyncJobParked", "SyncJobDeadLettered", "SyncOldestCopySeconds",
                       "SyncStaleConnections", "SyncScheduleMostOverdueSeconds", "GrantRefreshed", "GrantNeedsReauth",
                       "GrantRefreshFailed", "CircuitBreakerTransition", "ProviderRateLimited"}


def check_dashboard_and_alarms_name_emitted_metrics(t, root: str = ROOT):
    """Every metric of our namespace that an alarm or the dashboard names is one the Rust code
    publishes (emitted_metrics.py reads every telemetry::metric call), with exactly the dimension
    keys it is published with: otherwise the graph stays empty and the alarm never fires. SEARCH
    expressions are held to their {namespace,keys} schema (which matches exactly that set) and to
    this stage. AWS/* metrics on the dashboard name resources of this template."""
    tel = emitted_metrics.read_telemetry(root)
    emitted = emitted_metrics.emitted_metrics(root)
    res = t["Resources"]
    boards = [(n, r) for n, r in res.items() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    assert [n for n, _ in boards] == ["OperationsDashboard"], f"expected one dashboard, OperationsDashboard: {[n for n, _ in boards]}"
    board, variables = emitted_metrics.dashboard_body(boards[0][1])
    shown = emitted_metrics.dashboard_metrics(board, "OperationsDashboard")
    named = shown + emitted_metrics.alarm_metrics(t)
    unknown, wrong_dims, problems = {}, [], []
    for m in named:
        if m.namespace != tel.namespace:
            continue
        if m.name not in emitted:
            unknown.setdefault(m.name, []).append(m.where)
            continue
        keys = frozenset(k for k, _ in m.dimensions)
        published = {frozenset(s) for s in emitted[m.name]}
        if keys not in published:
            wrong_dims.append(f"{m.name} read with {sorted(keys)} in {m.where}; the code publishes it with "
                              f"{' or '.join(str(sorted(s)) for s in sorted(published, key=sorted))}")
        if m.search is not None:
            if f'stage="${{Stage}}"' not in m.search:
                problems.append(f'{m.where}: SEARCH for {m.name} must filter stage="${{Stage}}" (one stage per dashboard)')
        elif m.where.startswith("OperationsDashboard"):
            values = dict(m.dimensions)
            if values.get("stage") != "${Stage}" or values.get("service") != tel.service:
                problems.append(f"{m.where}: {m.name} must read service={tel.service} and stage=${{Stage}}")
    # The alarms' own stage/service values are held by check_alarms_page_for_handled_failures.
    lambda_seen, sqs_seen = {}, set()
    for m in shown:
        if m.search is not None and m.namespace != tel.namespace:
            problems.append(f"{m.where}: SEARCH over {m.namespace} may show other stacks' resources; name them explicitly")
        if not m.namespace.startswith("AWS/"):
            if m.namespace != tel.namespace:
                problems.append(f"{m.where}: namespace {m.namespace!r} is neither AWS/* nor ours ({tel.namespace})")
            continue
        for key, value in m.dimensions:
            ref = emitted_metrics.sub_reference(value) if isinstance(value, str) else None
            var = intrinsic(variables.get(ref)) if ref in variables else None
            target = var[1][0] if var and var[0] == "Fn::GetAtt" else var[1] if var and var[0] == "Ref" else ref
            if target not in res:
                problems.append(f"{m.where}: {m.namespace} {m.name} {key}={value!r} is not a resource of this template")
            elif m.namespace == "AWS/Lambda" and key == "FunctionName":
                lambda_seen.setdefault(target, set()).add(m.name)
            elif m.namespace == "AWS/SQS" and key == "QueueName":
                sqs_seen.add(target)
    for fn in functions(t):
        missing = {"Errors", "Duration"} - lambda_seen.get(fn, set())
        if missing:
            problems.append(f"OperationsDashboard does not show {fn}'s {sorted(missing)}")
    dlqs = {intrinsic(r["Properties"]["RedrivePolicy"]["deadLetterTargetArn"])[1][0] for r in res.values()
            if r["Type"] == "AWS::SQS::Queue" and "RedrivePolicy" in r["Properties"]}
    dlqs |= {intrinsic(ev["Properties"]["DeadLetterConfig"]["Arn"])[1][0] for fn in functions(t).values()
             for ev in fn["Properties"].get("Events", {}).values() if "DeadLetterConfig" in ev.get("Properties", {})}
    if dlqs - sqs_seen:
        problems.append(f"OperationsDashboard does not show the depth of {sorted(dlqs - sqs_seen)}")
    absent = DASHBOARD_MUST_SHOW - {m.name for m in shown if m.namespace == tel.namespace}
    if absent:
        problems.append(f"OperationsDashboard does not show {sorted(absent)}")
    if unknown:
        problems.insert(0, f"metrics named but never emitted (no telemetry::metric call under shared/src or functions/*/src): "
                        f"{', '.join(sorted(unknown))}" + "".join(f"\n    {n}: {'; '.join(sorted(set(w)))}" for n, w in sorted(unknown.items())))
    assert not (problems or wrong_dims), "\n  ".join([""] + problems + wrong_dims)


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
