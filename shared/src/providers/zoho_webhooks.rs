//! Zoho Books webhooks, registered per organisation through its API.
//!
//! QuickBooks and Xero deliver to one URL configured for the whole app; Zoho Books has no app-level
//! subscription, so the connect flow registers a webhook in each organisation it connects
//! (`POST {api_domain}/books/v3/settings/webhooks?organization_id=..`, scope ZohoBooks.settings.CREATE)
//! and disconnect removes it (`DELETE .../settings/webhooks/{webhook_id}`).
//!
//! A Books webhook on its own delivers nothing: Zoho Books sends webhooks only as the action of a
//! workflow rule (Books help, "Webhooks": configure the URL and associate it with workflow rules).
//! So each registration is followed by a workflow rule on the same module and event whose one
//! action is that webhook (`POST .../settings/workflows`), and removal deletes the rule before the
//! webhook. The stored id of one registration is `"{module}/{webhook_id}:{workflow_id}"`; entries
//! stored before the module was named (`"{webhook_id}:{workflow_id}"`, or a bare webhook id) are
//! the connect callback's modules ([`ENTITIES`]). The workflow API
//! is not in the Books API reference: its path, field names and values (`entity`, `event` =
//! `on_create|on_edit|on_create_or_edit|on_delete`, `actions[{action_type: "webhook", action_id}]`)
//! follow the Books UI and are unconfirmed.
//!
//! Every call goes through the resilience guard under the org's limit (shared with the sync worker)
//! and leaves one provider-call audit record per attempt (see [`Guarded`]).
//!
//! Each organisation gets its own random secret. Zoho documents a `secret` field for signature
//! verification but not the signature scheme, so the secret also travels in a custom header we set
//! (`x-ttya-webhook-secret`), which the receiver compares in constant time. Zoho requires the
//! `secret` to be 12-50 alphanumeric characters; we use 40 (about 238 bits).

use chrono::Utc;
use rand::Rng;
use serde_json::{json, Value};
use url::Url;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use crate::audit::{call_retention_days, status_of, AuditLog, ProviderCallRecord};
use crate::error::{Error, Result};
use crate::http_client::HttpClient;
use crate::providers::endpoints::Endpoints;
use crate::providers::errors::{success_json, zoho_error, ApiResponse};
use crate::providers::model::Entity;
use crate::providers::Provider;
use crate::resilience::ProviderGuard;
use crate::secret::SecretString;
use crate::tenancy::Plan;

/// The header our per-organisation secret travels in.
pub const SECRET_HEADER: &str = "x-ttya-webhook-secret";
pub const SECRET_LEN: usize = 40;
/// The modules the connect callback registers (Zoho module names). No more fit its 20 s budget:
/// each module is 6 calls under the org's limit of one call per 0.6 s. The modules of the other
/// entities a tenant enables are registered by the sync worker ([`modules_for`]).
pub const ENTITIES: [&str; 4] = ["invoice", "contact", "customerpayment", "chartofaccount"];

