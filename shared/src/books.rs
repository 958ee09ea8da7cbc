//! The common accounting model's documents (sales invoices and bills) with their lines, and the
//! data-driven mapping that reads them out of a provider's JSON.
//!
//! A provider describes where each field sits in its wire format with a [`DocumentMap`] (JSON paths,
//! alternatives in order, and a status table); [`map_document`] is the one reader for all of them.
//! Adding a document entity or a provider is a map, not a fourth copy of reading code. The maps
//! live beside each provider's client (`providers::quickbooks::DOCUMENTS`, ...).
//!
//! Provider JSON is untrusted: nothing here indexes bytes of provider strings or panics, and a field
//! that cannot be read is absent (`None`), never an error, so one odd field does not lose a record.
//! Money is integer minor units of the document's currency; quantities, unit prices and exchange
//! rates keep the provider's decimal text (they may carry more decimals than the currency has).

use serde_json::Value;

pub mod bank;
pub mod reference;

use crate::money::{currency_code, currency_scale, parse_minor, Money};

/// Which side of the books a document is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentKind {
    /// Sales: QuickBooks Invoice, Xero ACCREC invoice, Zoho invoice.
    SalesInvoice,
    /// Purchases: QuickBooks Bill, Xero ACCPAY invoice, Zoho bill.
    Bill,
    /// A credit to a customer: QuickBooks CreditMemo, Xero ACCRECCREDIT credit note, Zoho creditnote.
    SalesCredit,
    /// A credit from a supplier: QuickBooks VendorCredit, Xero ACCPAYCREDIT credit note, Zoho
    /// vendor credit.
    PurchaseCredit,
    /// An order to a supplier: QuickBooks PurchaseOrder, Xero PurchaseOrders, Zoho purchaseorder.
    PurchaseOrder,
}

/// The document's state in one vocabulary; the provider's own word stays in the record's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentStatus {
    Draft,
    /// Xero SUBMITTED: waiting for approval, not yet owed.
    AwaitingApproval,
    /// Approved and owed in full (Xero AUTHORISED, Zoho sent/open/overdue/unpaid).
    Open,
    PartiallyPaid,
    Paid,
    Void,
    Deleted,
    /// A purchase order billed or closed (QuickBooks `Closed`, Xero `BILLED`, Zoho `billed`).
    Closed,
    /// A status this map does not know (the provider's word is in the record's `status`).
    Unknown,
}

/// A reference to another record: the provider's id and the name the document showed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ref {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Ref {
    fn from(id: Option<String>, name: Option<String>) -> Option<Ref> {
        (id.is_some() || name.is_some()).then_some(Ref { id, name })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Line {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Decimal text of the provider's value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantity: Option<String>,
    /// Decimal text of the provider's value (may have more decimals than the currency).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit_price: Option<String>,
    /// The line's amount before tax (Xero LineAmount with exclusive amounts, QuickBooks Amount,
    /// Zoho item_total).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<Money>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<Ref>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<Ref>,
    /// The provider's tax code (Xero TaxType, QuickBooks TaxCodeRef, Zoho tax_id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tax_code: Option<String>,
    /// Percentage as decimal text, where the line states it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tax_rate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tax_amount: Option<Money>,
    /// Tracking (Xero tracking options, QuickBooks class, Zoho reporting tags): `id` the option's
    /// id, `name` the option's name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tracking: Vec<Ref>,
}

/// A sales invoice or a bill, as the app reads it (`schemas/records.v1.json#/$defs/Document`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Document {
    pub kind: DocumentKind,
    pub status: DocumentStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The customer of an invoice, the supplier of a bill.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<Ref>,
    /// ISO 4217; `XXX` when the provider named none.
    pub currency: String,
    /// Units of the base currency per unit of `currency`, as the provider sent it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exchange_rate: Option<String>,
    /// Sum of the lines before tax.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subtotal: Option<Money>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tax: Option<Money>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<Money>,
    /// What is still owed on it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount_due: Option<Money>,
    pub lines: Vec<Line>,
    /// False when the provider's list answer leaves the lines out (Zoho's list summaries): the
    /// lines arrive with the next read of the single record (a webhook or a get).
    pub lines_complete: bool,
    /// A credit note's applications to invoices or bills, where the provider lists them on the
    /// credit note (Xero Allocations, Zoho invoices_credited / bills_credited). Empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allocations: Vec<Allocation>,
}

/// Part of a credit note applied to one document.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Allocation {
    /// The invoice or bill it is applied to: the provider's id and the document's number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<Ref>,
    /// In the credit note's currency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<Money>,
    /// `YYYY-MM-DD`, as the provider dated the application.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
}

/// Where a credit note's applications sit: the arrays to read (each tried; all found are read)
/// and, relative to one application, its fields.
#[derive(Debug)]
pub struct AllocationMap {
    pub lists: &'static [Path],
    pub document_id: &'static [Path],
    pub document_number: &'static [Path],
    pub amount: &'static [Path],
    pub date: &'static [Path],
}

/// At most this many applications are kept per document: a hostile answer cannot grow a record
/// past what one stored item holds (the raw record keeps them all).
pub const MAX_ALLOCATIONS: usize = 500;

