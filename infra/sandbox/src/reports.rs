//! Financial reports computed from an org's own invoices, payments and accounts, in each
//! provider's report format, so a report always agrees with the records the sandbox serves.
//!
//! The sandbox's books are simple: sales invoices are income (accrual: by invoice date; cash: by
//! payment date), payments go to the bank, an invoice's unpaid part is a receivable aged by its due
//! date, payments beyond what their invoices owe are customer credits (a liability), and earnings
//! are the equity. Bills (`Entity::Bill`) are not counted yet: expenses are zero and payables absent,
//! so reports agree with the records only for orgs without bills.
//!
//! Rules a test can recompute from the records alone:
//! - an invoice counts when it is a live sales invoice (Xero `Type: ACCREC` and not DRAFT, SUBMITTED,
//!   DELETED or VOIDED; Zoho not `draft` or `void`) dated on or before the report date;
//! - a payment counts when live (Xero not DELETED) and dated on or before the report date; what it
//!   applies to an invoice is capped at what that invoice still owes;
//! - money is integer cents (the sandbox's orgs keep USD).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde_json::{json, Value};

use crate::data::{Org, Record};
use crate::model::{parse_time, utc, Entity, Provider};

#[derive(Debug, Clone)]
pub struct Invoice {
    pub id: String,
    pub number: String,
    pub contact_id: String,
    pub contact_name: String,
    pub date: NaiveDate,
    pub due: NaiveDate,
    pub total: i64,
}

#[derive(Debug, Clone)]
pub struct Payment {
    pub date: NaiveDate,
    pub amount: i64,
    /// (invoice id, amount applied)
    pub applied: Vec<(String, i64)>,
}

/// Cents of a JSON amount (number or decimal text).
pub fn cents(v: Option<&Value>) -> i64 {
    let f = match v {
        Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
        Some(Value::String(s)) => s.trim().parse::<f64>().unwrap_or(0.0),
        _ => 0.0,
    };
    (f * 100.0).round() as i64
}

fn s<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(*k))?.as_str()
}

fn day(text: Option<&str>) -> Option<NaiveDate> {
    parse_time(text?, utc()).map(|t| t.date_naive())
}

fn money(c: i64) -> String {
    let sign = if c < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", c.abs() / 100, c.abs() % 100)
}

/// The live sales invoices of an org, whatever provider's shape they are in.
pub fn invoices(org: &Org) -> Vec<Invoice> {
    let p = org.provider;
    org.store(Entity::Invoice).items.iter().filter(|r| !r.deleted).filter_map(|r| invoice(p, r)).collect()
}

fn invoice(p: Provider, r: &Record) -> Option<Invoice> {
    let v = &r.value;
    let created = r.created.date_naive();
    match p {
        Provider::Quickbooks => {
            let date = day(s(v, &["TxnDate"])).unwrap_or(created);
            Some(Invoice {
                id: r.id.clone(),
                number: s(v, &["DocNumber"]).unwrap_or_default().to_string(),
                contact_id: s(v, &["CustomerRef", "value"]).unwrap_or_default().to_string(),
                contact_name: s(v, &["CustomerRef", "name"]).unwrap_or_default().to_string(),
                date,
                due: day(s(v, &["DueDate"])).unwrap_or(date),
                total: cents(v.get("TotalAmt")),
            })
        }
        Provider::Xero => {
            if s(v, &["Type"]) != Some("ACCREC") || matches!(s(v, &["Status"]), Some("DRAFT" | "SUBMITTED" | "DELETED" | "VOIDED")) {
                return None;
            }
            let date = day(s(v, &["DateString"]).or(s(v, &["Date"]))).unwrap_or(created);
            Some(Invoice {
                id: r.id.clone(),
                number: s(v, &["InvoiceNumber"]).unwrap_or_default().to_string(),
                contact_id: s(v, &["Contact", "ContactID"]).unwrap_or_default().to_ascii_lowercase(),
                contact_name: s(v, &["Contact", "Name"]).unwrap_or_default().to_string(),
                date,
                due: day(s(v, &["DueDateString"]).or(s(v, &["DueDate"]))).unwrap_or(date),
                total: cents(v.get("Total")),
            })
        }
        Provider::Zoho => {
            if matches!(s(v, &["status"]), Some("draft" | "void")) {
                return None;
            }
            let date = day(s(v, &["date"])).unwrap_or(created);
            Some(Invoice {
                id: r.id.clone(),
                number: s(v, &["invoice_number"]).unwrap_or_default().to_string(),
                contact_id: s(v, &["customer_id"]).unwrap_or_default().to_string(),
                contact_name: s(v, &["customer_name"]).unwrap_or_default().to_string(),
                date,
                due: day(s(v, &["due_date"])).unwrap_or(date),
                total: cents(v.get("total")),
            })
        }
    }
}

