//! The passthrough allow-list: which calls the main app may have us make for a tenant.
//!
//! Only reads (`GET`, no body) of known resources, by path relative to the provider's API root for
//! the job's org. The path is checked before anything else happens: no DynamoDB read, no token, no
//! provider call for a refused one.
//!
//! | provider | allowed paths (`{id}`: 1-64 of `A-Z a-z 0-9 - _`) |
//! | --- | --- |
//! | QuickBooks | `{entity}/{id}` for the entities below; `query` (a `SELECT`); `cdc`; `companyinfo/{id}`; `reports/{report}` |
//! | Xero | `{collection}` and `{collection}/{id}` for the collections below; `Organisation`; `Reports/{report}` |
//! | Zoho Books | `{module}` and `{module}/{id}` for the modules below; `reports/{report}` (Zoho's report paths unconfirmed) |
//!
//! Refused at once: other methods, a body, absolute URLs or another host (`://`, `//`, `@`, `:`),
//! `.` / `..` segments, any `%` (so no encoded traversal), `\`, `?`/`#` in the path (the query goes
//! in `query`), control or non-ASCII characters, and query keys that would override our own org
//! routing or auth (`organization_id`, `minorversion`, anything naming a token).

use crate::reports::request::{PassthroughRequest, MAX_PATH_LEN, MAX_QUERY_LEN, MAX_QUERY_PARAMS};
use crate::{Error, Provider, Result};

const QUICKBOOKS_ENTITIES: &[&str] = &[
    "invoice",
    "customer",
    "payment",
    "account",
    "item",
    "vendor",
    "bill",
    "billpayment",
    "estimate",
    "creditmemo",
    "salesreceipt",
    "journalentry",
    "purchase",
    "employee",
    "class",
    "department",
    "taxcode",
    "term",
];
const QUICKBOOKS_REPORTS: &[&str] = &[
    "ProfitAndLoss",
    "ProfitAndLossDetail",
    "BalanceSheet",
    "TrialBalance",
    "CashFlow",
    "AgedReceivables",
    "AgedReceivableDetail",
    "AgedPayables",
    "AgedPayableDetail",
    "CustomerBalance",
    "CustomerIncome",
    "CustomerSales",
    "GeneralLedger",
    "VendorBalance",
];
const XERO_COLLECTIONS: &[&str] = &[
    "Invoices",
    "Contacts",
    "Accounts",
    "Payments",
    "CreditNotes",
    "Items",
    "BankTransactions",
    "Currencies",
    "TaxRates",
    "TrackingCategories",
    "Quotes",
    "PurchaseOrders",
    "Overpayments",
    "Prepayments",
    "ManualJournals",
];
const XERO_REPORTS: &[&str] = &[
    "ProfitAndLoss",
    "BalanceSheet",
    "TrialBalance",
    "BankSummary",
    "ExecutiveSummary",
    "BudgetSummary",
    "AgedReceivablesByContact",
    "AgedPayablesByContact",
];
const ZOHO_MODULES: &[&str] = &[
    "invoices",
    "contacts",
    "chartofaccounts",
    "customerpayments",
    "items",
    "bills",
    "expenses",
    "creditnotes",
    "estimates",
    "salesorders",
    "purchaseorders",
    "vendorpayments",
    "bankaccounts",
    "journals",
    "taxes",
    "currencies",
];
const ZOHO_REPORTS: &[&str] = &["profitandloss", "balancesheet", "agedreceivables", "agedpayables", "trialbalance", "cashflow"];

/// Query keys the caller may not set: we set the org routing ourselves, and no token travels in a query.
fn reserved_key(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    k == "organization_id" || k == "minorversion" || k.contains("token") || k.contains("auth") || k == "client_secret"
}

