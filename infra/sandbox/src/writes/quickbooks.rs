//! QuickBooks Online: changes to an existing object, all through `POST /v3/company/{realm}/{entity}`
//! with `Id` and the current `SyncToken` in the body:
//!
//! - full update (the body replaces the object) or sparse update (`"sparse": true`, members merged);
//! - `?operation=delete` (transactions only: Invoice, Bill, Payment, BillPayment);
//! - `?operation=void` on an Invoice, `?operation=update&include=void` on a Payment (Intuit's API
//!   reference, "Void an invoice" / "Void a payment"): amounts and quantities zeroed, "Voided" put
//!   before the PrivateNote.
//!
//! Every change needs the current SyncToken (a stale one is Fault 5010 and changes nothing) and
//! answers with the object, its SyncToken one higher and MetaData.LastUpdatedTime now. `requestid`
//! replay is the caller's (`quickbooks::create`), so it covers these operations too.

use serde_json::{json, Value};

use chrono::{DateTime, Utc};

use crate::data::Org;
use crate::lines::{money, percent, TAX_RATE_BP};
use crate::model::{qbo_time, Entity};
use crate::writes::{cents, merge_top};

/// (code, Message, Detail) of a ValidationFault.
pub(crate) type WriteErr = (&'static str, &'static str, String);

fn missing(what: &str) -> WriteErr {
    (
        "2020",
        "Required param missing, need to supply the required value for the API",
        format!("Required parameter {what} is missing in the request"),
    )
}

fn business(detail: String) -> WriteErr {
    ("6000", "A business validation error has occurred while processing your request", format!("Business Validation Error: {detail}"))
}

/// What QuickBooks answers for an operation an entity does not have. The code, message and detail
/// are as public client test suites record them for `operation=delete` on a Customer (code 500,
/// "Unsupported Operation", "Operation Delete is not supported."); the same shape for void is
/// unconfirmed.
fn unsupported(op: &str) -> WriteErr {
    ("500", "Unsupported Operation", format!("Operation {op} is not supported."))
}

fn not_found(e: Entity, id: &str) -> WriteErr {
    ("610", "Object Not Found", format!("Object Not Found : {} {id}", e.qbo_name()))
}

fn answer(e: Entity, full: &str, now: DateTime<Utc>) -> String {
    format!("{{\"{}\":{},\"time\":\"{}\"}}", e.qbo_name(), full, qbo_time(now))
}

/// Applies `operation` (and `include`) to the object `id` of `e`, whose new state or id is in `v`.
pub(crate) fn change(
    org: &mut Org,
    e: Entity,
    id: &str,
    v: Value,
    operation: Option<&str>,
    include: Option<&str>,
    now: DateTime<Utc>,
) -> Result<String, WriteErr> {
    let Some(cur) = org.get(e, id).filter(|r| !r.deleted).map(|r| r.value.clone()) else {
        return Err(not_found(e, id));
    };
    // Unconfirmed: the fault for a change without a SyncToken (the sandbox answers "required
    // parameter missing"; QuickBooks may answer 5010 instead). Either way nothing changes.
    let Some(token) = v.get("SyncToken").and_then(Value::as_str) else {
        return Err(missing("SyncToken"));
    };
    // Optimistic locking: only the current SyncToken may change the object.
    if Some(token) != cur.get("SyncToken").and_then(Value::as_str) {
        return Err((
            "5010",
            "Stale Object Error",
            format!("Stale Object Error : You and another user were working on the same thing. {} {id}", e.qbo_name()),
        ));
    }
    match (operation, include) {
        (Some("delete"), _) => delete(org, e, id, &cur, now),
        (Some("void"), _) if e == Entity::Invoice => void_invoice(org, id, &cur, now),
        // Payments are voided by a sparse update with include=void, not operation=void.
        (Some("void"), _) => Err(unsupported("Void")),
        (Some("update"), Some("void")) if matches!(e, Entity::Payment | Entity::BillPayment) => void_payment(org, e, id, &cur, now),
        (Some("update"), Some("void")) => Err(unsupported("Void")),
        (None | Some("update"), _) => update(org, e, id, &cur, v, now),
        // Unconfirmed: how QuickBooks words an unknown operation value.
        (Some(other), _) => Err(unsupported(other)),
    }
}

