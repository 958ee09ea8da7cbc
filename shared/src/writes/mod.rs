//! Writes the assistant can make: create, update, void and delete, asked for in the common model
//! (`schemas/write-request.v1.json`) and translated per provider (`wire`), checked against the
//! tenant's stored books before anything is sent (`check`).
//!
//! The worker runs them (`worker::write`): it decides who may write, names the version a change is
//! based on, recognises its own earlier attempt after a crash, stores the provider's answer and
//! announces it. This module holds what needs no I/O, so every rule here is tested without a
//! provider.

pub mod check;
pub mod wire;

use chrono::NaiveDate;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::providers::model::Entity;
use crate::{Error, Result};

/// What a write does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    Void,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Void => "void",
            Action::Delete => "delete",
        }
    }
}

/// A push job's payload: one write (`schemas/write-request.v1.json`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteRequest {
    pub action: Action,
    /// The app's user who asked; their role in the tenant decides whether they may.
    pub requested_by: String,
    /// Create and update: the record in the common model (fields absent from an update are left
    /// as they are; `lines`, when present, replace every line).
    #[serde(default)]
    pub record: Option<Value>,
    /// Create and update: the provider's own JSON instead of `record`, sent as it is (the escape
    /// hatch; only the required checks run).
    #[serde(default)]
    pub raw: Option<Value>,
    /// Update, void, delete: the provider's id of the record.
    #[serde(default)]
    pub provider_id: Option<String>,
    /// Update, void, delete: the record's `version` the change is based on (as the records API
    /// shows it). A record that moved on since is a conflict, never overwritten.
    #[serde(default)]
    pub version: Option<String>,
    /// Check and translate only: nothing is sent, stored or announced as written.
    #[serde(default)]
    pub dry_run: bool,
}

/// The entities writes take today.
pub fn writable(entity: Entity) -> bool {
    matches!(
        entity,
        Entity::Invoice
            | Entity::Bill
            | Entity::CreditNote
            | Entity::Contact
            | Entity::Payment
            | Entity::BillPayment
            | Entity::Journal
            | Entity::BankTransaction
    )
}

impl WriteRequest {
    /// Parses and checks the request's shape; what its record says is checked later (`check`),
    /// where each problem names its field.
    pub fn parse(payload: Option<&Value>, entity: Entity) -> Result<WriteRequest> {
        let payload = payload.ok_or_else(|| Error::InvalidInput("push jobs need a payload: a write request".into()))?;
        let req: WriteRequest = serde_json::from_value(payload.clone())
            .map_err(|e| Error::InvalidInput(format!("the payload is not a write request (schemas/write-request.v1.json): {e}")))?;
        let mut problems = Vec::new();
        if !writable(entity) {
            problems.push(format!(
                "writes take invoice, bill, credit_note, contact, payment, bill_payment, journal and bank_transaction, not {entity}"
            ));
        }
        if req.requested_by.is_empty() || req.requested_by.len() > 128 {
            problems.push("requested_by must be 1-128 characters".to_string());
        }
        match req.action {
            Action::Create | Action::Update => match (&req.record, &req.raw) {
                (Some(Value::Object(_)), None) | (None, Some(Value::Object(_))) => {}
                (Some(_), Some(_)) => problems.push("send record or raw, not both".into()),
                _ => problems.push(format!("{} needs record (an object) or raw (an object)", req.action.as_str())),
            },
            Action::Void | Action::Delete => {
                if req.record.is_some() || req.raw.is_some() {
                    problems.push(format!("{} takes no record", req.action.as_str()));
                }
            }
        }
        if req.action == Action::Create {
            if req.provider_id.is_some() || req.version.is_some() {
                problems.push("create names no provider_id or version".into());
            }
        } else {
            if !req.provider_id.as_deref().is_some_and(|id| !id.is_empty() && id.len() <= 255) {
                problems.push(format!("{} needs provider_id (1-255 characters)", req.action.as_str()));
            }
            if !req.version.as_deref().is_some_and(|v| !v.is_empty() && v.len() <= 64) {
                problems.push(format!("{} needs the version it is based on (the record's `version`)", req.action.as_str()));
            }
        }
        if problems.is_empty() {
            Ok(req)
        } else {
            Err(Error::InvalidInput(format!("write request rejected: {}", problems.join("; "))))
        }
    }
}

