//! A push job: one write (create, update, void or delete) asked for in the common model
//! (`crate::writes`), run so that it is safe to retry and never overwrites what it did not see.
//!
//! Order: who may (the tenant's role), what it sends (checked against the stored books, costing
//! no provider call), whether the record is still the version the change was based on, then the
//! change, the stored copy (with its change-feed entry) and the audit record. A refusal or a
//! conflict completes the job with that outcome (announced as `write.failed`): retrying it could
//! only fail the same way. A failure that might pass later (a timeout, a 5xx, a rate limit) fails
//! the job, whose retry recognises a change it already sent:
//! - QuickBooks replays the first answer to a repeated `requestid`, and refuses a stale SyncToken
//!   itself, so the change is sent without reading first;
//! - Xero replays the first answer to a repeated `Idempotency-Key`; it has no conditional update,
//!   so the record is read and its version compared first (a window of one round trip remains in
//!   which another edit can land unseen);
//! - Zoho has neither: the record is read and compared first, an update carries the write's
//!   reference in our custom field so its retry can tell its own change from someone else's, and
//!   a void or delete already in place is its own.

use chrono::Utc;
use serde_json::{json, Value};

use crate::providers::client::{bank_collection, write_collection, AccountingProvider, Change, ChangeKind, ProviderClient};
use crate::providers::model::{Entity, Record};
use crate::store::{n, s, tenant_pk, Item};
use crate::sync::model::{self, SyncRecord};
use crate::tenancy::Permission;
use crate::worker::calls::{provider_call, Op};
use crate::worker::job::{add_warnings, normalise_all, push_reference, write_records, Counts, JobCtx, SyncDeps, ZOHO_PUSH_REF_FIELD};
use crate::writes::check::{self, Books};
use crate::writes::{wire, Action, BankWriteKind, CreditKind, Problem, RecordInput, WriteRequest};
use crate::{Error, Provider, Result};

/// What a write came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Sent and stored.
    Applied,
    /// A retry found its own change already at the provider.
    AlreadyApplied,
    /// A dry run that passed every check.
    Valid,
    /// Refused before sending (role, validation) or by the provider; nothing changed.
    Refused,
    /// The record moved on since the version the change was based on; nothing changed.
    Conflict,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::AlreadyApplied => "already_applied",
            Outcome::Valid => "valid",
            Outcome::Refused => "refused",
            Outcome::Conflict => "conflict",
        }
    }

    /// Whether the app is told `write.completed` (else `write.failed`).
    pub fn succeeded(result: &Value) -> bool {
        matches!(result.get("outcome").and_then(Value::as_str), Some("applied" | "already_applied" | "valid"))
    }
}

struct Done {
    outcome: Outcome,
    code: Option<&'static str>,
    problems: Vec<Problem>,
    record: Option<SyncRecord>,
    would_send: Option<Value>,
}

impl Done {
    fn refused(code: &'static str, problems: Vec<Problem>) -> Done {
        Done { outcome: Outcome::Refused, code: Some(code), problems, record: None, would_send: None }
    }
}

