#!/usr/bin/env python3
"""Per-function benchmark of the Lambda binaries in their own processes (`scripts/bench functions`).

Each function's release binary runs as Lambda runs it: a process whose AWS_LAMBDA_RUNTIME_API points
at a Lambda Runtime API emulator in this script (GET .../invocation/next hands out an event, POST
.../response and .../error take the answer), with the local stack's environment (.local/aws.env: moto)
and the provider sandbox. Measured per function:

- init: process start (just before exec) to its first `next` poll (Lambda's init phase: every client
  built; for webhook-receiver also the webhook keys read from Secrets Manager), median of N cold starts;
- cold: process start to the first event's response (an event is already waiting, as on a cold
  invoke), median of N;
- warm: `next` handing the event out to the response, median and p95 over N x M events;
- peak RSS: VmHWM from /proc/<pid>/status after the process's last event (before it is stopped),
  the largest of the N processes;
- AWS calls: a separate run whose AWS_ENDPOINT_URL is a counting proxy in front of moto (so the
  timings above carry no proxy hop): calls during init, for the cold event and for a warm one;
- the same for a Node.js 20 handler on the AWS SDK v3 doing webhook-receiver's job
  (bench/node-webhook, a minimal runtime loop), run plain (node_modules) and bundled with esbuild
  (as Node Lambda functions are deployed), with Node/Rust ratios;
- for those three stacks (issue 21): CPU time (user + sys, every thread) to the first response, and
  the time not spent waiting on AWS (first event handled minus the wall time the local AWS, behind a
  timing proxy, was serving the process's calls), with issue 21's targets against the bundle;
- issues 11 and 22: sync-worker's own peak RSS while one pull job syncs 10,000 QuickBooks bills of one
  to five lines each (--sync-entity, --sync-records); `--only sync-pull` runs only this (and
  oauth-callback, which connects the bench realm);
- issue 23: records-api serving 100-record pages of the contacts one pull job stored (--records,
  2,000), walked with next_cursor as the app walks them, and DynamoDB's reads per page: calls
  counted and read units sized (infra/ddb_capacity.py).

Operations: webhook-receiver and the Node baseline get the same signed QuickBooks deliveries (each a
new delivery, so none is a duplicate) for a realm connected to the bench tenant; oauth-callback a
signed GET /connect (state, PKCE, cookie) and the callback after the sandbox's consent (code exchange,
org discovery, sealed grant, reconnect of the same realm); token-refresher an operator run that
refreshes every grant due within 2 h (the bench tenant's one QuickBooks grant); sync-worker an SQS
batch of one webhook job (re-read one invoice from the sandbox, normalise, store, mark done);
records-api a signed GET of the next 100-record page of the bench realm's contacts.

Needs .local/aws.env sourced (moto up), and the binaries named on the command line. Stdlib only.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import http.client
import http.server
import importlib.util
import json
import os
import platform
import queue
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCAL = os.path.join(ROOT, ".local", "bench-functions")

_spec = importlib.util.spec_from_file_location("make_events", os.path.join(ROOT, "infra", "make-events.py"))
EV = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(EV)
sys.path.insert(0, os.path.join(ROOT, "infra"))
import ddb_capacity  # noqa: E402

# Lambda timeouts from template.yaml: the runtime API's deadline header, as Lambda would send it.
DEADLINE_S = {"oauth-callback": 29, "webhook-receiver": 10, "token-refresher": 240, "sync-worker": 120, "records-api": 29,
              "node-webhook": 10, "node-webhook-bundled": 10}
MEMORY_MB = {"oauth-callback": 256, "webhook-receiver": 256, "token-refresher": 256, "sync-worker": 512, "records-api": 256,
             "node-webhook": 256, "node-webhook-bundled": 256}
# The webhook receiver's job on the three stacks compared (issue 21's cold path).
WEBHOOK_STACKS = ("webhook-receiver", "node-webhook", "node-webhook-bundled")
# Issue 21's targets for the Rust receiver against the esbuild-bundled Node handler, same run:
# (label, figure, at least this many times better).
BUNDLED_TARGETS = (("init", "init_ms", 40.0), ("CPU time to the first response", "cpu_ms", 30.0),
                   ("first event handled", "cold_ms", 10.0))
RETURN_URL = "http://localhost:3000/integrations"
RECORDS_PAGE = 100
RECORDS_OP = f"{RECORDS_PAGE}-record page"
RECORDS_ENTITY = "contact"
# The bench tenant's entities: the defaults plus bills (issue 22's 10,000-bill pull).
SYNC_ENTITIES = ("invoice", "contact", "account", "payment", "bill")
# Lambda's payload quotas (AWS Lambda quotas; API reference, Invoke): an event invoked synchronously
# (the HTTP API's routes, the SQS event source mapping) and any response at most 6 MB; an event
# invoked asynchronously (EventBridge Scheduler's targets) at most 1 MB. The emulator below refuses
# past them as Lambda does, so a function measured here cannot rely on a payload AWS would refuse.
SYNC_PAYLOAD_MAX = 6 * 1024 * 1024
ASYNC_PAYLOAD_MAX = 1024 * 1024
ASYNC_FUNCTIONS = {"token-refresher", "sync-scheduler"}


class PayloadTooLarge(ValueError):
    """Lambda's RequestEntityTooLargeException: the event is over the invocation type's quota."""


def now_ns() -> int:
    return time.monotonic_ns()


def ms(ns: float) -> float:
    return ns / 1e6


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def stat_cpu_ticks(stat: str) -> int:
    """utime + stime (clock ticks) from a /proc/<pid>/stat line: the whole thread group's CPU time,
    threads already gone included. The command name (field 2) may hold spaces and parentheses, so the
    fields are counted from its last ')'."""
    fields = stat.rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state): utime and stime are fields 14 and 15.
    return int(fields[11]) + int(fields[12])


def schedstat_ns(schedstat: str) -> int:
    """A task's time on a CPU (ns) from /proc/<pid>/task/<tid>/schedstat (first field)."""
    return int(schedstat.split()[0])


def process_cpu(pid: int) -> dict:
    """A live process's CPU time so far: `ms`, the sum of its threads' time on a CPU from schedstat
    (nanosecond resolution; only threads still alive), and `stat_ms`, utime + stime of
    /proc/<pid>/stat (every thread, but in clock ticks: 10 ms at USER_HZ 100, coarser than the Rust
    receiver's whole figure). The bench reports `ms`; `stat_ms` is kept beside it as a check."""
    tck = os.sysconf("SC_CLK_TCK")
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat_ms = stat_cpu_ticks(f.read()) * 1000.0 / tck
        total = 0
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += schedstat_ns(f.read())
            except FileNotFoundError:  # the thread ended while listed
                pass
    except (FileNotFoundError, ProcessLookupError):
        return {"ms": float("nan"), "stat_ms": float("nan")}
    return {"ms": ms(total), "stat_ms": stat_ms}


def union_ns(spans: list[tuple[int, int]], lo: int, hi: int) -> int:
    """Time within [lo, hi] covered by at least one of the spans: the wall time during which the
    local AWS endpoint was serving at least one call (concurrent calls counted once)."""
    total, end = 0, lo
    for a, b in sorted(spans):
        a, b = max(a, end), min(b, hi)
        if b > a:
            total += b - a
            end = b
    return total


class QuietServer(http.server.ThreadingHTTPServer):
    """A stopped function drops its long poll mid-request; that is expected, not worth a traceback."""

    daemon_threads = True

    def handle_error(self, request, client_address):
        pass


# ------------------------------------------------------------------------------------------------
# Lambda Runtime API emulator (one per function process)
# ------------------------------------------------------------------------------------------------


NEXT_REQUEST = b"GET /2018-06-01/runtime/invocation/next"


# SO_TIMESTAMPNS (asm-generic value, Linux only; Python's socket module does not name it): the
# kernel stamps each received segment, and recvmsg hands the stamp back as ancillary data.
SO_TIMESTAMPNS = 35 if sys.platform.startswith("linux") else None


def arrival_ns(ancdata) -> int | None:
    """The kernel's receive time in `ancdata` (CLOCK_REALTIME), on this module's clock (monotonic)."""
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = struct.unpack("qq", data[:16])
            t, now = sec * 1_000_000_000 + nsec - (time.time_ns() - now_ns()), now_ns()
            # A kernel that stamps on another clock gives nonsense here: then the caller's own time.
            return t if now - 60_000_000_000 < t <= now else None
    return None


