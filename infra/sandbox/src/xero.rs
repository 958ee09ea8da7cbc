//! Xero Accounting API: page/pageSize paging (Accounts unpaged), If-Modified-Since, simple `where`
//! filters, creates made idempotent by the Idempotency-Key header, and Xero's error bodies and rate
//! limit headers.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Datelike, Utc};
use serde_json::{json, Value};

use crate::data::{Record, StoredAnswer};
use crate::faults::{rate_limited, xero_error, xero_quota_headers};
use crate::http::{auth_token, header_str, json, json_value};
use crate::model::{parse_time, utc, xero_datestring, xero_msdate, Entity, Provider};
use crate::oauth::{xero_token_detail, xero_unauthorized};
use crate::state::{AppState, Quota, World};
pub(crate) use crate::writes::xero::WriteMode;

const P: Provider = Provider::Xero;
const DEFAULT_PAGE_SIZE: usize = 100;
const MAX_PAGE_SIZE: usize = 1000;
const PROVIDER_NAME: &str = "Sandbox App";

fn forbidden() -> Response {
    xero_error(StatusCode::FORBIDDEN, "Forbidden", "AuthenticationUnsuccessful")
}

/// Token, then the xero-tenant-id header (must be one of the token's connections), then the
/// tenant's and app's rate limits. Returns the tenant id and the quota left.
fn authorize(w: &mut World, headers: &HeaderMap) -> Result<(String, Quota), Response> {
    let Some(token) = auth_token(headers, "Bearer") else {
        return Err(xero_unauthorized("AuthenticationUnsuccessful"));
    };
    let (client, tenants) = match w.grant_for_access(P, token) {
        Ok(g) => (g.client_id.clone(), w.grant_orgs(g)),
        Err(e) => return Err(xero_unauthorized(&xero_token_detail(e))),
    };
    let Some(tenant) = header_str(headers, "xero-tenant-id").map(str::trim) else {
        return Err(forbidden());
    };
    let Some(tenant) = tenants.iter().find(|t| t.eq_ignore_ascii_case(tenant)).cloned() else {
        return Err(forbidden());
    };
    match w.check_rate(P, &tenant, &client) {
        Ok(q) => Ok((tenant, q)),
        Err(l) => Err(rate_limited(P, &l)),
    }
}

fn envelope_head(now: DateTime<Utc>) -> String {
    format!(
        "{{\"Id\":\"{}\",\"Status\":\"OK\",\"ProviderName\":\"{PROVIDER_NAME}\",\"DateTimeUTC\":\"{}\"",
        uuid::Uuid::new_v4(),
        xero_msdate(now)
    )
}

fn ok(body: String, q: &Quota) -> Response {
    xero_quota_headers(json(StatusCode::OK, body), q)
}

/// One clause of Xero's `where`: `Path==value` or `Path!=value`, joined by AND. Values are "string",
/// numbers, true/false, or guid("...").
#[derive(Debug, PartialEq)]
struct Clause {
    path: Vec<String>,
    negate: bool,
    value: Value,
}

fn parse_where(s: &str) -> Result<Vec<Clause>, String> {
    let mut out = Vec::new();
    for part in split_and(s) {
        let part = part.trim();
        let (lhs, rhs, negate) = if let Some((l, r)) = part.split_once("!=") {
            (l, r, true)
        } else if let Some((l, r)) = part.split_once("==") {
            (l, r, false)
        } else {
            return Err(format!("unsupported where clause: {part}"));
        };
        let rhs = rhs.trim();
        let value = if let Some(inner) = rhs.strip_prefix("guid(").or_else(|| rhs.strip_prefix("Guid(")).and_then(|r| r.strip_suffix(')')) {
            json!(inner.trim().trim_matches('"').to_ascii_lowercase())
        } else if rhs.starts_with('"') && rhs.ends_with('"') && rhs.len() >= 2 {
            json!(rhs[1..rhs.len() - 1])
        } else if rhs == "true" || rhs == "false" {
            json!(rhs == "true")
        } else if let Ok(n) = rhs.parse::<f64>() {
            json!(n)
        } else {
            return Err(format!("unsupported where value: {rhs}"));
        };
        out.push(Clause { path: lhs.trim().split('.').map(str::to_string).collect(), negate, value });
    }
    Ok(out)
}

fn split_and(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = s;
    loop {
        let amp = rest.find("&&").map(|i| (i, 2));
        let and = rest.to_ascii_uppercase().find(" AND ").map(|i| (i, 5));
        let Some((i, width)) = [amp, and].into_iter().flatten().min() else { break };
        parts.push(&rest[..i]);
        rest = &rest[i + width..];
    }
    parts.push(rest);
    parts
}

