#!/usr/bin/env python3
"""Provision the local AWS stack (moto) from template.yaml and write the functions' environment.

Every DynamoDB table, SQS queue, KMS key/alias and Secrets Manager secret of the template is
created as declared (names resolved with the local stack name), in dependency order. Running it
again is safe: existing resources are kept (a table whose keys or indexes no longer match the
template is recreated, since local data is disposable). Secrets get the dev-only values of
infra/local-secrets.json. Finally the template's Globals.Function.Environment.Variables are
resolved against what was created and written, with the endpoint settings, as `export` lines.

Usage: provision.py --endpoint http://127.0.0.1:PORT --out .local/aws.env [--lambda-port N]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import string
import sys
import time

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cfn import Physical, Resolver, Unresolvable, load_template, resource_order  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STACK_NAME = "ttya-local"
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account
PROVISIONED_TYPES = (
    "AWS::DynamoDB::Table",
    "AWS::SQS::Queue",
    "AWS::KMS::Key",
    "AWS::KMS::Alias",
    "AWS::SecretsManager::Secret",
)
# Exported besides the functions' own variables, for tests and scripts. Each is a template
# resource's Ref, so renaming a queue in the template still flows through.
EXTRA_EXPORTS = {"SYNC_DLQ_URL": "SyncDeadLetterQueue", "EVENTS_DLQ_URL": "EventsDeadLetterQueue"}
LOGICAL_ID_TAG = "ttya:logical-id"


def log(msg: str) -> None:
    print(f"[provision] {msg}", flush=True)


def error_code(e: ClientError) -> str:
    return e.response.get("Error", {}).get("Code", "")


class Provisioner:
    def __init__(self, endpoint: str, template: dict, resolver: Resolver, local_secrets: dict):
        session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
        cfg = BotoConfig(retries={"max_attempts": 3, "mode": "standard"})
        self.ddb = session.client("dynamodb", endpoint_url=endpoint, config=cfg)
        self.sqs = session.client("sqs", endpoint_url=endpoint, config=cfg)
        self.kms = session.client("kms", endpoint_url=endpoint, config=cfg)
        self.sm = session.client("secretsmanager", endpoint_url=endpoint, config=cfg)
        self.template = template
        self.r = resolver
        self.local_secrets = local_secrets

    def run(self) -> None:
        resources = self.template["Resources"]
        selected = {name for name, body in resources.items() if body.get("Type") in PROVISIONED_TYPES and self._wanted(body)}
        unused = set(self.local_secrets) - {n for n in selected if resources[n]["Type"] == "AWS::SecretsManager::Secret"}
        if unused:
            raise Unresolvable(f"infra/local-secrets.json has values for unknown secrets: {sorted(unused)}")
        for name in resource_order(resources, selected):
            body = resources[name]
            props = self.r.resolve(body.get("Properties", {}))
            create = {
                "AWS::DynamoDB::Table": self.table,
                "AWS::SQS::Queue": self.queue,
                "AWS::KMS::Key": self.key,
                "AWS::KMS::Alias": self.alias,
                "AWS::SecretsManager::Secret": self.secret,
            }[body["Type"]]
            self.r.physical[name] = create(name, props)

    def _wanted(self, body: dict) -> bool:
        cond = body.get("Condition")
        return cond is None or self.r.condition(cond)

    # --- DynamoDB -------------------------------------------------------------------------------

    @staticmethod
    def _table_request(props: dict) -> dict:
        req = {
            "TableName": props["TableName"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PROVISIONED"),
        }
        if req["BillingMode"] == "PROVISIONED":
            req["ProvisionedThroughput"] = props["ProvisionedThroughput"]
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if props.get(key):
                req[key] = props[key]
        sse = props.get("SSESpecification")
        if sse:
            # CloudFormation spells it SSEEnabled, the API Enabled.
            req["SSESpecification"] = {"Enabled": bool(sse.get("SSEEnabled", False))}
            for k in ("SSEType", "KMSMasterKeyId"):
                if k in sse:
                    req["SSESpecification"][k] = sse[k]
        stream = props.get("StreamSpecification")
        if stream:
            req["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
        if "DeletionProtectionEnabled" in props:
            req["DeletionProtectionEnabled"] = str(props["DeletionProtectionEnabled"]).lower() == "true"
        return req

    @staticmethod
    def _shape(keys: list, attrs: list, gsis: list) -> tuple:
        """What must match for an existing table to be reused: keys, key types, indexes."""
        types = {a["AttributeName"]: a["AttributeType"] for a in attrs}

        def ks(schema: list) -> tuple:
            return tuple((k["AttributeName"], k["KeyType"], types.get(k["AttributeName"])) for k in schema)

        indexes = tuple(sorted((g["IndexName"], ks(g["KeySchema"]), g["Projection"]["ProjectionType"]) for g in gsis))
        return ks(keys), indexes

    def table(self, name: str, props: dict) -> Physical:
        req = self._table_request(props)
        table_name = req["TableName"]
        want = self._shape(req["KeySchema"], req["AttributeDefinitions"], req.get("GlobalSecondaryIndexes", []))
        try:
            desc = self.ddb.describe_table(TableName=table_name)["Table"]
            have = self._shape(desc["KeySchema"], desc["AttributeDefinitions"], desc.get("GlobalSecondaryIndexes", []))
            if have != want:
                log(f"{name}: {table_name} differs from the template; recreating it (local data is disposable)")
                self.ddb.update_table(TableName=table_name, DeletionProtectionEnabled=False)
                self.ddb.delete_table(TableName=table_name)
                self.ddb.get_waiter("table_not_exists").wait(TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
                desc = None
        except ClientError as e:
            if error_code(e) != "ResourceNotFoundException":
                raise
            desc = None
        if desc is None:
            desc = self.ddb.create_table(**req)["TableDescription"]
            self.ddb.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
            log(f"{name}: created table {table_name}")
        else:
            log(f"{name}: table {table_name} exists")

        ttl = props.get("TimeToLiveSpecification")
        if ttl and str(ttl.get("Enabled")).lower() == "true":
            current = self.ddb.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]
            if current.get("TimeToLiveStatus") != "ENABLED" or current.get("AttributeName") != ttl["AttributeName"]:
                self.ddb.update_time_to_live(
                    TableName=table_name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]}
                )
        pitr = props.get("PointInTimeRecoverySpecification")
        if pitr and str(pitr.get("PointInTimeRecoveryEnabled")).lower() == "true":
            self.ddb.update_continuous_backups(
                TableName=table_name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
            )
        return Physical(ref=table_name, attrs={"Arn": desc["TableArn"], "StreamArn": desc.get("LatestStreamArn", "")})

    # --- SQS ------------------------------------------------------------------------------------

    _QUEUE_ATTRS = (
        "ContentBasedDeduplication", "DeduplicationScope", "DelaySeconds", "FifoQueue", "FifoThroughputLimit",
        "KmsDataKeyReusePeriodSeconds", "KmsMasterKeyId", "MaximumMessageSize", "MessageRetentionPeriod",
        "ReceiveMessageWaitTimeSeconds", "SqsManagedSseEnabled", "VisibilityTimeout",
    )

    def queue(self, name: str, props: dict) -> Physical:
        queue_name = props["QueueName"]
        attrs: dict[str, str] = {}
        for k in self._QUEUE_ATTRS:
            if k in props:
                v = props[k]
                attrs[k] = str(v).lower() if isinstance(v, bool) else str(v)
        for k in ("RedrivePolicy", "RedriveAllowPolicy"):
            if k in props:
                attrs[k] = props[k] if isinstance(props[k], str) else json.dumps(props[k])
        try:
            url = self.sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
            settable = {k: v for k, v in attrs.items() if k != "FifoQueue"}
            if settable:
                self.sqs.set_queue_attributes(QueueUrl=url, Attributes=settable)
            log(f"{name}: queue {queue_name} exists")
        except ClientError as e:
            if error_code(e) not in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
                raise
            url = self.sqs.create_queue(QueueName=queue_name, Attributes=attrs)["QueueUrl"]
            log(f"{name}: created queue {queue_name}")
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return Physical(ref=url, attrs={"Arn": arn, "QueueName": queue_name, "QueueUrl": url})

    # --- KMS ------------------------------------------------------------------------------------

    def _find_key(self, logical_tag: str) -> str | None:
        for page in self.kms.get_paginator("list_keys").paginate():
            for k in page["Keys"]:
                meta = self.kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"]
                if meta.get("KeyState") in ("PendingDeletion", "PendingReplicaDeletion"):
                    continue
                tags = self.kms.list_resource_tags(KeyId=k["KeyId"]).get("Tags", [])
                if any(t["TagKey"] == LOGICAL_ID_TAG and t["TagValue"] == logical_tag for t in tags):
                    return k["KeyId"]
        return None

    def key(self, name: str, props: dict) -> Physical:
        # Keys have no name: find ours again by a tag holding stack and logical id.
        logical_tag = f"{STACK_NAME}/{name}"
        key_id = self._find_key(logical_tag)
        if key_id:
            log(f"{name}: key {key_id} exists")
        else:
            req = {
                "Description": props.get("Description", ""),
                "KeyUsage": props.get("KeyUsage", "ENCRYPT_DECRYPT"),
                "KeySpec": props.get("KeySpec", "SYMMETRIC_DEFAULT"),
                "Tags": [{"TagKey": LOGICAL_ID_TAG, "TagValue": logical_tag}],
            }
            if "KeyPolicy" in props:
                req["Policy"] = json.dumps(props["KeyPolicy"])
            key_id = self.kms.create_key(**req)["KeyMetadata"]["KeyId"]
            log(f"{name}: created key {key_id}")
        if str(props.get("EnableKeyRotation", "false")).lower() == "true":
            self.kms.enable_key_rotation(KeyId=key_id)
        arn = self.kms.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]
        return Physical(ref=key_id, attrs={"Arn": arn, "KeyId": key_id})

    def alias(self, name: str, props: dict) -> Physical:
        alias_name, target = props["AliasName"], props["TargetKeyId"]
        existing = {a["AliasName"]: a.get("TargetKeyId") for p in self.kms.get_paginator("list_aliases").paginate() for a in p["Aliases"]}
        if alias_name not in existing:
            self.kms.create_alias(AliasName=alias_name, TargetKeyId=target)
            log(f"{name}: created alias {alias_name}")
        elif existing[alias_name] != target:
            self.kms.update_alias(AliasName=alias_name, TargetKeyId=target)
            log(f"{name}: alias {alias_name} now points at {target}")
        return Physical(ref=alias_name)

    # --- Secrets Manager -------------------------------------------------------------------------

    @staticmethod
    def _generated(spec: dict) -> str:
        length = int(spec.get("PasswordLength", 32))
        alphabet = string.ascii_letters + string.digits
        if str(spec.get("ExcludePunctuation", "false")).lower() != "true":
            alphabet += "!#$%&()*+,-.:;<=>?@[]^_{|}~"
        value = "".join(secrets.choice(alphabet) for _ in range(length))
        if "SecretStringTemplate" in spec:
            doc = json.loads(spec["SecretStringTemplate"])
            doc[spec["GenerateStringKey"]] = value
            return json.dumps(doc)
        return value

    def secret(self, name: str, props: dict) -> Physical:
        secret_name = props["Name"]
        if name in self.local_secrets:
            value = json.dumps(self.local_secrets[name], separators=(",", ":"))
        elif "SecretString" in props:
            value = props["SecretString"]
        else:
            value = self._generated(props.get("GenerateSecretString", {}))
        try:
            arn = self.sm.describe_secret(SecretId=secret_name)["ARN"]
            current = self.sm.get_secret_value(SecretId=arn).get("SecretString")
            # Only the dev-only local values are enforced; a generated value is left as it is.
            if name in self.local_secrets and current != value:
                self.sm.put_secret_value(SecretId=arn, SecretString=value)
                log(f"{name}: secret {secret_name} reset to its local value")
            else:
                log(f"{name}: secret {secret_name} exists")
        except ClientError as e:
            if error_code(e) != "ResourceNotFoundException":
                raise
            arn = self.sm.create_secret(Name=secret_name, Description=props.get("Description", ""), SecretString=value)["ARN"]
            log(f"{name}: created secret {secret_name}")
        return Physical(ref=arn, attrs={"Id": arn})


def environment(template: dict, resolver: Resolver) -> dict[str, str]:
    """Globals.Function.Environment.Variables, resolved. Empty values are left out: the functions
    treat empty as unset, and leaving them out lets the caller set them (PROVIDER_BASE_URL)."""
    variables = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    if not variables:
        raise Unresolvable("template.yaml has no Globals.Function.Environment.Variables")
    for fname, body in template["Resources"].items():
        if body.get("Type") == "AWS::Serverless::Function" and body.get("Properties", {}).get("Environment"):
            log(f"warning: {fname} has its own Environment; the local env only carries the Globals")
    env = {}
    for k, v in variables.items():
        value = resolver.resolve(v)
        if isinstance(value, (dict, list)):
            raise Unresolvable(f"environment variable {k} resolved to a non-scalar {value!r}")
        if str(value) != "":
            env[k] = str(value)
    return env


def write_env(path: str, values: dict[str, str]) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    lines = ["# Generated by infra/provision.py from template.yaml. Do not edit: run infra/local-aws.sh up."]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in values.items()]
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", required=True, help="moto server URL")
    ap.add_argument("--out", required=True, help="env file to write")
    ap.add_argument("--template", default=os.path.join(ROOT, "template.yaml"))
    ap.add_argument("--secrets", default=os.path.join(ROOT, "infra", "local-secrets.json"))
    ap.add_argument("--lambda-port", type=int, default=9000, help="port of the local Lambda emulator")
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="template parameter override")
    ap.add_argument("--sam-env-vars", metavar="FILE",
                    help="also write a `sam local invoke --env-vars` file for the local stack (see infra/README.md)")
    ap.add_argument("--sam-host", default="host.docker.internal",
                    help="how a SAM container reaches this machine (default host.docker.internal)")
    args = ap.parse_args()

    started = time.monotonic()
    template = load_template(args.template)
    lambda_base = f"http://127.0.0.1:{args.lambda_port}"
    # Redirect URIs become {PublicBaseUrl}/oauth/{provider}/callback; cargo lambda watch serves the
    # oauth-callback function under /lambda-url/oauth-callback, so that is the local base.
    params = {"Stage": "dev", "PublicBaseUrl": f"{lambda_base}/lambda-url/oauth-callback"}
    for p in args.param:
        k, sep, v = p.partition("=")
        if not sep:
            ap.error(f"--param wants NAME=VALUE, got {p!r}")
        params[k] = v
    pseudo = {
        "AWS::StackName": STACK_NAME,
        "AWS::Region": REGION,
        "AWS::AccountId": ACCOUNT_ID,
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{STACK_NAME}/local",
    }
    with open(args.secrets, encoding="utf-8") as f:
        local_secrets = json.load(f)
    local_secrets.pop("_comment", None)

    try:
        resolver = Resolver(template, params, pseudo)
        Provisioner(args.endpoint, template, resolver, local_secrets).run()
        env = {
            "AWS_ENDPOINT_URL": args.endpoint,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            # Credentials and region come from the environment; never wait for an instance metadata service.
            "AWS_EC2_METADATA_DISABLED": "true",
            "MOTO_PORT": args.endpoint.rsplit(":", 1)[-1].strip("/"),
            "LAMBDA_PORT": str(args.lambda_port),
        }
        env.update(environment(template, resolver))
        for var, logical in EXTRA_EXPORTS.items():
            env[var] = str(resolver.ref(logical))
    except Unresolvable as e:
        print(f"[provision] error: {e}", file=sys.stderr)
        return 1
    write_env(args.out, env)
    log(f"wrote {args.out} ({len(env)} variables) in {time.monotonic() - started:.1f}s")
    if args.sam_env_vars:
        write_sam_env_vars(args.sam_env_vars, template, environment(template, resolver), args.sam_host)
    return 0


def sam_env_vars(template: dict, env: dict[str, str], host: str) -> dict:
    """`sam local invoke --env-vars` content: every function gets the template's variables with the
    local stack's values, 127.0.0.1 rewritten to `host` (inside the container 127.0.0.1 is the
    container). SAM only overrides variables the template declares, so AWS_ENDPOINT_URL cannot be
    passed this way: see infra/README.md for what that means."""
    def rewrite(v: str) -> str:
        return v.replace("127.0.0.1", host).replace("localhost", host)
    values = {k: rewrite(v) for k, v in env.items()}
    functions = [n for n, r in template["Resources"].items() if r.get("Type") == "AWS::Serverless::Function"]
    return {"Parameters": values, **{f: dict(values) for f in sorted(functions)}}


def write_sam_env_vars(path: str, template: dict, env: dict[str, str], host: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(sam_env_vars(template, env, host), f, indent=2, sort_keys=True)
        f.write("\n")
    log(f"wrote {path} (sam local invoke --env-vars)")


if __name__ == "__main__":
    sys.exit(main())