/// One reason a write is refused, naming the field (a JSON path into the request's `record`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub field: String,
    /// Stable: `required`, `invalid`, `unsupported`, `unknown_contact`, `unknown_account`,
    /// `inactive_account`, `unknown_tax_code`, `currency_mismatch`, `line_total_mismatch`,
    /// `subtotal_mismatch`, `status_forbids`.
    pub code: &'static str,
    pub message: String,
}

impl Problem {
    pub fn new(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Problem {
        Problem { field: field.into(), code, message: message.into() }
    }
}

/// Decimal text: a JSON string or number, kept as the text it is (quantities and prices may have
/// more decimals than the currency).
fn decimal_text<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(serde::de::Error::custom("expected decimal text or a number")),
    }
}

/// A reference to a record of the tenant's books: the provider's id, or a code the provider's
/// books know it by (an account code, an item code).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefInput {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
}

/// The status a document is written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InputStatus {
    Draft,
    AwaitingApproval,
    /// Approved and owed (Xero AUTHORISED).
    Open,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineInput {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "decimal_text")]
    pub quantity: Option<String>,
    #[serde(default, deserialize_with = "decimal_text")]
    pub unit_price: Option<String>,
    /// Minor units of the document's currency, before tax.
    #[serde(default)]
    pub amount: Option<i64>,
    #[serde(default)]
    pub account: Option<RefInput>,
    #[serde(default)]
    pub item: Option<RefInput>,
    /// The provider's tax code (a stored tax rate's `code`).
    #[serde(default)]
    pub tax_code: Option<String>,
}

/// Whose a credit note is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CreditKind {
    /// A credit to a customer (QuickBooks CreditMemo, Xero ACCRECCREDIT, Zoho creditnote).
    Sales,
    /// A credit from a supplier (QuickBooks VendorCredit, Xero ACCPAYCREDIT, Zoho vendor credit).
    Purchase,
}

/// An invoice, a bill or a credit note in the common model (the writable part of
/// `records.v1.json#/$defs/Document`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentInput {
    /// Credit notes only: a customer's (`sales`) or a supplier's (`purchase`). Required to create
    /// one; an update takes it from the stored record.
    #[serde(default)]
    pub kind: Option<CreditKind>,
    /// The customer of an invoice, the supplier of a bill (provider id).
    #[serde(default)]
    pub contact: Option<RefInput>,
    #[serde(default)]
    pub number: Option<String>,
    #[serde(default)]
    pub reference: Option<String>,
    #[serde(default)]
    pub issue_date: Option<NaiveDate>,
    #[serde(default)]
    pub due_date: Option<NaiveDate>,
    /// ISO 4217.
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub status: Option<InputStatus>,
    #[serde(default)]
    pub lines: Option<Vec<LineInput>>,
    /// What the app expects the lines to add up to before tax (minor units): refused if they do not.
    #[serde(default)]
    pub subtotal: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactInput {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub tax_number: Option<String>,
    /// ISO 4217: the currency the contact trades in.
    #[serde(default)]
    pub currency: Option<String>,
}

/// What a payment pays: a stored document and the amount applied to it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppliedInput {
    pub document: RefInput,
    /// Minor units.
    pub amount: i64,
}

/// A payment received from a customer (entity `payment`) or made to a supplier (`bill_payment`),
/// in the common model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentInput {
    /// The customer who paid, or the supplier paid (provider id).
    #[serde(default)]
    pub contact: Option<RefInput>,
    #[serde(default)]
    pub date: Option<NaiveDate>,
    /// Minor units.
    #[serde(default)]
    pub amount: Option<i64>,
    #[serde(default)]
    pub currency: Option<String>,
    /// The bank (or clearing) account it went into, or was paid from.
    #[serde(default)]
    pub account: Option<RefInput>,
    #[serde(default)]
    pub reference: Option<String>,
    /// The invoices (bills) it pays.
    #[serde(default)]
    pub applied_to: Option<Vec<AppliedInput>>,
}