pub fn payments(org: &Org) -> Vec<Payment> {
    let p = org.provider;
    // Payments received only: Xero keeps payments made (ACCPAYPAYMENT) in the same store.
    org.records(Entity::Payment)
        .filter(|r| !r.deleted)
        .filter_map(|r| {
            let v = &r.value;
            let created = r.created.date_naive();
            match p {
                Provider::Quickbooks => Some(Payment {
                    date: day(s(v, &["TxnDate"])).unwrap_or(created),
                    amount: cents(v.get("TotalAmt")),
                    applied: v
                        .get("Line")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(|l| {
                            let inv = l.get("LinkedTxn")?.as_array()?.iter().find(|t| s(t, &["TxnType"]) == Some("Invoice"))?;
                            Some((s(inv, &["TxnId"])?.to_string(), cents(l.get("Amount"))))
                        })
                        .collect(),
                }),
                Provider::Xero => {
                    if s(v, &["Status"]) == Some("DELETED") {
                        return None;
                    }
                    let amount = cents(v.get("Amount"));
                    Some(Payment {
                        date: day(s(v, &["Date"])).unwrap_or(created),
                        amount,
                        applied: s(v, &["Invoice", "InvoiceID"]).map(|i| vec![(i.to_ascii_lowercase(), amount)]).unwrap_or_default(),
                    })
                }
                Provider::Zoho => Some(Payment {
                    date: day(s(v, &["date"])).unwrap_or(created),
                    amount: cents(v.get("amount")),
                    applied: v
                        .get("invoices")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(|i| Some((s(i, &["invoice_id"])?.to_string(), cents(i.get("amount_applied")))))
                        .collect(),
                }),
            }
        })
        .collect()
}

/// An account of the org of a kind (`income`, `receivable`, `bank`): (id, name).
fn account(org: &Org, kind: &str) -> Option<(String, String)> {
    let p = org.provider;
    org.store(Entity::Account).items.iter().filter(|r| !r.deleted).find_map(|r| {
        let v = &r.value;
        let (t, name) = match p {
            Provider::Quickbooks => (s(v, &["AccountType"])?, s(v, &["Name"])?),
            Provider::Xero => (s(v, &["Type"])?, s(v, &["Name"])?),
            Provider::Zoho => (s(v, &["account_type"])?, s(v, &["account_name"])?),
        };
        let t = t.to_ascii_lowercase();
        let hit = match kind {
            "income" => t == "income" || t == "revenue" || t == "sales",
            "receivable" => t.contains("receivable") || (p == Provider::Xero && name == "Accounts Receivable"),
            _ => t == "bank",
        };
        hit.then(|| (r.id.clone(), name.to_string()))
    })
}

/// Everything a report needs as of a date.
#[derive(Debug, Clone, Default)]
pub struct Books {
    /// Accrual income of invoices dated in the period.
    pub income_accrual: i64,
    /// Payments received in the period.
    pub income_cash: i64,
    /// As of the end: payments received so far.
    pub bank: i64,
    /// As of the end: what invoices still owe, per invoice (id -> outstanding).
    pub outstanding: Vec<(Invoice, i64)>,
    /// As of the end: payments beyond what their invoices owed.
    pub credits: i64,
    /// Accrual earnings before the end's year and in it.
    pub earnings_before_year: i64,
    pub earnings_this_year: i64,
    /// Cash earnings likewise.
    pub cash_before_year: i64,
    pub cash_this_year: i64,
}