/// The Zoho Books workflow modules whose changes land in `entity`'s records. Module names follow
/// the Books UI's workflow rule modules and the sandbox (`infra/sandbox/src/zoho.rs`
/// `WORKFLOW_ENTITIES`); the API's spelling is unconfirmed (the Books API reference does not
/// document workflow rules). Empty where there is no module to watch, so the scheduled incremental
/// pull is what keeps the entity current:
/// - credit notes: `creditnote` covers the customers' credit notes; whether vendor credits have a
///   workflow module of their own, and its name, is unconfirmed, so vendor credits come from the pull;
/// - bank transactions: `expense` covers expenses; Zoho's help lists "Bank Transactions" among the
///   workflow rule modules, but its API name is unconfirmed (and the sandbox has none), so deposits
///   and transfers come from the pull;
/// - tax rates, reporting tags and the organisation are settings: no workflow module.
pub fn modules_for(entity: Entity) -> &'static [&'static str] {
    match entity {
        Entity::Invoice => &["invoice"],
        Entity::Contact => &["contact"],
        Entity::Payment => &["customerpayment"],
        Entity::Account => &["chartofaccount"],
        Entity::Bill => &["bill"],
        Entity::CreditNote => &["creditnote"],
        Entity::BillPayment => &["vendorpayment"],
        Entity::PurchaseOrder => &["purchaseorder"],
        Entity::Journal => &["journal"],
        Entity::Item => &["item"],
        Entity::BankTransaction => &["expense"],
        Entity::TaxRate | Entity::TrackingCategory | Entity::Company => &[],
    }
}
/// One webhook per entity *and event*: the payload template then names the event type itself. Zoho's
/// default payload is only the record, so a delete whose snapshot equals the preceding update would
/// be byte-identical to it, share its dedupe key and be dropped as a duplicate.
pub const EVENTS: [&str; 3] = ["created", "updated", "deleted"];

/// A workflow rule's trigger for one of [`EVENTS`] (unconfirmed values, see the module docs).
pub fn workflow_event(event: &str) -> &'static str {
    match event {
        "created" => "on_create",
        "deleted" => "on_delete",
        _ => "on_edit",
    }
}

/// One stored registration: (webhook id, workflow rule id if the registration has one; entries
/// stored before workflow rules were created have none). The module prefix is not part of either.
pub fn registration_parts(entry: &str) -> (&str, Option<&str>) {
    let entry = entry.split_once('/').map_or(entry, |(_, rest)| rest);
    match entry.split_once(':') {
        Some((hook, wf)) if !wf.is_empty() => (hook, Some(wf)),
        Some((hook, _)) => (hook, None),
        None => (entry, None),
    }
}

/// The module one stored registration belongs to; entries without one were stored by the connect
/// callback before modules were named, and are one of its [`ENTITIES`].
pub fn registration_module(entry: &str) -> Option<&str> {
    entry.split_once('/').map(|(module, _)| module).filter(|m| !m.is_empty())
}

/// Whether the stored registrations (`Connection::webhook_id`) cover `module`.
pub fn is_registered(stored: Option<&str>, module: &str) -> bool {
    split_ids(stored).iter().any(|entry| match registration_module(entry) {
        Some(m) => m == module,
        None => ENTITIES.contains(&module),
    })
}

fn valid_zoho_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The record id field of a Zoho module (placeholder source in the payload template).
fn id_field(entity: &str) -> &'static str {
    match entity {
        "invoice" => "invoice_id",
        "contact" => "contact_id",
        "customerpayment" => "payment_id",
        "chartofaccount" => "account_id",
        "bill" => "bill_id",
        "creditnote" => "creditnote_id",
        // Zoho's vendor payments carry `payment_id`, as customer payments do.
        "vendorpayment" => "payment_id",
        "purchaseorder" => "purchaseorder_id",
        "journal" => "journal_id",
        "item" => "item_id",
        "expense" => "expense_id",
        _ => "id",
    }
}

/// A fresh per-organisation secret in the alphabet Zoho accepts.
pub fn new_secret() -> SecretString {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rngs::OsRng;
    SecretString::new((0..SECRET_LEN).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect::<String>())
}

/// `{public_base_url}/webhooks/zoho?organization_id=<org>`: the receiver reads the org from the query
/// string before it parses any body.
pub fn callback_url(public_base_url: &Url, org_id: &str) -> Url {
    let mut u = public_base_url.clone();
    let path = format!("{}/webhooks/zoho", u.path().trim_end_matches('/'));
    u.set_path(&path);
    u.query_pairs_mut().clear().append_pair("organization_id", org_id);
    u
}

