//! Each provider's report format into [`Report`].
//!
//! QuickBooks (Reports API, documented by Intuit): `Header` (`Currency`, `StartPeriod`, ...),
//! `Columns`, `Rows.Row[]` of `type: Section` (with `group`, `Header`, nested `Rows`, `Summary`) and
//! `type: Data` (`ColData[]`, the first cell naming the account with its `id`).
//! Xero (specs/xero `ReportWithRows`): `Reports[0].Rows[]` with `RowType` Header / Section / Row /
//! SummaryRow and `Cells[]` (`Value`, `Attributes[{Id: "account", Value}]`).
//! Zoho Books: its reports API is not in Zoho's published API reference; the shape below is our
//! assumption (unconfirmed), the same one the sandbox serves.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde_json::Value;

use crate::money::{currency_code, currency_scale, parse_minor};
use crate::reports::model::{bucket_of, buckets, checked_sum, class_of_title, Period, Report, Row, Section, SectionClass};
use crate::reports::request::{ReportKind, ReportRequest};
use crate::{Error, Provider, Result};

fn malformed(provider: Provider, m: impl Into<String>) -> Error {
    Error::ProviderMalformed { provider, message: m.into() }
}

/// Amounts that do not add up within `i64` minor units: the answer is not a report we can state.
pub fn overflow(provider: Provider) -> Error {
    malformed(provider, "report amounts overflow when added up")
}

fn row_sum(provider: Provider, rows: &[Row]) -> Result<i64> {
    checked_sum(rows.iter().map(|r| r.amount)).ok_or_else(|| overflow(provider))
}

/// A report amount (number or decimal text; empty means zero) in minor units.
pub fn minor(v: Option<&Value>, scale: u32) -> Option<i64> {
    match v {
        None | Some(Value::Null) => Some(0),
        Some(Value::String(s)) if s.trim().is_empty() => Some(0),
        Some(Value::String(s)) => parse_minor(&s.replace(',', ""), scale),
        Some(Value::Number(n)) => parse_minor(&n.to_string(), scale),
        _ => None,
    }
}

fn str_of<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

fn empty(req: &ReportRequest, provider: Provider, org_id: &str, currency: String) -> Report {
    Report {
        kind: req.kind,
        provider,
        org_id: org_id.to_string(),
        basis: req.basis,
        period: Period { from: req.from, to: req.to, as_of: req.as_of },
        currency,
        sections: Vec::new(),
        totals: BTreeMap::new(),
        ageing: None,
    }
}

// ------------------------------------------------------------------ QuickBooks

/// QuickBooks section groups and what they hold; `None`: a container whose sub-sections are the
/// sections (`TotalLiabilitiesAndEquity`).
fn qbo_group(kind: ReportKind, group: &str) -> Option<SectionClass> {
    match (kind, group) {
        (ReportKind::ProfitAndLoss, "Income") => Some(SectionClass::Income),
        (ReportKind::ProfitAndLoss, "COGS") => Some(SectionClass::CostOfSales),
        (ReportKind::ProfitAndLoss, "Expenses") => Some(SectionClass::Expenses),
        (ReportKind::ProfitAndLoss, "OtherIncome") => Some(SectionClass::OtherIncome),
        (ReportKind::ProfitAndLoss, "OtherExpenses") => Some(SectionClass::OtherExpenses),
        (ReportKind::BalanceSheet, "TotalAssets") => Some(SectionClass::Assets),
        (ReportKind::BalanceSheet, "Liabilities") => Some(SectionClass::Liabilities),
        (ReportKind::BalanceSheet, "Equity") => Some(SectionClass::Equity),
        _ => None,
    }
}

