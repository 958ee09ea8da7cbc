//! What the main app asks for: a report job's `report` and a passthrough job's `passthrough`,
//! read from the message beside the `SyncJob` (as a push job's `payload` is).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde_json::Value;

use crate::{Error, Result};

/// Which report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    ProfitAndLoss,
    BalanceSheet,
    AgedReceivables,
}

impl ReportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::ProfitAndLoss => "profit_and_loss",
            ReportKind::BalanceSheet => "balance_sheet",
            ReportKind::AgedReceivables => "aged_receivables",
        }
    }
}

/// Accrual: income when invoiced. Cash: when paid.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    #[default]
    Accrual,
    Cash,
}

/// A report job's `report`. Profit and loss covers `from` to `to` (both inclusive); the balance
/// sheet and aged receivables are as of `as_of`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    pub kind: ReportKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<NaiveDate>,
    #[serde(default)]
    pub basis: Basis,
}

/// Longest profit-and-loss period accepted: QuickBooks advises at most six months per request,
/// Xero's and Zoho's reports cover a year comfortably; a longer one is refused rather than sent.
pub const MAX_PERIOD_DAYS: i64 = 366;

impl ReportRequest {
    pub fn from_payload(v: Option<&Value>) -> Result<Self> {
        let v = v.ok_or_else(|| Error::InvalidInput("report jobs need a report object".into()))?;
        let r: ReportRequest = serde_json::from_value(v.clone()).map_err(|e| Error::InvalidInput(format!("report: {e}")))?;
        r.check()?;
        Ok(r)
    }

    fn check(&self) -> Result<()> {
        match self.kind {
            ReportKind::ProfitAndLoss => {
                let (Some(from), Some(to)) = (self.from, self.to) else {
                    return Err(Error::InvalidInput("profit_and_loss needs from and to".into()));
                };
                if from > to || (to - from).num_days() >= MAX_PERIOD_DAYS {
                    return Err(Error::InvalidInput(format!("from must not be after to, and the period at most {MAX_PERIOD_DAYS} days")));
                }
                if self.as_of.is_some() {
                    return Err(Error::InvalidInput("profit_and_loss takes from and to, not as_of".into()));
                }
            }
            ReportKind::BalanceSheet | ReportKind::AgedReceivables => {
                if self.as_of.is_none() || self.from.is_some() || self.to.is_some() {
                    return Err(Error::InvalidInput(format!("{} takes as_of only", self.kind.as_str())));
                }
            }
        }
        Ok(())
    }
}

/// Limits on what a passthrough may carry.
pub const MAX_PATH_LEN: usize = 256;
pub const MAX_QUERY_PARAMS: usize = 20;
pub const MAX_QUERY_LEN: usize = 2048;

/// A passthrough job's `passthrough`: one call relative to the provider's API root for the job's
/// org (QuickBooks `/v3/company/{realm}/`, Xero `/api.xro/2.0/`, Zoho `/books/v3/`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassthroughRequest {
    pub method: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

impl PassthroughRequest {
    /// Parses the shape only; what may be called is the allow-list's business (`passthrough`).
    pub fn from_payload(v: Option<&Value>) -> Result<Self> {
        let v = v.ok_or_else(|| Error::InvalidInput("passthrough jobs need a passthrough object".into()))?;
        serde_json::from_value(v.clone()).map_err(|e| Error::InvalidInput(format!("passthrough: {e}")))
    }
}