/// What we register in one organisation.
#[derive(Debug, Clone)]
pub struct WebhookSpec<'a> {
    pub org_id: &'a str,
    pub url: &'a Url,
    pub entity: &'a str,
    /// One of [`EVENTS`].
    pub event: &'a str,
    pub secret: &'a SecretString,
}

impl WebhookSpec<'_> {
    /// The payload we ask Zoho to send (`raw_data` template): the event type is fixed per webhook,
    /// and the event id is built from what identifies one change (org, entity, record, event,
    /// modification time), so distinct events never share a dedupe key while Zoho's retries of one
    /// event do. The `${module.field}` placeholder syntax is unconfirmed for the API (it is what the
    /// Books UI offers); the receiver also accepts Zoho's default payload.
    pub fn payload_template(&self) -> String {
        let id = format!("${{{}.{}}}", self.entity, id_field(self.entity));
        let modified = format!("${{{}.last_modified_time}}", self.entity);
        json!({
            "organization_id": self.org_id,
            "entity": self.entity,
            "event_type": self.event,
            "entity_id": id,
            "last_modified_time": modified,
            "event_id": format!("{}:{}:{}:{}:{}", self.org_id, self.entity, id, self.event, modified),
        })
        .to_string()
    }

    /// The workflow rule that makes this webhook fire: same module, the event as a rule trigger.
    pub fn workflow_body(&self, webhook_id: &str) -> Value {
        json!({
            "workflow_name": format!("ttya-{}-{}", self.entity, self.event),
            "description": "Talk to Your Accounts: sends the change notification webhook",
            "entity": self.entity,
            "event": workflow_event(self.event),
            "is_active": true,
            "actions": [{ "action_type": "webhook", "action_id": webhook_id }],
        })
    }

    /// The create body. The name is unique per entity and event so an org's webhook list shows what
    /// is ours.
    pub fn body(&self) -> Value {
        json!({
            "webhook_name": format!("ttya-{}-{}", self.entity, self.event),
            "description": "Talk to Your Accounts: change notifications (the app re-reads the record)",
            "entity": self.entity,
            "url": self.url.as_str(),
            "method": "POST",
            "body_type": "application/json",
            "raw_data": self.payload_template(),
            "headers": [{ "param_name": SECRET_HEADER, "param_value": self.secret.expose() }],
            "secret": self.secret.expose(),
            "events": [self.event],
        })
    }
}

/// Who a registration call is made for: every call goes through the resilience guard under the
/// org's shared limit (registrations and deletions of one org count against the same per-org limit
/// as the sync worker's calls) and leaves one audit record per attempt.
#[derive(Debug, Clone, Copy)]
pub struct Guarded<'a> {
    pub guard: &'a ProviderGuard,
    pub audit: &'a AuditLog,
    pub tenant_id: &'a str,
    pub grant_id: &'a str,
    pub plan: Plan,
    /// `system:<function>` for the audit record.
    pub actor: &'static str,
    /// Whether calls wait for the org's rate limit. Only the undo of a failed connect and a
    /// disconnect do not: the undo removes up to 12 registrations (24 calls) within a few seconds
    /// (`connect::UNDO_BUDGET`), a disconnect the callback's and the sync worker's (up to 33, 66
    /// calls) within a request's time, which the org's evenly spaced limit (100 a minute: one call
    /// per 0.6 s) cannot hold, and leaving them at Zoho is worse than a short burst. Their calls
    /// are still audited; an undo's failure is logged and counted (`ConnectUndoIncomplete`), a
    /// disconnect's fails the disconnect, which the app retries.
    pub limited: bool,
}

/// A client for one grant's API domain.
#[derive(Debug, Clone)]
pub struct ZohoWebhooks<'a> {
    http: &'a HttpClient,
    /// `{api_domain}/books/v3/`, checked against the known Zoho data centres.
    api_base: Url,
    guarded: Guarded<'a>,
}

