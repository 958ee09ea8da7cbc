"""Unit tests for the template-driven parts of deploy_local.py's post-deploy step.

Run: python -m unittest discover -s infra -p 'test_*.py'   (infra/check-template.sh does)
"""

from __future__ import annotations

import copy
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploy_local  # noqa: E402
from cfn import Resolver, load_template  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATE = load_template(os.path.join(ROOT, "template.yaml"))
PSEUDO = {"AWS::StackName": "st", "AWS::Region": "us-east-1", "AWS::AccountId": "1", "AWS::Partition": "aws"}


class RoutesTest(unittest.TestCase):
    def test_every_http_api_event_of_the_template_becomes_a_route(self):
        routes = deploy_local.http_routes(TEMPLATE)
        self.assertIn(("WebhookReceiverFunction", "POST", "/webhooks/{provider}"), routes)
        self.assertIn(("OAuthCallbackFunction", "GET", "/oauth/{provider}/callback"), routes)
        declared = sum(
            1
            for r in TEMPLATE["Resources"].values()
            if r.get("Type") == "AWS::Serverless::Function"
            for e in (r["Properties"].get("Events") or {}).values()
            if e.get("Type") == "HttpApi"
        )
        self.assertEqual(len(routes), declared)
        self.assertEqual(len(set((m, p) for _, m, p in routes)), declared, "two events claim the same route")

    def test_a_new_http_api_event_is_routed_without_editing_the_step(self):
        t = copy.deepcopy(TEMPLATE)
        t["Resources"]["SyncWorkerFunction"]["Properties"]["Events"]["Extra"] = {
            "Type": "HttpApi", "Properties": {"ApiId": {"Ref": "HttpApi"}, "Path": "/x/{y}", "Method": "put"}}
        self.assertIn(("SyncWorkerFunction", "PUT", "/x/{y}"), deploy_local.http_routes(t))


class LoggingTest(unittest.TestCase):
    def resolver(self, stage):
        return Resolver(TEMPLATE, {"Stage": stage, "PublicBaseUrl": "http://x"}, PSEUDO)

    def test_logging_config_gives_the_variables_lambda_derives(self):
        fn = TEMPLATE["Resources"]["SyncWorkerFunction"]
        self.assertEqual(deploy_local.logging_variables(TEMPLATE, self.resolver("dev"), fn),
                         {"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "DEBUG"})
        self.assertEqual(deploy_local.logging_variables(TEMPLATE, self.resolver("prod"), fn)["AWS_LAMBDA_LOG_LEVEL"], "INFO")


if __name__ == "__main__":
    unittest.main()
