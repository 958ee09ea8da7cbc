"""Unit tests of infra/emitted_metrics.py (what the Rust code publishes) and of the template check
that holds the dashboard and the alarms to it.

Run: python -m unittest discover -s infra -p 'test_*.py'   (infra/check-template.sh does)
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import sys
import tempfile
import textwrap
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import emitted_metrics  # noqa: E402
import template_checks  # noqa: E402
from cfn import load_template  # noqa: E402
from emitted_metrics import UnreadableCallSite, emitted_metrics as emitted  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATE = load_template(os.path.join(ROOT, "template.yaml"))

TELEMETRY = textwrap.dedent('''\
    pub const SERVICE: &str = "ttya-integrations";
    pub const NAMESPACE: &str = "TalkToYourAccounts/Integrations";
    pub fn metric(name: &str, value: f64, unit: &str, dimensions: &[(&str, &str)]) {}
    pub const ALARMED_TOTALS: [&str; 2] = ["WebhookFailed", "SyncStaleConnections"];
    pub const DEPLOYMENT_DIMENSIONS: [&str; 2] = ["service", "stage"];
    pub fn init() {
        metric("ColdStart", 1.0, "Count", &[("function_name", f)]);
    }
    ''')


def tree(files: dict[str, str]) -> str:
    """A throwaway repository root holding shared/src/telemetry.rs and the given sources."""
    root = tempfile.mkdtemp(prefix="emitted-metrics-")
    files = {"shared/src/telemetry.rs": TELEMETRY, **files}
    for rel, text in files.items():
        os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
        with open(os.path.join(root, rel), "w", encoding="utf-8") as f:
            f.write(text)
    return root


class ExtractorTest(unittest.TestCase):
    def extract(self, files: dict[str, str]) -> dict:
        root = tree(files)
        self.addCleanup(shutil.rmtree, root)
        return emitted(root)

    def test_literal_multiline_matched_and_qualified_calls_are_read_as_published(self):
        got = self.extract({
            "shared/src/webhooks/mod.rs": textwrap.dedent('''\
                use crate::telemetry::metric;
                fn receive() {
                    let (name, value) = match a.disposition {
                        Disposition::Enqueued { jobs, .. } => ("WebhookJobsEnqueued", jobs as f64),
                        Disposition::Duplicate => ("WebhookDuplicate", 1.0),
                    };
                    metric(name, value, "Count", &[("provider", pname)]);
                    // metric("InAComment", 1.0, "Count", &[]);
                    let s = "metric(\\"InAString\\", 1.0, \\"Count\\", &[])";
                    metric("WebhookFailed", 1.0, "Count", &[("provider", pname), ("reason", &reason)]);
                }
                #[cfg(test)]
                mod tests {
                    fn t() { metric(weird(), 1.0, "Count", dims); }
                }
                '''),
            "shared/src/resilience/breaker.rs": textwrap.dedent('''\
                fn record<'a>(t: &'a T) {
                    let c = '{';
                    crate::telemetry::metric(
                        "CircuitBreakerTransition",
                        1.0,
                        "Count",
                        &[("provider", t.p()), ("level", if t.org { "org" } else { "provider" }), ("to", t.to.as_str()),],
                    );
                }
                '''),
            "functions/sync-scheduler/src/main.rs": textwrap.dedent('''\
                fn run() {
                    shared::telemetry::metric("SyncStaleConnections", n as f64, "Count", &[]);
                    shared::telemetry::metric("SyncJobParked", 1.0, "Count", &[("stage", "x"), ("provider", p), ("operation", o)]);
                }
                '''),
        })
        self.assertEqual(got, {
            "ColdStart": {("service", "stage", "function_name")},
            "WebhookJobsEnqueued": {("service", "stage", "provider")},
            "WebhookDuplicate": {("service", "stage", "provider")},
            # An alarmed total: also published with the deployment's dimensions alone.
            "WebhookFailed": {("service", "stage", "provider", "reason"), ("service", "stage")},
            "CircuitBreakerTransition": {("service", "stage", "provider", "level", "to")},
            # Without dimensions of its own an alarmed total has exactly one set.
            "SyncStaleConnections": {("service", "stage")},
            # A deployment dimension passed by the caller is not repeated (emf_line_for drops it).
            "SyncJobParked": {("service", "stage", "provider", "operation")},
        })

    def test_call_sites_it_cannot_read_fail_loudly(self):
        cases = {
            "name from a call": 'use crate::telemetry::metric;\nfn f() { metric(&name_of(x), 1.0, "Count", &[]); }',
            "name from a parameter": 'use crate::telemetry::metric;\nfn f(name: &str) { metric(name, 1.0, "Count", &[]); }',
            "name from an if": 'use crate::telemetry::metric;\nfn f() { let name = if a { "A" } else { "B" }; metric(name, 1.0, "Count", &[]); }',
            "a match arm that is not a literal": ('use crate::telemetry::metric;\nfn f() { let name = match a { X => "A", _ => other() };\n'
                                                  'metric(name, 1.0, "Count", &[]); }'),
            "a name bound in another function": ('use crate::telemetry::metric;\nfn g() { let name = "A"; }\n'
                                                 'fn f(name: &str) { metric(name, 1.0, "Count", &[]); }'),
            "a name declared without a value": 'use crate::telemetry::metric;\nfn f() { let name; name = "A"; metric(name, 1.0, "Count", &[]); }',
            "keys from a variable": 'fn f() { crate::telemetry::metric("X", 1.0, "Count", dims); }',
            "a key that is not a literal": 'fn f() { crate::telemetry::metric("X", 1.0, "Count", &[(KEY, v)]); }',
            "a renamed import": 'use crate::telemetry::metric as emit;\nfn f() { emit("X", 1.0, "Count", &[]); }',
            "a renamed module": 'use crate::telemetry as t;\nfn f() { t::metric("X", 1.0, "Count", &[]); }',
            "metric passed as a value": 'fn f() { let m = crate::telemetry::metric; m("X", 1.0, "Count", &[]); }',
            "a bare call without the import": 'fn f() { metric("X", 1.0, "Count", &[]); }',
        }
        for label, src in cases.items():
            with self.subTest(label), self.assertRaises(UnreadableCallSite) as e:
                self.extract({"shared/src/sync/x.rs": src})
            self.assertIn("shared/src/sync/x.rs:", str(e.exception), label)

    def test_missing_telemetry_constants_fail_loudly(self):
        with self.assertRaisesRegex(UnreadableCallSite, "ALARMED_TOTALS"):
            self.extract({"shared/src/telemetry.rs": TELEMETRY.replace("ALARMED_TOTALS", "ALARMED")})

    def test_the_real_code(self):
        got = emitted(ROOT)
        self.assertEqual(got["WebhookRejected"], {("service", "stage", "provider", "reason")})
        self.assertEqual(got["WebhookFailed"], {("service", "stage", "provider", "reason"), ("service", "stage")})
        self.assertEqual(got["CircuitBreakerTransition"], {("service", "stage", "provider", "level", "to")})
        for name in ("WebhookJobsEnqueued", "WebhookDuplicate", "WebhookNoEvents", "WebhookNothingToDo"):
            self.assertEqual(got[name], {("service", "stage", "provider")}, name)
        self.assertEqual(got["SyncScheduleMostOverdueSeconds"], {("service", "stage")})


# The metrics issue 23 adds to the code (the lead's part), as a source file beside the real ones, so
# the check can be run against the real template before they land.
NEW_METRICS = textwrap.dedent('''\
    fn issue_23(p: &str, o: &str) {
        crate::telemetry::metric("SyncJobCompleted", 1.0, "Count", &[("provider", p), ("operation", o)]);
        crate::telemetry::metric("SyncJobFailed", 1.0, "Count", &[("provider", p), ("operation", o)]);
        crate::telemetry::metric("SyncJobParked", 1.0, "Count", &[("provider", p), ("operation", o)]);
        crate::telemetry::metric("SyncJobDeadLettered", 1.0, "Count", &[("provider", p), ("operation", o)]);
        crate::telemetry::metric("ProviderRateLimited", 1.0, "Count", &[("provider", p)]);
        crate::telemetry::metric("SyncStaleConnections", 0.0, "Count", &[]);
        crate::telemetry::metric("SyncOldestCopySeconds", 0.0, "Seconds", &[]);
        crate::telemetry::metric("RecordsChanged", 3.0, "Count", &[("provider", p)]);
    }
    ''')


class DashboardCheckTest(unittest.TestCase):
    """check_dashboard_and_alarms_name_emitted_metrics on the real template, against the real code
    plus the metrics issue 23 adds (as the lead's change will have them), and on broken copies."""

    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="emitted-metrics-real-")
        shutil.copytree(os.path.join(ROOT, "shared", "src"), os.path.join(cls.root, "shared", "src"))
        for d in os.listdir(os.path.join(ROOT, "functions")):
            if os.path.isdir(os.path.join(ROOT, "functions", d, "src")):
                shutil.copytree(os.path.join(ROOT, "functions", d, "src"), os.path.join(cls.root, "functions", d, "src"))
        if "SyncJobCompleted" not in emitted(ROOT):
            with open(os.path.join(cls.root, "shared", "src", "issue_23_metrics.rs"), "w", encoding="utf-8") as f:
                f.write(NEW_METRICS)
            tel = emitted_metrics.read_telemetry(cls.root).path
            with open(tel, encoding="utf-8") as f:
                src = f.read()
            src = re.sub(r'ALARMED_TOTALS: \[&str; (\d+)\] =\s*\[', lambda m: f'ALARMED_TOTALS: [&str; {int(m.group(1)) + 1}] = ["SyncStaleConnections", ',
                         src, count=1)
            with open(tel, "w", encoding="utf-8") as f:
                f.write(src)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root)

    def check(self, t):
        template_checks.check_dashboard_and_alarms_name_emitted_metrics(t, root=self.root)

    def mutated(self, change) -> dict:
        t = copy.deepcopy(TEMPLATE)
        change(t)
        return t

    def body_replaced(self, old: str, new: str) -> dict:
        def change(t):
            body = t["Resources"]["OperationsDashboard"]["Properties"]["DashboardBody"]
            self.assertIn(old, body["Fn::Sub"])
            body["Fn::Sub"] = body["Fn::Sub"].replace(old, new, 1)
        return self.mutated(change)

    def test_real_template_passes_once_the_code_emits_issue_23s_metrics(self):
        self.check(TEMPLATE)

    def test_dashboard_naming_a_metric_the_code_does_not_emit_fails(self):
        t = self.body_replaced('MetricName=\\"SyncJobParked\\"', 'MetricName=\\"SyncJobsParked\\"')
        with self.assertRaisesRegex(AssertionError, r"never emitted.*SyncJobsParked"):
            self.check(t)

    def test_search_with_other_dimensions_than_published_fails(self):
        t = self.body_replaced("{TalkToYourAccounts/Integrations,service,stage,provider,reason} MetricName=\\\"WebhookRejected\\\"",
                               "{TalkToYourAccounts/Integrations,service,stage,reason} MetricName=\\\"WebhookRejected\\\"")
        with self.assertRaisesRegex(AssertionError, r"WebhookRejected read with \['reason', 'service', 'stage'\]"):
            self.check(t)

    def test_explicit_metric_with_an_extra_dimension_fails(self):
        t = self.body_replaced('"SyncOldestCopySeconds", "service", "ttya-integrations", "stage", "${Stage}",',
                               '"SyncOldestCopySeconds", "service", "ttya-integrations", "stage", "${Stage}", "provider", "xero",')
        with self.assertRaisesRegex(AssertionError, "SyncOldestCopySeconds read with"):
            self.check(t)

    def test_alarm_on_a_series_nothing_writes_fails(self):
        def change(t):
            t["Resources"]["SyncCopyStaleAlarm"]["Properties"]["Dimensions"].append({"Name": "provider", "Value": "xero"})
        with self.assertRaisesRegex(AssertionError, "SyncStaleConnections read with .* in SyncCopyStaleAlarm"):
            self.check(self.mutated(change))

        def metric_math(t):
            p = t["Resources"]["SyncCopyStaleAlarm"]["Properties"]
            stat = {"Metric": {k: p.pop(k) for k in ("Namespace", "MetricName", "Dimensions")}, "Period": 300, "Stat": p.pop("Statistic")}
            stat["Metric"]["MetricName"] = "SyncStale"
            p["Metrics"] = [{"Id": "m1", "MetricStat": stat}]
        with self.assertRaisesRegex(AssertionError, "(?s)never emitted.*SyncStale: SyncCopyStaleAlarm"):
            self.check(self.mutated(metric_math))

    def test_search_without_the_stage_filter_fails(self):
        t = self.body_replaced('MetricName=\\"GrantNeedsReauth\\" stage=\\"${Stage}\\"', 'MetricName=\\"GrantNeedsReauth\\"')
        with self.assertRaisesRegex(AssertionError, "SEARCH for GrantNeedsReauth must filter stage"):
            self.check(t)

    def test_aws_metric_not_naming_a_template_resource_fails(self):
        t = self.body_replaced('"FunctionName", "${SyncWorkerFunction}"', '"FunctionName", "ttya-integrations-dev-sync-worker"')
        with self.assertRaisesRegex(AssertionError, "not a resource of this template"):
            self.check(t)

    def test_function_or_dead_letter_queue_missing_from_the_dashboard_fails(self):
        t = self.body_replaced('"Errors", "FunctionName", "${SyncSchedulerFunction}"', '"Throttles", "FunctionName", "${SyncSchedulerFunction}"')
        with self.assertRaisesRegex(AssertionError, r"SyncSchedulerFunction's \['Errors'\]"):
            self.check(t)
        t = self.body_replaced('"QueueName", "${SyncScheduleDlq.QueueName}"', '"QueueName", "${SyncLowQueue.QueueName}"')
        with self.assertRaisesRegex(AssertionError, r"depth of \['SyncScheduleDlq'\]"):
            self.check(t)


if __name__ == "__main__":
    unittest.main()
