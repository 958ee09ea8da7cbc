//! The records API's request parsing and query planning, without I/O (fuzzed by
//! fuzz/fuzz_targets/records_query.rs): the route from the path, the list parameters from the
//! query, and the one DynamoDB Query a page runs.
//!
//! Everything here refuses what it does not understand with a 4xx (an unknown parameter, a date
//! that is not `YYYY-MM-DD`, a limit over [`MAX_LIMIT`]) rather than guessing: a misspelt filter
//! that was ignored would hand the assistant every record instead of the ones it asked for.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, NaiveDate, Utc};
use sha2::{Digest, Sha256};

use crate::providers::model::Entity;
use crate::sync::record_index as rx;
use crate::{Error, Provider, Result};

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 500;
/// Longest status text or contact id a filter may name (the index does not hold longer ones).
const MAX_FILTER_LEN: usize = 255;
/// Longest path segment (org and record ids; provider ids are at most 255 bytes).
const MAX_SEGMENT_LEN: usize = 512;

/// The parameters of the app's request signature (docs/connect-auth.md), allowed beside the
/// endpoint's own.
pub const AUTH_PARAMS: [&str; 4] = ["tenant", "user", "ts", "kid"];
pub const LIST_PARAMS: [&str; 11] = [
    "limit",
    "cursor",
    "modified_after",
    "status",
    "contact_id",
    "due_before",
    "due_after",
    "issued_before",
    "issued_after",
    "include_deleted",
    "include_raw",
];
pub const GET_PARAMS: [&str; 1] = ["include_raw"];

/// One of the API's routes, with its path parameters decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Connections { tenant: String },
    List { tenant: String, provider: Provider, org_id: String, entity: Entity },
    Get { tenant: String, provider: Provider, org_id: String, entity: Entity, provider_id: String },
}

impl Route {
    pub fn tenant(&self) -> &str {
        match self {
            Route::Connections { tenant } | Route::List { tenant, .. } | Route::Get { tenant, .. } => tenant,
        }
    }

    /// Every route's path template, as the template and the OpenAPI document name it.
    pub const TEMPLATES: [&'static str; 3] = [
        "/v1/tenants/{tenant}/connections",
        "/v1/tenants/{tenant}/connections/{provider}/{org}/records/{entity}",
        "/v1/tenants/{tenant}/connections/{provider}/{org}/records/{entity}/{id}",
    ];

    /// This route's path template (a new route cannot be added without naming one).
    pub fn template(&self) -> &'static str {
        match self {
            Route::Connections { .. } => Self::TEMPLATES[0],
            Route::List { .. } => Self::TEMPLATES[1],
            Route::Get { .. } => Self::TEMPLATES[2],
        }
    }

    /// The query parameters this route takes besides the signature's.
    pub fn params(&self) -> &'static [&'static str] {
        match self {
            Route::Connections { .. } => &[],
            Route::List { .. } => &LIST_PARAMS,
            Route::Get { .. } => &GET_PARAMS,
        }
    }
}

/// The route of `path` and the part of it the app signs (from `/v1/` on, as sent: a stage or proxy
/// prefix in front does not matter).
pub fn parse_route(path: &str) -> Result<(Route, &str)> {
    let not_found = || Error::NotFound("no such route".into());
    let start = path.find("/v1/").ok_or_else(not_found)?;
    let signed = &path[start..];
    let segs: Vec<&str> = signed["/v1/".len()..].split('/').collect();
    let decoded = segs.iter().map(|s| percent_decode(s)).collect::<Result<Vec<String>>>()?;
    let d: Vec<&str> = decoded.iter().map(String::as_str).collect();
    let tenant = |t: &str| -> Result<String> {
        if crate::tenancy::valid_tenant_id(t) {
            Ok(t.to_string())
        } else {
            Err(Error::InvalidInput("the path's tenant is not a valid tenant id".into()))
        }
    };
    let route = match d.as_slice() {
        ["tenants", t, "connections"] => Route::Connections { tenant: tenant(t)? },
        ["tenants", t, "connections", p, org, "records", e] => {
            Route::List { tenant: tenant(t)?, provider: provider(p)?, org_id: segment(org, "org id")?, entity: entity(e)? }
        }
        ["tenants", t, "connections", p, org, "records", e, id] => Route::Get {
            tenant: tenant(t)?,
            provider: provider(p)?,
            org_id: segment(org, "org id")?,
            entity: entity(e)?,
            provider_id: segment(id, "record id")?,
        },
        _ => return Err(not_found()),
    };
    Ok((route, signed))
}

