"""infra/sdk_check.py can fail: a sandbox answer the official Xero SDK cannot read, a member Xero does
not have, or a value that differs from the sandbox's record each fails the check.

Needs the venv of infra/requirements-sdk.txt and target/debug/sandbox (infra/check-sdk.sh runs it);
elsewhere (the template tooling's venv discovers every infra/test_*.py) it is skipped.
"""

import datetime as dt
import importlib.util
import os
import unittest
from pathlib import Path

import sdk_check

HAVE_SDK = importlib.util.find_spec("xero_python") is not None
SANDBOX = Path(os.environ.get("SANDBOX_BIN", sdk_check.ROOT / "target/debug/sandbox"))


def reseed(sb, org, entity, change):
    """Stores the first `entity` record again with `change` applied (the sandbox's seed replaces a
    record of the same id)."""
    rid, value = next(iter(sb.records(org, entity).items()))
    change(value)
    sb.control("POST", "seed", {"provider": "xero", "org_id": org, "entity": entity, "records": [value]})
    return rid


@unittest.skipUnless(HAVE_SDK, "xero-python is not installed here (infra/requirements-sdk.txt)")
class Comparisons(unittest.TestCase):
    def test_a_different_amount_or_status_fails(self):
        from xero_python.accounting import Invoice

        ck = sdk_check.Checker(quiet=True)
        ck.compare(
            "inv", Invoice(total=10.0, status="PAID"), {"Total": 10.01, "Status": "AUTHORISED"}, [("total", "Total"), ("status", "Status")]
        )
        self.assertEqual(len(ck.failures), 2, ck.failures)

    def test_a_field_the_sdk_lost_fails(self):
        from xero_python.accounting import Invoice

        ck = sdk_check.Checker(quiet=True)
        ck.compare("inv", Invoice(), {"AmountDue": 5.0}, [("amount_due", "AmountDue")])
        self.assertEqual(len(ck.failures), 1, ck.failures)
        self.assertIn("lost", ck.failures[0])

    def test_ms_dates_compare_as_the_sdk_reads_them(self):
        ms = "/Date(1796284442429+0000)/"
        self.assertEqual(sdk_check.norm(dt.date(2026, 12, 3), ms), ("2026-12-03", "2026-12-03"))
        got = dt.datetime(2026, 12, 3, 7, 54, 2, tzinfo=dt.timezone.utc)
        self.assertEqual(sdk_check.norm(got, ms), (1796284442, 1796284442))
        self.assertEqual(sdk_check.norm(0.1 + 0.2, 0.3), (30, 30))


@unittest.skipUnless(HAVE_SDK and SANDBOX.is_file(), "needs xero-python and target/debug/sandbox")
class AgainstTheSandbox(unittest.TestCase):
    def setUp(self):
        self.sb = sdk_check.Sandbox(SANDBOX)
        self.addCleanup(self.sb.stop)

    def test_a_status_xero_does_not_have_fails(self):
        ck = sdk_check.run(self.sb, quiet=True, tamper=lambda sb, org: reseed(sb, org, "invoice", lambda v: v.update(Status="PENDING")))
        self.assertTrue(any("get_invoices" in f and "PENDING" in f for f in ck.failures), ck.failures)

    def test_a_member_xero_does_not_have_fails(self):
        ck = sdk_check.run(
            self.sb, quiet=True, tamper=lambda sb, org: reseed(sb, org, "credit_note", lambda v: v["Allocations"][0].update(Colour="red"))
        )
        self.assertTrue(any("Allocations[0]" in f and "Colour" in f for f in ck.failures), ck.failures)

    def test_a_date_in_another_form_fails(self):
        ck = sdk_check.run(self.sb, quiet=True, tamper=lambda sb, org: reseed(sb, org, "journal", lambda v: v.update(Date="2026-12-01")))
        self.assertTrue(any("get_manual_journals" in f for f in ck.failures), ck.failures)


if __name__ == "__main__":
    unittest.main()