/// The grand total a summary-only (or any) group states.
fn qbo_total_key(kind: ReportKind, group: &str) -> Option<&'static str> {
    match (kind, group) {
        (ReportKind::ProfitAndLoss, "NetIncome") => Some("net_income"),
        (ReportKind::ProfitAndLoss, "GrossProfit") => Some("gross_profit"),
        (ReportKind::BalanceSheet, "TotalAssets") => Some("total_assets"),
        (ReportKind::BalanceSheet, "Liabilities") => Some("total_liabilities"),
        (ReportKind::BalanceSheet, "Equity") => Some("total_equity"),
        _ => None,
    }
}

fn qbo_rows(v: &Value) -> impl Iterator<Item = &Value> {
    v.get("Rows").and_then(|r| r.get("Row")).and_then(Value::as_array).into_iter().flatten()
}

fn qbo_last_amount(cols: Option<&Value>, scale: u32) -> Option<i64> {
    let cols = cols.and_then(Value::as_array)?;
    minor(cols.last().and_then(|c| c.get("value")), scale)
}

fn qbo_leaves(v: &Value, scale: u32, out: &mut Vec<Row>) -> Result<()> {
    for r in qbo_rows(v) {
        if let Some(cols) = r.get("ColData").and_then(Value::as_array) {
            let first = cols.first();
            let amount =
                qbo_last_amount(r.get("ColData"), scale).ok_or_else(|| malformed(Provider::QuickBooks, "report amount is not a number"))?;
            out.push(Row {
                label: first.and_then(|c| str_of(c, "value")).unwrap_or_default().to_string(),
                account_id: first.and_then(|c| str_of(c, "id")).filter(|s| !s.is_empty()).map(str::to_string),
                contact_id: None,
                amount,
                buckets: None,
            });
        } else {
            qbo_leaves(r, scale, out)?;
        }
    }
    Ok(())
}

