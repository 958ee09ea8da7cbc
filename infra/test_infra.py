"""Unit tests for the template tooling (cfn.py, template_checks.py, provision.environment).

Run: python -m unittest discover -s infra -p 'test_*.py'   (infra/check-template.sh does)
"""

from __future__ import annotations

import copy
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import template_checks  # noqa: E402
from cfn import NO_VALUE, Physical, Resolver, Unresolvable, load_template, references, resource_order  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATE = load_template(os.path.join(ROOT, "template.yaml"))
PSEUDO = {"AWS::StackName": "st", "AWS::Region": "us-east-1", "AWS::AccountId": "1", "AWS::Partition": "aws"}


def yaml_doc(text: str) -> dict:
    import yaml

    from cfn import CfnLoader

    return yaml.load(text, Loader=CfnLoader)  # noqa: S506


class LoaderTest(unittest.TestCase):
    def test_short_tags_become_long_forms(self):
        doc = yaml_doc("a: !Ref X\nb: !GetAtt Q.Arn\nc: !Sub ['${A}-x', {A: !Ref Y}]\nd: !If [C, 1, !Ref AWS::NoValue]\n")
        self.assertEqual(doc["a"], {"Ref": "X"})
        self.assertEqual(doc["b"], {"Fn::GetAtt": ["Q", "Arn"]})
        self.assertEqual(doc["c"], {"Fn::Sub": ["${A}-x", {"A": {"Ref": "Y"}}]})
        self.assertEqual(doc["d"], {"Fn::If": ["C", 1, {"Ref": "AWS::NoValue"}]})

    def test_references_cover_sub_variables_but_not_escapes_or_local_vars(self):
        node = {"Fn::Sub": ["${Table.Arn}/index/${Name}/${!Literal}/${AWS::Region}", {"Name": {"Ref": "Param"}}]}
        self.assertEqual(references(node), {"Table", "Param", "AWS::Region"})


class ResolverTest(unittest.TestCase):
    def resolver(self, **params) -> Resolver:
        t = {
            "Parameters": {"Stage": {"Type": "String", "AllowedValues": ["dev", "prod"], "Default": "dev"},
                           "Url": {"Type": "String", "AllowedPattern": "^https?://.+$", "Default": "https://x"}},
            "Conditions": {"IsProd": {"Fn::Equals": [{"Ref": "Stage"}, "prod"]},
                           "NotProd": {"Fn::Not": [{"Condition": "IsProd"}]}},
        }
        r = Resolver(t, params, PSEUDO)
        r.physical["Q"] = Physical(ref="https://queue", attrs={"Arn": "arn:q"})
        return r

    def test_sub_getatt_pseudo_and_escape(self):
        r = self.resolver()
        self.assertEqual(r.resolve({"Fn::Sub": "${AWS::StackName}-${Q.Arn}-${!Keep}-${Stage}"}), "st-arn:q-${Keep}-dev")

    def test_conditions_and_novalue(self):
        r = self.resolver(Stage="prod")
        self.assertEqual(r.resolve({"Fn::If": ["IsProd", "p", "d"]}), "p")
        self.assertIs(r.resolve({"Fn::If": ["NotProd", "x", {"Ref": "AWS::NoValue"}]}), NO_VALUE)
        self.assertEqual(r.resolve({"a": {"Fn::If": ["NotProd", 1, {"Ref": "AWS::NoValue"}]}, "b": 2}), {"b": 2})

    def test_parameter_constraints_are_enforced(self):
        with self.assertRaises(Unresolvable):
            self.resolver(Stage="local")
        with self.assertRaises(Unresolvable):
            self.resolver(Url="ftp://x")
        with self.assertRaises(Unresolvable):
            self.resolver(Nope="1")

    def test_unknown_resource_is_an_error_not_a_guess(self):
        with self.assertRaises(Unresolvable):
            self.resolver().resolve({"Fn::GetAtt": ["Missing", "Arn"]})


