//! Structure-aware input: the fuzzer's bytes drive a small JSON generator whose keys and strings are
//! the ones our parsers look for, so mutations reach the per-field code instead of dying in the
//! JSON tokenizer. Each target also feeds the raw bytes as JSON, so both paths are covered.
#![allow(dead_code)]

use serde_json::{Map, Number, Value};

pub const KEYS: &[&str] = &[
    // QuickBooks
    "Id",
    "DocNumber",
    "TotalAmt",
    "Balance",
    "TxnDate",
    "DueDate",
    "CustomerRef",
    "name",
    "value",
    "CurrencyRef",
    "MetaData",
    "LastUpdatedTime",
    "DisplayName",
    "Active",
    "AcctNum",
    "Name",
    "CurrentBalance",
    "PaymentRefNum",
    "status",
    "QueryResponse",
    "Invoice",
    "Customer",
    "Account",
    "Payment",
    "time",
    "Fault",
    "fault",
    "type",
    "Type",
    "Error",
    "error",
    "code",
    "Code",
    "Message",
    "message",
    "Detail",
    "detail",
    "CompanyInfo",
    "CompanyName",
    "Country",
    "CDCResponse",
    "domain",
    // Xero
    "InvoiceID",
    "ContactID",
    "AccountID",
    "PaymentID",
    "Invoices",
    "Contacts",
    "Accounts",
    "Payments",
    "pagination",
    "page",
    "pageCount",
    "DateTimeUTC",
    "InvoiceNumber",
    "Contact",
    "Total",
    "CurrencyCode",
    "Status",
    "AccountNumber",
    "DefaultCurrency",
    "ContactStatus",
    "Reference",
    "Amount",
    "UpdatedDateUTC",
    "DateString",
    "Date",
    "DueDateString",
    "Elements",
    "ValidationErrors",
    "ErrorNumber",
    "Title",
    "tenantId",
    "tenantName",
    "tenantType",
    "id",
    "Detail",
    // Zoho
    "invoices",
    "contacts",
    "chartofaccounts",
    "customerpayments",
    "invoice",
    "contact",
    "chart_of_account",
    "payment",
    "invoice_id",
    "contact_id",
    "account_id",
    "payment_id",
    "invoice_number",
    "customer_name",
    "total",
    "contact_name",
    "outstanding_receivable_amount",
    "account_code",
    "account_name",
    "is_active",
    "payment_number",
    "amount",
    "last_modified_time",
    "currency_code",
    "page_context",
    "has_more_page",
    "customer_id",
    "date",
    "due_date",
    // token responses
    "access_token",
    "refresh_token",
    "expires_in",
    "token_type",
    "scope",
    "x_refresh_token_expires_in",
    "x_refresh_token_hard_expires_in",
    "api_domain",
    "error_description",
    "id_token",
];

pub const STRINGS: &[&str] = &[
    "",
    "/Date()/",
    "/Date(1551139200000+0000)/",
    "/Date(-1000+0000)/",
    "/Date(99999999999999999999)/",
    "/Date(-9223372036854775808)/",
    "/Date(é)/",
    "2026-01-15",
    "2026-01-15T00:00:00",
    "2026-03-01T12:00:00+0530",
    "2026-03-01T12:00:00.123Z",
    "2019-02-26T20:28:21.659",
    "+262143-12-31T23:59:59Z",
    "362.07",
    "-0.005",
    "92233720368547758.07",
    "92233720368547758.08",
    ".5",
    "1e5",
    "USD",
    "JPY",
    "KWD",
    "kwd",
    "€€€",
    "DELETED",
    "Deleted",
    "AUTHORISED",
    "bearer",
    "invalid_grant",
    "invalid_code",
    "Access Denied",
    "too many requests",
    "ThrottleExceeded",
    "3001",
    "610",
    "AuthenticationFault",
    "SystemFault",
    "ValidationException",
    "https://www.zohoapis.eu",
    "https://accounts.zoho.eu",
    "é",
    "\u{0}",
];

pub struct Gen<'a> {
    data: &'a [u8],
}

impl<'a> Gen<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Gen { data }
    }

    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    pub fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        for x in b.iter_mut() {
            *x = self.byte();
        }
        u64::from_le_bytes(b)
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }

    /// Up to `max` bytes as a (lossy) string.
    pub fn raw_string(&mut self, max: usize) -> String {
        let n = (self.byte() as usize).min(max).min(self.data.len());
        let (s, rest) = self.data.split_at(n);
        self.data = rest;
        String::from_utf8_lossy(s).into_owned()
    }

    pub fn string(&mut self) -> String {
        let b = self.byte();
        if b < 160 {
            STRINGS[b as usize % STRINGS.len()].to_string()
        } else if b < 200 {
            // A number as text, at every magnitude.
            let v = self.u64() as i64;
            let shift = self.byte() % 64;
            format!("{}.{:02}", v >> shift, self.byte() % 100)
        } else {
            self.raw_string(64)
        }
    }

    pub fn value(&mut self, depth: u32) -> Value {
        if self.is_empty() {
            return Value::Null;
        }
        let b = self.byte();
        match b % 10 {
            0 => Value::Null,
            1 => Value::Bool(b & 0x80 != 0),
            2 => Value::Number(Number::from(self.u64() as i64)),
            3 => Value::Number(Number::from(self.u64())),
            4 => Number::from_f64(f64::from_bits(self.u64())).map(Value::Number).unwrap_or(Value::Null),
            5 | 6 => Value::String(self.string()),
            7 if depth < 6 => {
                let n = self.byte() % 6;
                Value::Array((0..n).map(|_| self.value(depth + 1)).collect())
            }
            _ if depth < 6 => {
                let n = self.byte() % 10;
                let mut m = Map::new();
                for _ in 0..n {
                    let k = self.byte();
                    let key = if k < 250 { KEYS[k as usize % KEYS.len()].to_string() } else { self.raw_string(16) };
                    m.insert(key, self.value(depth + 1));
                }
                Value::Object(m)
            }
            _ => Value::String(self.string()),
        }
    }
}

/// The body to test: raw JSON bytes (first byte even) or a generated document (odd).
pub fn json_input(data: &[u8]) -> Option<Value> {
    let (&mode, rest) = data.split_first()?;
    if mode & 1 == 0 {
        serde_json::from_slice(rest).ok()
    } else {
        Some(Gen::new(rest).value(0))
    }
}