pub fn quickbooks(req: &ReportRequest, org_id: &str, body: &Value) -> Result<Report> {
    let p = Provider::QuickBooks;
    let header = body.get("Header").ok_or_else(|| malformed(p, "report has no Header"))?;
    let currency = currency_code(str_of(header, "Currency")).unwrap_or_else(|| "USD".into());
    let scale = currency_scale(&currency);
    let mut report = empty(req, p, org_id, currency);
    if req.kind == ReportKind::AgedReceivables {
        // Columns: customer, Current, 1 - 30, 31 - 60, 61 - 90, 91 and over, Total. Titles that say
        // otherwise (another ageing set-up) are refused rather than bucketed wrongly.
        let titles: Vec<String> = body
            .get("Columns")
            .and_then(|c| c.get("Column"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| str_of(c, "ColTitle").unwrap_or_default().to_ascii_lowercase().replace(' ', ""))
            .collect();
        if !titles.is_empty() && titles.get(1..6) != Some(&["current", "1-30", "31-60", "61-90", "91andover"].map(String::from)[..]) {
            return Err(malformed(p, format!("unexpected ageing columns {titles:?}")));
        }
        let mut rows = Vec::new();
        for r in qbo_rows(body) {
            if let Some(cols) = r.get("ColData").and_then(Value::as_array) {
                if cols.len() < 7 {
                    return Err(malformed(p, "aged receivables row has fewer than 7 columns"));
                }
                let mut b = Vec::with_capacity(5);
                for c in &cols[1..6] {
                    b.push(minor(c.get("value"), scale).ok_or_else(|| malformed(p, "aged amount is not a number"))?);
                }
                rows.push(Row {
                    label: str_of(&cols[0], "value").unwrap_or_default().to_string(),
                    account_id: None,
                    contact_id: str_of(&cols[0], "id").map(str::to_string),
                    amount: minor(cols[cols.len() - 1].get("value"), scale).ok_or_else(|| malformed(p, "aged total is not a number"))?,
                    buckets: Some(b),
                });
            } else if str_of(r, "group") == Some("GrandTotal") {
                if let Some(cols) = r.get("Summary").and_then(|s| s.get("ColData")).and_then(Value::as_array) {
                    if cols.len() >= 7 {
                        let mut b = [0i64; 5];
                        for (i, c) in cols[1..6].iter().enumerate() {
                            b[i] = minor(c.get("value"), scale).unwrap_or(0);
                        }
                        report.ageing = Some(buckets(b));
                        if let Some(t) = minor(cols[cols.len() - 1].get("value"), scale) {
                            report.totals.insert("total_receivables".into(), t);
                        }
                    }
                }
            }
        }
        let total = row_sum(p, &rows)?;
        report.sections.push(Section { title: "Receivables".into(), class: SectionClass::Receivables, rows, total });
        report.complete_totals()?;
        return Ok(report);
    }
    fn walk(kind: ReportKind, v: &Value, scale: u32, report: &mut Report) -> Result<()> {
        for r in qbo_rows(v) {
            let group = str_of(r, "group").unwrap_or_default();
            let summary = qbo_last_amount(r.get("Summary").and_then(|s| s.get("ColData")), scale);
            if let (Some(key), Some(t)) = (qbo_total_key(kind, group), summary) {
                report.totals.insert(key.into(), t);
            }
            match qbo_group(kind, group) {
                Some(class) => {
                    let mut rows = Vec::new();
                    qbo_leaves(r, scale, &mut rows)?;
                    let title = r
                        .get("Header")
                        .and_then(|h| h.get("ColData"))
                        .and_then(Value::as_array)
                        .and_then(|c| c.first())
                        .and_then(|c| str_of(c, "value"))
                        .unwrap_or(group)
                        .to_string();
                    let total = match summary {
                        Some(t) => t,
                        None => row_sum(Provider::QuickBooks, &rows)?,
                    };
                    report.sections.push(Section { title, class, rows, total });
                }
                None if r.get("Rows").is_some() => walk(kind, r, scale, report)?,
                None => {}
            }
        }
        Ok(())
    }
    walk(req.kind, body, scale, &mut report)?;
    report.complete_totals()?;
    Ok(report)
}

// ------------------------------------------------------------------ Xero

fn xero_cells(r: &Value) -> &[Value] {
    r.get("Cells").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

fn xero_attr<'a>(cell: &'a Value, id: &str) -> Option<&'a str> {
    cell.get("Attributes")
        .and_then(Value::as_array)?
        .iter()
        .find(|a| str_of(a, "Id").is_some_and(|i| i.eq_ignore_ascii_case(id)))?
        .get("Value")?
        .as_str()
}

fn xero_total_key(label: &str) -> Option<&'static str> {
    match label.trim().to_ascii_lowercase().as_str() {
        "net profit" | "net income" | "net loss" => Some("net_income"),
        "gross profit" => Some("gross_profit"),
        "total assets" => Some("total_assets"),
        "total liabilities" => Some("total_liabilities"),
        "total equity" => Some("total_equity"),
        "net assets" => Some("net_assets"),
        _ => None,
    }
}

fn xero_report(body: &Value) -> Result<&Value> {
    body.get("Reports").and_then(Value::as_array).and_then(|a| a.first()).ok_or_else(|| malformed(Provider::Xero, "no Reports[0]"))
}

