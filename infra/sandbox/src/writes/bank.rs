//! Money spent or received without an invoice or a bill, created through each provider's API:
//! QuickBooks Purchase and Deposit, Xero BankTransactions (SPEND, RECEIVE), Zoho expenses and
//! deposits (`banktransactions` with `transaction_type: deposit`). Transfers stay seeded.
//!
//! What each provider's reference lists as required is required here; what it does not say (whether
//! the bank account must be of a bank type, the refusals' codes and wording) the sandbox refuses and
//! marks unconfirmed, so a client written against it handles the refusal the provider may send.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::data::Org;
use crate::lines::{exact_cents, money};
use crate::model::{parse_time, utc, xero_datestring, xero_msdate, Entity};
use crate::writes::quickbooks::WriteErr;

fn text<'a>(v: &'a Value, path: &str) -> Option<&'a str> {
    v.pointer(path).and_then(Value::as_str).filter(|s| !s.trim().is_empty())
}

/// A live account by id, and whether it is a bank (or card) account.
fn account<'a>(org: &'a Org, id: &str) -> Option<(&'a Value, bool)> {
    let r = org.get(Entity::Account, id).filter(|r| !r.deleted)?;
    let t = ["AccountType", "Type", "account_type"].iter().find_map(|k| r.value.get(*k).and_then(Value::as_str)).unwrap_or_default();
    Some((&r.value, matches!(t, "Bank" | "BANK" | "bank" | "Credit Card" | "CREDITCARD" | "credit_card")))
}

fn qbo_missing(what: &str) -> WriteErr {
    (
        "2020",
        "Required param missing, need to supply the required value for the API",
        format!("Required parameter {what} is missing in the request"),
    )
}

fn qbo_invalid_ref(what: &str, id: &str) -> WriteErr {
    ("2500", "Invalid Reference Id", format!("Invalid Reference Id : {what} {id} not found"))
}