/// Runs one write job and returns its stored result.
pub async fn run(deps: &SyncDeps, ctx: &JobCtx) -> Result<Value> {
    let req = WriteRequest::parse(ctx.payload.as_ref(), ctx.entity)?;
    let reference = push_reference(&ctx.tenant.tenant_id, &ctx.job.idempotency_key);
    let mut counts = Counts::default();
    // Boxed: the decision's future holds several provider calls' futures (large in debug builds).
    let done = match Box::pin(decide(deps, ctx, &req, &reference, &mut counts)).await {
        Ok(d) => d,
        // The provider refused the change itself (its validation): nothing changed, and a retry
        // would be refused again.
        Err(Error::ProviderPermanent { message, .. }) => {
            Done::refused("provider_refused", vec![Problem::new("record", "provider_refused", message)])
        }
        Err(e) => return Err(e),
    };
    if !req.dry_run {
        audit(deps, ctx, &req, &done).await?;
    }
    let mut v = json!({
        "operation": "push",
        "action": req.action.as_str(),
        "outcome": done.outcome.as_str(),
        "dry_run": req.dry_run,
        "reference": reference,
        "requested_by": req.requested_by,
        "counts": counts,
    });
    if let Some(code) = done.code {
        v["code"] = json!(code);
    }
    add_problems(&mut v, &done.problems);
    if let Some(r) = &done.record {
        v["provider_id"] = json!(r.provider_id);
        v["version"] = json!(r.version);
        // A conflict carries the record as it is now; a write, the record as stored. A large one
        // stays in the store only (the result is an item and the event a message, both bounded).
        let key = if done.outcome == Outcome::Conflict { "current" } else { "record" };
        match capped(serde_json::to_value(r).unwrap_or(Value::Null)) {
            Some(rv) => v[key] = rv,
            None => v[format!("{key}_omitted")] = json!("too large for the event: read it from the records API"),
        }
    } else if let Some(id) = &req.provider_id {
        v["provider_id"] = json!(id);
    }
    if let Some(w) = done.would_send.and_then(capped) {
        v["would_send"] = w;
    }
    // Kept for clients of the first push results: `created` is true when this run made the record.
    v["created"] = json!(req.action == Action::Create && done.outcome == Outcome::Applied);
    add_warnings(&mut v, &counts);
    Ok(v)
}

/// The most problems a result or event lists.
const MAX_PROBLEMS: usize = 100;

/// The most a record carried in a result or event may take (an SQS message is at most 256 KB).
const MAX_CARRIED_BYTES: usize = 64 * 1024;

fn capped(v: Value) -> Option<Value> {
    (v.to_string().len() <= MAX_CARRIED_BYTES).then_some(v)
}

/// A document of hundreds of bad lines could list more problems than a stored result (a DynamoDB
/// item) or an event (an SQS message) holds: the first ones, and how many there were.
fn add_problems(v: &mut Value, problems: &[Problem]) {
    if problems.is_empty() {
        return;
    }
    v["problems"] = json!(problems.iter().take(MAX_PROBLEMS).collect::<Vec<_>>());
    if problems.len() > MAX_PROBLEMS {
        v["problems_total"] = json!(problems.len());
    }
}

fn permission(action: Action) -> Permission {
    match action {
        Action::Create | Action::Update => Permission::WriteBooks,
        Action::Void | Action::Delete => Permission::VoidOrDelete,
    }
}