fn update(org: &mut Org, e: Entity, id: &str, cur: &Value, v: Value, now: DateTime<Utc>) -> Result<String, WriteErr> {
    let sparse = v.get("sparse").and_then(Value::as_bool) == Some(true);
    // A full update replaces the object: what the body leaves out is cleared (Intuit: "full update").
    let mut next = if sparse { merge_top(cur, &v) } else { v.clone() };
    match e {
        Entity::Contact | Entity::Vendor => name_list_update(org, e, id, cur, &mut next)?,
        Entity::Invoice => document_update(org, e, cur, &v, &mut next, sparse)?,
        Entity::Bill => document_update(org, e, cur, &v, &mut next, sparse)?,
        // New lines are checked as a create's and the total follows them.
        Entity::Expense | Entity::BankTransaction if v.get("Line").is_some() || !sparse => {
            crate::writes::bank::qbo_create(org, e, &mut next, now)?;
        }
        Entity::Journal if v.get("Line").is_some() || !sparse => {
            let total = journal_lines(org, &mut next)?;
            next["TotalAmt"] = money(total);
        }
        // Accounts and payments keep the plain merge/replace the sandbox always had; their
        // server-owned amounts are not recomputed here.
        Entity::Account
        | Entity::Payment
        | Entity::CreditNote
        | Entity::VendorCredit
        | Entity::BillPayment
        | Entity::TaxRate
        | Entity::Item
        | Entity::TrackingCategory
        | Entity::Department
        | Entity::TaxComponent
        | Entity::Journal
        | Entity::PurchaseOrder
        | Entity::Expense
        | Entity::BankTransaction
        | Entity::BankTransfer => {}
    }
    if let Some(o) = next.as_object_mut() {
        o.insert("domain".into(), json!("QBO"));
        o.insert("sparse".into(), json!(false));
        o.remove("status");
    }
    let rec = org.put(e, id, next, now);
    Ok(answer(e, &rec.full, now))
}

/// Customers and vendors: DisplayName unique across both lists, and no deactivation while the
/// name still has an open balance.
fn name_list_update(org: &Org, e: Entity, id: &str, cur: &Value, next: &mut Value) -> Result<(), WriteErr> {
    let Some(display) = next.get("DisplayName").and_then(Value::as_str).filter(|s| !s.trim().is_empty()).map(str::to_string) else {
        return Err(missing("DisplayName"));
    };
    let taken = [Entity::Contact, Entity::Vendor].into_iter().any(|k| {
        org.store(k).items.iter().any(|r| {
            let same = k == e && r.id == id;
            !r.deleted && !same && r.value["DisplayName"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(&display))
        })
    });
    if taken {
        return Err((
            "6240",
            "Duplicate Name Exists Error",
            format!("The name supplied already exists. : Another customer, vendor or employee is already using this name. Please use a different name. {display}"),
        ));
    }
    let deactivating = next.get("Active") == Some(&json!(false)) && cur.get("Active") != Some(&json!(false));
    if deactivating {
        let open = open_balance(org, e, id);
        if open != 0 {
            // Seen in client issue threads ("Delete List Has Balance Error ... This customer cannot
            // be deleted because it has a non-zero balance"); the code is unconfirmed.
            return Err((
                "6000",
                "Delete List Has Balance Error",
                "The entity you are trying to delete has an open balance. : This customer cannot be deleted because it has a non-zero balance".into(),
            ));
        }
    }
    let o = next.as_object_mut().expect("object");
    o.insert("FullyQualifiedName".into(), json!(display));
    // Balance is QuickBooks' to compute, whatever the body says.
    o.insert("Balance".into(), money(open_balance(org, e, id)));
    o.entry("Active").or_insert(json!(true));
    Ok(())
}

/// What the customer still owes (open invoice balances) or what the company owes the vendor (open
/// bill balances), in cents.
fn open_balance(org: &Org, e: Entity, id: &str) -> i64 {
    let (docs, reference) = if e == Entity::Vendor { (Entity::Bill, "/VendorRef/value") } else { (Entity::Invoice, "/CustomerRef/value") };
    org.store(docs)
        .items
        .iter()
        .filter(|r| !r.deleted && r.value.pointer(reference).and_then(Value::as_str) == Some(id))
        .map(|r| cents(&r.value["Balance"]))
        .sum()
}