fn provider(s: &str) -> Result<Provider> {
    Provider::ALL
        .into_iter()
        .find(|p| p.as_str() == s)
        .ok_or_else(|| Error::NotFound("unknown provider (one of quickbooks, xero, zoho)".into()))
}

/// Only the canonical names: the entity is part of the signed path and of the index keys.
pub fn entity(s: &str) -> Result<Entity> {
    Entity::ALL.into_iter().find(|e| e.as_str() == s).ok_or_else(|| {
        let names: Vec<&str> = Entity::ALL.iter().map(|e| e.as_str()).collect();
        Error::InvalidInput(format!("unknown entity (one of {})", names.join(", ")))
    })
}

fn segment(s: &str, what: &str) -> Result<String> {
    if s.is_empty() || s.len() > MAX_SEGMENT_LEN || s.chars().any(char::is_control) {
        return Err(Error::InvalidInput(format!("the {what} is empty, too long or not text")));
    }
    Ok(s.to_string())
}

/// RFC 3986 percent-decoding of one path segment; a broken escape or non-UTF-8 result is refused.
pub fn percent_decode(s: &str) -> Result<String> {
    let bad = || Error::InvalidInput("the path is not valid percent-encoded UTF-8".into());
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or_else(bad)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// Refuses a parameter the route does not take (the signature's own are allowed).
pub fn check_known(route: &Route, params: &BTreeMap<String, String>) -> Result<()> {
    for k in params.keys() {
        if !AUTH_PARAMS.contains(&k.as_str()) && !route.params().contains(&k.as_str()) {
            let shown: String = k.chars().take(40).collect();
            return Err(Error::InvalidInput(format!("unknown parameter '{shown}'")));
        }
    }
    Ok(())
}

/// A date range: `after` and `before` are exclusive (`due_before=2026-03-06` is "due before Friday").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DateRange {
    pub after: Option<NaiveDate>,
    pub before: Option<NaiveDate>,
}

impl DateRange {
    fn is_set(&self) -> bool {
        self.after.is_some() || self.before.is_some()
    }

    /// Inclusive lower and exclusive upper bound as index key text.
    fn bounds(&self, name: &str) -> Result<(Option<String>, Option<String>)> {
        let out_of_range = || Error::InvalidInput(format!("{name} dates must lie between 0000-01-01 and 9999-12-30"));
        let lo = match self.after {
            Some(a) => Some(a.succ_opt().and_then(rx::date_key).ok_or_else(out_of_range)?),
            None => None,
        };
        let hi = match self.before {
            Some(b) => Some(rx::date_key(b).ok_or_else(out_of_range)?),
            None => None,
        };
        if let (Some(l), Some(h)) = (&lo, &hi) {
            if l >= h {
                return Err(Error::InvalidInput(format!("{name}_after must be at least a day before {name}_before")));
            }
        }
        Ok((lo, hi))
    }
}

/// The list route's parameters, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListParams {
    pub limit: usize,
    pub cursor: Option<String>,
    pub modified_after: Option<DateTime<Utc>>,
    pub status: Option<String>,
    pub contact_id: Option<String>,
    pub due: DateRange,
    pub issued: DateRange,
    pub include_deleted: bool,
    pub include_raw: bool,
}

