//! Changes to records that already exist: update, void and delete, in each provider's own wire
//! format and with each provider's own refusals. Creates stay in the provider modules.
//!
//! Rule for everything here: never kinder than the provider. Where a provider's documentation does
//! not say what it refuses, the sandbox refuses (and says "unconfirmed" where the rule is defined),
//! so a client written against the sandbox handles the refusal the real provider may send.

pub mod bank;
pub mod quickbooks;
pub mod xero;
pub mod zoho;

use serde_json::Value;

/// Cents of a stored or sent amount (0 when absent or not exact).
pub(crate) fn cents(v: &Value) -> i64 {
    v.as_f64().and_then(crate::lines::exact_cents).unwrap_or(0)
}

/// Copies `patch`'s members over `base` (one level, as the providers' partial updates do).
pub(crate) fn merge_top(base: &Value, patch: &Value) -> Value {
    let mut out = base.clone();
    if let (Some(o), Some(p)) = (out.as_object_mut(), patch.as_object()) {
        for (k, v) in p {
            o.insert(k.clone(), v.clone());
        }
    }
    out
}

use axum::routing::{post, put};
use axum::Router;

use crate::model::Entity;
use crate::state::AppState;

/// The write routes that are not the providers' create routes (added by `crate::router` before its
/// provider middleware, so faults, rate limits and counters apply to them too).
pub fn routes(r: Router<AppState>) -> Router<AppState> {
    let mut r = r;
    for e in [Entity::Invoice, Entity::Contact, Entity::Payment, Entity::CreditNote, Entity::Journal, Entity::BankTransaction] {
        r = r.route(&format!("/xero/api.xro/2.0/{}/{{id}}", e.xero_name()), post(move |s, p, h, b| xero::post_by_id(s, e, p, h, b)));
    }
    const Z: &str = "/zoho/api/{dc}/books/v3";
    for e in [
        Entity::Invoice,
        Entity::Bill,
        Entity::Contact,
        Entity::CreditNote,
        Entity::VendorCredit,
        Entity::Journal,
        Entity::Payment,
        Entity::BillPayment,
        Entity::Expense,
        Entity::BankTransaction,
    ] {
        r = r.route(&format!("{Z}/{}/{{id}}", e.zoho_plural()), put(move |s, p, q, h, b| zoho::update(s, e, p, q, h, b)));
    }
    r.route(&format!("{Z}/invoices/{{id}}/status/void"), post(zoho::void_invoice))
        .route(&format!("{Z}/invoices/{{id}}/status/draft"), post(zoho::draft_invoice))
        .route(&format!("{Z}/bills/{{id}}/status/void"), post(zoho::void_bill))
        .route(&format!("{Z}/creditnotes/{{id}}/status/void"), post(|s, p, q, h| zoho::void_credit(s, Entity::CreditNote, p, q, h)))
        .route(&format!("{Z}/vendorcredits/{{id}}/status/void"), post(|s, p, q, h| zoho::void_credit(s, Entity::VendorCredit, p, q, h)))
        .route(&format!("{Z}/contacts/{{id}}/inactive"), post(|s, p, q, h| zoho::contact_status(s, false, p, q, h)))
        .route(&format!("{Z}/contacts/{{id}}/active"), post(|s, p, q, h| zoho::contact_status(s, true, p, q, h)))
}
