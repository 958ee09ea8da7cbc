//! Report answers of every provider -> the one report model: QuickBooks' Reports API rows, Xero's
//! `ReportWithRows` (profit and loss, balance sheet, aged receivables by contact) and Zoho's report
//! lists. Asserted besides "no panic" (in particular no overflow panic when hostile amounts are
//! added up: the sums are checked and end in ProviderMalformed): an accepted report serialises and
//! carries every grand total of its kind, and an aged row's buckets add up to its amount.
#![no_main]

mod common;

use chrono::NaiveDate;
use libfuzzer_sys::fuzz_target;
use shared::reports::formats::{quickbooks, xero, xero_aged_contact, zoho};
use shared::reports::{Basis, Report, ReportKind, ReportRequest};

fn check(r: &Report) {
    serde_json::to_string(r).expect("a report serialises");
    let keys: &[&str] = match r.kind {
        ReportKind::ProfitAndLoss => &["income", "cost_of_sales", "expenses", "net_income"],
        ReportKind::BalanceSheet => &["total_assets", "total_liabilities", "total_equity"],
        ReportKind::AgedReceivables => &["total_receivables"],
    };
    for k in keys {
        assert!(r.totals.contains_key(*k), "{k} missing from {:?}", r.totals);
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let (head, body) = data.split_at(2);
    let kind = [ReportKind::ProfitAndLoss, ReportKind::BalanceSheet, ReportKind::AgedReceivables][head[1] as usize % 3];
    let d = NaiveDate::from_ymd_opt(2026, 3, 31);
    let req = match kind {
        ReportKind::ProfitAndLoss => {
            ReportRequest { kind, from: NaiveDate::from_ymd_opt(2026, 1, 1), to: d, as_of: None, basis: Basis::Accrual }
        }
        _ => ReportRequest { kind, from: None, to: None, as_of: d, basis: Basis::Cash },
    };
    let Some(v) = common::json_input(body) else { return };
    let currency = ["USD", "JPY", "KWD", "X"][(head[1] >> 2) as usize % 4];
    let report = match head[0] % 4 {
        0 => quickbooks(&req, "934", &v),
        1 => xero(&req, "t1", &v, currency),
        2 => zoho(&req, "700000001", &v),
        _ => {
            if let Ok(row) = xero_aged_contact(&v, "c1", "Cool Cars", d.unwrap_or_default(), u32::from(head[1] >> 4) % 4) {
                let b = row.buckets.expect("an aged row has buckets");
                assert_eq!(b.len(), 5);
                assert_eq!(b.iter().try_fold(0i64, |a, x| a.checked_add(*x)), Some(row.amount));
            }
            return;
        }
    };
    if let Ok(r) = report {
        check(&r);
    }
});
