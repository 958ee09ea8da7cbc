//! QuickBooks Online accounting API: the SQL-like query endpoint with STARTPOSITION/MAXRESULTS, change
//! data capture, reads, and creates made idempotent by the `requestid` query parameter.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use crate::data::{Record, StoredAnswer};
use crate::faults::{intuit_tid, qbo_fault, qbo_unauthorized, rate_limited};
use crate::http::{auth_token, json, with_header};
use crate::lines::sum_money;
use crate::model::{parse_time, qbo_offset, qbo_time, Entity, Provider};
use crate::state::{AppState, TokenProblem, World};

const P: Provider = Provider::Quickbooks;
const DEFAULT_MAX_RESULTS: usize = 100;
const MAX_RESULTS_CAP: usize = 1000;
const MAX_RESULTS_INVALID: &str = "QueryValidationError";
/// Entities QuickBooks has but the sandbox keeps no records of: they answer empty rather than fail.
const OTHER_ENTITIES: [&str; 4] = ["Estimate", "Purchase", "SalesReceipt", "Employee"];

fn ok(body: String) -> Response {
    with_header(json(StatusCode::OK, body), "intuit_tid", &intuit_tid())
}

fn validation(code: &str, message: &str, detail: &str) -> Response {
    qbo_fault(StatusCode::BAD_REQUEST, "ValidationFault", code, message, detail)
}

/// Checks the bearer token, that it reaches `realm`, and the realm's rate limit.
fn authorize(w: &mut World, headers: &HeaderMap, realm: &str) -> Result<(), Response> {
    let Some(token) = auth_token(headers, "Bearer") else {
        return Err(qbo_unauthorized("Authorization header missing"));
    };
    let (client, orgs) = match w.grant_for_access(P, token) {
        Ok(g) => (g.client_id.clone(), g.orgs.clone()),
        Err(e) => {
            let detail = match e {
                TokenProblem::Expired(_) => "Token expired",
                TokenProblem::Revoked => "Token revoked",
                TokenProblem::Unknown => "Token invalid",
            };
            return Err(qbo_unauthorized(detail));
        }
    };
    if !orgs.iter().any(|o| o == realm) || w.org(P, realm).is_none() {
        return Err(qbo_fault(
            StatusCode::FORBIDDEN,
            "AuthorizationFault",
            "003100",
            "message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403",
            "The token does not grant access to this company",
        ));
    }
    w.check_rate(P, realm, &client).map(|_| ()).map_err(|l| rate_limited(P, &l))
}

// ---------------------------------------------------------------- query language

#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Str(String),
    Num(f64),
    Bool(bool),
    List(Vec<Lit>),
}

#[derive(Debug, Clone, PartialEq)]
struct Cond {
    field: String,
    op: String,
    value: Lit,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QboQuery {
    entity: String,
    count: bool,
    fields: Option<Vec<String>>,
    conds: Vec<Cond>,
    order: Vec<(String, bool)>,
    start: usize,
    max: usize,
}

fn tokenize(q: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let cs: Vec<char> = q.chars().collect();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            // Quoted literal; '' or \' escape a quote.
            let mut s = String::from("'");
            i += 1;
            loop {
                match cs.get(i) {
                    None => return Err("unterminated string literal".into()),
                    Some('\\') if cs.get(i + 1) == Some(&'\'') => {
                        s.push('\'');
                        i += 2;
                    }
                    Some('\'') if cs.get(i + 1) == Some(&'\'') => {
                        s.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(&ch) => {
                        s.push(ch);
                        i += 1;
                    }
                }
            }
            out.push(s);
        } else if "(),*".contains(c) {
            out.push(c.to_string());
            i += 1;
        } else if "<>=!".contains(c) {
            let mut s = c.to_string();
            if let Some(&n) = cs.get(i + 1) {
                if n == '=' || (c == '<' && n == '>') {
                    s.push(n);
                    i += 1;
                }
            }
            out.push(s);
            i += 1;
        } else {
            let mut s = String::new();
            while i < cs.len() && !cs[i].is_whitespace() && !"(),*'<>=!".contains(cs[i]) {
                s.push(cs[i]);
                i += 1;
            }
            out.push(s);
        }
    }
    Ok(out)
}

fn kw(t: Option<&String>, k: &str) -> bool {
    t.is_some_and(|t| t.eq_ignore_ascii_case(k))
}

fn literal(toks: &[String], i: &mut usize) -> Result<Lit, String> {
    let t = toks.get(*i).ok_or("expected a value")?;
    *i += 1;
    if t == "(" {
        let mut items = Vec::new();
        loop {
            items.push(literal(toks, i)?);
            match toks.get(*i).map(String::as_str) {
                Some(",") => *i += 1,
                Some(")") => {
                    *i += 1;
                    break;
                }
                _ => return Err("expected , or ) in list".into()),
            }
        }
        return Ok(Lit::List(items));
    }
    if let Some(s) = t.strip_prefix('\'') {
        return Ok(Lit::Str(s.to_string()));
    }
    if t.eq_ignore_ascii_case("true") || t.eq_ignore_ascii_case("false") {
        return Ok(Lit::Bool(t.eq_ignore_ascii_case("true")));
    }
    t.parse::<f64>().map(Lit::Num).map_err(|_| format!("unexpected token {t}"))
}

