//! The control API under `/_sandbox`: reset, seed, faults, revoke, counters, clock, config, and the
//! webhook emitter. JSON in, JSON out; errors are `{"error": "..."}` with 400/404.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::http::json_value;
use crate::model::{Entity, Provider};
use crate::oauth::revoke_token;
use crate::state::*;
use crate::{client, webhooks};

/// How long the emitter waits for a receiver (providers allow 3-5 s; tests get some slack).
const DELIVERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_sandbox/health", get(|| async { "ok" }))
        .route("/_sandbox/reset", post(reset))
        .route("/_sandbox/seed", post(seed))
        .route("/_sandbox/faults", post(add_fault).get(list_faults).delete(clear_faults))
        .route("/_sandbox/revoke", post(revoke))
        .route("/_sandbox/counters", get(counters).delete(reset_counters))
        .route("/_sandbox/clock", get(clock).post(advance_clock))
        .route("/_sandbox/config", get(get_config).post(set_config))
        .route("/_sandbox/grants", get(grants))
        .route("/_sandbox/secrets", get(secrets))
        .route("/_sandbox/orgs", get(orgs))
        .route("/_sandbox/records", get(records))
        .route("/_sandbox/records/delete", post(delete_records))
        .route("/_sandbox/webhooks/emit", post(emit))
        .route("/_sandbox/webhooks/xero/intent-to-receive", post(xero_itr))
}

fn bad(msg: impl std::fmt::Display) -> Response {
    json_value(StatusCode::BAD_REQUEST, &json!({"error": msg.to_string()}))
}

fn not_found(msg: impl std::fmt::Display) -> Response {
    json_value(StatusCode::NOT_FOUND, &json!({"error": msg.to_string()}))
}

/// Parses the body into `T`, answering 400 with serde's message instead of axum's plain-text rejection.
fn parse<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, Response> {
    serde_json::from_value(v).map_err(bad)
}

fn default_org(p: Provider) -> &'static str {
    match p {
        Provider::Quickbooks => QBO_DEFAULT_REALM,
        Provider::Xero => XERO_TENANT_1,
        Provider::Zoho => ZOHO_ORG_US,
    }
}

async fn reset(State(st): State<AppState>) -> Response {
    st.lock().reset();
    json_value(StatusCode::OK, &json!({"reset": true}))
}

#[derive(Deserialize)]
struct SeedReq {
    provider: Provider,
    org_id: Option<String>,
    /// Name and (Zoho) data centre for an org that does not exist yet.
    name: Option<String>,
    dc: Option<String>,
    entity: Option<String>,
    records: Option<Vec<Value>>,
    count: Option<usize>,
    /// Lines on each generated invoice or bill (1 to `lines::MAX_LINES`); by default 1 to 5.
    lines: Option<usize>,
}