impl ListParams {
    pub fn parse(params: &BTreeMap<String, String>) -> Result<Self> {
        let get = |k: &str| params.get(k).map(String::as_str);
        let limit = match get("limit") {
            None => DEFAULT_LIMIT,
            Some(l) => {
                let n: usize = (!l.is_empty() && l.len() <= 6 && l.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| l.parse().ok())
                    .flatten()
                    .ok_or_else(|| Error::InvalidInput("limit must be a whole number from 1 to 500".into()))?;
                if n == 0 || n > MAX_LIMIT {
                    return Err(Error::InvalidInput(format!("limit must be from 1 to {MAX_LIMIT}, not {n}")));
                }
                n
            }
        };
        let modified_after = match get("modified_after") {
            None => None,
            Some(t) => Some(
                DateTime::parse_from_rfc3339(t)
                    .map_err(|_| Error::InvalidInput("modified_after must be an RFC 3339 time (2026-03-01T12:00:00Z)".into()))?
                    .with_timezone(&Utc),
            ),
        };
        let text = |k: &str| -> Result<Option<String>> {
            match get(k) {
                None => Ok(None),
                Some(v) if !v.is_empty() && v.len() <= MAX_FILTER_LEN && !v.chars().any(char::is_control) => Ok(Some(v.to_string())),
                Some(_) => Err(Error::InvalidInput(format!("{k} must be 1-{MAX_FILTER_LEN} bytes of text"))),
            }
        };
        let date = |k: &str| -> Result<Option<NaiveDate>> { get(k).map(|v| parse_day(k, v)).transpose() };
        let flag = |k: &str| -> Result<bool> {
            match get(k) {
                None | Some("false") => Ok(false),
                Some("true") => Ok(true),
                Some(_) => Err(Error::InvalidInput(format!("{k} must be true or false"))),
            }
        };
        let cursor = match get("cursor") {
            Some("") => return Err(Error::InvalidCursor("empty".into())),
            c => c.map(str::to_string),
        };
        let p = ListParams {
            limit,
            cursor,
            modified_after,
            status: text("status")?,
            contact_id: text("contact_id")?,
            due: DateRange { after: date("due_after")?, before: date("due_before")? },
            issued: DateRange { after: date("issued_after")?, before: date("issued_before")? },
            include_deleted: flag("include_deleted")?,
            include_raw: flag("include_raw")?,
        };
        p.due.bounds("due")?;
        p.issued.bounds("issued")?;
        Ok(p)
    }
}

/// `YYYY-MM-DD` exactly (chrono alone would take `+2026-1-5`).
fn parse_day(name: &str, v: &str) -> Result<NaiveDate> {
    let shape = v.len() == 10 && v.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
    shape
        .then(|| NaiveDate::parse_from_str(v, "%Y-%m-%d").ok())
        .flatten()
        .ok_or_else(|| Error::InvalidInput(format!("{name} must be a date YYYY-MM-DD")))
}

/// One page's DynamoDB Query: an index, its key condition, what is filtered within the key range,
/// and a fingerprint of all of it that a cursor must carry.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryPlan {
    pub index: &'static str,
    pub hash_attr: &'static str,
    pub hash_value: String,
    pub range_attr: &'static str,
    pub key_condition: String,
    pub filter: Option<String>,
    pub values: BTreeMap<String, AttributeValue>,
    pub fingerprint: String,
}

