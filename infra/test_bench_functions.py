"""Tests of the function benchmark's own machinery (infra/bench_functions.py): the Lambda Runtime API
emulator against a real process speaking the Runtime API, and the counting proxy against a real
HTTP upstream. The figures of `scripts/bench functions` are only as good as these two.

Run: python -m unittest discover -s infra -p 'test_*.py'   (infra/check-template.sh does)
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import textwrap
import threading
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_functions as bf  # noqa: E402

# A function process as Lambda runs one: polls `next`, answers each event on /response (or /error
# when the event asks for it), exactly over the Runtime API's paths and headers.
STUB_FUNCTION = textwrap.dedent("""
    import http.client, json, os, time
    host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
    assert os.environ["AWS_LAMBDA_FUNCTION_NAME"] and os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]
    time.sleep(float(os.environ.get("STUB_INIT_SECONDS", "0")))
    # Spin on the process's own CPU clock: under load a wall-clock spin gets less CPU than asked.
    burn_until = time.process_time() + float(os.environ.get("STUB_BURN_SECONDS", "0"))
    while time.process_time() < burn_until:
        pass
    conn = http.client.HTTPConnection(host, int(port))
    while True:
        conn.request("GET", "/2018-06-01/runtime/invocation/next")
        r = conn.getresponse()
        event = json.loads(r.read())
        rid = r.getheader("lambda-runtime-aws-request-id")
        deadline = int(r.getheader("lambda-runtime-deadline-ms"))
        kind = "error" if event.get("fail") else "response"
        body = json.dumps({"echo": event, "deadline_ms": deadline, "pid": os.getpid(),
                           "pad": "x" * event.get("pad", 0)}).encode()
        conn.request("POST", f"/2018-06-01/runtime/invocation/{rid}/{kind}", body=body,
                     headers={"content-type": "application/json"})
        conn.getresponse().read()