class OrderTest(unittest.TestCase):
    def test_template_creates_dead_letter_queues_and_keys_first(self):
        res = TEMPLATE["Resources"]
        selected = {n for n, r in res.items() if r["Type"] in ("AWS::SQS::Queue", "AWS::KMS::Key", "AWS::KMS::Alias")}
        order = resource_order(res, selected)
        for queue in ("SyncHighQueue", "SyncNormalQueue", "SyncLowQueue"):
            self.assertLess(order.index("SyncDeadLetterQueue"), order.index(queue))
        self.assertLess(order.index("EventsDeadLetterQueue"), order.index("EventsQueue"))
        self.assertLess(order.index("TokenKey"), order.index("TokenKeyAlias"))

    def test_cycle_is_reported(self):
        res = {"A": {"Properties": {"x": {"Ref": "B"}}}, "B": {"Properties": {"x": {"Fn::GetAtt": ["A", "Arn"]}}}}
        with self.assertRaises(Unresolvable):
            resource_order(res, {"A", "B"})


class TemplateChecksTest(unittest.TestCase):
    """Each project rule check passes on the real template and fails on a template that breaks it."""

    def mutated(self, change) -> dict:
        t = copy.deepcopy(TEMPLATE)
        change(t)
        return t

    def test_real_template_passes_every_check(self):
        for check in template_checks.CHECKS:
            check(TEMPLATE)

    def test_missing_environment_variable_fails(self):
        t = self.mutated(lambda t: t["Globals"]["Function"]["Environment"]["Variables"].pop("LEASE_SECONDS"))
        with self.assertRaisesRegex(AssertionError, "LEASE_SECONDS"):
            template_checks.check_environment_matches_config(t)

    def test_reserved_aws_region_fails(self):
        t = self.mutated(lambda t: t["Globals"]["Function"]["Environment"]["Variables"].update(AWS_REGION="x"))
        with self.assertRaisesRegex(AssertionError, "AWS_REGION"):
            template_checks.check_environment_matches_config(t)

    def test_visibility_timeout_drift_fails(self):
        t = self.mutated(lambda t: t["Resources"]["SyncWorkerFunction"]["Properties"].update(Timeout=300))
        with self.assertRaisesRegex(AssertionError, "VisibilityTimeout"):
            template_checks.check_sync_queue_timing(t)

    def test_wildcard_resource_fails(self):
        def change(t):
            t["Resources"]["WebhookReceiverRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"][0]["Resource"] = "*"

        with self.assertRaisesRegex(AssertionError, "Resource"):
            template_checks.check_least_privilege(self.mutated(change))

    def test_kms_without_encryption_context_condition_fails(self):
        def change(t):
            for st in t["Resources"]["SyncWorkerRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]:
                if st.get("Sid") == "SealTokens":
                    st["Condition"]["ForAllValues:StringEquals"]["kms:EncryptionContextKeys"] = ["tenant_id", "provider"]

        with self.assertRaisesRegex(AssertionError, "encryption context"):
            template_checks.check_least_privilege(self.mutated(change))

    def _receiver_statement(self, t, sid):
        return next(st for st in t["Resources"]["WebhookReceiverRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
                    if st.get("Sid") == sid)

    def test_receiver_that_may_open_token_blobs_fails(self):
        def change(t):
            st = self._receiver_statement(t, "OpenZohoWebhookSecrets")
            del st["Condition"]["StringLike"]

        with self.assertRaisesRegex(AssertionError, "may decrypt token blobs"):
            template_checks.check_only_token_roles_can_decrypt_token_blobs(self.mutated(change))

    def test_receiver_reading_the_grants_table_fails(self):
        def change(t):
            st = self._receiver_statement(t, "OrgToTenant")
            st["Resource"] = {"Fn::GetAtt": ["GrantsTable", "Arn"]}

        with self.assertRaisesRegex(AssertionError, "org index"):
            template_checks.check_webhook_receiver_reads_only_the_org_index(self.mutated(change))

    def test_ephemeral_access_without_leading_keys_fails(self):
        def change(t):
            del self._receiver_statement(t, "ClaimNonces")["Condition"]

        with self.assertRaisesRegex(AssertionError, "LeadingKeys"):
            template_checks.check_ephemeral_table_statements_have_leading_keys(self.mutated(change))

    def test_resilience_access_limited_to_tenant_keys_fails(self):
        def change(t):
            for st in t["Resources"]["SyncWorkerRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]:
                if st.get("Sid") == "Resilience":
                    st["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"] = ["TENANT#*", "APP#*"]

        with self.assertRaisesRegex(AssertionError, "ORG#"):
            template_checks.check_resilience_table_statements_admit_its_keys(self.mutated(change))

    def test_key_policy_granting_everything_to_the_account_fails(self):
        def change(t):
            t["Resources"]["TokenKey"]["Properties"]["KeyPolicy"]["Statement"][0]["Action"] = "kms:*"

        with self.assertRaisesRegex(AssertionError, "administration also grants"):
            template_checks.check_key_policy_separates_administration_from_use(self.mutated(change))

    def test_missing_queue_age_or_emf_alarm_fails(self):
        with self.assertRaisesRegex(AssertionError, "EventsQueue"):
            template_checks.check_alarms_page_for_handled_failures(self.mutated(lambda t: t["Resources"].pop("EventsQueueAgeAlarm")))
        with self.assertRaisesRegex(AssertionError, "WebhookFailed"):
            template_checks.check_alarms_page_for_handled_failures(self.mutated(lambda t: t["Resources"].pop("WebhookFailuresAlarm")))

    def test_emf_alarm_without_the_deployment_dimensions_fails(self):
        def strip(t):
            t["Resources"]["WebhookFailuresAlarm"]["Properties"].pop("Dimensions")
        with self.assertRaisesRegex(AssertionError, "WebhookFailed: alarm must read the service\\+stage total"):
            template_checks.check_alarms_page_for_handled_failures(self.mutated(strip))

        def other_stage(t):
            t["Resources"]["ConnectFailuresAlarm"]["Properties"]["Dimensions"][1]["Value"] = "prod"
        with self.assertRaisesRegex(AssertionError, "ConnectServerFailed: stage must be !Ref Stage"):
            template_checks.check_alarms_page_for_handled_failures(self.mutated(other_stage))

    def test_dlq_without_alarm_fails(self):
        t = self.mutated(lambda t: t["Resources"].pop("SyncDeadLetterAlarm"))
        with self.assertRaisesRegex(AssertionError, "SyncDeadLetterQueue"):
            template_checks.check_dead_letter_queues_alarmed(t)


class EnvironmentTest(unittest.TestCase):
    def test_env_is_resolved_from_the_template_and_empty_values_are_left_to_the_caller(self):
        import provision

        r = Resolver(TEMPLATE, {"PublicBaseUrl": "http://127.0.0.1:9000/lambda-url/oauth-callback"}, PSEUDO)
        for name, body in TEMPLATE["Resources"].items():
            r.physical[name] = Physical(ref=f"ref-of-{name}", attrs={"Arn": f"arn-of-{name}"})
        env = provision.environment(TEMPLATE, r)
        self.assertEqual(env["GRANTS_TABLE"], "ref-of-GrantsTable")
        self.assertEqual(env["SYNC_QUEUE_LOW_URL"], "ref-of-SyncLowQueue")
        self.assertEqual(env["PUBLIC_BASE_URL"], "http://127.0.0.1:9000/lambda-url/oauth-callback")
        self.assertNotIn("PROVIDER_BASE_URL", env)
        self.assertEqual(set(env) | {"PROVIDER_BASE_URL", "AWS_REGION"}, template_checks.config_variables())

    def test_sam_env_vars_cover_every_function_with_container_reachable_urls(self):
        import provision

        env = {"GRANTS_TABLE": "g", "PUBLIC_BASE_URL": "http://127.0.0.1:9000/lambda-url/oauth-callback"}
        out = provision.sam_env_vars(TEMPLATE, env, "host.docker.internal")
        fns = {n for n, r in TEMPLATE["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}
        self.assertEqual(set(out), fns | {"Parameters"})
        for body in out.values():
            self.assertEqual(body["GRANTS_TABLE"], "g")
            self.assertEqual(body["PUBLIC_BASE_URL"], "http://host.docker.internal:9000/lambda-url/oauth-callback")


if __name__ == "__main__":
    unittest.main()