/// The plan for one list request. The most selective filter picks the index (contact, then status,
/// then the due range, then the issue range, else modification order); the others are filters on
/// the same bounded key range. A page is one Query with `Limit = limit`.
pub fn plan(tenant_id: &str, provider: Provider, org_id: &str, entity: Entity, p: &ListParams) -> Result<QueryPlan> {
    let scope = rx::scope(tenant_id, provider, org_id, entity);
    let mut values = BTreeMap::new();
    let mut key: Vec<String> = Vec::new();
    let mut filters: Vec<String> = Vec::new();
    let mod_lo = p.modified_after.map(|t| rx::modified_key(t.timestamp_millis().saturating_add(1)));
    let (due_lo, due_hi) = p.due.bounds("due")?;
    let (iss_lo, iss_hi) = p.issued.bounds("issued")?;

    let (index, hash_attr, hash_value, range_attr) = if let Some(c) = &p.contact_id {
        (rx::BY_CONTACT, rx::ATTR_CONTACT, rx::contact_key(&scope, c), rx::ATTR_MODIFIED)
    } else if let Some(st) = &p.status {
        (rx::BY_STATUS, rx::ATTR_STATUS, rx::status_key(&scope, st), rx::ATTR_MODIFIED)
    } else if p.due.is_set() {
        (rx::BY_DUE, rx::ATTR_SCOPE, scope.clone(), rx::ATTR_DUE)
    } else if p.issued.is_set() {
        (rx::BY_ISSUE, rx::ATTR_SCOPE, scope.clone(), rx::ATTR_ISSUE)
    } else {
        (rx::BY_MODIFIED, rx::ATTR_SCOPE, scope.clone(), rx::ATTR_MODIFIED)
    };
    values.insert(":h".to_string(), AttributeValue::S(hash_value.clone()));
    key.push(format!("{hash_attr} = :h"));

    // Each range condition goes into the key when it is on the index's range attribute, else into
    // the filter.
    let mut range = |attr: &str, lo: Option<String>, hi: Option<String>, tag: &str| {
        let target = if attr == range_attr { &mut key } else { &mut filters };
        let (l, h) = (format!(":{tag}lo"), format!(":{tag}hi"));
        match (lo, hi) {
            (Some(lo), Some(hi)) if attr == range_attr => {
                // BETWEEN is inclusive; no key equals the bare date `hi` (keys are `<date>#<id>`),
                // so the upper bound stays exclusive.
                target.push(format!("{attr} BETWEEN {l} AND {h}"));
                values.insert(l, AttributeValue::S(lo));
                values.insert(h, AttributeValue::S(hi));
            }
            (Some(lo), Some(hi)) => {
                target.push(format!("{attr} >= {l} AND {attr} < {h}"));
                values.insert(l, AttributeValue::S(lo));
                values.insert(h, AttributeValue::S(hi));
            }
            (Some(lo), None) => {
                target.push(format!("{attr} >= {l}"));
                values.insert(l, AttributeValue::S(lo));
            }
            (None, Some(hi)) => {
                target.push(format!("{attr} < {h}"));
                values.insert(h, AttributeValue::S(hi));
            }
            (None, None) => {}
        }
    };
    range(rx::ATTR_MODIFIED, mod_lo, None, "m");
    range(rx::ATTR_DUE, due_lo, due_hi, "d");
    range(rx::ATTR_ISSUE, iss_lo, iss_hi, "i");
    if index != rx::BY_STATUS {
        if let Some(st) = &p.status {
            filters.push(format!("{} = :st", rx::ATTR_STATUS));
            values.insert(":st".into(), AttributeValue::S(rx::status_key(&scope, st)));
        }
    }
    if !p.include_deleted {
        filters.push("#deleted <> :true".into());
        values.insert(":true".into(), AttributeValue::Bool(true));
    }
    let key_condition = key.join(" AND ");
    let filter = (!filters.is_empty()).then(|| filters.join(" AND "));
    let fingerprint = {
        let mut h = Sha256::new();
        for part in [tenant_id, provider.as_str(), org_id, entity.as_str(), index, &key_condition, filter.as_deref().unwrap_or("")] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        for (k, v) in &values {
            h.update(k.as_bytes());
            h.update([0]);
            h.update(format!("{v:?}").as_bytes());
            h.update([0]);
        }
        hex::encode(&h.finalize()[..16])
    };
    Ok(QueryPlan { index, hash_attr, hash_value, range_attr, key_condition, filter, values, fingerprint })
}

impl QueryPlan {
    /// The expression names the plan uses (attribute names go through placeholders, clear of
    /// DynamoDB's reserved words).
    pub fn names(&self) -> Option<std::collections::HashMap<String, String>> {
        let uses = |n: &str| self.key_condition.contains(n) || self.filter.as_deref().is_some_and(|f| f.contains(n));
        uses("#deleted").then(|| std::collections::HashMap::from([("#deleted".to_string(), "deleted".to_string())]))
    }
}

