//! Small shared vocabulary: providers, entities, and the time formats each provider writes.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    #[serde(alias = "qbo", alias = "intuit")]
    Quickbooks,
    Xero,
    #[serde(alias = "zohobooks", alias = "zoho_books")]
    Zoho,
}

impl Provider {
    pub const ALL: [Provider; 3] = [Provider::Quickbooks, Provider::Xero, Provider::Zoho];

    pub fn idx(self) -> usize {
        match self {
            Provider::Quickbooks => 0,
            Provider::Xero => 1,
            Provider::Zoho => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Quickbooks => "quickbooks",
            Provider::Xero => "xero",
            Provider::Zoho => "zoho",
        }
    }

    /// The provider whose URL prefix starts `path` (`/quickbooks/...`, `/xero/...`, `/zoho/...`).
    pub fn from_path(path: &str) -> Option<Provider> {
        let first = path.trim_start_matches('/').split('/').next()?;
        match first {
            "quickbooks" => Some(Provider::Quickbooks),
            "xero" => Some(Provider::Xero),
            "zoho" => Some(Provider::Zoho),
            _ => None,
        }
    }
}

/// The accounting entities the sandbox serves, whatever each provider calls them. `Contact` is a
/// customer and `Vendor` a supplier; `Bill` is a purchase invoice; `CreditNote` a credit to a
/// customer and `VendorCredit` one from a supplier.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Entity {
    Invoice,
    Contact,
    Account,
    Payment,
    Bill,
    Vendor,
    CreditNote,
    VendorCredit,
    /// A payment to a supplier (QuickBooks BillPayment, Xero ACCPAYPAYMENT, Zoho vendor payment).
    BillPayment,
    /// A tax code (QuickBooks TaxCode, Xero TaxRates keyed by TaxType, Zoho settings/taxes).
    TaxRate,
    /// A product or service (QuickBooks Item, Xero Items, Zoho items).
    Item,
    /// QuickBooks Class, Xero TrackingCategories with Options, Zoho reporting tags.
    TrackingCategory,
    /// A manual journal (QuickBooks JournalEntry, Xero ManualJournals, Zoho journals).
    Journal,
    /// An order to a supplier (QuickBooks PurchaseOrder, Xero PurchaseOrders, Zoho purchaseorder).
    PurchaseOrder,
    /// Money spent without a bill: QuickBooks Purchase, Xero SPEND bank transaction, Zoho expense.
    Expense,
    /// Money received without an invoice: QuickBooks Deposit, Xero BankTransactions (RECEIVE, and
    /// the sides of transfers), Zoho banktransactions.
    BankTransaction,
    /// Between the org's own accounts: QuickBooks Transfer, Xero BankTransfers, Zoho
    /// banktransactions of type transfer_fund.
    BankTransfer,
    /// A location documents name in their header (QuickBooks Department). QuickBooks only: Xero
    /// and Zoho have no such list (their tracking categories and tags cover it).
    Department,
    /// A percentage tax codes combine (QuickBooks TaxRate, with RateValue). QuickBooks only: Xero
    /// and Zoho keep their rates inside the tax record.
    TaxComponent,
}

impl Entity {
    pub const ALL: [Entity; 19] = [
        Entity::Invoice,
        Entity::Contact,
        Entity::Account,
        Entity::Payment,
        Entity::Bill,
        Entity::Vendor,
        Entity::CreditNote,
        Entity::VendorCredit,
        Entity::BillPayment,
        Entity::TaxRate,
        Entity::Item,
        Entity::TrackingCategory,
        Entity::Journal,
        Entity::PurchaseOrder,
        Entity::Expense,
        Entity::BankTransaction,
        Entity::BankTransfer,
        Entity::Department,
        Entity::TaxComponent,
    ];

    /// The entity whose endpoint and records hold this one's for `p`. Xero keeps bills among its
    /// Invoices (`Type: ACCPAY`) and suppliers among its Contacts (`IsSupplier`); Zoho Books keeps
    /// vendors among its contacts (`contact_type: vendor`). QuickBooks has a Bill and a Vendor entity.
    pub fn home(self, p: Provider) -> Entity {
        match (p, self) {
            (Provider::Xero, Entity::Bill) => Entity::Invoice,
            (Provider::Xero | Provider::Zoho, Entity::Vendor) => Entity::Contact,
            // Xero keeps both kinds of credit note in CreditNotes (`Type: ACCPAYCREDIT` for suppliers').
            (Provider::Xero, Entity::VendorCredit) => Entity::CreditNote,
            // And payments received and made in Payments (`PaymentType: ACCPAYPAYMENT` for bills').
            (Provider::Xero, Entity::BillPayment) => Entity::Payment,
            // Xero's spent money is a BankTransaction of Type SPEND; Zoho's transfers are bank
            // transactions of type transfer_fund.
            (Provider::Xero, Entity::Expense) => Entity::BankTransaction,
            (Provider::Zoho, Entity::BankTransfer) => Entity::BankTransaction,
            // QuickBooks-only lists: elsewhere they hold nothing (see `data::is_kind`) and get no route.
            (Provider::Xero | Provider::Zoho, Entity::Department) => Entity::TrackingCategory,
            (Provider::Xero | Provider::Zoho, Entity::TaxComponent) => Entity::TaxRate,
            _ => self,
        }
    }