/// The body to send (provider JSON), or the problems that refuse it.
async fn body(deps: &SyncDeps, ctx: &JobCtx, req: &WriteRequest) -> Result<std::result::Result<Option<Value>, Vec<Problem>>> {
    let creating = req.action == Action::Create;
    if let Some(raw) = &req.raw {
        return Ok(Ok(Some(raw.clone())));
    }
    let Some(record) = &req.record else { return Ok(Ok(None)) };
    let input = match RecordInput::parse(ctx.entity, record) {
        Ok(i) => i,
        Err(p) => return Ok(Err(vec![p])),
    };
    let tenant = &ctx.tenant.tenant_id;
    Ok(match input {
        RecordInput::Contact(c) => check::contact(ctx.provider, creating, &c).map(Some),
        RecordInput::Document(mut d) => {
            if ctx.entity == Entity::CreditNote && !creating {
                // An update keeps the credit note's kind: the stored copy says which it is.
                let id = req.provider_id.as_deref().unwrap_or_default();
                let stored = deps.store.get_record(tenant, ctx.provider, &ctx.org_id, Entity::CreditNote, id).await?;
                let kind = stored.and_then(|r| r.document).map(|doc| match doc.kind {
                    crate::books::DocumentKind::PurchaseCredit => CreditKind::Purchase,
                    _ => CreditKind::Sales,
                });
                match (d.kind, kind) {
                    (None, Some(k)) => d.kind = Some(k),
                    (Some(a), Some(b)) if a != b => {
                        return Ok(Err(vec![Problem::new("record.kind", "invalid", "a credit note's kind does not change")]));
                    }
                    _ => {}
                }
            }
            let contact = stored_contact(deps, ctx, d.contact.as_ref()).await?;
            let names_accounts = d.lines.iter().flatten().any(|l| l.account.is_some());
            let accounts = if names_accounts {
                deps.store.list_records(tenant, ctx.provider, &ctx.org_id, Entity::Account).await?
            } else {
                Vec::new()
            };
            // Tax codes are checked where the tenant keeps the org's tax rates (else the provider
            // checks them).
            let names_tax = d.lines.iter().flatten().any(|l| l.tax_code.is_some());
            let tax_codes = if names_tax { stored_tax_codes(deps, ctx).await? } else { None };
            let books = Books { contact: contact.as_ref(), accounts: &accounts, tax_codes: tax_codes.as_deref(), documents: &[] };
            check::document(ctx.provider, ctx.entity, creating, &d, &books).map(Some)
        }
        RecordInput::Payment(p) => {
            let contact = stored_contact(deps, ctx, p.contact.as_ref()).await?;
            let accounts = if p.account.is_some() {
                deps.store.list_records(tenant, ctx.provider, &ctx.org_id, Entity::Account).await?
            } else {
                Vec::new()
            };
            // A payment received pays invoices; a payment made, bills.
            let paid = if ctx.entity == Entity::BillPayment { Entity::Bill } else { Entity::Invoice };
            let mut documents = Vec::new();
            for a in p.applied_to.iter().flatten().take(check::MAX_LINES) {
                if let Some(id) = a.document.id.as_deref().filter(|id| !id.is_empty() && id.len() <= model::MAX_ID_LEN) {
                    if let Some(d) = deps.store.get_record(tenant, ctx.provider, &ctx.org_id, paid, id).await? {
                        documents.push(d);
                    }
                }
            }
            let books = Books { contact: contact.as_ref(), accounts: &accounts, tax_codes: None, documents: &documents };
            check::payment(ctx.provider, ctx.entity, creating, &p, &books).map(Some)
        }
        RecordInput::BankTransaction(mut t) => {
            if !creating && t.kind.is_none() {
                // An update keeps the transaction's direction: the stored copy says which it is.
                let id = req.provider_id.as_deref().unwrap_or_default();
                let stored = deps.store.get_record(tenant, ctx.provider, &ctx.org_id, Entity::BankTransaction, id).await?;
                t.kind = stored.and_then(|r| r.reference.bank_transaction).and_then(|b| match b.kind {
                    crate::books::bank::BankKind::Spend | crate::books::bank::BankKind::Expense => Some(BankWriteKind::Spend),
                    crate::books::bank::BankKind::Receive => Some(BankWriteKind::Receive),
                    // Transfers are read, not written.
                    _ => None,
                });
            }
            let contact = stored_contact(deps, ctx, t.contact.as_ref()).await?;
            let accounts = deps.store.list_records(tenant, ctx.provider, &ctx.org_id, Entity::Account).await?;
            let names_tax = t.lines.iter().flatten().any(|l| l.tax_code.is_some());
            let tax_codes = if names_tax { stored_tax_codes(deps, ctx).await? } else { None };
            let books = Books { contact: contact.as_ref(), accounts: &accounts, tax_codes: tax_codes.as_deref(), documents: &[] };
            check::bank_transaction(ctx.provider, creating, &t, &books).map(Some)
        }
        RecordInput::Journal(j) => {
            let accounts = if j.lines.is_some() {
                deps.store.list_records(tenant, ctx.provider, &ctx.org_id, Entity::Account).await?
            } else {
                Vec::new()
            };
            let names_tax = j.lines.iter().flatten().any(|l| l.tax_code.is_some());
            let tax_codes = if names_tax { stored_tax_codes(deps, ctx).await? } else { None };
            let books = Books { contact: None, accounts: &accounts, tax_codes: tax_codes.as_deref(), documents: &[] };
            check::journal(ctx.provider, creating, &j, &books).map(Some)
        }
    })
}