/// The state a manual journal is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JournalStatus {
    /// Xero DRAFT: saved, not in the ledger.
    Draft,
    /// In the ledger (Xero POSTED; QuickBooks and Zoho journals are posted when made).
    Posted,
}

/// One line of a journal: an account and either a debit or a credit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalLineInput {
    #[serde(default)]
    pub account: Option<RefInput>,
    #[serde(default)]
    pub description: Option<String>,
    /// Minor units; a line has a debit or a credit, not both.
    #[serde(default)]
    pub debit: Option<i64>,
    #[serde(default)]
    pub credit: Option<i64>,
    #[serde(default)]
    pub tax_code: Option<String>,
}

/// A manual journal entry (entity journal), in the common model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalInput {
    #[serde(default)]
    pub date: Option<NaiveDate>,
    #[serde(default)]
    pub narration: Option<String>,
    #[serde(default)]
    pub reference: Option<String>,
    /// ISO 4217.
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub status: Option<JournalStatus>,
    /// All the lines (an update replaces them all); debits must equal credits.
    #[serde(default)]
    pub lines: Option<Vec<JournalLineInput>>,
}

/// Which way money moves in a bank transaction written through the common model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BankWriteKind {
    /// Money out of the bank account: an expense (QuickBooks Purchase, Xero SPEND, Zoho expense).
    Spend,
    /// Money into it without an invoice (QuickBooks Deposit, Xero RECEIVE, Zoho deposit).
    Receive,
}

/// A bank transaction or expense (entity bank_transaction), in the common model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BankTransactionInput {
    /// Required.
    #[serde(default)]
    pub kind: Option<BankWriteKind>,
    /// The bank (or card) account the money leaves or enters: a stored account. Required.
    #[serde(default)]
    pub bank_account: Option<RefInput>,
    /// The payee (spend) or payer (receive): a stored contact.
    #[serde(default)]
    pub contact: Option<RefInput>,
    #[serde(default)]
    pub date: Option<NaiveDate>,
    #[serde(default)]
    pub reference: Option<String>,
    /// ISO 4217.
    #[serde(default)]
    pub currency: Option<String>,
    /// Where the money went (spend) or came from (receive): each line an account and an amount.
    #[serde(default)]
    pub lines: Option<Vec<LineInput>>,
    /// What the app expects the lines to add up to before tax (minor units): refused if they do not.
    #[serde(default)]
    pub subtotal: Option<i64>,
}

/// A request's record, read for its entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordInput {
    Document(DocumentInput),
    Contact(ContactInput),
    Payment(PaymentInput),
    Journal(JournalInput),
    BankTransaction(BankTransactionInput),
}

impl RecordInput {
    /// Reads `record` for `entity`; a field of the wrong shape or an unknown field is a problem
    /// naming where it is.
    pub fn parse(entity: Entity, record: &Value) -> std::result::Result<RecordInput, Problem> {
        let named = |e: serde_json::Error| {
            let msg = e.to_string();
            // serde names the unknown field in backticks; that is the field to point at.
            let field = msg.split('`').nth(1).map(|f| format!("record.{f}")).unwrap_or_else(|| "record".into());
            Problem::new(field, "invalid", msg)
        };
        match entity {
            Entity::Invoice | Entity::Bill | Entity::CreditNote => {
                serde_json::from_value(record.clone()).map(RecordInput::Document).map_err(named)
            }
            Entity::Contact => serde_json::from_value(record.clone()).map(RecordInput::Contact).map_err(named),
            Entity::Payment | Entity::BillPayment => serde_json::from_value(record.clone()).map(RecordInput::Payment).map_err(named),
            Entity::Journal => serde_json::from_value(record.clone()).map(RecordInput::Journal).map_err(named),
            Entity::BankTransaction => serde_json::from_value(record.clone()).map(RecordInput::BankTransaction).map_err(named),
            other => Err(Problem::new("record", "unsupported", format!("writes do not take {other}"))),
        }
    }
}