""")


class RuntimeApiTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.script = os.path.join(self.dir.name, "stub.py")
        with open(self.script, "w") as f:
            f.write(STUB_FUNCTION)
        self.log = os.path.join(self.dir.name, "stub.log")

    def tearDown(self):
        self.dir.cleanup()

    def test_cold_start_warm_events_errors_and_peak_rss(self):
        env = dict(os.environ, STUB_INIT_SECONDS="0.2")
        p = bf.Proc("webhook-receiver", [sys.executable, self.script], env, self.log)
        try:
            rid = p.api.submit({"n": 0})  # waiting before the process starts, as on a cold invoke
            p.start()
            first = p._wait(rid, 30)
            self.assertEqual(bf.answer(first)["echo"], {"n": 0})
            # init ends at the first poll, which the stub delays by 0.2 s; the answer comes after it.
            init_ms = bf.ms(p.api.first_next_ns - p.start_ns)
            self.assertGreaterEqual(init_ms, 200)
            self.assertLessEqual(p.api.first_next_ns, first["dispatched_ns"])
            self.assertLessEqual(first["dispatched_ns"], first["answered_ns"])
            for n in range(1, 4):
                r = p.invoke({"n": n}, timeout=30)
                self.assertEqual(bf.answer(r)["echo"], {"n": n})
            # The deadline header is the function's timeout from template.yaml (10 s for this one).
            self.assertGreater(bf.answer(r)["deadline_ms"], 0)
            failed = p.invoke({"fail": True}, timeout=30)
            self.assertEqual(failed["kind"], "error")
            with self.assertRaises(RuntimeError):
                bf.answer(failed)
            self.assertGreater(p.peak_rss_kib(), 1000)
        finally:
            p.stop()
        self.assertIsNotNone(p.p.returncode)

    def test_cpu_time_to_the_first_answer_counts_work_not_waiting(self):
        # One process sleeps 0.3 s in its init, the other spins 0.3 s: alike in wall time, not in CPU.
        cpu = {}
        for kind in ("SLEEP", "BURN"):
            env = dict(os.environ, STUB_INIT_SECONDS="0.3" if kind == "SLEEP" else "0", STUB_BURN_SECONDS="0.3" if kind == "BURN" else "0")
            p = bf.Proc("webhook-receiver", [sys.executable, self.script], env, self.log)
            try:
                rid = p.api.submit({"n": 0})
                p.start()
                first = p._wait(rid, 30)
                cpu[kind] = p.api.cpu_at_first_answer
                wall = bf.ms(first["answered_ns"] - p.start_ns)
                # Read once, at the first answer: later ones do not move it.
                p.invoke({"n": 1}, timeout=30)
                self.assertIs(p.api.cpu_at_first_answer, cpu[kind])
            finally:
                p.stop()
            self.assertLessEqual(cpu[kind]["ms"], wall)
        self.assertGreaterEqual(cpu["BURN"]["ms"], 250)
        self.assertLess(cpu["SLEEP"]["ms"], 200)
        # The tick count agrees within its resolution (10 ms at USER_HZ 100) and scheduling slack.
        self.assertAlmostEqual(cpu["BURN"]["stat_ms"], cpu["BURN"]["ms"], delta=50)

    def test_payloads_past_lambdas_quotas_are_refused(self):
        p = bf.Proc("sync-worker", [sys.executable, self.script], dict(os.environ), self.log)
        try:
            p.start()
            # An answer at 6 MB less the envelope passes; one byte-count past 6 MB is refused as Lambda does.
            ok = p.invoke({"pad": bf.SYNC_PAYLOAD_MAX - 1000}, timeout=60)
            self.assertEqual(ok["kind"], "response")
            big = p.invoke({"pad": bf.SYNC_PAYLOAD_MAX}, timeout=60)
            self.assertEqual(big["kind"], "error")
            self.assertIn("Function.ResponseSizeTooLarge", big["body"].decode())
            # The process goes on serving after a refused answer.
            self.assertEqual(bf.answer(p.invoke({"n": 1}, timeout=30))["echo"], {"n": 1})
            # An event over 6 MB never reaches a synchronously invoked function.
            with self.assertRaises(bf.PayloadTooLarge):
                p.api.submit({"blob": "x" * bf.SYNC_PAYLOAD_MAX})
        finally:
            p.stop()
        # Scheduled functions are invoked asynchronously: 1 MB.
        api = bf.RuntimeApi("token-refresher")
        try:
            api.submit({"blob": "x" * (bf.ASYNC_PAYLOAD_MAX - 100)})
            with self.assertRaises(bf.PayloadTooLarge):
                api.submit({"blob": "x" * bf.ASYNC_PAYLOAD_MAX})
        finally:
            api.close()

    def test_a_function_that_dies_is_reported_not_waited_on(self):
        p = bf.Proc("sync-worker", [sys.executable, "-c", "import sys; sys.exit(3)"], dict(os.environ), self.log)
        try:
            rid = p.api.submit({})
            p.start()
            with self.assertRaisesRegex(RuntimeError, "exited"):
                p._wait(rid, 30)
        finally:
            p.stop()


    @unittest.skipUnless(shutil.which("cc") or shutil.which("gcc"), "needs a C compiler")
    def test_the_harness_floor_is_a_process_that_only_polls(self):
        floor = bf.harness_floor(dict(os.environ), 3, out_dir=self.dir.name)
        self.assertEqual(len(floor), 3, "each start reached its first poll")
        self.assertTrue(all(ms > 0 for ms in floor), floor)
        # The same measure of a function that waits 0.3 s before its poll counts that wait.
        spec = bf.Spec("sync-worker", [sys.executable, self.script], None, [])
        slow = bf.init_only(spec, dict(os.environ, STUB_INIT_SECONDS="0.3"), 1, log_dir=self.dir.name)[0]
        self.assertGreaterEqual(slow, 300, (slow, floor))

    def test_functions_get_a_core_of_their_own_and_the_rest_get_the_others(self):
        self.assertIsNone(bf.Placement.split({3}), "one core: nothing to split")
        p = bf.Placement.split({0, 2, 5})
        self.assertEqual((p.function_cpu, p.rest), (5, {0, 2}))

    @unittest.skipUnless(hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) >= 2, "needs two cores (Linux)")
    def test_a_started_function_runs_on_its_core_and_the_harness_stays_off_it(self):
        own = os.sched_getaffinity(0)
        placement = bf.Placement.split(own)
        bf.PLACEMENT = placement
        try:
            p = bf.Proc("sync-worker", [sys.executable, self.script], dict(os.environ), self.log)
            p.start()
            try:
                self.assertTrue(p.api.first_next.wait(30))
                self.assertEqual(os.sched_getaffinity(p.p.pid), {placement.function_cpu})
                self.assertEqual(os.sched_getaffinity(0), own, "the harness thread is back where it was")
                # A process pinned to the rest (as the local AWS is) leaves the function's core.
                other = bf.subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
                try:
                    self.assertTrue(placement.pin_rest(other.pid))
                    self.assertEqual(os.sched_getaffinity(other.pid), placement.rest)
                finally:
                    other.kill()
                    other.wait()
                self.assertFalse(placement.pin_rest(other.pid), "a process that is gone")
            finally:
                p.stop()
        finally:
            bf.PLACEMENT = None

    def test_compared_stacks_are_started_in_turn_and_each_keeps_its_own_figures(self):
        fast = bf.Spec("sync-worker", [sys.executable, self.script], None, [])
        slow = bf.Spec("token-refresher", [sys.executable, self.script], None, [])
        started, start = [], bf.Proc.start

        def recording_start(p):
            started.append(p.name)
            if p.name == "token-refresher":
                p.env = dict(p.env, STUB_INIT_SECONDS="0.5")
            start(p)

        bf.Proc.start = recording_start
        try:
            got = bf.init_in_turn([fast, slow], dict(os.environ), 3, log_dir=self.dir.name)
        finally:
            bf.Proc.start = start
        self.assertEqual(started, ["sync-worker", "token-refresher"] * 3)
        self.assertEqual(sorted(got), ["sync-worker", "token-refresher"])
        self.assertEqual([len(v) for v in got.values()], [3, 3])
        self.assertTrue(all(ms >= 500 for ms in got["token-refresher"]), got)
        self.assertLess(statistics.median(got["sync-worker"]), 500, got)


class FirstPollStampTest(unittest.TestCase):
    def test_the_first_poll_is_stamped_when_its_headers_arrive_not_when_python_handles_it(self):
        api = bf.RuntimeApi("sync-worker")
        handler = api.server.RequestHandlerClass
        parse = handler.parse_request

        def slow_parse(h):  # the handler's own work, which init must not include
            time.sleep(1.0)
            return parse(h)

        handler.parse_request = slow_parse
        conns = []
        try:
            # A request that is not a poll is not the end of init.
            other = socket.create_connection(("127.0.0.1", api.port))
            conns.append(other)
            other.sendall(b"POST /2018-06-01/runtime/init/error HTTP/1.1\r\nHost: runtime\r\nContent-Length: 2\r\n\r\n{}")
            other.recv(4096)
            self.assertIsNone(api.first_next_ns)
            poll = socket.create_connection(("127.0.0.1", api.port))
            conns.append(poll)
            poll.sendall(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n")
            time.sleep(0.2)
            self.assertIsNone(api.first_next_ns, "not before its headers are in")
            sent = bf.now_ns()
            poll.sendall(b"Host: runtime\r\n\r\n")
            end = time.time() + 10
            while api.first_next_ns is None and time.time() < end:
                time.sleep(0.001)
            self.assertIsNotNone(api.first_next_ns)
            self.assertGreaterEqual(api.first_next_ns, sent)
            self.assertLess(api.first_next_ns - sent, 400_000_000, "stamped before the handler's 1 s")
        finally:
            for c in conns:
                c.close()
            api.close()

    @unittest.skipUnless(bf.SO_TIMESTAMPNS, "kernel receive stamps are read on Linux only")
    def test_the_stamp_is_the_polls_arrival_even_when_the_server_runs_late(self):
        # The server's thread gets to the connection 300 ms after the poll is in, as it may when the
        # machine's cores are busy: the stamp is still the poll's arrival, not the server's.
        api = bf.RuntimeApi("webhook-receiver")
        listener, late = api.server.socket, threading.Event()

        class LateAccept:
            def accept(self):
                time.sleep(0.3)
                late.set()
                return listener.accept()

            def __getattr__(self, name):
                return getattr(listener, name)

        api.server.socket = LateAccept()
        poll = socket.create_connection(("127.0.0.1", api.port))
        try:
            sent = bf.now_ns()
            poll.sendall(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: runtime\r\n\r\n")
            self.assertTrue(api.first_next.wait(10))
            self.assertTrue(late.is_set())
            self.assertGreaterEqual(api.first_next_ns, sent)
            self.assertLess(api.first_next_ns - sent, 50_000_000, "the arrival, not the server's accept 300 ms later")
        finally:
            poll.close()
            api.server.socket = listener
            api.close()


class LambdaEnvironmentTest(unittest.TestCase):
    def test_functions_get_their_own_variables_not_the_machines(self):
        with tempfile.TemporaryDirectory() as d:
            aws_env = os.path.join(d, "aws.env")
            with open(aws_env, "w") as f:
                f.write("# generated\nexport AWS_ENDPOINT_URL=http://127.0.0.1:1\nexport TENANTS_TABLE=t\n")
            machine = {"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "TENANTS_TABLE": "t", "LOG_LEVEL": "debug",
                       "SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt", "AWS_CA_BUNDLE": "/x.pem",
                       "NODE_EXTRA_CA_CERTS": "/x.pem", "HOME": "/root", "PATH": "/usr/bin"}
            got = bf.lambda_environment(machine, aws_env)
        self.assertEqual(got, {"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "TENANTS_TABLE": "t", "LOG_LEVEL": "debug",
                               "PATH": "/usr/bin", "LANG": "en_US.UTF-8", "TZ": ":UTC"})


class CountingProxyTest(unittest.TestCase):
    def setUp(self):
        class Upstream(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                out = json.dumps({"got": body.decode(), "target": self.headers.get("x-amz-target")}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/x-amz-json-1.0")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.upstream = bf.QuietServer(("127.0.0.1", 0), Upstream)
        threading.Thread(target=self.upstream.serve_forever, daemon=True).start()
        self.proxy = bf.CountingProxy(f"http://127.0.0.1:{self.upstream.server_address[1]}")

    def tearDown(self):
        self.proxy.close()
        self.upstream.shutdown()
        self.upstream.server_close()

    def call(self, target: str | None, body: bytes, auth: str = "") -> dict:
        headers = {"content-type": "application/x-amz-json-1.0"}
        if target:
            headers["x-amz-target"] = target
        if auth:
            headers["authorization"] = auth
        req = urllib.request.Request(self.proxy.url + "/", data=body, headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def test_counts_each_call_by_service_and_operation_and_passes_it_through(self):
        got = self.call("DynamoDB_20120810.PutItem", b'{"TableName":"t"}')
        self.assertEqual(got, {"got": '{"TableName":"t"}', "target": "DynamoDB_20120810.PutItem"})
        self.call("DynamoDB_20120810.PutItem", b"{}")
        self.call("AmazonSQS.SendMessageBatch", b"{}")
        self.call("secretsmanager.GetSecretValue", b"{}")
        self.call(None, b"Action=Decrypt&Version=1", "AWS4-HMAC-SHA256 Credential=k/20260101/us-east-1/kms/aws4_request")
        calls, busy = self.proxy.take_timed()
        self.assertEqual(sorted(calls), ["dynamodb:PutItem", "dynamodb:PutItem", "kms:Decrypt", "secretsmanager:GetSecretValue", "sqs:SendMessageBatch"])
        self.assertGreater(busy, 0)
        self.assertEqual(bf.by_service(calls), "2 DDB + 1 KMS + 1 SM + 1 SQS")
        self.assertEqual(bf.summarise_calls(calls), "PutItem 2, Decrypt, GetSecretValue, SendMessageBatch")
        self.assertEqual(self.proxy.take(), [])

    def test_each_call_is_timed_at_the_endpoint_for_the_time_not_waiting_on_aws(self):
        t0 = bf.now_ns()
        self.call("DynamoDB_20120810.GetItem", b"{}")
        self.call("AmazonSQS.SendMessageBatch", b"{}")
        t1 = bf.now_ns()
        spans = self.proxy.spans_within(t0, t1)
        self.assertEqual(len(spans), 2)
        self.assertTrue(all(t0 <= a < b <= t1 for a, b in spans))
        self.assertEqual(self.proxy.spans_within(t1, t1 + 10**9), [])
        served = bf.union_ns(spans, t0, t1)
        self.assertGreater(served, 0)
        self.assertLess(served, t1 - t0)
        self.proxy.take()
        self.assertEqual(self.proxy.spans_within(t0, t1), [])

    def test_dynamodb_reads_are_sized_from_the_answer(self):
        # The stub upstream echoes the request: a Query whose answer holds no items reads one 4 KB block.
        self.call("DynamoDB_20120810.Query", json.dumps({"TableName": "t", "IndexName": "i"}).encode())
        self.call("AmazonSQS.SendMessage", b"{}")
        self.assertEqual(self.proxy.take(), ["dynamodb:Query", "sqs:SendMessage"])
        self.assertEqual(self.proxy.last_reads, [("Query", 0.5, True)])
        self.proxy.take()
        self.assertEqual(self.proxy.last_reads, [])


class CapacityTest(unittest.TestCase):
    """The read units the bench reports per records page (infra/ddb_capacity.py), by DynamoDB's rules."""

    def test_item_sizes_follow_dynamodbs_rules(self):
        self.assertEqual(bf.ddb_capacity.item_size({"pk": {"S": "TENANT#a"}}), 2 + 8)
        self.assertEqual(bf.ddb_capacity.item_size({"n": {"N": "-00123.4500"}}), 1 + 4)  # 12345: 3 bytes + 1
        self.assertEqual(bf.ddb_capacity.item_size({"é": {"S": "ü"}}), 2 + 2)  # UTF-8 bytes, not characters
        self.assertEqual(bf.ddb_capacity.item_size({"m": {"M": {"a": {"BOOL": True}, "l": {"L": [{"NULL": True}]}}}}),
                         1 + 3 + (1 + 1 + 1) + (1 + (3 + 1 + 1) + 1))
        self.assertEqual(bf.ddb_capacity.item_size({"b": {"B": "AAEC"}}), 1 + 3)

    def test_reads_round_up_to_4_kb_per_item_or_per_query(self):
        rc = bf.ddb_capacity.read_units

        def item(size: int) -> dict:
            return {"d": {"S": "x" * (size - 1)}}

        self.assertEqual(rc("GetItem", {"ConsistentRead": True}, {"Item": item(4096)}), (1.0, True))
        self.assertEqual(rc("GetItem", {"ConsistentRead": True}, {"Item": item(4097)}), (2.0, True))
        self.assertEqual(rc("GetItem", {}, {"Item": item(4097)}), (1.0, True))
        self.assertEqual(rc("GetItem", {"ConsistentRead": True}, {}), (1.0, True))  # a miss still reads
        # A projection does not lower the cost: the whole stored item is sized.
        full = item(9000)
        got = rc("GetItem", {"TableName": "t", "Key": {}, "ProjectionExpression": "d", "ConsistentRead": True},
                 {"Item": item(10)}, lambda _t, _k: full)
        self.assertEqual(got, (3.0, True))
        # A Query sums its items first (100 of 1 KB: 25 blocks), an index is read eventually consistent.
        items = [item(1024)] * 100
        self.assertEqual(rc("Query", {"IndexName": "i", "ConsistentRead": True}, {"Items": items, "Count": 100, "ScannedCount": 100}),
                         (12.5, True))
        self.assertEqual(rc("Query", {"ConsistentRead": True}, {"Items": items, "Count": 100, "ScannedCount": 100}), (25.0, True))
        # Items a filter dropped were read but are not in the answer: only a lower bound.
        self.assertEqual(rc("Query", {}, {"Items": items, "Count": 100, "ScannedCount": 120}), (12.5, False))
        self.assertEqual(bf.read_units_text([("GetItem", 1.0, True), ("GetItem", 1.0, True), ("Query", 12.5, False)]),
                         "at least 14.5 RRU (GetItem 2, Query 12.5)")