    /// Accepts the generic names and every provider's own spelling (QuickBooks `Customer`, Xero
    /// `Invoices`, Zoho `chartofaccounts`, ...), case-insensitively.
    pub fn parse(s: &str) -> Option<Entity> {
        match s.to_ascii_lowercase().as_str() {
            "invoice" | "invoices" => Some(Entity::Invoice),
            "contact" | "contacts" | "customer" | "customers" => Some(Entity::Contact),
            "account" | "accounts" | "chartofaccounts" | "chartofaccount" | "chart_of_account" | "chart_of_accounts" => {
                Some(Entity::Account)
            }
            "payment" | "payments" | "customerpayment" | "customerpayments" => Some(Entity::Payment),
            "bill" | "bills" => Some(Entity::Bill),
            "vendor" | "vendors" | "supplier" | "suppliers" => Some(Entity::Vendor),
            "credit_note" | "credit_notes" | "creditnote" | "creditnotes" | "creditmemo" | "credit_memo" => Some(Entity::CreditNote),
            "vendor_credit" | "vendor_credits" | "vendorcredit" | "vendorcredits" => Some(Entity::VendorCredit),
            "purchase_order" | "purchase_orders" | "purchaseorder" | "purchaseorders" => Some(Entity::PurchaseOrder),
            "bill_payment" | "bill_payments" | "billpayment" | "billpayments" | "vendorpayment" | "vendorpayments" | "vendor_payment" => {
                Some(Entity::BillPayment)
            }
            "tax_rate" | "tax_rates" | "taxrate" | "taxrates" | "taxcode" | "taxcodes" | "taxes" | "tax" => Some(Entity::TaxRate),
            "item" | "items" => Some(Entity::Item),
            "journal" | "journals" | "journalentry" | "manualjournal" | "manualjournals" => Some(Entity::Journal),
            "expense" | "expenses" | "purchase" | "purchases" => Some(Entity::Expense),
            "bank_transaction" | "bank_transactions" | "banktransaction" | "banktransactions" | "deposit" | "deposits" => {
                Some(Entity::BankTransaction)
            }
            "bank_transfer" | "bank_transfers" | "banktransfer" | "banktransfers" | "transfer" | "transfers" => Some(Entity::BankTransfer),
            "tracking_category" | "tracking_categories" | "trackingcategories" | "class" | "classes" | "reporting_tags" | "tags" => {
                Some(Entity::TrackingCategory)
            }
            "department" | "departments" | "location" | "locations" => Some(Entity::Department),
            "tax_component" | "tax_components" | "qbo_tax_rate" => Some(Entity::TaxComponent),
            _ => None,
        }
    }