/// Reads a credit note's applications with `map`, amounts in `currency`. Entries with neither a
/// document nor an amount are skipped.
pub fn map_allocations(map: &AllocationMap, v: &Value, currency: &str) -> Vec<Allocation> {
    let mut out = Vec::new();
    for list in map.lists {
        let Some(Value::Array(items)) = at(v, list) else { continue };
        for a in items.iter().filter(|a| a.is_object()) {
            let document = Ref::from(first_text(a, map.document_id), first_text(a, map.document_number));
            let amount = money_of(a, map.amount, currency);
            if document.is_none() && amount.is_none() {
                continue;
            }
            let date = first_text(a, map.date).and_then(|d| day_of(&d));
            out.push(Allocation { document, amount, date });
            if out.len() >= MAX_ALLOCATIONS {
                return out;
            }
        }
    }
    out
}

/// Which way a payment's money went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentDirection {
    /// From a customer (QuickBooks Payment, Xero ACCRECPAYMENT, Zoho customer payment).
    Received,
    /// To a supplier (QuickBooks BillPayment, Xero ACCPAYPAYMENT, Zoho vendor payment).
    Made,
}

/// A payment received or made, as the app reads it (`schemas/records.v1.json#/$defs/Payment`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Payment {
    pub direction: PaymentDirection,
    /// ISO 4217; `XXX` when the provider named none.
    pub currency: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<Money>,
    /// `YYYY-MM-DD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The customer who paid or the supplier paid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<Ref>,
    /// The bank (or card) account the money went into or came out of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bank_account: Option<Ref>,
    /// What was not applied to any document (a customer's overpayment, credit left).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unapplied: Option<Money>,
    /// The documents it paid, with how much of it went to each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applied_to: Vec<Application>,
}

/// Part of a payment applied to one document.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Application {
    /// The document: the provider's id and its number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<Ref>,
    /// The document's kind in the provider's words (QuickBooks TxnType `Invoice`, `Bill`,
    /// `CreditMemo`; Xero `ACCREC`, `ACCPAY`, `ACCRECCREDIT`; Zoho `invoice`, `bill`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document_type: Option<String>,
    /// In the payment's currency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<Money>,
}

/// Where one list of a payment's applications is: an array of entries or one object, and relative
/// to an entry its fields. An object (Xero's `Invoice`) with no amount of its own takes the whole
/// payment's amount: a payment that names one document paid it all.
#[derive(Debug)]
pub struct AppliedList {
    pub at: Path,
    pub document_id: &'static [Path],
    pub document_number: &'static [Path],
    pub document_type: &'static [Path],
    /// The kind to state when the entry does not name one (Zoho's `invoices[]` are invoices).
    pub document_type_is: Option<&'static str>,
    pub amount: &'static [Path],
}

/// Where a payment's fields sit in one provider's JSON for one entity.
#[derive(Debug)]
pub struct PaymentMap {
    pub direction: PaymentDirection,
    pub currency: &'static [Path],
    pub amount: &'static [Path],
    pub date: &'static [Path],
    pub reference: &'static [Path],
    pub contact_id: &'static [Path],
    pub contact_name: &'static [Path],
    pub account_id: &'static [Path],
    pub account_name: &'static [Path],
    pub unapplied: &'static [Path],
    pub applied: &'static [AppliedList],
}

/// Reads a payment with `map`. At most [`MAX_ALLOCATIONS`] applications are kept.
pub fn map_payment(map: &PaymentMap, v: &Value) -> Payment {
    let currency = currency_code(first_text(v, map.currency).as_deref()).unwrap_or_else(|| "XXX".to_string());
    let amount = money_of(v, map.amount, &currency);
    let mut applied_to = Vec::new();
    'lists: for list in map.applied {
        let (items, single): (Vec<&Value>, bool) = match at(v, list.at) {
            Some(Value::Array(a)) => (a.iter().collect(), false),
            Some(o @ Value::Object(_)) => (vec![o], true),
            _ => continue,
        };
        for item in items.into_iter().filter(|i| i.is_object()) {
            let document = Ref::from(first_text(item, list.document_id), first_text(item, list.document_number));
            let own = money_of(item, list.amount, &currency);
            let amount = if single && list.amount.is_empty() { amount.clone() } else { own };
            if document.is_none() && amount.is_none() {
                continue;
            }
            let document_type = first_text(item, list.document_type).or_else(|| list.document_type_is.map(str::to_string));
            applied_to.push(Application { document, document_type, amount });
            if applied_to.len() >= MAX_ALLOCATIONS {
                break 'lists;
            }
        }
    }
    Payment {
        direction: map.direction,
        amount,
        date: first_text(v, map.date).and_then(|d| day_of(&d)),
        reference: first_text(v, map.reference),
        contact: Ref::from(first_text(v, map.contact_id), first_text(v, map.contact_name)),
        bank_account: Ref::from(first_text(v, map.account_id), first_text(v, map.account_name)),
        unapplied: money_of(v, map.unapplied, &currency),
        applied_to,
        currency,
    }
}

