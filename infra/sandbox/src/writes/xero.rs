//! Xero: updates by id (`POST /Invoices/{InvoiceID}`, `POST /Contacts/{ContactID}`, or `POST
//! /Invoices` with the id in the element), all in the `{"Invoices": [...]}` envelope or as one
//! object, answered like a create (`{"Id","Status":"OK",...,"Invoices":[...]}`) with
//! `UpdatedDateUTC` now. Voiding and deleting are status changes (Xero API docs, "Deleting and
//! voiding invoices"): DRAFT or SUBMITTED to DELETED, AUTHORISED to VOIDED while nothing is paid.
//! Archiving a contact is `ContactStatus: ARCHIVED`. Xero has no conditional update: the last write
//! wins. `Idempotency-Key` replays the first answer for PUT and POST alike (`xero::save`).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::data::Org;
use crate::lines::sum_money;
use crate::model::{parse_time, utc, xero_datestring, xero_msdate, Entity};
use crate::state::AppState;
use crate::writes::{cents, merge_top};
use crate::xero::s;

/// How a write reached the sandbox.
pub enum WriteMode {
    /// PUT /{Entity}: creates only.
    Put,
    /// POST /{Entity}: creates, or updates elements that carry their id.
    Post,
    /// POST /{Entity}/{id}: updates that one record.
    PostById(String),
}

/// Xero's answer for a status change its rules do not allow (quoted by a Xero maintainer in
/// XeroAPI/Xero-NetStandard#79). That the same words answer edits of VOIDED/DELETED invoices and
/// voids of invoices with payments is unconfirmed.
const NOT_VALID_STATUS: &str = "Invoice not of valid status for modification";
/// Unconfirmed wording: edits of an invoice with payments or credit allocated.
const HAS_PAYMENTS: &str = "This document cannot be edited as it has a payment or credit note allocated to it.";