/// The books of an org for `from..=to` (period figures) and as of `to` (balances).
pub fn books(org: &Org, from: NaiveDate, to: NaiveDate) -> Books {
    let invs = invoices(org);
    let pays = payments(org);
    let year_start = NaiveDate::from_ymd_opt(to.year(), 1, 1).unwrap_or(to);
    let mut b = Books::default();
    let mut applied: HashMap<&str, i64> = HashMap::new();
    let live: HashMap<&str, &Invoice> = invs.iter().filter(|i| i.date <= to).map(|i| (i.id.as_str(), i)).collect();
    for p in pays.iter().filter(|p| p.date <= to) {
        b.bank += p.amount;
        if p.date >= from {
            b.income_cash += p.amount;
        }
        if p.date < year_start {
            b.cash_before_year += p.amount;
        } else {
            b.cash_this_year += p.amount;
        }
        let mut used = 0;
        for (id, a) in &p.applied {
            if let Some(inv) = live.get(id.as_str()) {
                let so_far = applied.entry(inv.id.as_str()).or_default();
                let take = (*a).min(inv.total - *so_far).max(0);
                *so_far += take;
                used += take;
            }
        }
        b.credits += p.amount - used;
    }
    for i in invs.iter().filter(|i| i.date <= to) {
        if i.date >= from {
            b.income_accrual += i.total;
        }
        if i.date < year_start {
            b.earnings_before_year += i.total;
        } else {
            b.earnings_this_year += i.total;
        }
        let owed = i.total - applied.get(i.id.as_str()).copied().unwrap_or(0);
        if owed != 0 {
            b.outstanding.push((i.clone(), owed));
        }
    }
    b
}

pub const BUCKETS: [&str; 5] = ["Current", "1 - 30", "31 - 60", "61 - 90", "91 and over"];

fn bucket(days_overdue: i64) -> usize {
    match days_overdue {
        i64::MIN..=0 => 0,
        1..=30 => 1,
        31..=60 => 2,
        61..=90 => 3,
        _ => 4,
    }
}

/// Per contact (in first-seen order): name and the amounts per ageing bucket as of `as_of`.
pub fn aged(b: &Books, as_of: NaiveDate) -> Vec<(String, String, [i64; 5])> {
    let mut order: Vec<String> = Vec::new();
    let mut by: BTreeMap<String, (String, [i64; 5])> = BTreeMap::new();
    for (inv, owed) in &b.outstanding {
        let e = by.entry(inv.contact_id.clone()).or_insert_with(|| {
            order.push(inv.contact_id.clone());
            (inv.contact_name.clone(), [0; 5])
        });
        e.1[bucket((as_of - inv.due).num_days())] += owed;
    }
    order
        .into_iter()
        .map(|id| {
            let (name, a) = by.remove(&id).unwrap_or_default();
            (id, name, a)
        })
        .collect()
}

pub fn parse_day(q: Option<&String>) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(q?.trim(), "%Y-%m-%d").ok()
}

/// The earliest date the books can hold anything: every period starts here for balances.
pub fn beginning() -> NaiveDate {
    NaiveDate::from_ymd_opt(1900, 1, 1).expect("valid date")
}

// ------------------------------------------------------------------ QuickBooks

fn qbo_cols(cols: &[(&str, &str)]) -> Value {
    json!({"Column": cols.iter().map(|(t, ty)| json!({"ColTitle": t, "ColType": ty})).collect::<Vec<_>>()})
}

fn qbo_data(label: &str, id: Option<&str>, amount: i64) -> Value {
    let mut first = json!({"value": label});
    if let Some(id) = id {
        first["id"] = json!(id);
    }
    json!({"ColData": [first, {"value": money(amount)}], "type": "Data"})
}

fn qbo_section(group: &str, header: &str, rows: Vec<Value>, summary: &str, total: i64) -> Value {
    json!({"Header": {"ColData": [{"value": header}, {"value": ""}]}, "Rows": {"Row": rows},
           "Summary": {"ColData": [{"value": summary}, {"value": money(total)}]}, "type": "Section", "group": group})
}

fn qbo_summary(group: &str, label: &str, total: i64) -> Value {
    json!({"Summary": {"ColData": [{"value": label}, {"value": money(total)}]}, "type": "Section", "group": group})
}