async fn seed(State(st): State<AppState>, Json(body): Json<Value>) -> Response {
    let req: SeedReq = match parse(body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let p = req.provider;
    let org_id = req.org_id.clone().unwrap_or_else(|| default_org(p).to_string());
    if p == Provider::Zoho && req.dc.as_deref().is_some_and(|d| !ZOHO_DCS.contains(&d)) {
        return bad("unknown Zoho data centre");
    }
    let mut w = st.lock();
    let created = w.org(p, &org_id).is_none();
    if created {
        let name = req.name.clone().unwrap_or_else(|| format!("Sandbox Org {org_id}"));
        let dc = if p == Provider::Zoho { Some(req.dc.as_deref().unwrap_or("us")) } else { None };
        w.add_org(p, &org_id, &name, dc);
    }
    let Some(entity_name) = &req.entity else {
        return json_value(StatusCode::OK, &json!({"org_id": org_id, "created_org": created, "ids": []}));
    };
    let Some(e) = Entity::parse(entity_name) else {
        return bad(format!("unknown entity {entity_name}"));
    };
    if p != Provider::Quickbooks && matches!(e, Entity::Department | Entity::TaxComponent) {
        return bad(format!("{entity_name} is a QuickBooks list only"));
    }
    if req.lines.is_some_and(|n| !(1..=crate::lines::MAX_LINES).contains(&n)) {
        return bad(format!("lines must be 1 to {}", crate::lines::MAX_LINES));
    }
    let now = w.now();
    let org = w.org_mut(p, &org_id).expect("exists");
    let mut ids = Vec::new();
    if let Some(records) = req.records {
        let id_field = match p {
            Provider::Quickbooks => "Id",
            Provider::Xero => e.xero_id_field(),
            Provider::Zoho => e.zoho_id_field(),
        };
        for r in records {
            if !r.is_object() {
                return bad("each record must be a JSON object");
            }
            let given = r.get(id_field).and_then(Value::as_str).map(|id| {
                if p == Provider::Xero && e != Entity::TaxRate {
                    id.to_ascii_lowercase()
                } else {
                    id.to_string()
                }
            });
            let id = given.unwrap_or_else(|| org.next_id());
            org.put(e, &id, r, now);
            ids.push(id);
        }
    }
    for _ in 0..req.count.unwrap_or(0) {
        ids.push(org.generate_with(e, now, req.lines));
    }
    json_value(StatusCode::OK, &json!({"org_id": org_id, "created_org": created, "ids": ids}))
}

async fn add_fault(State(st): State<AppState>, Json(body): Json<Value>) -> Response {
    let f: Fault = match parse(body) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if f.count == 0 {
        return bad("count must be at least 1");
    }
    let mut w = st.lock();
    w.faults.push(f);
    json_value(StatusCode::OK, &json!({"faults": w.faults}))
}

async fn list_faults(State(st): State<AppState>) -> Response {
    json_value(StatusCode::OK, &json!({"faults": st.lock().faults}))
}

async fn clear_faults(State(st): State<AppState>) -> Response {
    st.lock().faults.clear();
    json_value(StatusCode::OK, &json!({"faults": []}))
}

#[derive(Deserialize)]
struct RevokeReq {
    provider: Provider,
    refresh_token: Option<String>,
    grant_id: Option<String>,
}

/// Revokes one grant (by refresh token or id) or, with neither, every grant of the provider: what a
/// user disconnecting the app on the provider's side does.
async fn revoke(State(st): State<AppState>, Json(body): Json<Value>) -> Response {
    let req: RevokeReq = match parse(body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let mut w = st.lock();
    let mut revoked = Vec::new();
    if let Some(rt) = &req.refresh_token {
        match revoke_token(&mut w, req.provider, rt) {
            Some(g) => revoked.push(g),
            None => return not_found("no such token"),
        }
    } else {
        for g in w.grants.values_mut().filter(|g| g.provider == req.provider) {
            if req.grant_id.as_deref().is_none_or(|id| id == g.id) {
                g.revoked = true;
                g.connections.clear();
                revoked.push(g.id.clone());
            }
        }
        if revoked.is_empty() && req.grant_id.is_some() {
            return not_found("no such grant");
        }
    }
    json_value(StatusCode::OK, &json!({"revoked": revoked}))
}

async fn counters(State(st): State<AppState>) -> Response {
    json_value(StatusCode::OK, &serde_json::to_value(&st.lock().counters).expect("json"))
}

async fn reset_counters(State(st): State<AppState>) -> Response {
    st.lock().counters = Counters::default();
    json_value(StatusCode::OK, &json!({"reset": true}))
}

async fn clock(State(st): State<AppState>) -> Response {
    let w = st.lock();
    json_value(StatusCode::OK, &json!({"now": w.now().to_rfc3339(), "offset_seconds": w.clock_offset_seconds()}))
}

async fn advance_clock(State(st): State<AppState>, Json(body): Json<Value>) -> Response {
    let Some(s) = body.get("advance_seconds").and_then(Value::as_i64) else {
        return bad("advance_seconds (integer) is required");
    };
    let mut w = st.lock();
    w.advance_clock(s);
    json_value(StatusCode::OK, &json!({"now": w.now().to_rfc3339(), "offset_seconds": w.clock_offset_seconds()}))
}

async fn get_config(State(st): State<AppState>) -> Response {
    json_value(StatusCode::OK, &serde_json::to_value(&st.lock().settings).expect("json"))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ConfigReq {
    provider: Option<Provider>,
    access_token_ttl: Option<i64>,
    /// null is not distinguishable from absent here; use 0 < ttl, or omit.
    refresh_token_ttl: Option<i64>,
    refresh_grace: Option<i64>,
    auth_code_ttl: Option<i64>,
    rate_limit_per_minute: Option<u32>,
    rate_limit_per_day: Option<u32>,
    app_rate_limit_per_minute: Option<u32>,
    minute_window_seconds: Option<i64>,
    day_window_seconds: Option<i64>,
    /// 0 turns the concurrency limit off.
    max_concurrent: Option<u32>,
    latency_ms: Option<u64>,
    timeout_fault_seconds: Option<u64>,
    rate_limits_enabled: Option<bool>,
    quickbooks_refresh_hard_ttl: Option<i64>,
    /// "granular" or "broad" (see Settings::xero_app_scopes).
    xero_app_scopes: Option<String>,
    /// Merged into Settings::zoho_daily_limit_by_plan.
    zoho_daily_limit_by_plan: Option<std::collections::BTreeMap<String, u32>>,
    zoho_default_plan: Option<String>,
    /// Organisation id -> plan, merged into Settings::zoho_org_plans.
    zoho_org_plans: Option<std::collections::BTreeMap<String, String>>,
}

/// Changes lifetimes and limits, for one provider or (without `provider`) for all three.
async fn set_config(State(st): State<AppState>, Json(body): Json<Value>) -> Response {
    let c: ConfigReq = match parse(body) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if [c.access_token_ttl, c.refresh_token_ttl, c.refresh_grace, c.auth_code_ttl, c.quickbooks_refresh_hard_ttl]
        .iter()
        .flatten()
        .any(|v| *v < 0)
    {
        return bad("lifetimes must not be negative");
    }
    if [c.minute_window_seconds, c.day_window_seconds].iter().flatten().any(|v| *v < 1) {
        return bad("windows must be at least 1 second");
    }
    let mut w = st.lock();
    let targets: Vec<Provider> = c.provider.map(|p| vec![p]).unwrap_or_else(|| Provider::ALL.to_vec());
    for p in targets {
        let s = w.settings.for_provider_mut(p);
        if let Some(v) = c.access_token_ttl {
            s.access_token_ttl = v;
        }
        if let Some(v) = c.refresh_token_ttl {
            s.refresh_token_ttl = Some(v);
        }
        if let Some(v) = c.refresh_grace {
            s.refresh_grace = v;
        }
        if let Some(v) = c.auth_code_ttl {
            s.auth_code_ttl = v;
        }
        if let Some(v) = c.rate_limit_per_minute {
            s.rate_limit_per_minute = Some(v);
        }
        if let Some(v) = c.rate_limit_per_day {
            s.rate_limit_per_day = Some(v);
        }
        if let Some(v) = c.app_rate_limit_per_minute {
            s.app_rate_limit_per_minute = Some(v);
        }
        if let Some(v) = c.minute_window_seconds {
            s.minute_window_seconds = v;
        }
        if let Some(v) = c.day_window_seconds {
            s.day_window_seconds = v;
        }
        if let Some(v) = c.max_concurrent {
            s.max_concurrent = (v > 0).then_some(v);
        }
        if let Some(v) = c.latency_ms {
            s.latency_ms = v;
        }
    }
    if let Some(v) = c.timeout_fault_seconds {
        w.settings.timeout_fault_seconds = v;
    }
    if let Some(v) = c.rate_limits_enabled {
        w.settings.rate_limits_enabled = v;
    }
    if let Some(v) = c.xero_app_scopes {
        if v != "granular" && v != "broad" {
            return bad("xero_app_scopes must be granular or broad");
        }
        w.settings.xero_app_scopes = v;
    }
    if let Some(m) = c.zoho_daily_limit_by_plan {
        w.settings.zoho_daily_limit_by_plan.extend(m);
    }
    if let Some(m) = c.zoho_org_plans {
        if let Some((org, plan)) = m.iter().find(|(_, plan)| !w.settings.zoho_daily_limit_by_plan.contains_key(*plan)) {
            return bad(format!("unknown Zoho plan {plan} for {org}"));
        }
        w.settings.zoho_org_plans.extend(m);
    }
    if let Some(v) = c.zoho_default_plan {
        w.settings.zoho_default_plan = v;
    }
    if let Some(v) = c.quickbooks_refresh_hard_ttl {
        w.settings.quickbooks_refresh_hard_ttl = v;
    }
    json_value(StatusCode::OK, &serde_json::to_value(&w.settings).expect("json"))
}

async fn grants(State(st): State<AppState>) -> Response {
    let w = st.lock();
    let list: Vec<Value> = w
        .grants
        .values()
        .map(|g| {
            json!({
                "id": g.id, "provider": g.provider, "user": g.user, "scope": g.scope, "revoked": g.revoked,
                "orgs": w.grant_orgs(g), "dc": g.dc, "auth_event_id": g.auth_event_id,
                "refreshes": w.counters.refreshes.get(&g.id).copied().unwrap_or(0),
            })
        })
        .collect();
    json_value(StatusCode::OK, &json!({"grants": list}))
}

/// Every secret value this sandbox issued or was given since its start: authorization codes, access
/// and refresh tokens (rotated ones included), PKCE verifiers, Zoho webhook secrets and the client
/// secrets. For local checks only (infra/check-log-secrets.py greps a whole local run's logs for
/// them); a real provider has no such endpoint, and the sandbox's control API is never deployed.
async fn secrets(State(st): State<AppState>) -> Response {
    let w = st.lock();
    let mut out: Vec<Value> = Vec::new();
    let mut push = |kind: &str, value: &str| out.push(json!({"kind": kind, "value": value}));
    for c in w.codes.keys() {
        push("authorization_code", c);
    }
    for t in w.access_tokens.keys() {
        push("access_token", t);
    }
    for t in w.refresh_tokens.keys() {
        push("refresh_token", t);
    }
    for v in &w.seen_verifiers {
        push("pkce_verifier", v);
    }
    for p in Provider::ALL {
        for o in w.orgs(p) {
            for h in &o.webhooks {
                if let Some(s) = &h.secret {
                    push("webhook_secret", s);
                }
            }
        }
    }
    for c in [crate::state::QBO_CLIENT_SECRET, crate::state::XERO_CLIENT_SECRET, crate::state::ZOHO_CLIENT_SECRET] {
        push("client_secret", c);
    }
    json_value(StatusCode::OK, &json!({"secrets": out}))
}

/// GET /_sandbox/records?provider=&org_id=&entity=: every record of one org and entity as stored
/// (deleted ones flagged), so tests can check answers against the sandbox's own data.
async fn records(State(st): State<AppState>, Query(q): Query<HashMap<String, String>>) -> Response {
    let Some(p) = q.get("provider").and_then(|p| serde_json::from_value::<Provider>(json!(p)).ok()) else {
        return bad("provider is required");
    };
    let Some(e) = q.get("entity").and_then(|e| Entity::parse(e)) else {
        return bad("entity is required");
    };
    let w = st.lock();
    let Some(org) = q.get("org_id").and_then(|o| w.org(p, o)) else {
        return json_value(StatusCode::NOT_FOUND, &json!({"error": "no such org"}));
    };
    let list: Vec<Value> =
        org.records(e).map(|r| json!({"id": r.id, "deleted": r.deleted, "created": r.created.to_rfc3339(), "value": r.value})).collect();
    json_value(StatusCode::OK, &json!({"records": list}))
}

/// POST /_sandbox/records/delete {provider, org_id, entity, ids}: deletes records as a user would in
/// the provider's UI (they leave list answers; QuickBooks CDC reports them), so tests can change the
/// result set between two pages of a pass.
async fn delete_records(State(st): State<AppState>, Json(body): Json<Value>) -> Response {
    let Some(p) = body.get("provider").and_then(|p| serde_json::from_value::<Provider>(p.clone()).ok()) else {
        return bad("provider is required");
    };
    let Some(e) = body.get("entity").and_then(Value::as_str).and_then(Entity::parse) else {
        return bad("entity is required");
    };
    let Some(ids) = body.get("ids").and_then(Value::as_array) else {
        return bad("ids (array) is required");
    };
    let mut w = st.lock();
    let now = w.now();
    let Some(org) = body.get("org_id").and_then(Value::as_str).and_then(|o| w.org_mut(p, o)) else {
        return not_found("no such org");
    };
    let deleted = ids.iter().filter_map(Value::as_str).filter(|id| org.delete(e, id, now)).count();
    json_value(StatusCode::OK, &json!({"deleted": deleted}))
}

async fn orgs(State(st): State<AppState>) -> Response {
    let w = st.lock();
    let mut list = Vec::new();
    for p in Provider::ALL {
        for o in w.orgs(p) {
            let counts: serde_json::Map<String, Value> =
                Entity::ALL.iter().map(|e| (e.generic().to_string(), json!(o.records(*e).count()))).collect();
            list.push(json!({"provider": p, "org_id": o.id, "name": o.name, "dc": o.dc, "records": counts}));
        }
    }
    json_value(StatusCode::OK, &json!({"orgs": list}))
}

#[derive(Deserialize)]
struct EmitReq {
    provider: Provider,
    target_url: Option<String>,
    org_id: Option<String>,
    entity: String,
    entity_id: Option<String>,
    operation: String,
    /// QuickBooks: "legacy" (default) or "cloudevents".
    format: Option<String>,
    /// QuickBooks `merge`: the record merged into `entity_id`; it is deleted from the sandbox's data
    /// and named in the payload (`deletedId` / `data.deletedid`).
    merged_from: Option<String>,
}

struct Delivery {
    url: String,
    method: String,
    headers: Vec<(String, String)>,
    body: String,
    signature: Option<String>,
}

/// Applies the change to the sandbox's records (so the receiver's follow-up read sees it), builds the
/// provider's payload, signs it, delivers it, and reports what the receiver answered.
async fn emit(State(st): State<AppState>, Json(body): Json<Value>) -> Response {
    let req: EmitReq = match parse(body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let p = req.provider;
    let Some(e) = Entity::parse(&req.entity) else { return bad(format!("unknown entity {}", req.entity)) };
    let Some(op) = webhooks::parse_operation(&req.operation) else { return bad(format!("unknown operation {}", req.operation)) };
    if p == Provider::Xero && webhooks::xero_category(e).is_none() {
        return bad("Xero sends webhooks for contacts and invoices (bills included) only (no payments or accounts)");
    }
    if p == Provider::Xero && !matches!(op, "create" | "update") {
        return bad("Xero webhook events are CREATE or UPDATE");
    }
    let org_id = req.org_id.clone().unwrap_or_else(|| default_org(p).to_string());
    let deliveries: Vec<Delivery> = {
        let mut w = st.lock();
        let now = w.now();
        w.counters.webhooks_emitted += 1;
        let Some(org) = w.org_mut(p, &org_id) else { return not_found(format!("no {} org {org_id}", p.as_str())) };
        // Make the change real first: the receiver re-reads the entity through the API.
        let id = match (&req.entity_id, op) {
            (None, "create") => org.generate(e, now),
            (None, _) => return bad("entity_id is required for this operation"),
            (Some(id), "delete") => {
                if !org.delete(e, id, now) {
                    return not_found(format!("no {} {id}", e.generic()));
                }
                id.clone()
            }
            (Some(id), "create") => {
                if org.get(e, id).is_none() {
                    return not_found(format!("no {} {id}", e.generic()));
                }
                id.clone()
            }
            (Some(id), _) => {
                if !org.touch(e, id, now) {
                    return not_found(format!("no {} {id}", e.generic()));
                }
                id.clone()
            }
        };
        let merged_from = match (&req.merged_from, op) {
            (Some(m), "merge") if p == Provider::Quickbooks => {
                if *m == id || !org.delete(e, m, now) {
                    return not_found(format!("no {} {m} to merge into {id}", e.generic()));
                }
                Some(m.clone())
            }
            (Some(_), _) => return bad("merged_from goes with a QuickBooks merge"),
            (None, _) => None,
        };
        match p {
            Provider::Quickbooks | Provider::Xero => {
                let Some(url) = req.target_url.clone() else { return bad("target_url is required") };
                let payload = if p == Provider::Quickbooks {
                    match req.format.as_deref().unwrap_or("legacy") {
                        "legacy" => webhooks::qbo_legacy(&org_id, e, &id, op, now, merged_from.as_deref()),
                        "cloudevents" => webhooks::qbo_cloudevents(&org_id, e, &id, op, now, merged_from.as_deref()),
                        other => return bad(format!("unknown format {other}")),
                    }
                } else {
                    let seq = w.counters.webhooks_emitted;
                    webhooks::xero_event(st.base_url(), &org_id, e, &id, op, now, seq).expect("category checked")
                };
                let body = payload.to_string();
                let key = if p == Provider::Quickbooks { QBO_WEBHOOK_VERIFIER } else { XERO_WEBHOOK_KEY };
                let sig = webhooks::base64_hmac(key, body.as_bytes());
                vec![Delivery {
                    url,
                    method: "POST".into(),
                    headers: vec![(webhooks::signature_header(p).to_string(), sig.clone())],
                    body,
                    signature: Some(sig),
                }]
            }
            Provider::Zoho => {
                let record = org.get(e, &id).map(|r| r.value.clone()).unwrap_or_else(|| json!({e.zoho_id_field(): id}));
                let body = webhooks::zoho_body(e, &record).to_string();
                // Zoho Books fires a webhook only as the action of a workflow rule on the module and
                // event: a registration alone delivers nothing.
                let firing: Vec<String> = org
                    .workflows
                    .iter()
                    // A rule on contacts fires for vendors too: in Zoho they are contacts.
                    .filter(|wf| {
                        wf.is_active
                            && Entity::parse(&wf.entity).map(|x| x.home(p)) == Some(e.home(p))
                            && crate::zoho::workflow_fires(&wf.event, op)
                    })
                    .flat_map(|wf| wf.webhook_ids.iter().cloned())
                    .collect();
                let hooks: Vec<_> = org.webhooks.iter().filter(|h| firing.contains(&h.webhook_id)).cloned().collect();
                if hooks.is_empty() {
                    // No rule fires: deliver unsigned to target_url if the test gave one.
                    let Some(url) = req.target_url.clone() else {
                        return not_found(format!("no Zoho workflow rule fires a webhook for {} {op} in org {org_id}", e.zoho_plural()));
                    };
                    vec![Delivery { url, method: "POST".into(), headers: Vec::new(), body, signature: None }]
                } else {
                    hooks
                        .into_iter()
                        .map(|h| {
                            let mut url = url::Url::parse(&h.url).expect("validated at registration");
                            for (k, v) in &h.query_parameters {
                                url.query_pairs_mut().append_pair(k, v);
                            }
                            let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
                            let sig = h.secret.as_ref().map(|s| webhooks::zoho_signature(s, &query, body.as_bytes()));
                            let mut headers = h.headers.clone();
                            if let Some(s) = &sig {
                                headers.push((webhooks::signature_header(p).to_string(), s.clone()));
                            }
                            Delivery { url: url.to_string(), method: h.method.clone(), headers, body: body.clone(), signature: sig }
                        })
                        .collect()
                }
            }
        }
    };
    let mut results = Vec::new();
    for d in deliveries {
        let mut headers = vec![("Content-Type".to_string(), "application/json".to_string())];
        headers.extend(d.headers.iter().cloned());
        let (status, text, error) = match client::request(&d.method, &d.url, &headers, d.body.as_bytes(), DELIVERY_TIMEOUT).await {
            Ok(r) => (Some(r.status), String::from_utf8_lossy(&r.body).into_owned(), None),
            Err(err) => (None, String::new(), Some(err.to_string())),
        };
        results.push(json!({"url": d.url, "status": status, "body": text, "signature": d.signature, "payload": d.body, "error": error}));
    }
    let mut out = results[0].clone();
    out["deliveries"] = Value::Array(results);
    json_value(StatusCode::OK, &out)
}

#[derive(Deserialize)]
struct ItrReq {
    target_url: String,
}

/// Xero's intent-to-receive: correctly and incorrectly signed empty batches; the receiver must answer
/// 200 to the good ones and 401 to the bad ones, with an empty body, within 5 seconds.
async fn xero_itr(State(_st): State<AppState>, Json(body): Json<Value>) -> Response {
    let req: ItrReq = match parse(body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let mut results = Vec::new();
    let mut passed = true;
    for correct in [true, false, true, false] {
        let body = webhooks::xero_itr_body();
        let sig = if correct {
            webhooks::base64_hmac(XERO_WEBHOOK_KEY, body.as_bytes())
        } else {
            webhooks::base64_hmac(&format!("{XERO_WEBHOOK_KEY}-wrong-{}", random_alnum(6)), body.as_bytes())
        };
        let headers = vec![("Content-Type".to_string(), "application/json".to_string()), ("x-xero-signature".to_string(), sig)];
        // Xero gives the receiver 5 seconds per request.
        let sent = client::request("POST", &req.target_url, &headers, body.as_bytes(), std::time::Duration::from_secs(5)).await;
        let expected = if correct { 200 } else { 401 };
        let (status, empty, error) = match sent {
            Ok(r) => (Some(r.status), r.body.is_empty(), None),
            Err(e) => (None, false, Some(e.to_string())),
        };
        let ok = status == Some(expected) && empty;
        passed &= ok;
        results.push(
            json!({"signed_correctly": correct, "expected": expected, "status": status, "empty_body": empty, "ok": ok, "error": error}),
        );
    }
    (StatusCode::OK, Json(json!({"passed": passed, "results": results}))).into_response()
}
