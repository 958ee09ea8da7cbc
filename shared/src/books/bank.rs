//! Bank transactions and expenses: money spent from or received into a bank (or card) account
//! without an invoice or a bill, and transfers between the org's own accounts (QuickBooks
//! Purchase, Deposit and Transfer; Xero BankTransactions and BankTransfers; Zoho expenses and
//! banktransactions).
//!
//! As for documents, each provider describes where the fields sit with a [`BankMap`] per wire
//! collection (lines read by the documents' own [`LineMap`]); [`map_bank_transaction`] is the one
//! reader. Provider JSON is untrusted: a field that cannot be read is absent, never an error.

use serde_json::Value;

use super::{at, day_of, first_text, map_line, money_of, skipped, LineMap, Path, Ref};
use crate::books::Line;
use crate::money::{currency_code, Money};

/// What the money did, in one vocabulary; the provider's own word is in `provider_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BankKind {
    /// Money out of the account (QuickBooks Purchase by cash, cheque or card; Xero SPEND).
    Spend,
    /// Money into the account (QuickBooks Deposit; Xero RECEIVE; Zoho deposits).
    Receive,
    /// Between two of the org's own accounts (QuickBooks Transfer, Xero BankTransfers and the
    /// SPEND-TRANSFER / RECEIVE-TRANSFER sides, Zoho transfer_fund).
    Transfer,
    /// An expense recorded as such (Zoho expenses), paid through `bank_account`.
    Expense,
    /// A type this map does not know (the provider's word is in `provider_type`).
    Other,
}

/// The transaction's state in one vocabulary; the provider's own word stays in the record's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BankStatus {
    /// In the books (QuickBooks has no other state; Xero AUTHORISED).
    Posted,
    /// Imported from a feed but not yet in the books (Zoho uncategorized).
    Uncategorized,
    Void,
    Deleted,
    Unknown,
}

/// A bank transaction or an expense (`schemas/records.v1.json#/$defs/BankTransaction`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BankTransaction {
    pub kind: BankKind,
    /// The provider's own type word (QuickBooks PaymentType or the collection name, Xero Type,
    /// Zoho transaction_type or `expense`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_type: Option<String>,
    pub status: BankStatus,
    /// The bank or card account the money left or entered (a transfer's source account).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bank_account: Option<Ref>,
    /// The payee or payer, where the provider names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<Ref>,
    /// `YYYY-MM-DD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// ISO 4217; `XXX` when the provider names none (QuickBooks Transfer, Xero BankTransfers: the
    /// accounts' currency, which the record does not state).
    pub currency: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tax: Option<Money>,
    /// What left or entered the account, as the provider states it (positive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<Money>,
    /// The lines' accounts are where the money went (spend) or came from (receive).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<Line>,
    /// False when the answer left the lines out (Zoho's list summaries); a transfer has none and
    /// is complete.
    pub lines_complete: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_account: Option<Ref>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_account: Option<Ref>,
}

/// How the normalised kind is found.
#[derive(Debug)]
pub enum KindRule {
    /// Every record of the collection is of this kind.
    Fixed(BankKind),
    /// The provider's type field, matched case-insensitively against the table; another word is
    /// [`BankKind::Other`].
    Field(Path, &'static [(&'static str, BankKind)]),
    /// A boolean field: true is the first kind, false or absent the second (QuickBooks `Credit` on a
    /// card Purchase is a refund).
    Flag(Path, BankKind, BankKind),
}

/// How the normalised status is found.
#[derive(Debug)]
pub enum BankStatusRule {
    /// No status field: what the provider lists is in the books (QuickBooks).
    Posted,
    /// The provider's status field matched case-insensitively; absent reads as `absent`.
    Field(Path, &'static [(&'static str, BankStatus)], BankStatus),
}

