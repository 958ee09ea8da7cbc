//! Provider list answers and single records -> pages -> the normalised model (with invoices',
//! bills' and credit notes' documents, lines and allocations, payments with what they paid,
//! contacts and bank transactions), plus the text parsers
//! they use (times, dates, money, currency codes). Asserted besides "no panic": a normalised record
//! keeps a usable key and serialises, and a page cursor never points before the first page.
#![no_main]

mod common;

use chrono::DateTime;
use libfuzzer_sys::fuzz_target;
use shared::providers::model::parse_time;
use shared::providers::{quickbooks, xero, zoho, Cursor, Entity, Provider, RateLimitInfo, Record};
use shared::sync::model::{currency_code, normalise, parse_date, parse_minor, MAX_ID_LEN};

fn check_record(r: &Record) {
    if let Some(n) = normalise(r) {
        assert!(!n.provider_id.is_empty() && n.provider_id.len() <= MAX_ID_LEN);
        serde_json::to_string(&n).expect("a normalised record serialises");
        if let Some(d) = &n.document {
            // One currency for every amount of a document, and the record's entity is its kind.
            assert_eq!(d.currency.len(), 3);
            let amounts = [&d.subtotal, &d.tax, &d.total, &d.amount_due].into_iter().flatten();
            let line_amounts = d.lines.iter().flat_map(|l| [&l.amount, &l.tax_amount]).flatten();
            let applied = d.allocations.iter().filter_map(|a| a.amount.as_ref());
            assert!(amounts.chain(line_amounts).chain(applied).all(|m| m.currency == d.currency), "{d:?}");
            assert!(d.allocations.len() <= shared::books::MAX_ALLOCATIONS);
            use shared::books::DocumentKind as K;
            match n.entity {
                Entity::Bill => assert_eq!(d.kind, K::Bill),
                Entity::CreditNote => assert!(matches!(d.kind, K::SalesCredit | K::PurchaseCredit), "{d:?}"),
                Entity::PurchaseOrder => assert_eq!(d.kind, K::PurchaseOrder),
                _ => assert_eq!(d.kind, K::SalesInvoice),
            }
        }
        if let Some(p) = &n.payment {
            // A payment's amounts are in its one currency, and what it paid is bounded.
            let amounts = [&p.amount, &p.unapplied].into_iter().flatten().chain(p.applied_to.iter().filter_map(|a| a.amount.as_ref()));
            assert!(amounts.into_iter().all(|m| m.currency == p.currency), "{p:?}");
            assert!(p.applied_to.len() <= shared::books::MAX_ALLOCATIONS);
        }
        if let Some(b) = &n.reference.bank_transaction {
            // One currency for every amount, a bounded number of lines, and a transfer has none.
            let amounts = [&b.tax, &b.total].into_iter().flatten().chain(b.lines.iter().flat_map(|l| [&l.amount, &l.tax_amount]).flatten());
            assert!(amounts.into_iter().all(|m| m.currency == b.currency) && b.currency.len() == 3, "{b:?}");
            assert!(b.lines.len() <= 1000);
            assert_eq!(n.entity, Entity::BankTransaction);
        }
        if let Some(c) = &n.contact {
            assert!(c.emails.len() <= 20 && c.phones.len() <= 20 && c.addresses.len() <= 20, "{c:?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 12 {
        return;
    }
    let (head, body) = data.split_at(12);
    let provider = Provider::ALL[head[0] as usize % 3];
    let entity = Entity::ALL[head[1] as usize % Entity::ALL.len()];
    if head[11] & 0x80 != 0 {
        // The text parsers on their own, with any bytes.
        let text = String::from_utf8_lossy(body);
        let _ = parse_time(&text);
        let _ = parse_date(&text);
        let _ = currency_code(Some(&text));
        for scale in 0..4 {
            if let Some(v) = parse_minor(&text, scale) {
                // What parses is plain decimal text: the same digits with more decimals scale up.
                assert!(text.trim().bytes().all(|b| b.is_ascii_digit() || b == b'.' || b == b'-' || b == b'+'), "{text:?} -> {v}");
            }
        }
        return;
    }
    let Some(v) = common::json_input(body) else { return };
    let cursor = Cursor {
        v: Cursor::VERSION,
        provider,
        entity,
        modified_since: (head[10] & 1 == 1).then(|| DateTime::from_timestamp(i64::from(head[10]) << 24, 0)).flatten(),
        pass_started_at: (head[10] & 2 == 2).then(|| DateTime::from_timestamp(i64::from(head[9]) << 28, 0)).flatten(),
        position: u32::from_le_bytes([head[2], head[3], head[4], head[5]]),
        page_size: u32::from_le_bytes([head[6], head[7], head[8], 0]),
        // 0 to 3: the later collections of credit notes and bank transactions, and past any
        // entity's last (refused).
        collection: (head[9] >> 6) & 0b11,
        ..Cursor::start(provider, entity)
    };
    if cursor.check(provider, entity).is_ok() {
        let page = match provider {
            Provider::QuickBooks => quickbooks::parse_page("934", &cursor, v.clone(), None, RateLimitInfo::default()),
            Provider::Xero => xero::parse_page("t1", &cursor, v.clone(), None, RateLimitInfo::default()),
            Provider::Zoho => zoho::parse_page("700000001", &cursor, v.clone(), None, RateLimitInfo::default()),
        };
        if let Ok(p) = page {
            assert!(p.next_cursor.position >= 1);
            if !p.has_more {
                assert_eq!((p.next_cursor.position, p.next_cursor.collection), (1, 0), "a pass ends in its first collection");
            } else if p.next_cursor.collection != cursor.collection {
                // The next collection of the same pass starts at its first page.
                assert_eq!(p.next_cursor.collection, cursor.collection + 1);
                assert!(p.next_cursor.after_id.is_none() && p.next_cursor.after_time.is_none());
            }
            p.records.iter().for_each(check_record);
        }
    }
    let record = match provider {
        Provider::QuickBooks => quickbooks::normalise(entity, "934", v),
        Provider::Xero => xero::normalise(entity, "t1", v),
        Provider::Zoho => zoho::normalise(entity, "700000001", v),
    };
    if let Ok(r) = record {
        check_record(&r);
    }
});
