// Benchmark baseline only, never deployed: the webhook receiver's job (QuickBooks and Xero deliveries)
// on Node.js 20 with the AWS SDK v3, the stack of the design this project replaces. `scripts/bench
// functions` runs it beside the Rust webhook-receiver against the same local stack and the same events.
//
// It does what functions/webhook-receiver does on the delivery path, with the same AWS calls, so the
// comparison is of the stacks and not of the amount of work:
//   init: clients built, the webhook keys secret read once (as Receiver::warm does);
//   per delivery: HMAC-SHA256 over the raw body bytes, constant-time compare (current, then previous
//   key); parse; org -> connections (GSI `org`), each carrying its tenant's routing copy (the tenant
//   is read only for a connection without one), cached per container for 30 s, concurrently with the
//   nonce claim (conditional PutItem, pending); SendMessageBatch (one job per changed entity, each
//   carrying the claim for the worker to confirm, as shared/src/webhooks does since the confirm left
//   the delivery path). Cold: 2 sequential round trips, warm: 2, as the Rust receiver.
//
// `scripts/bench functions` runs this file as it is (node_modules beside it) and bundled with esbuild
// into one minified file (the way Node Lambda functions are deployed); both are started by `node`.
//
// The runtime loop at the bottom is a minimal loop over the Lambda Runtime API (next -> handler ->
// response), not the AWS Lambda Runtime Interface Client: the managed nodejs20.x runtime's own
// bootstrap is not reproducible here, so this loop is as cheap as a Node runtime loop can be, which
// favours Node in the comparison.

"use strict";

const http = require("node:http");
const crypto = require("node:crypto");
const { DynamoDBClient, PutItemCommand, QueryCommand, GetItemCommand } = require("@aws-sdk/client-dynamodb");
const { SQSClient, SendMessageBatchCommand } = require("@aws-sdk/client-sqs");
const { SecretsManagerClient, GetSecretValueCommand } = require("@aws-sdk/client-secrets-manager");

const env = process.env;
const ddb = new DynamoDBClient({});
// Requests go to the configured endpoint (as the Rust SDK does), not to the queue URL's host, so
// the benchmark's counting proxy sees them; on AWS both are the regional SQS endpoint.
const sqs = new SQSClient({ useQueueUrlAsEndpoint: false });
const secrets = new SecretsManagerClient({});

const CACHE_MS = 30_000;
const PENDING_S = 20;
const QUEUES = { high: env.SYNC_QUEUE_HIGH_URL, normal: env.SYNC_QUEUE_NORMAL_URL, low: env.SYNC_QUEUE_LOW_URL };
const orgCache = new Map();
const tenantCache = new Map();
let keys = null;

async function loadKeys() {
  const out = await secrets.send(new GetSecretValueCommand({ SecretId: env.WEBHOOK_KEYS_SECRET_ID }));
  keys = JSON.parse(out.SecretString);
}

function verify(provider, body, header) {
  if (!header) return false;
  const k = keys[provider] || {};
  const presented = Buffer.from(header, "base64");
  for (const key of [k.current, k.previous]) {
    if (!key) continue;
    const mac = crypto.createHmac("sha256", key).update(body).digest();
    if (mac.length === presented.length && crypto.timingSafeEqual(mac, presented)) return true;
  }
  return false;
}

const QBO_ENTITY = { invoice: "invoice", customer: "contact", account: "account", payment: "payment" };
const XERO_ENTITY = { INVOICE: "invoice", CONTACT: "contact" };
const CHANGE = { create: "created", update: "updated", delete: "deleted", merge: "merged", void: "voided" };

function lp(h, parts) {
  for (const p of parts) {
    const b = Buffer.from(p, "utf8");
    const n = Buffer.alloc(4);
    n.writeUInt32BE(b.length);
    h.update(n);
    h.update(b);
  }
}