/// The org's active stored tax codes, where the tenant keeps the org's tax rates (else None: the
/// provider checks them).
async fn stored_tax_codes(deps: &SyncDeps, ctx: &JobCtx) -> Result<Option<Vec<String>>> {
    if !ctx.tenant.config.enabled_entities.contains(&crate::tenancy::Entity::TaxRate) {
        return Ok(None);
    }
    let rates = deps.store.list_records(&ctx.tenant.tenant_id, ctx.provider, &ctx.org_id, Entity::TaxRate).await?;
    Ok(Some(
        rates
            .into_iter()
            .filter(|r| !r.deleted && r.reference.tax_rate.as_ref().and_then(|t| t.active) != Some(false))
            .flat_map(|r| [Some(r.provider_id), r.reference.tax_rate.and_then(|t| t.code)])
            .flatten()
            .collect(),
    ))
}

/// The stored contact a record names, if it is stored.
async fn stored_contact(deps: &SyncDeps, ctx: &JobCtx, r: Option<&crate::writes::RefInput>) -> Result<Option<SyncRecord>> {
    match r.and_then(|c| c.id.as_deref()).filter(|id| !id.is_empty() && id.len() <= model::MAX_ID_LEN) {
        Some(id) => deps.store.get_record(&ctx.tenant.tenant_id, ctx.provider, &ctx.org_id, Entity::Contact, id).await,
        None => Ok(None),
    }
}