class RecordsWalkTest(unittest.TestCase):
    """The records pages the bench asks for: signed over the cursor, walked with next_cursor, every page full."""

    def setUp(self):
        self.stack = bf.Stack({}, "http://127.0.0.1:1", "ttya-ops")
        self.stack.realm = "4620816365"
        self.stack.records_full_pages = 2

    def page(self, n: int, cursor: str | None) -> dict:
        records = [{"record": {"entity": "contact", "id": str(i)}} for i in range(n)]
        return {"statusCode": 200, "body": json.dumps({"records": records, "next_cursor": cursor})}

    def query(self, event: dict) -> dict:
        return dict(bf.urllib.parse.parse_qsl(event["rawQueryString"]))

    def test_pages_follow_the_cursor_signed_and_wrap_before_a_short_page(self):
        key = self.stack.secrets["AppSigningSecret"]["connect_keys"]["local"]
        first = self.stack.records_page_event()
        q = self.query(first)
        self.assertEqual(first["rawPath"], f"/v1/tenants/{self.stack.tenant}/connections/quickbooks/4620816365/records/contact")
        self.assertEqual((q["limit"], q["tenant"], "cursor" in q), ("100", self.stack.tenant, False))
        self.stack.check_records(self.page(100, "c1"))
        second = self.stack.records_page_event()
        q = self.query(second)
        self.assertEqual(q["cursor"], "c1")
        # The cursor is under the signature, as the handler checks it.
        params = [(k, v) for k, v in bf.urllib.parse.parse_qsl(second["rawQueryString"])]
        self.assertEqual(q["sig"], bf.EV.connect_signature(key, "GET", second["rawPath"], params))
        # After the full pages the walk starts again, so a short last page is never measured.
        self.stack.check_records(self.page(100, "c2"))
        self.assertNotIn("cursor", self.query(self.stack.records_page_event()))
        with self.assertRaisesRegex(RuntimeError, "99 records"):
            self.stack.check_records(self.page(99, None))
        with self.assertRaises(RuntimeError):
            self.stack.check_records({"statusCode": 403, "body": json.dumps({"error": {"code": 1002}})})