// Changes as (org, entity, id, change, version) and the delivery's identity (sorted event parts, hashed).
function parse(provider, body) {
  const doc = JSON.parse(body.toString("utf8"));
  const changes = [];
  const parts = [];
  if (provider === "quickbooks") {
    for (const n of doc.eventNotifications || []) {
      for (const e of (n.dataChangeEvent && n.dataChangeEvent.entities) || []) {
        const entity = QBO_ENTITY[String(e.name).toLowerCase()];
        parts.push([n.realmId, e.name, String(e.id), e.operation, e.lastUpdated || ""]);
        if (!entity) continue;
        changes.push({ org: n.realmId, entity, id: String(e.id), change: CHANGE[String(e.operation).toLowerCase()] || "unknown", version: e.lastUpdated || "" });
      }
    }
  } else {
    for (const e of doc.events || []) {
      const entity = XERO_ENTITY[e.eventCategory];
      parts.push([e.tenantId, e.eventCategory, e.resourceId, e.eventType, e.eventDateUtc || ""]);
      if (!entity) continue;
      changes.push({ org: e.tenantId, entity, id: e.resourceId, change: CHANGE[String(e.eventType).toLowerCase()] || "unknown", version: e.eventDateUtc || "" });
    }
  }
  if (parts.length === 0) return { changes, dedupe: null };
  parts.sort();
  const h = crypto.createHash("sha256");
  for (const p of parts) lp(h, p);
  return { changes, dedupe: `${provider}:${h.digest("hex")}` };
}

async function connectionsFor(provider, org) {
  const hit = orgCache.get(`${provider}#${org}`);
  if (hit && Date.now() - hit.at < CACHE_MS) return hit.conns;
  const out = await ddb.send(new QueryCommand({
    TableName: env.GRANTS_TABLE,
    IndexName: "org",
    KeyConditionExpression: "org_key = :o",
    ExpressionAttributeValues: { ":o": { S: `${provider}#${org}` } },
  }));
  const conns = (out.Items || []).map((i) => ({ tenant: i.tenant_id.S, status: i.status.S }));
  // The routing copies the index carries spare the tenant read (as the Rust receiver does).
  for (const i of out.Items || []) {
    if (!i.routing) continue;
    try {
      const r = JSON.parse(i.routing.S);
      tenantCache.set(r.tenant_id, { at: Date.now(), doc: { tenant_id: r.tenant_id, config: r } });
    } catch {
      // A copy that does not read is treated as absent: the tenant is read.
    }
  }
  if (conns.length) orgCache.set(`${provider}#${org}`, { at: Date.now(), conns });
  return conns;
}

async function tenant(id) {
  const hit = tenantCache.get(id);
  if (hit && Date.now() - hit.at < CACHE_MS) return hit.doc;
  const out = await ddb.send(new GetItemCommand({ TableName: env.TENANTS_TABLE, Key: { pk: { S: `TENANT#${id}` }, sk: { S: "TENANT" } } }));
  const doc = out.Item ? JSON.parse(out.Item.doc.S) : null;
  if (doc) tenantCache.set(id, { at: Date.now(), doc });
  return doc;
}

async function buildJobs(provider, changes, correlationId) {
  const orgs = [...new Set(changes.map((c) => c.org))];
  const lookups = await Promise.all(orgs.map(async (o) => [o, await connectionsFor(provider, o)]));
  const jobs = [];
  const now = new Date().toISOString();
  for (const [org, conns] of lookups) {
    for (const c of conns.filter((c) => c.status === "active")) {
      const t = await tenant(c.tenant);
      if (!t || !t.config.enabled_providers.includes(provider)) continue;
      for (const ch of changes.filter((x) => x.org === org && t.config.enabled_entities.includes(x.entity))) {
        const h = crypto.createHash("sha256");
        lp(h, [provider, org, ch.entity, ch.id, ch.change, ch.version]);
        jobs.push({
          version: 1, job_id: crypto.randomUUID(), tenant_id: t.tenant_id, provider, org_id: org, operation: "webhook",
          entity: ch.entity, entity_id: ch.id, change: ch.change, priority: t.config.queue_priority,
          idempotency_key: `wh1:${h.digest("hex")}`, correlation_id: correlationId, requested_at: now, source: "webhook",
        });
      }
    }
  }
  return jobs;
}

const nonceKey = (provider, dedupe) => ({ pk: { S: `WEBHOOK#${provider}#${dedupe}` }, sk: { S: "NONCE" } });

async function claim(provider, dedupe, claimId) {
  const now = Math.floor(Date.now() / 1000);
  try {
    await ddb.send(new PutItemCommand({
      TableName: env.EPHEMERAL_TABLE,
      Item: {
        ...nonceKey(provider, dedupe), kind: { S: "webhook_nonce" }, provider: { S: provider }, claim_id: { S: claimId },
        status: { S: "pending" }, received_at: { N: String(now) }, expires_at: { N: String(now + PENDING_S) },
      },
      ConditionExpression: "attribute_not_exists(pk) OR expires_at < :now",
      ExpressionAttributeValues: { ":now": { N: String(now) } },
    }));
    return true;
  } catch (e) {
    if (e.name === "ConditionalCheckFailedException") return false;
    throw e;
  }
}