/// A customer, a supplier or both, as the app reads it (`schemas/records.v1.json#/$defs/Contact`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Contact {
    pub is_customer: bool,
    pub is_supplier: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub company_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phones: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Address>,
    /// As the provider shows it (QuickBooks masks a vendor's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tax_number: Option<String>,
    /// ISO 4217: the contact's default currency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// What the contact owes us, in `currency`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receivable: Option<Money>,
    /// What we owe the contact, in `currency`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payable: Option<Money>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Address {
    /// The provider's word for it (QuickBooks `billing`/`shipping`, Xero `STREET`/`POBOX`, Zoho
    /// `billing`/`shipping`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

/// Where an address's fields are, relative to it.
#[derive(Debug)]
pub struct AddressMap {
    /// An array of addresses or one address object.
    pub at: Path,
    /// Its kind: read from the address (`kind` paths), else this word.
    pub kind: &'static [Path],
    pub kind_is: Option<&'static str>,
    pub lines: &'static [Path],
    pub city: &'static [Path],
    pub region: &'static [Path],
    pub postal_code: &'static [Path],
    pub country: &'static [Path],
}

/// How a contact's roles are stated.
#[derive(Debug)]
pub enum RoleRule {
    /// Two flags (Xero `IsCustomer`, `IsSupplier`).
    Flags { customer: Path, supplier: Path },
    /// One field's value (Zoho `contact_type`: `customer`, `vendor`).
    Field { at: Path, customer: &'static [&'static str], supplier: &'static [&'static str] },
    /// A supplier when any of these fields is present, else a customer (QuickBooks: a Vendor has
    /// `Vendor1099`, a Customer never does).
    SupplierIfAny(&'static [Path]),
}

/// Where a contact's fields sit in one provider's JSON.
#[derive(Debug)]
pub struct ContactMap {
    pub roles: RoleRule,
    pub name: &'static [Path],
    pub company_name: &'static [Path],
    pub emails: &'static [Path],
    /// Each an array of phone objects or one phone (object or text): (where, number paths).
    pub phones: &'static [(Path, &'static [Path])],
    pub addresses: &'static [AddressMap],
    pub tax_number: &'static [Path],
    pub currency: &'static [Path],
    pub receivable: &'static [Path],
    pub payable: &'static [Path],
    /// One balance whose side follows the role (QuickBooks `Balance`: owed by a customer, owed to
    /// a vendor).
    pub balance_by_role: &'static [Path],
}

/// Most emails, phones and addresses kept per contact (the raw record keeps them all).
const MAX_CONTACT_ITEMS: usize = 20;

fn objects(v: Option<&Value>) -> Vec<&Value> {
    match v {
        Some(Value::Array(a)) => a.iter().filter(|x| !x.is_null()).take(MAX_CONTACT_ITEMS).collect(),
        Some(x @ (Value::Object(_) | Value::String(_))) => vec![x],
        _ => Vec::new(),
    }
}

pub fn map_contact(map: &ContactMap, v: &Value) -> Contact {
    let flag = |p: Path| at(v, p).and_then(Value::as_bool) == Some(true);
    let (is_customer, is_supplier) = match &map.roles {
        RoleRule::Flags { customer, supplier } => (flag(customer), flag(supplier)),
        RoleRule::Field { at: path, customer, supplier } => {
            let word = at(v, path).and_then(Value::as_str).unwrap_or_default();
            (customer.iter().any(|c| c.eq_ignore_ascii_case(word)), supplier.iter().any(|c| c.eq_ignore_ascii_case(word)))
        }
        RoleRule::SupplierIfAny(paths) => {
            let supplier = paths.iter().any(|p| at(v, p).is_some_and(|x| !x.is_null()));
            (!supplier, supplier)
        }
    };
    let currency = currency_code(first_text(v, map.currency).as_deref());
    let unit = currency.clone().unwrap_or_else(|| "XXX".to_string());
    let mut receivable = money_of(v, map.receivable, &unit);
    let mut payable = money_of(v, map.payable, &unit);
    if let Some(b) = money_of(v, map.balance_by_role, &unit) {
        if is_supplier {
            payable = payable.or(Some(b));
        } else {
            receivable = receivable.or(Some(b));
        }
    }
    let mut emails: Vec<String> = map.emails.iter().filter_map(|p| at(v, p).and_then(text_of)).collect();
    emails.dedup();
    emails.truncate(MAX_CONTACT_ITEMS);
    let mut phones = Vec::new();
    for (where_, number) in map.phones {
        for p in objects(at(v, where_)) {
            let n = if p.is_string() { text_of(p) } else { first_text(p, number) };
            if let Some(n) = n.filter(|n| !phones.contains(n)) {
                phones.push(n);
            }
        }
    }
    phones.truncate(MAX_CONTACT_ITEMS);
    let mut addresses = Vec::new();
    for m in map.addresses {
        for a in objects(at(v, m.at)).into_iter().filter(|a| a.is_object()) {
            let lines: Vec<String> = m.lines.iter().filter_map(|p| at(a, p).and_then(text_of)).collect();
            let address = Address {
                kind: first_text(a, m.kind).or_else(|| m.kind_is.map(str::to_string)),
                city: first_text(a, m.city),
                region: first_text(a, m.region),
                postal_code: first_text(a, m.postal_code),
                country: first_text(a, m.country),
                lines,
            };
            let empty = address.lines.is_empty()
                && address.city.is_none()
                && address.region.is_none()
                && address.postal_code.is_none()
                && address.country.is_none();
            if !empty {
                addresses.push(address);
            }
        }
    }
    addresses.truncate(MAX_CONTACT_ITEMS);
    Contact {
        is_customer,
        is_supplier,
        name: first_text(v, map.name),
        company_name: first_text(v, map.company_name),
        emails,
        phones,
        addresses,
        tax_number: first_text(v, map.tax_number),
        currency,
        receivable,
        payable,
    }
}

