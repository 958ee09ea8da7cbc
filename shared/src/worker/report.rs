//! Running report and passthrough jobs inside the sync worker (the jobs' request checks and events
//! are `crate::reports::job`).

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde_json::{json, Value};

use crate::jobs::{lineage_root, Operation, SyncJob};
use crate::providers::client::ProviderClient;
use crate::providers::model::Entity;
use crate::providers::raw;
use crate::reports::job::report_scopes;
use crate::reports::model::{Report, SectionClass};
use crate::reports::partial::{self, Loaded, PartialStore};
use crate::reports::request::{Basis, PassthroughRequest, ReportKind, ReportRequest};
use crate::reports::store::ReportStore;
use crate::reports::{allow, formats};
use crate::worker::calls::{guarded_call, GuardedOp};
use crate::worker::job::{JobCtx, SyncDeps};
use crate::{Error, Provider, Result};

/// Most contacts one Xero aged-receivables report asks about: Xero has no all-contacts aged report
/// in its API, so each contact with an open invoice costs one call (60 a minute and 5,000 a day per
/// organisation): 1,000 is a fifth of the org's day, read over about 17 minutes by a lineage of
/// follow-up jobs (see [`partial`]).
pub const XERO_MAX_AGED_CONTACTS: usize = 1000;
/// Xero's page size for the open-invoice listing (Xero allows up to 1,000; third-party figure).
const XERO_PAGE_SIZE: u32 = 1000;

/// Runs a report or passthrough job; the result is what the success event carries.
/// A report job stops before `deadline` (less the worker's margin) and hands over where it can
/// (see [`partial`]).
pub async fn execute(deps: &SyncDeps, job: &SyncJob, payload: Option<&Value>, deadline: DateTime<Utc>) -> Result<Value> {
    match job.operation {
        Operation::Report => report(deps, job, payload, deadline).await,
        Operation::Passthrough => passthrough(deps, job, payload).await,
        other => Err(Error::Internal(format!("{other:?} is not a report or passthrough job"))),
    }
}

/// The tenant, its connection for the job's org and the grant serving it.
async fn load(deps: &SyncDeps, job: &SyncJob, payload: Option<&Value>) -> Result<JobCtx> {
    let tenant = deps.tenants.get(&job.tenant_id).await?;
    if !tenant.provider_enabled(job.provider) {
        return Err(Error::ProviderNotEnabled(job.provider));
    }
    let conn = deps
        .grants
        .get_connection(&job.tenant_id, job.provider, &job.org_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no {} connection for org {}", job.provider, job.org_id)))?;
    let grant = deps
        .grants
        .get_grant(&job.tenant_id, job.provider, &conn.grant_id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("{} grant {}", job.provider, conn.grant_id)))?;
    Ok(JobCtx {
        job: job.clone(),
        provider: job.provider,
        org_id: job.org_id.clone(),
        // Not used by report and passthrough calls (they check their own scopes).
        entity: Entity::Account,
        grant_id: conn.grant_id,
        scopes: grant.scopes,
        payload: payload.cloned(),
        tenant,
    })
}

fn check_report_scope(ctx: &JobCtx, kind: ReportKind) -> Result<()> {
    if ctx.scopes.is_empty() {
        return Ok(());
    }
    let needed = report_scopes(ctx.provider, kind);
    if needed.iter().any(|n| ctx.scopes.iter().any(|g| g.eq_ignore_ascii_case(n))) {
        return Ok(());
    }
    Err(Error::MissingScope { provider: ctx.provider, scope: needed[0].to_string(), operation: format!("report {}", kind.as_str()) })
}

