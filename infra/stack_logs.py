#!/usr/bin/env python3
"""Writes every CloudWatch Logs event of the local stack (the functions' own output, which
MiniStack files under each function's log group) to one file, oldest first per group.

    stack_logs.py OUT_FILE      (environment: .local/stack.env)

scripts/run-local calls it when it stops, and infra/test-log-secrets.sh greps the file.
"""

import os
import sys

import boto3


def main() -> int:
    logs = boto3.client("logs", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ.get("AWS_REGION", "us-east-1"))
    lines = 0
    with open(sys.argv[1], "w", encoding="utf-8") as out:
        for page in logs.get_paginator("describe_log_groups").paginate():
            for group in page["logGroups"]:
                name = group["logGroupName"]
                for events in logs.get_paginator("filter_log_events").paginate(logGroupName=name):
                    for e in events["events"]:
                        out.write(f"{name}\t{e['message'].rstrip()}\n")
                        lines += 1
    print(f"[stack-logs] {lines} log lines written to {sys.argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