/// `minor` units at `scale` decimals as decimal text (`12345`, 2 -> `"123.45"`).
pub fn format_minor(minor: i64, scale: u32) -> String {
    let neg = minor < 0;
    let abs = minor.unsigned_abs();
    if scale == 0 {
        return format!("{}{abs}", if neg { "-" } else { "" });
    }
    let div = 10u64.pow(scale);
    format!("{}{}.{:0width$}", if neg { "-" } else { "" }, abs / div, abs % div, width = scale as usize)
}

/// Decimal text as (digits, decimals): at most 18 significant digits and 9 decimals, so products
/// stay exact in i128.
pub fn decimal(text: &str) -> Option<(i128, u32)> {
    let t = text.trim();
    let (neg, t) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if (int.is_empty() && frac.is_empty()) || !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if frac.len() > 9 || int.trim_start_matches('0').len() + frac.len() > 18 {
        return None;
    }
    let mut v: i128 = 0;
    for b in int.bytes().chain(frac.bytes()) {
        v = v * 10 + (b - b'0') as i128;
    }
    Some((if neg { -v } else { v }, frac.len() as u32))
}

/// quantity x unit price in minor units at `scale`, rounded half away from zero; None if it does
/// not fit.
pub fn line_amount(quantity: &str, unit_price: &str, scale: u32) -> Option<i64> {
    let (q, qs) = decimal(quantity)?;
    let (p, ps) = decimal(unit_price)?;
    let product = q.checked_mul(p)?;
    let decimals = qs + ps;
    let minor = if decimals >= scale {
        let div = 10i128.pow(decimals - scale);
        let (quot, rem) = (product / div, product % div);
        if rem.abs() * 2 >= div {
            quot + product.signum()
        } else {
            quot
        }
    } else {
        product.checked_mul(10i128.pow(scale - decimals))?
    };
    i64::try_from(minor).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn line_amounts_are_exact_and_round_half_away_from_zero() {
        assert_eq!(line_amount("3", "19.99", 2), Some(5997));
        assert_eq!(line_amount("1.5", "0.333", 2), Some(50), "0.4995 rounds to 0.50");
        assert_eq!(line_amount("-2", "0.125", 2), Some(-25));
        assert_eq!(line_amount("2", "1500", 0), Some(3000));
        assert_eq!(line_amount("0.1", "0.2", 3), Some(20));
        assert_eq!(line_amount("1e3", "1", 2), None);
        assert_eq!(line_amount("999999999999999999", "999999999999999999", 2), None);
        assert_eq!(format_minor(12345, 2), "123.45");
        assert_eq!(format_minor(-5, 2), "-0.05");
        assert_eq!(format_minor(7, 0), "7");
        assert_eq!(format_minor(1234, 3), "1.234");
    }

    #[test]
    fn requests_are_checked_for_shape_before_anything_else() {
        let ok = |v: Value, e| WriteRequest::parse(Some(&v), e);
        assert!(ok(json!({"action": "create", "requested_by": "u1", "record": {"name": "Amy"}}), Entity::Contact).is_ok());
        assert!(ok(json!({"action": "void", "requested_by": "u1", "provider_id": "12", "version": "3"}), Entity::Invoice).is_ok());
        for (bad, entity) in [
            (json!({"action": "create", "requested_by": "u1"}), Entity::Invoice),
            (json!({"action": "create", "requested_by": "u1", "record": {}, "raw": {}}), Entity::Invoice),
            (json!({"action": "update", "requested_by": "u1", "record": {}, "provider_id": "1"}), Entity::Invoice),
            (json!({"action": "void", "requested_by": "", "provider_id": "1", "version": "1"}), Entity::Invoice),
            (json!({"action": "delete", "requested_by": "u", "provider_id": "1", "version": "1", "record": {}}), Entity::Invoice),
            (json!({"action": "create", "requested_by": "u", "record": {}, "provider_id": "9"}), Entity::Invoice),
            (json!({"action": "create", "requested_by": "u", "record": {}}), Entity::Account),
            (json!({"action": "merge", "requested_by": "u", "record": {}}), Entity::Invoice),
            (json!({"action": "create", "requested_by": "u", "record": {}, "extra": 1}), Entity::Invoice),
            (json!({"DisplayName": "a legacy raw payload"}), Entity::Contact),
        ] {
            let e = ok(bad.clone(), entity).unwrap_err();
            assert_eq!(e.code(), crate::ErrorCode::InvalidInput, "{bad}");
        }
        assert!(WriteRequest::parse(None, Entity::Invoice).is_err());
    }

    #[test]
    fn a_record_field_of_the_wrong_shape_is_named() {
        let p = RecordInput::parse(Entity::Invoice, &json!({"contact": {"id": "1"}, "colour": "red"})).unwrap_err();
        assert_eq!((p.field.as_str(), p.code), ("record.colour", "invalid"));
        let p = RecordInput::parse(Entity::Invoice, &json!({"lines": [{"quantity": [1]}]})).unwrap_err();
        assert_eq!(p.code, "invalid");
        let r = RecordInput::parse(Entity::Bill, &json!({"lines": [{"quantity": 2, "unit_price": "1.50"}]})).unwrap();
        let RecordInput::Document(d) = r else { panic!("a document") };
        assert_eq!(d.lines.unwrap()[0].quantity.as_deref(), Some("2"));
    }
}