fn date(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

fn q(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

/// One GET through the guarded path; `audit_path` is what the audit record shows.
async fn get(deps: &SyncDeps, ctx: &JobCtx, segments: &[&str], query: Vec<(String, String)>, audit_path: String) -> Result<Value> {
    let org = ctx.org_id.clone();
    let segments: Vec<String> = segments.iter().map(|s| s.to_string()).collect();
    let gop = GuardedOp { name: "report", method: "GET", path: &audit_path, creates: false, once: false };
    let segments = &segments;
    let query = &query;
    guarded_call(deps, ctx, gop, |client: ProviderClient, tokens| {
        let org = org.clone();
        async move {
            let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
            raw::get_json(&client, &tokens, &org, &segs, query).await
        }
    })
    .await
}

async fn fetch(deps: &SyncDeps, ctx: &JobCtx, req: &ReportRequest, budget: Budget) -> Result<Fetched> {
    let org = ctx.org_id.as_str();
    let as_of = req.as_of.unwrap_or_else(|| Utc::now().date_naive());
    match ctx.provider {
        Provider::QuickBooks => {
            let method = match req.basis {
                Basis::Accrual => "Accrual",
                Basis::Cash => "Cash",
            };
            let (name, query) = match req.kind {
                ReportKind::ProfitAndLoss => (
                    "ProfitAndLoss",
                    q(&[
                        ("start_date", date(req.from.unwrap_or(as_of))),
                        ("end_date", date(req.to.unwrap_or(as_of))),
                        ("accounting_method", method.into()),
                    ]),
                ),
                ReportKind::BalanceSheet => {
                    let year_start = NaiveDate::from_ymd_opt(as_of.year(), 1, 1).unwrap_or(as_of);
                    (
                        "BalanceSheet",
                        q(&[("start_date", date(year_start)), ("end_date", date(as_of)), ("accounting_method", method.into())]),
                    )
                }
                // QuickBooks' summary ages in 30-day columns by default (current, 1 - 30, 31 - 60,
                // 61 - 90, 91 and over: third-party clients' parameter lists and samples, unconfirmed
                // in Intuit's reference); the parser checks the column titles before trusting them.
                ReportKind::AgedReceivables => ("AgedReceivables", q(&[("report_date", date(as_of))])),
            };
            let body = get(deps, ctx, &["reports", name], query, format!("/v3/company/{org}/reports/{name}")).await?;
            formats::quickbooks(req, org, &body).map(Fetched::Done)
        }
        Provider::Xero => {
            if req.kind == ReportKind::AgedReceivables {
                // Boxed: its state and nested guarded calls would otherwise sit on the polling
                // thread's stack beside every other job of the batch.
                return Box::pin(xero_aged(deps, ctx, req, as_of, budget)).await;
            }
            let currency = xero_currency(deps, ctx).await?;
            let payments_only = (req.basis == Basis::Cash).to_string();
            match req.kind {
                ReportKind::ProfitAndLoss => {
                    let query = q(&[
                        ("fromDate", date(req.from.unwrap_or(as_of))),
                        ("toDate", date(req.to.unwrap_or(as_of))),
                        ("paymentsOnly", payments_only),
                        ("standardLayout", "true".into()),
                    ]);
                    let body = get(deps, ctx, &["Reports", "ProfitAndLoss"], query, "/api.xro/2.0/Reports/ProfitAndLoss".into()).await?;
                    formats::xero(req, org, &body, &currency).map(Fetched::Done)
                }
                ReportKind::BalanceSheet => {
                    let query = q(&[("date", date(as_of)), ("paymentsOnly", payments_only), ("standardLayout", "true".into())]);
                    let body = get(deps, ctx, &["Reports", "BalanceSheet"], query, "/api.xro/2.0/Reports/BalanceSheet".into()).await?;
                    formats::xero(req, org, &body, &currency).map(Fetched::Done)
                }
                ReportKind::AgedReceivables => Err(Error::Internal("Xero aged receivables are read per contact".into())),
            }
        }
        Provider::Zoho => {
            // Zoho Books report paths and parameters are our assumption (unconfirmed).
            let cash = (req.basis == Basis::Cash).to_string();
            let (name, query) = match req.kind {
                ReportKind::ProfitAndLoss => (
                    "profitandloss",
                    q(&[("from_date", date(req.from.unwrap_or(as_of))), ("to_date", date(req.to.unwrap_or(as_of))), ("cash_based", cash)]),
                ),
                ReportKind::BalanceSheet => ("balancesheet", q(&[("to_date", date(as_of)), ("cash_based", cash)])),
                ReportKind::AgedReceivables => ("agedreceivables", q(&[("date", date(as_of))])),
            };
            let body = get(deps, ctx, &["reports", name], query, format!("/books/v3/reports/{name}")).await?;
            formats::zoho(req, org, &body).map(Fetched::Done)
        }
    }
}

/// How a report job ended: the report, or a hand-over to a follow-up job (the result to record).
enum Fetched {
    Done(Report),
    Continued(Value),
}

/// What a job may spend: it hands over when less than the worker's margin is left before this.
#[derive(Debug, Clone, Copy)]
struct Budget {
    deadline: DateTime<Utc>,
    margin: chrono::Duration,
}

impl Budget {
    fn near(&self) -> bool {
        Utc::now() + self.margin >= self.deadline
    }
}

/// The contacts with an open (AUTHORISED) sales invoice, in the order Xero lists them.
async fn xero_open_contacts(deps: &SyncDeps, ctx: &JobCtx) -> Result<Vec<(String, String)>> {
    let mut contacts: Vec<(String, String)> = Vec::new();
    let mut page = 1u32;
    loop {
        let query = q(&[
            ("where", "Type==\"ACCREC\" AND Status==\"AUTHORISED\"".into()),
            ("page", page.to_string()),
            ("pageSize", XERO_PAGE_SIZE.to_string()),
        ]);
        let body = get(deps, ctx, &["Invoices"], query, "/api.xro/2.0/Invoices".into()).await?;
        let items = body.get("Invoices").and_then(Value::as_array).cloned().unwrap_or_default();
        for inv in &items {
            let c = inv.get("Contact");
            if let Some(id) = c.and_then(|c| c.get("ContactID")).and_then(Value::as_str) {
                if !contacts.iter().any(|(i, _)| i.eq_ignore_ascii_case(id)) {
                    let name = c.and_then(|c| c.get("Name")).and_then(Value::as_str).unwrap_or_default();
                    contacts.push((id.to_string(), name.to_string()));
                }
            }
        }
        let more = match body.get("pagination") {
            Some(p) => p.get("pageCount").and_then(Value::as_u64).is_some_and(|n| (page as u64) < n),
            None => items.len() as u32 >= XERO_PAGE_SIZE,
        };
        if !more {
            return Ok(contacts);
        }
        page += 1;
    }
}

/// Xero's API has aged receivables per contact only (`GET Reports/AgedReceivablesByContact`,
/// `contactId` required: Xero's OpenAPI, xero_accounting.yaml): the contacts with an open sales
/// invoice are listed first, then each one's report is read. A contact whose invoices were all paid
/// since `as_of` is not listed, so a report as of a past date can miss it.
///
/// One call per contact does not fit one invocation for a few hundred contacts, so the job keeps
/// its progress in [`partial`] and, when its deadline nears (or the guard asks it to wait), stops
/// there: near the deadline it hands over to a follow-up job; on a wait or a failure it stores its
/// progress and returns the error, so the same job resumes where it stopped when SQS brings it
/// back. Either way no contact is asked about twice unless the process dies between two saves.
async fn xero_aged(deps: &SyncDeps, ctx: &JobCtx, req: &ReportRequest, as_of: NaiveDate, budget: Budget) -> Result<Fetched> {
    let job = &ctx.job;
    let parts = PartialStore::new(deps.db.clone(), deps.store.table());
    let mut fresh = false;
    // The AWS SDK's futures are large; boxed so a batch of jobs polled together fits the stack.
    let mut state = match Box::pin(parts.load(job, Utc::now())).await? {
        Loaded::HandedOver(key) => {
            // A redelivery of a job that already handed over: make sure the follow-up exists (its
            // key makes a second copy a duplicate) and end as the first run did.
            let next = SyncJob { idempotency_key: key, requested_at: Utc::now(), ..job.clone() };
            Box::pin(send_follow_up(deps, &next, req)).await?;
            return Ok(Fetched::Continued(continued_json(&next)));
        }
        Loaded::Mine(s) if s.as_of == as_of => s,
        Loaded::Mine(_) | Loaded::Fresh => {
            let currency = Box::pin(xero_currency(deps, ctx)).await?;
            let contacts = Box::pin(xero_open_contacts(deps, ctx)).await?;
            if contacts.len() > XERO_MAX_AGED_CONTACTS {
                return Err(Error::InvalidInput(format!(
                    "{} contacts have open invoices; a Xero aged receivables report covers at most {XERO_MAX_AGED_CONTACTS}",
                    contacts.len()
                )));
            }
            fresh = true;
            partial::AgedState { as_of, currency, contacts, next: 0, rows: Vec::new() }
        }
    };
    let scale = crate::money::currency_scale(&state.currency);
    let started_at = state.next;
    // A job that listed the contacts has moved the report on even before its first contact.
    let mut listed_now = fresh;
    while state.next < state.contacts.len() {
        // Hand over only after some progress, so every job moves the report on.
        if (state.next > started_at || listed_now) && budget.near() {
            let next = partial::follow_up(job, state.next);
            Box::pin(parts.save(job, &state, &next.idempotency_key, Utc::now())).await?;
            Box::pin(send_follow_up(deps, &next, req)).await?;
            tracing::info!(done = state.next, of = state.contacts.len(), next_key = %next.idempotency_key, "deadline near: report continues in a follow-up job");
            return Ok(Fetched::Continued(continued_json(&next)));
        }
        listed_now = false;
        let (id, name) = state.contacts[state.next].clone();
        let query = q(&[("contactId", id.clone()), ("date", date(as_of))]);
        let got = Box::pin(get(
            deps,
            ctx,
            &["Reports", "AgedReceivablesByContact"],
            query,
            "/api.xro/2.0/Reports/AgedReceivablesByContact".into(),
        ))
        .await
        .and_then(|body| formats::xero_aged_contact(&body, &id, &name, as_of, scale));
        match got {
            Ok(row) => {
                if row.amount != 0 {
                    state.rows.push(row);
                }
                state.next += 1;
            }
            Err(e) => {
                // A wait (rate limit, breaker) or a failure: keep what was read, so the retry of
                // this same job goes on from here instead of asking again.
                if state.next > started_at || fresh {
                    if let Err(se) = Box::pin(parts.save(job, &state, &job.idempotency_key, Utc::now())).await {
                        tracing::warn!(code = %se.code(), error = %se, "could not store the report's progress");
                    }
                }
                return Err(e);
            }
        }
    }
    let mut total = 0i64;
    for r in &state.rows {
        total = total.checked_add(r.amount).ok_or_else(|| formats::overflow(Provider::Xero))?;
    }
    let mut report = Report {
        kind: req.kind,
        provider: Provider::Xero,
        org_id: ctx.org_id.clone(),
        basis: req.basis,
        period: crate::reports::model::Period { from: None, to: None, as_of: Some(as_of) },
        currency: state.currency.clone(),
        sections: vec![crate::reports::model::Section {
            title: "Receivables".into(),
            class: SectionClass::Receivables,
            rows: state.rows,
            total,
        }],
        totals: Default::default(),
        ageing: None,
    };
    report.complete_totals()?;
    Ok(Fetched::Done(report))
}

/// The organisation's base currency (Xero's reports do not state it).
async fn xero_currency(deps: &SyncDeps, ctx: &JobCtx) -> Result<String> {
    let orgs = get(deps, ctx, &["Organisation"], vec![], "/api.xro/2.0/Organisation".into()).await?;
    Ok(orgs
        .get("Organisations")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(|o| o.get("BaseCurrency"))
        .and_then(Value::as_str)
        .unwrap_or("USD")
        .to_string())
}

async fn send_follow_up(deps: &SyncDeps, next: &SyncJob, req: &ReportRequest) -> Result<()> {
    let request = serde_json::to_value(req).map_err(|e| Error::Internal(format!("report request: {e}")))?;
    let body = partial::message_body(next, &request)?;
    deps.sqs.send_message().queue_url(deps.queues.url(next.priority)).message_body(body).send().await.map_err(|e| {
        Error::queue(format!("SendMessage(report follow-up): {}", aws_smithy_types::error::display::DisplayErrorContext(&e)))
    })?;
    Ok(())
}

fn continued_json(next: &SyncJob) -> Value {
    json!({"operation": "report", "continued": true, "next_idempotency_key": next.idempotency_key})
}

async fn report(deps: &SyncDeps, job: &SyncJob, payload: Option<&Value>, deadline: DateTime<Utc>) -> Result<Value> {
    let req = ReportRequest::from_payload(payload)?;
    let ctx = load(deps, job, payload).await?;
    check_report_scope(&ctx, req.kind)?;
    let margin = chrono::Duration::from_std(deps.settings.deadline_margin).unwrap_or(chrono::Duration::seconds(20));
    let report = match Box::pin(fetch(deps, &ctx, &req, Budget { deadline, margin })).await? {
        Fetched::Done(r) => r,
        Fetched::Continued(v) => return Ok(v),
    };
    let store = ReportStore::new(deps.db.clone(), deps.store.table());
    // Stored under the app's key (the lineage root), whichever job of the lineage finished it.
    let loc = store.put_report(&job.tenant_id, &report, lineage_root(&job.idempotency_key), Utc::now()).await?;
    tracing::info!(kind = req.kind.as_str(), sections = report.sections.len(), sk = %loc.sk, "report stored");
    Ok(json!({
        "operation": "report",
        "kind": req.kind,
        "basis": req.basis,
        "currency": report.currency,
        "totals": report.totals,
        "location": loc,
    }))
}

async fn passthrough(deps: &SyncDeps, job: &SyncJob, payload: Option<&Value>) -> Result<Value> {
    let req = PassthroughRequest::from_payload(payload)?;
    // Before anything else: a refused call reads nothing and calls no one.
    let segments = allow::check(job.provider, &req)?;
    let ctx = load(deps, job, payload).await?;
    let rel = segments.join("/");
    let audit_path = match ctx.provider {
        Provider::QuickBooks => format!("/v3/company/{}/{rel}", ctx.org_id),
        Provider::Xero => format!("/api.xro/2.0/{rel}"),
        Provider::Zoho => format!("/books/v3/{rel}"),
    };
    let query: Vec<(String, String)> = req.query.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let org = ctx.org_id.clone();
    let gop = GuardedOp { name: "passthrough", method: "GET", path: &audit_path, creates: false, once: false };
    let (segments, query) = (&segments, &query);
    let answer = guarded_call(deps, &ctx, gop, |client: ProviderClient, tokens| {
        let org = org.clone();
        async move {
            let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
            raw::call(&client, &tokens, &org, reqwest::Method::GET, &segs, query, None).await
        }
    })
    .await?;
    let store = ReportStore::new(deps.db.clone(), deps.store.table());
    let (loc, encoding) =
        store.put_answer(&job.tenant_id, job.provider, &job.org_id, &job.idempotency_key, &req.method, &rel, &answer, Utc::now()).await?;
    tracing::info!(status = answer.status, bytes = answer.body.len(), encoding, sk = %loc.sk, "passthrough answer stored");
    Ok(json!({
        "operation": "passthrough",
        "method": req.method,
        "path": rel,
        "status": answer.status,
        "body_bytes": answer.body.len(),
        // Kept for v1 readers: an answer too large to store is passthrough.failed (4002) instead.
        "truncated": false,
        "body_encoding": encoding,
        "location": loc,
    }))
}