/// Profit and loss or balance sheet from Xero's rows; `currency` is the organisation's base
/// currency (Xero's report does not state it).
pub fn xero(req: &ReportRequest, org_id: &str, body: &Value, currency: &str) -> Result<Report> {
    let p = Provider::Xero;
    let currency = currency_code(Some(currency)).unwrap_or_else(|| "USD".into());
    let scale = currency_scale(&currency);
    let mut report = empty(req, p, org_id, currency);
    let amount =
        |c: Option<&Value>| minor(c.and_then(|c| c.get("Value")), scale).ok_or_else(|| malformed(p, "report amount is not a number"));
    for section in xero_report(body)?.get("Rows").and_then(Value::as_array).into_iter().flatten() {
        if str_of(section, "RowType") != Some("Section") {
            continue;
        }
        let title = str_of(section, "Title").unwrap_or_default().trim().to_string();
        let mut rows = Vec::new();
        let mut total = None;
        for r in section.get("Rows").and_then(Value::as_array).into_iter().flatten() {
            let cells = xero_cells(r);
            match str_of(r, "RowType") {
                Some("Row") => rows.push(Row {
                    label: cells.first().and_then(|c| str_of(c, "Value")).unwrap_or_default().to_string(),
                    account_id: cells.first().and_then(|c| xero_attr(c, "account")).map(str::to_string),
                    contact_id: None,
                    amount: amount(cells.get(1))?,
                    buckets: None,
                }),
                Some("SummaryRow") => {
                    let label = cells.first().and_then(|c| str_of(c, "Value")).unwrap_or_default();
                    let v = amount(cells.get(1))?;
                    if let Some(k) = xero_total_key(label) {
                        report.totals.insert(k.into(), v);
                    }
                    total = Some(v);
                }
                _ => {}
            }
        }
        if !title.is_empty() && !rows.is_empty() {
            let total = match total {
                Some(t) => t,
                None => row_sum(p, &rows)?,
            };
            report.sections.push(Section { class: class_of_title(&title), title, rows, total });
        }
    }
    report.complete_totals()?;
    Ok(report)
}

/// Xero's date cells: `2018-06-22T00:00:00`.
fn xero_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.get(..10)?, "%Y-%m-%d").ok()
}

/// One contact's row of the aged receivables from its `AgedReceivablesByContact` answer: every
/// invoice's amount due (the last column), aged by its due date (the third) at `as_of`. A row
/// without a due date (an opening balance) counts as the oldest.
pub fn xero_aged_contact(body: &Value, contact_id: &str, name: &str, as_of: NaiveDate, scale: u32) -> Result<Row> {
    let p = Provider::Xero;
    let mut b = vec![0i64; 5];
    for section in xero_report(body)?.get("Rows").and_then(Value::as_array).into_iter().flatten() {
        for r in section.get("Rows").and_then(Value::as_array).into_iter().flatten() {
            if str_of(r, "RowType") != Some("Row") {
                continue;
            }
            let cells = xero_cells(r);
            let Some(last) = cells.last() else { continue };
            let due = minor(last.get("Value"), scale).ok_or_else(|| malformed(p, "aged amount is not a number"))?;
            if due == 0 {
                continue;
            }
            let i = match cells.get(2).and_then(|c| str_of(c, "Value")).and_then(xero_date) {
                Some(d) => bucket_of((as_of - d).num_days()),
                None => 4,
            };
            b[i] = b[i].checked_add(due).ok_or_else(|| overflow(p))?;
        }
    }
    Ok(Row {
        label: name.to_string(),
        account_id: None,
        contact_id: Some(contact_id.to_string()),
        amount: checked_sum(b.iter().copied()).ok_or_else(|| overflow(p))?,
        buckets: Some(b),
    })
}

// ------------------------------------------------------------------ Zoho (unconfirmed shape)

fn zoho_leaves(v: &Value, scale: u32, out: &mut Vec<Row>) -> Result<()> {
    for t in v.get("account_transactions").and_then(Value::as_array).into_iter().flatten() {
        if t.get("account_transactions").is_some() {
            zoho_leaves(t, scale, out)?;
        } else {
            out.push(Row {
                label: str_of(t, "name").unwrap_or_default().to_string(),
                account_id: str_of(t, "account_id").map(str::to_string),
                contact_id: None,
                amount: minor(t.get("total"), scale).ok_or_else(|| malformed(Provider::Zoho, "report amount is not a number"))?,
                buckets: None,
            });
        }
    }
    Ok(())
}

fn zoho_total_key(name: &str) -> Option<&'static str> {
    match name.trim().to_ascii_lowercase().as_str() {
        "net profit/loss" | "net profit" | "net loss" => Some("net_income"),
        "gross profit" => Some("gross_profit"),
        _ => None,
    }
}