impl<'a> ZohoWebhooks<'a> {
    /// `api_domain` comes from the token response; it is checked against Zoho's data centres (or the
    /// sandbox's) before any token is sent to it.
    pub fn new(http: &'a HttpClient, endpoints: &Endpoints, api_domain: &str, guarded: Guarded<'a>) -> Result<Self> {
        let domain = endpoints.zoho_check_api_domain(api_domain)?;
        Ok(ZohoWebhooks { http, api_base: Endpoints::zoho_api_base(&domain)?, guarded })
    }

    fn url(&self, path: &str, org_id: &str) -> Result<Url> {
        let mut u = self.api_base.join(path).map_err(|e| Error::Internal(format!("zoho webhooks url: {e}")))?;
        u.query_pairs_mut().append_pair("organization_id", org_id);
        Ok(u)
    }

    /// One call, once: a registration is a write Zoho cannot deduplicate, so a timeout or 5xx is
    /// not retried in place (`call_once`); a 429 waits for room in the org's limit and is tried
    /// again. The guard keeps every wait within the caller's `within_deadline`.
    async fn send(
        &self,
        op: &'static str,
        method: reqwest::Method,
        path: &str,
        org_id: &str,
        body: Option<&Value>,
        token: &SecretString,
    ) -> Result<Value> {
        let url = self.url(path, org_id)?;
        let audit_path = format!("/books/v3/{path}");
        let creates = method == reqwest::Method::POST;
        let g = self.guarded;
        let attempts = AtomicU32::new(0);
        let (attempts, url, method, audit_path) = (&attempts, &url, &method, &audit_path);
        let call = || async move {
            let mut req = self.http.reqwest().request(method.clone(), url.clone());
            if let Some(b) = body {
                req = req.json(b);
            }
            let attempt = attempts.fetch_add(1, Ordering::SeqCst) + 1;
            let started = Instant::now();
            let r = self.send_once(req, token).await;
            let latency_ms = started.elapsed().as_millis() as u64;
            let record = ProviderCallRecord {
                tenant_id: g.tenant_id,
                provider: Provider::Zoho,
                grant_id: g.grant_id,
                org_id,
                actor: g.actor,
                op,
                method: method.as_str(),
                path: audit_path,
                status: status_of(&r, creates),
                latency_ms,
                attempt,
                error: r.as_ref().err(),
                retention_days: call_retention_days(g.plan),
            };
            g.audit.provider_call(&record).await;
            r
        };
        if g.limited {
            Box::pin(g.guard.call_once(g.tenant_id, Provider::Zoho, org_id, op, call)).await
        } else {
            call().await
        }
    }

    async fn send_once(&self, req: reqwest::RequestBuilder, token: &SecretString) -> Result<Value> {
        let resp = req
            .header("authorization", format!("Zoho-oauthtoken {}", token.expose()))
            .send()
            .await
            .map_err(|e| self.http.transport_error(Provider::Zoho, e))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(|e| self.http.transport_error(Provider::Zoho, e))?;
        let api = ApiResponse { status, headers, body };
        if let Some(err) = zoho_error(&api, Utc::now()) {
            return Err(err);
        }
        success_json(Provider::Zoho, &api)
    }

    /// Registers one webhook and the workflow rule that fires it; returns the stored registration
    /// id `"{module}/{webhook_id}:{workflow_id}"`. When the rule cannot be created the webhook is removed
    /// again (best effort), so a failure leaves nothing that the caller does not know about.
    pub async fn register(&self, token: &SecretString, spec: &WebhookSpec<'_>) -> Result<String> {
        let body =
            self.send("register_webhook", reqwest::Method::POST, "settings/webhooks", spec.org_id, Some(&spec.body()), token).await?;
        let webhook_id = id_in(&body, "webhook", "webhook_id")?;
        let wf = spec.workflow_body(&webhook_id);
        let created = self.send("register_workflow", reqwest::Method::POST, "settings/workflows", spec.org_id, Some(&wf), token).await;
        let workflow_id = match created.and_then(|b| id_in(&b, "workflow", "workflow_id")) {
            Ok(id) => id,
            Err(e) => {
                if let Err(d) = self.delete_one("webhooks", token, spec.org_id, &webhook_id).await {
                    tracing::warn!(code = %d.code(), error = %d, org_id = %spec.org_id, "could not remove a webhook whose workflow rule failed");
                }
                return Err(e);
            }
        };
        Ok(format!("{}/{webhook_id}:{workflow_id}", spec.entity))
    }