pub fn parse_query(q: &str) -> Result<QboQuery, String> {
    let toks = tokenize(q)?;
    let mut i = 0;
    if !kw(toks.first(), "select") {
        return Err("query must start with SELECT".into());
    }
    i += 1;
    let mut count = false;
    let mut fields = None;
    if toks.get(i).map(String::as_str) == Some("*") {
        i += 1;
    } else if kw(toks.get(i), "count") && toks.get(i + 1).map(String::as_str) == Some("(") {
        if toks.get(i + 2).map(String::as_str) != Some("*") || toks.get(i + 3).map(String::as_str) != Some(")") {
            return Err("expected COUNT(*)".into());
        }
        count = true;
        i += 4;
    } else {
        let mut f = Vec::new();
        while i < toks.len() && !kw(toks.get(i), "from") {
            if toks[i] != "," {
                f.push(toks[i].clone());
            }
            i += 1;
        }
        if f.is_empty() {
            return Err("expected a field list".into());
        }
        fields = Some(f);
    }
    if !kw(toks.get(i), "from") {
        return Err("expected FROM".into());
    }
    let entity = toks.get(i + 1).ok_or("expected an entity after FROM")?.clone();
    i += 2;
    let mut conds = Vec::new();
    if kw(toks.get(i), "where") {
        i += 1;
        loop {
            let field = toks.get(i).ok_or("expected a field in WHERE")?.clone();
            i += 1;
            let op = toks.get(i).ok_or("expected an operator")?.to_ascii_uppercase();
            if !["=", "<", ">", "<=", ">=", "!=", "<>", "IN", "LIKE"].contains(&op.as_str()) {
                return Err(format!("unsupported operator {op}"));
            }
            i += 1;
            let value = literal(&toks, &mut i)?;
            conds.push(Cond { field, op, value });
            if kw(toks.get(i), "and") {
                i += 1;
            } else {
                break;
            }
        }
    }
    let mut order = Vec::new();
    if kw(toks.get(i), "orderby") || (kw(toks.get(i), "order") && kw(toks.get(i + 1), "by")) {
        i += if kw(toks.get(i), "order") { 2 } else { 1 };
        loop {
            let f = toks.get(i).ok_or("expected a field after ORDERBY")?.clone();
            i += 1;
            let mut desc = false;
            if kw(toks.get(i), "desc") {
                desc = true;
                i += 1;
            } else if kw(toks.get(i), "asc") {
                i += 1;
            }
            order.push((f, desc));
            if toks.get(i).map(String::as_str) == Some(",") {
                i += 1;
            } else {
                break;
            }
        }
    }
    let mut start = 1usize;
    let mut max = DEFAULT_MAX_RESULTS;
    while i < toks.len() {
        if kw(toks.get(i), "startposition") {
            start = toks.get(i + 1).and_then(|t| t.parse().ok()).ok_or("STARTPOSITION needs a number")?;
            i += 2;
        } else if kw(toks.get(i), "maxresults") {
            max = toks.get(i + 1).and_then(|t| t.parse().ok()).ok_or("MAXRESULTS needs a number")?;
            // Intuit documents 1000 as the maximum page; a larger value is refused as a query
            // validation error rather than clamped (the error code and wording are unconfirmed).
            if max > MAX_RESULTS_CAP {
                return Err(format!("{MAX_RESULTS_INVALID}: value {max} for MAXRESULTS exceeds the maximum of {MAX_RESULTS_CAP}"));
            }
            i += 2;
        } else {
            return Err(format!("unexpected token {}", toks[i]));
        }
    }
    Ok(QboQuery { entity, count, fields, conds, order, start: start.max(1), max })
}

fn field<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