/// `YYYY-MM-DD` from a date, a date-time or Xero's `/Date(ms+0000)/`.
fn day_of(s: &str) -> Option<String> {
    let s = s.trim();
    if let Some(head) = s.get(..10) {
        if plain_date(head).is_some() || chrono::NaiveDate::parse_from_str(head, "%Y-%m-%d").is_ok() {
            return Some(head.to_string());
        }
    }
    // Xero's Microsoft JSON date; read here (not with the providers' time parser) because the
    // books sit below the providers.
    let inner = s.strip_prefix("/Date(")?;
    let end = inner.char_indices().skip(1).find(|(_, c)| !c.is_ascii_digit()).map(|(i, _)| i).unwrap_or(inner.len());
    let ms: i64 = inner.get(..end)?.parse().ok()?;
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.date_naive().format("%Y-%m-%d").to_string())
}

/// `YYYY-MM-DD` of ASCII digits as a date, without parsing a format string (every document has two
/// dates); anything else is `None` and goes to chrono's parser, which reads it as it always did.
pub(crate) fn plain_date(head: &str) -> Option<chrono::NaiveDate> {
    let b = head.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().try_fold(0u32, |n, d| d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0')));
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    chrono::NaiveDate::from_ymd_opt(digits(0..4)? as i32, digits(5..7)?, digits(8..10)?)
}

/// The organisation whose books these are (QuickBooks CompanyInfo, Xero Organisation, Zoho
/// organization), as the app reads it (`schemas/records.v1.json#/$defs/Company`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Company {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legal_name: Option<String>,
    /// ISO 4217. QuickBooks keeps it in Preferences, not CompanyInfo: absent there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_currency: Option<String>,
    /// As the provider names it (ISO 3166 alpha-2 for Xero and QuickBooks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// 1 (January) to 12.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fiscal_year_start_month: Option<u8>,
    /// Cash or accrual for sales tax, in the provider's words (Xero SalesTaxBasis).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tax_basis: Option<String>,
}

/// How a provider states the fiscal year.
#[derive(Debug, Clone, Copy)]
pub enum FiscalMonth {
    /// The first month's English name (QuickBooks `FiscalYearStartMonth: "January"`).
    StartName,
    /// The first month, 0 for January (Zoho `fiscal_year_start_month`; unconfirmed, the sandbox
    /// and third-party clients read it so).
    StartZeroBased,
    /// The last month, 1 for January (Xero `FinancialYearEndMonth`): the year starts the month after.
    EndOneBased,
}

#[derive(Debug)]
pub struct CompanyMap {
    pub legal_name: &'static [Path],
    pub base_currency: &'static [Path],
    pub country: &'static [Path],
    pub fiscal_month: (&'static [Path], FiscalMonth),
    pub tax_basis: &'static [Path],
}

const MONTHS: [&str; 12] =
    ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december"];

pub fn map_company(map: &CompanyMap, v: &Value) -> Company {
    let (paths, rule) = map.fiscal_month;
    let fiscal_year_start_month = first_text(v, paths).and_then(|t| match rule {
        FiscalMonth::StartName => MONTHS.iter().position(|m| m.eq_ignore_ascii_case(&t)).map(|i| i as u8 + 1),
        FiscalMonth::StartZeroBased => t.parse::<u8>().ok().filter(|m| *m < 12).map(|m| m + 1),
        FiscalMonth::EndOneBased => t.parse::<u8>().ok().filter(|m| (1..=12).contains(m)).map(|m| m % 12 + 1),
    });
    Company {
        legal_name: first_text(v, map.legal_name),
        base_currency: currency_code(first_text(v, map.base_currency).as_deref()),
        country: first_text(v, map.country),
        fiscal_year_start_month,
        tax_basis: first_text(v, map.tax_basis),
    }
}

/// A JSON path: object keys from the record's root.
pub type Path = &'static [&'static str];

/// Where a line's fields sit, relative to the line. Each field lists alternatives, first match wins
/// (QuickBooks keeps an invoice line's item under `SalesItemLineDetail`, a bill line's under
/// `ItemBasedExpenseLineDetail` or its account under `AccountBasedExpenseLineDetail`).
#[derive(Debug)]
pub struct LineMap {
    pub id: &'static [Path],
    pub description: &'static [Path],
    pub quantity: &'static [Path],
    pub unit_price: &'static [Path],
    pub amount: &'static [Path],
    pub account_id: &'static [Path],
    pub account_name: &'static [Path],
    pub item_id: &'static [Path],
    pub item_name: &'static [Path],
    pub tax_code: &'static [Path],
    pub tax_rate: &'static [Path],
    pub tax_amount: &'static [Path],
    /// (where: an array of tracking objects or one object, the option's id, the option's name).
    pub tracking: &'static [(Path, Path, Path)],
    /// Tracking the document states once for all its lines (QuickBooks' `DepartmentRef`), added to
    /// every line's `tracking`: paths from the document's root.
    pub header_tracking: &'static [PrefixedTracking],
    /// Lines that are not lines (QuickBooks' SubTotalLineDetail): (field, values).
    pub skip_if: Option<(Path, &'static [&'static str])>,
}