/// QuickBooks Purchase (`Entity::Expense`) or Deposit (`Entity::BankTransaction`): Intuit's API
/// reference requires a Purchase's `AccountRef`, `PaymentType` and `Line` (account- or item-based
/// expense details), and a Deposit's `DepositToAccountRef` and `Line` (`DepositLineDetail` with its
/// `AccountRef`). `TotalAmt` is the lines' sum (the sandbox charges no tax on these). That the
/// account paid from or into must be a bank or card account is unconfirmed (refused, code 6000).
pub(crate) fn qbo_create(org: &Org, e: Entity, v: &mut Value, now: DateTime<Utc>) -> Result<(), WriteErr> {
    let deposit = e == Entity::BankTransaction;
    let (bank_key, detail) =
        if deposit { ("DepositToAccountRef", "DepositLineDetail") } else { ("AccountRef", "AccountBasedExpenseLineDetail") };
    let bank_id = text(v, &format!("/{bank_key}/value")).map(str::to_string).ok_or_else(|| qbo_missing(bank_key))?;
    let Some((bank, is_bank)) = account(org, &bank_id) else { return Err(qbo_invalid_ref("Account", &bank_id)) };
    if !is_bank {
        return Err((
            "6000",
            "A business validation error has occurred while processing your request",
            format!("Business Validation Error: Account {bank_id} is not a bank or credit card account"),
        ));
    }
    let bank_name = bank["Name"].clone();
    if !deposit {
        match text(v, "/PaymentType") {
            Some("Cash" | "Check" | "CreditCard") => {}
            Some(other) => return Err(("2010", "Request has invalid or unsupported property", format!("Invalid PaymentType: {other}"))),
            None => return Err(qbo_missing("PaymentType")),
        }
        if let Some(id) = text(v, "/EntityRef/value").map(str::to_string) {
            let name = [Entity::Vendor, Entity::Contact]
                .iter()
                .find_map(|k| org.get(*k, &id).filter(|r| !r.deleted))
                .map(|r| r.value["DisplayName"].clone());
            let Some(name) = name else { return Err(qbo_invalid_ref("Names element", &id)) };
            v["EntityRef"]["name"] = name;
        }
    }
    let lines = v.get("Line").and_then(Value::as_array).cloned().unwrap_or_default();
    if lines.is_empty() {
        return Err(qbo_missing("Line"));
    }
    let mut total = 0i64;
    let mut out = Vec::new();
    for (k, l) in lines.into_iter().enumerate() {
        let dt = text(&l, "/DetailType").unwrap_or_default().to_string();
        let ok =
            if deposit { dt == "DepositLineDetail" } else { dt == "AccountBasedExpenseLineDetail" || dt == "ItemBasedExpenseLineDetail" };
        if !ok {
            return Err(("2010", "Request has invalid or unsupported property", format!("Unsupported DetailType on this line: {dt}")));
        }
        let amount = l.get("Amount").and_then(Value::as_f64).and_then(exact_cents).ok_or_else(|| qbo_missing("Line.Amount"))?;
        let mut l = l;
        if dt == detail {
            let id = text(&l, &format!("/{detail}/AccountRef/value")).map(str::to_string).ok_or_else(|| qbo_missing("AccountRef"))?;
            let Some((a, _)) = account(org, &id) else { return Err(qbo_invalid_ref("Account", &id)) };
            l[detail]["AccountRef"]["name"] = a["Name"].clone();
        }
        if deposit {
            if let Some(id) = text(&l, "/DepositLineDetail/Entity/value").map(str::to_string) {
                let Some(c) = org.get(Entity::Contact, &id).filter(|r| !r.deleted) else {
                    return Err(qbo_invalid_ref("Names element", &id));
                };
                l["DepositLineDetail"]["Entity"]["name"] = c.value["DisplayName"].clone();
                l["DepositLineDetail"]["Entity"]["type"] = json!("Customer");
            }
        }
        l["Id"] = json!((k + 1).to_string());
        l["LineNum"] = json!(k + 1);
        total += amount;
        out.push(l);
    }
    let o = v.as_object_mut().expect("object");
    o.insert("Line".into(), Value::Array(out));
    o.insert(bank_key.into(), json!({"value": bank_id, "name": bank_name}));
    o.insert("TotalAmt".into(), money(total));
    o.entry("TxnDate").or_insert(json!(crate::model::qbo_today(now)));
    o.entry("CurrencyRef").or_insert(json!({"value": "USD", "name": "United States Dollar"}));
    if !deposit {
        o.entry("Credit").or_insert(json!(false));
        o.entry("PrintStatus").or_insert(json!("NotSet"));
    }
    o.insert("domain".into(), json!("QBO"));
    o.insert("sparse".into(), json!(false));
    Ok(())
}

