//! One report model for every provider: sections of rows with amounts in integer minor units,
//! section totals, and the grand totals an assistant asks for first (net income, total assets,
//! total receivables with their ageing).

use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::reports::request::{Basis, ReportKind};
use crate::Provider;

/// Days past due of each ageing bucket, inclusive; `None` as the upper bound means "and over".
/// Bucket 0 is "current": not yet due at the report date.
pub const AGEING_BUCKETS: [(&str, i64, Option<i64>); 5] =
    [("current", i64::MIN, Some(0)), ("1_30", 1, Some(30)), ("31_60", 31, Some(60)), ("61_90", 61, Some(90)), ("91_and_over", 91, None)];

/// The bucket index for an amount `days_overdue` past its due date.
pub fn bucket_of(days_overdue: i64) -> usize {
    AGEING_BUCKETS.iter().position(|(_, lo, hi)| days_overdue >= *lo && hi.is_none_or(|h| days_overdue <= h)).unwrap_or(4)
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Period {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_of: Option<NaiveDate>,
}

/// What a section holds, whatever the provider titles it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SectionClass {
    Income,
    CostOfSales,
    Expenses,
    OtherIncome,
    OtherExpenses,
    Assets,
    Liabilities,
    Equity,
    Receivables,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Row {
    pub label: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<String>,
    /// Minor units of the report's currency.
    pub amount: i64,
    /// Aged receivables: the amount per ageing bucket, in `AGEING_BUCKETS` order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buckets: Option<Vec<i64>>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Section {
    pub title: String,
    pub class: SectionClass,
    pub rows: Vec<Row>,
    /// The provider's own total for the section where it gives one, else the sum of the rows.
    pub total: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Bucket {
    pub label: String,
    pub amount: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Report {
    pub kind: ReportKind,
    pub provider: Provider,
    pub org_id: String,
    pub basis: Basis,
    pub period: Period,
    /// ISO 4217; amounts are integer minor units of it.
    pub currency: String,
    pub sections: Vec<Section>,
    /// `income`, `cost_of_sales`, `expenses`, `net_income` (profit and loss); `total_assets`,
    /// `total_liabilities`, `total_equity` (balance sheet); `total_receivables` (aged receivables).
    pub totals: BTreeMap<String, i64>,
    /// Aged receivables: the total per bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ageing: Option<Vec<Bucket>>,
}

/// A section's class from its title (Xero and Zoho title sections; QuickBooks groups are mapped
/// by name before this).
pub fn class_of_title(title: &str) -> SectionClass {
    let t = title.to_ascii_lowercase();
    if t.contains("cost of") {
        SectionClass::CostOfSales
    } else if t.contains("other income") || t.contains("non-operating income") {
        SectionClass::OtherIncome
    } else if t.contains("other expense") || t.contains("non-operating expense") {
        SectionClass::OtherExpenses
    } else if t.contains("expense") || t.contains("overhead") {
        SectionClass::Expenses
    } else if t.contains("income") || t.contains("revenue") || t.contains("sales") {
        SectionClass::Income
    } else if t.contains("asset") || t == "bank" || t.contains("receivable") {
        SectionClass::Assets
    } else if t.contains("liabilit") {
        SectionClass::Liabilities
    } else if t.contains("equit") {
        SectionClass::Equity
    } else {
        SectionClass::Other
    }
}

impl Report {
    /// Fills the grand totals the provider did not state from the sections, so every report of a
    /// kind carries the same keys. Sums are checked: amounts a provider states near `i64::MAX`
    /// minor units make the report malformed, never a wrapped or panicking total.
    pub fn complete_totals(&mut self) -> crate::Result<()> {
        let provider = self.provider;
        let over = || crate::Error::ProviderMalformed { provider, message: "report amounts overflow when added up".into() };
        let sum = |c: SectionClass| checked_sum(self.sections.iter().filter(|s| s.class == c).map(|s| s.total)).ok_or_else(over);
        let add = |k: &str, v: i64, t: &mut BTreeMap<String, i64>| {
            t.entry(k.to_string()).or_insert(v);
        };
        let mut t = std::mem::take(&mut self.totals);
        match self.kind {
            ReportKind::ProfitAndLoss => {
                let income = sum(SectionClass::Income)?;
                let cos = sum(SectionClass::CostOfSales)?;
                let exp = sum(SectionClass::Expenses)?;
                let net = income
                    .checked_sub(cos)
                    .and_then(|v| v.checked_sub(exp))
                    .and_then(|v| v.checked_add(sum(SectionClass::OtherIncome).ok()?))
                    .and_then(|v| v.checked_sub(sum(SectionClass::OtherExpenses).ok()?))
                    .ok_or_else(over)?;
                add("income", income, &mut t);
                add("cost_of_sales", cos, &mut t);
                add("expenses", exp, &mut t);
                add("net_income", net, &mut t);
            }
            ReportKind::BalanceSheet => {
                add("total_assets", sum(SectionClass::Assets)?, &mut t);
                add("total_liabilities", sum(SectionClass::Liabilities)?, &mut t);
                add("total_equity", sum(SectionClass::Equity)?, &mut t);
            }
            ReportKind::AgedReceivables => {
                let total = checked_sum(self.sections.iter().flat_map(|s| &s.rows).map(|r| r.amount)).ok_or_else(over)?;
                add("total_receivables", total, &mut t);
                if self.ageing.is_none() {
                    let mut b = [0i64; 5];
                    for r in self.sections.iter().flat_map(|s| &s.rows) {
                        for (i, a) in r.buckets.iter().flatten().enumerate().take(5) {
                            b[i] = b[i].checked_add(*a).ok_or_else(over)?;
                        }
                    }
                    self.ageing = Some(buckets(b));
                }
            }
        }
        self.totals = t;
        Ok(())
    }
}

/// The sum, or `None` if it leaves `i64`.
pub fn checked_sum(amounts: impl IntoIterator<Item = i64>) -> Option<i64> {
    amounts.into_iter().try_fold(0i64, i64::checked_add)
}

pub fn buckets(amounts: [i64; 5]) -> Vec<Bucket> {
    AGEING_BUCKETS.iter().zip(amounts).map(|((l, _, _), a)| Bucket { label: l.to_string(), amount: a }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_by_days_overdue() {
        assert_eq!(bucket_of(-10), 0);
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1), 1);
        assert_eq!(bucket_of(30), 1);
        assert_eq!(bucket_of(31), 2);
        assert_eq!(bucket_of(90), 3);
        assert_eq!(bucket_of(91), 4);
        assert_eq!(bucket_of(10_000), 4);
    }

    /// The stored report document is a contract (schemas/report.v1.json): the examples satisfy it
    /// and read back as `Report`, and a report the code writes satisfies it too.
    #[test]
    fn report_documents_follow_the_schema() {
        let schema: serde_json::Value = serde_json::from_str(include_str!("../../../schemas/report.v1.json")).unwrap();
        let check = crate::jobs::tests::check_against;
        for text in [
            include_str!("../../../schemas/examples/report-aged-receivables.json"),
            include_str!("../../../schemas/examples/report-profit-and-loss.json"),
        ] {
            let v: serde_json::Value = serde_json::from_str(text).unwrap();
            check(&schema, &v).unwrap();
            let r: Report = serde_json::from_value(v.clone()).unwrap();
            assert_eq!(serde_json::to_value(&r).unwrap(), v, "examples are exactly what the code writes");
            let mut bad = v.clone();
            bad["sections"][0]["rows"][0]["amount"] = "12.50".into();
            assert!(check(&schema, &bad).is_err(), "amounts are integers");
        }
    }

    #[test]
    fn totals_that_leave_i64_are_an_error_not_a_wrap() {
        let row =
            |amount: i64| Row { label: "x".into(), account_id: None, contact_id: None, amount, buckets: Some(vec![amount, 0, 0, 0, 0]) };
        let section = |class, rows: Vec<Row>, total| Section { title: "s".into(), class, rows, total };
        let report = |kind, sections| Report {
            kind,
            provider: Provider::Xero,
            org_id: "o".into(),
            basis: Basis::Accrual,
            period: Period { from: None, to: None, as_of: None },
            currency: "USD".into(),
            sections,
            totals: BTreeMap::new(),
            ageing: None,
        };
        let mut aged = report(ReportKind::AgedReceivables, vec![section(SectionClass::Receivables, vec![row(i64::MAX), row(1)], 0)]);
        let e = aged.complete_totals().unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::ProviderMalformed, "{e}");
        let mut pnl = report(
            ReportKind::ProfitAndLoss,
            vec![section(SectionClass::Income, vec![], i64::MAX), section(SectionClass::Expenses, vec![], i64::MIN)],
        );
        assert!(pnl.complete_totals().is_err(), "income minus a hostile negative expense overflows");
        let mut bs = report(
            ReportKind::BalanceSheet,
            vec![section(SectionClass::Assets, vec![], i64::MIN), section(SectionClass::Assets, vec![], -1)],
        );
        assert!(bs.complete_totals().is_err());
        let mut fine = report(ReportKind::AgedReceivables, vec![section(SectionClass::Receivables, vec![row(i64::MAX - 1), row(1)], 0)]);
        fine.complete_totals().unwrap();
        assert_eq!(fine.totals["total_receivables"], i64::MAX);
    }

    #[test]
    fn titles_classify() {
        assert_eq!(class_of_title("Less Cost of Sales"), SectionClass::CostOfSales);
        assert_eq!(class_of_title("Less Operating Expenses"), SectionClass::Expenses);
        assert_eq!(class_of_title("Income"), SectionClass::Income);
        assert_eq!(class_of_title("Bank"), SectionClass::Assets);
        assert_eq!(class_of_title("Current Liabilities"), SectionClass::Liabilities);
        assert_eq!(class_of_title("Equity"), SectionClass::Equity);
    }
}
