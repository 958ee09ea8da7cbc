//! Zoho Books: `PUT /invoices/{id}`, `/bills/{id}`, `/contacts/{id}` (JSON body or the `JSONString`
//! form field, as creates take), `POST /invoices/{id}/status/void` and `/status/draft`, `POST
//! /bills/{id}/status/void`, `POST /contacts/{id}/inactive` and `/active`, and the refusals of
//! `DELETE`. Paths and success messages as Zoho's API reference and its own SDKs show them. Every
//! change sets `last_modified_time` (Zoho writes seconds, so two changes within one second show the
//! same time). Zoho has no conditional update and no idempotency key.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use crate::data::Org;
use crate::faults::zoho_error;
use crate::http::{json, json_value};
use crate::lines::{exact_cents, money, percent, TAX_RATE_BP};
use crate::model::Entity;
use crate::state::{AppState, World};
use crate::writes::{cents, merge_top};
use crate::zoho::{authorize, body_json, does_not_exist, s};

/// The body Zoho answers a refusal with (HTTP 400). Codes and wording of the refusals below are
/// unconfirmed unless a comment says otherwise.
fn refuse(code: i64, message: &str) -> Response {
    zoho_error(StatusCode::BAD_REQUEST, code, message)
}

/// A live record of the org the token reaches, or the answer to send instead.
fn load(
    w: &mut World,
    e: Entity,
    dc: &str,
    id: &str,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<(String, Value), Response> {
    let org_id = authorize(w, headers, dc, q)?;
    let org = w.org(crate::model::Provider::Zoho, &org_id).expect("authorized");
    match org.get(e, id).filter(|r| !r.deleted) {
        Some(r) => Ok((org_id, r.value.clone())),
        None => Err(does_not_exist(e)),
    }
}

fn org_mut<'a>(w: &'a mut World, org_id: &str) -> &'a mut Org {
    w.org_mut(crate::model::Provider::Zoho, org_id).expect("authorized")
}