fn is_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Checks a passthrough request against the provider's allow-list; returns the path segments to
/// call under the org's API root.
pub fn check(provider: Provider, req: &PassthroughRequest) -> Result<Vec<String>> {
    let refuse = |reason: String| Err(Error::PassthroughNotAllowed { provider, reason });
    if req.method != "GET" {
        return refuse(format!("method {:?} is not allowed (only GET)", req.method.chars().take(16).collect::<String>()));
    }
    if req.body.is_some() {
        return refuse("a body is not allowed on a read".into());
    }
    let path = req.path.as_str();
    if path.is_empty() || path.len() > MAX_PATH_LEN {
        return refuse(format!("path must be 1-{MAX_PATH_LEN} characters"));
    }
    if let Some(bad) = path.chars().find(|c| !c.is_ascii() || c.is_ascii_control() || c.is_whitespace() || "%\\?#@:;".contains(*c)) {
        return refuse(format!("path contains {bad:?}: only a relative path of plain segments is allowed"));
    }
    let rel = path.strip_prefix('/').unwrap_or(path);
    if rel.starts_with('/') {
        return refuse("path must be relative to the API root, not another host".into());
    }
    let segments: Vec<&str> = rel.split('/').collect();
    if segments.iter().any(|s| s.is_empty() || *s == "." || *s == "..") {
        return refuse("path has an empty, '.' or '..' segment".into());
    }
    if req.query.len() > MAX_QUERY_PARAMS {
        return refuse(format!("at most {MAX_QUERY_PARAMS} query parameters"));
    }
    let qlen: usize = req.query.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    if qlen > MAX_QUERY_LEN {
        return refuse(format!("query longer than {MAX_QUERY_LEN} characters"));
    }
    for (k, v) in &req.query {
        if k.is_empty() || k.len() > 64 || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) {
            return refuse(format!("query key {:?} is not allowed", k.chars().take(64).collect::<String>()));
        }
        if reserved_key(k) {
            return refuse(format!("query key {k:?} is set by the integration, not the caller"));
        }
        if v.chars().any(|c| c.is_control()) {
            return refuse(format!("query value of {k:?} has control characters"));
        }
    }
    let allowed = match (provider, segments.as_slice()) {
        (Provider::QuickBooks, ["query"]) => {
            req.query.get("query").is_some_and(|q| q.trim_start().get(..7).is_some_and(|p| p.eq_ignore_ascii_case("select ")))
        }
        (Provider::QuickBooks, ["cdc"]) => true,
        (Provider::QuickBooks, ["companyinfo", id]) => is_id(id),
        (Provider::QuickBooks, ["reports", r]) => QUICKBOOKS_REPORTS.contains(r),
        (Provider::QuickBooks, [e, id]) => QUICKBOOKS_ENTITIES.contains(e) && is_id(id),
        (Provider::Xero, ["Organisation"]) => true,
        (Provider::Xero, ["Reports", r]) => XERO_REPORTS.contains(r),
        (Provider::Xero, [c]) => XERO_COLLECTIONS.contains(c),
        (Provider::Xero, [c, id]) => XERO_COLLECTIONS.contains(c) && is_id(id),
        (Provider::Zoho, ["reports", r]) => ZOHO_REPORTS.contains(r),
        (Provider::Zoho, [m]) => ZOHO_MODULES.contains(m),
        (Provider::Zoho, [m, id]) => ZOHO_MODULES.contains(m) && is_id(id),
        _ => false,
    };
    if !allowed {
        return refuse(format!("path '{rel}' is not on the {provider} allow-list"));
    }
    Ok(segments.into_iter().map(str::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn req(method: &str, path: &str, query: &[(&str, &str)]) -> PassthroughRequest {
        PassthroughRequest {
            method: method.into(),
            path: path.into(),
            query: query.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
            body: None,
        }
    }

    #[test]
    fn known_reads_pass() {
        assert_eq!(check(Provider::QuickBooks, &req("GET", "invoice/130", &[])).unwrap(), vec!["invoice", "130"]);
        assert!(check(Provider::QuickBooks, &req("GET", "/reports/BalanceSheet", &[("date_macro", "Today")])).is_ok());
        assert!(check(Provider::QuickBooks, &req("GET", "query", &[("query", "select * from Invoice")])).is_ok());
        assert!(check(Provider::Xero, &req("GET", "Invoices", &[("where", "Status==\"AUTHORISED\"")])).is_ok());
        assert!(check(Provider::Xero, &req("GET", "Contacts/5e1c7a2b-0000-4000-8000-000000000001", &[])).is_ok());
        assert!(check(Provider::Zoho, &req("GET", "invoices/460000000012345", &[("page", "2")])).is_ok());
    }

    #[test]
    fn everything_else_is_refused_with_the_passthrough_code() {
        let cases: Vec<(Provider, PassthroughRequest)> = vec![
            (Provider::QuickBooks, req("POST", "invoice", &[])),
            (Provider::QuickBooks, req("DELETE", "invoice/1", &[])),
            (Provider::QuickBooks, req("get", "invoice/1", &[])),
            (Provider::QuickBooks, req("GET", "query", &[("query", "delete from Invoice")])),
            (Provider::QuickBooks, req("GET", "../9999/invoice/1", &[])),
            (Provider::QuickBooks, req("GET", "invoice/..", &[])),
            (Provider::QuickBooks, req("GET", "invoice/%2e%2e", &[])),
            (Provider::QuickBooks, req("GET", "invoice/%252e", &[])),
            (Provider::QuickBooks, req("GET", "https://evil.example/x", &[])),
            (Provider::QuickBooks, req("GET", "//evil.example/x", &[])),
            (Provider::QuickBooks, req("GET", "invoice/1@evil.example", &[])),
            (Provider::QuickBooks, req("GET", "invoice/1?x=1", &[])),
            (Provider::QuickBooks, req("GET", "invoice\\1", &[])),
            (Provider::QuickBooks, req("GET", "invoice/1", &[("minorversion", "1")])),
            (Provider::QuickBooks, req("GET", "invoice/1", &[("access_token", "x")])),
            (Provider::QuickBooks, req("GET", "payroll/1", &[])),
            (Provider::QuickBooks, req("GET", "", &[])),
            (Provider::Xero, req("GET", "Invoices/1/Attachments", &[])),
            (Provider::Xero, req("GET", "Reports/Unknown", &[])),
            (Provider::Xero, req("GET", "invoices", &[])),
            (Provider::Zoho, req("GET", "invoices", &[("organization_id", "1")])),
            (Provider::Zoho, req("GET", "settings/webhooks", &[])),
            (Provider::Zoho, req("GET", "invoices/1\u{0}", &[])),
            (Provider::Zoho, req("GET", "invoices/é", &[])),
        ];
        for (p, r) in cases {
            let e = check(p, &r).expect_err(&format!("{p} {r:?} passed"));
            assert_eq!(e.code(), crate::ErrorCode::PassthroughNotAllowed, "{r:?}");
            assert!(!e.is_retryable());
        }
        let mut with_body = req("GET", "invoice/1", &[]);
        with_body.body = Some(serde_json::json!({}));
        assert!(check(Provider::QuickBooks, &with_body).is_err());
    }
}