/// Invoices and bills: the party must exist; when the lines change the totals are worked out
/// again, and what was already paid stays paid (the balance is the new total less it).
fn document_update(org: &Org, e: Entity, cur: &Value, sent: &Value, next: &mut Value, sparse: bool) -> Result<(), WriteErr> {
    let (party_field, party_entity) = if e == Entity::Bill { ("VendorRef", Entity::Vendor) } else { ("CustomerRef", Entity::Contact) };
    let party =
        next.pointer(&format!("/{party_field}/value")).and_then(Value::as_str).map(str::to_string).ok_or_else(|| missing(party_field))?;
    let Some(p) = org.get(party_entity, &party).filter(|r| !r.deleted) else {
        return Err(("2500", "Invalid Reference Id", format!("Invalid Reference Id : {} {party} not found", party_entity.qbo_name())));
    };
    next[party_field] = json!({"value": party, "name": p.value["DisplayName"]});
    let paid = cents(&cur["TotalAmt"]) - cents(&cur["Balance"]);
    let lines_sent = sent.get("Line").is_some() || !sparse;
    if lines_sent {
        let lines = next.get("Line").and_then(Value::as_array).cloned().unwrap_or_default();
        if lines.is_empty() {
            return Err(missing("Line"));
        }
        let allowed: &[&str] = if e == Entity::Bill {
            &["AccountBasedExpenseLineDetail", "ItemBasedExpenseLineDetail"]
        } else {
            &["SalesItemLineDetail", "DescriptionOnly", "DiscountLineDetail", "GroupLineDetail"]
        };
        let (mut sub, mut taxable) = (0i64, 0i64);
        let mut out = Vec::new();
        for l in &lines {
            let dt = l.get("DetailType").and_then(Value::as_str).ok_or_else(|| missing("Line.DetailType"))?;
            if dt == "SubTotalLineDetail" {
                continue;
            }
            if !allowed.contains(&dt) {
                return Err((
                    "2010",
                    "Request has invalid or unsupported property",
                    format!("Unsupported DetailType on a {} line: {dt}", e.qbo_name()),
                ));
            }
            let amount =
                l.get("Amount").and_then(Value::as_f64).and_then(crate::lines::exact_cents).ok_or_else(|| missing("Line.Amount"))?;
            sub += amount;
            if l.pointer(&format!("/{dt}/TaxCodeRef/value")).and_then(Value::as_str) == Some("TAX") {
                taxable += amount;
            }
            let mut l = l.clone();
            let n = out.len() + 1;
            l.as_object_mut().map(|o| o.entry("Id").or_insert(json!(n.to_string())));
            l["LineNum"] = json!(n);
            out.push(l);
        }
        // Tax at the company's one rate on TAX-coded lines unless the body sets TxnTaxDetail
        // (QuickBooks' automated sales tax works it out itself; its rounding is unconfirmed).
        let tax = match sent.pointer("/TxnTaxDetail/TotalTax").and_then(Value::as_f64).and_then(crate::lines::exact_cents) {
            Some(t) => t,
            None => {
                let t = (taxable * TAX_RATE_BP + 5_000) / 10_000;
                let mut tax_lines = Vec::new();
                if taxable > 0 {
                    tax_lines.push(json!({"Amount": money(t), "DetailType": "TaxLineDetail", "TaxLineDetail": {
                        "TaxRateRef": {"value": "3"}, "PercentBased": true, "TaxPercent": percent(TAX_RATE_BP),
                        "NetAmountTaxable": money(taxable)}}));
                }
                next["TxnTaxDetail"] = json!({"TotalTax": money(t), "TaxLine": tax_lines});
                t
            }
        };
        if e == Entity::Invoice {
            out.push(json!({"Amount": money(sub), "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}}));
        }
        next["Line"] = Value::Array(out);
        let total = sub + tax;
        // Unconfirmed: QuickBooks' fault for lowering a total below what was already paid.
        if total < paid {
            return Err(business(format!("The new total is less than the {} already paid against this transaction", money(paid))));
        }
        next["TotalAmt"] = money(total);
        next["Balance"] = money(total - paid);
    } else {
        next["TotalAmt"] = cur["TotalAmt"].clone();
        next["Balance"] = cur["Balance"].clone();
    }
    Ok(())
}

/// "Voided" goes before the existing note. The separator (" - ") is what a third-party record of a
/// voided BillPayment shows ("Voided - RC 93"); unconfirmed for invoices and payments.
fn voided_note(cur: &Value) -> Value {
    match cur.get("PrivateNote").and_then(Value::as_str).filter(|n| !n.is_empty()) {
        Some(n) if n.starts_with("Voided") => json!(n),
        Some(n) => json!(format!("Voided - {n}")),
        None => json!("Voided"),
    }
}

/// Amounts and quantities to zero in every line and its detail.
fn zero_lines(v: &mut Value) {
    if let Some(lines) = v.get_mut("Line").and_then(Value::as_array_mut) {
        for l in lines {
            l["Amount"] = json!(0);
            let dt = l.get("DetailType").and_then(Value::as_str).unwrap_or_default().to_string();
            if let Some(d) = l.get_mut(&dt).and_then(Value::as_object_mut) {
                for k in ["Qty", "UnitPrice"] {
                    if d.contains_key(k) {
                        d.insert(k.into(), json!(0));
                    }
                }
            }
        }
    }
}

fn void_invoice(org: &mut Org, id: &str, cur: &Value, now: DateTime<Utc>) -> Result<String, WriteErr> {
    // Unconfirmed: the QuickBooks UI voids an invoice with a payment applied (unapplying it) after a
    // warning; third-party tools report the API refusing it. The sandbox refuses.
    if cents(&cur["Balance"]) != cents(&cur["TotalAmt"]) {
        return Err(business("This invoice has a payment applied to it. Delete or unapply the payment before voiding the invoice.".into()));
    }
    let mut v = cur.clone();
    zero_lines(&mut v);
    v["TotalAmt"] = json!(0);
    v["Balance"] = json!(0);
    v["TxnTaxDetail"] = json!({"TotalTax": 0});
    v["PrivateNote"] = voided_note(cur);
    let rec = org.put(Entity::Invoice, id, v, now);
    Ok(answer(Entity::Invoice, &rec.full, now))
}

/// The documents of `txn_type` (`Invoice` for a Payment, `Bill` for a BillPayment) a payment's
/// lines pay, with the amount each line applies (in cents).
fn applied_documents(payment: &Value, txn_type: &str) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for l in payment.get("Line").and_then(Value::as_array).into_iter().flatten() {
        let amount = cents(&l["Amount"]);
        for t in l.get("LinkedTxn").and_then(Value::as_array).into_iter().flatten() {
            if t["TxnType"] == txn_type {
                if let Some(iid) = t["TxnId"].as_str() {
                    out.push((iid.to_string(), amount));
                }
            }
        }
    }
    out
}

/// Gives the invoices a payment (or the bills a bill payment) paid their balance back (the payment
/// no longer pays them).
fn unapply(org: &mut Org, payment_entity: Entity, payment: &Value, now: DateTime<Utc>) {
    let (doc_entity, txn_type) = match payment_entity {
        Entity::BillPayment => (Entity::Bill, "Bill"),
        _ => (Entity::Invoice, "Invoice"),
    };
    for (iid, amount) in applied_documents(payment, txn_type) {
        let Some(mut doc) = org.get(doc_entity, &iid).filter(|r| !r.deleted).map(|r| r.value.clone()) else { continue };
        let bal = (cents(&doc["Balance"]) + amount).min(cents(&doc["TotalAmt"]));
        doc["Balance"] = money(bal);
        org.put(doc_entity, &iid, doc, now);
    }
}

/// Checks a JournalEntry's lines (`POST /journalentry`, and an update that names `Line`): each a
/// `JournalEntryLineDetail` with `PostingType` Debit or Credit and an existing `AccountRef`, and the
/// debits equal to the credits. Intuit documents that a journal entry must balance; the fault's code
/// and wording here (6000, "Transaction must be balanced") are unconfirmed. Returns the total debits
/// in cents (the entry's `TotalAmt`).
pub(crate) fn journal_lines(org: &Org, v: &mut Value) -> Result<i64, WriteErr> {
    let lines = v.get("Line").and_then(Value::as_array).cloned().unwrap_or_default();
    if lines.len() < 2 {
        return Err(missing("Line"));
    }
    let (mut debits, mut credits) = (0i64, 0i64);
    let mut out = Vec::new();
    for (k, l) in lines.into_iter().enumerate() {
        if l.get("DetailType").and_then(Value::as_str) != Some("JournalEntryLineDetail") {
            return Err((
                "2010",
                "Request has invalid or unsupported property",
                "A journal line's DetailType is JournalEntryLineDetail".into(),
            ));
        }
        let amount = l.get("Amount").and_then(Value::as_f64).and_then(crate::lines::exact_cents).ok_or_else(|| missing("Line.Amount"))?;
        let account = l
            .pointer("/JournalEntryLineDetail/AccountRef/value")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| missing("AccountRef"))?;
        let Some(acct) = org.get(Entity::Account, &account).filter(|r| !r.deleted) else {
            return Err(("2500", "Invalid Reference Id", format!("Invalid Reference Id : Account {account} not found")));
        };
        let name = acct.value["Name"].clone();
        match l.pointer("/JournalEntryLineDetail/PostingType").and_then(Value::as_str) {
            Some("Debit") => debits += amount,
            Some("Credit") => credits += amount,
            _ => return Err(missing("PostingType")),
        }
        let mut l = l;
        l["Id"] = json!(k.to_string());
        l["JournalEntryLineDetail"]["AccountRef"] = json!({"value": account, "name": name});
        out.push(l);
    }
    if debits != credits {
        return Err(business("Transaction must be balanced: the debits do not equal the credits.".into()));
    }
    v["Line"] = Value::Array(out);
    Ok(debits)
}

/// Checks a new BillPayment (`POST /billpayment`) and applies it: the bills it names owe less.
///
/// Intuit's API reference (BillPayment, "Create a bill payment"): `VendorRef`, `TotalAmt`,
/// `PayType` (`Check` or `CreditCard`) and `Line` (each with a `LinkedTxn` of `TxnType` `Bill`) are
/// required, and so is `CheckPayment.BankAccountRef` for a cheque or `CreditCardPayment.CCAccountRef`
/// for a card. The fault codes below are the generic ones QuickBooks uses for a missing field
/// (2020), an unknown reference (2500) and a business rule (6000); their wording for bill payments,
/// and whether QuickBooks refuses a bill of another vendor or more than a bill owes, are
/// unconfirmed: the sandbox refuses both (never kinder).
pub(crate) fn create_bill_payment(org: &mut Org, v: &mut Value, now: DateTime<Utc>) -> Result<(), WriteErr> {
    let vid = v.pointer("/VendorRef/value").and_then(Value::as_str).map(str::to_string).ok_or_else(|| missing("VendorRef"))?;
    let Some(vendor) = org.get(Entity::Vendor, &vid).filter(|r| !r.deleted) else {
        return Err(("2500", "Invalid Reference Id", format!("Invalid Reference Id : Vendor {vid} not found")));
    };
    let vname = vendor.value["DisplayName"].clone();
    let total = v.get("TotalAmt").and_then(Value::as_f64).ok_or_else(|| missing("TotalAmt"))?;
    if total <= 0.0 {
        return Err(business("The payment amount must be greater than zero".into()));
    }
    let (pay_key, account_key) = match v.get("PayType").and_then(Value::as_str) {
        Some("Check") => ("CheckPayment", "BankAccountRef"),
        Some("CreditCard") => ("CreditCardPayment", "CCAccountRef"),
        Some(other) => return Err(("2010", "Request has invalid or unsupported property", format!("Invalid PayType: {other}"))),
        None => return Err(missing("PayType")),
    };
    let account = v.pointer(&format!("/{pay_key}/{account_key}/value")).and_then(Value::as_str).map(str::to_string);
    let Some(account) = account else { return Err(missing(&format!("{pay_key}.{account_key}"))) };
    let Some(acct) = org.get(Entity::Account, &account).filter(|r| !r.deleted) else {
        return Err(("2500", "Invalid Reference Id", format!("Invalid Reference Id : Account {account} not found")));
    };
    let acct_name = acct.value["Name"].clone();
    let lines = v.get("Line").and_then(Value::as_array).cloned().unwrap_or_default();
    if lines.is_empty() {
        return Err(missing("Line"));
    }
    let mut applied = 0;
    let mut touched: Vec<(String, i64)> = Vec::new();
    for l in &lines {
        let amount = cents(&l["Amount"]);
        let linked = l.get("LinkedTxn").and_then(Value::as_array).cloned().unwrap_or_default();
        if linked.is_empty() {
            return Err(missing("Line.LinkedTxn"));
        }
        for t in linked {
            if t["TxnType"] != "Bill" {
                return Err(business(format!("A bill payment pays bills, not {}", t["TxnType"])));
            }
            let bid = t["TxnId"].as_str().unwrap_or_default().to_string();
            let Some(bill) = org.get(Entity::Bill, &bid).filter(|r| !r.deleted) else {
                return Err(("2500", "Invalid Reference Id", format!("Invalid Reference Id : Bill {bid} not found")));
            };
            if bill.value.pointer("/VendorRef/value").and_then(Value::as_str) != Some(vid.as_str()) {
                return Err(business(format!("Bill {bid} is another vendor's")));
            }
            let owed = cents(&bill.value["Balance"]) - touched.iter().filter(|(b, _)| *b == bid).map(|(_, a)| a).sum::<i64>();
            if amount > owed {
                return Err(business(format!("The payment amount exceeds the balance of bill {bid}")));
            }
            touched.push((bid, amount));
            applied += amount;
        }
    }
    if applied > cents(&json!(total)) {
        return Err(business("The amounts applied to bills exceed the payment's TotalAmt".into()));
    }
    for (bid, amount) in touched {
        let mut bill = org.get(Entity::Bill, &bid).expect("checked").value.clone();
        bill["Balance"] = money(cents(&bill["Balance"]) - amount);
        org.put(Entity::Bill, &bid, bill, now);
    }
    let ap = org
        .store(Entity::Account)
        .items
        .iter()
        .find(|r| !r.deleted && r.value["AccountType"] == "Accounts Payable")
        .map(|r| json!({"value": r.id, "name": r.value["Name"]}));
    let obj = v.as_object_mut().expect("object");
    obj.insert("VendorRef".into(), json!({"value": vid, "name": vname}));
    if let Some(p) = obj.get_mut(pay_key).and_then(Value::as_object_mut) {
        p.insert(account_key.into(), json!({"value": account, "name": acct_name}));
        if pay_key == "CheckPayment" {
            p.entry("PrintStatus").or_insert(json!("NotSet"));
        }
    }
    if let Some(ap) = ap {
        obj.entry("APAccountRef").or_insert(ap);
    }
    obj.entry("TxnDate").or_insert(json!(crate::model::qbo_today(now)));
    obj.entry("CurrencyRef").or_insert(json!({"value": "USD", "name": "United States Dollar"}));
    obj.insert("domain".into(), json!("QBO"));
    obj.insert("sparse".into(), json!(false));
    Ok(())
}

/// A Payment or a BillPayment voided (`operation=update&include=void`): its invoices or bills owe
/// again, its amounts are zero and its note says Voided. That a BillPayment voids the same way as a
/// Payment follows Intuit's "Void a bill payment" example request; unconfirmed beyond it.
fn void_payment(org: &mut Org, e: Entity, id: &str, cur: &Value, now: DateTime<Utc>) -> Result<String, WriteErr> {
    unapply(org, e, cur, now);
    let mut v = cur.clone();
    zero_lines(&mut v);
    v["TotalAmt"] = json!(0);
    if e == Entity::Payment {
        v["UnappliedAmt"] = json!(0);
    }
    v["PrivateNote"] = voided_note(cur);
    let rec = org.put(e, id, v, now);
    Ok(answer(e, &rec.full, now))
}

fn delete(org: &mut Org, e: Entity, id: &str, cur: &Value, now: DateTime<Utc>) -> Result<String, WriteErr> {
    match e {
        // Name lists cannot be deleted: a sparse update with "Active": false makes them inactive.
        Entity::Contact | Entity::Vendor | Entity::Account => return Err(unsupported("Delete")),
        // Unconfirmed: whether QuickBooks deletes an invoice a payment is applied to (the UI does,
        // unapplying the payment, after a warning). The sandbox refuses.
        Entity::Invoice if cents(&cur["Balance"]) != cents(&cur["TotalAmt"]) => {
            return Err(business("This invoice has a payment applied to it. Delete or unapply the payment first.".into()))
        }
        Entity::Payment | Entity::BillPayment => unapply(org, e, cur, now),
        _ => {}
    }
    org.delete(e, id, now);
    Ok(json!({e.qbo_name(): {"Id": id, "status": "Deleted", "domain": "QBO"}, "time": qbo_time(now)}).to_string())
}