    /// Registers a module's webhook and workflow rule for each of [`EVENTS`], one after the other
    /// (each call waits for the org's limit anyway). All or nothing: when one fails, those already
    /// made are removed again (best effort), so a module is either stored whole or tried again whole.
    pub async fn register_module(
        &self,
        token: &SecretString,
        org_id: &str,
        url: &Url,
        module: &str,
        secret: &SecretString,
    ) -> Result<Vec<String>> {
        let mut made = Vec::with_capacity(EVENTS.len());
        for event in EVENTS {
            let spec = WebhookSpec { org_id, url, entity: module, event, secret };
            match self.register(token, &spec).await {
                Ok(id) => made.push(id),
                Err(e) => {
                    for id in &made {
                        if let Err(d) = self.delete(token, org_id, id).await {
                            tracing::warn!(code = %d.code(), error = %d, org_id = %org_id, module, "could not remove a webhook of a failed registration");
                        }
                    }
                    return Err(e);
                }
            }
        }
        Ok(made)
    }

    /// Removes a registration: its workflow rule first (Zoho keeps a webhook a rule still uses),
    /// then the webhook. Either already gone counts as removed.
    pub async fn delete(&self, token: &SecretString, org_id: &str, registration: &str) -> Result<()> {
        let (webhook_id, workflow_id) = registration_parts(registration);
        if !valid_zoho_id(webhook_id) || workflow_id.is_some_and(|w| !valid_zoho_id(w)) {
            return Err(Error::InvalidInput("webhook id has unexpected characters".into()));
        }
        if let Some(wf) = workflow_id {
            self.delete_one("workflows", token, org_id, wf).await?;
        }
        self.delete_one("webhooks", token, org_id, webhook_id).await
    }