class CpuAndAwsTimeTest(unittest.TestCase):
    def test_proc_stat_cpu_is_read_past_a_command_name_with_spaces_and_parentheses(self):
        # Fields from 3 on: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
        line = "4242 (node (main) x) S 1 4242 4242 0 -1 4194560 2110 0 0 0 17 5 0 0 20 0 11 0 1234 1000 100\n"
        self.assertEqual(bf.stat_cpu_ticks(line), 22)
        self.assertEqual(bf.schedstat_ns("242338726 247363527 87\n"), 242338726)
        me = bf.process_cpu(os.getpid())
        self.assertGreater(me["ms"], 0)
        self.assertTrue(bf.process_cpu(2**22 + 12345)["ms"] != bf.process_cpu(2**22 + 12345)["ms"])  # gone: NaN

    def test_concurrent_calls_count_once_and_only_within_the_span(self):
        # Query and GetItem alongside the PutItem (overlapping), then SendMessageBatch; one call after the span.
        spans = [(10, 30), (12, 25), (20, 40), (50, 60), (95, 120)]
        self.assertEqual(bf.union_ns(spans, 0, 100), 30 + 10 + 5)
        self.assertEqual(bf.union_ns(spans, 15, 55), 25 + 5)
        self.assertEqual(bf.union_ns([], 0, 100), 0)