fn qbo_header(name: &str, basis: &str, start: NaiveDate, end: NaiveDate, now: DateTime<Utc>) -> Value {
    json!({"Time": crate::model::qbo_time(now), "ReportName": name, "ReportBasis": basis, "StartPeriod": start.to_string(),
           "EndPeriod": end.to_string(), "SummarizeColumnsBy": "Total", "Currency": "USD",
           "Option": [{"Name": "AccountingStandard", "Value": "GAAP"}, {"Name": "NoReportData", "Value": "false"}]})
}

pub fn quickbooks_pnl(org: &Org, from: NaiveDate, to: NaiveDate, cash: bool, now: DateTime<Utc>) -> Value {
    let b = books(org, from, to);
    let income = if cash { b.income_cash } else { b.income_accrual };
    let acct = account(org, "income").unwrap_or_else(|| ("1".into(), "Sales".into()));
    let mut rows = Vec::new();
    if income != 0 {
        rows.push(qbo_section("Income", "Income", vec![qbo_data(&acct.1, Some(&acct.0), income)], "Total Income", income));
    }
    rows.push(qbo_summary("GrossProfit", "Gross Profit", income));
    rows.push(qbo_summary("NetOperatingIncome", "Net Operating Income", income));
    rows.push(qbo_summary("NetIncome", "Net Income", income));
    json!({"Header": qbo_header("ProfitAndLoss", if cash { "Cash" } else { "Accrual" }, from, to, now),
           "Columns": qbo_cols(&[("", "Account"), ("Total", "Money")]), "Rows": {"Row": rows}})
}

pub fn quickbooks_balance_sheet(org: &Org, as_of: NaiveDate, cash: bool, now: DateTime<Utc>) -> Value {
    let b = books(org, beginning(), as_of);
    let ar: i64 = if cash { 0 } else { b.outstanding.iter().map(|(_, o)| o).sum() };
    let bank_acct = account(org, "bank").unwrap_or_else(|| ("35".into(), "Checking".into()));
    let ar_acct = account(org, "receivable").unwrap_or_else(|| ("84".into(), "Accounts Receivable (A/R)".into()));
    let (credits, before, this) =
        if cash { (0, b.cash_before_year, b.cash_this_year) } else { (b.credits, b.earnings_before_year, b.earnings_this_year) };
    let assets = b.bank + ar;
    let current = vec![
        qbo_section(
            "BankAccounts",
            "Bank Accounts",
            vec![qbo_data(&bank_acct.1, Some(&bank_acct.0), b.bank)],
            "Total Bank Accounts",
            b.bank,
        ),
        qbo_section("AR", "Accounts Receivable", vec![qbo_data(&ar_acct.1, Some(&ar_acct.0), ar)], "Total Accounts Receivable", ar),
    ];
    let assets_rows = vec![qbo_section("CurrentAssets", "Current Assets", current, "Total Current Assets", assets)];
    let liab = vec![qbo_section(
        "CurrentLiabilities",
        "Current Liabilities",
        vec![qbo_data("Customer Credits", None, credits)],
        "Total Current Liabilities",
        credits,
    )];
    let equity = vec![qbo_data("Retained Earnings", None, before), qbo_data("Net Income", None, this)];
    let le = vec![
        qbo_section("Liabilities", "Liabilities", liab, "Total Liabilities", credits),
        qbo_section("Equity", "Equity", equity, "Total Equity", before + this),
    ];
    let start = NaiveDate::from_ymd_opt(as_of.year(), 1, 1).unwrap_or(as_of);
    json!({"Header": qbo_header("BalanceSheet", if cash { "Cash" } else { "Accrual" }, start, as_of, now),
    "Columns": qbo_cols(&[("", "Account"), ("Total", "Money")]),
    "Rows": {"Row": [
        qbo_section("TotalAssets", "ASSETS", assets_rows, "TOTAL ASSETS", assets),
        qbo_section("TotalLiabilitiesAndEquity", "LIABILITIES AND EQUITY", le, "TOTAL LIABILITIES AND EQUITY", credits + before + this),
    ]}})
}