class RuntimeApiServer(QuietServer):
    """Stamps the arrival of a process's first `next` poll with the time the kernel received it.

    The end of init is when that request reaches the Runtime API, as Lambda measures it. Stamped in
    the handler, it waited for Python to start the connection's thread and parse the headers: 0.6-0.9
    ms (median) after the request was written, measured with a C process that sends its own clock in
    the request. Stamped when this server's thread saw the headers, it still waited for that thread to
    get a core: on 2 cores shared with the local AWS, that was 0.8-1.8 ms late in about 40 % of the
    webhook receiver's starts (its key read has the local AWS busy at that moment), 0.05 ms for
    Node's (whose init waits for its key read), and 0.16 ms for the null process (medians of
    alternating starts, 7 Dec). The kernel's receive stamp on the segment that completes the headers
    is the same for every stack, whenever this server gets to run."""

    def __init__(self, address, handler, on_first_next):
        super().__init__(address, handler)
        self.on_first_next = on_first_next
        self.stamped = False
        if SO_TIMESTAMPNS is not None:
            # Connections accepted from this socket inherit it.
            self.socket.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)

    def get_request(self):
        conn, addr = super().get_request()
        if not self.stamped:
            conn.settimeout(60)
            seen, at, give_up = b"", None, time.monotonic() + 60
            try:
                while b"\r\n\r\n" not in seen and len(seen) < 65536 and time.monotonic() < give_up:
                    # Blocks until bytes are in; the stamp is that of the last segment peeked.
                    more, ancdata, _, _ = conn.recvmsg(65536, 256, socket.MSG_PEEK)
                    if not more:
                        break
                    if len(more) == len(seen):
                        time.sleep(0.0001)  # part of the headers is in; the rest is on its way
                        continue
                    seen, at = more, arrival_ns(ancdata)
            except OSError:
                seen = b""
            finally:
                conn.settimeout(None)
            if seen.startswith(NEXT_REQUEST) and b"\r\n\r\n" in seen:
                self.stamped = True
                self.on_first_next(at if at is not None else now_ns())
        return conn, addr


class RuntimeApi:
    """GET /2018-06-01/runtime/invocation/next blocks until an event is queued; the answer and its time
    are recorded per request id. The first `next` poll's arrival is the end of the process's init."""

    def __init__(self, function: str):
        self.function = function
        self.events: queue.Queue = queue.Queue()
        self.first_next_ns: int | None = None
        self.first_next = threading.Event()  # set with first_next_ns: waiters block instead of polling
        self.init_error: str | None = None
        self.pid: int | None = None  # the function's process, set when it starts
        self.cpu_at_first_answer: dict | None = None
        self.results: dict[str, dict] = {}
        self.done: dict[str, threading.Event] = {}
        self.lock = threading.Lock()
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as separate writes; with Nagle on, the body waits for the
            # client's delayed ACK of the headers (40 ms on Linux), which showed up as a bimodal
            # warm latency. Lambda's own Runtime API adds no such stall.
            disable_nagle_algorithm = True

            def log_message(self, *a):  # quiet
                pass

            def _reply(self, status: int, body: bytes = b"", headers: dict | None = None):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if not self.path.startswith("/2018-06-01/runtime/invocation/next"):
                    return self._reply(404)
                api.stamp_first_next(now_ns())  # if the server did not already, on its arrival
                item = api.events.get()
                if item is None:  # shutting down: leave the poll hanging until the process is stopped
                    time.sleep(3600)
                    return
                rid, event = item
                body = json.dumps(event).encode()
                api.results[rid]["dispatched_ns"] = now_ns()
                deadline = int(time.time() * 1000) + DEADLINE_S.get(api.function, 30) * 1000
                self._reply(200, body, {
                    "content-type": "application/json",
                    "lambda-runtime-aws-request-id": rid,
                    "lambda-runtime-deadline-ms": str(deadline),
                    "lambda-runtime-invoked-function-arn": f"arn:aws:lambda:us-east-1:123456789012:function:ttya-bench-{api.function}",
                    "lambda-runtime-trace-id": f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=0",
                })

            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                data = self.rfile.read(length) if length else b""
                if self.headers.get("transfer-encoding", "").lower() == "chunked":
                    data = self._read_chunked()
                parts = self.path.split("/")
                t = now_ns()
                if self.path.startswith("/2018-06-01/runtime/init/error"):
                    api.init_error = data.decode(errors="replace")
                    return self._reply(202, b'{"status":"OK"}')
                # /2018-06-01/runtime/invocation/<id>/response|error
                if len(parts) >= 6 and parts[3] == "invocation" and parts[5] in ("response", "error"):
                    rid = parts[4]
                    r = api.results.get(rid)
                    if len(data) > SYNC_PAYLOAD_MAX:
                        # Lambda refuses the answer and the invoker gets Function.ResponseSizeTooLarge.
                        if r is not None:
                            r.update(answered_ns=t, kind="error", body=json.dumps({
                                "errorType": "Function.ResponseSizeTooLarge",
                                "errorMessage": f"Response payload size ({len(data)} bytes) exceeded maximum allowed payload size ({SYNC_PAYLOAD_MAX} bytes).",
                            }).encode())
                            api.done[rid].set()
                        return self._reply(413, json.dumps({"errorType": "RequestEntityTooLarge",
                                                            "errorMessage": "Exceeded maximum allowed payload size"}).encode(),
                                           {"content-type": "application/json"})
                    if r is not None:
                        r.update(answered_ns=t, kind=parts[5], body=data)
                        # Read while the process waits for this 202: nothing of its own runs meanwhile.
                        if api.cpu_at_first_answer is None and api.pid is not None:
                            api.cpu_at_first_answer = process_cpu(api.pid)
                        api.done[rid].set()
                    return self._reply(202, b'{"status":"OK"}')
                return self._reply(404)

            def _read_chunked(self) -> bytes:
                out = b""
                while True:
                    size = int(self.rfile.readline().strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return out
                    out += self.rfile.read(size)
                    self.rfile.readline()

        self.server = RuntimeApiServer(("127.0.0.1", 0), Handler, self.stamp_first_next)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stamp_first_next(self, t: int):
        with self.lock:
            if self.first_next_ns is None:
                self.first_next_ns = t
                self.first_next.set()

    def submit(self, event: dict) -> str:
        size = len(json.dumps(event).encode())
        limit = ASYNC_PAYLOAD_MAX if self.function in ASYNC_FUNCTIONS else SYNC_PAYLOAD_MAX
        if size > limit:
            raise PayloadTooLarge(f"{self.function}: a {size}-byte event (Lambda: at most {limit})")
        rid = str(uuid.uuid4())
        self.results[rid] = {"queued_ns": now_ns()}
        self.done[rid] = threading.Event()
        self.events.put((rid, event))
        return rid

    def wait(self, rid: str, timeout: float) -> dict:
        if not self.done[rid].wait(timeout):
            raise TimeoutError(f"{self.function}: no answer within {timeout}s")
        return self.results[rid]

    def close(self):
        self.events.put(None)
        self.server.shutdown()
        self.server.server_close()


# ------------------------------------------------------------------------------------------------
# Counting proxy in front of moto
# ------------------------------------------------------------------------------------------------


class CountingProxy:
    """Forwards every request to moto and counts it by service and operation (X-Amz-Target, or the
    query protocol's Action). Used only for the call-count run, never for the timed ones. DynamoDB
    reads are also sized (infra/ddb_capacity.py: read request units from the items returned, since
    moto's ConsumedCapacity is a fixed figure); `last_reads` holds those of the calls last taken."""

    READS = ("GetItem", "Query", "Scan", "BatchGetItem")

    def __init__(self, upstream: str):
        u = urllib.parse.urlsplit(upstream)
        self.host, self.port_up = u.hostname, u.port
        self.calls: list[str] = []
        self.reads: list[tuple[str, float, bool]] = []
        self.last_reads: list[tuple[str, float, bool]] = []
        self.upstream_ns = 0
        # (received, answered) of every call, at this endpoint: the local AWS's time serving it,
        # the proxy's own hop included (for the time a function spends not waiting on AWS).
        self.spans: list[tuple[int, int]] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as separate writes; with Nagle on, the body waits for the
            # client's delayed ACK of the headers (40 ms on Linux), which showed up as a bimodal
            # warm latency. Lambda's own Runtime API adds no such stall.
            disable_nagle_algorithm = True

            def log_message(self, *a):
                pass

            def _forward(self):
                received = now_ns()
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                target = self.headers.get("x-amz-target")
                if target:
                    svc, _, op = target.rpartition(".")
                    svc = {"DynamoDB_20120810": "dynamodb", "AmazonSQS": "sqs", "TrentService": "kms", "secretsmanager": "secretsmanager"}.get(svc, svc)
                else:
                    q = urllib.parse.parse_qs(body.decode(errors="replace")) if body else {}
                    op = (q.get("Action") or ["?"])[0]
                    auth = self.headers.get("authorization", "")
                    svc = auth.split("/")[3] if auth.count("/") >= 4 else "?"
                conn = http.client.HTTPConnection(proxy.host, proxy.port_up, timeout=120)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive", "transfer-encoding")}
                t0 = now_ns()
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                busy = now_ns() - t0
                # Sized after the timed span: a GetItem with a projection costs a second, untimed read.
                read = proxy.size_read(op, headers, body, data) if svc == "dynamodb" and op in proxy.READS and resp.status == 200 else None
                with proxy.lock:
                    proxy.calls.append(f"{svc}:{op}")
                    proxy.upstream_ns += busy
                    if read is not None:
                        proxy.reads.append((op, *read))
                # The span is closed before the answer goes out, so a caller that has its answer
                # always finds the span recorded (appending after the write raced with the reader).
                with proxy.lock:
                    proxy.spans.append((received, now_ns()))
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("content-length", "connection", "transfer-encoding", "keep-alive", "server", "date"):
                        self.send_header(k, v)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()
                conn.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def size_read(self, op: str, headers: dict, body: bytes, data: bytes) -> tuple[float, bool] | None:
        """(RRU, exact) of one DynamoDB read; None when it cannot be parsed."""
        def full_item(table: str, key: dict):
            conn = http.client.HTTPConnection(self.host, self.port_up, timeout=60)
            h = {k: v for k, v in headers.items() if k.lower() in ("content-type", "authorization", "x-amz-date")}
            h["x-amz-target"] = "DynamoDB_20120810.GetItem"
            conn.request("POST", "/", body=json.dumps({"TableName": table, "Key": key, "ConsistentRead": True}), headers=h)
            got = json.loads(conn.getresponse().read() or b"{}").get("Item")
            conn.close()
            return got
        try:
            return ddb_capacity.read_units(op, json.loads(body or b"{}"), json.loads(data or b"{}"), full_item)
        except (ValueError, KeyError, OSError):
            return None

    def spans_within(self, lo: int, hi: int) -> list[tuple[int, int]]:
        with self.lock:
            return [(a, b) for a, b in self.spans if b > lo and a < hi]

    def take(self) -> list[str]:
        with self.lock:
            out, self.calls, self.upstream_ns = self.calls, [], 0
            self.last_reads, self.reads = self.reads, []
            self.spans = []
        return out

    def take_timed(self) -> tuple[list[str], float]:
        """The calls since the last take and the time moto spent answering them (ms, summed)."""
        with self.lock:
            out, busy = self.calls, ms(self.upstream_ns)
            self.calls, self.upstream_ns = [], 0
            self.last_reads, self.reads = self.reads, []
            self.spans = []
        return out, busy

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def summarise_calls(calls: list[str]) -> str:
    by: dict[str, int] = {}
    for c in calls:
        by[c] = by.get(c, 0) + 1
    return ", ".join(f"{k.split(':')[1]} {v}" if v > 1 else k.split(":")[1] for k, v in sorted(by.items())) or "none"


def by_service(calls: list[str]) -> str:
    by: dict[str, int] = {}
    for c in calls:
        s = c.split(":")[0]
        by[s] = by.get(s, 0) + 1
    short = {"dynamodb": "DDB", "sqs": "SQS", "kms": "KMS", "secretsmanager": "SM"}
    return " + ".join(f"{v} {short.get(k, k)}" for k, v in sorted(by.items())) if by else "0"


def read_units_text(reads: list[tuple[str, float, bool]]) -> str:
    """DynamoDB read request units of one event's reads, by operation: "3.5 RRU (GetItem 3, Query 0.5)";
    "at least" when a filter dropped items read that the answer does not show."""
    if not reads:
        return "0 RRU"
    by: dict[str, float] = {}
    for op, rru, _exact in reads:
        by[op] = by.get(op, 0.0) + rru
    lower = "at least " if not all(exact for _op, _rru, exact in reads) else ""
    return f"{lower}{sum(by.values()):g} RRU ({', '.join(f'{op} {v:g}' for op, v in sorted(by.items()))})"


# ------------------------------------------------------------------------------------------------
# Function processes
# ------------------------------------------------------------------------------------------------


def function_vars(aws_env: str = os.path.join(ROOT, ".local", "aws.env")) -> set[str]:
    """The variables a deployed function has: the template's (as .local/aws.env renders them for the
    local stack), the sandbox URL and the log level."""
    names = {"PROVIDER_BASE_URL", "LOG_LEVEL"}
    with open(aws_env) as f:
        for line in f:
            if line.startswith("export ") and "=" in line:
                names.add(line[len("export "):].split("=", 1)[0].strip())
    return names


def lambda_environment(env: dict, aws_env: str = os.path.join(ROOT, ".local", "aws.env")) -> dict:
    """The process environment Lambda gives a function: its own variables and the runtime's few, not
    this machine's. A developer machine's SSL_CERT_FILE, AWS_CA_BUNDLE or NODE_EXTRA_CA_CERTS would
    otherwise change what both stacks load at start (Lambda sets none of them for provided.al2023 or
    nodejs20.x)."""
    keep = function_vars(aws_env)
    out = {k: v for k, v in env.items() if k in keep}
    out.update({"PATH": env.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "LANG": "en_US.UTF-8", "TZ": ":UTC"})
    return out


class Placement:
    """Which cores the bench's processes run on: the function under test on one core of its own,
    everything else (this harness, the local AWS, the provider sandbox) on the rest.

    Lambda gives a function at most the CPU its memory buys (a 256 MB function about 0.15 of a vCPU,
    one full vCPU only from 1,769 MB), and the services it calls run on other machines. Unpinned on
    a small machine, the function shares its cores with the local AWS serving its own calls, and a
    multi-threaded runtime gets a second core no Lambda function of this size has (measured with
    both, 7 Dec: docs/measurements.md)."""

    def __init__(self, function_cpu: int, rest: set[int]):
        self.function_cpu, self.rest = function_cpu, set(rest)

    @staticmethod
    def split(cpus: set[int]) -> "Placement | None":
        """The highest core for functions and the others for the rest; None with fewer than two."""
        if len(cpus) < 2:
            return None
        f = max(cpus)
        return Placement(f, set(cpus) - {f})

    def pin_rest(self, pid: int) -> bool:
        """Every thread of `pid` to the rest's cores; False if the process is gone."""
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            return False
        for tid in tids:
            try:
                os.sched_setaffinity(tid, self.rest)
            except OSError:
                pass  # a thread that ended meanwhile
        return True

    def spawn(self, popen):
        """`popen()` from this thread moved to the function's core for the moment: the child
        inherits that core, and Popen keeps its vfork path (a preexec_fn would cost every start
        a full fork)."""
        own = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {self.function_cpu})
        try:
            return popen()
        finally:
            os.sched_setaffinity(0, own)