class ComparisonTest(unittest.TestCase):
    RUST = {"init_ms": 4.0, "cpu_ms": 8.0, "cold_ms": 20.0, "proxied_cold_ms": 24.0, "aws_ms": 16.0, "own_ms": 8.0,
            "warm_ms": 5.0, "warm_p95_ms": 7.0, "rss_mib": 9.5}
    BUNDLED = {"init_ms": 200.0, "cpu_ms": 240.0, "cold_ms": 210.0, "proxied_cold_ms": 230.0, "aws_ms": 20.0,
               "own_ms": 210.0, "warm_ms": 15.0, "warm_p95_ms": 21.0, "rss_mib": 60.0}

    def test_targets_against_the_bundled_handler_are_stated_and_judged(self):
        lines = bf.target_table(self.RUST, self.BUNDLED)
        self.assertEqual(lines[2], "| init | 4.0 ms | 200.0 ms | 50.0x | at least 40x | yes |")
        self.assertEqual(lines[3], "| CPU time to the first response | 8.0 ms | 240.0 ms | 30.0x | at least 30x | yes |")
        self.assertEqual(lines[4], "| first event handled | 20.0 ms | 210.0 ms | 10.5x | at least 10x | yes |")
        slow = dict(self.RUST, cpu_ms=9.0, cold_ms=25.0)
        self.assertEqual([line.rsplit("|", 2)[1].strip() for line in bf.target_table(slow, self.BUNDLED)[2:]], ["yes", "**no**", "**no**"])
        # A figure that could not be measured is not judged.
        self.assertTrue(bf.target_table(dict(self.RUST, cpu_ms=0.0), self.BUNDLED)[3].endswith("| n/a | at least 30x | n/a |"))

    def test_the_comparison_has_a_column_per_stack_and_ratios_over_rust(self):
        plain = dict(self.BUNDLED, init_ms=400.0)
        lines = bf.comparison_table({"webhook-receiver": self.RUST, "node-webhook": plain, "node-webhook-bundled": self.BUNDLED})
        self.assertEqual(lines[0], "| | Rust | Node.js 20 plain | Node.js 20 esbuild | plain / Rust | esbuild / Rust |")
        self.assertEqual(lines[1], "| --- | --- | --- | --- | --- | --- |")
        self.assertEqual(lines[2], "| init median (ms) | 4.0 | 400.0 | 200.0 | 100.0x | 50.0x |")
        self.assertIn("| time not spent waiting on AWS (ms) | 8.0 | 210.0 | 210.0 | 26.2x | 26.2x |", lines)
        # Without the timing proxy's runs (or without the bundled stack) the rest still prints.
        no_proxy = {k: v for k, v in self.RUST.items() if k not in ("proxied_cold_ms", "aws_ms", "own_ms")}
        lines = bf.comparison_table({"webhook-receiver": no_proxy, "node-webhook": plain})
        self.assertEqual(lines[0], "| | Rust | Node.js 20 plain | plain / Rust |")
        self.assertIn("| time not spent waiting on AWS (ms) | n/a | 210.0 | n/a |", lines)

    def test_stack_figures_come_from_the_runs(self):
        result = {"init_ms": 4.0, "cpu_ms": 8.0, "cold_ms": 20.0, "warm": {"delivery": (5.0, 7.0, 100)}, "rss_mib": 9.5}
        self.assertEqual(bf.stack_figures(result, {"cold_ms": 24.0, "aws_ms": 16.0, "own_ms": 8.0}), self.RUST)