    pub fn generic(self) -> &'static str {
        match self {
            Entity::Invoice => "invoice",
            Entity::Contact => "contact",
            Entity::Account => "account",
            Entity::Payment => "payment",
            Entity::Bill => "bill",
            Entity::Vendor => "vendor",
            Entity::CreditNote => "credit_note",
            Entity::VendorCredit => "vendor_credit",
            Entity::BillPayment => "bill_payment",
            Entity::TaxRate => "tax_rate",
            Entity::Item => "item",
            Entity::TrackingCategory => "tracking_category",
            Entity::Journal => "journal",
            Entity::PurchaseOrder => "purchase_order",
            Entity::Expense => "expense",
            Entity::BankTransaction => "bank_transaction",
            Entity::BankTransfer => "bank_transfer",
            Entity::Department => "department",
            Entity::TaxComponent => "tax_component",
        }
    }

    pub fn qbo_name(self) -> &'static str {
        match self {
            Entity::Invoice => "Invoice",
            Entity::Contact => "Customer",
            Entity::Account => "Account",
            Entity::Payment => "Payment",
            Entity::Bill => "Bill",
            Entity::Vendor => "Vendor",
            Entity::CreditNote => "CreditMemo",
            Entity::VendorCredit => "VendorCredit",
            Entity::BillPayment => "BillPayment",
            Entity::TaxRate => "TaxCode",
            Entity::Item => "Item",
            Entity::TrackingCategory => "Class",
            Entity::Journal => "JournalEntry",
            Entity::PurchaseOrder => "PurchaseOrder",
            Entity::Expense => "Purchase",
            Entity::BankTransaction => "Deposit",
            Entity::BankTransfer => "Transfer",
            Entity::Department => "Department",
            Entity::TaxComponent => "TaxRate",
        }
    }

    pub fn xero_name(self) -> &'static str {
        match self {
            Entity::Invoice => "Invoices",
            Entity::Contact => "Contacts",
            Entity::Account => "Accounts",
            Entity::Payment => "Payments",
            Entity::Bill => "Invoices",
            Entity::Vendor => "Contacts",
            Entity::CreditNote | Entity::VendorCredit => "CreditNotes",
            Entity::BillPayment => "Payments",
            Entity::TaxRate => "TaxRates",
            Entity::Item => "Items",
            Entity::TrackingCategory => "TrackingCategories",
            Entity::Journal => "ManualJournals",
            Entity::PurchaseOrder => "PurchaseOrders",
            Entity::Expense | Entity::BankTransaction => "BankTransactions",
            Entity::BankTransfer => "BankTransfers",
            Entity::Department => "TrackingCategories",
            Entity::TaxComponent => "TaxRates",
        }
    }

    pub fn xero_id_field(self) -> &'static str {
        match self {
            Entity::Invoice => "InvoiceID",
            Entity::Contact => "ContactID",
            Entity::Account => "AccountID",
            Entity::Payment => "PaymentID",
            Entity::Bill => "InvoiceID",
            Entity::Vendor => "ContactID",
            Entity::CreditNote | Entity::VendorCredit => "CreditNoteID",
            Entity::BillPayment => "PaymentID",
            // Xero's tax rates have no id of their own: lines name them by TaxType.
            Entity::TaxRate => "TaxType",
            Entity::Item => "ItemID",
            Entity::TrackingCategory => "TrackingCategoryID",
            Entity::Journal => "ManualJournalID",
            Entity::PurchaseOrder => "PurchaseOrderID",
            Entity::Expense | Entity::BankTransaction => "BankTransactionID",
            Entity::BankTransfer => "BankTransferID",
            Entity::Department => "TrackingCategoryID",
            Entity::TaxComponent => "TaxType",
        }
    }

    /// Zoho Books path under `/books/v3` (the list key too, except for settings: see [`Entity::zoho_list_key`]).
    pub fn zoho_plural(self) -> &'static str {
        match self {
            Entity::TaxRate => "settings/taxes",
            Entity::Item => "items",
            // Unconfirmed path (Zoho's Books reference does not show the reporting tags API).
            Entity::TrackingCategory => "settings/tags",
            Entity::Journal => "journals",
            Entity::Invoice => "invoices",
            Entity::Contact => "contacts",
            Entity::Account => "chartofaccounts",
            Entity::Payment => "customerpayments",
            Entity::Bill => "bills",
            Entity::Vendor => "contacts",
            Entity::CreditNote => "creditnotes",
            Entity::VendorCredit => "vendorcredits",
            Entity::BillPayment => "vendorpayments",
            Entity::PurchaseOrder => "purchaseorders",
            Entity::Expense => "expenses",
            Entity::BankTransaction | Entity::BankTransfer => "banktransactions",
            Entity::Department => "settings/tags",
            Entity::TaxComponent => "settings/taxes",
        }
    }

    /// Zoho Books key of a list answer: the path segment, except vendor credits (`vendor_credits`,
    /// as Zoho's vendor credits page shows the list answer) and the settings lists.
    pub fn zoho_list_key(self) -> &'static str {
        match self {
            Entity::VendorCredit => "vendor_credits",
            Entity::TaxRate => "taxes",
            Entity::TrackingCategory => "reporting_tags",
            e => e.zoho_plural(),
        }
    }

    /// Whether QuickBooks' change data capture serves it (Intuit's CDC page: every entity but
    /// JournalCode, TaxAgency, TimeActivity, TaxCode and TaxRate; Department is served).
    pub fn in_qbo_cdc(self) -> bool {
        !matches!(self, Entity::TaxRate | Entity::TaxComponent)
    }

    /// Zoho Books key of a single object in get/create answers.
    pub fn zoho_singular(self) -> &'static str {
        match self {
            Entity::TaxRate => "tax",
            Entity::Item => "item",
            Entity::TrackingCategory => "reporting_tag",
            Entity::Journal => "journal",
            Entity::Invoice => "invoice",
            Entity::Contact => "contact",
            Entity::Account => "chart_of_account",
            Entity::Payment => "payment",
            Entity::Bill => "bill",
            Entity::Vendor => "contact",
            Entity::CreditNote => "creditnote",
            Entity::VendorCredit => "vendor_credit",
            Entity::BillPayment => "vendorpayment",
            Entity::PurchaseOrder => "purchaseorder",
            Entity::Expense => "expense",
            // Unconfirmed key of one bank transaction in Zoho's answers.
            Entity::BankTransaction | Entity::BankTransfer => "banktransaction",
            Entity::Department => "reporting_tag",
            Entity::TaxComponent => "tax",
        }
    }

    pub fn zoho_id_field(self) -> &'static str {
        match self {
            Entity::Invoice => "invoice_id",
            Entity::Contact => "contact_id",
            Entity::Account => "account_id",
            Entity::Payment => "payment_id",
            Entity::Bill => "bill_id",
            Entity::Vendor => "contact_id",
            Entity::CreditNote => "creditnote_id",
            Entity::VendorCredit => "vendor_credit_id",
            Entity::BillPayment => "payment_id",
            Entity::TaxRate => "tax_id",
            Entity::Item => "item_id",
            Entity::TrackingCategory => "tag_id",
            Entity::Journal => "journal_id",
            Entity::PurchaseOrder => "purchaseorder_id",
            Entity::Expense => "expense_id",
            Entity::BankTransaction | Entity::BankTransfer => "transaction_id",
            Entity::Department => "tag_id",
            Entity::TaxComponent => "tax_id",
        }
    }
}

