"""The layer check fails on a new back-edge and on a provider importing another (infra/check_layers.py)."""

import os
import tempfile
import unittest

import check_layers


def tree(files: dict[str, str]) -> str:
    root = tempfile.mkdtemp()
    src = os.path.join(root, "shared", "src")
    for rel, code in files.items():
        path = os.path.join(src, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(code)
    return src


class LayerCheck(unittest.TestCase):
    def test_downward_edges_pass(self):
        src = tree({"sync/worker.rs": "use crate::store::grants::GrantStore;\nuse crate::{Error, Result};\n",
                    "store/mod.rs": "use crate::error::Error;\n"})
        self.assertEqual(check_layers.edges(src), set())

    def test_an_upward_edge_is_found(self):
        src = tree({"store/grants.rs": "use crate::sync::schedule::sync_pk;\n"})
        self.assertEqual(check_layers.edges(src), {"shared/src/store/grants.rs -> sync (up: layer 1 uses layer 2)"})

    def test_a_sideways_edge_between_flows_is_found_also_in_groups(self):
        src = tree({"connect/mod.rs": "use crate::{store::grants::Connection, sync::initial::InitialSync};\n"})
        self.assertEqual(check_layers.edges(src), {"shared/src/connect/mod.rs -> sync (sideways between flows)"})

    def test_a_provider_importing_another_is_found(self):
        src = tree({"providers/xero.rs": "use super::quickbooks::revoke_outcome;\n",
                    "providers/zoho.rs": "use crate::providers::quickbooks::revoke_outcome;\n"})
        self.assertEqual(check_layers.edges(src), {
            "shared/src/providers/xero.rs -> providers::quickbooks (provider imports provider)",
            "shared/src/providers/zoho.rs -> providers::quickbooks (provider imports provider)",
        })

    def test_the_job_runner_sits_above_the_flows(self):
        src = tree({"worker/job.rs": "use crate::refresh::TokenService;\nuse crate::{reports, webhooks::NonceStore};\n",
                    "reports/job.rs": "use crate::worker::job::SyncDeps;\n"})
        self.assertEqual(check_layers.edges(src), {"shared/src/reports/job.rs -> worker (up: layer 2 uses layer 3)"})

    def test_comments_and_test_modules_do_not_count(self):
        src = tree({"store/mod.rs": "// crate::sync::x\nfn f() {}\n#[cfg(test)]\nmod tests {\n use crate::sync::x;\n}\n"})
        self.assertEqual(check_layers.edges(src), set())


if __name__ == "__main__":
    unittest.main()