/// Xero `PUT /BankTransactions` of Type SPEND or RECEIVE (xero_accounting.yaml, BankTransaction:
/// Type, Contact, LineItems and BankAccount are required). A transfer's SPEND-TRANSFER and
/// RECEIVE-TRANSFER sides are made by `/BankTransfers` only (refused here). Totals are the lines'
/// (LineAmountTypes Exclusive, TaxAmount as sent).
pub(crate) fn xero_create(org: &Org, v: &mut Value, now: DateTime<Utc>) -> Vec<String> {
    let mut errs = Vec::new();
    match text(v, "/Type") {
        Some("SPEND" | "RECEIVE") => {}
        Some("SPEND-TRANSFER" | "RECEIVE-TRANSFER") => errs.push("Bank transfers are created through the BankTransfers endpoint".into()),
        Some(t) => errs.push(format!("BankTransaction Type {t} is not valid.")),
        None => errs.push("BankTransaction Type must be specified.".into()),
    }
    let contact = match text(v, "/Contact/ContactID") {
        Some(id) => match org.get(Entity::Contact, &id.to_ascii_lowercase()).filter(|r| !r.deleted) {
            Some(r) => Some(json!({"ContactID": r.id, "Name": r.value["Name"]})),
            None => {
                errs.push(format!("Contact with ContactID {id} could not be found."));
                None
            }
        },
        None => {
            errs.push("A Contact must be specified for this type of transaction".into());
            None
        }
    };
    let bank = match (text(v, "/BankAccount/Code"), text(v, "/BankAccount/AccountID")) {
        (Some(code), _) => org.store(Entity::Account).items.iter().find(|r| !r.deleted && r.value["Code"].as_str() == Some(code)),
        (None, Some(id)) => org.get(Entity::Account, &id.to_ascii_lowercase()).filter(|r| !r.deleted),
        _ => None,
    };
    let bank = match bank {
        Some(r) if r.value["Type"] == "BANK" => Some(json!({"AccountID": r.id, "Code": r.value["Code"], "Name": r.value["Name"]})),
        Some(_) => {
            errs.push("The BankAccount must be a bank account".into());
            None
        }
        None => {
            errs.push("A valid BankAccount must be specified".into());
            None
        }
    };
    let (mut sub, mut tax) = (0i64, 0i64);
    let mut lines = Vec::new();
    for l in v.get("LineItems").and_then(Value::as_array).cloned().unwrap_or_default() {
        let qty = l.get("Quantity").and_then(Value::as_f64).unwrap_or(1.0);
        let unit = l.get("UnitAmount").and_then(Value::as_f64);
        let amount = l.get("LineAmount").and_then(Value::as_f64).or(unit.map(|u| u * qty)).and_then(exact_cents);
        let Some(amount) = amount else {
            errs.push("Each line item needs a LineAmount or a UnitAmount".into());
            continue;
        };
        let code = text(&l, "/AccountCode");
        if code.is_none_or(|c| !org.store(Entity::Account).items.iter().any(|r| !r.deleted && r.value["Code"].as_str() == Some(c))) {
            errs.push("Account code is not valid for a line item".into());
        }
        let t = l.get("TaxAmount").and_then(Value::as_f64).and_then(exact_cents).unwrap_or(0);
        sub += amount;
        tax += t;
        let mut l = l.clone();
        l["LineItemID"] = json!(uuid::Uuid::new_v4().to_string());
        l["Quantity"] = json!(qty);
        l["UnitAmount"] = unit.map_or_else(|| money(amount), |u| json!(u));
        l["LineAmount"] = money(amount);
        l["TaxAmount"] = money(t);
        l.as_object_mut().expect("object").entry("TaxType").or_insert(json!("NONE"));
        lines.push(l);
    }
    if lines.is_empty() && errs.is_empty() {
        errs.push("At least one line item must be specified".into());
    }
    if errs.is_empty() {
        let date = text(v, "/Date").and_then(|d| parse_time(d, utc())).unwrap_or(now);
        let o = v.as_object_mut().expect("object");
        o.insert("Contact".into(), contact.expect("checked"));
        o.insert("BankAccount".into(), bank.expect("checked"));
        o.insert("LineItems".into(), Value::Array(lines));
        o.insert("Date".into(), json!(xero_msdate(date)));
        o.insert("DateString".into(), json!(xero_datestring(date)));
        o.insert("Status".into(), json!("AUTHORISED"));
        o.entry("LineAmountTypes").or_insert(json!("Exclusive"));
        o.entry("CurrencyCode").or_insert(json!("USD"));
        o.entry("CurrencyRate").or_insert(json!(1.0));
        o.insert("SubTotal".into(), money(sub));
        o.insert("TotalTax".into(), money(tax));
        o.insert("Total".into(), money(sub + tax));
        o.insert("IsReconciled".into(), json!(false));
        o.insert("HasAttachments".into(), json!(false));
    }
    errs
}