/// A tracking reference whose option id is the provider's id after a prefix: (where: an array of
/// tracking objects or one object, the option's id, the option's name, the prefix). The prefix
/// keeps apart options of one provider list whose ids may equal another's (QuickBooks Department
/// and Class Ids: `providers::quickbooks::record_id`); empty for none.
pub type PrefixedTracking = (Path, Path, Path, &'static str);

/// The tracking references `list` finds in `v`, ids prefixed.
pub(crate) fn prefixed_tracking(v: &Value, list: &[PrefixedTracking]) -> Vec<Ref> {
    let mut out = Vec::new();
    for (where_, id, name, prefix) in list {
        let mut push = |t: &Value| {
            let id = at(t, id).and_then(text_of).map(|id| if prefix.is_empty() { id } else { format!("{prefix}{id}") });
            if let Some(r) = Ref::from(id, at(t, name).and_then(text_of)) {
                out.push(r);
            }
        };
        match at(v, where_) {
            Some(Value::Array(items)) => items.iter().for_each(&mut push),
            Some(o @ Value::Object(_)) => push(o),
            _ => {}
        }
    }
    out
}

/// How the normalised status is found.
#[derive(Debug)]
pub enum StatusRule {
    /// The provider's status field, matched case-insensitively against the table.
    Field(Path, &'static [(&'static str, DocumentStatus)]),
    /// No status field (QuickBooks): paid when nothing is due, partly paid when some is.
    FromAmountDue,
}

/// Where a document's fields sit in one provider's JSON for one entity.
#[derive(Debug)]
pub struct DocumentMap {
    pub kind: DocumentKind,
    pub reference: &'static [Path],
    pub contact_id: &'static [Path],
    pub contact_name: &'static [Path],
    pub currency: &'static [Path],
    pub exchange_rate: &'static [Path],
    /// Empty: the sum of the lines' amounts.
    pub subtotal: &'static [Path],
    pub tax: &'static [Path],
    pub total: &'static [Path],
    pub amount_due: &'static [Path],
    pub status: StatusRule,
    pub lines: Path,
    pub line: LineMap,
}

/// A key that is a number indexes an array (`["LinkedTxn", "0", "TxnId"]`).
fn at(v: &Value, path: Path) -> Option<&Value> {
    path.iter().try_fold(v, |cur, k| match cur {
        Value::Array(a) => k.parse::<usize>().ok().and_then(|i| a.get(i)),
        Value::Object(m) if m.len() <= SCANNED_KEYS => m.iter().find(|(key, _)| key.len() == k.len() && key.as_str() == *k).map(|(_, x)| x),
        _ => cur.get(*k),
    })
}

/// Objects of up to this many keys (a line, a reference) are searched by scanning for an equal key,
/// lengths compared first: serde_json's B-tree search calls a text comparison at every key it
/// passes, and this runs for every field of every line of every page. Larger objects (a hostile
/// one may hold thousands of keys) keep the B-tree search.
const SCANNED_KEYS: usize = 16;

/// Text of a string or a number (providers send amounts as either).
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn first_text(v: &Value, paths: &[Path]) -> Option<String> {
    paths.iter().find_map(|p| at(v, p).and_then(text_of))
}

/// Decimal text to money at the currency's scale, without building the text on the heap (this runs
/// for every amount of every line of every page). An integer scales exactly; a float goes through
/// its shortest exact decimal text, as serde_json would print it. A float in exponent form (very
/// small or large) is not plain decimal text and reads as absent, as it did as text.
fn money_of(v: &Value, paths: &[Path], currency: &str) -> Option<Money> {
    let scale = currency_scale(currency);
    let found = paths.iter().find_map(|p| match at(v, p) {
        Some(x @ (Value::String(_) | Value::Number(_))) => Some(x),
        _ => None,
    })?;
    let minor = match found {
        Value::String(s) if !s.trim().is_empty() => parse_minor(s, scale),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => 10i64.checked_pow(scale).and_then(|m| i.checked_mul(m)),
            (None, Some(f)) if f.is_finite() => parse_minor(ryu::Buffer::new().format_finite(f), scale),
            _ => None,
        },
        _ => None,
    }?;
    Some(Money { minor, currency: currency.to_string() })
}