#[cfg(test)]
mod contract {
    use super::*;

    /// Every push example job's payload is a write request the worker takes, and satisfies
    /// schemas/write-request.v1.json; the schema's actions and record fields are the code's.
    #[test]
    fn example_push_jobs_are_write_requests() {
        let schema: Value = serde_json::from_str(include_str!("../../../schemas/write-request.v1.json")).unwrap();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/examples");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if !name.starts_with("job-push") {
                continue;
            }
            let job: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let entity: Entity = job["entity"].as_str().unwrap().parse().unwrap();
            let payload = &job["payload"];
            crate::events::check_against_schema(&schema, payload).unwrap_or_else(|e| panic!("{name}: {e}"));
            let req = WriteRequest::parse(Some(payload), entity).unwrap_or_else(|e| panic!("{name}: {e}"));
            if let Some(r) = &req.record {
                RecordInput::parse(entity, r).unwrap_or_else(|p| panic!("{name}: {p:?}"));
            }
            n += 1;
        }
        assert!(n >= 3, "examples found: {n}");
        let actions: Vec<&str> = schema["properties"]["action"]["enum"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        assert_eq!(actions, ["create", "update", "void", "delete"]);
        // The schema's document fields are the ones the code reads (an unknown field is refused).
        let fields: Vec<&String> = schema["$defs"]["Document"]["properties"].as_object().unwrap().keys().collect();
        let mut record = serde_json::Map::new();
        for f in &fields {
            record.insert((*f).clone(), Value::Null);
        }
        RecordInput::parse(Entity::Invoice, &Value::Object(record))
            .unwrap_or_else(|p| panic!("schema field the code does not take: {p:?}"));
        // And so are the journal's and the payment's.
        for (def, entity) in [("Journal", Entity::Journal), ("Payment", Entity::BillPayment), ("BankTransaction", Entity::BankTransaction)]
        {
            let record: serde_json::Map<String, Value> =
                schema["$defs"][def]["properties"].as_object().unwrap().keys().map(|k| (k.clone(), Value::Null)).collect();
            RecordInput::parse(entity, &Value::Object(record)).unwrap_or_else(|p| panic!("{def} field the code does not take: {p:?}"));
        }
    }
}