/// Zoho Books reports, in the shape we assume (unconfirmed): `{code: 0, profit_and_loss |
/// balance_sheet: [{name, total, account_transactions: [{name, account_id, total} | nested]}],
/// aged_receivables: [{customer_id, customer_name, current, 1_30, 31_60, 61_90, 91_and_over, total}],
/// page_context: {currency_code, ...}}`.
pub fn zoho(req: &ReportRequest, org_id: &str, body: &Value) -> Result<Report> {
    let p = Provider::Zoho;
    let currency = currency_code(body.get("page_context").and_then(|c| str_of(c, "currency_code"))).unwrap_or_else(|| "USD".into());
    let scale = currency_scale(&currency);
    let mut report = empty(req, p, org_id, currency);
    let key = match req.kind {
        ReportKind::ProfitAndLoss => "profit_and_loss",
        ReportKind::BalanceSheet => "balance_sheet",
        ReportKind::AgedReceivables => "aged_receivables",
    };
    let list = body.get(key).and_then(Value::as_array).ok_or_else(|| malformed(p, format!("report has no {key} list")))?;
    if req.kind == ReportKind::AgedReceivables {
        let mut rows = Vec::new();
        for c in list {
            let mut b = Vec::with_capacity(5);
            for k in ["current", "1_30", "31_60", "61_90", "91_and_over"] {
                b.push(minor(c.get(k), scale).ok_or_else(|| malformed(p, "aged amount is not a number"))?);
            }
            rows.push(Row {
                label: str_of(c, "customer_name").unwrap_or_default().to_string(),
                account_id: None,
                contact_id: str_of(c, "customer_id").map(str::to_string),
                amount: minor(c.get("total"), scale).ok_or_else(|| malformed(p, "aged total is not a number"))?,
                buckets: Some(b),
            });
        }
        let total = row_sum(p, &rows)?;
        report.sections.push(Section { title: "Receivables".into(), class: SectionClass::Receivables, rows, total });
        report.complete_totals()?;
        return Ok(report);
    }
    for s in list {
        let name = str_of(s, "name").unwrap_or_default();
        let total = minor(s.get("total"), scale).ok_or_else(|| malformed(p, "report total is not a number"))?;
        if let Some(k) = zoho_total_key(name) {
            report.totals.insert(k.into(), total);
        }
        if s.get("account_transactions").is_some() {
            let mut rows = Vec::new();
            zoho_leaves(s, scale, &mut rows)?;
            report.sections.push(Section { title: name.to_string(), class: class_of_title(name), rows, total });
        }
    }
    report.complete_totals()?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::request::Basis;
    use serde_json::json;

    fn req(kind: ReportKind) -> ReportRequest {
        let d = NaiveDate::from_ymd_opt(2026, 3, 31);
        match kind {
            ReportKind::ProfitAndLoss => {
                ReportRequest { kind, from: NaiveDate::from_ymd_opt(2026, 1, 1), to: d, as_of: None, basis: Basis::Accrual }
            }
            _ => ReportRequest { kind, from: None, to: None, as_of: d, basis: Basis::Accrual },
        }
    }

    #[test]
    fn quickbooks_profit_and_loss_in_intuits_shape() {
        let body = json!({"Header": {"ReportName": "ProfitAndLoss", "Currency": "USD"},
        "Rows": {"Row": [
            {"type": "Section", "group": "Income", "Header": {"ColData": [{"value": "Income"}, {"value": ""}]},
             "Rows": {"Row": [{"type": "Data", "ColData": [{"value": "Design income", "id": "82"}, {"value": "2250.00"}]},
                              {"type": "Section", "Rows": {"Row": [{"type": "Data", "ColData": [{"value": "Fees", "id": "83"}, {"value": "10.5"}]}]}}]},
             "Summary": {"ColData": [{"value": "Total Income"}, {"value": "2260.50"}]}},
            {"type": "Section", "group": "GrossProfit", "Summary": {"ColData": [{"value": "Gross Profit"}, {"value": "2260.50"}]}},
            {"type": "Section", "group": "Expenses", "Header": {"ColData": [{"value": "Expenses"}, {"value": ""}]},
             "Rows": {"Row": [{"type": "Data", "ColData": [{"value": "Advertising", "id": "7"}, {"value": "100.00"}]}]},
             "Summary": {"ColData": [{"value": "Total Expenses"}, {"value": "100.00"}]}},
            {"type": "Section", "group": "NetIncome", "Summary": {"ColData": [{"value": "Net Income"}, {"value": "2160.50"}]}}
        ]}});
        let r = quickbooks(&req(ReportKind::ProfitAndLoss), "1", &body).unwrap();
        assert_eq!(r.sections.len(), 2);
        assert_eq!(r.sections[0].rows.len(), 2);
        assert_eq!(r.sections[0].rows[1].account_id.as_deref(), Some("83"));
        assert_eq!((r.totals["income"], r.totals["expenses"], r.totals["net_income"]), (226050, 10000, 216050));
        assert!(quickbooks(&req(ReportKind::ProfitAndLoss), "1", &json!({})).is_err());
    }

    #[test]
    fn xero_balance_sheet_in_the_specs_shape() {
        let row = |name: &str, id: &str, v: &str| {
            json!({"RowType": "Row", "Cells": [
            {"Value": name, "Attributes": [{"Value": id, "Id": "account"}]}, {"Value": v}]})
        };
        let body = json!({"Reports": [{"ReportType": "BalanceSheet", "Rows": [
            {"RowType": "Header", "Cells": [{"Value": ""}, {"Value": "31 Mar 2026"}]},
            {"RowType": "Section", "Title": "Assets", "Rows": []},
            {"RowType": "Section", "Title": "Bank", "Rows": [row("Bank", "b1", "50.00"),
                {"RowType": "SummaryRow", "Cells": [{"Value": "Total Bank"}, {"Value": "50.00"}]}]},
            {"RowType": "Section", "Title": "Current Assets", "Rows": [row("Accounts Receivable", "ar", "150.00"),
                {"RowType": "SummaryRow", "Cells": [{"Value": "Total Current Assets"}, {"Value": "150.00"}]}]},
            {"RowType": "Section", "Title": "", "Rows": [{"RowType": "SummaryRow", "Cells": [{"Value": "Total Assets"}, {"Value": "200.00"}]}]},
            {"RowType": "Section", "Title": "Equity", "Rows": [row("Current Year Earnings", "e", "200.00"),
                {"RowType": "SummaryRow", "Cells": [{"Value": "Total Equity"}, {"Value": "200.00"}]}]}
        ]}]});
        let r = xero(&req(ReportKind::BalanceSheet), "t", &body, "NZD").unwrap();
        assert_eq!(r.currency, "NZD");
        assert_eq!((r.totals["total_assets"], r.totals["total_liabilities"], r.totals["total_equity"]), (20000, 0, 20000));
        assert_eq!(r.sections.iter().filter(|s| s.class == SectionClass::Assets).count(), 2);
    }

    #[test]
    fn xero_aged_rows_age_by_due_date() {
        let inv = |due: &str, amt: &str| {
            json!({"RowType": "Row", "Cells": [
            {"Value": "2026-01-01T00:00:00"}, {"Value": "INV"}, {"Value": due}, {"Value": ""}, {"Value": amt}, {"Value": "0.00"}, {"Value": "0.00"}, {"Value": amt}]})
        };
        let body = json!({"Reports": [{"Rows": [{"RowType": "Section", "Rows": [
            inv("2026-04-10T00:00:00", "10.00"), inv("2026-03-01T00:00:00", "20.00"), inv("2025-11-01T00:00:00", "30.00"),
            {"RowType": "SummaryRow", "Cells": [{"Value": "Total"}, {"Value": ""}, {"Value": ""}, {"Value": ""}, {"Value": "60.00"}, {"Value": "0"}, {"Value": "0"}, {"Value": "60.00"}]}]}]}]});
        let r = xero_aged_contact(&body, "c", "Cool Cars", NaiveDate::from_ymd_opt(2026, 3, 31).unwrap(), 2).unwrap();
        assert_eq!(r.amount, 6000);
        assert_eq!(r.buckets.unwrap(), vec![1000, 2000, 0, 0, 3000]);
    }

    #[test]
    fn quickbooks_aged_receivables_trust_only_the_expected_columns() {
        let cols = |t: &[&str]| json!({"Column": t.iter().map(|c| json!({"ColTitle": c})).collect::<Vec<_>>()});
        let data = |v: [&str; 6]| {
            json!({"type": "Data", "ColData": [{"value": "Cool Cars", "id": "3"},
            {"value": v[0]}, {"value": v[1]}, {"value": v[2]}, {"value": v[3]}, {"value": v[4]}, {"value": v[5]}]})
        };
        let good = ["", "Current", "1 - 30", "31 - 60", "61 - 90", "91 and over", "Total"];
        let body = json!({"Header": {"Currency": "USD"}, "Columns": cols(&good), "Rows": {"Row": [
            data(["10.00", "", "5.00", "", "1.00", "16.00"]),
            {"type": "Section", "group": "GrandTotal", "Summary": {"ColData": [{"value": "TOTAL"},
                {"value": "10.00"}, {"value": "0.00"}, {"value": "5.00"}, {"value": "0.00"}, {"value": "1.00"}, {"value": "16.00"}]}}]}});
        let r = quickbooks(&req(ReportKind::AgedReceivables), "1", &body).unwrap();
        assert_eq!(r.totals["total_receivables"], 1600);
        assert_eq!(r.sections[0].rows[0].buckets.as_deref(), Some(&[1000, 0, 500, 0, 100][..]));
        assert_eq!(r.sections[0].rows[0].contact_id.as_deref(), Some("3"));
        let mut other = body.clone();
        other["Columns"] = cols(&["", "Current", "1 - 15", "16 - 30", "31 - 45", "46 and over", "Total"]);
        assert!(quickbooks(&req(ReportKind::AgedReceivables), "1", &other).is_err());
    }

    /// Amounts each within `i64` minor units whose sums are not: every parser answers
    /// ProviderMalformed, none panics or wraps.
    #[test]
    fn hostile_amounts_overflow_into_an_error() {
        let big = "92233720368547758.07"; // i64::MAX minor units
        let as_of = NaiveDate::from_ymd_opt(2026, 3, 31).unwrap();
        let is_overflow = |r: Result<Report>| match r {
            Err(e) => e.code() == crate::ErrorCode::ProviderMalformed,
            Ok(r) => panic!("an overflowing report was accepted: {:?}", r.totals),
        };
        // Xero, one contact's invoices in the same bucket.
        let inv = |amt: &str| json!({"RowType": "Row", "Cells": [{"Value": "2026-01-01T00:00:00"}, {"Value": "INV"}, {"Value": "2026-04-10T00:00:00"}, {"Value": amt}]});
        let body = json!({"Reports": [{"Rows": [{"RowType": "Section", "Rows": [inv(big), inv("0.01")]}]}]});
        let e = xero_aged_contact(&body, "c", "n", as_of, 2).unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::ProviderMalformed, "{e}");
        // Xero, one row per bucket: each bucket fits, the row's total does not.
        let inv2 = |due: &str| json!({"RowType": "Row", "Cells": [{"Value": ""}, {"Value": ""}, {"Value": due}, {"Value": big}]});
        let body =
            json!({"Reports": [{"Rows": [{"RowType": "Section", "Rows": [inv2("2026-04-10T00:00:00"), inv2("2025-01-01T00:00:00")]}]}]});
        assert!(xero_aged_contact(&body, "c", "n", as_of, 2).is_err());
        // Xero profit and loss: a section without a summary row adds its rows up.
        let row = |v: &str| json!({"RowType": "Row", "Cells": [{"Value": "Sales"}, {"Value": v}]});
        let body = json!({"Reports": [{"Rows": [{"RowType": "Section", "Title": "Income", "Rows": [row(big), row(big)]}]}]});
        assert!(is_overflow(xero(&req(ReportKind::ProfitAndLoss), "t", &body, "USD")));
        // Xero: each section total fits, income minus a negative expense does not.
        let body = json!({"Reports": [{"Rows": [
            {"RowType": "Section", "Title": "Income", "Rows": [row(big)]},
            {"RowType": "Section", "Title": "Operating Expenses", "Rows": [row("-1.00")]}]}]});
        assert!(is_overflow(xero(&req(ReportKind::ProfitAndLoss), "t", &body, "USD")));
        // QuickBooks: Data rows without a Summary.
        let data = |v: &str| json!({"type": "Data", "ColData": [{"value": "Sales", "id": "1"}, {"value": v}]});
        let body = json!({"Header": {"Currency": "USD"}, "Rows": {"Row": [
            {"type": "Section", "group": "Income", "Rows": {"Row": [data(big), data(big)]}}]}});
        assert!(is_overflow(quickbooks(&req(ReportKind::ProfitAndLoss), "1", &body)));
        // QuickBooks aged receivables: customers' totals.
        let aged = |t: &str| json!({"type": "Data", "ColData": [{"value": "C", "id": "3"}, {"value": ""}, {"value": ""}, {"value": ""}, {"value": ""}, {"value": ""}, {"value": t}]});
        let body = json!({"Header": {"Currency": "USD"}, "Rows": {"Row": [aged(big), aged(big)]}});
        assert!(is_overflow(quickbooks(&req(ReportKind::AgedReceivables), "1", &body)));
        // Zoho aged receivables: totals, then buckets.
        let c = |t: &str, b: &str| json!({"customer_id": "1", "customer_name": "C", "current": b, "total": t});
        let body = json!({"page_context": {"currency_code": "USD"}, "aged_receivables": [c(big, "0"), c("1.00", "0")]});
        assert!(is_overflow(zoho(&req(ReportKind::AgedReceivables), "1", &body)));
        let body = json!({"page_context": {"currency_code": "USD"}, "aged_receivables": [c("0", big), c("0", big)]});
        assert!(is_overflow(zoho(&req(ReportKind::AgedReceivables), "1", &body)));
        // Zoho profit and loss: section totals that overflow the net.
        let body = json!({"page_context": {"currency_code": "USD"}, "profit_and_loss": [
            {"name": "Operating Income", "total": big, "account_transactions": []},
            {"name": "Operating Expense", "total": "-1.00", "account_transactions": []}]});
        assert!(is_overflow(zoho(&req(ReportKind::ProfitAndLoss), "1", &body)));
        // An amount beyond i64 is refused as not a number, before any sum.
        assert_eq!(minor(Some(&json!("92233720368547758.08")), 2), None);
        assert_eq!(minor(Some(&json!(1e300)), 2), None);
    }

    #[test]
    fn amounts_are_exact_minor_units() {
        assert_eq!(minor(Some(&json!("1,234.56")), 2), Some(123456));
        assert_eq!(minor(Some(&json!(12.5)), 2), Some(1250));
        assert_eq!(minor(Some(&json!("")), 2), Some(0));
        assert_eq!(minor(Some(&json!("abc")), 2), None);
        assert_eq!(minor(Some(&json!([1])), 2), None);
    }
}
