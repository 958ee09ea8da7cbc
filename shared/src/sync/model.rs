//! The normalised model the main app reads: invoices, contacts, accounts and payments of all three
//! providers in one shape. Money is an integer count of the currency's minor units with its ISO 4217
//! code (never a float); dates are calendar dates; every record keeps the provider's id and a
//! reference to the provider's raw record (stored beside it, see `store`).
//!
//! Normalisers read untrusted provider JSON: they never index bytes of provider strings, never
//! panic, and turn anything they cannot read into `None` rather than an error (one odd field must not
//! lose the whole record).

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

// Money and its parsing sit below the flows: the report formats read amounts the same way.
pub use crate::money::{currency_code, currency_scale, parse_minor, Money};
use crate::providers::model::{parse_time, Entity, Record};
use crate::Provider;

/// Longest provider id we key a record by (DynamoDB sort keys are at most 1,024 bytes).
pub const MAX_ID_LEN: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SyncRecord {
    pub provider: Provider,
    pub org_id: String,
    pub entity: Entity,
    /// The provider's id of the record.
    pub provider_id: String,
    /// Invoice or payment number, account code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// Contact or account name; the counterparty on invoices and payments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The provider's status text as it sent it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Invoice total, payment amount, contact or account balance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<Money>,
    /// The contact an invoice or payment belongs to (provider id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issue_date: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub due_date: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
    /// Deleted at the provider (QuickBooks CDC, Xero DELETED, a deletion webhook).
    pub deleted: bool,
    /// Where the raw record is: `<provider>/<org>/<entity>/<id>`; the record item holds the raw JSON
    /// itself under `raw` when it fits (see `store::MAX_RAW_BYTES`).
    pub raw_ref: String,
    /// What could not be normalised although the provider sent it: `amount_unreadable` (an amount
    /// that is not plain decimal text or does not fit i64 minor units; `amount` is then absent and
    /// the raw record holds the provider's value). The job's result and event count these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
}

/// The flag of a record whose amount the provider sent but we could not store in minor units.
pub const FLAG_AMOUNT_UNREADABLE: &str = "amount_unreadable";

fn money(amount: Option<&str>, currency: Option<&str>) -> Option<Money> {
    let currency = currency_code(currency).unwrap_or_else(|| "XXX".to_string());
    let minor = parse_minor(amount?, currency_scale(&currency))?;
    Some(Money { minor, currency })
}

/// `2026-01-15`, `2026-01-15T00:00:00`, RFC 3339 or Xero's `/Date(ms+0000)/` to a calendar date.
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    if let Some(head) = s.get(..10) {
        if let Ok(d) = NaiveDate::parse_from_str(head, "%Y-%m-%d") {
            return Some(d);
        }
    }
    parse_time(s).map(|t| t.date_naive())
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p)?;
    }
    cur.as_str().filter(|s| !s.is_empty())
}