async function send(jobs, nonce) {
  const byQueue = new Map();
  for (const j of jobs) {
    const url = QUEUES[j.priority] || QUEUES.normal;
    if (!byQueue.has(url)) byQueue.set(url, []);
    byQueue.get(url).push(j);
  }
  const calls = [];
  for (const [url, list] of byQueue) {
    for (let i = 0; i < list.length; i += 10) {
      const entries = list.slice(i, i + 10).map((j, n) => ({ Id: String(n), MessageBody: JSON.stringify({ ...j, webhook_nonce: nonce }) }));
      calls.push(sqs.send(new SendMessageBatchCommand({ QueueUrl: url, Entries: entries })).then((out) => {
        if (out.Failed && out.Failed.length) throw new Error(`${out.Failed.length} jobs not enqueued`);
      }));
    }
  }
  await Promise.all(calls);
}

function reply(status, json) {
  return { statusCode: status, headers: { "content-type": "application/json" }, body: json === undefined ? "" : JSON.stringify(json) };
}

async function handler(event) {
  const method = (event.requestContext && event.requestContext.http && event.requestContext.http.method) || "POST";
  if (method !== "POST") return reply(405, { error: "method" });
  const provider = (event.pathParameters && event.pathParameters.provider) || String(event.rawPath || "").split("/").pop();
  if (provider !== "quickbooks" && provider !== "xero") return reply(404, { error: "not found" });
  const body = Buffer.from(event.body || "", event.isBase64Encoded ? "base64" : "utf8");
  if (body.length > Number(env.WEBHOOK_MAX_BODY_BYTES || 262144)) return reply(413, { error: "too large" });
  const headers = event.headers || {};
  const sig = headers[provider === "quickbooks" ? "intuit-signature" : "x-xero-signature"];
  if (!verify(provider, body, sig)) return provider === "xero" ? { statusCode: 401, body: "" } : reply(401, { error: "signature" });
  let parsed;
  try {
    parsed = parse(provider, body);
  } catch {
    return reply(400, { error: "malformed" });
  }
  if (!parsed.dedupe) return provider === "xero" ? { statusCode: 200, body: "" } : reply(200, { status: "no_events", jobs: 0 });
  const claimId = crypto.randomUUID();
  const correlationId = headers["x-correlation-id"] || crypto.randomUUID();
  const [jobs, claimed] = await Promise.all([buildJobs(provider, parsed.changes, correlationId), claim(provider, parsed.dedupe, claimId)]);
  if (!claimed) return reply(200, { status: "duplicate", jobs: 0 });
  if (jobs.length === 0) return reply(200, { status: "ignored", jobs: 0 });
  await send(jobs, { key: parsed.dedupe, claim_id: claimId });
  console.log(JSON.stringify({ level: "info", message: "webhook accepted", provider, jobs: jobs.length, correlation_id: correlationId }));
  return provider === "xero" ? { statusCode: 200, body: "" } : reply(200, { status: "accepted", jobs: jobs.length });
}

// ---- minimal Runtime API loop (not the AWS RIC) ----
const [apiHost, apiPort] = env.AWS_LAMBDA_RUNTIME_API.split(":");
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function runtimeCall(method, path, payload) {
  return new Promise((resolve, reject) => {
    const data = payload === undefined ? null : Buffer.from(JSON.stringify(payload));
    const req = http.request({ host: apiHost, port: Number(apiPort), method, path: `/2018-06-01/runtime${path}`, agent,
      headers: data ? { "content-type": "application/json", "content-length": data.length } : {} }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
    });
    req.on("error", reject);
    if (data) req.write(data);
    req.end();
  });
}

async function main() {
  try {
    await loadKeys();
  } catch (e) {
    console.error(JSON.stringify({ level: "warn", message: "webhook keys not prefetched", error: e.name }));
  }
  for (;;) {
    const next = await runtimeCall("GET", "/invocation/next");
    const id = next.headers["lambda-runtime-aws-request-id"];
    try {
      if (!keys) await loadKeys();
      const out = await handler(JSON.parse(next.body));
      await runtimeCall("POST", `/invocation/${id}/response`, out);
    } catch (e) {
      await runtimeCall("POST", `/invocation/${id}/error`, { errorType: e.name || "Error", errorMessage: String(e.message || e) });
    }
  }
}

main();