async fn decide(deps: &SyncDeps, ctx: &JobCtx, req: &WriteRequest, reference: &str, counts: &mut Counts) -> Result<Done> {
    match deps.tenants.authorize(&ctx.tenant.tenant_id, &req.requested_by, permission(req.action)).await {
        Ok(_) => {}
        Err(Error::Forbidden(m)) => return Ok(Done::refused("forbidden", vec![Problem::new("requested_by", "forbidden", m)])),
        Err(e) => return Err(e),
    }
    let mut body = match body(deps, ctx, req).await? {
        Ok(b) => b,
        Err(problems) => return Ok(Done::refused("validation_failed", problems)),
    };
    if req.action == Action::Create {
        let body = body.unwrap_or(Value::Null);
        if ctx.provider == Provider::QuickBooks && (body.get("Id").is_some() || body.get("SyncToken").is_some()) {
            // QuickBooks treats a POST carrying Id and SyncToken as an update of that record.
            let p = Problem::new("raw", "invalid", "a QuickBooks create must not carry Id or SyncToken");
            return Ok(Done::refused("validation_failed", vec![p]));
        }
        if req.dry_run {
            return Ok(Done { outcome: Outcome::Valid, code: None, problems: vec![], record: None, would_send: Some(body) });
        }
        return Box::pin(create(deps, ctx, body, reference, counts)).await;
    }
    let id = req.provider_id.clone().unwrap_or_default();
    let based_on = req.version.clone().unwrap_or_default();
    let (kind, mut change_body) = match req.action {
        Action::Update => (ChangeKind::Update, body.take().unwrap_or(Value::Null)),
        action => match wire::lifecycle_change(ctx.provider, ctx.entity, action) {
            Some(c) => c,
            None => {
                let p = check::lifecycle_allows(ctx.provider, ctx.entity, action, None).err();
                return Ok(Done::refused("unsupported", p.into_iter().collect()));
            }
        },
    };
    if kind == ChangeKind::Update && ctx.provider == Provider::Zoho {
        // The write's reference, so a retry can tell its own change from another's.
        tag_zoho(&mut change_body, reference)?;
    }
    let stored = deps.store.get_record(&ctx.tenant.tenant_id, ctx.provider, &ctx.org_id, ctx.entity, &id).await?;
    if req.dry_run {
        // Checked against the stored copy: no provider call.
        if let Some(st) = stored.as_ref().filter(|st| st.version.as_deref() != Some(based_on.as_str())) {
            let mut d = Done::refused("conflict", vec![Problem::new("version", "conflict", "the stored copy is at another version")]);
            d.outcome = Outcome::Conflict;
            d.record = Some(st.clone());
            return Ok(d);
        }
        if let Err(p) = check::lifecycle_allows(ctx.provider, ctx.entity, req.action, stored.as_ref()) {
            return Ok(Done::refused("validation_failed", vec![p]));
        }
        return Ok(Done { outcome: Outcome::Valid, code: None, problems: vec![], record: None, would_send: Some(change_body) });
    }
    let sent_before = deps.store.write_attempted(&ctx.tenant.tenant_id, &ctx.job.idempotency_key).await?;
    let mut change = Change { kind, id: &id, version: Some(&based_on), body: &change_body, collection: 0 };
    if ctx.provider == Provider::QuickBooks {
        // QuickBooks checks the SyncToken itself, atomically.
        if let Err(p) = check::lifecycle_allows(ctx.provider, ctx.entity, req.action, stored.as_ref()) {
            return Ok(Done::refused("validation_failed", vec![p]));
        }
        change.collection = match &stored {
            Some(st) => collection_of(ctx.provider, st),
            // Which collection holds a record we do not keep: read it (the read tries each).
            None if matches!(ctx.entity, Entity::CreditNote | Entity::BankTransaction) => match read(deps, ctx, &id).await? {
                Some(r) => model::normalise(&r).map(|st| collection_of(ctx.provider, &st)).unwrap_or(0),
                None => return Ok(gone(req.action, sent_before)),
            },
            None => 0,
        };
        deps.store.mark_write_attempt(&ctx.tenant.tenant_id, &ctx.job.idempotency_key, Utc::now()).await?;
        return match send(deps, ctx, &change, req.action).await {
            Ok(r) => applied(deps, ctx, r, &id, Outcome::Applied, counts).await,
            Err(Error::ProviderPermanent { message, .. }) if message.contains("[5010]") => {
                let current = read(deps, ctx, &id).await?;
                conflict(deps, ctx, current, counts).await
            }
            Err(Error::NotFound(_)) => Ok(gone(req.action, sent_before)),
            Err(e) => Err(e),
        };
    }
    let current = match read(deps, ctx, &id).await? {
        Some(c) => c,
        None if req.action == Action::Delete && sent_before => {
            return applied(deps, ctx, None, &id, Outcome::AlreadyApplied, counts).await;
        }
        None => return Ok(gone(req.action, false)),
    };
    let current_version = model::version_of(&current);
    if current_version.as_deref() != Some(based_on.as_str()) {
        if sent_before && own_change(ctx.provider, req.action, &current, reference) {
            return applied(deps, ctx, Some(current), &id, Outcome::AlreadyApplied, counts).await;
        }
        if !(sent_before && ctx.provider == Provider::Xero) {
            return conflict(deps, ctx, Some(current), counts).await;
        }
        // Xero: our change may have landed; the same Idempotency-Key replays its first answer.
    }
    let now_normalised = model::normalise(&current);
    if let Err(p) = check::lifecycle_allows(ctx.provider, ctx.entity, req.action, now_normalised.as_ref()) {
        return Ok(Done::refused("validation_failed", vec![p]));
    }
    change.collection = now_normalised.as_ref().map(|st| collection_of(ctx.provider, st)).unwrap_or(0);
    deps.store.mark_write_attempt(&ctx.tenant.tenant_id, &ctx.job.idempotency_key, Utc::now()).await?;
    match send(deps, ctx, &change, req.action).await {
        Ok(r) => applied(deps, ctx, r, &id, Outcome::Applied, counts).await,
        Err(Error::NotFound(_)) => Ok(gone(req.action, sent_before)),
        Err(e) => Err(e),
    }
}

/// Which of its entity's collections holds a stored record (a supplier's credit note is apart from
/// customers' at QuickBooks and Zoho).
fn collection_of(provider: Provider, r: &SyncRecord) -> usize {
    if let Some(t) = &r.reference.bank_transaction {
        return bank_collection(provider, t);
    }
    let purchase = r.document.as_ref().is_some_and(|d| d.kind == crate::books::DocumentKind::PurchaseCredit);
    write_collection(provider, r.entity, purchase)
}

/// The record is not at the provider: a delete that was ours is done; anything else is refused.
fn gone(action: Action, sent_before: bool) -> Done {
    if action == Action::Delete && sent_before {
        return Done { outcome: Outcome::AlreadyApplied, code: None, problems: vec![], record: None, would_send: None };
    }
    Done::refused("not_found", vec![Problem::new("provider_id", "not_found", "the provider has no such record")])
}