    async fn delete_one(&self, kind: &str, token: &SecretString, org_id: &str, id: &str) -> Result<()> {
        let op = if kind == "workflows" { "delete_workflow" } else { "delete_webhook" };
        match self.send(op, reqwest::Method::DELETE, &format!("settings/{kind}/{id}"), org_id, None, token).await {
            Ok(_) => Ok(()),
            Err(Error::NotFound(_)) => Ok(()),
            Err(Error::ProviderPermanent { status: Some(404), .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// `body[object][field]` as a non-empty id (Zoho sends ids as strings, sometimes as numbers).
fn id_in(body: &Value, object: &str, field: &str) -> Result<String> {
    let v = &body[object][field];
    v.as_str().map(str::to_string).or_else(|| v.as_i64().map(|n| n.to_string())).filter(|id| valid_zoho_id(id)).ok_or_else(|| {
        Error::ProviderMalformed { provider: Provider::Zoho, message: format!("create answer has no valid {object}.{field}") }
    })
}

/// Several webhook ids of one organisation (one per entity) kept in `Connection::webhook_id`.
pub fn join_ids(ids: &[String]) -> Option<String> {
    if ids.is_empty() {
        None
    } else {
        Some(ids.join(","))
    }
}

pub fn split_ids(stored: Option<&str>) -> Vec<String> {
    stored.map(|s| s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_fit_zohos_rules_and_differ() {
        let a = new_secret();
        let b = new_secret();
        assert_eq!(a.expose().len(), SECRET_LEN);
        assert!((12..=50).contains(&a.expose().len()));
        assert!(a.expose().chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn callback_url_carries_the_org_and_keeps_the_base_path() {
        let base = Url::parse("https://api.example.com/prod/").unwrap();
        assert_eq!(callback_url(&base, "700000001").as_str(), "https://api.example.com/prod/webhooks/zoho?organization_id=700000001");
        let base = Url::parse("http://127.0.0.1:9000").unwrap();
        assert_eq!(callback_url(&base, "a&b").as_str(), "http://127.0.0.1:9000/webhooks/zoho?organization_id=a%26b");
    }

    #[test]
    fn create_body_sets_header_and_secret_and_never_prints_the_secret_in_debug() {
        let secret = SecretString::new("S3cretS3cretS3cret");
        let url = Url::parse("https://api.example.com/webhooks/zoho?organization_id=1").unwrap();
        let spec = WebhookSpec { org_id: "1", url: &url, entity: "invoice", event: "deleted", secret: &secret };
        let body = spec.body();
        assert_eq!(body["headers"][0]["param_name"], SECRET_HEADER);
        assert_eq!(body["headers"][0]["param_value"], "S3cretS3cretS3cret");
        assert_eq!(body["secret"], "S3cretS3cretS3cret");
        assert_eq!(body["method"], "POST");
        assert_eq!(body["url"], url.as_str());
        assert!(!format!("{spec:?}").contains("S3cret"));
        assert_eq!(body["events"], json!(["deleted"]));
        let template: Value = serde_json::from_str(body["raw_data"].as_str().unwrap()).unwrap();
        assert_eq!(template["event_type"], "deleted");
        assert_eq!(template["entity_id"], "${invoice.invoice_id}");
        assert!(template["event_id"].as_str().unwrap().contains("deleted"));
    }

    /// What Zoho sends for an update and for a delete of the same record snapshot (the template
    /// rendered): different dedupe keys, so the delete is not dropped as a duplicate of the update.
    #[test]
    fn update_and_delete_of_the_same_snapshot_do_not_share_a_dedupe_key() {
        let url = Url::parse("https://api.example.com/webhooks/zoho?organization_id=7").unwrap();
        let secret = SecretString::new("S3cretS3cretS3cret");
        let render = |event: &str| {
            WebhookSpec { org_id: "7", url: &url, entity: "invoice", event, secret: &secret }
                .payload_template()
                .replace("${invoice.invoice_id}", "460000000012345")
                .replace("${invoice.last_modified_time}", "2026-11-24T17:59:41+0000")
        };
        let parse = |body: String| crate::webhooks::parse::parse(Provider::Zoho, body.as_bytes(), Some("7")).unwrap();
        let (upd, del) = (parse(render("updated")), parse(render("deleted")));
        assert_ne!(upd.dedupe_key, del.dedupe_key);
        assert_eq!(upd.changes[0].change, crate::jobs::Change::Updated);
        assert_eq!(del.changes[0].change, crate::jobs::Change::Deleted);
        assert_eq!(del.changes[0].entity_id.as_deref(), Some("460000000012345"));
        // A retry of the same event is the same delivery.
        assert_eq!(parse(render("deleted")).dedupe_key, del.dedupe_key);
    }

    #[test]
    fn each_webhook_gets_a_workflow_rule_on_its_module_and_event() {
        let secret = SecretString::new("S3cretS3cretS3cret");
        let url = Url::parse("https://api.example.com/webhooks/zoho?organization_id=1").unwrap();
        for (event, trigger) in [("created", "on_create"), ("updated", "on_edit"), ("deleted", "on_delete")] {
            let spec = WebhookSpec { org_id: "1", url: &url, entity: "customerpayment", event, secret: &secret };
            let wf = spec.workflow_body("4600001");
            assert_eq!((wf["entity"].as_str(), wf["event"].as_str()), (Some("customerpayment"), Some(trigger)));
            assert_eq!(wf["actions"], json!([{"action_type": "webhook", "action_id": "4600001"}]));
            assert!(!wf.to_string().contains("S3cret"), "the secret stays in the webhook");
        }
        assert_eq!(registration_parts("46:47"), ("46", Some("47")));
        assert_eq!(registration_parts("46"), ("46", None));
        assert_eq!(registration_parts("46:"), ("46", None));
        assert_eq!(registration_parts("bill/46:47"), ("46", Some("47")));
        assert!(!valid_zoho_id("4/../x") && !valid_zoho_id("") && valid_zoho_id("460000000012345"));
    }

    #[test]
    fn stored_registrations_name_their_module_and_older_ones_are_the_callbacks() {
        // Stored before modules were named: the callback's four.
        let old = Some("46:47,48:49");
        assert!(ENTITIES.iter().all(|m| is_registered(old, m)));
        assert!(!is_registered(old, "bill"));
        let mixed = Some("46:47,bill/50:51,bill/52:53,bill/54:55");
        assert!(is_registered(mixed, "bill") && is_registered(mixed, "invoice") && !is_registered(mixed, "journal"));
        // Only worker-made entries: the callback's modules are not taken for registered.
        let new = Some("bill/50:51");
        assert!(is_registered(new, "bill") && !is_registered(new, "invoice"));
        assert!(!is_registered(None, "invoice"));
        assert_eq!(registration_module("bill/50:51"), Some("bill"));
        assert_eq!(registration_module("50:51"), None);
    }

    #[test]
    fn every_module_a_worker_registers_has_its_id_field_in_the_template() {
        for entity in Entity::ALL {
            for module in modules_for(entity) {
                assert_ne!(id_field(module), "id", "{module} has no id field");
                let url = Url::parse("https://api.example.com/webhooks/zoho?organization_id=1").unwrap();
                let secret = SecretString::new("S3cretS3cretS3cret");
                let spec = WebhookSpec { org_id: "1", url: &url, entity: module, event: "created", secret: &secret };
                // What Zoho would render: the receiver reads it as a change of this entity.
                let body = spec
                    .payload_template()
                    .replace(&format!("${{{module}.{}}}", id_field(module)), "4600001")
                    .replace(&format!("${{{module}.last_modified_time}}"), "2026-11-24T17:59:41+0000");
                let d = crate::webhooks::parse::parse(Provider::Zoho, body.as_bytes(), Some("1")).unwrap();
                assert_eq!(d.changes[0].entity.model(), entity, "{module}");
                assert_eq!(d.changes[0].entity_id.as_deref(), Some("4600001"), "{module}");
            }
        }
        assert!(modules_for(Entity::TaxRate).is_empty() && modules_for(Entity::Company).is_empty());
    }

    #[test]
    fn webhook_ids_round_trip() {
        let ids = vec!["1".to_string(), "22".to_string()];
        assert_eq!(split_ids(join_ids(&ids).as_deref()), ids);
        assert_eq!(join_ids(&[]), None);
        assert!(split_ids(None).is_empty());
    }

    #[test]
    fn api_domain_must_be_a_zoho_one() {
        let http = HttpClient::new(std::time::Duration::from_secs(1)).unwrap();
        let e = Endpoints::real(Provider::Zoho);
        // Never called: the domain is checked before any client is used.
        let db = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::Config::builder().behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest()).build(),
        );
        let guard = ProviderGuard::with_limits(db.clone(), "resilience", crate::resilience::Limits::default());
        let audit = AuditLog::new(db, "tenants");
        let g = Guarded {
            guard: &guard,
            audit: &audit,
            tenant_id: "t",
            grant_id: "g",
            plan: Plan::Starter,
            actor: "system:test",
            limited: true,
        };
        assert!(ZohoWebhooks::new(&http, &e, "https://www.zohoapis.eu", g).is_ok());
        assert!(ZohoWebhooks::new(&http, &e, "https://attacker.example", g).is_err());
    }
}
