//! What the worker needs to know of report and passthrough jobs besides running them
//! (`crate::worker::report`): the message field of their request, its checks, their events, and the
//! scopes a report needs.

use serde_json::{json, Value};

use crate::events::EventType;
use crate::jobs::{lineage_root, Operation, SyncJob};
use crate::reports::request::{PassthroughRequest, ReportKind, ReportRequest};
use crate::{Error, Provider, Result};

/// The message field carrying the job's request: `report`, `passthrough`, or a push's `payload`.
pub fn payload_key(body: &Value) -> &'static str {
    match body.get("operation").and_then(Value::as_str) {
        Some("report") => "report",
        Some("passthrough") => "passthrough",
        _ => "payload",
    }
}

/// The checks of a report or passthrough job's request. They run when the job runs (not with the
/// job's own fields), so a bad request is announced to the app as `report.failed` /
/// `passthrough.failed` with code 4000 rather than only dead-lettered.
pub fn validate(job: &SyncJob, payload: Option<&Value>) -> Result<()> {
    match job.operation {
        Operation::Report => ReportRequest::from_payload(payload).map(|_| ()),
        Operation::Passthrough => PassthroughRequest::from_payload(payload).map(|_| ()),
        _ => Ok(()),
    }
}

/// Report and passthrough jobs announce their own event types; everything else keeps its own.
pub fn event_type_for(job: &SyncJob, t: EventType) -> EventType {
    match (job.operation, t) {
        (Operation::Report, EventType::SyncFailed) => EventType::ReportFailed,
        (Operation::Passthrough, EventType::SyncFailed) => EventType::PassthroughFailed,
        // A write that fails for good (dead-lettered, or parked past its limit) is a failed write.
        (Operation::Push, EventType::SyncFailed) => EventType::WriteFailed,
        _ => t,
    }
}

/// The success event of a finished report or passthrough job (`None` for other jobs).
pub fn completion_event(job: &SyncJob, result: &Value) -> Option<(EventType, Value)> {
    // A job that handed over announces nothing: its lineage's last job does.
    if result.get("continued").and_then(Value::as_bool) == Some(true) {
        return None;
    }
    let t = match job.operation {
        Operation::Report => EventType::ReportReady,
        Operation::Passthrough => EventType::PassthroughReady,
        _ => return None,
    };
    let mut data = result.clone();
    if let Some(o) = data.as_object_mut() {
        o.insert("job_id".into(), json!(job.job_id));
        // The app's key, also when a follow-up job finished the report.
        o.insert("idempotency_key".into(), json!(lineage_root(&job.idempotency_key)));
        o.insert("org_id".into(), json!(job.org_id));
    }
    Some((t, data))
}

/// `data` of `report.failed` / `passthrough.failed`.
pub fn failed_data(job: &SyncJob, err: &Error, parked: bool) -> Value {
    let mut v = json!({
        "job_id": job.job_id,
        "idempotency_key": lineage_root(&job.idempotency_key),
        "org_id": job.org_id,
        "operation": job.operation,
        "error_code": err.code().as_u16(),
        // A fixed sentence per code: the error's own text can carry provider answers and internals.
        "message": err.code().public_message(),
        "retryable": err.is_retryable(),
        "parked": parked,
    });
    if let Some(d) = err.public_detail() {
        v["detail"] = d;
    }
    v
}

/// The scopes (any one) a report needs. Xero's granular report scopes are named by third parties
/// only (`accounting.reports.aged.read` by Apideck; the profit-and-loss and balance-sheet names
/// follow the same pattern): unconfirmed. Zoho's `ZohoBooks.reports.READ` is unconfirmed too.
pub fn report_scopes(provider: Provider, kind: ReportKind) -> Vec<&'static str> {
    match provider {
        Provider::QuickBooks => vec!["com.intuit.quickbooks.accounting"],
        Provider::Xero => {
            let granular = match kind {
                ReportKind::ProfitAndLoss => "accounting.reports.profitandloss.read",
                ReportKind::BalanceSheet => "accounting.reports.balancesheet.read",
                ReportKind::AgedReceivables => "accounting.reports.aged.read",
            };
            vec![granular, "accounting.reports.read"]
        }
        Provider::Zoho => vec!["ZohoBooks.reports.READ", "ZohoBooks.reports.ALL", "ZohoBooks.fullaccess.all"],
    }
}