fn clause_ok(r: &Record, c: &Clause) -> bool {
    let actual = c.path.iter().try_fold(&r.value, |v, k| v.get(k.as_str()));
    let eq = match (actual, &c.value) {
        (Some(Value::String(a)), Value::String(b)) => a.eq_ignore_ascii_case(b),
        (Some(Value::Number(a)), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Some(a), b) => a == b,
        (None, _) => false,
    };
    eq != c.negate
}

pub async fn list(State(st): State<AppState>, e: Entity, Query(q): Query<HashMap<String, String>>, headers: HeaderMap) -> Response {
    let mut w = st.lock();
    let (tenant, quota) = match authorize(&mut w, &headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let now = w.now();
    let since = match header_str(&headers, "if-modified-since") {
        Some(s) => match parse_time(s, utc()) {
            Some(t) => Some(t),
            None => return validation_error(&format!("If-Modified-Since could not be parsed: {s}"), vec![], &quota),
        },
        None => None,
    };
    let clauses = match q.get("where").map(|s| parse_where(s)) {
        Some(Ok(c)) => c,
        Some(Err(m)) => return validation_error(&m, vec![], &quota),
        None => Vec::new(),
    };
    let list_param = |k: &str| -> Option<Vec<String>> {
        q.get(k).map(|s| s.split(',').map(|x| x.trim().to_ascii_lowercase()).filter(|x| !x.is_empty()).collect())
    };
    let ids = list_param("IDs");
    let statuses = list_param("Statuses");
    let contact_ids = list_param("ContactIDs");
    let summary_only = q.get("summaryOnly").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let include_archived = q.get("includeArchived").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let include_deleted = q.get("includeDeleted").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let org = w.org(P, &tenant).expect("authorized tenant exists");
    let rows: Vec<&Record> = org
        .store(e)
        .items
        .iter()
        .filter(|r| !r.deleted)
        // TaxRates take no If-Modified-Since (xero_accounting.yaml): it is ignored there, as Xero would.
        .filter(|r| matches!(e, Entity::TaxRate | Entity::TrackingCategory) || since.is_none_or(|s| r.updated > s))
        // Archived tracking categories are listed only with includeArchived=true (xero_accounting.yaml).
        .filter(|r| e != Entity::TrackingCategory || include_archived || r.value["Status"].as_str() != Some("ARCHIVED"))
        // Deleted bank transfers are listed only with includeDeleted=true (xero_accounting.yaml).
        .filter(|r| e != Entity::BankTransfer || include_deleted || r.value["Status"].as_str() != Some("DELETED"))
        .filter(|r| ids.as_ref().is_none_or(|ids| ids.contains(&r.id.to_ascii_lowercase())))
        .filter(|r| statuses.as_ref().is_none_or(|s| r.value["Status"].as_str().is_some_and(|x| s.contains(&x.to_ascii_lowercase()))))
        .filter(|r| {
            contact_ids.as_ref().is_none_or(|c| {
                r.value.pointer("/Contact/ContactID").and_then(Value::as_str).is_some_and(|x| c.contains(&x.to_ascii_lowercase()))
            })
        })
        .filter(|r| clauses.iter().all(|c| clause_ok(r, c)))
        .collect();
    // `order` names any returned element with ASC or DESC (xero_accounting.yaml). The sandbox orders
    // by UpdatedDateUTC only (what the sync worker asks for); other elements keep store order. A
    // stable sort: records of one time keep store order (Xero's tie order is unconfirmed).
    let mut rows = rows;
    if let Some(o) = q.get("order") {
        let mut parts = o.split_whitespace();
        if parts.next().is_some_and(|f| f.eq_ignore_ascii_case("UpdatedDateUTC")) {
            let desc = parts.next().is_some_and(|d| d.eq_ignore_ascii_case("DESC"));
            rows.sort_by(|a, b| if desc { b.updated.cmp(&a.updated) } else { a.updated.cmp(&b.updated) });
        }
    }

    let mut body = envelope_head(now);
    let page_rows: Vec<&Record> =
        if matches!(e, Entity::Account | Entity::TaxRate | Entity::Item | Entity::TrackingCategory | Entity::BankTransfer) {
            // Accounts, tax rates, items and bank transfers are never paged (their parameters have no page).
            rows
        } else {
            let page = q.get("page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(1).max(1);
            let size = q.get("pageSize").and_then(|p| p.parse::<usize>().ok()).unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, MAX_PAGE_SIZE);
            let count = rows.len();
            let pages = count.div_ceil(size);
            body.push_str(&format!(",\"pagination\":{{\"page\":{page},\"pageSize\":{size},\"pageCount\":{pages},\"itemCount\":{count}}}"));
            rows.into_iter().skip((page - 1) * size).take(size).collect()
        };
    body.push_str(&format!(",\"{}\":[", e.xero_name()));
    for (k, r) in page_rows.iter().enumerate() {
        if k > 0 {
            body.push(',');
        }
        if summary_only && e == Entity::Invoice {
            let mut v = r.value.clone();
            if let Some(o) = v.as_object_mut() {
                o.remove("LineItems");
            }
            body.push_str(&v.to_string());
        } else {
            body.push_str(&r.full);
        }
    }
    body.push_str("]}");
    ok(body, &quota)
}

pub async fn read(State(st): State<AppState>, e: Entity, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let mut w = st.lock();
    let (tenant, quota) = match authorize(&mut w, &headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let now = w.now();
    let org = w.org(P, &tenant).expect("authorized");
    // Invoices and contacts can also be fetched by their number.
    let number_field = match e {
        Entity::Invoice => Some("InvoiceNumber"),
        Entity::Contact => Some("ContactNumber"),
        _ => None,
    };
    let found = org
        .get(e, &id.to_ascii_lowercase())
        .or_else(|| org.get(e, &id))
        .or_else(|| number_field.and_then(|f| org.store(e).items.iter().find(|r| r.value[f].as_str() == Some(id.as_str()))));
    match found.filter(|r| !r.deleted) {
        Some(r) => ok(format!("{},\"{}\":[{}]}}", envelope_head(now), e.xero_name(), r.full), &quota),
        None => {
            xero_quota_headers(xero_error(StatusCode::NOT_FOUND, "NotFound", "The resource you're looking for cannot be found"), &quota)
        }
    }
}

pub async fn organisation(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let mut w = st.lock();
    let (tenant, quota) = match authorize(&mut w, &headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let now = w.now();
    let org = w.org(P, &tenant).expect("authorized");
    let o = json!({
        "OrganisationID": org.id, "Name": org.name, "LegalName": org.name, "PaysTax": true, "Version": "GLOBAL",
        "OrganisationType": "COMPANY", "BaseCurrency": "USD", "CountryCode": "US", "IsDemoCompany": false,
        "OrganisationStatus": "ACTIVE", "CreatedDateUTC": xero_msdate(org.created), "ShortCode": format!("!{}", org.id.chars().take(5).collect::<String>()),
        "Timezone": "UTC", "LineOfBusiness": "Sandbox", "Class": "STANDARD", "Edition": "BUSINESS",
    });
    ok(format!("{},\"Organisations\":[{}]}}", envelope_head(now), o), &quota)
}

/// GET /Reports/{name}: ProfitAndLoss (`fromDate`, `toDate`, `paymentsOnly`), BalanceSheet (`date`,
/// `paymentsOnly`) and AgedReceivablesByContact (`contactId` required, `date`), computed from the
/// tenant's records (`crate::reports`). Other reports answer 404 here.
pub async fn report(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut w = st.lock();
    let (tenant, quota) = match authorize(&mut w, &headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let now = w.now();
    let org = w.org(P, &tenant).expect("authorized");
    let today = now.date_naive();
    let cash = q.get("paymentsOnly").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let date = |k: &str, default: chrono::NaiveDate| match q.get(k) {
        None => Ok(default),
        Some(_) => crate::reports::parse_day(q.get(k)).ok_or_else(|| validation_error(&format!("{k} is not a valid date"), vec![], &quota)),
    };
    let report = match name.as_str() {
        "ProfitAndLoss" => {
            let month_start = today.with_day(1).unwrap_or(today);
            match (date("fromDate", month_start), date("toDate", today)) {
                (Ok(f), Ok(t)) => crate::reports::xero_pnl(org, f, t, cash, now),
                (Err(r), _) | (_, Err(r)) => return r,
            }
        }
        "BalanceSheet" => match date("date", today) {
            Ok(d) => crate::reports::xero_balance_sheet(org, d, cash, now),
            Err(r) => return r,
        },
        "TrialBalance" => match date("date", today) {
            Ok(d) => crate::reports::xero_trial_balance(org, d, cash, now),
            Err(r) => return r,
        },
        "AgedReceivablesByContact" => {
            let Some(contact) = q.get("contactId").or_else(|| q.get("contactID")).filter(|c| !c.is_empty()) else {
                return validation_error("contactId is a required parameter", vec![], &quota);
            };
            match date("date", today) {
                Ok(d) => crate::reports::xero_aged_by_contact(org, contact, d, now),
                Err(r) => return r,
            }
        }
        _ => return xero_error(StatusCode::NOT_FOUND, "NotFound", "The resource you're looking for cannot be found"),
    };
    ok(format!("{},\"Reports\":[{}]}}", envelope_head(now), report), &quota)
}

fn validation_body(message: &str, elements: Vec<Value>) -> Value {
    json!({"ErrorNumber": 10, "Type": "ValidationException", "Message": message, "Elements": elements})
}

pub(crate) fn validation_error(message: &str, elements: Vec<Value>, q: &Quota) -> Response {
    xero_quota_headers(json_value(StatusCode::BAD_REQUEST, &validation_body(message, elements)), q)
}

/// PUT/POST /{Entity}: creates (or with the id field present, updates) one or more objects. A repeated
/// Idempotency-Key replays the first answer.
pub async fn create(
    State(st): State<AppState>,
    e: Entity,
    Query(_q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    save(&st, e, &headers, &body, WriteMode::Post)
}

/// The body of every write: `mode` says whether ids may update (POST), may not (PUT), or must name
/// the record of the path (POST /{Entity}/{id}).
pub(crate) fn save(st: &AppState, e: Entity, headers: &HeaderMap, body: &Bytes, mode: WriteMode) -> Response {
    let mut w = st.lock();
    let (tenant, quota) = match authorize(&mut w, headers) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let key = header_str(headers, "idempotency-key").map(str::to_string);
    if let Some(k) = &key {
        if k.len() > 128 {
            return validation_error("Idempotency-Key must be at most 128 characters", vec![], &quota);
        }
        if let Some(prev) = w.org(P, &tenant).and_then(|o| o.idempotency.get(k)) {
            let status = StatusCode::from_u16(prev.status).unwrap_or(StatusCode::OK);
            return xero_quota_headers(json(status, prev.body.clone()), &quota);
        }
    }
    let parsed: Result<Value, _> = serde_json::from_slice(body);
    // PUT /Accounts takes one Account object (the OpenAPI request schema is `Account`); an
    // `{"Accounts": [..]}` wrapper or an array is refused. How Xero words that refusal is unconfirmed.
    if e == Entity::Account {
        match &parsed {
            Ok(Value::Object(o)) if !o.contains_key(e.xero_name()) => {}
            Ok(_) => return validation_error("The request body must be a single Account object, not an Accounts array", vec![], &quota),
            Err(_) => {}
        }
    }
    let items: Vec<Value> = match parsed {
        Ok(Value::Object(mut o)) => match o.remove(e.xero_name()) {
            Some(Value::Array(a)) => a,
            Some(_) => return validation_error(&format!("{} must be an array", e.xero_name()), vec![], &quota),
            None => vec![Value::Object(o)],
        },
        Ok(Value::Array(a)) => a,
        _ => return validation_error("The request body could not be parsed as JSON", vec![], &quota),
    };
    let items = match crate::writes::xero::check_mode(w.org(P, &tenant).expect("authorized"), e, items, &mode) {
        Ok(items) => items,
        Err(m) => return validation_error(&m, vec![], &quota),
    };
    let now = w.now();
    let org_snapshot = w.org(P, &tenant).expect("authorized").clone();
    let mut prepared = Vec::new();
    let mut failed = false;
    let mut elements = Vec::new();
    // Validate the whole batch against a copy first: with summarizeErrors (the default) one bad
    // element fails the request and nothing is saved.
    let mut scratch = org_snapshot;
    for item in items {
        match prepare(&mut scratch, e, item.clone(), now) {
            Ok((id, v)) => {
                scratch.put(e, &id, v.clone(), now);
                prepared.push((id, v));
                elements.push(item);
            }
            Err(errs) => {
                failed = true;
                let mut el = item.clone();
                el["ValidationErrors"] = Value::Array(errs.into_iter().map(|m| json!({"Message": m})).collect());
                elements.push(el);
            }
        }
    }
    let (status, body) = if failed {
        let only_errors: Vec<Value> = elements.into_iter().filter(|el| el.get("ValidationErrors").is_some()).collect();
        (StatusCode::BAD_REQUEST, validation_body("A validation exception occurred", only_errors).to_string())
    } else {
        let org = w.org_mut(P, &tenant).expect("authorized");
        // Side effects computed on the scratch copy (e.g. invoice AmountDue after a payment) carry over.
        *org = scratch;
        let recs: Vec<String> = prepared.iter().map(|(id, _)| org.get(e, id).expect("saved").full.to_string()).collect();
        (StatusCode::OK, format!("{},\"{}\":[{}]}}", envelope_head(now), e.xero_name(), recs.join(",")))
    };
    if let Some(k) = key {
        if let Some(org) = w.org_mut(P, &tenant) {
            org.idempotency.insert(k, StoredAnswer { status: status.as_u16(), body: body.clone(), entity: e });
        }
    }
    xero_quota_headers(json(status, body), &quota)
}

pub(crate) fn s<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str).filter(|s| !s.trim().is_empty())
}

/// Validates one element and returns (id, value to store) in Xero's stored shape.
fn prepare(org: &mut crate::data::Org, e: Entity, mut v: Value, now: DateTime<Utc>) -> Result<(String, Value), Vec<String>> {
    if !v.is_object() {
        return Err(vec!["Each element must be an object".into()]);
    }
    let id_field = e.xero_id_field();
    let existing = s(&v, id_field).map(str::to_ascii_lowercase);
    if let Some(id) = &existing {
        let Some(cur) = org.get(e, id).filter(|r| !r.deleted) else {
            return Err(vec![format!("{id_field} {id} could not be found")]);
        };
        let cur = cur.value.clone();
        return crate::writes::xero::update(org, e, id, &cur, v, now).map(|merged| (id.clone(), merged));
    }
    let mut errs = Vec::new();
    let live = |org: &crate::data::Org, ent: Entity| {
        org.store(ent).items.iter().filter(|r| !r.deleted).map(|r| r.value.clone()).collect::<Vec<_>>()
    };
    // A credit note is made like an invoice of its side (ACCRECCREDIT like ACCREC, ACCPAYCREDIT
    // like ACCPAY) and then given its credit shape (xero_accounting.yaml, CreditNote).
    let credit_type = if e == Entity::CreditNote { s(&v, "Type").map(str::to_string) } else { None };
    let twin = if e == Entity::CreditNote {
        match credit_type.as_deref() {
            Some("ACCRECCREDIT") => v["Type"] = json!("ACCREC"),
            Some("ACCPAYCREDIT") => v["Type"] = json!("ACCPAY"),
            Some(t) => return Err(vec![format!("CreditNote Type {t} is not valid.")]),
            None => return Err(vec!["CreditNote Type must be specified.".into()]),
        }
        Entity::Invoice
    } else {
        e
    };
    match twin {
        // Never the twin: made as an Invoice.
        Entity::CreditNote => {}
        // Reference data is seeded (`/_sandbox/seed`); the sandbox does not create tax rates.
        Entity::TaxRate | Entity::TaxComponent => errs.push("The sandbox does not create tax rates; seed them.".into()),
        Entity::Item => errs.push("The sandbox does not create items; seed them.".into()),
        Entity::TrackingCategory | Entity::Department => errs.push("The sandbox does not create tracking categories; seed them.".into()),
        Entity::Journal => {
            if s(&v, "Narration").is_none() {
                errs.push("Narration cannot be empty".into());
            }
            let status = s(&v, "Status").unwrap_or("DRAFT").to_string();
            if !["DRAFT", "POSTED"].contains(&status.as_str()) {
                errs.push(format!("Manual journal not of valid status for creation: {status}"));
            }
            match crate::writes::xero::journal_lines(org, &v) {
                Ok(lines) => v["JournalLines"] = Value::Array(lines),
                Err(mut m) => errs.append(&mut m),
            }
            if errs.is_empty() {
                let date = s(&v, "Date").and_then(|d| parse_time(d, utc())).unwrap_or(now);
                let o = v.as_object_mut().expect("object");
                o.insert("Status".into(), json!(status));
                o.insert("Date".into(), json!(xero_msdate(date)));
                o.entry("LineAmountTypes").or_insert(json!("NoTax"));
                o.entry("ShowOnCashBasisReports").or_insert(json!(true));
                o.insert("HasAttachments".into(), json!(false));
            }
        }
        Entity::Contact => match s(&v, "Name") {
            None => errs.push("The contact name must be specified.".to_string()),
            Some(name) => {
                if live(org, e).iter().any(|c| c["Name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name))) {
                    errs.push(format!(
                        "The contact name {name} is already assigned to another contact. The contact name must be unique across all active contacts."
                    ));
                }
                let o = v.as_object_mut().expect("object");
                o.entry("ContactStatus").or_insert(json!("ACTIVE"));
                o.entry("IsSupplier").or_insert(json!(false));
                o.entry("IsCustomer").or_insert(json!(false));
                o.entry("HasAttachments").or_insert(json!(false));
                o.entry("Addresses").or_insert(json!([]));
                o.entry("Phones").or_insert(json!([]));
            }
        },
        Entity::Account => {
            let code = s(&v, "Code").map(str::to_string);
            let name = s(&v, "Name").map(str::to_string);
            let kind = s(&v, "Type").map(str::to_string);
            let accounts = live(org, e);
            match &code {
                None if kind.as_deref() != Some("BANK") => errs.push("Please enter a unique Code.".into()),
                Some(c) if accounts.iter().any(|a| a["Code"].as_str() == Some(c)) => errs.push("Please enter a unique Code.".into()),
                _ => {}
            }
            match &name {
                None => errs.push("Please enter a unique Name.".into()),
                Some(n) if accounts.iter().any(|a| a["Name"].as_str().is_some_and(|x| x.eq_ignore_ascii_case(n))) => {
                    errs.push("Please enter a unique Name.".into())
                }
                _ => {}
            }
            let class = match kind.as_deref() {
                None => {
                    errs.push("Account Type must be specified.".into());
                    ""
                }
                Some("REVENUE" | "SALES" | "OTHERINCOME") => "REVENUE",
                Some("EXPENSE" | "DIRECTCOSTS" | "OVERHEADS" | "DEPRECIATN") => "EXPENSE",
                Some("BANK" | "CURRENT" | "FIXED" | "INVENTORY" | "NONCURRENT" | "PREPAYMENT") => "ASSET",
                Some("CURRLIAB" | "LIABILITY" | "TERMLIAB" | "PAYGLIABILITY" | "SUPERANNUATIONEXPENSE" | "WAGESEXPENSE") => "LIABILITY",
                Some("EQUITY") => "EQUITY",
                Some(other) => {
                    errs.push(format!("Account Type {other} is not valid."));
                    ""
                }
            };
            if errs.is_empty() {
                let o = v.as_object_mut().expect("object");
                o.insert("Class".into(), json!(class));
                o.entry("Status").or_insert(json!("ACTIVE"));
                o.entry("TaxType").or_insert(json!("NONE"));
                o.entry("EnablePaymentsToAccount").or_insert(json!(kind.as_deref() == Some("BANK")));
                o.entry("ShowInExpenseClaims").or_insert(json!(false));
                o.entry("HasAttachments").or_insert(json!(false));
                o.entry("AddToWatchlist").or_insert(json!(false));
                o.entry("ReportingCode").or_insert(json!(class));
            }
        }
        Entity::Invoice => {
            match s(&v, "Type") {
                Some("ACCREC" | "ACCPAY") => {}
                Some(t) => errs.push(format!("Invoice Type {t} is not valid.")),
                None => errs.push("Invoice Type must be specified.".into()),
            }
            // A contact by id must exist; by name, Xero finds or creates it.
            let contact = match v.get("Contact") {
                Some(c) => match (s(c, "ContactID"), s(c, "Name")) {
                    (Some(id), _) => match org.get(Entity::Contact, &id.to_ascii_lowercase()).filter(|r| !r.deleted) {
                        Some(r) => Some(json!({"ContactID": r.id, "Name": r.value["Name"]})),
                        None => {
                            errs.push(format!("Contact with ContactID {id} could not be found."));
                            None
                        }
                    },
                    (None, Some(name)) => {
                        let found = org
                            .store(Entity::Contact)
                            .items
                            .iter()
                            .find(|r| !r.deleted && r.value["Name"].as_str() == Some(name))
                            .map(|r| r.id.clone());
                        let id = found.unwrap_or_else(|| {
                            let id = org.next_id();
                            org.put(Entity::Contact, &id, json!({"Name": name, "ContactStatus": "ACTIVE", "IsSupplier": false, "IsCustomer": false, "HasAttachments": false, "Addresses": [], "Phones": []}), now);
                            id
                        });
                        Some(json!({"ContactID": id, "Name": name}))
                    }
                    _ => {
                        errs.push("A Contact must be specified for this type of transaction".into());
                        None
                    }
                },
                None => {
                    errs.push("A Contact must be specified for this type of transaction".into());
                    None
                }
            };
            let status = s(&v, "Status").unwrap_or("DRAFT").to_string();
            if !["DRAFT", "SUBMITTED", "AUTHORISED"].contains(&status.as_str()) {
                errs.push(format!("Invoice not of valid status for creation: {status}"));
            }
            let mut sub = Vec::new();
            let mut tax = Vec::new();
            let mut lines = Vec::new();
            for l in v.get("LineItems").and_then(Value::as_array).cloned().unwrap_or_default() {
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
                l["LineItemID"] = json!(uuid::Uuid::new_v4().to_string());
                l["Quantity"] = json!(qty);
                l["UnitAmount"] = json!(unit);
                l["LineAmount"] = json!(amount);
                l["TaxAmount"] = json!(t);
                if l.get("TaxType").is_none() {
                    l["TaxType"] = json!("NONE");
                }
                lines.push(l);
            }
            if status == "AUTHORISED" && lines.is_empty() {
                errs.push("An authorised invoice must have at least one line item".into());
            }
            if errs.is_empty() {
                let date = s(&v, "Date").and_then(|d| parse_time(d, utc())).unwrap_or(now);
                let due = s(&v, "DueDate").and_then(|d| parse_time(d, utc()));
                // Xero sets IsSupplier / IsCustomer itself once a contact has an AP / AR invoice
                // (xero_accounting.yaml, Contact): the contact changes with the invoice.
                let flag = if s(&v, "Type") == Some("ACCPAY") { "IsSupplier" } else { "IsCustomer" };
                if let Some(cid) = contact.as_ref().and_then(|c| c["ContactID"].as_str()).map(str::to_string) {
                    if let Some(mut cv) = org.get(Entity::Contact, &cid).map(|r| r.value.clone()).filter(|cv| cv[flag] != json!(true)) {
                        cv[flag] = json!(true);
                        org.put(Entity::Contact, &cid, cv, now);
                    }
                }
                let number = s(&v, "InvoiceNumber").map(str::to_string).unwrap_or_else(|| format!("INV-{:04}", org.store(e).len() + 1));
                let o = v.as_object_mut().expect("object");
                o.insert("Contact".into(), contact.expect("validated"));
                o.insert("Status".into(), json!(status));
                o.insert("LineItems".into(), Value::Array(lines));
                o.insert("InvoiceNumber".into(), json!(number));
                o.insert("Date".into(), json!(xero_msdate(date)));
                o.insert("DateString".into(), json!(xero_datestring(date)));
                if let Some(d) = due {
                    o.insert("DueDate".into(), json!(xero_msdate(d)));
                    o.insert("DueDateString".into(), json!(xero_datestring(d)));
                }
                o.entry("LineAmountTypes").or_insert(json!("Exclusive"));
                o.entry("CurrencyCode").or_insert(json!("USD"));
                o.entry("CurrencyRate").or_insert(json!(1.0));
                // In cents where they are exact, so the totals are the exact sums of the lines.
                let total = crate::lines::sum_money(&[sub.as_slice(), tax.as_slice()].concat());
                o.insert("SubTotal".into(), crate::lines::sum_money(&sub));
                o.insert("TotalTax".into(), crate::lines::sum_money(&tax));
                o.insert("Total".into(), total.clone());
                o.insert("AmountDue".into(), total);
                o.insert("AmountPaid".into(), json!(0.0));
                o.insert("AmountCredited".into(), json!(0.0));
                o.insert("HasAttachments".into(), json!(false));
                o.insert("IsDiscounted".into(), json!(false));
                o.insert("HasErrors".into(), json!(false));
            }
        }
        // Xero serves bills and suppliers through Invoices and Contacts (`Entity::home`): no route
        // hands them here.
        Entity::Bill | Entity::Vendor | Entity::VendorCredit | Entity::BillPayment => errs.push("Unsupported endpoint".into()),
        Entity::PurchaseOrder => errs.push("The sandbox does not create purchase orders".into()),
        Entity::Expense => errs.push("Unsupported endpoint".into()),
        Entity::BankTransaction => errs.append(&mut crate::writes::bank::xero_create(org, &mut v, now)),
        // A sandbox limit, not Xero's: transfers are seeded.
        Entity::BankTransfer => errs.push("The sandbox does not create bank transfers; seed them".into()),
        Entity::Payment => {
            let inv = v.get("Invoice").and_then(|i| {
                s(i, "InvoiceID")
                    .and_then(|id| org.get(Entity::Invoice, &id.to_ascii_lowercase()))
                    .or_else(|| {
                        s(i, "InvoiceNumber")
                            .and_then(|n| org.store(Entity::Invoice).items.iter().find(|r| r.value["InvoiceNumber"].as_str() == Some(n)))
                    })
                    .filter(|r| !r.deleted)
                    .cloned()
            });
            let acct = v.get("Account").and_then(|a| {
                s(a, "AccountID")
                    .and_then(|id| org.get(Entity::Account, &id.to_ascii_lowercase()))
                    .or_else(|| {
                        s(a, "Code").and_then(|c| org.store(Entity::Account).items.iter().find(|r| r.value["Code"].as_str() == Some(c)))
                    })
                    .filter(|r| !r.deleted)
                    .cloned()
            });
            let amount = v.get("Amount").and_then(Value::as_f64);
            match &inv {
                None => errs.push("Invoice could not be found".into()),
                Some(i) if i.value["Status"] != "AUTHORISED" => errs.push("Invoice not of valid status for modification".into()),
                Some(i) if amount.is_some_and(|a| a > i.value["AmountDue"].as_f64().unwrap_or(0.0) + 1e-9) => {
                    errs.push("Payment amount exceeds the amount outstanding on this document".into())
                }
                _ => {}
            }
            if acct.is_none() {
                errs.push("Account could not be found".into());
            }
            match amount {
                Some(a) if a > 0.0 => {}
                _ => errs.push("Amount must be greater than zero".into()),
            }
            if errs.is_empty() {
                let (inv, acct, amount) = (inv.expect("checked"), acct.expect("checked"), amount.expect("checked"));
                let mut iv = inv.value.clone();
                let due = iv["AmountDue"].as_f64().unwrap_or(0.0) - amount;
                iv["AmountDue"] = json!(due);
                iv["AmountPaid"] = json!(iv["AmountPaid"].as_f64().unwrap_or(0.0) + amount);
                if due <= 1e-9 {
                    iv["Status"] = json!("PAID");
                }
                org.put(Entity::Invoice, &inv.id, iv.clone(), now);
                let date = s(&v, "Date").and_then(|d| parse_time(d, utc())).unwrap_or(now);
                let o = v.as_object_mut().expect("object");
                o.insert("Date".into(), json!(xero_msdate(date)));
                o.insert("Amount".into(), json!(amount));
                o.insert("BankAmount".into(), json!(amount));
                o.insert("Status".into(), json!("AUTHORISED"));
                // A payment of a bill (an ACCPAY invoice) is a payment made (Xero's PaymentTypes).
                let kind = if iv["Type"] == "ACCPAY" { "ACCPAYPAYMENT" } else { "ACCRECPAYMENT" };
                o.insert("PaymentType".into(), json!(kind));
                o.insert("IsReconciled".into(), json!(false));
                o.insert("HasAccount".into(), json!(true));
                o.insert("HasValidationErrors".into(), json!(false));
                o.entry("CurrencyRate").or_insert(json!(1.0));
                o.insert("Account".into(), json!({"AccountID": acct.id, "Code": acct.value["Code"]}));
                o.insert(
                    "Invoice".into(),
                    json!({"InvoiceID": inv.id, "InvoiceNumber": iv["InvoiceNumber"], "Type": iv["Type"], "Contact": iv["Contact"],
                        "CurrencyCode": iv["CurrencyCode"], "IsDiscounted": false, "HasErrors": false}),
                );
            }
        }
    }
    if let (Some(t), Some(o), true) = (credit_type, v.as_object_mut(), errs.is_empty()) {
        let number = o.remove("InvoiceNumber");
        for k in ["DueDate", "DueDateString", "AmountDue", "AmountPaid", "AmountCredited", "IsDiscounted"] {
            o.remove(k);
        }
        o.insert("Type".into(), json!(t));
        if o.get("CreditNoteNumber").and_then(Value::as_str).is_none_or(|n| n.is_empty()) {
            let n = number.and_then(|n| n.as_str().map(|n| n.replacen("INV-", "CN-", 1))).unwrap_or_else(|| "CN-0001".into());
            o.insert("CreditNoteNumber".into(), json!(n));
        }
        // Nothing is allocated yet: all of it remains.
        let total = o.get("Total").cloned().unwrap_or(json!(0.0));
        o.insert("RemainingCredit".into(), total);
        o.insert("Allocations".into(), json!([]));
        o.insert("Payments".into(), json!([]));
    }
    if errs.is_empty() {
        Ok((org.next_id(), v))
    } else {
        Err(errs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn where_clauses() {
        let c = parse_where(r#"Status=="AUTHORISED" AND Contact.ContactID==guid("ABC-1") && Total!=0"#).unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c[0], Clause { path: vec!["Status".into()], negate: false, value: json!("AUTHORISED") });
        assert_eq!(c[1].value, json!("abc-1"));
        assert!(c[2].negate);
        assert!(parse_where("Total > 5").is_err());
    }
}