pub fn quickbooks_aged(org: &Org, as_of: NaiveDate, now: DateTime<Utc>) -> Value {
    let b = books(org, beginning(), as_of);
    let mut rows = Vec::new();
    let mut grand = [0i64; 5];
    for (id, name, a) in aged(&b, as_of) {
        let mut cols = vec![json!({"value": name, "id": id})];
        cols.extend(a.iter().map(|x| json!({"value": money(*x)})));
        cols.push(json!({"value": money(a.iter().sum())}));
        rows.push(json!({"ColData": cols, "type": "Data"}));
        for i in 0..5 {
            grand[i] += a[i];
        }
    }
    let mut total = vec![json!({"value": "TOTAL"})];
    total.extend(grand.iter().map(|x| json!({"value": money(*x)})));
    total.push(json!({"value": money(grand.iter().sum())}));
    rows.push(json!({"Summary": {"ColData": total}, "type": "Section", "group": "GrandTotal"}));
    let mut cols = vec![("", "Customer")];
    cols.extend(BUCKETS.iter().map(|b| (*b, "Money")));
    cols.push(("Total", "Money"));
    let mut header = qbo_header("AgedReceivables", "Accrual", as_of, as_of, now);
    header["Option"] = json!([{"Name": "report_date", "Value": as_of.to_string()}, {"Name": "NoReportData", "Value": "false"}]);
    json!({"Header": header, "Columns": qbo_cols(&cols), "Rows": {"Row": rows}})
}

// ------------------------------------------------------------------ Xero

fn xero_cell(v: &str, account: Option<&str>) -> Value {
    match account {
        Some(a) => json!({"Value": v, "Attributes": [{"Value": a, "Id": "account"}]}),
        None => json!({"Value": v}),
    }
}

fn xero_row(label: &str, account: Option<&str>, amount: i64) -> Value {
    json!({"RowType": "Row", "Cells": [xero_cell(label, account), xero_cell(&money(amount), account)]})
}

fn xero_summary(label: &str, amount: i64) -> Value {
    json!({"RowType": "SummaryRow", "Cells": [{"Value": label}, {"Value": money(amount)}]})
}

fn xero_section(title: &str, rows: Vec<Value>) -> Value {
    json!({"RowType": "Section", "Title": title, "Rows": rows})
}

fn long_date(d: NaiveDate) -> String {
    d.format("%-d %B %Y").to_string()
}

fn xero_report(id: &str, name: &str, titles: Vec<String>, header: Vec<&str>, rows: Vec<Value>, now: DateTime<Utc>) -> Value {
    let mut all = vec![json!({"RowType": "Header", "Cells": header.iter().map(|h| json!({"Value": h})).collect::<Vec<_>>()})];
    all.extend(rows);
    json!({"ReportID": id, "ReportName": name, "ReportType": id, "ReportTitles": titles, "ReportDate": long_date(now.date_naive()),
           "UpdatedDateUTC": crate::model::xero_msdate(now), "Fields": [], "Rows": all})
}

pub fn xero_pnl(org: &Org, from: NaiveDate, to: NaiveDate, cash: bool, now: DateTime<Utc>) -> Value {
    let b = books(org, from, to);
    let income = if cash { b.income_cash } else { b.income_accrual };
    let acct = account(org, "income").unwrap_or_else(|| (uuid::Uuid::nil().to_string(), "Sales".into()));
    let col = to.format("%-d %b %y").to_string();
    let mut rows = Vec::new();
    if income != 0 {
        rows.push(xero_section("Income", vec![xero_row(&acct.1, Some(&acct.0), income), xero_summary("Total Income", income)]));
    }
    rows.push(xero_section("", vec![xero_summary("Gross Profit", income)]));
    rows.push(xero_section("", vec![xero_summary("Net Profit", income)]));
    let titles = vec!["Income Statement".into(), org.name.clone(), format!("For the period {} to {}", long_date(from), long_date(to))];
    xero_report("ProfitAndLoss", "Profit and Loss", titles, vec!["", &col], rows, now)
}