pub async fn put_create(
    State(st): State<AppState>,
    e: Entity,
    Query(_q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    crate::xero::save(&st, e, &headers, &body, WriteMode::Put)
}

pub async fn post_by_id(State(st): State<AppState>, e: Entity, Path(id): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    crate::xero::save(&st, e, &headers, &body, WriteMode::PostById(id))
}

/// Checks the elements against the way they came, before any is validated: PUT creates only, and a
/// POST to a record's URL carries that record alone.
pub(crate) fn check_mode(org: &Org, e: Entity, mut items: Vec<Value>, mode: &WriteMode) -> Result<Vec<Value>, String> {
    let id_field = e.xero_id_field();
    match mode {
        WriteMode::Post => {}
        // Unconfirmed: what Xero does with an existing id in a PUT (its reference says PUT creates
        // and POST updates); the sandbox refuses rather than update.
        WriteMode::Put => {
            if let Some(id) = items.iter().filter_map(|v| s(v, id_field)).find(|id| org.get(e, &id.to_ascii_lowercase()).is_some()) {
                return Err(format!("{id_field} {id} already exists: PUT creates, use POST to update"));
            }
        }
        WriteMode::PostById(id) => {
            // Unconfirmed: Xero's wording for several elements, or another id, on a record's URL.
            if items.len() != 1 {
                return Err(format!("A POST to /{}/{id} updates exactly one {}", e.xero_name(), e.xero_name()));
            }
            let v = &mut items[0];
            if !v.is_object() {
                return Err("Each element must be an object".into());
            }
            match s(v, id_field) {
                Some(other) if !other.eq_ignore_ascii_case(id) => return Err(format!("{id_field} {other} does not match the URL ({id})")),
                _ => v[id_field] = json!(id),
            }
        }
    }
    Ok(items)
}

/// The new state of record `id` (current value `cur`) after the element `patch`, or Xero's
/// validation messages. `org` is the batch's scratch copy.
pub(crate) fn update(org: &mut Org, e: Entity, id: &str, cur: &Value, patch: Value, now: DateTime<Utc>) -> Result<Value, Vec<String>> {
    match e {
        Entity::Invoice | Entity::Bill => invoice(org, cur, patch),
        Entity::Contact | Entity::Vendor => contact(org, id, cur, patch),
        Entity::Payment => payment(org, cur, patch, now),
        Entity::CreditNote => credit_note(org, cur, patch),
        Entity::Journal => journal(org, cur, patch),
        // Xero deletes a bank transaction by `Status` DELETED unless it is reconciled (Xero's
        // reference); the wording of the refusal is unconfirmed.
        Entity::BankTransaction if s(&patch, "Status") == Some("DELETED") && cur["IsReconciled"] == json!(true) => {
            Err(vec!["A reconciled bank transaction cannot be deleted".into()])
        }
        // New lines are checked as a create's and the totals follow them (status, contact and
        // account as merged).
        Entity::BankTransaction if patch.get("LineItems").is_some() => {
            let mut next = merge_top(cur, &patch);
            let errs = crate::writes::bank::xero_create(org, &mut next, now);
            if errs.is_empty() {
                Ok(next)
            } else {
                Err(errs)
            }
        }
        // Accounts (and entities added after the write paths) keep the plain merge.
        Entity::Account
        | Entity::VendorCredit
        | Entity::BillPayment
        | Entity::TaxRate
        | Entity::Item
        | Entity::TrackingCategory
        | Entity::Department
        | Entity::TaxComponent
        | Entity::PurchaseOrder
        | Entity::Expense
        | Entity::BankTransaction
        | Entity::BankTransfer => Ok(merge_top(cur, &patch)),
    }
}

/// A credit note changes as an invoice of its side does (the same status rules and line sums),
/// with what is allocated in place of what is paid: voided only while nothing is allocated, its
/// content locked once something is (both unconfirmed for credit notes; the sandbox applies the
/// invoice rules, never kinder).
fn credit_note(org: &mut Org, cur: &Value, patch: Value) -> Result<Value, Vec<String>> {
    let side = |t: &Value| if t == "ACCPAYCREDIT" { json!("ACCPAY") } else { json!("ACCREC") };
    let (total, remaining) = (cents(&cur["Total"]), cents(&cur["RemainingCredit"]));
    let mut as_invoice = cur.clone();
    as_invoice["Type"] = side(&cur["Type"]);
    as_invoice["AmountPaid"] = crate::lines::money(total - remaining);
    as_invoice["AmountCredited"] = json!(0.0);
    as_invoice["AmountDue"] = crate::lines::money(remaining);
    let mut patch = patch;
    if let Some(t) = patch.get("Type").cloned() {
        patch["Type"] = if t == cur["Type"] { side(&t) } else { t };
    }
    let mut next = invoice(org, &as_invoice, patch)?;
    next["Type"] = cur["Type"].clone();
    next["RemainingCredit"] = next["AmountDue"].clone();
    if let Some(o) = next.as_object_mut() {
        for k in ["AmountDue", "AmountPaid", "AmountCredited"] {
            o.remove(k);
        }
    }
    Ok(next)
}

/// A manual journal's lines: each names an existing account (`AccountCode` or `AccountID`) and a
/// signed `LineAmount` (debits positive), at least two, summing to zero. Xero's reference says a
/// manual journal must balance; the wording of these refusals is unconfirmed.
pub(crate) fn journal_lines(org: &Org, v: &Value) -> Result<Vec<Value>, Vec<String>> {
    let lines = v.get("JournalLines").and_then(Value::as_array).cloned().unwrap_or_default();
    if lines.len() < 2 {
        return Err(vec!["Journal lines must contain at least one debit and one credit".into()]);
    }
    let mut errs = Vec::new();
    let mut sum = 0i64;
    let mut out = Vec::new();
    for l in lines {
        let account = match (s(&l, "AccountCode"), s(&l, "AccountID")) {
            (Some(code), _) => org.store(Entity::Account).items.iter().find(|r| !r.deleted && r.value["Code"].as_str() == Some(code)),
            (None, Some(id)) => org.get(Entity::Account, &id.to_ascii_lowercase()).filter(|r| !r.deleted),
            _ => None,
        };
        let Some(a) = account else {
            errs.push("Account code is not valid for a journal line".into());
            continue;
        };
        let amount = l.get("LineAmount").and_then(Value::as_f64).and_then(crate::lines::exact_cents);
        match amount {
            Some(c) if c != 0 => sum += c,
            _ => errs.push("Journal line amount must be a non-zero amount".into()),
        }
        let mut l = l.clone();
        l["AccountID"] = json!(a.id);
        l["AccountCode"] = a.value["Code"].clone();
        l.as_object_mut().expect("object").entry("TaxType").or_insert(json!("NONE"));
        l["IsBlank"] = json!(false);
        out.push(l);
    }
    if errs.is_empty() && sum != 0 {
        errs.push("The total debits must equal the total credits".into());
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs)
    }
}