/// Whether `current` shows this write's own earlier change (Zoho: our reference in the custom
/// field; any provider: a void or delete already in place).
fn own_change(provider: Provider, action: Action, current: &Record, reference: &str) -> bool {
    let status = current.status.as_deref().unwrap_or_default().to_ascii_lowercase();
    match action {
        Action::Void => matches!(status.as_str(), "void" | "voided"),
        Action::Delete => matches!(status.as_str(), "deleted" | "archived") || current.raw.get("Active") == Some(&Value::Bool(false)),
        Action::Update => provider == Provider::Zoho && crate::worker::job::carries_reference(&current.raw, reference),
        Action::Create => false,
    }
}

fn tag_zoho(body: &mut Value, reference: &str) -> Result<()> {
    let tag = json!({"api_name": ZOHO_PUSH_REF_FIELD, "value": reference});
    match body.get_mut("custom_fields") {
        None | Some(Value::Null) => body["custom_fields"] = json!([tag]),
        Some(Value::Array(fields)) => {
            fields.retain(|f| f.get("api_name").and_then(Value::as_str) != Some(ZOHO_PUSH_REF_FIELD));
            fields.push(tag);
        }
        Some(_) => return Err(Error::InvalidInput("custom_fields must be an array".into())),
    }
    Ok(())
}