class NodeBundleTest(unittest.TestCase):
    NODE_DIR = os.path.join(bf.ROOT, "bench", "node-webhook")

    def test_esbuild_bundles_as_node_lambdas_are_deployed(self):
        argv = bf.esbuild_argv(self.NODE_DIR, "/tmp/out/index.js")
        self.assertEqual(argv[0], os.path.join(self.NODE_DIR, "node_modules", ".bin", "esbuild"))
        for flag in ("--bundle", "--minify", "--platform=node", "--target=node20", "--format=cjs", "--outfile=/tmp/out/index.js"):
            self.assertIn(flag, argv)
        self.assertFalse([a for a in argv if a.startswith("--external")])  # the AWS SDK is inside the bundle
        with open(os.path.join(self.NODE_DIR, "package.json")) as f:
            pkg = json.load(f)
        self.assertRegex(pkg["devDependencies"]["esbuild"], r"^\d+\.\d+\.\d+$")  # pinned

    @unittest.skipUnless(shutil.which("node") and os.path.exists(os.path.join(NODE_DIR, "node_modules", ".bin", "esbuild")),
                         "needs node and `npm ci` in bench/node-webhook")
    def test_the_bundle_starts_with_no_node_modules_beside_it(self):
        with tempfile.TemporaryDirectory() as d:
            bundle, size = bf.build_node_bundle(self.NODE_DIR, os.path.join(d, "bundle"))
            self.assertGreater(size, 10_000)
            # No AWS endpoint answers: the keys read fails, and the handler still reaches its first poll.
            env = {"PATH": os.environ.get("PATH", ""), "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s",
                   "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "WEBHOOK_KEYS_SECRET_ID": "keys", "AWS_MAX_ATTEMPTS": "1"}
            p = bf.Proc("node-webhook-bundled", ["node", bundle], env, os.path.join(d, "node.log"))
            try:
                p.start()
                end = bf.time.time() + 30
                while p.api.first_next_ns is None and p.p.poll() is None and bf.time.time() < end:
                    bf.time.sleep(0.01)
                with open(os.path.join(d, "node.log")) as f:
                    log = f.read()
                self.assertIsNotNone(p.api.first_next_ns, log)
                self.assertNotIn("Cannot find module", log)
            finally:
                p.stop()


class StatsTest(unittest.TestCase):
    def test_percentile_interpolates_and_handles_one_value(self):
        self.assertEqual(bf.pct([5.0], 0.95), 5.0)
        self.assertAlmostEqual(bf.pct([float(x) for x in range(1, 101)], 0.95), 95.05)
        self.assertEqual(bf.by_service([]), "0")


if __name__ == "__main__":
    unittest.main()