/// Reads a document with `map`. Its lines are complete when the answer carried the lines array
/// (Zoho's list summaries do not).
pub fn map_document(map: &DocumentMap, v: &Value) -> Document {
    let currency = currency_code(first_text(v, map.currency).as_deref()).unwrap_or_else(|| "XXX".to_string());
    let items = match at(v, map.lines) {
        Some(Value::Array(items)) => Some(items),
        _ => None,
    };
    let mut lines = Vec::with_capacity(items.map_or(0, |i| i.len().min(MAX_PRESIZED_LINES)));
    let header = prefixed_tracking(v, map.line.header_tracking);
    lines.extend(items.into_iter().flatten().filter(|l| !skipped(&map.line, l)).map(|l| map_line(&map.line, l, &currency, &header)));
    let subtotal = if map.subtotal.is_empty() {
        // The sum of the lines, when every line has an amount (else it is unknown, not smaller).
        lines
            .iter()
            .try_fold(0i64, |acc, l| l.amount.as_ref().and_then(|a| acc.checked_add(a.minor)))
            .filter(|_| !lines.is_empty())
            .map(|minor| Money { minor, currency: currency.clone() })
    } else {
        money_of(v, map.subtotal, &currency)
    };
    let total = money_of(v, map.total, &currency);
    let amount_due = money_of(v, map.amount_due, &currency);
    let status = match &map.status {
        StatusRule::Field(path, table) => match at(v, path).and_then(Value::as_str) {
            Some(s) => table.iter().find(|(k, _)| k.eq_ignore_ascii_case(s.trim())).map(|(_, st)| *st).unwrap_or(DocumentStatus::Unknown),
            None => DocumentStatus::Unknown,
        },
        StatusRule::FromAmountDue => match (&amount_due, &total) {
            (Some(due), _) if due.minor == 0 => DocumentStatus::Paid,
            (Some(due), Some(total)) if due.minor < total.minor => DocumentStatus::PartiallyPaid,
            (Some(_), _) => DocumentStatus::Open,
            (None, _) => DocumentStatus::Unknown,
        },
    };
    Document {
        kind: map.kind,
        status,
        reference: first_text(v, map.reference),
        contact: Ref::from(first_text(v, map.contact_id), first_text(v, map.contact_name)),
        exchange_rate: first_text(v, map.exchange_rate),
        subtotal,
        tax: money_of(v, map.tax, &currency),
        total,
        amount_due,
        currency,
        lines_complete: items.is_some(),
        lines,
        allocations: Vec::new(),
    }
}

/// Lines reserved for up front (one allocation for a document's lines); a hostile array of a
/// million nulls does not reserve a million lines.
const MAX_PRESIZED_LINES: usize = 256;

fn skipped(m: &LineMap, line: &Value) -> bool {
    match m.skip_if {
        Some((path, values)) => at(line, path).and_then(Value::as_str).is_some_and(|s| values.contains(&s)),
        None => false,
    }
}