fn text_at(v: &Value, path: &[&str]) -> Option<String> {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p)?;
    }
    match cur {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn date_at(v: &Value, path: &[&str]) -> Option<NaiveDate> {
    str_at(v, path).and_then(parse_date)
}

/// A provider record (already read by the provider client) in the normalised model. `None` when the
/// id is unusable as a key (empty or too long); the caller counts it as skipped.
pub fn normalise(r: &Record) -> Option<SyncRecord> {
    if r.id.is_empty() || r.id.len() > MAX_ID_LEN {
        return None;
    }
    let v = &r.raw;
    let (contact_id, issue_date, due_date, deleted) = match r.provider {
        Provider::QuickBooks => {
            let contact = match r.entity {
                Entity::Invoice | Entity::Payment => text_at(v, &["CustomerRef", "value"]),
                _ => None,
            };
            // CDC marks deletions with a top-level `status`.
            let deleted = str_at(v, &["status"]).is_some_and(|s| s.eq_ignore_ascii_case("deleted"));
            (contact, date_at(v, &["TxnDate"]), date_at(v, &["DueDate"]), deleted)
        }
        Provider::Xero => {
            let contact = match r.entity {
                Entity::Invoice => text_at(v, &["Contact", "ContactID"]),
                Entity::Payment => text_at(v, &["Invoice", "Contact", "ContactID"]),
                _ => None,
            };
            let issue = date_at(v, &["DateString"]).or_else(|| date_at(v, &["Date"]));
            let due = date_at(v, &["DueDateString"]).or_else(|| date_at(v, &["DueDate"]));
            let deleted = r.status.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("DELETED"));
            (contact, issue, due, deleted)
        }
        Provider::Zoho => {
            let contact = match r.entity {
                Entity::Invoice | Entity::Payment => text_at(v, &["customer_id"]),
                _ => None,
            };
            (contact, date_at(v, &["date"]), date_at(v, &["due_date"]), false)
        }
    };
    let amount = money(r.amount.as_deref(), r.currency.as_deref());
    let mut flags = Vec::new();
    if amount.is_none() && r.amount.is_some() {
        flags.push(FLAG_AMOUNT_UNREADABLE.to_string());
    }
    Some(SyncRecord {
        provider: r.provider,
        org_id: r.org_id.clone(),
        entity: r.entity,
        provider_id: r.id.clone(),
        number: r.number.clone(),
        name: r.name.clone(),
        status: r.status.clone(),
        amount,
        contact_id,
        issue_date,
        due_date,
        updated_at: r.updated_at,
        deleted,
        raw_ref: raw_ref(r.provider, &r.org_id, r.entity, &r.id),
        flags,
    })
}

pub fn raw_ref(provider: Provider, org_id: &str, entity: Entity, id: &str) -> String {
    format!("{provider}/{org_id}/{entity}/{id}")
}