/// Zoho `POST /expenses` (`Entity::Expense`: `paid_through_account_id`, itemised `line_items` of
/// `account_id` and `amount`, optional `vendor_id`) or `POST /banktransactions` of
/// `transaction_type: deposit` (`Entity::BankTransaction`: `to_account_id`, `from_account_id`,
/// `amount`). Zoho's codes for these refusals are unconfirmed (4, as for other invalid values).
pub(crate) fn zoho_create(org: &Org, e: Entity, v: &mut Value, today: &str) -> Result<(), (i64, String)> {
    let invalid = |f: &str| (4, format!("Invalid value passed for {f}"));
    let named = |id: Option<&str>, bank_only: bool| -> Result<(String, Value), (i64, String)> {
        let id = id.ok_or_else(|| invalid("account_id"))?;
        match account(org, id) {
            Some((a, is_bank)) if is_bank || !bank_only => Ok((id.to_string(), a["account_name"].clone())),
            Some(_) => Err((4, "The account is not a bank account.".into())),
            None => Err((1002, "Account does not exist.".into())),
        }
    };
    if e == Entity::Expense {
        let (bank_id, bank_name) = named(text(v, "/paid_through_account_id"), true)?;
        let vendor = match text(v, "/vendor_id") {
            Some(id) => Some(
                org.get(Entity::Contact, id).filter(|r| !r.deleted).ok_or((1002, "Contact does not exist.".to_string()))?.value
                    ["contact_name"]
                    .clone(),
            ),
            None => None,
        };
        let items = v.get("line_items").and_then(Value::as_array).cloned().unwrap_or_default();
        if items.is_empty() {
            return Err(invalid("line_items"));
        }
        let mut total = 0i64;
        let mut lines = Vec::new();
        for (k, l) in items.into_iter().enumerate() {
            let (aid, aname) = named(text(&l, "/account_id"), false)?;
            let amount =
                l.get("amount").and_then(Value::as_f64).and_then(exact_cents).filter(|c| *c > 0).ok_or_else(|| invalid("amount"))?;
            let mut l = l;
            l["line_item_id"] = json!(format!("{}{:03}", org.id, k + 1));
            l["account_id"] = json!(aid);
            l["account_name"] = aname;
            l["amount"] = money(amount);
            total += amount;
            lines.push(l);
        }
        let first = lines[0].clone();
        let o = v.as_object_mut().expect("object");
        o.insert("paid_through_account_name".into(), bank_name);
        o.insert("paid_through_account_id".into(), json!(bank_id));
        if let Some(n) = vendor {
            o.insert("vendor_name".into(), n);
        }
        o.insert("account_id".into(), first["account_id"].clone());
        o.insert("account_name".into(), first["account_name"].clone());
        o.insert("line_items".into(), Value::Array(lines));
        o.insert("is_itemized_expense".into(), json!(true));
        o.insert("sub_total".into(), money(total));
        o.insert("tax_amount".into(), money(0));
        o.insert("total".into(), money(total));
        o.entry("date").or_insert(json!(today));
        o.entry("currency_code").or_insert(json!("USD"));
        o.entry("status").or_insert(json!("nonbillable"));
        return Ok(());
    }
    match text(v, "/transaction_type") {
        Some("deposit") => {}
        // A sandbox limit: only deposits are created through the API here (transfers are seeded).
        Some(_) => return Err((4, "The sandbox creates deposits only.".into())),
        None => return Err(invalid("transaction_type")),
    }
    let (to_id, to_name) = named(text(v, "/to_account_id"), true)?;
    let (from_id, from_name) = named(text(v, "/from_account_id"), false)?;
    let amount = v.get("amount").and_then(Value::as_f64).and_then(exact_cents).filter(|c| *c > 0).ok_or_else(|| invalid("amount"))?;
    let customer = match text(v, "/customer_id") {
        Some(id) => Some(
            org.get(Entity::Contact, id).filter(|r| !r.deleted).ok_or((1002, "Contact does not exist.".to_string()))?.value["contact_name"]
                .clone(),
        ),
        None => None,
    };
    let o = v.as_object_mut().expect("object");
    o.insert("account_id".into(), json!(to_id));
    o.insert("account_name".into(), to_name.clone());
    o.insert("to_account_name".into(), to_name);
    o.insert("from_account_id".into(), json!(from_id));
    o.insert("from_account_name".into(), from_name);
    o.insert("amount".into(), money(amount));
    if let Some(n) = customer {
        o.insert("customer_name".into(), n);
    }
    o.entry("date").or_insert(json!(today));
    o.entry("currency_code").or_insert(json!("USD"));
    o.insert("status".into(), json!("manually_added"));
    o.insert("debit_or_credit".into(), json!("debit"));
    Ok(())
}