fn map_line(m: &LineMap, l: &Value, currency: &str, header: &[Ref]) -> Line {
    let mut tracking = Vec::new();
    for (where_, id, name) in m.tracking {
        let mut push = |t: &Value| {
            if let Some(r) = Ref::from(at(t, id).and_then(text_of), at(t, name).and_then(text_of)) {
                tracking.push(r);
            }
        };
        match at(l, where_) {
            Some(Value::Array(items)) => items.iter().for_each(&mut push),
            Some(o @ Value::Object(_)) => push(o),
            _ => {}
        }
    }
    tracking.extend(header.iter().cloned());
    Line {
        id: first_text(l, m.id),
        description: first_text(l, m.description),
        quantity: first_text(l, m.quantity),
        unit_price: first_text(l, m.unit_price),
        amount: money_of(l, m.amount, currency),
        account: Ref::from(first_text(l, m.account_id), first_text(l, m.account_name)),
        item: Ref::from(first_text(l, m.item_id), first_text(l, m.item_name)),
        tax_code: first_text(l, m.tax_code),
        tax_rate: first_text(l, m.tax_rate),
        tax_amount: money_of(l, m.tax_amount, currency),
        tracking,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MAP: DocumentMap = DocumentMap {
        kind: DocumentKind::Bill,
        reference: &[&["Ref"]],
        contact_id: &[&["Who", "Id"]],
        contact_name: &[&["Who", "Name"]],
        currency: &[&["Cur"]],
        exchange_rate: &[],
        subtotal: &[],
        tax: &[&["Tax"]],
        total: &[&["Total"]],
        amount_due: &[&["Due"]],
        status: StatusRule::FromAmountDue,
        lines: &["Lines"],
        line: LineMap {
            id: &[&["Id"]],
            description: &[],
            quantity: &[&["A", "Qty"], &["B", "Qty"]],
            unit_price: &[],
            amount: &[&["Amount"]],
            account_id: &[],
            account_name: &[],
            item_id: &[],
            item_name: &[],
            tax_code: &[],
            tax_rate: &[],
            tax_amount: &[],
            tracking: &[(&["Tags"], &["OptId"], &["Opt"])],
            header_tracking: &[],
            skip_if: Some((&["Kind"], &["SubTotal"])),
        },
    };

    #[test]
    fn lines_sum_to_the_subtotal_in_minor_units_and_alternatives_are_tried_in_order() {
        let d = map_document(
            &MAP,
            &json!({"Cur": "kwd", "Total": "3.3", "Due": 0, "Tax": 0.3, "Who": {"Id": 7},
                "Lines": [{"Id": "1", "Amount": 1.1, "A": {"Qty": 2}, "Tags": [{"OptId": "o1", "Opt": "North"}]},
                          {"Id": "2", "Amount": "1.9", "B": {"Qty": "1.5"}, "Tags": {"OptId": "o2"}},
                          {"Kind": "SubTotal", "Amount": 3.0}]}),
        );
        assert_eq!(d.currency, "KWD");
        assert_eq!(d.lines.len(), 2, "the subtotal line is not a line");
        assert_eq!(d.subtotal, Some(Money { minor: 3000, currency: "KWD".into() }));
        assert_eq!(d.total.as_ref().map(|m| m.minor), Some(3300));
        assert_eq!((d.lines[0].quantity.as_deref(), d.lines[1].quantity.as_deref()), (Some("2"), Some("1.5")));
        assert_eq!(d.lines[0].tracking, vec![Ref { id: Some("o1".into()), name: Some("North".into()) }]);
        assert_eq!(d.lines[1].tracking.len(), 1);
        assert_eq!(d.status, DocumentStatus::Paid);
        assert_eq!(d.contact, Some(Ref { id: Some("7".into()), name: None }));
    }

    #[test]
    fn an_unreadable_line_amount_leaves_the_subtotal_unknown_not_smaller() {
        let d = map_document(&MAP, &json!({"Cur": "USD", "Due": 5, "Total": 10, "Lines": [{"Amount": 4}, {"Amount": "1e3"}]}));
        assert_eq!(d.lines[1].amount, None);
        assert_eq!(d.subtotal, None);
        assert_eq!(d.status, DocumentStatus::PartiallyPaid);
    }

    #[test]
    fn fiscal_years_read_in_each_providers_terms() {
        let m =
            |rule| CompanyMap { legal_name: &[], base_currency: &[&["C"]], country: &[], fiscal_month: (&[&["M"]], rule), tax_basis: &[] };
        let read = |rule, v: Value| map_company(&m(rule), &v).fiscal_year_start_month;
        assert_eq!(read(FiscalMonth::StartName, json!({"M": "April"})), Some(4));
        assert_eq!(read(FiscalMonth::StartName, json!({"M": "Avril"})), None);
        assert_eq!(read(FiscalMonth::StartZeroBased, json!({"M": 0})), Some(1));
        assert_eq!(read(FiscalMonth::StartZeroBased, json!({"M": 12})), None);
        assert_eq!(read(FiscalMonth::EndOneBased, json!({"M": 3})), Some(4), "a year ending in March starts in April");
        assert_eq!(read(FiscalMonth::EndOneBased, json!({"M": 12})), Some(1));
        assert_eq!(read(FiscalMonth::EndOneBased, json!({"M": "x"})), None);
        assert_eq!(map_company(&m(FiscalMonth::StartName), &json!({"C": "nzd"})).base_currency.as_deref(), Some("NZD"));
    }

    const ALLOC: AllocationMap = AllocationMap {
        lists: &[&["A"], &["B"]],
        document_id: &[&["Doc", "Id"], &["doc_id"]],
        document_number: &[&["Doc", "No"]],
        amount: &[&["Amt"]],
        date: &[&["On"]],
    };

    #[test]
    fn allocations_read_from_every_list_in_the_documents_currency() {
        let v = json!({"A": [{"Doc": {"Id": "i1", "No": "INV-1"}, "Amt": 12.5, "On": "/Date(1551139200000+0000)/"}],
            "B": [{"doc_id": 7, "Amt": "3", "On": "2026-11-04T00:00:00"}, {"Note": "neither a document nor an amount"}]});
        let a = map_allocations(&ALLOC, &v, "JPY");
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].document, Some(Ref { id: Some("i1".into()), name: Some("INV-1".into()) }));
        assert_eq!(a[0].amount, Some(Money { minor: 13, currency: "JPY".into() }), "rounded to whole yen as every amount is");
        assert_eq!(a[0].date.as_deref(), Some("2019-02-26"));
        assert_eq!((a[1].document.as_ref().and_then(|d| d.id.as_deref()), a[1].amount.as_ref().map(|m| m.minor)), (Some("7"), Some(3)));
        assert_eq!(a[1].date.as_deref(), Some("2026-11-04"));
    }

    #[test]
    fn hostile_allocations_read_as_absent_and_are_bounded() {
        for v in [
            json!(null),
            json!({"A": "x", "B": {"doc_id": 1}}),
            json!({"A": [null, 1, "s", [], {"Doc": [], "Amt": {"x": 1}, "On": "/Date(é)/"}, {"Amt": 1, "On": "/Date()/"}]}),
            json!({"A": [{"Amt": "92233720368547758.08", "doc_id": "", "On": "２０２６-01-01"}]}),
        ] {
            for a in map_allocations(&ALLOC, &v, "USD") {
                assert!(a.document.is_some() || a.amount.is_some(), "{v}");
                assert!(a.date.is_none(), "{v}");
            }
        }
        let many = json!({"A": vec![json!({"Amt": 1}); MAX_ALLOCATIONS + 10]});
        assert_eq!(map_allocations(&ALLOC, &many, "USD").len(), MAX_ALLOCATIONS);
    }

    const PAY: PaymentMap = PaymentMap {
        direction: PaymentDirection::Made,
        currency: &[&["Cur"]],
        amount: &[&["Amt"]],
        date: &[&["On"]],
        reference: &[],
        contact_id: &[&["Who"]],
        contact_name: &[],
        account_id: &[],
        account_name: &[],
        unapplied: &[],
        applied: &[
            AppliedList {
                at: &["Lines"],
                document_id: &[&["Links", "0", "Id"]],
                document_number: &[],
                document_type: &[&["Links", "0", "Type"]],
                document_type_is: None,
                amount: &[&["Amt"]],
            },
            AppliedList {
                at: &["One"],
                document_id: &[&["Id"]],
                document_number: &[],
                document_type: &[],
                document_type_is: Some("bill"),
                amount: &[],
            },
        ],
    };

    #[test]
    fn a_payment_reads_array_entries_by_index_and_a_single_document_takes_the_whole_amount() {
        let p = map_payment(
            &PAY,
            &json!({"Cur": "usd", "Amt": 10, "On": "2026-11-06", "Who": 4,
                "Lines": [{"Amt": 6, "Links": [{"Id": "a", "Type": "Bill"}, {"Id": "ignored"}]}, {"Amt": 4, "Links": []}],
                "One": {"Id": "z"}}),
        );
        let got: Vec<_> = p
            .applied_to
            .iter()
            .map(|a| (a.document.as_ref().and_then(|d| d.id.as_deref()), a.document_type.as_deref(), a.amount.as_ref().map(|m| m.minor)))
            .collect();
        assert_eq!(got, vec![(Some("a"), Some("Bill"), Some(600)), (None, None, Some(400)), (Some("z"), Some("bill"), Some(1000))]);
        assert_eq!((p.currency.as_str(), p.date.as_deref(), p.direction), ("USD", Some("2026-11-06"), PaymentDirection::Made));
    }

    #[test]
    fn hostile_payments_never_panic_and_stay_bounded() {
        for v in [
            json!(null),
            json!([1, 2]),
            json!({"Lines": {"Links": "x"}, "One": [], "Cur": [], "Amt": "1e3", "On": 5}),
            json!({"Lines": [null, 7, {"Links": [[]], "Amt": {"a": 1}}, {"Links": {"0": {"Id": "k"}}}], "One": "s"}),
            json!({"Lines": [{"Links": [{"Id": "é".repeat(10)}], "Amt": "-92233720368547758.09"}]}),
        ] {
            let p = map_payment(&PAY, &v);
            assert!(p.applied_to.iter().all(|a| a.document.is_some() || a.amount.is_some()), "{v}");
            assert_eq!(p.currency.len(), 3);
        }
        let many = json!({"Amt": 1, "Lines": vec![json!({"Amt": 1}); MAX_ALLOCATIONS + 5], "One": {"Id": "x"}});
        assert_eq!(map_payment(&PAY, &many).applied_to.len(), MAX_ALLOCATIONS);
    }

    #[test]
    fn hostile_contacts_never_panic_and_stay_bounded() {
        let map = ContactMap {
            roles: RoleRule::Field { at: &["T"], customer: &["c"], supplier: &["v"] },
            name: &[&["N"]],
            company_name: &[],
            emails: &[&["E"]],
            phones: &[(&["P"], &[&["No"]])],
            addresses: &[AddressMap {
                at: &["A"],
                kind: &[&["K"]],
                kind_is: Some("postal"),
                lines: &[&["L1"]],
                city: &[&["C"]],
                region: &[],
                postal_code: &[],
                country: &[],
            }],
            tax_number: &[],
            currency: &[&["Cur"]],
            receivable: &[],
            payable: &[],
            balance_by_role: &[&["B"]],
        };
        for v in [
            json!(null),
            json!({"T": 5, "E": [], "P": 7, "A": "x", "Cur": "€€", "B": "1e9"}),
            json!({"T": "v", "P": [null, {"No": []}, "555"], "A": [1, {"K": {}}, {"L1": "x"}], "B": 3}),
        ] {
            let c = map_contact(&map, &v);
            assert!(c.addresses.iter().all(|a| !a.lines.is_empty() || a.city.is_some()), "{v}");
            assert!(!(c.is_customer && c.is_supplier));
        }
        let c = map_contact(&map, &json!({"T": "v", "B": 3, "P": vec![json!("1"); 100], "A": vec![json!({"C": "x"}); 100]}));
        assert_eq!((c.payable.map(|m| m.minor), c.receivable, c.phones.len(), c.addresses.len()), (Some(300), None, 1, MAX_CONTACT_ITEMS));
        assert_eq!(c.addresses[0].kind.as_deref(), Some("postal"));
    }

    #[test]
    fn hostile_shapes_read_as_absent() {
        for v in [
            json!(null),
            json!([]),
            json!({"Lines": "x", "Cur": 5, "Total": {"a": 1}}),
            json!({"Lines": [null, 1, "s", {"Amount": [1]}, {"Tags": 7}], "Due": "é", "Who": []}),
            json!({"Cur": "USD", "Total": "92233720368547758.08", "Lines": [{"Amount": "-"}]}),
        ] {
            let d = map_document(&MAP, &v);
            assert_eq!(d.total, None, "{v}");
            assert!(d.subtotal.is_none() || d.lines.is_empty() || d.lines.iter().all(|l| l.amount.is_some()));
        }
    }
}