/// A manual journal: DRAFT to POSTED or DELETED, POSTED to VOIDED (Xero's ManualJournal
/// statuses); VOIDED and DELETED are final; new lines must balance.
fn journal(org: &mut Org, cur: &Value, patch: Value) -> Result<Value, Vec<String>> {
    let from = s(cur, "Status").unwrap_or("DRAFT").to_string();
    let to = s(&patch, "Status").map(str::to_ascii_uppercase).unwrap_or_else(|| from.clone());
    let allowed = from == to && from != "VOIDED" && from != "DELETED"
        || matches!((from.as_str(), to.as_str()), ("DRAFT", "POSTED" | "DELETED") | ("POSTED", "VOIDED"));
    if !allowed {
        // Unconfirmed wording.
        return Err(vec![format!("Manual journal cannot be changed from {from} to {to}")]);
    }
    let mut next = merge_top(cur, &patch);
    next["Status"] = json!(to);
    if patch.get("JournalLines").is_some() {
        next["JournalLines"] = Value::Array(journal_lines(org, &next)?);
    }
    Ok(next)
}

fn status_change_allowed(from: &str, to: &str, paid: bool) -> bool {
    matches!((from, to), ("DRAFT", "SUBMITTED" | "AUTHORISED" | "DELETED") | ("SUBMITTED", "DRAFT" | "AUTHORISED" | "DELETED"))
        || (from, to) == ("AUTHORISED", "VOIDED") && !paid
}

fn invoice(org: &mut Org, cur: &Value, patch: Value) -> Result<Value, Vec<String>> {
    let from = s(cur, "Status").unwrap_or("DRAFT").to_string();
    let to = s(&patch, "Status").map(str::to_ascii_uppercase).unwrap_or_else(|| from.clone());
    let paid_cents = cents(&cur["AmountPaid"]) + cents(&cur["AmountCredited"]);
    // A VOIDED or DELETED invoice is final.
    if from == "VOIDED" || from == "DELETED" {
        return Err(vec![NOT_VALID_STATUS.into()]);
    }
    if to != from && !status_change_allowed(&from, &to, paid_cents != 0) {
        return Err(vec![NOT_VALID_STATUS.into()]);
    }
    let mut errs = Vec::new();
    if s(&patch, "Type").is_some_and(|t| Some(t) != s(cur, "Type")) {
        // Unconfirmed wording; Xero does not turn a sales invoice into a bill.
        errs.push("The Type of an invoice cannot be changed".to_string());
    }
    // What was paid stays as it was: the document's content is locked (unconfirmed which fields).
    if paid_cents != 0 {
        let locked = ["LineItems", "Contact", "CurrencyCode", "LineAmountTypes", "Date"];
        if locked.iter().any(|k| patch.get(*k).is_some_and(|x| cur.get(*k) != Some(x))) {
            errs.push(HAS_PAYMENTS.into());
        }
    }
    let mut next = merge_top(cur, &patch);
    next["Status"] = json!(to);
    if let Some(c) = patch.get("Contact").filter(|c| cur.get("Contact") != Some(*c)) {
        // Unconfirmed: on update the sandbox finds the contact (by id or exact name) and does not
        // create one by name as a create does.
        let found = match (s(c, "ContactID"), s(c, "Name")) {
            (Some(cid), _) => org.get(Entity::Contact, &cid.to_ascii_lowercase()).filter(|r| !r.deleted),
            (None, Some(name)) => org.store(Entity::Contact).items.iter().find(|r| !r.deleted && r.value["Name"].as_str() == Some(name)),
            _ => None,
        };
        match found {
            Some(r) => next["Contact"] = json!({"ContactID": r.id, "Name": r.value["Name"]}),
            None => errs.push("Contact could not be found".into()),
        }
    }
    for (k, ks) in [("Date", "DateString"), ("DueDate", "DueDateString")] {
        if let Some(d) = s(&patch, k) {
            match parse_time(d, utc()) {
                Some(t) => {
                    next[k] = json!(xero_msdate(t));
                    next[ks] = json!(xero_datestring(t));
                }
                None => errs.push(format!("{k} is not a valid date")),
            }
        }
    }
    if patch.get("LineItems").is_some() {
        let (mut sub, mut tax, mut lines) = (Vec::new(), Vec::new(), Vec::new());
        for l in next["LineItems"].as_array().cloned().unwrap_or_default() {
            let qty = l.get("Quantity").and_then(Value::as_f64).unwrap_or(1.0);
            let unit = l.get("UnitAmount").and_then(Value::as_f64).unwrap_or(0.0);
            let amount = l.get("LineAmount").and_then(Value::as_f64).unwrap_or(qty * unit);
            let t = l.get("TaxAmount").and_then(Value::as_f64).unwrap_or(0.0);
            if s(&l, "Description").is_none() && s(&l, "ItemCode").is_none() {
                errs.push("Description needs to be specified for each line item".into());
            }
            sub.push(amount);
            tax.push(t);
            let mut l = l.clone();
            if s(&l, "LineItemID").is_none() {
                l["LineItemID"] = json!(uuid::Uuid::new_v4().to_string());
            }
            l["Quantity"] = json!(qty);
            l["UnitAmount"] = json!(unit);
            l["LineAmount"] = json!(amount);
            l["TaxAmount"] = json!(t);
            if l.get("TaxType").is_none() {
                l["TaxType"] = json!("NONE");
            }
            lines.push(l);
        }
        let total = sum_money(&[sub.as_slice(), tax.as_slice()].concat());
        next["LineItems"] = Value::Array(lines);
        next["SubTotal"] = sum_money(&sub);
        next["TotalTax"] = sum_money(&tax);
        next["AmountDue"] = crate::lines::money(cents(&total) - paid_cents);
        next["Total"] = total;
    }
    if to == "AUTHORISED" && next["LineItems"].as_array().is_none_or(|l| l.is_empty()) {
        errs.push("An authorised invoice must have at least one line item".into());
    }
    // Xero's own example of a VOIDED invoice shows AmountDue 0; for DELETED it is unconfirmed.
    if to == "VOIDED" || to == "DELETED" {
        next["AmountDue"] = json!(0.0);
    }
    if errs.is_empty() {
        Ok(next)
    } else {
        Err(errs)
    }
}