/// QuickBooks writes times in the company's zone; the sandbox companies live in US Pacific (PDT).
pub fn qbo_offset() -> FixedOffset {
    FixedOffset::west_opt(7 * 3600).expect("valid offset")
}

/// The company's date now, what a QuickBooks transaction is dated when its request names none
/// ("the current date on the server"; that the server means the company's time zone, as the
/// reports' default dates do here, is unconfirmed). UTC's date would date a write made between
/// midnight UTC and midnight at the company after the reports' default end date.
pub fn qbo_today(now: DateTime<Utc>) -> String {
    now.with_timezone(&qbo_offset()).format("%Y-%m-%d").to_string()
}

/// `2015-07-24T10:33:39-07:00`
pub fn qbo_time(t: DateTime<Utc>) -> String {
    t.with_timezone(&qbo_offset()).format("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// Xero's Microsoft JSON date: `/Date(1573755038314+0000)/`.
pub fn xero_msdate(t: DateTime<Utc>) -> String {
    format!("/Date({}+0000)/", t.timestamp_millis())
}

/// Xero's `DateString` companion fields: `2019-11-14T00:00:00`.
pub fn xero_datestring(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// Zoho writes `2013-11-18T02:17:40-0800`; the sandbox's orgs use UTC.
pub fn zoho_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%z").to_string()
}

/// Lenient timestamp parsing for filters: RFC 3339, `+hhmm` offsets, HTTP dates (If-Modified-Since),
/// Xero `/Date(ms)/`, naive date-times (taken as `naive_zone`) and bare dates.
pub fn parse_time(s: &str, naive_zone: FixedOffset) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix("/Date(") {
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == '-').collect();
        return digits.parse::<i64>().ok().and_then(|ms| Utc.timestamp_millis_opt(ms).single());
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_rfc2822(s) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, fmt) {
            return naive_zone.from_local_datetime(&n).single().map(|t| t.with_timezone(&Utc));
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        let n = d.and_hms_opt(0, 0, 0)?;
        return naive_zone.from_local_datetime(&n).single().map(|t| t.with_timezone(&Utc));
    }
    None
}

pub fn utc() -> FixedOffset {
    FixedOffset::east_opt(0).expect("valid offset")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quickbooks_write_without_a_date_is_dated_the_companys_today() {
        // 03:00 UTC is still the evening before at the company (UTC-7), whose date the reports'
        // default end date is: a write dated by UTC's would fall after it.
        let t = Utc.with_ymd_and_hms(2026, 12, 7, 3, 0, 0).unwrap();
        assert_eq!(qbo_today(t), "2026-12-06");
        assert_eq!(qbo_today(Utc.with_ymd_and_hms(2026, 12, 7, 8, 0, 0).unwrap()), "2026-12-07");
    }

    #[test]
    fn parses_every_filter_format() {
        let want = Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).unwrap();
        assert_eq!(parse_time("2024-03-01T12:00:00Z", utc()), Some(want));
        assert_eq!(parse_time("2024-03-01T05:00:00-07:00", utc()), Some(want));
        assert_eq!(parse_time("2024-03-01T05:00:00-0700", utc()), Some(want));
        assert_eq!(parse_time("Fri, 01 Mar 2024 12:00:00 GMT", utc()), Some(want));
        assert_eq!(parse_time("2024-03-01T12:00:00", utc()), Some(want));
        assert_eq!(parse_time(&xero_msdate(want), utc()), Some(want));
        assert_eq!(parse_time(&zoho_time(want), utc()), Some(want));
        assert_eq!(parse_time(&qbo_time(want), utc()), Some(want));
        assert_eq!(parse_time("not a date", utc()), None);
    }
}