/// PUT /{invoices,bills,contacts}/{id}: the members sent replace the record's; line items sent
/// replace the lines and the totals are worked out again (balance = new total less what was paid).
pub async fn update(
    State(st): State<AppState>,
    e: Entity,
    Path((dc, id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut w = st.lock();
    let (org_id, cur) = match load(&mut w, e, &dc, &id, &q, &headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(patch) = body_json(&q, &body).filter(Value::is_object) else {
        return refuse(4, "Invalid value passed for JSONString");
    };
    let now = w.now();
    let org = org_mut(&mut w, &org_id);
    let next = match e {
        Entity::Invoice | Entity::Bill => document(org, e, &cur, &patch),
        // A credit note changes as an invoice does, a vendor credit as a bill (what was applied
        // counts as what was paid).
        Entity::CreditNote => document(org, Entity::Invoice, &cur, &patch),
        Entity::VendorCredit => document(org, Entity::Bill, &cur, &patch),
        Entity::Contact | Entity::Vendor => contact(org, &id, &cur, &patch),
        Entity::Journal => journal(org, &cur, &patch),
        // New lines (or a new amount) are checked as a create's and the total follows them.
        Entity::Expense | Entity::BankTransaction if patch.get("line_items").is_some() || patch.get("amount").is_some() => {
            let mut next = merge_top(&cur, &patch);
            let today = now.format("%Y-%m-%d").to_string();
            crate::writes::bank::zoho_create(org, e, &mut next, &today).map(|_| next)
        }
        // Entities added after the write paths keep the plain merge until they get their own rules.
        Entity::Account
        | Entity::Payment
        | Entity::BillPayment
        | Entity::TaxRate
        | Entity::Item
        | Entity::TrackingCategory
        | Entity::Department
        | Entity::TaxComponent
        | Entity::PurchaseOrder
        | Entity::Expense
        | Entity::BankTransaction
        | Entity::BankTransfer => Ok(merge_top(&cur, &patch)),
    };
    let next = match next {
        Ok(v) => v,
        Err((code, msg)) => return refuse(code, &msg),
    };
    let rec = org.put(e, &id, next, now);
    // "Invoice information has been updated." and "Contact has been updated successfully" are in
    // Zoho's API reference; the bill's wording is from a third-party client (unconfirmed).
    let message = match e {
        Entity::Invoice => "Invoice information has been updated.",
        Entity::Bill => "Bill information has been updated.",
        Entity::Contact | Entity::Vendor => "Contact has been updated successfully",
        Entity::Account => "The account has been updated.",
        Entity::Payment | Entity::BillPayment => "The payment has been updated.",
        Entity::CreditNote => "Credit Note information has been updated.",
        Entity::VendorCredit => "Vendor credit information has been updated.",
        Entity::TaxRate | Entity::TaxComponent => "The tax has been updated.",
        Entity::Item => "The item has been updated.",
        Entity::TrackingCategory | Entity::Department => "The reporting tag has been updated.",
        Entity::Journal => "The journal has been updated.",
        Entity::PurchaseOrder => "Purchase order information has been updated.",
        // Unconfirmed wording.
        Entity::Expense => "The expense has been updated.",
        Entity::BankTransaction | Entity::BankTransfer => "The transaction has been updated.",
    };
    json(StatusCode::OK, format!("{{\"code\":0,\"message\":{},\"{}\":{}}}", json!(message), e.zoho_singular(), rec.full))
}

fn document(org: &Org, e: Entity, cur: &Value, patch: &Value) -> Result<Value, (i64, String)> {
    let invalid = |f: &str| (4, format!("Invalid value passed for {f}"));
    // Unconfirmed: Zoho's refusal to edit a void document (its UI offers "Mark as draft" first).
    if cur["status"] == "void" {
        return Err((4, format!("A void {} cannot be edited. Mark it as draft first.", e.generic())));
    }
    let mut next = merge_top(cur, patch);
    let (party_id, party_name) = if e == Entity::Bill { ("vendor_id", "vendor_name") } else { ("customer_id", "customer_name") };
    if let Some(pid) = patch.get(party_id) {
        let pid = pid.as_str().ok_or_else(|| invalid(party_id))?;
        let Some(c) = org.get(Entity::Contact, pid).filter(|r| !r.deleted) else {
            return Err((1002, "Contact does not exist.".into()));
        };
        next[party_name] = c.value["contact_name"].clone();
    }
    if let Some(items) = patch.get("line_items") {
        let items = items.as_array().filter(|a| !a.is_empty()).ok_or_else(|| invalid("line_items"))?;
        // In cents; a line with a tax_id is taxed at the sandbox's one rate (as creates of bills are).
        let (mut sub, mut tax) = (0i64, 0i64);
        let mut lines = Vec::new();
        for (k, l) in items.iter().enumerate() {
            let rate = l.get("rate").and_then(Value::as_f64).unwrap_or(0.0);
            let qty = l.get("quantity").and_then(Value::as_f64).unwrap_or(1.0);
            let amount = exact_cents(rate * qty).ok_or_else(|| invalid("line_items"))?;
            let bp = if s(l, "tax_id").is_some() { TAX_RATE_BP } else { 0 };
            let mut l = l.clone();
            if s(&l, "line_item_id").is_none() {
                l["line_item_id"] = json!(format!("{}{:03}", org.id, k + 1));
            }
            l["quantity"] = json!(qty);
            l["item_total"] = money(amount);
            l["tax_percentage"] = percent(bp);
            sub += amount;
            tax += (amount * bp + 5_000) / 10_000;
            lines.push(l);
        }
        let paid = cents(&cur["total"]) - cents(&cur["balance"]);
        // Unconfirmed: Zoho's refusal to lower a total below what was already paid.
        if sub + tax < paid {
            return Err((4, "The total cannot be less than the amount already paid.".into()));
        }
        next["line_items"] = Value::Array(lines);
        next["sub_total"] = money(sub);
        next["tax_total"] = money(tax);
        next["total"] = money(sub + tax);
        next["balance"] = money(sub + tax - paid);
    }
    // Status moves through its own endpoints (status/void, status/draft, status/sent), not here.
    next["status"] = cur["status"].clone();
    Ok(next)
}

fn contact(org: &Org, id: &str, cur: &Value, patch: &Value) -> Result<Value, (i64, String)> {
    let next = merge_top(cur, patch);
    let name = s(&next, "contact_name").ok_or_else(|| (4, "Invalid value passed for contact_name".to_string()))?;
    let taken = org
        .store(Entity::Contact)
        .items
        .iter()
        .any(|r| r.id != id && !r.deleted && r.value["contact_name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)));
    if taken {
        return Err((3062, format!("The customer \"{name}\" already exists.")));
    }
    let mut next = next;
    // Active/inactive moves through its own endpoints.
    next["status"] = cur["status"].clone();
    Ok(next)
}

/// Payments (customer payments) applied to `invoice_id`, with the amount each applies, in cents.
fn payments_on(org: &Org, invoice_id: &str) -> Vec<(String, i64)> {
    org.store(Entity::Payment)
        .items
        .iter()
        .filter(|r| !r.deleted)
        .filter_map(|r| {
            let applied: i64 = r.value["invoices"]
                .as_array()?
                .iter()
                .filter(|i| i["invoice_id"].as_str() == Some(invoice_id))
                .map(|i| cents(&i["amount_applied"]))
                .sum();
            (applied != 0).then(|| (r.id.clone(), applied))
        })
        .collect()
}

/// POST /invoices/{id}/status/void. Zoho's reference: "Upon voiding, the payments and credits
/// associated with the invoices will be unassociated and will be under customer credits": each
/// payment's amount applied to it goes back to the payment's unused amount.
pub async fn void_invoice(
    State(st): State<AppState>,
    Path((dc, id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut w = st.lock();
    let (org_id, cur) = match load(&mut w, Entity::Invoice, &dc, &id, &q, &headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    // Unconfirmed (never kinder): voiding a void invoice again, or a draft one, is refused.
    match cur["status"].as_str() {
        Some("void") => return refuse(4, "The invoice has already been voided."),
        Some("draft") => return refuse(4, "A draft invoice cannot be voided. Delete it instead."),
        _ => {}
    }
    let now = w.now();
    let org = org_mut(&mut w, &org_id);
    for (pid, applied) in payments_on(org, &id) {
        let mut p = org.get(Entity::Payment, &pid).expect("listed").value.clone();
        if let Some(list) = p["invoices"].as_array_mut() {
            list.retain(|i| i["invoice_id"].as_str() != Some(id.as_str()));
        }
        p["unused_amount"] = money(cents(&p["unused_amount"]) + applied);
        org.put(Entity::Payment, &pid, p, now);
    }
    let mut v = cur;
    v["status"] = json!("void");
    v["balance"] = json!(0.0);
    org.put(Entity::Invoice, &id, v, now);
    json_value(StatusCode::OK, &json!({"code": 0, "message": "Invoice status has been changed to Void."}))
}

/// POST /invoices/{id}/status/draft: Zoho's reference, "Mark a voided invoice as draft"; the
/// balance is the whole total again (the void unassociated the payments).
pub async fn draft_invoice(
    State(st): State<AppState>,
    Path((dc, id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut w = st.lock();
    let (org_id, cur) = match load(&mut w, Entity::Invoice, &dc, &id, &q, &headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if cur["status"] != "void" {
        // Unconfirmed wording; the reference documents this for voided invoices only.
        return refuse(4, "Only a void invoice can be marked as draft.");
    }
    let now = w.now();
    let org = org_mut(&mut w, &org_id);
    let mut v = cur;
    v["status"] = json!("draft");
    v["balance"] = v["total"].clone();
    org.put(Entity::Invoice, &id, v, now);
    json_value(StatusCode::OK, &json!({"code": 0, "message": "Status of invoice changed from void to draft"}))
}

/// POST /bills/{id}/status/void ("The bill has been marked as void." per Zoho's own SDKs).
pub async fn void_bill(
    State(st): State<AppState>,
    Path((dc, id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut w = st.lock();
    let (org_id, cur) = match load(&mut w, Entity::Bill, &dc, &id, &q, &headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if cur["status"] == "void" {
        return refuse(4, "The bill has already been voided.");
    }
    // Unconfirmed (never kinder): a bill with payments recorded is not voided by the sandbox (the
    // sandbox keeps no vendor payments, so a paid part shows as balance below total).
    if cents(&cur["balance"]) != cents(&cur["total"]) {
        return refuse(4, "Bills with payments recorded cannot be voided. Delete the payments first.");
    }
    let now = w.now();
    let org = org_mut(&mut w, &org_id);
    let mut v = cur;
    v["status"] = json!("void");
    v["balance"] = json!(0.0);
    org.put(Entity::Bill, &id, v, now);
    json_value(StatusCode::OK, &json!({"code": 0, "message": "The bill has been marked as void."}))
}

/// A journal's `line_items`: at least two, each an existing `account_id`, `debit_or_credit` debit or
/// credit and a positive `amount`, debits equal to credits (Zoho's Journals reference; the refusal's
/// code and wording are unconfirmed). Returns the lines and the total debits in cents.
pub(crate) fn journal_lines(org: &Org, v: &Value) -> Result<(Vec<Value>, i64), (i64, String)> {
    let invalid = |f: &str| (4, format!("Invalid value passed for {f}"));
    let items = v.get("line_items").and_then(Value::as_array).cloned().unwrap_or_default();
    if items.len() < 2 {
        return Err(invalid("line_items"));
    }
    let (mut debits, mut credits) = (0i64, 0i64);
    let mut out = Vec::new();
    for (k, l) in items.into_iter().enumerate() {
        let Some(account) = s(&l, "account_id").and_then(|a| org.get(Entity::Account, a)).filter(|r| !r.deleted) else {
            return Err((1002, "Account does not exist.".into()));
        };
        let name = account.value["account_name"].clone();
        let amount = l.get("amount").and_then(Value::as_f64).and_then(exact_cents).filter(|c| *c > 0).ok_or_else(|| invalid("amount"))?;
        match s(&l, "debit_or_credit") {
            Some("debit") => debits += amount,
            Some("credit") => credits += amount,
            _ => return Err(invalid("debit_or_credit")),
        }
        let mut l = l;
        l["line_id"] = json!(format!("{}{:03}", org.id, k + 1));
        l["account_name"] = name;
        l["amount"] = money(amount);
        out.push(l);
    }
    if debits != credits {
        return Err((4, "The journal is not balanced: the debits do not equal the credits.".into()));
    }
    Ok((out, debits))
}

fn journal(org: &Org, cur: &Value, patch: &Value) -> Result<Value, (i64, String)> {
    let mut next = merge_top(cur, patch);
    if patch.get("line_items").is_some() {
        let (lines, total) = journal_lines(org, &next)?;
        next["line_items"] = Value::Array(lines);
        next["total"] = money(total);
    }
    Ok(next)
}

/// POST /creditnotes/{id}/status/void and /vendorcredits/{id}/status/void (Zoho's reference has
/// "Void a credit note"; the vendor credit's is unconfirmed). A credit applied to invoices or bills
/// is refused (unconfirmed wording and rule: never kinder).
pub async fn void_credit(
    State(st): State<AppState>,
    e: Entity,
    Path((dc, id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut w = st.lock();
    let (org_id, cur) = match load(&mut w, e, &dc, &id, &q, &headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if cur["status"] == "void" {
        return refuse(4, "The credit note has already been voided.");
    }
    if cents(&cur["balance"]) != cents(&cur["total"]) {
        return refuse(4, "Credits applied to transactions cannot be voided. Remove the applied credits first.");
    }
    let now = w.now();
    let org = org_mut(&mut w, &org_id);
    let mut v = cur;
    v["status"] = json!("void");
    v["balance"] = json!(0.0);
    org.put(e, &id, v, now);
    json_value(StatusCode::OK, &json!({"code": 0, "message": "The credit note has been voided."}))
}

/// POST /contacts/{id}/inactive and /active ("The contact has been marked as inactive." is in
/// Zoho's reference; no refusal is documented, whether Zoho refuses one with a balance is
/// unconfirmed).
pub async fn contact_status(
    State(st): State<AppState>,
    active: bool,
    Path((dc, id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut w = st.lock();
    let (org_id, cur) = match load(&mut w, Entity::Contact, &dc, &id, &q, &headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let now = w.now();
    let org = org_mut(&mut w, &org_id);
    let mut v = cur;
    let word = if active { "active" } else { "inactive" };
    v["status"] = json!(word);
    org.put(Entity::Contact, &id, v, now);
    json_value(StatusCode::OK, &json!({"code": 0, "message": format!("The contact has been marked as {word}.")}))
}

/// What `DELETE /{entity}/{id}` refuses: an invoice payments are applied to, a bill with payments,
/// a contact with transactions (Zoho's contacts carry `has_transaction`). Codes and wording are
/// unconfirmed.
pub(crate) fn delete_refusal(org: &Org, e: Entity, id: &str) -> Option<Response> {
    let cur = &org.get(e, id)?.value;
    match e {
        Entity::Invoice
            if !payments_on(org, id).is_empty() || (cur["status"] != "void" && cents(&cur["balance"]) != cents(&cur["total"])) =>
        {
            Some(refuse(4, "Invoices with payments or credits applied cannot be deleted. Delete the payments first."))
        }
        Entity::Bill if cents(&cur["balance"]) != cents(&cur["total"]) => {
            Some(refuse(4, "Bills with payments recorded cannot be deleted. Delete the payments first."))
        }
        Entity::CreditNote | Entity::VendorCredit if cur["status"] != "void" && cents(&cur["balance"]) != cents(&cur["total"]) => {
            Some(refuse(4, "Credits applied to transactions cannot be deleted. Remove the applied credits first."))
        }
        Entity::Contact | Entity::Vendor => {
            let refers = |ent: Entity, field: &str| {
                org.store(ent).items.iter().any(|r| !r.deleted && r.value.get(field).and_then(Value::as_str) == Some(id))
            };
            (refers(Entity::Invoice, "customer_id") || refers(Entity::Bill, "vendor_id") || refers(Entity::Payment, "customer_id"))
                .then(|| refuse(4, "The contact cannot be deleted as it has transactions associated with it."))
        }
        _ => None,
    }
}

/// What a `DELETE` changes besides the record: a customer payment's invoices (a vendor payment's
/// bills) owe what it paid again (a paid invoice goes back to `sent`; Zoho's `partially_paid`/`overdue` statuses are not
/// modelled by the sandbox).
pub(crate) fn on_delete(org: &mut Org, e: Entity, id: &str, now: chrono::DateTime<chrono::Utc>) {
    if e == Entity::BillPayment {
        // A vendor payment's bills owe what it paid again (a paid bill goes back to `open`).
        let Some(p) = org.get(e, id).map(|r| r.value.clone()) else { return };
        for b in p["bills"].as_array().cloned().unwrap_or_default() {
            let Some(bid) = b["bill_id"].as_str() else { continue };
            let Some(mut bill) = org.get(Entity::Bill, bid).filter(|r| !r.deleted).map(|r| r.value.clone()) else { continue };
            bill["balance"] = money((cents(&bill["balance"]) + cents(&b["amount_applied"])).min(cents(&bill["total"])));
            if bill["status"] == "paid" {
                bill["status"] = json!("open");
            }
            org.put(Entity::Bill, bid, bill, now);
        }
        return;
    }
    if e != Entity::Payment {
        return;
    }
    let Some(p) = org.get(e, id).map(|r| r.value.clone()) else { return };
    for i in p["invoices"].as_array().cloned().unwrap_or_default() {
        let Some(iid) = i["invoice_id"].as_str() else { continue };
        let Some(mut inv) = org.get(Entity::Invoice, iid).filter(|r| !r.deleted).map(|r| r.value.clone()) else { continue };
        inv["balance"] = money((cents(&inv["balance"]) + cents(&i["amount_applied"])).min(cents(&inv["total"])));
        if inv["status"] == "paid" {
            inv["status"] = json!("sent");
        }
        org.put(Entity::Invoice, iid, inv, now);
    }
}