pub fn xero_balance_sheet(org: &Org, as_of: NaiveDate, cash: bool, now: DateTime<Utc>) -> Value {
    let b = books(org, beginning(), as_of);
    let ar: i64 = if cash { 0 } else { b.outstanding.iter().map(|(_, o)| o).sum() };
    let nil = uuid::Uuid::nil().to_string();
    let bank = account(org, "bank").unwrap_or_else(|| (nil.clone(), "Business Bank Account".into()));
    let ar_acct = account(org, "receivable").unwrap_or_else(|| (nil.clone(), "Accounts Receivable".into()));
    let (credits, before, this) =
        if cash { (0, b.cash_before_year, b.cash_this_year) } else { (b.credits, b.earnings_before_year, b.earnings_this_year) };
    let col = as_of.format("%-d %b %Y").to_string();
    let rows = vec![
        xero_section("Assets", vec![]),
        xero_section("Bank", vec![xero_row(&bank.1, Some(&bank.0), b.bank), xero_summary("Total Bank", b.bank)]),
        xero_section("Current Assets", vec![xero_row(&ar_acct.1, Some(&ar_acct.0), ar), xero_summary("Total Current Assets", ar)]),
        xero_section("", vec![xero_summary("Total Assets", b.bank + ar)]),
        xero_section("Liabilities", vec![]),
        xero_section(
            "Current Liabilities",
            vec![xero_row("Customer Credits", None, credits), xero_summary("Total Current Liabilities", credits)],
        ),
        xero_section("", vec![xero_summary("Total Liabilities", credits)]),
        xero_section("", vec![xero_summary("Net Assets", b.bank + ar - credits)]),
        xero_section(
            "Equity",
            vec![
                xero_row("Current Year Earnings", None, this),
                xero_row("Retained Earnings", None, before),
                xero_summary("Total Equity", before + this),
            ],
        ),
    ];
    let titles = vec!["Balance Sheet".into(), org.name.clone(), format!("As at {}", long_date(as_of))];
    xero_report("BalanceSheet", "Balance Sheet", titles, vec!["", &col], rows, now)
}

/// One contact's invoices with what is due on each as of `as_of` (Xero's by-contact report).
pub fn xero_aged_by_contact(org: &Org, contact_id: &str, as_of: NaiveDate, now: DateTime<Utc>) -> Value {
    let b = books(org, beginning(), as_of);
    let mut rows = Vec::new();
    let (mut total, mut paid, mut due_sum) = (0i64, 0i64, 0i64);
    let mut name = String::new();
    for (inv, owed) in b.outstanding.iter().filter(|(i, _)| i.contact_id.eq_ignore_ascii_case(contact_id)) {
        name = inv.contact_name.clone();
        let attr = |v: String| json!({"Value": v, "Attributes": [{"Value": inv.id, "Id": "invoiceID"}]});
        let overdue = (as_of - inv.due).num_days();
        let note = if overdue > 0 { format!("{overdue} days overdue") } else { String::new() };
        rows.push(json!({"RowType": "Row", "Cells": [
            attr(format!("{}T00:00:00", inv.date)), attr(inv.number.clone()), attr(format!("{}T00:00:00", inv.due)), attr(note),
            attr(money(inv.total)), attr(money(inv.total - owed)), attr(money(0)), attr(money(*owed)),
        ]}));
        total += inv.total;
        paid += inv.total - owed;
        due_sum += owed;
    }
    rows.push(json!({"RowType": "SummaryRow", "Cells": [{"Value": "Total"}, {"Value": ""}, {"Value": ""}, {"Value": ""},
        {"Value": money(total)}, {"Value": money(paid)}, {"Value": money(0)}, {"Value": money(due_sum)}]}));
    let titles = vec!["Invoices".into(), name, format!("Showing payments to {}", long_date(as_of))];
    xero_report(
        "AgedReceivablesByContact",
        "Aged Receivables By Contact",
        titles,
        vec!["Date", "Number", "Due Date", "", "Total", "Paid", "Credited", "Due"],
        vec![xero_section("", rows)],
        now,
    )
}

// ------------------------------------------------------------------ Zoho (unconfirmed shape)

fn zoho_leaf(name: &str, id: &str, amount: i64) -> Value {
    json!({"name": name, "account_id": id, "total": amount as f64 / 100.0})
}

fn zoho_group(name: &str, total: i64, children: Vec<Value>) -> Value {
    json!({"name": name, "total": total as f64 / 100.0, "account_transactions": children})
}