/// A record the provider reported deleted without a body (a deletion webhook for an id we can no
/// longer read).
pub fn tombstone(provider: Provider, org_id: &str, entity: Entity, id: &str, at: DateTime<Utc>) -> Option<SyncRecord> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return None;
    }
    Some(SyncRecord {
        provider,
        org_id: org_id.to_string(),
        entity,
        provider_id: id.to_string(),
        number: None,
        name: None,
        status: Some("deleted".into()),
        amount: None,
        contact_id: None,
        issue_date: None,
        due_date: None,
        updated_at: Some(at),
        deleted: true,
        raw_ref: raw_ref(provider, org_id, entity, id),
        flags: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::{quickbooks, xero, zoho};
    use serde_json::json;

    #[test]
    fn money_is_exact_minor_units() {
        assert_eq!(parse_minor("362.07", 2), Some(36207));
        assert_eq!(parse_minor("10.5", 2), Some(1050));
        assert_eq!(parse_minor("-5", 2), Some(-500));
        assert_eq!(parse_minor("0.005", 2), Some(1));
        assert_eq!(parse_minor("-0.005", 2), Some(-1));
        assert_eq!(parse_minor("0.004", 2), Some(0));
        assert_eq!(parse_minor("12.345", 3), Some(12345));
        assert_eq!(parse_minor("1500", 0), Some(1500));
        assert_eq!(parse_minor(".5", 2), Some(50));
        for bad in ["", "-", ".", "1e5", "1,000.00", "12.3.4", "١٢", "NaN", "--1", "99999999999999999999", "0x10", "1 000"] {
            assert_eq!(parse_minor(bad, 2), None, "{bad}");
        }
        assert_eq!(parse_minor("92233720368547758.07", 2), Some(i64::MAX));
        assert_eq!(parse_minor("92233720368547758.08", 2), None);
    }

    #[test]
    fn dates_from_every_provider_format() {
        let d = NaiveDate::from_ymd_opt(2019, 2, 26).unwrap();
        assert_eq!(parse_date("2019-02-26"), Some(d));
        assert_eq!(parse_date("2019-02-26T00:00:00"), Some(d));
        assert_eq!(parse_date("/Date(1551139200000+0000)/"), Some(d));
        for bad in ["", "/Date()/", "2019-02-3é", "é2019-02-26", "26/02/2019", "２０１９-02-26"] {
            let _ = parse_date(bad);
        }
        assert_eq!(parse_date("2019-02-3é"), None);
    }

    #[test]
    fn each_provider_normalises_to_one_shape() {
        let q = quickbooks::normalise(
            Entity::Invoice,
            "934",
            json!({"Id": "130", "DocNumber": "1037", "TotalAmt": 362.07, "Balance": 10, "TxnDate": "2026-01-15",
                "DueDate": "2026-02-14", "CustomerRef": {"value": "3", "name": "Cool Cars"}, "CurrencyRef": {"value": "USD"}}),
        )
        .unwrap();
        let n = normalise(&q).unwrap();
        assert_eq!(n.amount, Some(Money { minor: 36207, currency: "USD".into() }));
        assert_eq!((n.contact_id.as_deref(), n.issue_date, n.deleted), (Some("3"), NaiveDate::from_ymd_opt(2026, 1, 15), false));
        assert_eq!(n.raw_ref, "quickbooks/934/invoice/130");

        let x = xero::normalise(
            Entity::Invoice,
            "t1",
            json!({"InvoiceID": "b1", "Total": 1500, "CurrencyCode": "JPY", "Status": "DELETED", "Date": "/Date(1551139200000+0000)/",
                "Contact": {"ContactID": "c9", "Name": "R"}}),
        )
        .unwrap();
        let n = normalise(&x).unwrap();
        assert_eq!(n.amount, Some(Money { minor: 1500, currency: "JPY".into() }));
        assert!(n.deleted);
        assert_eq!(n.issue_date, NaiveDate::from_ymd_opt(2019, 2, 26));
        assert_eq!(n.contact_id.as_deref(), Some("c9"));

        let z = zoho::normalise(
            Entity::Invoice,
            "7",
            json!({"invoice_id": "46", "total": "40.6", "currency_code": "kwd", "date": "2013-11-17", "customer_id": "9"}),
        )
        .unwrap();
        let n = normalise(&z).unwrap();
        assert_eq!(n.amount, Some(Money { minor: 40600, currency: "KWD".into() }));

        let qd = quickbooks::normalise(Entity::Invoice, "934", json!({"domain": "QBO", "status": "Deleted", "Id": "7"})).unwrap();
        assert!(normalise(&qd).unwrap().deleted);
    }

    #[test]
    fn hostile_records_never_panic() {
        let hostile = [
            json!({"Id": "1", "TotalAmt": "１２", "TxnDate": "/Date()/", "CurrencyRef": {"value": "€€€"}, "MetaData": {"LastUpdatedTime": "/Date(é)/"}}),
            json!({"Id": "1", "TotalAmt": [1], "TxnDate": 5, "CustomerRef": "x", "status": 7}),
            json!({"Id": "é".repeat(300)}),
            json!({"Id": "1", "TotalAmt": 1e300, "DueDate": "\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}ééé"}),
        ];
        for v in hostile {
            if let Ok(r) = quickbooks::normalise(Entity::Invoice, "1", v) {
                let _ = normalise(&r);
            }
        }
        let long = quickbooks::normalise(Entity::Invoice, "1", json!({"Id": "9".repeat(300)})).unwrap();
        assert!(normalise(&long).is_none());
    }

    #[test]
    fn an_amount_past_minor_units_is_flagged_not_dropped_silently() {
        let big =
            quickbooks::normalise(Entity::Invoice, "1", json!({"Id": "1", "TotalAmt": 9.5e18, "CurrencyRef": {"value": "USD"}})).unwrap();
        let n = normalise(&big).unwrap();
        assert_eq!((n.amount, n.flags), (None, vec![FLAG_AMOUNT_UNREADABLE.to_string()]));
        let none = quickbooks::normalise(Entity::Contact, "1", json!({"Id": "2", "DisplayName": "A"})).unwrap();
        assert!(normalise(&none).unwrap().flags.is_empty(), "no amount sent is not a flag");
    }
}