/// Where one wire collection's fields are.
#[derive(Debug)]
pub struct BankMap {
    pub kind: KindRule,
    /// The provider's type word; empty: `provider_type_is`.
    pub provider_type: &'static [Path],
    pub provider_type_is: Option<&'static str>,
    pub status: BankStatusRule,
    pub bank_account_id: &'static [Path],
    pub bank_account_name: &'static [Path],
    pub contact_id: &'static [Path],
    pub contact_name: &'static [Path],
    pub date: &'static [Path],
    pub reference: &'static [Path],
    pub currency: &'static [Path],
    pub tax: &'static [Path],
    pub total: &'static [Path],
    /// `None`: the collection has no lines (transfers).
    pub lines: Option<Path>,
    pub line: LineMap,
    pub from_id: &'static [Path],
    pub from_name: &'static [Path],
    pub to_id: &'static [Path],
    pub to_name: &'static [Path],
}

/// A line map for collections without lines.
pub const NO_LINES: LineMap = LineMap {
    id: &[],
    description: &[],
    quantity: &[],
    unit_price: &[],
    amount: &[],
    account_id: &[],
    account_name: &[],
    item_id: &[],
    item_name: &[],
    tax_code: &[],
    tax_rate: &[],
    tax_amount: &[],
    tracking: &[],
    header_tracking: &[],
    skip_if: None,
};

/// At most this many lines are read from one transaction (the rest stay in the raw record).
const MAX_LINES: usize = 1000;