fn contact(org: &Org, id: &str, cur: &Value, patch: Value) -> Result<Value, Vec<String>> {
    let mut errs = Vec::new();
    let mut next = merge_top(cur, &patch);
    let status = s(&next, "ContactStatus").unwrap_or("ACTIVE").to_ascii_uppercase();
    if !["ACTIVE", "ARCHIVED", "GDPRREQUEST"].contains(&status.as_str()) {
        errs.push(format!("ContactStatus {status} is not valid."));
    }
    next["ContactStatus"] = json!(status);
    match s(&next, "Name") {
        None => errs.push("The contact name must be specified.".into()),
        Some(name) => {
            let taken = org.store(Entity::Contact).items.iter().any(|r| {
                r.id != id
                    && !r.deleted
                    && r.value["ContactStatus"] != "ARCHIVED"
                    && r.value["Name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name))
            });
            if taken && status == "ACTIVE" {
                errs.push(format!(
                    "The contact name {name} is already assigned to another contact. The contact name must be unique across all active contacts."
                ));
            }
        }
    }
    // Unconfirmed (never kinder): the sandbox does not archive a contact that still has approved
    // invoices or bills with an amount due.
    if status == "ARCHIVED" && cur["ContactStatus"] != "ARCHIVED" {
        let open = org.store(Entity::Invoice).items.iter().any(|r| {
            !r.deleted
                && r.value.pointer("/Contact/ContactID").and_then(Value::as_str) == Some(id)
                && r.value["Status"] == "AUTHORISED"
                && cents(&r.value["AmountDue"]) != 0
        });
        if open {
            errs.push("This contact cannot be archived as it has outstanding invoices or bills.".into());
        }
    }
    if errs.is_empty() {
        Ok(next)
    } else {
        Err(errs)
    }
}

/// A payment is deleted by `POST /Payments/{PaymentID}` with `{"Status": "DELETED"}` (Xero's API
/// reference, "Deleting a payment"); the invoice owes the amount again (and is AUTHORISED again if it
/// was PAID). Unconfirmed: Xero's wording for any other change to a payment, which the sandbox
/// refuses (payments are not edited in place).
fn payment(org: &mut Org, cur: &Value, patch: Value, now: DateTime<Utc>) -> Result<Value, Vec<String>> {
    let other_members = patch.as_object().is_some_and(|o| o.keys().any(|k| k != "Status" && k != "PaymentID"));
    if s(&patch, "Status") != Some("DELETED") || other_members {
        return Err(vec!["A payment can only be deleted (Status DELETED), not edited".into()]);
    }
    if cur["Status"] == "DELETED" {
        return Err(vec!["Payment has already been deleted".into()]);
    }
    let amount = cents(&cur["Amount"]);
    if let Some(iid) = cur.pointer("/Invoice/InvoiceID").and_then(Value::as_str) {
        if let Some(mut inv) = org.get(Entity::Invoice, iid).filter(|r| !r.deleted).map(|r| r.value.clone()) {
            inv["AmountDue"] = crate::lines::money(cents(&inv["AmountDue"]) + amount);
            inv["AmountPaid"] = crate::lines::money(cents(&inv["AmountPaid"]) - amount);
            if inv["Status"] == "PAID" {
                inv["Status"] = json!("AUTHORISED");
            }
            // The invoice changes with its payment (its UpdatedDateUTC moves too).
            org.put(Entity::Invoice, iid, inv, now);
        }
    }
    let mut next = cur.clone();
    next["Status"] = json!("DELETED");
    Ok(next)
}