# Set by main() unless BENCH_PIN=0; tests set it themselves.
PLACEMENT: Placement | None = None


def placement_text() -> str:
    if PLACEMENT is None:
        return "processes unpinned (BENCH_PIN=0 or one core)"
    return (f"each function process on CPU {PLACEMENT.function_cpu} alone, the harness, local AWS and sandbox on CPU "
            f"{','.join(map(str, sorted(PLACEMENT.rest)))}")


class Proc:
    def __init__(self, name: str, cmd: list[str], env: dict, log_path: str):
        self.name = name
        self.api = RuntimeApi(name)
        penv = dict(env)
        penv.update({
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{self.api.port}",
            "AWS_LAMBDA_FUNCTION_NAME": f"ttya-bench-{name}",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(MEMORY_MB.get(name, 256)),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/ttya-bench-{name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        })
        self.log = open(log_path, "ab")  # appended: N processes of one function share a log
        self.cmd = cmd
        self.env = penv
        self.p: subprocess.Popen | None = None
        self.start_ns = 0

    def start(self):
        def popen():
            self.start_ns = now_ns()
            return subprocess.Popen(self.cmd, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        self.p = PLACEMENT.spawn(popen) if PLACEMENT else popen()
        self.api.pid = self.p.pid

    def invoke(self, event: dict, timeout: float = 300) -> dict:
        rid = self.api.submit(event)
        return self._wait(rid, timeout)

    def _wait(self, rid: str, timeout: float) -> dict:
        end = time.time() + timeout
        while True:
            try:
                return self.api.wait(rid, 0.2)
            except TimeoutError:
                if self.p and self.p.poll() is not None:
                    raise RuntimeError(f"{self.name} exited ({self.p.returncode}) before answering; init error: {self.api.init_error}; log {self.log.name}")
                if time.time() > end:
                    raise

    def peak_rss_kib(self) -> int:
        with open(f"/proc/{self.p.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        if self.p and self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.api.close()
        self.log.close()


def esbuild_argv(node_dir: str, outfile: str) -> list[str]:
    """esbuild as Node Lambda functions are deployed: one minified CommonJS file for Node 20 holding
    the handler and the AWS SDK v3 clients it uses (none left external, so nothing is read from
    node_modules at start); Node's built-ins stay external (platform node)."""
    return [os.path.join(node_dir, "node_modules", ".bin", "esbuild"), os.path.join(node_dir, "index.js"), "--bundle", "--minify",
            "--platform=node", "--target=node20", "--format=cjs", f"--outfile={outfile}", "--log-level=warning"]


def build_node_bundle(node_dir: str, out_dir: str) -> tuple[str, int]:
    """Bundles the Node baseline with esbuild (a devDependency of bench/node-webhook, installed by
    `scripts/bench functions`) into out_dir, away from any node_modules; (path, bytes)."""
    argv = esbuild_argv(node_dir, os.path.join(out_dir, "index.js"))
    if not os.path.exists(argv[0]):
        raise RuntimeError(f"no esbuild at {argv[0]}: run `npm ci` in {node_dir} (scripts/bench functions does)")
    os.makedirs(out_dir, exist_ok=True)
    subprocess.run(argv, check=True)
    out = os.path.join(out_dir, "index.js")
    return out, os.path.getsize(out)


def answer(r: dict) -> dict:
    if r.get("kind") != "response":
        raise RuntimeError(f"function error: {r.get('body', b'')[:400]!r}")
    return json.loads(r["body"] or b"null")


# ------------------------------------------------------------------------------------------------
# The local system: sandbox, tenant, events
# ------------------------------------------------------------------------------------------------


def request(method: str, url: str, body: bytes | None = None, headers: dict | None = None):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    conn.request(method, u.path + (f"?{u.query}" if u.query else ""), body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data


class Stack:
    def __init__(self, env: dict, sandbox: str, ops_bin: str):
        self.env = env
        self.sandbox = sandbox.rstrip("/")
        self.ops_bin = ops_bin
        with open(os.path.join(ROOT, "infra", "local-secrets.json")) as f:
            self.secrets = json.load(f)
        self.tenant = f"bench-{uuid.uuid4().hex[:8]}"
        self.user = "bench-owner"
        self.realm: str | None = None
        self.invoice_id: str | None = None
        self.seq = 0
        self.records_cursor: str | None = None
        self.records_pages = 0
        self.records_full_pages = 1
        self.records_answer_bytes = 0

    def ops(self, *args):
        subprocess.run([self.ops_bin, *args], env=self.env, check=True, capture_output=True, text=True, timeout=300)

    def create_tenant(self):
        self.ops("tenants", "create", self.tenant, "--name", "Bench Ltd", "--plan", "enterprise", "--return-url", RETURN_URL,
                 "--providers", "quickbooks,xero,zoho")
        # Bills are off by default for a tenant (issue 22): the bill pull needs them on.
        self.ops("tenants", "set-config", self.tenant, "enabled_entities=" + ",".join(SYNC_ENTITIES))
        self.ops("users", "set-role", self.tenant, self.user, "owner")

    def sandbox_call(self, method: str, path: str, doc=None):
        status, _, body = request(method, f"{self.sandbox}{path}", json.dumps(doc).encode() if doc is not None else None,
                                  {"content-type": "application/json"})
        if status >= 300:
            raise RuntimeError(f"sandbox {method} {path}: {status} {body[:200]!r}")
        return json.loads(body or b"null")

    # --- oauth-callback
    def connect_event(self, provider: str = "quickbooks") -> dict:
        key = self.secrets["AppSigningSecret"]["connect_keys"]["local"]
        path = f"/connect/{provider}"
        query = [("tenant", self.tenant), ("user", self.user), ("return_url", RETURN_URL), ("ts", str(int(time.time()))),
                 ("kid", "local"), ("jti", str(uuid.uuid4()))]
        query.append(("sig", EV.connect_signature(key, "GET", path, query)))
        return EV.http_event("GET", "/connect/{provider}", path, query=query, name=f"bench-connect-{uuid.uuid4()}", when=EV.datetime.now(EV.timezone.utc))

    def consent(self, connect_answer: dict) -> dict:
        """Plays the browser between /connect and the callback: the sandbox consents at once."""
        if connect_answer.get("statusCode") != 302:
            raise RuntimeError(f"connect answered {connect_answer.get('statusCode')}: {str(connect_answer.get('body'))[:300]}")
        headers = {k.lower(): v for k, v in (connect_answer.get("headers") or {}).items()}
        cookies = list(connect_answer.get("cookies") or [])
        if "set-cookie" in headers:
            cookies.append(headers["set-cookie"])
        jar = [c.split(";")[0].strip() for c in cookies]
        status, h, body = request("GET", headers["location"])
        if status != 302:
            raise RuntimeError(f"sandbox consent answered {status}: {body[:200]!r}")
        back = urllib.parse.urlsplit(h["location"])
        query = urllib.parse.parse_qsl(back.query)
        self.realm = dict(query).get("realmId", self.realm)
        path = "/oauth/quickbooks/callback"
        return EV.http_event("GET", "/oauth/{provider}/callback", path, query=query, name=f"bench-callback-{uuid.uuid4()}",
                             when=EV.datetime.now(EV.timezone.utc), cookies=jar)

    @staticmethod
    def check_connect(ans: dict):
        if ans.get("statusCode") != 302:
            raise RuntimeError(f"connect answered {ans.get('statusCode')}: {str(ans.get('body'))[:300]}")

    @staticmethod
    def check_callback(ans: dict):
        loc = {k.lower(): v for k, v in (ans.get("headers") or {}).items()}.get("location", "")
        if ans.get("statusCode") != 302 or "status=connected" not in loc:
            raise RuntimeError(f"callback did not connect: {ans.get('statusCode')} {loc} {str(ans.get('body'))[:300]}")

    # --- webhook-receiver
    def webhook_event(self) -> dict:
        """A new signed QuickBooks delivery each time (a fresh invoice change), so none is a duplicate."""
        self.seq += 1
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{self.seq % 1000:03d}Z"
        body = EV.compact({"eventNotifications": [{"realmId": self.realm, "dataChangeEvent": {"entities": [
            {"name": "Invoice", "id": str(self.invoice_id), "operation": "Update", "lastUpdated": stamp},
            {"name": "Customer", "id": "58", "operation": "Update", "lastUpdated": f"{stamp}-{uuid.uuid4().hex[:6]}"},
        ]}}]})
        key = self.secrets["WebhookKeysSecret"]["quickbooks"]["current"]
        ev = EV.webhook_event("quickbooks", f"bench-webhook-{uuid.uuid4()}", body, {"intuit-signature": EV.hmac_b64(key, body)})
        return ev

    @staticmethod
    def check_webhook(ans: dict):
        body = json.loads(ans.get("body") or "{}")
        if ans.get("statusCode") != 200 or body.get("status") != "accepted":
            raise RuntimeError(f"webhook not accepted: {ans.get('statusCode')} {body}")

    # --- token-refresher
    @staticmethod
    def refresh_event() -> dict:
        doc = EV.force_window_event()
        doc["id"] = str(uuid.uuid4())
        return doc

    @staticmethod
    def check_refresh(ans: dict):
        if not isinstance(ans, dict) or ans.get("failed", 0) != 0 or ans.get("refreshed", 0) < 1:
            raise RuntimeError(f"refresher run: {ans}")

    # --- sync-worker
    def sync_job(self, operation: str, **extra) -> dict:
        job = {
            "version": 1, "job_id": str(uuid.uuid4()), "tenant_id": self.tenant, "provider": "quickbooks", "org_id": self.realm,
            "operation": operation, "entity": "invoice", **extra, "priority": "normal",
            "idempotency_key": f"bench-{uuid.uuid4()}", "correlation_id": str(uuid.uuid4()),
            "requested_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "source": "app",
        }
        return EV.sqs_event(f"bench-{uuid.uuid4()}", [EV.compact(job)], "sync-normal")

    def sync_webhook_event(self) -> dict:
        return self.sync_job("webhook", entity_id=str(self.invoice_id), change="updated")

    @staticmethod
    def check_sync(ans: dict):
        if not isinstance(ans, dict) or ans.get("batchItemFailures"):
            raise RuntimeError(f"sync batch failed: {ans}")

    # --- records-api
    def records_page_event(self) -> dict:
        """A signed request for the next 100-record page of the realm's contacts (docs/records-api.md),
        as the app sends it: the pages are walked with `next_cursor`, from the first again after
        `records_full_pages`, so every page measured is a full page of the stored set."""
        key = self.secrets["AppSigningSecret"]["connect_keys"]["local"]
        path = f"/v1/tenants/{self.tenant}/connections/quickbooks/{EV.rfc3986(self.realm)}/records/{RECORDS_ENTITY}"
        params = [("tenant", self.tenant), ("user", self.user), ("limit", str(RECORDS_PAGE))]
        if self.records_cursor:
            params.append(("cursor", self.records_cursor))
        params += [("ts", str(int(time.time()))), ("kid", "local")]
        params.append(("sig", EV.connect_signature(key, "GET", path, params)))
        return EV.http_event("GET", EV.LIST_ROUTE, path, query=params, name=f"bench-records-{uuid.uuid4()}",
                             when=EV.datetime.now(EV.timezone.utc))

    def check_records(self, ans: dict):
        body = json.loads(ans.get("body") or "{}") if isinstance(ans, dict) else {}
        records = body.get("records")
        if ans.get("statusCode") != 200 or not isinstance(records, list) or len(records) != RECORDS_PAGE:
            raise RuntimeError(f"records page: {ans.get('statusCode')} {len(records or [])} records {str(body)[:300]}")
        if any(r.get("record", {}).get("entity") not in (None, RECORDS_ENTITY) for r in records):
            raise RuntimeError(f"records page holds other entities: {str(records[0])[:300]}")
        self.records_pages += 1
        self.records_answer_bytes = len(ans["body"])
        self.records_cursor = body.get("next_cursor")
        if not self.records_cursor or self.records_pages >= self.records_full_pages:
            self.records_cursor, self.records_pages = None, 0


# ------------------------------------------------------------------------------------------------
# Runs
# ------------------------------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    v = sorted(values)
    if not v:
        return float("nan")
    k = (len(v) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


class Spec:
    """One function: how to start it, and its operation(s). `ops` is a list of (label, make_event,
    check); each warm round runs them in order (oauth-callback: connect, then its callback)."""

    def __init__(self, name: str, cmd: list[str], first, ops):
        self.name, self.cmd, self.first, self.ops = name, cmd, first, ops


def init_only(spec: Spec, env: dict, runs: int, log_dir: str = LOCAL) -> list[float]:
    """Process start to the first `next` poll, `runs` times; each process is stopped at that poll.
    Cheap, so many more samples than cold starts: the median holds on a machine shared with others."""
    out = []
    os.makedirs(log_dir, exist_ok=True)
    log = os.path.join(log_dir, f"{spec.name}.init.log")
    for _ in range(runs):
        p = Proc(spec.name, spec.cmd, env, log)
        try:
            p.start()
            end = time.time() + 60
            while not p.api.first_next.wait(0.05):
                if p.p.poll() is not None or time.time() > end:
                    raise RuntimeError(f"{spec.name} did not reach its first poll; log {log}")
            out.append(ms(p.api.first_next_ns - p.start_ns))
        finally:
            p.stop()
    return out


# The least a function can do: connect to the Runtime API and poll. Its "init" is this harness's
# own share of every init figure (Popen, exec, the loader, the poll reaching this Python server).
NULL_FUNCTION_C = r"""
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
int main(void) {
  const char *api = getenv("AWS_LAMBDA_RUNTIME_API");
  const char *colon = api ? strchr(api, ':') : NULL;
  if (!colon || colon - api > 63) return 2;
  char host[64];
  memcpy(host, api, colon - api);
  host[colon - api] = 0;
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)atoi(colon + 1));
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1) return 2;
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a)) return 1;
  const char *req = "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: runtime\r\n\r\n";
  if (write(s, req, strlen(req)) < 0) return 1;
  char buf[4096];
  return read(s, buf, sizeof buf) < 0;
}
"""


def null_function(out_dir: str = os.path.join(LOCAL, "harness-floor")) -> str | None:
    """The null function above, compiled, or None where no C compiler is found."""
    import shutil
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        return None
    os.makedirs(out_dir, exist_ok=True)
    src, exe = os.path.join(out_dir, "null.c"), os.path.join(out_dir, "null")
    with open(src, "w") as f:
        f.write(NULL_FUNCTION_C)
    subprocess.run([cc, "-O2", "-o", exe, src], check=True)
    return exe


def harness_floor(env: dict, runs: int, out_dir: str = os.path.join(LOCAL, "harness-floor")) -> list[float] | None:
    """Init of the null function above (`runs` starts), or None where no C compiler is found."""
    exe = null_function(out_dir)
    return init_only(Spec("harness-floor", [exe], None, []), env, runs, log_dir=out_dir) if exe else None


def init_in_turn(specs: list[Spec], env: dict, runs: int, log_dir: str = LOCAL) -> dict[str, list[float]]:
    """`runs` starts to the first poll of each spec, taken in turn (one of each, then again), so that
    what drifts on the host over a run (its load, its neighbours, its clock speed) falls on every
    stack alike instead of on whichever was measured in the worse minutes."""
    out: dict[str, list[float]] = {s.name: [] for s in specs}
    for _ in range(runs):
        for s in specs:
            out[s.name] += init_only(s, env, 1, log_dir=log_dir)
    return out


def run_spec(spec: Spec, env: dict, cold: int, warm: int, init_runs: int, inits: list[float] | None = None) -> dict:
    """`inits`: starts to the first poll already taken (init_in_turn); else `init_runs` are taken here."""
    os.makedirs(LOCAL, exist_ok=True)
    log = os.path.join(LOCAL, f"{spec.name}.log")
    in_turn = inits is not None
    inits = list(inits) if in_turn else init_only(spec, env, init_runs)
    colds, rss, cpus, stat_cpus, cold_inits = [], [], [], [], []
    warm_ms: dict[str, list[float]] = {label: [] for label, _, _ in spec.ops}
    for i in range(cold):
        p = Proc(spec.name, spec.cmd, env, log)
        try:
            first_event, first_check, chain = spec.first()
            purge_queues(env)
            rid = p.api.submit(first_event)  # waiting before the process starts, as on a cold invoke
            p.start()
            r = p._wait(rid, 120)
            first_check(answer(r), p, chain)
            cold_inits.append(ms(p.api.first_next_ns - p.start_ns))
            colds.append(ms(r["answered_ns"] - p.start_ns))
            cpus.append(p.api.cpu_at_first_answer["ms"])
            stat_cpus.append(p.api.cpu_at_first_answer["stat_ms"])
            for _ in range(warm):
                carry = None
                for label, make, check in spec.ops:
                    ev = make(carry)
                    purge_queues(env)
                    r = p.invoke(ev)
                    carry = check(answer(r))
                    warm_ms[label].append(ms(r["answered_ns"] - r["dispatched_ns"]))
            rss.append(p.peak_rss_kib())
        finally:
            p.stop()
    return {
        # A cold start's init is a sample too, unless the samples were taken in turn with other
        # stacks: then those alone, all from the same minutes as theirs.
        "init_ms": statistics.median(inits if in_turn else inits + cold_inits), "init_all": inits if in_turn else inits + cold_inits,
        "cold_init_all": cold_inits,
        "cold_ms": statistics.median(colds), "cold_all": colds,
        "warm": {k: (statistics.median(v), pct(v, 0.95), len(v)) for k, v in warm_ms.items() if v},
        "rss_mib": max(rss) / 1024.0, "rss_all": rss,
        "warm_all": warm_ms,
        # CPU time (user + sys, every thread) from process start to the first response, median.
        "cpu_ms": statistics.median(cpus), "cpu_all": cpus,
        "cpu_stat_ms": statistics.median(stat_cpus), "cpu_stat_all": stat_cpus,
    }


def aws_wait_runs(spec: Spec, env: dict, proxy: CountingProxy, runs: int) -> dict:
    """Cold starts whose AWS calls go through the proxy, which times its serving of each: the
    first event handled from process start, the wall time in it during which the local AWS was
    serving at least one of the process's calls (its init's included), and the difference, the time
    not spent waiting on AWS. Medians of `runs`; the proxy's hop is counted as AWS's time."""
    penv = dict(env, AWS_ENDPOINT_URL=proxy.url)
    log = os.path.join(LOCAL, f"{spec.name}.aws-wait.log")
    colds, waits, own = [], [], []
    for _ in range(runs):
        p = Proc(spec.name, spec.cmd, penv, log)
        try:
            first_event, first_check, chain = spec.first()
            purge_queues(env)
            rid = p.api.submit(first_event)
            p.start()
            r = p._wait(rid, 120)
            first_check(answer(r), p, chain)
            lo, hi = p.start_ns, r["answered_ns"]
            aws = union_ns(proxy.spans_within(lo, hi), lo, hi)
            colds.append(ms(hi - lo))
            waits.append(ms(aws))
            own.append(ms(hi - lo - aws))
        finally:
            p.stop()
        proxy.take()
    return {"cold_ms": statistics.median(colds), "aws_ms": statistics.median(waits), "own_ms": statistics.median(own),
            "cold_all": colds, "aws_all": waits, "own_all": own}


def count_spec(spec: Spec, env: dict, proxy: CountingProxy) -> dict:
    """One process through the counting proxy: calls during init, for the cold event, for warm ones."""
    penv = dict(env, AWS_ENDPOINT_URL=proxy.url)
    p = Proc(spec.name, spec.cmd, penv, os.path.join(LOCAL, f"{spec.name}.count.log"))
    out = {}
    try:
        proxy.take()
        p.start()
        while not p.api.first_next.wait(0.05):
            if p.p.poll() is not None:
                raise RuntimeError(f"{spec.name} exited during init; log {p.log.name}")
        # webhook-receiver starts its key read during init and polls alongside it: give calls begun
        # in init time to land before they are counted as init's.
        time.sleep(0.3)
        out["init"] = proxy.take()
        first_event, first_check, chain = spec.first()
        purge_queues(env)
        first_check(answer(p.invoke(first_event)), p, chain)
        out["cold"], out["cold_moto_ms"] = proxy.take_timed()
        out["cold_reads"] = proxy.last_reads
        # The second warm round, so per-container caches filled by the cold event are in effect.
        for round_no in range(2):
            carry = None
            for label, make, check in spec.ops:
                ev = make(carry)
                purge_queues(env)
                proxy.take()
                carry = check(answer(p.invoke(ev)))
                out[f"warm:{label}"], out[f"moto_ms:{label}"] = proxy.take_timed()
                out[f"reads:{label}"] = proxy.last_reads
    finally:
        p.stop()
    return out


def moto_round_trip_ms(endpoint: str, table: str, n: int = 30) -> float:
    """Median time of one DynamoDB GetItem against moto over a kept-alive connection: the local
    stack's floor per AWS call, paid alike by both stacks."""
    u = urllib.parse.urlsplit(endpoint)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    body = json.dumps({"TableName": table, "Key": {"pk": {"S": "TENANT#bench-probe"}, "sk": {"S": "TENANT"}}})
    headers = {"content-type": "application/x-amz-json-1.0", "x-amz-target": "DynamoDB_20120810.GetItem",
               "authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0"}
    out = []
    for _ in range(n):
        t0 = now_ns()
        conn.request("POST", "/", body=body, headers=headers)
        conn.getresponse().read()
        out.append(ms(now_ns() - t0))
    conn.close()
    return statistics.median(out)


def purge_queues(env: dict):
    """Drains the sync and events queues before an event is handed out (outside every timed span).
    Nothing consumes them here, and moto's SendMessage slows with the queue's depth (30 ms per
    batch at 650 messages, 3 ms when empty) where SQS does not; straight to moto, never through the
    counting proxy."""
    endpoint = f"http://127.0.0.1:{env['MOTO_PORT']}"
    for name in ("SYNC_QUEUE_HIGH_URL", "SYNC_QUEUE_NORMAL_URL", "SYNC_QUEUE_LOW_URL", "EVENTS_QUEUE_URL"):
        url = env.get(name)
        while url:  # PurgeQueue is allowed once a minute per queue (in moto as in SQS): receive and delete
            got = sqs_json(endpoint, "ReceiveMessage", {"QueueUrl": url, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 0}).get("Messages") or []
            if not got:
                break
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)]
            sqs_json(endpoint, "DeleteMessageBatch", {"QueueUrl": url, "Entries": entries})


def sqs_json(endpoint: str, action: str, doc: dict) -> dict:
    """One SQS call in its JSON protocol over plain HTTP (moto does not check signatures)."""
    u = urllib.parse.urlsplit(endpoint)
    headers = {"content-type": "application/x-amz-json-1.0", "x-amz-target": f"AmazonSQS.{action}",
               "authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=0"}
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.request("POST", "/", body=json.dumps(doc), headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    if resp.status >= 300:
        raise RuntimeError(f"SQS {action}: {resp.status} {data[:200]!r}")
    return json.loads(data or b"{}")


def find_event(endpoint: str, queue_url: str, correlation_id: str, kind: str, tries: int = 30) -> dict | None:
    """The app event of `kind` with this correlation id from the outbound events queue (SQS JSON
    protocol over plain HTTP; other messages are left to reappear after their visibility timeout)."""
    body = {"QueueUrl": queue_url, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 1, "VisibilityTimeout": 60}
    for _ in range(tries):
        out = sqs_json(endpoint, "ReceiveMessage", body)
        messages = out.get("Messages") or []
        for m in messages:
            try:
                ev = json.loads(m["Body"])
            except ValueError:
                continue
            if ev.get("correlation_id") == correlation_id and ev.get("type") == kind:
                return ev
        if not messages:
            return None
    return None


def pull_records(stack: Stack, cmd: list[str], env: dict, count: int, entity: str = "invoice") -> dict:
    """Seeds `count` records of `entity` (invoices unless told) at the sandbox for the bench realm and
    syncs them with one pull job in a fresh sync-worker process; the number fetched is read back
    from the job's sync.completed."""
    left = count
    while left > 0:
        n = min(left, 2000)
        stack.sandbox_call("POST", "/_sandbox/seed", {"provider": "quickbooks", "org_id": stack.realm, "entity": entity, "count": n})
        left -= n
    p = Proc("sync-worker", cmd, env, os.path.join(LOCAL, "sync-worker.pull.log"))
    job_event = stack.sync_job("pull", entity=entity)
    # The pull's sync.completed event is read back for its count; earlier runs' events go first.
    sqs_json(env["AWS_ENDPOINT_URL"], "PurgeQueue", {"QueueUrl": env["EVENTS_QUEUE_URL"]})
    correlation = json.loads(job_event["Records"][0]["body"])["correlation_id"]
    try:
        p.start()
        rid = p.api.submit(job_event)
        t0 = now_ns()
        ans = answer(p._wait(rid, 600))
        Stack.check_sync(ans)
        elapsed = ms(now_ns() - t0) / 1000
        kib = p.peak_rss_kib()
    finally:
        p.stop()
    done = find_event(env["AWS_ENDPOINT_URL"], env["EVENTS_QUEUE_URL"], correlation, "sync.completed")
    fetched = (done or {}).get("data", {}).get("counts", {}).get("fetched")
    if not isinstance(fetched, int) or fetched < count:
        raise RuntimeError(f"the pull job did not sync {count} {entity}s: sync.completed = {done}")
    return {"mib": kib / 1024.0, "seconds": elapsed, "seeded": count, "entity": entity, "fetched": fetched}


STACK_TITLES = {"webhook-receiver": "Rust", "node-webhook": "Node.js 20 plain", "node-webhook-bundled": "Node.js 20 esbuild"}
COMPARED_ROWS = (
    ("init median (ms)", "init_ms"),
    ("CPU time to the first response, user + sys (ms)", "cpu_ms"),
    ("first event handled, from process start (ms)", "cold_ms"),
    ("first event handled, AWS calls through the timing proxy (ms)", "proxied_cold_ms"),
    ("of which the local AWS serving its calls (ms)", "aws_ms"),
    ("time not spent waiting on AWS (ms)", "own_ms"),
    ("warm median (ms)", "warm_ms"),
    ("warm p95 (ms)", "warm_p95_ms"),
    ("peak RSS (MiB)", "rss_mib"),
)


def stack_figures(result: dict, aws: dict | None) -> dict:
    """One stack's figures for the comparison, from run_spec's result and aws_wait_runs'."""
    warm, p95, _n = result["warm"]["delivery"]
    out = {"init_ms": result["init_ms"], "cpu_ms": result["cpu_ms"], "cold_ms": result["cold_ms"], "warm_ms": warm,
           "warm_p95_ms": p95, "rss_mib": result["rss_mib"]}
    if aws:
        out.update(proxied_cold_ms=aws["cold_ms"], aws_ms=aws["aws_ms"], own_ms=aws["own_ms"])
    return out


def ratio(slow: float | None, fast: float | None) -> float | None:
    if slow is None or fast is None or not fast > 0 or slow != slow:
        return None
    return slow / fast


def comparison_table(figures: dict[str, dict]) -> list[str]:
    """The webhook receiver's job on each stack present, same run, with each Node stack's figure
    over Rust's."""
    names = [n for n in WEBHOOK_STACKS if n in figures]
    nodes = [n for n in names[1:]] if names and names[0] == "webhook-receiver" else []
    head = [STACK_TITLES[n] for n in names] + [f"{STACK_TITLES[n].removeprefix('Node.js 20 ')} / Rust" for n in nodes]
    lines = ["| | " + " | ".join(head) + " |", "| --- " * (len(head) + 1) + "|"]
    for label, key in COMPARED_ROWS:
        cells = [f"{figures[n][key]:.1f}" if key in figures[n] else "n/a" for n in names]
        for n in nodes:
            r = ratio(figures[n].get(key), figures["webhook-receiver"].get(key))
            cells.append(f"{r:.1f}x" if r is not None else "n/a")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def target_table(rust: dict, bundled: dict) -> list[str]:
    """Issue 21's targets for the Rust receiver against the bundled Node handler: each figure, the
    ratio, the target and whether it is met. Printed, never asserted."""
    lines = ["| | Rust | Node.js 20 esbuild | esbuild / Rust | target | met |", "| --- | --- | --- | --- | --- | --- |"]
    for label, key, target in BUNDLED_TARGETS:
        r = ratio(bundled.get(key), rust.get(key))
        met = "n/a" if r is None else ("yes" if r >= target else "**no**")
        lines.append(f"| {label} | {rust.get(key, float('nan')):.1f} ms | {bundled.get(key, float('nan')):.1f} ms | "
                     f"{'n/a' if r is None else f'{r:.1f}x'} | at least {target:g}x | {met} |")
    return lines


def machine() -> str:
    model = "?"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return f"{model}, {os.cpu_count()} cores, {mem} RAM, Linux {platform.release()}, {platform.machine()}"


def sizes(name: str, x86_dir: str, arm_dir: str | None, zip_dir: str | None) -> tuple[str, str, str]:
    def mb(path):
        return f"{os.path.getsize(path) / 1e6:.1f} MB" if path and os.path.exists(path) else "n/a"

    x86 = mb(os.path.join(x86_dir, name))
    arm = mb(os.path.join(arm_dir, name)) if arm_dir else "n/a"
    z = "n/a"
    if zip_dir:
        zp = os.path.join(zip_dir, name, "bootstrap.zip")
        if os.path.exists(zp):
            z = mb(zp)
            if arm == "n/a":
                with zipfile.ZipFile(zp) as zf:
                    arm = f"{zf.getinfo('bootstrap').file_size / 1e6:.1f} MB"
    return x86, arm, z


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", required=True, help="x86_64 release binaries (timed here)")
    ap.add_argument("--arm64-dir", help="aarch64 release binaries (sizes)")
    ap.add_argument("--zip-dir", help="cargo lambda's target/lambda (bootstrap.zip per function)")
    ap.add_argument("--sandbox", required=True, help="provider sandbox base URL")
    ap.add_argument("--ops-bin", required=True)
    ap.add_argument("--node-dir", default=os.path.join(ROOT, "bench", "node-webhook"))
    ap.add_argument("--cold", type=int, default=int(os.environ.get("BENCH_COLD", "5")))
    ap.add_argument("--init-runs", type=int, default=int(os.environ.get("BENCH_INIT_RUNS", "21")))
    ap.add_argument("--warm", type=int, default=int(os.environ.get("BENCH_WARM", "20")))
    ap.add_argument("--sync-records", type=int, default=int(os.environ.get("BENCH_SYNC_RECORDS", os.environ.get("BENCH_SYNC_INVOICES", "10000"))),
                    help="records the sync-worker's pull job syncs (its peak RSS)")
    ap.add_argument("--sync-entity", default=os.environ.get("BENCH_SYNC_ENTITY", "bill"), choices=SYNC_ENTITIES,
                    help="the entity of that pull (QuickBooks bills of one to five lines unless told)")
    ap.add_argument("--records", type=int, default=int(os.environ.get("BENCH_RECORDS", "2000")),
                    help="contacts one pull stores for the records API to page through")
    ap.add_argument("--only", default="", help="comma-separated subset of functions (sync-pull: only the sync-worker's pull)")
    ap.add_argument("--no-node", action="store_true", help="leave the Node.js baseline out (no node on the machine)")
    ap.add_argument("--out", default=os.path.join(ROOT, ".local", "bench-functions.md"))
    args = ap.parse_args()

    global PLACEMENT
    pin = os.environ.get("BENCH_PIN", "1") != "0" and hasattr(os, "sched_getaffinity")  # Linux only
    PLACEMENT = Placement.split(os.sched_getaffinity(0)) if pin else None
    if PLACEMENT:
        PLACEMENT.pin_rest(os.getpid())
        # The local AWS and the provider sandbox, from the pid files scripts/bench's starts write.
        state = os.environ.get("TTYA_LOCAL", os.path.join(ROOT, ".local"))
        pinned = []
        for name in ("ministack", "moto", "bench-sandbox"):
            try:
                with open(os.path.join(state, f"{name}.pid")) as fh:
                    pid = int(fh.read().strip())
            except (OSError, ValueError):
                continue
            if PLACEMENT.pin_rest(pid):
                pinned.append(name)
        print(f"[bench] functions on CPU {PLACEMENT.function_cpu} alone; this harness and {', '.join(pinned) or 'nothing else'} "
              f"on CPU {','.join(map(str, sorted(PLACEMENT.rest)))} (BENCH_PIN=0: unpinned)", flush=True)

    if os.path.isdir(LOCAL):
        for f in os.listdir(LOCAL):
            if f.endswith(".log"):
                os.remove(os.path.join(LOCAL, f))
    env = dict(os.environ)
    env["PROVIDER_BASE_URL"] = args.sandbox
    env.setdefault("LOG_LEVEL", "info")
    env = lambda_environment(env)
    stack = Stack(env, args.sandbox, args.ops_bin)
    stack.create_tenant()
    print(f"[bench] tenant {stack.tenant}; cold starts {args.cold} per function, warm rounds {args.warm} per process", flush=True)

    bins = {n: [os.path.join(args.bin_dir, n)] for n in ["oauth-callback", "webhook-receiver", "token-refresher", "sync-worker", "records-api"]}
    node = ["node", os.path.join(args.node_dir, "index.js")]
    bundle_bytes = None
    if not args.no_node:
        bundle, bundle_bytes = build_node_bundle(args.node_dir, os.path.join(ROOT, ".local", "node-webhook-bundle"))
        print(f"[bench] Node baseline bundled with esbuild: {bundle} ({bundle_bytes / 1e3:.0f} kB)", flush=True)
        node_bundled = ["node", bundle]

    def simple(make, check):
        return lambda: (make(), lambda a, _p, _c: check(a), None)

    # oauth-callback's rounds also connect the bench tenant to QuickBooks (a reconnect of the same
    # realm after the first): everything after it needs that grant.
    callback_spec = Spec("oauth-callback", bins["oauth-callback"], simple(stack.connect_event, Stack.check_connect), [
        ("connect", lambda _c: stack.connect_event(), lambda a: (Stack.check_connect(a), a)[1]),
        ("callback", lambda c: stack.consent(c), Stack.check_callback),
    ])

    webhook_spec = Spec("webhook-receiver", bins["webhook-receiver"], simple(stack.webhook_event, Stack.check_webhook),
                        [("delivery", lambda _c: stack.webhook_event(), Stack.check_webhook)])
    node_spec = Spec("node-webhook", node, simple(stack.webhook_event, Stack.check_webhook),
                     [("delivery", lambda _c: stack.webhook_event(), Stack.check_webhook)])
    bundled_spec = Spec("node-webhook-bundled", node_bundled if not args.no_node else [], simple(stack.webhook_event, Stack.check_webhook),
                        [("delivery", lambda _c: stack.webhook_event(), Stack.check_webhook)])
    refresher_spec = Spec("token-refresher", bins["token-refresher"], simple(Stack.refresh_event, Stack.check_refresh),
                          [("forced run", lambda _c: Stack.refresh_event(), Stack.check_refresh)])
    sync_spec = Spec("sync-worker", bins["sync-worker"], simple(stack.sync_webhook_event, Stack.check_sync),
                     [("webhook job", lambda _c: stack.sync_webhook_event(), Stack.check_sync)])
    # Run after the records it reads are stored (below), not in the loop.
    records_spec = Spec("records-api", bins["records-api"], simple(stack.records_page_event, stack.check_records),
                        [(RECORDS_OP, lambda _c: stack.records_page_event(), stack.check_records)])

    only = set(filter(None, args.only.split(",")))
    specs = [s for s in [callback_spec, webhook_spec, node_spec, bundled_spec, refresher_spec, sync_spec]
             if not only or s.name in only or s.name == "oauth-callback"]
    if args.no_node:
        specs = [s for s in specs if not s.name.startswith("node-")]

    results, counts, aws_waits = {}, {}, {}
    moto_before = moto_round_trip_ms(env["AWS_ENDPOINT_URL"], env["TENANTS_TABLE"])
    proxy = CountingProxy(env["AWS_ENDPOINT_URL"])
    # The compared stacks' (and the null process's) starts to the first poll, in turn: the init
    # ratios are then of figures taken over the same minutes.
    compared = [s for s in specs if s.name in WEBHOOK_STACKS]
    null_exe = null_function() if compared else None
    turn_specs = compared + ([Spec("harness-floor", [null_exe], None, [])] if null_exe else [])
    if compared:
        print(f"[bench] {', '.join(s.name for s in turn_specs)}: {args.init_runs + args.cold} starts to the first poll each, in turn", flush=True)
    in_turn = init_in_turn(turn_specs, env, args.init_runs + args.cold) if compared else {}
    for spec in specs:
        print(f"[bench] {spec.name}: {args.init_runs} starts to the first poll, {args.cold} cold starts x (1 + {args.warm} warm rounds)", flush=True)
        if spec.name == "webhook-receiver" or spec.name == "sync-worker":
            if stack.invoice_id is None:
                seeded = stack.sandbox_call("POST", "/_sandbox/seed", {"provider": "quickbooks", "org_id": stack.realm, "entity": "invoice", "count": 1})
                stack.invoice_id = seeded["ids"][0]
        results[spec.name] = run_spec(spec, env, args.cold, args.warm, args.init_runs, in_turn.get(spec.name))
        counts[spec.name] = count_spec(spec, env, proxy)
        r = results[spec.name]
        print(f"[bench]   init {r['init_ms']:.1f} ms, cold {r['cold_ms']:.1f} ms (CPU {r['cpu_ms']:.1f} ms), peak RSS {r['rss_mib']:.1f} MiB, "
              f"warm {', '.join(f'{k} {m:.1f}/{p95:.1f} ms' for k, (m, p95, _n) in r['warm'].items())}", flush=True)
        if spec.name in WEBHOOK_STACKS:
            a = aws_waits[spec.name] = aws_wait_runs(spec, env, proxy, args.cold)
            print(f"[bench]   through the timing proxy: cold {a['cold_ms']:.1f} ms, AWS serving {a['aws_ms']:.1f} ms, "
                  f"not waiting on AWS {a['own_ms']:.1f} ms", flush=True)

    floor = in_turn.get("harness-floor")
    if floor:
        print(f"[bench] harness floor (a C process that only polls): init median {statistics.median(floor):.2f} ms", flush=True)

    # Issue 23: the records API reads what one pull job stored. Before issue 11's pull below, and of
    # another entity: moto serves an index Query by walking the whole table (at 10,000 more records
    # one page took past the function's 5 s timeout), and that pull's invoice count stays its own.
    records = None
    if not only or "records-api" in only:
        print(f"[bench] records-api: seeding {args.records} {RECORDS_ENTITY}s at the sandbox, one pull job stores them", flush=True)
        stored = pull_records(stack, bins["sync-worker"], env, args.records, RECORDS_ENTITY)["fetched"]
        stack.records_full_pages = stored // RECORDS_PAGE
        print(f"[bench] records-api: {RECORDS_PAGE}-record pages of {stored} stored {RECORDS_ENTITY}s; "
              f"{args.init_runs} starts to the first poll, {args.cold} cold starts x (1 + {args.warm} warm rounds)", flush=True)
        results["records-api"] = run_spec(records_spec, env, args.cold, args.warm, args.init_runs)
        counts["records-api"] = count_spec(records_spec, env, proxy)
        specs.append(records_spec)
        records = {"stored": stored, "answer_bytes": stack.records_answer_bytes}
        r = results["records-api"]
        print(f"[bench]   init {r['init_ms']:.1f} ms, cold {r['cold_ms']:.1f} ms, peak RSS {r['rss_mib']:.1f} MiB, "
              f"warm {', '.join(f'{k} {m:.1f}/{p95:.1f} ms' for k, (m, p95, _n) in r['warm'].items())}; "
              f"reads: cold {read_units_text(counts['records-api']['cold_reads'])}, "
              f"warm {read_units_text(counts['records-api']['reads:' + RECORDS_OP])}", flush=True)
    # Issues 11 and 22: the worker's own peak RSS while one pull job syncs N records (bills).
    sync_rss = None
    if (not only or "sync-worker" in only or "sync-pull" in only) and args.sync_records > 0:
        print(f"[bench] sync-worker: seeding {args.sync_records} {args.sync_entity}s at the sandbox, one pull job in a fresh worker process",
              flush=True)
        sync_rss = pull_records(stack, bins["sync-worker"], env, args.sync_records, args.sync_entity)
        print(f"[bench]   pull: {sync_rss['fetched']} {args.sync_entity}s fetched in {sync_rss['seconds']:.1f} s (sync.completed), "
              f"worker peak RSS {sync_rss['mib']:.1f} MiB", flush=True)

    proxy.close()
    moto_after = moto_round_trip_ms(env["AWS_ENDPOINT_URL"], env["TENANTS_TABLE"])

    # ------------------------------------------------------------------------------------------------
    # The table
    lines = []
    lines.append(f"Machine: {machine()}")
    try:
        with open(os.path.join(ROOT, ".local", "local-aws.engine")) as f:
            engine = f.read().strip()
    except FileNotFoundError:
        engine = "moto"
    lines.append(f"Local stack: {engine} + provider sandbox; init: median of {args.init_runs + args.cold} starts{' (the compared webhook stacks and the null process in turn)' if in_turn else ''}; "
                 f"{placement_text()}; "
                 f"{args.cold} cold starts per function, "
                 f"{args.warm} warm rounds per process; x86_64 release binaries timed; sizes for aarch64 (cargo lambda build --release --arm64).")
    lines.append(f"One DynamoDB GetItem round trip to {engine} (the floor of every AWS call here, for every stack): "
                 f"median {moto_before:.1f} ms before the run, {moto_after:.1f} ms after it. Load average at the end: "
                 f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}.")
    lines.append("")
    lines.append("| function | operation | init median (ms) | cold: first event handled (ms) | warm median / p95 (ms) | peak RSS (MiB) | AWS calls: init / cold event / warm event | binary x86_64 / arm64 | zip arm64 |")
    lines.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for spec in specs:
        r = results[spec.name]
        c = counts[spec.name]
        if spec.name.startswith("node-"):
            x86 = arm = z = "n/a (JS)"
        else:
            x86, arm, z = sizes(spec.name, args.bin_dir, args.arm64_dir, args.zip_dir)
        for i, (label, (med, p95, _n)) in enumerate(r["warm"].items()):
            first = i == 0
            warm_calls = c.get(f"warm:{label}", [])
            lines.append("| " + " | ".join([
                spec.name if first else "",
                label,
                f"{r['init_ms']:.1f}" if first else "",
                f"{r['cold_ms']:.1f}" if first else "",
                f"{med:.1f} / {p95:.1f}",
                f"{r['rss_mib']:.1f}" if first else "",
                (f"{by_service(c['init'])} / {by_service(c['cold'])} / {by_service(warm_calls)}" if first else f"- / - / {by_service(warm_calls)}"),
                f"{x86} / {arm}" if first else "",
                z if first else "",
            ]) + " |")
    figures = {n: stack_figures(results[n], aws_waits.get(n)) for n in WEBHOOK_STACKS if n in results}
    if "webhook-receiver" in figures and len(figures) > 1:
        lines.append("")
        lines.append("Rust webhook-receiver vs the Node.js 20 + AWS SDK v3 handler, plain (node_modules) and bundled with esbuild "
                     f"({bundle_bytes / 1e3:.0f} kB, minified, cjs, node20), same events, same stack, same run. CPU: user + sys "
                     "of every thread at the first response's POST. Time not spent waiting on AWS: first event handled "
                     f"minus the wall time the local AWS (through a timing proxy) was serving at least one of its calls, median of {args.cold}:")
        lines.append("")
        lines += comparison_table(figures)
    if "webhook-receiver" in figures and "node-webhook-bundled" in figures:
        lines.append("")
        lines.append("Issue 21's targets, Rust against the bundled Node handler (same run):")
        lines.append("")
        lines += target_table(figures["webhook-receiver"], figures["node-webhook-bundled"])
    if floor and "webhook-receiver" in figures:
        f_ms = statistics.median(floor)
        lines.append("")
        lines.append(f"The harness's own share of every init above: a C process that only connects to the Runtime API and polls "
                     f"measures {f_ms:.2f} ms (median of {len(floor)} starts; min {min(floor):.2f}): Popen, exec, the loader and the poll "
                     "reaching this Python Runtime API. Less that floor (medians subtracted; for reading only, the target is judged "
                     "on the figures above): " + ", ".join(
                         f"{STACK_TITLES[n]} {figures[n]['init_ms'] - f_ms:.1f} ms" for n in WEBHOOK_STACKS if n in figures)
                     + ("" if "node-webhook-bundled" not in figures else
                        f" ({(figures['node-webhook-bundled']['init_ms'] - f_ms) / max(figures['webhook-receiver']['init_ms'] - f_ms, 1e-9):.1f}x)")
                     + ".")
    if sync_rss:
        lines.append("")
        lines.append(f"sync-worker, one pull job in its own process over {sync_rss['fetched']:,} QuickBooks {sync_rss['entity']}s "
                     f"({sync_rss['seeded']:,} seeded plus the realm's own; count from its sync.completed event): {sync_rss['seconds']:.1f} s, "
                     f"peak RSS {sync_rss['mib']:.1f} MiB (target < 64 MiB).")
    if records:
        r, c = results["records-api"], counts["records-api"]
        med, p95, n = r["warm"][RECORDS_OP]
        lines.append("")
        lines.append(f"records-api, a {RECORDS_PAGE}-record page of the bench realm's {records['stored']:,} stored {RECORDS_ENTITY}s (signed app request, "
                     f"pages walked with next_cursor): cold {r['cold_ms']:.1f} ms from process start (init {r['init_ms']:.1f} ms), "
                     f"warm median {med:.1f} ms, p95 {p95:.1f} ms over {n} pages; answer {records['answer_bytes'] / 1024:.0f} KiB. "
                     f"DynamoDB per page: cold {summarise_calls(c['cold'])}, {read_units_text(c['cold_reads'])} (moto busy {c['cold_moto_ms']:.0f} ms); "
                     f"warm {summarise_calls(c['warm:' + RECORDS_OP])}, {read_units_text(c['reads:' + RECORDS_OP])} "
                     f"(moto busy {c['moto_ms:' + RECORDS_OP]:.0f} ms). Read units sized from the items moto returned (infra/ddb_capacity.py).")
    lines.append("")
    lines.append(f"AWS calls per operation (service:operation, counted by a proxy in front of {engine} in a separate run):")
    for spec in specs:
        c = counts[spec.name]
        parts = [f"init: {summarise_calls(c['init'])}", f"cold event: {summarise_calls(c['cold'])} ({engine} busy {c['cold_moto_ms']:.0f} ms in all)"]
        parts += [f"warm {k[5:]}: {summarise_calls(v)}" for k, v in c.items() if k.startswith("warm:")]
        lines.append(f"- {spec.name}: " + "; ".join(parts))
    text = "\n".join(lines)
    print()
    print(text)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text + "\n")
    with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
        json.dump({"results": results, "counts": counts, "aws_waits": aws_waits, "sync_rss": sync_rss, "records": records,
                   "node_bundle_bytes": bundle_bytes, "harness_floor_ms": floor}, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