pub fn map_bank_transaction(map: &BankMap, v: &Value) -> BankTransaction {
    let currency = currency_code(first_text(v, map.currency).as_deref()).unwrap_or_else(|| "XXX".to_string());
    let provider_type = first_text(v, map.provider_type).or_else(|| map.provider_type_is.map(str::to_string));
    let kind = match &map.kind {
        KindRule::Fixed(k) => *k,
        KindRule::Field(path, table) => match at(v, path).and_then(Value::as_str) {
            Some(s) => table.iter().find(|(k, _)| k.eq_ignore_ascii_case(s.trim())).map(|(_, k)| *k).unwrap_or(BankKind::Other),
            None => BankKind::Other,
        },
        KindRule::Flag(path, yes, no) => {
            if at(v, path).and_then(Value::as_bool) == Some(true) {
                *yes
            } else {
                *no
            }
        }
    };
    let status = match &map.status {
        BankStatusRule::Posted => BankStatus::Posted,
        BankStatusRule::Field(path, table, absent) => match at(v, path).and_then(Value::as_str) {
            Some(s) => table.iter().find(|(k, _)| k.eq_ignore_ascii_case(s.trim())).map(|(_, st)| *st).unwrap_or(BankStatus::Unknown),
            None => *absent,
        },
    };
    let header = super::prefixed_tracking(v, map.line.header_tracking);
    let (lines, lines_complete) = match map.lines {
        None => (Vec::new(), true),
        Some(path) => match at(v, path) {
            Some(Value::Array(items)) => (
                items
                    .iter()
                    .filter(|l| l.is_object() && !skipped(&map.line, l))
                    .take(MAX_LINES)
                    .map(|l| map_line(&map.line, l, &currency, &header))
                    .collect(),
                items.len() <= MAX_LINES,
            ),
            _ => (Vec::new(), false),
        },
    };
    let from_account = Ref::from(first_text(v, map.from_id), first_text(v, map.from_name));
    let bank_account = Ref::from(first_text(v, map.bank_account_id), first_text(v, map.bank_account_name)).or_else(|| from_account.clone());
    BankTransaction {
        kind,
        provider_type,
        status,
        bank_account,
        contact: Ref::from(first_text(v, map.contact_id), first_text(v, map.contact_name)),
        date: first_text(v, map.date).and_then(|d| day_of(&d)),
        reference: first_text(v, map.reference),
        tax: money_of(v, map.tax, &currency),
        total: money_of(v, map.total, &currency),
        lines,
        lines_complete,
        from_account,
        to_account: Ref::from(first_text(v, map.to_id), first_text(v, map.to_name)),
        currency,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const LINE: LineMap = LineMap { amount: &[&["Amt"]], account_id: &[&["Acc"]], description: &[&["D"]], ..NO_LINES };

    const SPEND: BankMap = BankMap {
        kind: KindRule::Field(&["Type"], &[("SPEND", BankKind::Spend), ("RECEIVE", BankKind::Receive)]),
        provider_type: &[&["Type"]],
        provider_type_is: None,
        status: BankStatusRule::Field(
            &["Status"],
            &[("AUTHORISED", BankStatus::Posted), ("DELETED", BankStatus::Deleted)],
            BankStatus::Unknown,
        ),
        bank_account_id: &[&["Bank", "Id"]],
        bank_account_name: &[],
        contact_id: &[&["Who"]],
        contact_name: &[],
        date: &[&["Date"]],
        reference: &[],
        currency: &[&["Cur"]],
        tax: &[],
        total: &[&["Total"]],
        lines: Some(&["Lines"]),
        line: LINE,
        from_id: &[],
        from_name: &[],
        to_id: &[],
        to_name: &[],
    };

    const TRANSFER: BankMap = BankMap {
        kind: KindRule::Fixed(BankKind::Transfer),
        provider_type: &[],
        provider_type_is: Some("Transfer"),
        status: BankStatusRule::Posted,
        bank_account_id: &[],
        bank_account_name: &[],
        lines: None,
        line: NO_LINES,
        from_id: &[&["From"]],
        to_id: &[&["To"]],
        total: &[&["Amount"]],
        currency: &[],
        ..SPEND
    };

    #[test]
    fn a_spend_reads_its_account_lines_and_total_and_a_transfer_its_two_accounts() {
        let t = map_bank_transaction(
            &SPEND,
            &json!({"Type": "spend", "Status": "AUTHORISED", "Bank": {"Id": "b1"}, "Who": "c1", "Date": "/Date(1761955200000+0000)/",
                "Cur": "usd", "Total": 12.5, "Lines": [{"Amt": "10.00", "Acc": "400", "D": "Taxi"}, {"Amt": 2.5, "Acc": "401"}, 7]}),
        );
        assert_eq!(
            (t.kind, t.status, t.currency.as_str(), t.date.as_deref()),
            (BankKind::Spend, BankStatus::Posted, "USD", Some("2025-11-01"))
        );
        assert_eq!((t.total.as_ref().map(|m| m.minor), t.lines.len(), t.lines_complete), (Some(1250), 2, true));
        assert_eq!(t.bank_account.and_then(|r| r.id).as_deref(), Some("b1"));
        assert_eq!(t.lines.iter().map(|l| l.amount.as_ref().unwrap().minor).sum::<i64>(), 1250);
        const REFUNDABLE: BankMap = BankMap { kind: KindRule::Flag(&["Credit"], BankKind::Receive, BankKind::Spend), ..SPEND };
        let kinds: Vec<BankKind> = [json!({"Credit": true}), json!({"Credit": false}), json!({"Credit": "true"}), json!({})]
            .iter()
            .map(|v| map_bank_transaction(&REFUNDABLE, v).kind)
            .collect();
        assert_eq!(kinds, [BankKind::Receive, BankKind::Spend, BankKind::Spend, BankKind::Spend], "only a true flag is a refund");
        let x = map_bank_transaction(&TRANSFER, &json!({"From": "a", "To": "b", "Amount": "5"}));
        assert_eq!(
            (x.kind, x.provider_type.as_deref(), x.lines_complete, x.currency.as_str()),
            (BankKind::Transfer, Some("Transfer"), true, "XXX")
        );
        assert_eq!(
            (x.from_account.as_ref().and_then(|r| r.id.as_deref()), x.to_account.as_ref().and_then(|r| r.id.as_deref())),
            (Some("a"), Some("b"))
        );
        assert_eq!(x.bank_account, x.from_account, "a transfer's bank account is its source");
        let odd = map_bank_transaction(&SPEND, &json!({"Type": "SPEND-OVERPAYMENT", "Status": "??", "Lines": "x"}));
        assert_eq!((odd.kind, odd.status, odd.lines_complete), (BankKind::Other, BankStatus::Unknown, false));
        for v in [json!(null), json!([1]), json!({"Type": 5, "Total": "1e9", "Lines": [null, {"Amt": [1]}], "Bank": "x"})] {
            let t = map_bank_transaction(&SPEND, &v);
            assert!(t.total.is_none() && t.bank_account.is_none(), "{v}");
        }
    }
}
