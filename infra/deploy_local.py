#!/usr/bin/env python3
"""Deploys template.yaml into MiniStack with CloudFormation, then makes up for what MiniStack misses.

    deploy_local.py --endpoint http://127.0.0.1:PORT --binaries target/debug --env-out .local/stack.env \
        --param ProviderBaseUrl=http://127.0.0.1:SANDBOX [--param NAME=VALUE ...]

1. Package, as `sam package` would: each AWS::Serverless::Function's binary (Metadata
   BuildProperties.Binary, built beforehand by `cargo build --workspace --bins`) is stripped of its
   debug info, zipped as `bootstrap` and uploaded to a bucket of MiniStack's S3; CodeUri points
   there. The packaged template goes to S3 too (CreateStack's TemplateBody stops at 51,200 bytes).
2. CreateStack with the SAM transform, then UpdateStack with PublicBaseUrl set to the stack's own
   HTTP API URL (in AWS a custom domain known beforehand plays that part; locally the API's id is
   only known once it exists). Both go through CloudFormation: the functions' variables are the
   template's.
3. The post-deploy step (post_deploy below), driven by the template, for what MiniStack's
   CloudFormation accepts but does not apply (docs/local-stack.md):
   - HTTP API routes: SAM puts them in the API's OpenAPI body, which MiniStack ignores; each
     function's `HttpApi` events become CreateIntegration (AWS_PROXY, payload 2.0) + CreateRoute;
   - DynamoDB TimeToLiveSpecification, PointInTimeRecoverySpecification and SSESpecification:
     UpdateTimeToLive, UpdateContinuousBackups, UpdateTable;
   - LoggingConfig: the variables Lambda derives from it (AWS_LAMBDA_LOG_FORMAT,
     AWS_LAMBDA_LOG_LEVEL) added to each function's environment;
   - secrets: the dev-only values of infra/local-secrets.json, with PutSecretValue, as an operator
     does after a first deploy (template.yaml's comment on the secrets).
4. Writes ENV_OUT: the deployed functions' own environment (read back from Lambda), the endpoint,
   dummy credentials, the dead-letter queues and the API's URL, for ttya-ops and the walk-through.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile

import boto3
from botocore.config import Config as BotoConfig

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cfn import Resolver, load_template  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REGION = "us-east-1"
ACCOUNT_ID = os.environ.get("MINISTACK_ACCOUNT_ID", "123456789012")
ARTIFACT_BUCKET = "ttya-local-artifacts"
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
# Placeholder for the first CreateStack: PublicBaseUrl has no default and the API's URL is not
# known before the API exists. The UpdateStack right after replaces it.
PENDING_BASE_URL = "http://127.0.0.1/pending"


def log(msg: str) -> None:
    print(f"[deploy] {msg}", flush=True)


def clients(endpoint: str) -> dict:
    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION)
    cfg = BotoConfig(retries={"max_attempts": 3, "mode": "standard"}, read_timeout=300)
    names = ["s3", "cloudformation", "lambda", "apigatewayv2", "dynamodb", "secretsmanager", "scheduler"]
    return {n: session.client(n, endpoint_url=endpoint, config=cfg) for n in names}


def functions_of(template: dict) -> dict[str, dict]:
    return {n: r for n, r in template["Resources"].items() if r.get("Type") == "AWS::Serverless::Function"}


# --------------------------------------------------------------------------------------------------
# 1. Package
# --------------------------------------------------------------------------------------------------


def bootstrap_zip(binary: str) -> bytes:
    """The deployment package Lambda expects of provided.al2023: one executable named bootstrap.
    Debug info is stripped (a debug build's binary is 50-60 MB, mostly DWARF)."""
    with tempfile.TemporaryDirectory() as tmp:
        stripped = os.path.join(tmp, "bootstrap")
        if shutil.which("strip"):
            subprocess.run(["strip", "--strip-debug", "-o", stripped, binary], check=True)
        else:
            # Without binutils the package is 3-4 times larger; MiniStack keeps it in memory.
            shutil.copyfile(binary, stripped)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
            info = zipfile.ZipInfo("bootstrap")
            info.external_attr = 0o100755 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(stripped, "rb") as f:
                z.writestr(info, f.read(), compresslevel=1)
        return buf.getvalue()


def package(c: dict, template: dict, binaries: str) -> str:
    """Uploads every function's code and the packaged template; returns the template's URL."""
    try:
        c["s3"].create_bucket(Bucket=ARTIFACT_BUCKET)
    except c["s3"].exceptions.BucketAlreadyOwnedByYou:
        pass
    packaged = copy.deepcopy(template)
    for name, res in functions_of(packaged).items():
        binary = res.get("Metadata", {}).get("BuildProperties", {}).get("Binary")
        if not binary:
            raise SystemExit(f"{name}: no Metadata.BuildProperties.Binary to package")
        path = os.path.join(binaries, binary)
        if not os.access(path, os.X_OK):
            raise SystemExit(f"{name}: no binary at {path} (cargo build --workspace --bins)")
        data = bootstrap_zip(path)
        key = f"{binary}-{hashlib.sha256(data).hexdigest()[:16]}.zip"
        c["s3"].put_object(Bucket=ARTIFACT_BUCKET, Key=key, Body=data)
        res["Properties"]["CodeUri"] = f"s3://{ARTIFACT_BUCKET}/{key}"
        log(f"{name}: {binary} -> s3://{ARTIFACT_BUCKET}/{key} ({len(data) // 1024} KiB)")
    body = json.dumps(packaged).encode()
    c["s3"].put_object(Bucket=ARTIFACT_BUCKET, Key="template.json", Body=body)
    log(f"packaged template: {len(body):,} bytes (over CreateStack's 51,200-byte TemplateBody limit: TemplateURL)")
    return f"{c['s3'].meta.endpoint_url}/{ARTIFACT_BUCKET}/template.json"


# --------------------------------------------------------------------------------------------------
# 2. CloudFormation
# --------------------------------------------------------------------------------------------------


def wait_stack(cf, stack: str, want: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        s = cf.describe_stacks(StackName=stack)["Stacks"][0]
        status = s["StackStatus"]
        if status == want:
            return s
        if not status.endswith("_IN_PROGRESS") or time.monotonic() > deadline:
            failed = [
                f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason', '')}"
                for e in cf.describe_stack_events(StackName=stack)["StackEvents"]
                if e["ResourceStatus"].endswith("FAILED")
            ]
            raise SystemExit(f"stack {stack} is {status}, not {want}: " + "; ".join(failed[:10]))
        time.sleep(0.5)


def parameters(values: dict[str, str]) -> list[dict]:
    return [{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()]


def deploy(c: dict, stack: str, template_url: str, params: dict[str, str], endpoint: str) -> tuple[dict, str]:
    cf = c["cloudformation"]
    started = time.monotonic()
    cf.create_stack(StackName=stack, TemplateURL=template_url, Capabilities=CAPABILITIES,
                    Parameters=parameters({**params, "PublicBaseUrl": params.get("PublicBaseUrl", PENDING_BASE_URL)}))
    wait_stack(cf, stack, "CREATE_COMPLETE")
    resources = physical_ids(cf, stack)
    log(f"stack {stack}: CREATE_COMPLETE, {len(resources)} resources in {time.monotonic() - started:.1f}s")
    # MiniStack serves an HTTP API's $default stage at /_aws/execute-api/<api id>/<path>.
    api_url = f"{endpoint}/_aws/execute-api/{resources['HttpApi']}"
    if "PublicBaseUrl" not in params:
        cf.update_stack(StackName=stack, UsePreviousTemplate=True, Capabilities=CAPABILITIES,
                        Parameters=parameters({**params, "PublicBaseUrl": api_url}))
        wait_stack(cf, stack, "UPDATE_COMPLETE")
        after = physical_ids(cf, stack)
        if after["HttpApi"] != resources["HttpApi"]:
            raise SystemExit("UpdateStack replaced the HTTP API: PublicBaseUrl no longer names it")
        resources = after
        log(f"stack {stack}: UPDATE_COMPLETE, PublicBaseUrl={api_url}")
    return resources, api_url


def physical_ids(cf, stack: str) -> dict[str, str]:
    out = {}
    for page in cf.get_paginator("list_stack_resources").paginate(StackName=stack):
        for r in page["StackResourceSummaries"]:
            out[r["LogicalResourceId"]] = r.get("PhysicalResourceId", "")
    return out


# --------------------------------------------------------------------------------------------------
# 3. Post-deploy: what MiniStack's CloudFormation leaves out
# --------------------------------------------------------------------------------------------------


def http_routes(template: dict) -> list[tuple[str, str, str]]:
    """(function logical id, method, path) of every HttpApi event in the template."""
    routes = []
    for name, res in functions_of(template).items():
        for event in (res.get("Properties", {}).get("Events") or {}).values():
            if event.get("Type") == "HttpApi":
                p = event.get("Properties", {})
                routes.append((name, p["Method"].upper(), p["Path"]))
    return routes


def add_routes(c: dict, template: dict, resources: dict[str, str]) -> None:
    api = c["apigatewayv2"]
    api_id = resources["HttpApi"]
    have = {r["RouteKey"] for r in api.get_routes(ApiId=api_id).get("Items", [])}
    integrations: dict[str, str] = {}
    added = 0
    for function, method, path in http_routes(template):
        key = f"{method} {path}"
        if key in have:
            continue
        if function not in integrations:
            fn_arn = c["lambda"].get_function(FunctionName=resources[function])["Configuration"]["FunctionArn"]
            integrations[function] = api.create_integration(
                ApiId=api_id, IntegrationType="AWS_PROXY", IntegrationUri=fn_arn, PayloadFormatVersion="2.0",
                IntegrationMethod="POST",
            )["IntegrationId"]
        api.create_route(ApiId=api_id, RouteKey=key, Target=f"integrations/{integrations[function]}")
        added += 1
    log(f"HTTP API {api_id}: {added} routes added ({len(have)} were there)")


def table_settings(c: dict, template: dict, resolver: Resolver, resources: dict[str, str]) -> None:
    ddb = c["dynamodb"]
    for name, res in template["Resources"].items():
        if res.get("Type") != "AWS::DynamoDB::Table":
            continue
        props = resolver.resolve(res.get("Properties", {}))
        table = resources[name]
        done = []
        ttl = props.get("TimeToLiveSpecification")
        if ttl and str(ttl.get("Enabled")).lower() == "true":
            current = ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
            if current.get("TimeToLiveStatus") != "ENABLED":
                ddb.update_time_to_live(TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]})
            done.append(f"TTL on {ttl['AttributeName']}")
        pitr = props.get("PointInTimeRecoverySpecification")
        if pitr and str(pitr.get("PointInTimeRecoveryEnabled")).lower() == "true":
            ddb.update_continuous_backups(TableName=table, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
            done.append("PITR")
        sse = props.get("SSESpecification")
        if sse and str(sse.get("SSEEnabled")).lower() == "true":
            if not ddb.describe_table(TableName=table)["Table"].get("SSEDescription"):
                spec = {"Enabled": True, **{k: sse[k] for k in ("SSEType", "KMSMasterKeyId") if k in sse}}
                ddb.update_table(TableName=table, SSESpecification=spec)
            done.append("SSE")
        log(f"{name} ({table}): {', '.join(done) or 'nothing to add'}")


def logging_variables(template: dict, resolver: Resolver, function: dict) -> dict[str, str]:
    """The variables Lambda sets from a function's LoggingConfig (Globals merged with its own)."""
    cfg = dict(template.get("Globals", {}).get("Function", {}).get("LoggingConfig", {}))
    cfg.update(function.get("Properties", {}).get("LoggingConfig", {}))
    cfg = resolver.resolve({k: v for k, v in cfg.items() if k in ("LogFormat", "ApplicationLogLevel")})
    out = {}
    if cfg.get("LogFormat"):
        out["AWS_LAMBDA_LOG_FORMAT"] = cfg["LogFormat"]
    if cfg.get("LogFormat") == "JSON" and cfg.get("ApplicationLogLevel"):
        out["AWS_LAMBDA_LOG_LEVEL"] = cfg["ApplicationLogLevel"]
    return out


def logging_config(c: dict, template: dict, resolver: Resolver, resources: dict[str, str]) -> None:
    lam = c["lambda"]
    for name, res in functions_of(template).items():
        fn = resources[name]
        extra = logging_variables(template, resolver, res)
        if not extra:
            continue
        env = lam.get_function_configuration(FunctionName=fn).get("Environment", {}).get("Variables", {})
        if all(env.get(k) == v for k, v in extra.items()):
            continue
        lam.update_function_configuration(FunctionName=fn, Environment={"Variables": {**env, **extra}})
    log(f"LoggingConfig variables set on {len(functions_of(template))} functions")


def put_secrets(c: dict, local_secrets: dict, resources: dict[str, str]) -> None:
    sm = c["secretsmanager"]
    for name, value in local_secrets.items():
        if name not in resources:
            raise SystemExit(f"infra/local-secrets.json has values for {name}, which the stack does not have")
        sm.put_secret_value(SecretId=resources[name], SecretString=json.dumps(value, separators=(",", ":")))
    log(f"secrets given their local values: {', '.join(sorted(local_secrets))}")


def post_deploy(c: dict, template: dict, resolver: Resolver, resources: dict[str, str], local_secrets: dict) -> None:
    add_routes(c, template, resources)
    table_settings(c, template, resolver, resources)
    logging_config(c, template, resolver, resources)
    put_secrets(c, local_secrets, resources)


def summary(c: dict, resources: dict[str, str]) -> None:
    """What is now running the functions: the mappings, schedules and routes, as MiniStack has them."""
    for m in c["lambda"].list_event_source_mappings()["EventSourceMappings"]:
        log(f"mapping {m['EventSourceArn'].rsplit(':', 1)[-1]} -> {m['FunctionArn'].rsplit(':', 1)[-1]}: batch {m['BatchSize']}, "
            f"{', '.join(m.get('FunctionResponseTypes', [])) or 'whole batches'}, max concurrency {m.get('ScalingConfig', {}).get('MaximumConcurrency', '-')}")
    for sch in c["scheduler"].list_schedules()["Schedules"]:
        d = c["scheduler"].get_schedule(Name=sch["Name"], GroupName=sch.get("GroupName", "default"))
        log(f"schedule {sch['Name']}: {d['ScheduleExpression']} -> {d['Target']['Arn'].rsplit(':', 1)[-1]} {d['Target'].get('Input', '')}")
    routes = sorted(r["RouteKey"] for r in c["apigatewayv2"].get_routes(ApiId=resources["HttpApi"]).get("Items", []))
    log(f"routes of {resources['HttpApi']}: {'; '.join(routes)}")


# --------------------------------------------------------------------------------------------------
# 4. The environment for the ops CLI and the walk-through
# --------------------------------------------------------------------------------------------------


def write_env(path: str, c: dict, endpoint: str, stack: str, template: dict, resources: dict[str, str], api_url: str) -> None:
    lam = c["lambda"]
    some_function = resources[sorted(functions_of(template))[0]]
    deployed = lam.get_function_configuration(FunctionName=some_function).get("Environment", {}).get("Variables", {})
    outputs = {o["OutputKey"]: o["OutputValue"] for o in c["cloudformation"].describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])}
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_EC2_METADATA_DISABLED": "true",
        "MINISTACK_PORT": endpoint.rsplit(":", 1)[-1],
        "TTYA_STACK": stack,
        "API_URL": api_url,
    }
    env.update({k: v for k, v in deployed.items() if not k.startswith("AWS_") and v != ""})
    env["SYNC_DLQ_URL"] = outputs.get("SyncDeadLetterQueueUrl", "")
    env["EVENTS_DLQ_URL"] = outputs.get("EventsDeadLetterQueueUrl", "")
    for name in functions_of(template):
        env[f"FUNCTION_{name}"] = resources[name]
    lines = ["# Written by infra/deploy_local.py: the deployed local stack (MiniStack). Source it."]
    lines += [f"export {k}={shlex.quote(str(v))}" for k, v in env.items()]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)
    log(f"wrote {os.path.relpath(path, ROOT)} ({len(env)} variables)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", required=True, help="MiniStack's URL")
    ap.add_argument("--binaries", required=True, help="directory holding the functions' binaries (target/debug)")
    ap.add_argument("--env-out", required=True)
    ap.add_argument("--stack", default="ttya-local")
    ap.add_argument("--template", default=os.path.join(ROOT, "template.yaml"))
    ap.add_argument("--secrets", default=os.path.join(ROOT, "infra", "local-secrets.json"))
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="stack parameter")
    args = ap.parse_args()

    params = {"Stage": "dev"}
    for p in args.param:
        k, sep, v = p.partition("=")
        if not sep:
            ap.error(f"--param wants NAME=VALUE, got {p!r}")
        params[k] = v
    template = load_template(args.template)
    with open(args.secrets, encoding="utf-8") as f:
        local_secrets = {k: v for k, v in json.load(f).items() if not k.startswith("_")}

    started = time.monotonic()
    c = clients(args.endpoint)
    template_url = package(c, template, args.binaries)
    resources, api_url = deploy(c, args.stack, template_url, params, args.endpoint)

    pseudo = {"AWS::StackName": args.stack, "AWS::Region": REGION, "AWS::AccountId": ACCOUNT_ID,
              "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}
    resolver = Resolver(template, {**params, "PublicBaseUrl": params.get("PublicBaseUrl", api_url)}, pseudo)
    post_deploy(c, template, resolver, resources, local_secrets)
    summary(c, resources)
    write_env(args.env_out, c, args.endpoint, args.stack, template, resources, api_url)
    log(f"done in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