fn cmp_lit(actual: &Value, lit: &Lit, field_name: &str) -> Option<std::cmp::Ordering> {
    match (actual, lit) {
        (Value::String(a), Lit::Str(b)) => {
            if field_name.ends_with("Time") || field_name.ends_with("Date") {
                if let (Some(x), Some(y)) = (parse_time(a, qbo_offset()), parse_time(b, qbo_offset())) {
                    return x.partial_cmp(&y);
                }
            }
            // Ids are numeric strings: compare as numbers when both are.
            if let (Ok(x), Ok(y)) = (a.parse::<f64>(), b.parse::<f64>()) {
                return x.partial_cmp(&y);
            }
            Some(a.to_ascii_lowercase().cmp(&b.to_ascii_lowercase()))
        }
        (Value::Number(a), Lit::Num(b)) => a.as_f64()?.partial_cmp(b),
        (Value::Number(a), Lit::Str(b)) => a.as_f64()?.partial_cmp(&b.parse::<f64>().ok()?),
        (Value::Bool(a), Lit::Bool(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

fn like(a: &str, pattern: &str) -> bool {
    let a = a.to_ascii_lowercase();
    let p = pattern.to_ascii_lowercase();
    let parts: Vec<&str> = p.split('%').collect();
    if parts.len() == 1 {
        return a == p;
    }
    let mut pos = 0;
    for (k, part) in parts.iter().enumerate() {
        if part.is_empty() {
            continue;
        }
        if k == 0 {
            if !a.starts_with(part) {
                return false;
            }
            pos = part.len();
        } else if k == parts.len() - 1 {
            return a[pos..].ends_with(part);
        } else {
            match a[pos..].find(part) {
                Some(j) => pos += j + part.len(),
                None => return false,
            }
        }
    }
    true
}

fn matches(r: &Record, c: &Cond) -> bool {
    use std::cmp::Ordering::*;
    // Fast paths for the fields incremental sync filters on.
    let time_field = match c.field.as_str() {
        "MetaData.LastUpdatedTime" => Some(r.updated),
        "MetaData.CreateTime" => Some(r.created),
        _ => None,
    };
    if let (Some(t), Lit::Str(s)) = (time_field, &c.value) {
        let Some(b) = parse_time(s, qbo_offset()) else { return false };
        let ord = t.cmp(&b);
        return op_ok(&c.op, ord);
    }
    let Some(actual) = field(&r.value, &c.field) else { return false };
    match (&c.op[..], &c.value) {
        ("IN", Lit::List(items)) => items.iter().any(|l| cmp_lit(actual, l, &c.field) == Some(Equal)),
        ("LIKE", Lit::Str(p)) => actual.as_str().is_some_and(|a| like(a, p)),
        (_, lit) => cmp_lit(actual, lit, &c.field).is_some_and(|o| op_ok(&c.op, o)),
    }
}

fn op_ok(op: &str, o: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match op {
        "=" => o == Equal,
        "!=" | "<>" => o != Equal,
        "<" => o == Less,
        ">" => o == Greater,
        "<=" => o != Greater,
        ">=" => o != Less,
        _ => false,
    }
}

fn run_query(w: &World, realm: &str, q: &QboQuery, now: DateTime<Utc>) -> Result<String, Response> {
    let time = qbo_time(now);
    let Some(entity) = Entity::ALL.into_iter().find(|e| e.qbo_name().eq_ignore_ascii_case(&q.entity)) else {
        if q.entity.eq_ignore_ascii_case("CompanyInfo") {
            let org = w.org(P, realm).expect("authorized realm exists");
            return Ok(json!({"QueryResponse": {"CompanyInfo": [company_info_value(realm, &org.name, org.created)],
                "startPosition": 1, "maxResults": 1}, "time": time})
            .to_string());
        }
        if OTHER_ENTITIES.iter().any(|e| e.eq_ignore_ascii_case(&q.entity)) {
            return Ok(json!({"QueryResponse": {}, "time": time}).to_string());
        }
        return Err(validation("4000", "Error parsing query", &format!("QueryParserError: Invalid entity: {}", q.entity)));
    };
    let org = w.org(P, realm).expect("authorized realm exists");
    // Name lists answer with their active records unless the query names `Active` (Intuit:
    // `SELECT * FROM Customer` "retrieves all active customers"). Held for classes and departments;
    // the sandbox's other name lists (Customer, Vendor, Account, Item, TaxCode) still list inactive
    // ones, kinder than QuickBooks (left as they were: their clients do not ask for inactive ones yet).
    let active_only =
        matches!(entity, Entity::TrackingCategory | Entity::Department) && !q.conds.iter().any(|c| c.field.eq_ignore_ascii_case("Active"));
    let mut rows: Vec<&Record> = org
        .store(entity)
        .items
        .iter()
        .filter(|r| !r.deleted && q.conds.iter().all(|c| matches(r, c)))
        .filter(|r| !active_only || r.value.get("Active") != Some(&Value::Bool(false)))
        .collect();
    if q.count {
        return Ok(json!({"QueryResponse": {"totalCount": rows.len()}, "time": time}).to_string());
    }
    for (f, desc) in q.order.iter().rev() {
        rows.sort_by(|a, b| {
            let o = match (field(&a.value, f), field(&b.value, f)) {
                (Some(x), Some(y)) => match y {
                    Value::String(s) => cmp_lit(x, &Lit::Str(s.clone()), f),
                    Value::Number(n) => cmp_lit(x, &Lit::Num(n.as_f64().unwrap_or(0.0)), f),
                    _ => None,
                },
                _ => None,
            }
            .unwrap_or(std::cmp::Ordering::Equal);
            if *desc {
                o.reverse()
            } else {
                o
            }
        });
    }
    let page: Vec<&Record> = rows.into_iter().skip(q.start - 1).take(q.max).collect();
    if page.is_empty() {
        return Ok(format!("{{\"QueryResponse\":{{}},\"time\":\"{time}\"}}"));
    }
    let mut body = String::with_capacity(64 + page.iter().map(|r| r.full.len() + 1).sum::<usize>());
    body.push_str("{\"QueryResponse\":{\"");
    body.push_str(entity.qbo_name());
    body.push_str("\":[");
    for (k, r) in page.iter().enumerate() {
        if k > 0 {
            body.push(',');
        }
        match &q.fields {
            None => body.push_str(&r.full),
            Some(fs) => {
                // Selected fields plus the ones QuickBooks always returns.
                let mut m = serde_json::Map::new();
                for f in fs.iter().map(String::as_str).chain(["Id", "SyncToken", "domain", "sparse", "MetaData"]) {
                    if let Some(v) = r.value.get(f) {
                        m.insert(f.to_string(), v.clone());
                    }
                }
                m.insert("sparse".into(), json!(true));
                body.push_str(&Value::Object(m).to_string());
            }
        }
    }
    body.push_str(&format!("],\"startPosition\":{},\"maxResults\":{}}},\"time\":\"{time}\"}}", q.start, page.len()));
    Ok(body)
}

pub async fn query_get(
    State(st): State<AppState>,
    Path(realm): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let Some(q) = params.get("query") else {
        return validation("4000", "Error parsing query", "QueryParserError: query parameter is required");
    };
    query(&st, &realm, q, &headers)
}

/// QuickBooks also takes the query as a POST body (Content-Type: application/text).
pub async fn query_post(State(st): State<AppState>, Path(realm): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    query(&st, &realm, &String::from_utf8_lossy(&body), &headers)
}

fn query(st: &AppState, realm: &str, q: &str, headers: &HeaderMap) -> Response {
    let mut w = st.lock();
    if let Err(r) = authorize(&mut w, headers, realm) {
        return r;
    }
    let parsed = match parse_query(q) {
        Ok(p) => p,
        Err(e) if e.starts_with(MAX_RESULTS_INVALID) => return validation("4001", "Invalid query", &e),
        Err(e) => return validation("4000", "Error parsing query", &format!("QueryParserError: {e}")),
    };
    let now = w.now();
    match run_query(&w, realm, &parsed, now) {
        Ok(body) => ok(body),
        Err(r) => r,
    }
}

pub async fn cdc(
    State(st): State<AppState>,
    Path(realm): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut w = st.lock();
    if let Err(r) = authorize(&mut w, &headers, &realm) {
        return r;
    }
    let now = w.now();
    let Some(since) = params.get("changedSince").and_then(|s| parse_time(s, qbo_offset())) else {
        return validation(
            "2020",
            "Required param missing, need to supply the required value for the API",
            "Required parameter changedSince is missing or invalid",
        );
    };
    // CDC looks back at most 30 days.
    if since < now - Duration::days(30) {
        return validation("2080", "Invalid changedSince", "changedSince cannot be more than 30 days in the past");
    }
    let names = params.get("entities").cloned().unwrap_or_default();
    let mut entities = Vec::new();
    for n in names.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match Entity::ALL.into_iter().find(|e| e.qbo_name().eq_ignore_ascii_case(n)) {
            Some(e) if e.in_qbo_cdc() => entities.push(e),
            Some(_) => {
                return validation("2010", "Request has invalid or unsupported property", &format!("Unsupported entity in CDC: {n}"))
            }
            None if OTHER_ENTITIES.iter().any(|o| o.eq_ignore_ascii_case(n)) => {}
            None => return validation("2010", "Request has invalid or unsupported property", &format!("Unsupported entity in CDC: {n}")),
        }
    }
    if entities.is_empty() {
        return validation(
            "2020",
            "Required param missing, need to supply the required value for the API",
            "Required parameter entities is missing",
        );
    }
    let org = w.org(P, &realm).expect("authorized");
    let mut parts = Vec::new();
    let mut budget = 1000usize;
    for e in entities {
        let mut items = Vec::new();
        for r in org.store(e).items.iter().filter(|r| r.updated > since) {
            if budget == 0 {
                break;
            }
            budget -= 1;
            if r.deleted {
                items.push(json!({"domain": "QBO", "status": "Deleted", "Id": r.id, "MetaData": {"LastUpdatedTime": qbo_time(r.updated)}}));
            } else {
                items.push(r.value.clone());
            }
        }
        let n = items.len();
        let mut qr = serde_json::Map::new();
        if n > 0 {
            qr.insert(e.qbo_name().into(), Value::Array(items));
        }
        qr.insert("startPosition".into(), json!(1));
        qr.insert("maxResults".into(), json!(n));
        qr.insert("totalCount".into(), json!(n));
        parts.push(Value::Object(qr));
    }
    ok(json!({"CDCResponse": [{"QueryResponse": parts}], "time": qbo_time(now)}).to_string())
}

fn company_info_value(realm: &str, name: &str, created: DateTime<Utc>) -> Value {
    json!({
        "CompanyName": name, "LegalName": name, "Id": realm, "SyncToken": "0", "domain": "QBO", "sparse": false,
        "Country": "US", "SupportedLanguages": "en", "CompanyStartDate": created.format("%Y-%m-%d").to_string(),
        "MetaData": {"CreateTime": qbo_time(created), "LastUpdatedTime": qbo_time(created)},
    })
}

/// GET /reports/{name}: ProfitAndLoss (`start_date`, `end_date`, `accounting_method`), BalanceSheet
/// (as of `end_date`) and AgedReceivables (as of `report_date`, 30-day buckets), computed from the
/// realm's records (`crate::reports`). Other report names are refused: the sandbox does not pretend
/// to serve them. The fault code for a bad parameter is unconfirmed.
pub async fn report(
    State(st): State<AppState>,
    Path((realm, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut w = st.lock();
    if let Err(r) = authorize(&mut w, &headers, &realm) {
        return r;
    }
    let now = w.now();
    let org = w.org(P, &realm).expect("authorized");
    let today = now.with_timezone(&qbo_offset()).date_naive();
    let cash = match q.get("accounting_method").map(|m| m.to_ascii_lowercase()) {
        None => false,
        Some(m) if m == "accrual" => false,
        Some(m) if m == "cash" => true,
        Some(_) => return validation("2010", "Invalid accounting_method", "accounting_method must be Cash or Accrual"),
    };
    let date = |k: &str, default: chrono::NaiveDate| match q.get(k) {
        None => Ok(default),
        Some(_) => {
            crate::reports::parse_day(q.get(k)).ok_or_else(|| validation("2010", "Invalid Date", &format!("{k} must be yyyy-MM-dd")))
        }
    };
    let body = match name.as_str() {
        "ProfitAndLoss" => {
            let year_start = chrono::NaiveDate::from_ymd_opt(chrono::Datelike::year(&today), 1, 1).unwrap_or(today);
            let (from, to) = match (date("start_date", year_start), date("end_date", today)) {
                (Ok(f), Ok(t)) => (f, t),
                (Err(r), _) | (_, Err(r)) => return r,
            };
            crate::reports::quickbooks_pnl(org, from, to, cash, now)
        }
        "BalanceSheet" => match date("end_date", today) {
            Ok(d) => crate::reports::quickbooks_balance_sheet(org, d, cash, now),
            Err(r) => return r,
        },
        "AgedReceivables" => match date("report_date", today) {
            Ok(d) => crate::reports::quickbooks_aged(org, d, now),
            Err(r) => return r,
        },
        "TrialBalance" => {
            let year_start = chrono::NaiveDate::from_ymd_opt(chrono::Datelike::year(&today), 1, 1).unwrap_or(today);
            match (date("start_date", year_start), date("end_date", today)) {
                (Ok(f), Ok(t)) => crate::reports::quickbooks_trial_balance(org, f, t, cash, now),
                (Err(r), _) | (_, Err(r)) => return r,
            }
        }
        _ => return validation("2010", "Unsupported report", &format!("the sandbox does not serve the {name} report")),
    };
    ok(body.to_string())
}

pub async fn company_info(State(st): State<AppState>, Path((realm, _id)): Path<(String, String)>, headers: HeaderMap) -> Response {
    let mut w = st.lock();
    if let Err(r) = authorize(&mut w, &headers, &realm) {
        return r;
    }
    let now = w.now();
    let org = w.org(P, &realm).expect("authorized");
    ok(json!({"CompanyInfo": company_info_value(&realm, &org.name, org.created), "time": qbo_time(now)}).to_string())
}

pub async fn read(
    State(st): State<AppState>,
    e: Entity,
    Path((realm, id)): Path<(String, String)>,
    Query(_q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut w = st.lock();
    if let Err(r) = authorize(&mut w, &headers, &realm) {
        return r;
    }
    let now = w.now();
    let org = w.org(P, &realm).expect("authorized");
    match org.get(e, &id).filter(|r| !r.deleted) {
        Some(r) => ok(format!("{{\"{}\":{},\"time\":\"{}\"}}", e.qbo_name(), r.full, qbo_time(now))),
        None => validation(
            "610",
            "Object Not Found",
            &format!("Object Not Found : Something you're trying to use has been made inactive. Check the fields with accounts, customers, items, vendors or employees. {} {id}", e.qbo_name()),
        ),
    }
}

/// POST /v3/company/{realm}/{entity}: create (or, with Id and SyncToken in the body, update, delete
/// or void: `crate::writes::quickbooks`). `requestid` makes a retry return the first answer instead of acting
/// twice.
pub async fn create(
    State(st): State<AppState>,
    e: Entity,
    Path(realm): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut w = st.lock();
    if let Err(r) = authorize(&mut w, &headers, &realm) {
        return r;
    }
    let request_id = q.get("requestid").cloned();
    if let Some(rid) = &request_id {
        if let Some(prev) = w.org(P, &realm).and_then(|o| o.idempotency.get(rid)) {
            let status = StatusCode::from_u16(prev.status).unwrap_or(StatusCode::OK);
            return with_header(json(status, prev.body.clone()), "intuit_tid", &intuit_tid());
        }
    }
    let (status, body) = match serde_json::from_slice::<Value>(&body) {
        Err(err) => (
            StatusCode::BAD_REQUEST,
            fault_body(
                "ValidationFault",
                "2010",
                "Request has invalid or unsupported property",
                &format!("JSON body could not be parsed: {err}"),
                w.now(),
            ),
        ),
        Ok(v) if !v.is_object() => (
            StatusCode::BAD_REQUEST,
            fault_body("ValidationFault", "2010", "Request has invalid or unsupported property", "Expected a JSON object", w.now()),
        ),
        Ok(v) => match write(&mut w, &realm, e, v, q.get("operation").map(String::as_str), q.get("include").map(String::as_str)) {
            Ok(b) => (StatusCode::OK, b),
            Err((code, msg, detail)) => (StatusCode::BAD_REQUEST, fault_body("ValidationFault", code, msg, &detail, w.now())),
        },
    };
    if let Some(rid) = request_id {
        if let Some(org) = w.org_mut(P, &realm) {
            org.idempotency.insert(rid, StoredAnswer { status: status.as_u16(), body: body.clone(), entity: e });
        }
    }
    with_header(json(status, body), "intuit_tid", &intuit_tid())
}

fn fault_body(kind: &str, code: &str, message: &str, detail: &str, now: DateTime<Utc>) -> String {
    json!({"Fault": {"Error": [{"Message": message, "Detail": detail, "code": code}], "type": kind}, "time": qbo_time(now)}).to_string()
}

use crate::writes::quickbooks::WriteErr;

fn missing(what: &str) -> WriteErr {
    (
        "2020",
        "Required param missing, need to supply the required value for the API",
        format!("Required parameter {what} is missing in the request"),
    )
}

fn write(w: &mut World, realm: &str, e: Entity, mut v: Value, operation: Option<&str>, include: Option<&str>) -> Result<String, WriteErr> {
    let now = w.now();
    let org = w.org_mut(P, realm).expect("authorized");
    let existing_id = v.get("Id").and_then(Value::as_str).map(str::to_string);
    if let Some(id) = &existing_id {
        return crate::writes::quickbooks::change(org, e, id, v, operation, include, now);
    }
    match operation {
        None | Some("create") | Some("update") => {}
        Some("delete" | "void") => return Err(missing("Id")),
        // Unconfirmed: how QuickBooks words an unknown operation value.
        Some(other) => return Err(("500", "Unsupported Operation", format!("Operation {other} is not supported."))),
    }
    // A CreditMemo is made like an Invoice (CustomerRef, sales lines) and a VendorCredit like a Bill
    // (VendorRef, expense lines); their credit shape is set after.
    let twin = match e {
        Entity::CreditNote => Entity::Invoice,
        Entity::VendorCredit => Entity::Bill,
        other => other,
    };
    match twin {
        // Never the twin: made as an Invoice or a Bill.
        Entity::CreditNote | Entity::VendorCredit => {}
        // A sandbox limit, not Intuit's: purchase orders are seeded, not created through the API.
        Entity::PurchaseOrder => {
            return Err((
                "6000",
                "A business validation error has occurred while processing your request",
                "The sandbox does not create purchase orders".into(),
            ))
        }
        Entity::BillPayment => crate::writes::quickbooks::create_bill_payment(org, &mut v, now)?,
        // QuickBooks creates tax codes through its TaxService, not `POST /taxcode`.
        Entity::TaxRate => return Err(("2010", "Request has invalid or unsupported property", "TaxCode cannot be created here".into())),
        // Reference data is seeded (`/_sandbox/seed`); creating items is not modelled.
        Entity::Item => return Err(("2010", "Request has invalid or unsupported property", "The sandbox does not create items".into())),
        Entity::TrackingCategory => {
            return Err(("2010", "Request has invalid or unsupported property", "The sandbox does not create classes".into()))
        }
        // Seeded, as classes are; TaxRate is created through the TaxService, not `POST /taxrate`.
        Entity::Department => {
            return Err(("2010", "Request has invalid or unsupported property", "The sandbox does not create departments".into()))
        }
        Entity::TaxComponent => {
            return Err(("2010", "Request has invalid or unsupported property", "TaxRate cannot be created here".into()))
        }
        Entity::Journal => {
            let total = crate::writes::quickbooks::journal_lines(org, &mut v)?;
            let n = org.store(e).len() + 1;
            let obj = v.as_object_mut().expect("object");
            obj.insert("TotalAmt".into(), crate::lines::money(total));
            obj.entry("DocNumber").or_insert(json!(format!("JE-{n:05}")));
            obj.entry("TxnDate").or_insert(json!(crate::model::qbo_today(now)));
            obj.entry("CurrencyRef").or_insert(json!({"value": "USD", "name": "United States Dollar"}));
            obj.entry("Adjustment").or_insert(json!(false));
            obj.insert("domain".into(), json!("QBO"));
            obj.insert("sparse".into(), json!(false));
        }
        Entity::Expense | Entity::BankTransaction => crate::writes::bank::qbo_create(org, e, &mut v, now)?,
        // A sandbox limit, not Intuit's: transfers are seeded.
        Entity::BankTransfer => {
            return Err((
                "6000",
                "A business validation error has occurred while processing your request",
                "The sandbox does not create transfers".into(),
            ))
        }
        Entity::Contact | Entity::Vendor => {
            let obj = v.as_object_mut().expect("object");
            let display = obj.get("DisplayName").and_then(Value::as_str).map(str::to_string).or_else(|| {
                let parts: Vec<&str> = ["Title", "GivenName", "MiddleName", "FamilyName", "Suffix"]
                    .iter()
                    .filter_map(|k| obj.get(*k).and_then(Value::as_str))
                    .collect();
                (!parts.is_empty()).then(|| parts.join(" "))
            });
            let Some(display) = display else { return Err(missing("DisplayName")) };
            // Customers and vendors share one name space in QuickBooks.
            let dup = [Entity::Contact, Entity::Vendor].into_iter().any(|k| {
                org.store(k)
                    .items
                    .iter()
                    .any(|r| !r.deleted && r.value["DisplayName"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(&display)))
            });
            if dup {
                return Err((
                    "6240",
                    "Duplicate Name Exists Error",
                    format!("The name supplied already exists. : Another customer, vendor or employee is already using this name. Please use a different name. {display}"),
                ));
            }
            obj.insert("DisplayName".into(), json!(display));
            obj.entry("FullyQualifiedName").or_insert(json!(display));
            obj.entry("Active").or_insert(json!(true));
            obj.entry("Balance").or_insert(json!(0));
            obj.insert("domain".into(), json!("QBO"));
            obj.insert("sparse".into(), json!(false));
        }
        Entity::Account => {
            let name = v.get("Name").and_then(Value::as_str).map(str::to_string).ok_or_else(|| missing("Name"))?;
            if v.get("AccountType").and_then(Value::as_str).is_none() && v.get("AccountSubType").and_then(Value::as_str).is_none() {
                return Err(missing("AccountType"));
            }
            if org.store(e).items.iter().any(|r| !r.deleted && r.value["Name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(&name))) {
                return Err(("6240", "Duplicate Name Exists Error", format!("The name supplied already exists. : {name}")));
            }
            let obj = v.as_object_mut().expect("object");
            obj.entry("FullyQualifiedName").or_insert(json!(name));
            obj.entry("Active").or_insert(json!(true));
            obj.entry("SubAccount").or_insert(json!(false));
            obj.entry("CurrentBalance").or_insert(json!(0));
            obj.insert("domain".into(), json!("QBO"));
            obj.insert("sparse".into(), json!(false));
        }
        Entity::Invoice => {
            let cust = v.pointer("/CustomerRef/value").and_then(Value::as_str).map(str::to_string).ok_or_else(|| missing("CustomerRef"))?;
            let Some(c) = org.get(Entity::Contact, &cust).filter(|r| !r.deleted) else {
                return Err(("2500", "Invalid Reference Id", format!("Invalid Reference Id : Names element id {cust} not found")));
            };
            let cname = c.value["DisplayName"].clone();
            let lines = v.get("Line").and_then(Value::as_array).cloned().unwrap_or_default();
            if lines.is_empty() {
                return Err(missing("Line"));
            }
            let mut amounts = Vec::new();
            let mut out_lines = Vec::new();
            for (k, l) in lines.iter().enumerate() {
                let amount = l.get("Amount").and_then(Value::as_f64).ok_or_else(|| missing("Line.Amount"))?;
                let dt = l.get("DetailType").and_then(Value::as_str).ok_or_else(|| missing("Line.DetailType"))?;
                if dt == "SubTotalLineDetail" {
                    continue;
                }
                amounts.push(amount);
                let mut l = l.clone();
                l["Id"] = json!((k + 1).to_string());
                l["LineNum"] = json!(k + 1);
                out_lines.push(l);
            }
            // In cents where they are exact, so a total is the exact sum of its lines.
            let total = sum_money(&amounts);
            out_lines.push(json!({"Amount": total, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}}));
            let n = org.store(e).len() + 1001;
            let obj = v.as_object_mut().expect("object");
            obj.insert("Line".into(), Value::Array(out_lines));
            obj.insert("CustomerRef".into(), json!({"value": cust, "name": cname}));
            obj.insert("TotalAmt".into(), total.clone());
            obj.insert("Balance".into(), total);
            obj.entry("DocNumber").or_insert(json!(n.to_string()));
            obj.entry("TxnDate").or_insert(json!(crate::model::qbo_today(now)));
            obj.entry("CurrencyRef").or_insert(json!({"value": "USD", "name": "United States Dollar"}));
            obj.insert("domain".into(), json!("QBO"));
            obj.insert("sparse".into(), json!(false));
        }
        Entity::Bill => {
            let vid = v.pointer("/VendorRef/value").and_then(Value::as_str).map(str::to_string).ok_or_else(|| missing("VendorRef"))?;
            let Some(vendor) = org.get(Entity::Vendor, &vid).filter(|r| !r.deleted) else {
                return Err(("2500", "Invalid Reference Id", format!("Invalid Reference Id : Vendor {vid} not found")));
            };
            let vname = vendor.value["DisplayName"].clone();
            let lines = v.get("Line").and_then(Value::as_array).cloned().unwrap_or_default();
            if lines.is_empty() {
                return Err(missing("Line"));
            }
            let mut amounts = Vec::new();
            let mut out_lines = Vec::new();
            for (k, l) in lines.iter().enumerate() {
                amounts.push(l.get("Amount").and_then(Value::as_f64).ok_or_else(|| missing("Line.Amount"))?);
                match l.get("DetailType").and_then(Value::as_str) {
                    Some("AccountBasedExpenseLineDetail" | "ItemBasedExpenseLineDetail") => {}
                    Some(other) => {
                        return Err((
                            "2010",
                            "Request has invalid or unsupported property",
                            format!("Unsupported DetailType on a Bill line: {other}"),
                        ))
                    }
                    None => return Err(missing("Line.DetailType")),
                }
                let mut l = l.clone();
                l["Id"] = json!((k + 1).to_string());
                l["LineNum"] = json!(k + 1);
                out_lines.push(l);
            }
            // Bills post to the company's payables account unless the request names one.
            let ap = org
                .store(Entity::Account)
                .items
                .iter()
                .find(|r| !r.deleted && r.value["AccountType"] == "Accounts Payable")
                .map(|r| json!({"value": r.id, "name": r.value["Name"]}));
            let total = sum_money(&amounts);
            let obj = v.as_object_mut().expect("object");
            obj.insert("Line".into(), Value::Array(out_lines));
            obj.insert("VendorRef".into(), json!({"value": vid, "name": vname}));
            if let Some(ap) = ap {
                obj.entry("APAccountRef").or_insert(ap);
            }
            obj.insert("TotalAmt".into(), total.clone());
            obj.insert("Balance".into(), total);
            obj.entry("TxnDate").or_insert(json!(crate::model::qbo_today(now)));
            obj.entry("CurrencyRef").or_insert(json!({"value": "USD", "name": "United States Dollar"}));
            obj.insert("domain".into(), json!("QBO"));
            obj.insert("sparse".into(), json!(false));
        }
        Entity::Payment => {
            let cust = v.pointer("/CustomerRef/value").and_then(Value::as_str).map(str::to_string).ok_or_else(|| missing("CustomerRef"))?;
            if org.get(Entity::Contact, &cust).filter(|r| !r.deleted).is_none() {
                return Err(("2500", "Invalid Reference Id", format!("Invalid Reference Id : Names element id {cust} not found")));
            }
            let total = v.get("TotalAmt").and_then(Value::as_f64).ok_or_else(|| missing("TotalAmt"))?;
            // Applying a payment lowers the linked invoices' Balance (and changes them, for CDC).
            let mut applied = 0.0;
            let mut touched = Vec::new();
            for l in v.get("Line").and_then(Value::as_array).cloned().unwrap_or_default() {
                let amount = l.get("Amount").and_then(Value::as_f64).unwrap_or(0.0);
                for t in l.get("LinkedTxn").and_then(Value::as_array).cloned().unwrap_or_default() {
                    if t["TxnType"] != "Invoice" {
                        continue;
                    }
                    let iid = t["TxnId"].as_str().unwrap_or_default().to_string();
                    let Some(inv) = org.get(Entity::Invoice, &iid).filter(|r| !r.deleted) else {
                        return Err(("2500", "Invalid Reference Id", format!("Invalid Reference Id : Invoice {iid} not found")));
                    };
                    let bal = inv.value["Balance"].as_f64().unwrap_or(0.0);
                    if amount > bal + 1e-9 {
                        return Err((
                            "6000",
                            "A business validation error has occurred while processing your request",
                            format!("Business Validation Error: The payment amount exceeds the balance of invoice {iid}"),
                        ));
                    }
                    touched.push((iid, bal - amount));
                    applied += amount;
                }
            }
            for (iid, bal) in touched {
                let mut inv = org.get(Entity::Invoice, &iid).expect("checked").value.clone();
                inv["Balance"] = json!(bal);
                org.put(Entity::Invoice, &iid, inv, now);
            }
            let obj = v.as_object_mut().expect("object");
            obj.insert("UnappliedAmt".into(), json!((total - applied).max(0.0)));
            obj.entry("TxnDate").or_insert(json!(crate::model::qbo_today(now)));
            obj.entry("ProcessPayment").or_insert(json!(false));
            obj.insert("domain".into(), json!("QBO"));
            obj.insert("sparse".into(), json!(false));
        }
    }
    if twin != e {
        // Intuit's CreditMemo and VendorCredit: no due date; `Balance` is the credit not yet used
        // (all of it, new) and a CreditMemo also shows it as `RemainingCredit`.
        let o = v.as_object_mut().expect("object");
        o.remove("DueDate");
        let total = o.get("TotalAmt").cloned().unwrap_or(json!(0));
        o.insert("Balance".into(), total.clone());
        if e == Entity::CreditNote {
            o.insert("RemainingCredit".into(), total);
        }
    }
    let id = org.next_id();
    let rec = org.put(e, &id, v, now);
    Ok(format!("{{\"{}\":{},\"time\":\"{}\"}}", e.qbo_name(), rec.full, qbo_time(now)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_incremental_queries() {
        let q = parse_query(
            "select * from Invoice where MetaData.LastUpdatedTime > '2024-01-01T00:00:00-07:00' STARTPOSITION 11 MAXRESULTS 10",
        )
        .unwrap();
        assert_eq!(q.entity, "Invoice");
        assert_eq!(q.start, 11);
        assert_eq!(q.max, 10);
        assert_eq!(q.conds[0].op, ">");
        assert_eq!(q.conds[0].value, Lit::Str("2024-01-01T00:00:00-07:00".into()));
        let q = parse_query("SELECT COUNT(*) FROM Customer WHERE Id IN ('1', '2') AND DisplayName LIKE 'Amy%'").unwrap();
        assert!(q.count);
        assert_eq!(q.conds.len(), 2);
        assert_eq!(q.conds[0].value, Lit::List(vec![Lit::Str("1".into()), Lit::Str("2".into())]));
        assert_eq!(parse_query("SELECT * FROM Invoice MAXRESULTS 1000").unwrap().max, 1000);
        assert!(parse_query("SELECT * FROM Invoice MAXRESULTS 1001").unwrap_err().starts_with(MAX_RESULTS_INVALID));
        assert!(parse_query("DELETE FROM Invoice").is_err());
        assert!(parse_query("SELECT * FROM Invoice WHERE Name = 'unterminated").is_err());
        let q = parse_query("SELECT * FROM Customer WHERE DisplayName = 'Amy''s Bird' ORDERBY Id DESC").unwrap();
        assert_eq!(q.conds[0].value, Lit::Str("Amy's Bird".into()));
        assert_eq!(q.order, vec![("Id".to_string(), true)]);
    }

    #[test]
    fn like_patterns() {
        assert!(like("Amy's Bird Sanctuary", "amy%"));
        assert!(like("Amy's Bird Sanctuary", "%bird%"));
        assert!(like("Amy's Bird Sanctuary", "%sanctuary"));
        assert!(!like("Amy's Bird Sanctuary", "%cars%"));
    }
}