async fn read(deps: &SyncDeps, ctx: &JobCtx, id: &str) -> Result<Option<Record>> {
    let org = ctx.org_id.clone();
    let entity = ctx.entity;
    let owned = id.to_string();
    match Box::pin(provider_call(deps, ctx, entity, Op::Get, Some(id), |client, tokens| {
        let org = org.clone();
        let id = owned.clone();
        async move { client.get(&tokens, &org, entity, &id).await }
    }))
    .await
    {
        Ok(r) => Ok(Some(r)),
        Err(Error::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

async fn send(deps: &SyncDeps, ctx: &JobCtx, change: &Change<'_>, action: Action) -> Result<Option<Record>> {
    let op = match action {
        Action::Void => Op::Void,
        Action::Delete => Op::Delete,
        _ => Op::Update,
    };
    let org = ctx.org_id.clone();
    let entity = ctx.entity;
    let key = push_reference(&ctx.tenant.tenant_id, &ctx.job.idempotency_key);
    let (kind, id, version, body, collection) =
        (change.kind, change.id.to_string(), change.version.map(str::to_string), change.body.clone(), change.collection);
    Box::pin(provider_call(deps, ctx, entity, op, Some(change.id), |client, tokens| {
        let (org, id, version, body, key) = (org.clone(), id.clone(), version.clone(), body.clone(), key.clone());
        async move {
            let c = Change { kind, id: &id, version: version.as_deref(), body: &body, collection };
            client.change(&tokens, &org, entity, &c, &key).await
        }
    }))
    .await
}

/// Stores the provider's answer (a tombstone for a deletion) and announces it on the change feed.
async fn applied(deps: &SyncDeps, ctx: &JobCtx, record: Option<Record>, id: &str, outcome: Outcome, counts: &mut Counts) -> Result<Done> {
    let rows = match &record {
        Some(r) => normalise_all(std::slice::from_ref(r), counts),
        None => {
            counts.deleted += 1;
            model::tombstone(ctx.provider, &ctx.org_id, ctx.entity, id, Utc::now()).map(|t| vec![(t, None)]).unwrap_or_default()
        }
    };
    write_records(deps, ctx, &rows, counts).await?;
    Ok(Done { outcome, code: None, problems: vec![], record: rows.into_iter().next().map(|(r, _)| r), would_send: None })
}

/// The record moved on: nothing is sent; the current record is stored (it is the newer copy) and
/// returned with the conflict.
async fn conflict(deps: &SyncDeps, ctx: &JobCtx, current: Option<Record>, counts: &mut Counts) -> Result<Done> {
    let rows = current.as_ref().map(|r| normalise_all(std::slice::from_ref(r), counts)).unwrap_or_default();
    write_records(deps, ctx, &rows, counts).await?;
    let problem = Problem::new("version", "conflict", "the record changed since the version this write was based on");
    Ok(Done {
        outcome: Outcome::Conflict,
        code: Some("conflict"),
        problems: vec![problem],
        record: rows.into_iter().next().map(|(r, _)| r),
        would_send: None,
    })
}

/// Creates the record so that a retry never makes a second one: QuickBooks `requestid` and Xero
/// `Idempotency-Key` replay the first answer. Zoho has no such key, so the create carries our
/// reference (derived from the job, never the app's fields) in a custom field, and a retry looks
/// for it first: candidates by a field Zoho lists by (invoices and bills by `reference_number`,
/// contacts by `contact_name`), each read to check our reference. A record that merely shares the
/// app's PO number or the contact's name is not ours: the document is created anyway, and a
/// contact whose name another contact holds is refused.
async fn create(deps: &SyncDeps, ctx: &JobCtx, mut payload: Value, reference: &str, counts: &mut Counts) -> Result<Done> {
    let entity = ctx.entity;
    let org = ctx.org_id.clone();
    let mut found = None;
    if ctx.provider == Provider::Zoho {
        tag_zoho(&mut payload, reference)?;
        let (field, value) = match entity {
            Entity::Invoice
            | Entity::Bill
            | Entity::Payment
            | Entity::BillPayment
            | Entity::CreditNote
            | Entity::Journal
            | Entity::BankTransaction => {
                // The app's reference_number stays as sent; without one, ours fills it so the
                // lookup below has a field to list by.
                if payload.get("reference_number").and_then(Value::as_str).is_none_or(str::is_empty) {
                    payload["reference_number"] = Value::String(reference.to_string());
                }
                ("reference_number", payload["reference_number"].as_str().unwrap_or_default().to_string())
            }
            _ => match payload.get("contact_name").and_then(Value::as_str).filter(|s| !s.is_empty()) {
                Some(n) => ("contact_name", n.to_string()),
                None => {
                    return Ok(Done::refused(
                        "validation_failed",
                        vec![Problem::new("record.name", "required", "a Zoho contact needs contact_name")],
                    ))
                }
            },
        };
        let collection = crate::providers::zoho::create_collection(entity, &payload);
        let candidates = Box::pin(provider_call(deps, ctx, entity, Op::Find, None, |client, tokens| {
            let org = org.clone();
            let value = value.clone();
            async move {
                match client {
                    ProviderClient::Zoho(z) => z.find_by(&tokens, &org, entity, field, &value, collection).await,
                    _ => Err(Error::Internal("lookup by reference is Zoho only".into())),
                }
            }
        }))
        .await?;
        let taken = !candidates.is_empty();
        for c in candidates {
            // List answers are partial (no custom fields): read the record to see whose it is.
            let full = if crate::worker::job::carries_reference(&c.raw, reference) { Some(c) } else { read(deps, ctx, &c.id).await? };
            if let Some(full) = full.filter(|f| crate::worker::job::carries_reference(&f.raw, reference)) {
                found = Some(full);
                break;
            }
        }
        if found.is_none() && taken && entity == Entity::Contact {
            // Zoho keeps contact names unique: the create would fail, and the contact that holds
            // the name is someone else's, not this write's result.
            let p = Problem::new("record.name", "taken", "a Zoho contact with this name exists and was not created by this write");
            return Ok(Done::refused("validation_failed", vec![p]));
        }
    }
    let (record, outcome) = match found {
        Some(r) => (r, Outcome::AlreadyApplied),
        None => {
            let payload = &payload;
            let r = Box::pin(provider_call(deps, ctx, entity, Op::Create, None, |client, tokens| {
                let org = org.clone();
                async move { client.create(&tokens, &org, entity, payload, reference).await }
            }))
            .await?;
            (r, Outcome::Applied)
        }
    };
    let id = record.id.clone();
    applied(deps, ctx, Some(record), &id, outcome, counts).await
}

/// The audit record of a write: who asked, what, the outcome and the provider's id. Written before
/// the job completes, so a write whose audit failed is retried (and recognised) rather than lost
/// from the trail; a retry after a crash between the two may write a second record of the same
/// write, which carries the same idempotency key.
async fn audit(deps: &SyncDeps, ctx: &JobCtx, req: &WriteRequest, done: &Done) -> Result<()> {
    let now = Utc::now();
    let correlation_id = crate::context::current().map(|c| c.correlation_id).unwrap_or_else(crate::context::mint_correlation_id);
    let provider_id = done.record.as_ref().map(|r| r.provider_id.clone()).or_else(|| req.provider_id.clone()).unwrap_or_default();
    // What changed, by field name (values stay in the provider and the stored copy).
    let fields: Vec<String> = match (&req.record, &req.raw) {
        (Some(Value::Object(m)), _) | (_, Some(Value::Object(m))) => m.keys().cloned().collect(),
        _ => vec![],
    };
    let mut item = Item::new();
    item.insert("pk".into(), s(tenant_pk(&ctx.tenant.tenant_id)));
    item.insert("sk".into(), s(format!("AUDIT#{}#{}", now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true), uuid::Uuid::new_v4())));
    item.insert("tenant_id".into(), s(&ctx.tenant.tenant_id));
    item.insert("event".into(), s(format!("write.{}", req.action.as_str())));
    item.insert("provider".into(), s(ctx.provider.as_str()));
    item.insert("grant_id".into(), s(&ctx.grant_id));
    item.insert("actor".into(), s(&req.requested_by));
    item.insert("correlation_id".into(), s(correlation_id));
    item.insert("org_id".into(), s(&ctx.org_id));
    item.insert("entity".into(), s(ctx.entity.as_str()));
    item.insert("idempotency_key".into(), s(&ctx.job.idempotency_key));
    item.insert("outcome".into(), s(done.outcome.as_str()));
    if !provider_id.is_empty() {
        item.insert("provider_id".into(), s(&provider_id));
    }
    let detail = format!(
        "{} {} {}: {}{}{}",
        req.action.as_str(),
        ctx.entity,
        if provider_id.is_empty() { "-" } else { provider_id.as_str() },
        done.outcome.as_str(),
        if fields.is_empty() { String::new() } else { format!("; fields {}", fields.join(",")) },
        match (&req.version, done.record.as_ref().and_then(|r| r.version.as_ref())) {
            (Some(from), Some(to)) => format!("; version {from} -> {to}"),
            _ => String::new(),
        }
    );
    item.insert("detail".into(), s(detail));
    item.insert("at".into(), s(now.to_rfc3339()));
    let days = crate::audit::call_retention_days(ctx.tenant.plan).max(crate::audit::RETENTION_DAYS);
    item.insert("expires_at".into(), n(crate::store::epoch(now + chrono::Duration::days(days))));
    deps.db
        .put_item()
        .table_name(&deps.audit_table)
        .set_item(Some(item))
        .send()
        .await
        .map_err(|e| crate::store::dynamo_error("PutItem(write audit)", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_lists_at_most_a_hundred_problems_and_counts_them_all() {
        let many: Vec<Problem> =
            (0..1500).map(|i| Problem::new(format!("record.lines[{i}].account"), "unknown_account", "x".repeat(100))).collect();
        let mut v = json!({});
        add_problems(&mut v, &many);
        assert_eq!((v["problems"].as_array().unwrap().len(), v["problems_total"].as_u64()), (MAX_PROBLEMS, Some(1500)));
        assert!(v.to_string().len() < 64 * 1024, "fits a message beside the rest");
        let mut few = json!({});
        add_problems(&mut few, &many[..2]);
        assert_eq!((few["problems"].as_array().unwrap().len(), few.get("problems_total")), (2, None));
        let mut none = json!({});
        add_problems(&mut none, &[]);
        assert_eq!(none, json!({}));
    }

    #[test]
    fn voiding_and_deleting_need_more_than_writing() {
        assert_eq!(permission(Action::Create), Permission::WriteBooks);
        assert_eq!(permission(Action::Update), Permission::WriteBooks);
        assert_eq!(permission(Action::Void), Permission::VoidOrDelete);
        assert_eq!(permission(Action::Delete), Permission::VoidOrDelete);
    }
}