/// The names a plan's items are keyed by in its index (an `ExclusiveStartKey` has exactly these).
pub fn start_key_names(plan: &QueryPlan) -> BTreeSet<&'static str> {
    BTreeSet::from(["pk", "sk", plan.hash_attr, plan.range_attr])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn routes_decode_their_segments_and_keep_the_signed_path_as_sent() {
        let (r, signed) = parse_route("/prod/v1/tenants/acme-1/connections/xero/org%2F1/records/invoice/inv%201").unwrap();
        assert_eq!(signed, "/v1/tenants/acme-1/connections/xero/org%2F1/records/invoice/inv%201");
        assert_eq!(
            r,
            Route::Get {
                tenant: "acme-1".into(),
                provider: Provider::Xero,
                org_id: "org/1".into(),
                entity: Entity::Invoice,
                provider_id: "inv 1".into()
            }
        );
        assert!(matches!(parse_route("/v1/tenants/acme-1/connections").unwrap().0, Route::Connections { .. }));
        for (path, code) in [
            ("/v1/tenants/acme-1/connections/xero/o/records/invoices", crate::ErrorCode::InvalidInput),
            ("/v1/tenants/acme-1/connections/sage/o/records/invoice", crate::ErrorCode::NotFound),
            ("/v1/tenants/acme-1/connections/xero/o/records", crate::ErrorCode::NotFound),
            ("/v1/tenants/a%20b/connections", crate::ErrorCode::InvalidInput),
            ("/v1/tenants/acme-1/connections/xero/%ff/records/invoice", crate::ErrorCode::InvalidInput),
            ("/v1/tenants/acme-1/connections/xero/%f/records/invoice", crate::ErrorCode::InvalidInput),
            ("/v1/tenants/acme-1/connections/xero//records/invoice", crate::ErrorCode::InvalidInput),
            ("/connections", crate::ErrorCode::NotFound),
        ] {
            assert_eq!(parse_route(path).unwrap_err().code(), code, "{path}");
        }
    }

    #[test]
    fn list_parameters_are_checked_strictly() {
        let p = ListParams::parse(&params(&[])).unwrap();
        assert_eq!((p.limit, p.include_deleted, p.include_raw), (DEFAULT_LIMIT, false, false));
        assert_eq!(ListParams::parse(&params(&[("limit", "500")])).unwrap().limit, 500);
        for bad in [
            ("limit", "501"),
            ("limit", "0"),
            ("limit", "-1"),
            ("limit", "99999999999999999999"),
            ("limit", " 5"),
            ("due_before", "2026-3-01"),
            ("due_before", "+2026-03-01"),
            ("due_after", "2026-02-30"),
            ("modified_after", "yesterday"),
            ("include_deleted", "yes"),
            ("status", ""),
        ] {
            let e = ListParams::parse(&params(&[bad])).unwrap_err();
            assert_eq!(e.http_status(), 400, "{bad:?}");
        }
        let e = ListParams::parse(&params(&[("due_after", "2026-03-05"), ("due_before", "2026-03-06")])).unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::InvalidInput, "an empty range is a mistake, not an empty page");
        assert_eq!(ListParams::parse(&params(&[("cursor", "")])).unwrap_err().code(), crate::ErrorCode::InvalidCursor);
        let route = parse_route("/v1/tenants/acme-1/connections/xero/o/records/invoice").unwrap().0;
        assert!(check_known(&route, &params(&[("tenant", "t"), ("status", "paid")])).is_ok());
        assert!(check_known(&route, &params(&[("due_befor", "2026-01-01")])).is_err());
    }

    mod hostile {
        use super::super::*;
        use crate::records::cursor;
        use proptest::prelude::*;

        const NAMES: [&str; 12] = [
            "limit",
            "cursor",
            "modified_after",
            "status",
            "contact_id",
            "due_before",
            "due_after",
            "issued_before",
            "issued_after",
            "include_deleted",
            "include_raw",
            "x",
        ];

        proptest! {
            /// The fuzz target's invariants (fuzz/fuzz_targets/records_query.rs) on random input, run
            /// with every `cargo test`: no panic; what is accepted is within bounds and stays in the
            /// request's tenant.
            #[test]
            fn hostile_requests_are_refused_or_stay_in_bounds(
                prefix in "(/[a-z]{0,3})?",
                tenant in "[a-zA-Z0-9%_-]{0,12}",
                provider in prop_oneof![Just("xero".to_string()), Just("zoho".to_string()), "[a-z]{0,6}"],
                org in "[^/?]{0,12}",
                entity in prop_oneof![Just("invoice".to_string()), Just("payment".to_string()), "[a-z]{0,8}"],
                id in proptest::option::of("[^/?]{0,8}"),
                pairs in proptest::collection::vec((0usize..NAMES.len(), "[ -~]{0,40}"), 0..6),
            ) {
                let id = id.map(|i| format!("/{i}")).unwrap_or_default();
                let path = format!("{prefix}/v1/tenants/{tenant}/connections/{provider}/{org}/records/{entity}{id}");
                let Ok((route, _)) = parse_route(&path) else { return Ok(()) };
                let params: BTreeMap<String, String> = pairs.into_iter().map(|(i, v)| (NAMES[i].to_string(), v)).collect();
                let _ = check_known(&route, &params);
                let Route::List { tenant, provider, org_id, entity } = route else { return Ok(()) };
                let Ok(p) = ListParams::parse(&params) else { return Ok(()) };
                prop_assert!((1..=MAX_LIMIT).contains(&p.limit));
                let Ok(plan) = plan(&tenant, provider, &org_id, entity, &p) else { return Ok(()) };
                let prefix = format!("TENANT#{tenant}#");
                prop_assert!(plan.hash_value.starts_with(&prefix));
                if let Some(c) = &p.cursor {
                    if let Ok(key) = cursor::decode(&plan, &tenant, provider, &org_id, entity, c) {
                        prop_assert_eq!(key["pk"].as_s().unwrap(), &crate::store::tenant_pk(&tenant));
                    }
                }
            }
        }
    }

    #[test]
    fn the_most_selective_filter_picks_the_index_and_the_rest_filter_its_range() {
        let p = ListParams::parse(&params(&[("status", "PAID"), ("due_before", "2026-03-06"), ("due_after", "2026-03-01")])).unwrap();
        let q = plan("acme-1", Provider::Xero, "o1", Entity::Invoice, &p).unwrap();
        assert_eq!(q.index, rx::BY_STATUS);
        assert_eq!(q.key_condition, "rx_status = :h");
        assert_eq!(q.hash_value, "TENANT#acme-1#xero#o1#invoice#paid");
        assert_eq!(q.filter.as_deref(), Some("rx_due >= :dlo AND rx_due < :dhi AND #deleted <> :true"));
        assert_eq!(q.values[":dlo"], AttributeValue::S("2026-03-02".into()));
        assert_eq!(q.values[":dhi"], AttributeValue::S("2026-03-06".into()));

        let p = ListParams::parse(&params(&[("due_before", "2026-03-06"), ("include_deleted", "true")])).unwrap();
        let q = plan("acme-1", Provider::Xero, "o1", Entity::Invoice, &p).unwrap();
        assert_eq!((q.index, q.key_condition.as_str(), q.filter.as_deref()), (rx::BY_DUE, "rx_scope = :h AND rx_due < :dhi", None));

        let p = ListParams::parse(&params(&[("modified_after", "2026-03-01T00:00:00Z")])).unwrap();
        let q = plan("acme-1", Provider::Xero, "o1", Entity::Invoice, &p).unwrap();
        assert_eq!((q.index, q.key_condition.as_str()), (rx::BY_MODIFIED, "rx_scope = :h AND rx_mod >= :mlo"));
        assert_eq!(q.values[":mlo"], AttributeValue::S("001772323200001".into()));
        let other = plan("acme-2", Provider::Xero, "o1", Entity::Invoice, &p).unwrap();
        assert_ne!(q.fingerprint, other.fingerprint);
    }
}