/// Zoho Books reports are not in Zoho's published API reference: this shape is the one our client
/// assumes (unconfirmed), documented in `shared/src/reports/formats.rs`.
pub fn zoho_pnl(org: &Org, from: NaiveDate, to: NaiveDate, cash: bool) -> Value {
    let b = books(org, from, to);
    let income = if cash { b.income_cash } else { b.income_accrual };
    let acct = account(org, "income").unwrap_or_else(|| ("0".into(), "Sales".into()));
    json!({"code": 0, "message": "success",
        "profit_and_loss": [
            zoho_group("Operating Income", income, if income != 0 { vec![zoho_leaf(&acct.1, &acct.0, income)] } else { vec![] }),
            zoho_group("Cost of Goods Sold", 0, vec![]),
            zoho_group("Operating Expense", 0, vec![]),
            {"name": "Net Profit/Loss", "total": income as f64 / 100.0},
        ],
        "page_context": {"report_name": "Profit and Loss", "from_date": from.to_string(), "to_date": to.to_string(),
            "report_basis": if cash { "Cash" } else { "Accrual" }, "currency_code": "USD"}})
}

pub fn zoho_balance_sheet(org: &Org, as_of: NaiveDate, cash: bool) -> Value {
    let b = books(org, beginning(), as_of);
    let ar: i64 = if cash { 0 } else { b.outstanding.iter().map(|(_, o)| o).sum() };
    let bank = account(org, "bank").unwrap_or_else(|| ("0".into(), "Bank".into()));
    let ar_acct = account(org, "receivable").unwrap_or_else(|| ("0".into(), "Accounts Receivable".into()));
    let (credits, before, this) =
        if cash { (0, b.cash_before_year, b.cash_this_year) } else { (b.credits, b.earnings_before_year, b.earnings_this_year) };
    json!({"code": 0, "message": "success",
        "balance_sheet": [
            zoho_group("Assets", b.bank + ar, vec![zoho_group("Current Assets", b.bank + ar, vec![
                zoho_group("Cash", b.bank, vec![zoho_leaf(&bank.1, &bank.0, b.bank)]),
                zoho_group("Accounts Receivable", ar, vec![zoho_leaf(&ar_acct.1, &ar_acct.0, ar)]),
            ])]),
            zoho_group("Liabilities", credits, vec![zoho_group("Current Liabilities", credits, vec![zoho_leaf("Customer Credits", "0", credits)])]),
            zoho_group("Equities", before + this, vec![zoho_leaf("Retained Earnings", "0", before), zoho_leaf("Current Year Earnings", "0", this)]),
        ],
        "page_context": {"report_name": "Balance Sheet", "to_date": as_of.to_string(), "report_basis": if cash { "Cash" } else { "Accrual" },
            "currency_code": "USD"}})
}

pub fn zoho_aged(org: &Org, as_of: NaiveDate) -> Value {
    let b = books(org, beginning(), as_of);
    let rows: Vec<Value> = aged(&b, as_of)
        .into_iter()
        .map(|(id, name, a)| {
            json!({"customer_id": id, "customer_name": name, "current": a[0] as f64 / 100.0, "1_30": a[1] as f64 / 100.0,
                "31_60": a[2] as f64 / 100.0, "61_90": a[3] as f64 / 100.0, "91_and_over": a[4] as f64 / 100.0,
                "total": a.iter().sum::<i64>() as f64 / 100.0})
        })
        .collect();
    json!({"code": 0, "message": "success", "aged_receivables": rows,
        "page_context": {"report_name": "AR Aging Summary", "as_of_date": as_of.to_string(), "currency_code": "USD"}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn books_balance_and_payments_cap_at_what_is_owed() {
        let now = Utc::now();
        for p in Provider::ALL {
            let mut org = Org::new(p, "o1", "Org", None, now);
            org.generate(Entity::Invoice, now);
            // Two generated payments against the same invoice: the second is a credit.
            org.generate(Entity::Payment, now);
            org.generate(Entity::Payment, now);
            org.generate(Entity::Invoice, now);
            let b = books(&org, beginning(), now.date_naive());
            let ar: i64 = b.outstanding.iter().map(|(_, o)| o).sum();
            assert_eq!(b.bank + ar, b.credits + b.earnings_before_year + b.earnings_this_year, "{p:?} balances");
            assert!(b.credits > 0, "{p:?}");
            assert_eq!(b.outstanding.len(), 1, "{p:?}: the paid invoice owes nothing");
        }
    }

    #[test]
    fn money_has_two_decimals() {
        assert_eq!(money(12345), "123.45");
        assert_eq!(money(-5), "-0.05");
        assert_eq!(money(0), "0.00");
    }
}
