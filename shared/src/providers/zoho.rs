//! Zoho Books.
//!
//! Every user lives in one data centre: the callback names its accounts server (where tokens are
//! exchanged, refreshed and revoked) and the token response its API domain (where every API call
//! goes). Both are checked against the known data centres before we send anything there. Client
//! credentials travel as form fields, not Basic auth. The refresh token does not rotate. Errors can
//! come as HTTP 200 with a body that says otherwise. Zoho documents PKCE as optional and
//! recommended for server-based clients, so it is used.

use chrono::{DateTime, Utc};
use oauth2::AuthType;
use serde_json::Value;
use url::Url;

use crate::books::bank::{BankKind, BankMap, BankStatus, BankStatusRule, KindRule, NO_LINES};
use crate::books::reference::{
    AccountClass, AccountMap, ActiveRule, ClassRule, ItemMap, JournalMap, OptionsRule, SideRule, TaxRateMap, TrackingMap,
};
use crate::books::{
    AddressMap, AllocationMap, AppliedList, CompanyMap, ContactMap, DocumentKind, DocumentMap, DocumentStatus, FiscalMonth, LineMap, Path,
    PaymentDirection, PaymentMap, RoleRule, StatusRule,
};
use crate::error::{Error, Result};
use crate::http_client::HttpClient;
use crate::providers::client::{AccountingProvider, Change, ChangeKind};
use crate::providers::core::Core;
use crate::providers::endpoints::Endpoints;
use crate::providers::model::{
    api_url, parse_time, read_items, split_page, text, AuthorizeRequest, CallbackParams, ClientCredentials, Cursor, Entity, Grant, Org,
    Page, PageText, RateLimitInfo, Record,
};
use crate::providers::oauth;
use crate::providers::Provider;
use crate::tokens::TokenSet;

const PROVIDER: Provider = Provider::Zoho;
/// Module scopes (a documented full-access scope does not exist). `settings` covers organizations
/// and webhook registration.
pub const DEFAULT_SCOPES: &[&str] = &[
    "ZohoBooks.contacts.ALL",
    "ZohoBooks.invoices.ALL",
    "ZohoBooks.customerpayments.ALL",
    "ZohoBooks.bills.ALL",
    "ZohoBooks.accountants.ALL",
    "ZohoBooks.settings.ALL",
];
/// `access_type=offline` for a refresh token; `prompt=consent` so a user who consented before still
/// gets one (Zoho returns it only on a consent screen).
const AUTHORIZE_EXTRA: &[(&str, &str)] = &[("access_type", "offline"), ("prompt", "consent")];

#[derive(Clone, Debug)]
pub struct ZohoClient {
    core: Core,
}

/// (path segment = list key, key of one object, id field).
pub fn entity_names(entity: Entity) -> (&'static str, &'static str, &'static str) {
    match entity {
        Entity::Invoice => ("invoices", "invoice", "invoice_id"),
        Entity::Contact => ("contacts", "contact", "contact_id"),
        Entity::Account => ("chartofaccounts", "chart_of_account", "account_id"),
        Entity::Payment => ("customerpayments", "payment", "payment_id"),
        Entity::Bill => ("bills", "bill", "bill_id"),
        // `GET /organizations` lists every organization of the user: `parse_page` keeps this one.
        Entity::Company => ("organizations", "organization", "organization_id"),
        Entity::CreditNote => ("creditnotes", "creditnote", "creditnote_id"),
        Entity::BillPayment => ("vendorpayments", "vendorpayment", "payment_id"),
        // Listed at `settings/taxes` (see `path`).
        Entity::TaxRate => ("taxes", "tax", "tax_id"),
        Entity::Item => ("items", "item", "item_id"),
        // Listed at `settings/tags` (see `path`); path, keys and fields are unconfirmed (Zoho's
        // Books API reference does not show the reporting tags API).
        Entity::TrackingCategory => ("reporting_tags", "reporting_tag", "tag_id"),
        Entity::Journal => ("journals", "journal", "journal_id"),
        Entity::PurchaseOrder => ("purchaseorders", "purchaseorder", "purchaseorder_id"),
        // And `banktransactions` (see `collections`).
        Entity::BankTransaction => ("expenses", "expense", "expense_id"),
    }
}

/// One Zoho module an entity of ours is read from: (path under `/books/v3`, list key, key of one
/// object, id field). The path and the list key differ for vendor credits and the settings lists.
pub type Collection = (&'static [&'static str], &'static str, &'static str, &'static str);

/// Every module an entity is read from, in the order a pass reads them: credit notes are the
/// customers' `creditnotes` and the suppliers' `vendorcredits` (listed under `vendor_credits`; the
/// list key and the one-object key `vendor_credit` follow Zoho's vendor credits page, unconfirmed
/// against a live org). Zoho's ids are taken to be unique across modules of an organization
/// (unconfirmed; the sandbox numbers them from one sequence).
pub fn collections(entity: Entity) -> &'static [Collection] {
    const INVOICE: &[Collection] = &[(&["invoices"], "invoices", "invoice", "invoice_id")];
    const CONTACT: &[Collection] = &[(&["contacts"], "contacts", "contact", "contact_id")];
    const ACCOUNT: &[Collection] = &[(&["chartofaccounts"], "chartofaccounts", "chart_of_account", "account_id")];
    const PAYMENT: &[Collection] = &[(&["customerpayments"], "customerpayments", "payment", "payment_id")];
    const BILL: &[Collection] = &[(&["bills"], "bills", "bill", "bill_id")];
    const COMPANY: &[Collection] = &[(&["organizations"], "organizations", "organization", "organization_id")];
    const BILL_PAYMENT: &[Collection] = &[(&["vendorpayments"], "vendorpayments", "vendorpayment", "payment_id")];
    const TAX_RATE: &[Collection] = &[(&["settings", "taxes"], "taxes", "tax", "tax_id")];
    const ITEM: &[Collection] = &[(&["items"], "items", "item", "item_id")];
    // Path, keys and fields unconfirmed (Zoho's Books API reference does not show reporting tags).
    const TRACKING: &[Collection] = &[(&["settings", "tags"], "reporting_tags", "reporting_tag", "tag_id")];
    const JOURNAL: &[Collection] = &[(&["journals"], "journals", "journal", "journal_id")];
    const PURCHASE_ORDER: &[Collection] = &[(&["purchaseorders"], "purchaseorders", "purchaseorder", "purchaseorder_id")];
    // Expenses, then bank transactions (deposits, transfers, owner's contributions, ...). The
    // one-object key `banktransaction` and whether the list takes the last_modified_time sort and
    // filter without an `account_id` are unconfirmed (Zoho's bank transactions page shows the list
    // filtered by account).
    const BANK: &[Collection] = &[
        (&["expenses"], "expenses", "expense", "expense_id"),
        (&["banktransactions"], "banktransactions", "banktransaction", "transaction_id"),
    ];
    const CREDIT_NOTE: &[Collection] = &[
        (&["creditnotes"], "creditnotes", "creditnote", "creditnote_id"),
        (&["vendorcredits"], "vendor_credits", "vendor_credit", "vendor_credit_id"),
    ];
    match entity {
        Entity::Invoice => INVOICE,
        Entity::Contact => CONTACT,
        Entity::Account => ACCOUNT,
        Entity::Payment => PAYMENT,
        Entity::Bill => BILL,
        Entity::Company => COMPANY,
        Entity::CreditNote => CREDIT_NOTE,
        Entity::BillPayment => BILL_PAYMENT,
        Entity::TaxRate => TAX_RATE,
        Entity::Item => ITEM,
        Entity::TrackingCategory => TRACKING,
        Entity::Journal => JOURNAL,
        Entity::PurchaseOrder => PURCHASE_ORDER,
        Entity::BankTransaction => BANK,
    }
}

fn collection_of(cursor: &Cursor) -> Result<Collection> {
    collections(cursor.entity)
        .get(usize::from(cursor.collection))
        .copied()
        .ok_or_else(|| Error::InvalidInput("cursor collection is out of range".into()))
}

/// A journal's `line_items`: `amount` with `debit_or_credit`, the account, `tags`. The list's
/// summaries leave the lines out (unconfirmed, as for invoices): `lines_complete` says so.
pub const JOURNAL: JournalMap = JournalMap {
    narration: &[&["notes"]],
    currency: &[&["currency_code"]],
    lines: &["line_items"],
    line_kind: None,
    account_id: &[&["account_id"]],
    account_name: &[&["account_name"]],
    description: &[&["description"]],
    side: SideRule::Typed(&["amount"], &["debit_or_credit"], "debit", "credit"),
    tracking: &[(&["tags"], &["tag_option_id"], &["tag_option_name"], "")],
};

/// A reporting tag and its options; lines name `tag_option_id` (as the document lines' `tags`
/// do). Unconfirmed field names throughout, as the path.
pub const TRACKING: TrackingMap = TrackingMap {
    id: &[&["tag_id"]],
    name: &[&["tag_name"]],
    active: ActiveRule::Flag(&[&["is_active"]]),
    options: OptionsRule::List(&["tag_options"], &["tag_option_id"], &["tag_option_name"], ActiveRule::Flag(&[&["is_active"]])),
};

/// Zoho's item: `rate` and `purchase_rate`, the sales and purchase accounts by id, `status` active
/// or inactive. `purchase_tax_id` is unconfirmed (the items page names `tax_id` only).
pub const ITEM: ItemMap = ItemMap {
    code: &[&["sku"]],
    name: &[&["name"]],
    description: &[&["description"], &["purchase_description"]],
    item_type: &[&["product_type"]],
    sales_price: &[&["rate"]],
    purchase_price: &[&["purchase_rate"]],
    income_account: (&[&["account_id"]], &[&["account_name"]]),
    expense_account: (&[&["purchase_account_id"]], &[&["purchase_account_name"]]),
    tax_code: &[&["tax_id"]],
    purchase_tax_code: &[&["purchase_tax_id"]],
    active: ActiveRule::Status(&["status"], &[("active", true), ("inactive", false)]),
};

/// The entity's path under `/books/v3` (its first module's).
/// The entity's module at `index` (a write names which one holds its record).
fn collection_at(entity: Entity, index: usize) -> Result<Collection> {
    collections(entity).get(index).copied().ok_or_else(|| Error::InvalidInput(format!("{entity} has no module {index}")))
}

/// The module a create goes to: a supplier's credit note (it names a `vendor_id`) is a vendor
/// credit; a bank transaction with a `transaction_type` (a deposit) goes to banktransactions, one
/// without to expenses.
pub fn create_collection(entity: Entity, payload: &Value) -> usize {
    match entity {
        Entity::CreditNote => usize::from(payload.get("vendor_id").is_some()),
        Entity::BankTransaction => usize::from(payload.get("transaction_type").is_some()),
        _ => 0,
    }
}

pub fn path(entity: Entity) -> &'static [&'static str] {
    collections(entity)[0].0
}

/// Whether the list takes Zoho's `last_modified_time` filter and sort. The organizations and taxes
/// lists are read whole (a tax shows no timestamps on Zoho's Taxes page; unconfirmed).
fn filters_by_time(entity: Entity) -> bool {
    !matches!(entity, Entity::Company | Entity::TaxRate | Entity::TrackingCategory)
}

/// A tax group's member taxes are under `taxes` (unconfirmed: Zoho's Taxes page shows groups by id).
/// `status` (active, inactive) is unconfirmed too; a tax without it reads as of unknown state.
pub const TAX_RATE: TaxRateMap = TaxRateMap {
    code: &[&["tax_id"]],
    name: &[&["tax_name"]],
    rate: &[&["tax_percentage"]],
    active: ActiveRule::Status(&["status"], &[("active", true), ("inactive", false)]),
    components: &[(&["taxes"], &["tax_id"], &["tax_name"], &["tax_percentage"], &[])],
    rate_from_components: None,
};

/// Zoho has no class field: its account types (Chart of Accounts page) map to a class.
pub const ACCOUNT: AccountMap = AccountMap {
    code: &[&["account_code"]],
    name: &[&["account_name"]],
    account_type: &[&["account_type"]],
    class: ClassRule::FromType(&[
        ("other_asset", AccountClass::Asset),
        ("other_current_asset", AccountClass::Asset),
        ("cash", AccountClass::Asset),
        ("bank", AccountClass::Asset),
        ("fixed_asset", AccountClass::Asset),
        ("accounts_receivable", AccountClass::Asset),
        ("stock", AccountClass::Asset),
        ("payment_clearing", AccountClass::Asset),
        ("input_tax", AccountClass::Asset),
        ("other_current_liability", AccountClass::Liability),
        ("credit_card", AccountClass::Liability),
        ("long_term_liability", AccountClass::Liability),
        ("other_liability", AccountClass::Liability),
        ("accounts_payable", AccountClass::Liability),
        ("output_tax", AccountClass::Liability),
        ("overseas_tax_payable", AccountClass::Liability),
        ("prepaid_card", AccountClass::Liability),
        ("equity", AccountClass::Equity),
        ("income", AccountClass::Revenue),
        ("other_income", AccountClass::Revenue),
        ("expense", AccountClass::Expense),
        ("cost_of_goods_sold", AccountClass::Expense),
        ("other_expense", AccountClass::Expense),
    ]),
    currency: &[&["currency_code"]],
    bank_types: &["bank"],
    active: ActiveRule::Flag(&[&["is_active"]]),
    balance: &[],
};

pub const COMPANY: CompanyMap = CompanyMap {
    legal_name: &[&["name"]],
    base_currency: &[&["currency_code"]],
    country: &[&["country"]],
    fiscal_month: (&[&["fiscal_year_start_month"]], FiscalMonth::StartZeroBased),
    tax_basis: &[],
};

const fn zoho_address(at: Path, kind: &'static str) -> AddressMap {
    AddressMap {
        at,
        kind: &[],
        kind_is: Some(kind),
        lines: &[&["address"], &["street2"]],
        city: &[&["city"]],
        region: &[&["state"]],
        postal_code: &[&["zip"]],
        country: &[&["country"]],
    }
}

/// Customers and vendors are contacts told apart by `contact_type`. List summaries carry the
/// email and the outstanding amounts but no addresses (they come with a read of the one contact).
pub const CONTACT: ContactMap = ContactMap {
    roles: RoleRule::Field { at: &["contact_type"], customer: &["customer"], supplier: &["vendor"] },
    name: &[&["contact_name"]],
    company_name: &[&["company_name"]],
    emails: &[&["email"]],
    phones: &[(&["phone"], &[]), (&["mobile"], &[])],
    addresses: &[zoho_address(&["billing_address"], "billing"), zoho_address(&["shipping_address"], "shipping")],
    // The tax number's field depends on the organisation's country (unconfirmed which apply).
    tax_number: &[&["tax_reg_no"], &["vat_reg_no"], &["gst_no"]],
    currency: &[&["currency_code"]],
    receivable: &[&["outstanding_receivable_amount"]],
    payable: &[&["outstanding_payable_amount"]],
    balance_by_role: &[],
};

const LINE: LineMap = LineMap {
    id: &[&["line_item_id"]],
    description: &[&["description"], &["name"]],
    quantity: &[&["quantity"]],
    unit_price: &[&["rate"]],
    amount: &[&["item_total"]],
    account_id: &[&["account_id"]],
    account_name: &[&["account_name"]],
    item_id: &[&["item_id"]],
    item_name: &[&["name"]],
    tax_code: &[&["tax_id"]],
    tax_rate: &[&["tax_percentage"]],
    tax_amount: &[],
    tracking: &[(&["tags"], &["tag_option_id"], &["tag_option_name"])],
    header_tracking: &[],
    skip_if: None,
};

/// Invoice and bill statuses (Zoho's invoice and bill pages; `unpaid` and `viewed` appear in list
/// filters and answers).
const STATUSES: &[(&str, DocumentStatus)] = &[
    ("draft", DocumentStatus::Draft),
    ("pending_approval", DocumentStatus::AwaitingApproval),
    ("approved", DocumentStatus::Open),
    ("sent", DocumentStatus::Open),
    ("viewed", DocumentStatus::Open),
    ("open", DocumentStatus::Open),
    ("unpaid", DocumentStatus::Open),
    ("overdue", DocumentStatus::Open),
    ("partially_paid", DocumentStatus::PartiallyPaid),
    ("paid", DocumentStatus::Paid),
    ("void", DocumentStatus::Void),
];

const fn document(kind: DocumentKind) -> DocumentMap {
    DocumentMap {
        kind,
        reference: &[&["reference_number"]],
        contact_id: match kind {
            DocumentKind::SalesInvoice | DocumentKind::SalesCredit => &[&["customer_id"]],
            DocumentKind::Bill | DocumentKind::PurchaseCredit | DocumentKind::PurchaseOrder => &[&["vendor_id"]],
        },
        contact_name: match kind {
            DocumentKind::SalesInvoice | DocumentKind::SalesCredit => &[&["customer_name"]],
            DocumentKind::Bill | DocumentKind::PurchaseCredit | DocumentKind::PurchaseOrder => &[&["vendor_name"]],
        },
        currency: &[&["currency_code"]],
        exchange_rate: &[&["exchange_rate"]],
        subtotal: &[&["sub_total"]],
        tax: &[&["tax_total"]],
        total: &[&["total"]],
        amount_due: &[&["balance"]],
        status: StatusRule::Field(&["status"], STATUSES),
        // List answers are summaries without line_items (lines arrive with a get).
        lines: &["line_items"],
        line: LINE,
    }
}

const INVOICE: DocumentMap = document(DocumentKind::SalesInvoice);
const BILL: DocumentMap = document(DocumentKind::Bill);

/// Credit note and vendor credit statuses (Zoho's help: a credit with credit left is open, one
/// used up is closed).
const CREDIT_STATUSES: &[(&str, DocumentStatus)] = &[
    ("draft", DocumentStatus::Draft),
    ("pending_approval", DocumentStatus::AwaitingApproval),
    ("approved", DocumentStatus::Open),
    ("open", DocumentStatus::Open),
    ("closed", DocumentStatus::Paid),
    ("void", DocumentStatus::Void),
];

const fn credit_note(kind: DocumentKind) -> DocumentMap {
    DocumentMap { status: StatusRule::Field(&["status"], CREDIT_STATUSES), ..document(kind) }
}

/// A purchase order: no amount due. Statuses from Zoho's purchase orders page (`issued` and
/// `partially_billed` unconfirmed against a live org).
const PURCHASE_ORDER: DocumentMap = DocumentMap {
    amount_due: &[],
    status: StatusRule::Field(
        &["status"],
        &[
            ("draft", DocumentStatus::Draft),
            ("pending_approval", DocumentStatus::AwaitingApproval),
            ("approved", DocumentStatus::Open),
            ("open", DocumentStatus::Open),
            ("issued", DocumentStatus::Open),
            ("partially_billed", DocumentStatus::Open),
            ("billed", DocumentStatus::Closed),
            ("closed", DocumentStatus::Closed),
            ("cancelled", DocumentStatus::Void),
        ],
    ),
    ..document(DocumentKind::PurchaseOrder)
};

const SALES_CREDIT: DocumentMap = credit_note(DocumentKind::SalesCredit);
const PURCHASE_CREDIT: DocumentMap = credit_note(DocumentKind::PurchaseCredit);

/// Where a credit note's applications are in the single record (list summaries have none): a
/// credit note's `invoices_credited`, a vendor credit's `bills_credited` (field names from Zoho's
/// API pages; unconfirmed against a live org).
const ALLOCATIONS: AllocationMap = AllocationMap {
    lists: &[&["invoices_credited"], &["bills_credited"]],
    document_id: &[&["invoice_id"], &["bill_id"]],
    document_number: &[&["invoice_number"], &["bill_number"]],
    amount: &[&["amount_applied"], &["amount"]],
    date: &[&["date"]],
};

/// A customer payment's `invoices[]` and a vendor payment's `bills[]` (on the single record; list
/// summaries leave them out).
const RECEIVED: PaymentMap = PaymentMap {
    direction: PaymentDirection::Received,
    currency: &[&["currency_code"]],
    amount: &[&["amount"]],
    date: &[&["date"]],
    reference: &[&["reference_number"], &["payment_number"]],
    contact_id: &[&["customer_id"]],
    contact_name: &[&["customer_name"]],
    account_id: &[&["account_id"]],
    account_name: &[&["account_name"]],
    unapplied: &[&["unused_amount"]],
    applied: &[AppliedList {
        at: &["invoices"],
        document_id: &[&["invoice_id"]],
        document_number: &[&["invoice_number"]],
        document_type: &[],
        document_type_is: Some("invoice"),
        amount: &[&["amount_applied"]],
    }],
};

/// A vendor payment's account is `paid_through_account_*` (Zoho's vendor payments page;
/// unconfirmed against a live org, as is `currency_code` on it).
const MADE: PaymentMap = PaymentMap {
    direction: PaymentDirection::Made,
    currency: &[&["currency_code"]],
    amount: &[&["amount"]],
    date: &[&["date"]],
    reference: &[&["reference_number"], &["payment_number"]],
    contact_id: &[&["vendor_id"]],
    contact_name: &[&["vendor_name"]],
    account_id: &[&["paid_through_account_id"]],
    account_name: &[&["paid_through_account_name"]],
    unapplied: &[],
    applied: &[AppliedList {
        at: &["bills"],
        document_id: &[&["bill_id"]],
        document_number: &[&["bill_number"]],
        document_type: &[],
        document_type_is: Some("bill"),
        amount: &[&["amount_applied"]],
    }],
};

/// Where a payment's fields are (`books::map_payment`); `None` for other entities.
pub fn payment_map(entity: Entity) -> Option<&'static PaymentMap> {
    match entity {
        Entity::Payment => Some(&RECEIVED),
        Entity::BillPayment => Some(&MADE),
        _ => None,
    }
}

/// As [`document_map`], for this record: one with a `vendor_credit_id` is a supplier's credit.
pub fn document_map_of(entity: Entity, v: &Value) -> Option<&'static DocumentMap> {
    match entity {
        Entity::CreditNote if v.get("vendor_credit_id").is_some() => Some(&PURCHASE_CREDIT),
        Entity::CreditNote => Some(&SALES_CREDIT),
        e => document_map(e),
    }
}

pub fn allocation_map(entity: Entity) -> Option<&'static AllocationMap> {
    (entity == Entity::CreditNote).then_some(&ALLOCATIONS)
}

/// An expense's lines (`line_items`: `amount`, the expense account, tax, tags).
const EXPENSE_LINE: LineMap = LineMap { amount: &[&["amount"], &["item_total"]], item_id: &[], item_name: &[], ..LINE };

/// An expense: paid through `paid_through_account_*` (a bank, card or cash account) to the
/// vendor, posted to `account_*` or, itemised, to its lines' accounts. Its `status` (unbilled,
/// invoiced, reimbursed, nonbillable) is about billing it on, not about the books: a listed expense
/// is posted. List summaries carry no lines (unconfirmed, as for bills), nor does an expense of
/// one account always (unconfirmed): `lines_complete` says so.
pub const EXPENSE: BankMap = BankMap {
    kind: KindRule::Fixed(BankKind::Expense),
    provider_type: &[],
    provider_type_is: Some("expense"),
    status: BankStatusRule::Posted,
    bank_account_id: &[&["paid_through_account_id"]],
    bank_account_name: &[&["paid_through_account_name"]],
    contact_id: &[&["vendor_id"], &["customer_id"]],
    contact_name: &[&["vendor_name"], &["customer_name"]],
    date: &[&["date"]],
    reference: &[&["reference_number"]],
    currency: &[&["currency_code"]],
    tax: &[&["tax_amount"]],
    total: &[&["total"], &["amount"]],
    lines: Some(&["line_items"]),
    line: EXPENSE_LINE,
    from_id: &[],
    from_name: &[],
    to_id: &[],
    to_name: &[],
};

/// A bank transaction: `transaction_type` (Zoho's create page lists deposit, refund,
/// transfer_fund, card_payment, sales_without_invoices, expense_refund, owner_contribution,
/// interest_income, other_income, owner_drawings; the kinds we give them are ours), `amount`,
/// `from_account_*` and `to_account_*`, `account_id` the bank account the list is of. Its `status`
/// is the feed's (uncategorized, manually_added, matched, categorized, excluded; unconfirmed list).
pub const BANK_TRANSACTION: BankMap = BankMap {
    kind: KindRule::Field(
        &["transaction_type"],
        &[
            ("deposit", BankKind::Receive),
            ("refund", BankKind::Spend),
            ("transfer_fund", BankKind::Transfer),
            ("card_payment", BankKind::Spend),
            ("sales_without_invoices", BankKind::Receive),
            ("expense_refund", BankKind::Receive),
            ("owner_contribution", BankKind::Receive),
            ("interest_income", BankKind::Receive),
            ("other_income", BankKind::Receive),
            ("owner_drawings", BankKind::Spend),
            ("expense", BankKind::Expense),
        ],
    ),
    provider_type: &[&["transaction_type"]],
    provider_type_is: None,
    status: BankStatusRule::Field(
        &["status"],
        &[
            ("manually_added", BankStatus::Posted),
            ("categorized", BankStatus::Posted),
            ("matched", BankStatus::Posted),
            ("uncategorized", BankStatus::Uncategorized),
            ("excluded", BankStatus::Void),
        ],
        BankStatus::Posted,
    ),
    bank_account_id: &[&["account_id"]],
    bank_account_name: &[&["account_name"]],
    contact_id: &[&["customer_id"], &["vendor_id"]],
    contact_name: &[&["customer_name"], &["vendor_name"], &["payee"]],
    tax: &[],
    total: &[&["amount"], &["total"]],
    lines: None,
    line: NO_LINES,
    from_id: &[&["from_account_id"]],
    from_name: &[&["from_account_name"]],
    to_id: &[&["to_account_id"]],
    to_name: &[&["to_account_name"]],
    ..EXPENSE
};

/// Which module's map reads this record (an expense has its expense_id).
pub fn bank_map_of(entity: Entity, v: &Value) -> Option<&'static BankMap> {
    (entity == Entity::BankTransaction).then(|| if v.get("expense_id").is_some() { &EXPENSE } else { &BANK_TRANSACTION })
}

/// Where an invoice's or a bill's fields are (`books::map_document`); `None` for other entities.
pub fn document_map(entity: Entity) -> Option<&'static DocumentMap> {
    match entity {
        Entity::Invoice => Some(&INVOICE),
        Entity::Bill => Some(&BILL),
        Entity::PurchaseOrder => Some(&PURCHASE_ORDER),
        _ => None,
    }
}

pub fn normalise(entity: Entity, org_id: &str, v: Value) -> Result<Record> {
    let (_, _, id_field) = entity_names(entity);
    let id = collections(entity)
        .iter()
        .find_map(|c| text(&v, c.3))
        .ok_or_else(|| Error::ProviderMalformed { provider: PROVIDER, message: format!("{entity} without {id_field}") })?;
    let (number, name, amount, status) = match entity {
        Entity::Invoice => (text(&v, "invoice_number"), text(&v, "customer_name"), text(&v, "total"), text(&v, "status")),
        Entity::Contact => (None, text(&v, "contact_name"), text(&v, "outstanding_receivable_amount"), text(&v, "status")),
        Entity::Account => (
            text(&v, "account_code"),
            text(&v, "account_name"),
            None,
            v.get("is_active").and_then(Value::as_bool).map(|a| if a { "active" } else { "inactive" }.to_string()),
        ),
        Entity::Payment => (text(&v, "payment_number"), text(&v, "customer_name"), text(&v, "amount"), None),
        Entity::BillPayment => (text(&v, "payment_number"), text(&v, "vendor_name"), text(&v, "amount"), None),
        Entity::PurchaseOrder => (text(&v, "purchaseorder_number"), text(&v, "vendor_name"), text(&v, "total"), text(&v, "status")),
        Entity::Bill => (text(&v, "bill_number"), text(&v, "vendor_name"), text(&v, "total"), text(&v, "status")),
        Entity::Company => (None, text(&v, "name"), None, None),
        Entity::CreditNote => (
            text(&v, "creditnote_number").or_else(|| text(&v, "vendor_credit_number")),
            text(&v, "customer_name").or_else(|| text(&v, "vendor_name")),
            text(&v, "total"),
            text(&v, "status"),
        ),
        Entity::TaxRate => (text(&v, "tax_id"), text(&v, "tax_name"), None, text(&v, "status")),
        Entity::Item => (text(&v, "sku"), text(&v, "name"), None, text(&v, "status")),
        Entity::Journal => (text(&v, "entry_number"), None, text(&v, "total"), text(&v, "status")),
        Entity::BankTransaction => (
            text(&v, "reference_number"),
            text(&v, "vendor_name").or_else(|| text(&v, "customer_name")).or_else(|| text(&v, "payee")),
            text(&v, "total").or_else(|| text(&v, "amount")),
            text(&v, "status"),
        ),
        Entity::TrackingCategory => (
            None,
            text(&v, "tag_name"),
            None,
            v.get("is_active").and_then(Value::as_bool).map(|a| if a { "active" } else { "inactive" }.to_string()),
        ),
    };
    Ok(Record {
        provider: PROVIDER,
        entity,
        org_id: org_id.to_string(),
        id,
        updated_at: text(&v, "last_modified_time").and_then(|t| parse_time(&t)),
        number,
        name,
        amount,
        currency: text(&v, "currency_code"),
        status,
        raw: v,
    })
}

/// One list answer as a page (a pure function of the answer, so it can be fuzzed on its own).
pub fn parse_page(org_id: &str, cursor: &Cursor, body: Value, date: Option<DateTime<Utc>>, rate_limit: RateLimitInfo) -> Result<Page> {
    let text = serde_json::to_vec(&body).map_err(|e| Error::Internal(format!("page text: {e}")))?;
    read_page(org_id, cursor, &text, date, rate_limit, &mut |_| {})
}

/// One page read from its text, each record handed to `finish` as it is read (`model::read_items`).
pub fn read_page<F: FnMut(&mut Record)>(
    org_id: &str,
    cursor: &Cursor,
    body: &[u8],
    date: Option<DateTime<Utc>>,
    rate_limit: RateLimitInfo,
    finish: &mut F,
) -> Result<Page> {
    let entity = cursor.entity;
    let (_, module, _, _) = collection_of(cursor)?;
    let PageText { envelope, items } = split_page(PROVIDER, body, &[module])?;
    let company = entity == Entity::Company;
    let has_more = if company {
        false
    } else {
        match envelope.get("page_context").and_then(|p| p.get("has_more_page")).and_then(Value::as_bool) {
            Some(b) => b,
            None => items.len() as u64 >= u64::from(cursor.page_size),
        }
    };
    let records = read_items(PROVIDER, items, cursor, finish, |v| {
        // The organizations list names every org of the user: only this one is the company.
        if company && text(&v, "organization_id").as_deref() != Some(org_id) {
            return Ok(None);
        }
        normalise(entity, org_id, v).map(Some)
    })?;
    let next_cursor = cursor.advance_by_time(has_more, date, &records);
    let page = Page { records: cursor.drop_boundary(records), next_cursor, has_more, rate_limit };
    Ok(page.then_next_collection(cursor, collections(entity).len(), date))
}

/// Zoho's timestamp format: `2013-11-18T02:17:40+0000`.
fn zoho_time(t: chrono::DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%z").to_string()
}

fn check_org(org_id: &str) -> Result<&str> {
    if !org_id.is_empty() && org_id.len() <= 32 && org_id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(org_id)
    } else {
        Err(Error::InvalidInput("Zoho organization_id must be digits".into()))
    }
}

impl ZohoClient {
    /// The shared request plumbing, for calls outside the entity API (`providers::raw`).
    pub(crate) fn core(&self) -> &Core {
        &self.core
    }

    pub fn new(endpoints: Endpoints, credentials: ClientCredentials, http: HttpClient) -> Self {
        ZohoClient { core: Core::new(PROVIDER, endpoints, credentials, http) }
    }

    fn oauth(&self, token_url: &Url) -> oauth::OAuthClient {
        oauth::build_client(&self.core.credentials, &self.core.endpoints.authorize, token_url, AuthType::RequestBody)
    }

    /// The grant's accounts server, re-checked: stored data is not trusted more than a callback.
    fn accounts_server(&self, tokens: &TokenSet) -> Result<String> {
        match tokens.accounts_server.as_deref() {
            Some(s) => self.core.endpoints.zoho_check_accounts_server(s),
            None => self.core.endpoints.zoho_accounts_server(None, None),
        }
    }

    fn api_base(&self, tokens: &TokenSet) -> Result<Url> {
        match tokens.api_domain.as_deref() {
            Some(d) => Endpoints::zoho_api_base(&self.core.endpoints.zoho_check_api_domain(d)?),
            None => Ok(self.core.endpoints.api.clone()),
        }
    }

    fn authed(&self, tokens: &TokenSet, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        req.header(http::header::AUTHORIZATION, format!("Zoho-oauthtoken {}", tokens.access_token.expose()))
    }

    fn single(body: &Value, single: &str) -> Result<Value> {
        body.get(single)
            .cloned()
            .ok_or_else(|| Error::ProviderMalformed { provider: PROVIDER, message: format!("response has no {single}") })
    }

    /// Records of `entity` whose `field` equals `value` exactly (Zoho's list filters by
    /// `reference_number` and `contact_name`; the answer is filtered again here because whether
    /// the filter is an exact match or a prefix match is unconfirmed). One page (200): the push
    /// looks for its own record among these, so a PO number shared by more than 200 invoices is
    /// not fully searched (a retry could then create a second invoice).
    pub async fn find_by(
        &self,
        tokens: &TokenSet,
        org_id: &str,
        entity: Entity,
        field: &str,
        value: &str,
        collection: usize,
    ) -> Result<Vec<Record>> {
        let (path, module, _, _) = collection_at(entity, collection)?;
        let url = api_url(&self.api_base(tokens)?, path)?;
        let query = [("organization_id", check_org(org_id)?), (field, value), ("per_page", "200")];
        let ok = self.core.call(self.authed(tokens, self.core.http.reqwest().get(url)).query(&query)).await?;
        let items = match ok.body.get(module) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a.clone(),
            Some(_) => return Err(Error::ProviderMalformed { provider: PROVIDER, message: format!("{module} is not an array") }),
        };
        items.into_iter().filter(|v| v.get(field).and_then(Value::as_str) == Some(value)).map(|v| normalise(entity, org_id, v)).collect()
    }

    fn checked_api_domain(&self, resp: &oauth::TokenResponse) -> Result<Option<String>> {
        resp.extra_fields().api_domain.as_deref().map(|d| self.core.endpoints.zoho_check_api_domain(d)).transpose()
    }
}

impl AccountingProvider for ZohoClient {
    fn provider(&self) -> Provider {
        PROVIDER
    }

    fn supports_pkce(&self) -> bool {
        true
    }

    fn authorize_url(&self, req: &AuthorizeRequest<'_>) -> Result<Url> {
        let client = self.oauth(&self.core.endpoints.token);
        Ok(oauth::authorize_url(&client, req, DEFAULT_SCOPES, ",", true, AUTHORIZE_EXTRA))
    }

    async fn exchange_code(&self, code: &str, redirect_uri: &Url, pkce_verifier: Option<&str>, callback: &CallbackParams) -> Result<Grant> {
        let server = self.core.endpoints.zoho_accounts_server(callback.accounts_server.as_deref(), callback.location.as_deref())?;
        let client = self.oauth(&Endpoints::zoho_token_url(&server)?);
        let resp = oauth::exchange_code(&self.core.http, PROVIDER, &client, code, redirect_uri, pkce_verifier).await?;
        let api_domain = self
            .checked_api_domain(&resp)?
            .ok_or_else(|| Error::ProviderMalformed { provider: PROVIDER, message: "token response has no api_domain".into() })?;
        let tokens = oauth::token_set(PROVIDER, &resp, None, Some(api_domain), Some(server), Utc::now())?;
        Ok(Grant { tokens, org_hint: None })
    }

    async fn refresh(&self, tokens: &TokenSet) -> Result<TokenSet> {
        let rt = tokens
            .refresh_token
            .as_ref()
            .ok_or_else(|| Error::InvalidGrant { provider: PROVIDER, reason: "no refresh token stored".into() })?;
        let server = self.accounts_server(tokens)?;
        let client = self.oauth(&Endpoints::zoho_token_url(&server)?);
        let resp = oauth::refresh(&self.core.http, PROVIDER, &client, rt).await?;
        let api_domain = self.checked_api_domain(&resp)?;
        oauth::token_set(PROVIDER, &resp, Some(tokens), api_domain, Some(server), Utc::now())
    }

    async fn revoke(&self, tokens: &TokenSet) -> Result<()> {
        let token = tokens.refresh_token.as_ref().unwrap_or(&tokens.access_token);
        let server = self.accounts_server(tokens)?;
        let mut url = Endpoints::zoho_revoke_url(&server)?;
        url.query_pairs_mut().append_pair("token", token.expose());
        let resp = self.core.send(self.core.http.reqwest().post(url).header(http::header::ACCEPT, "application/json")).await?;
        oauth::revoke_outcome(PROVIDER, &resp)
    }

    async fn discover_orgs(&self, tokens: &TokenSet, callback: &CallbackParams) -> Result<Vec<Org>> {
        let url = api_url(&self.api_base(tokens)?, &["organizations"])?;
        let ok = self.core.call(self.authed(tokens, self.core.http.reqwest().get(url))).await?;
        let region = tokens
            .accounts_server
            .as_deref()
            .and_then(|s| self.core.endpoints.zoho_location_of(s))
            .map(str::to_string)
            .or_else(|| callback.location.clone());
        let list = ok
            .body
            .get("organizations")
            .and_then(Value::as_array)
            .ok_or_else(|| Error::ProviderMalformed { provider: PROVIDER, message: "no organizations".into() })?;
        list.iter()
            .map(|o| {
                Ok(Org {
                    provider: PROVIDER,
                    id: text(o, "organization_id")
                        .ok_or_else(|| Error::ProviderMalformed { provider: PROVIDER, message: "organization without id".into() })?,
                    name: text(o, "name"),
                    connection_id: None,
                    kind: None,
                    region: region.clone(),
                })
            })
            .collect()
    }

    async fn list(&self, tokens: &TokenSet, org_id: &str, cursor: &Cursor) -> Result<Page> {
        self.list_with(tokens, org_id, cursor, |_| {}).await
    }

    async fn list_with<F: FnMut(&mut Record) + Send>(
        &self,
        tokens: &TokenSet,
        org_id: &str,
        cursor: &Cursor,
        mut finish: F,
    ) -> Result<Page> {
        cursor.check(PROVIDER, cursor.entity)?;
        let entity = cursor.entity;
        let (module, _, _, _) = collection_of(cursor)?;
        let url = api_url(&self.api_base(tokens)?, module)?;
        let mut query = vec![
            ("organization_id", check_org(org_id)?.to_string()),
            ("page", cursor.position.to_string()),
            ("per_page", cursor.page_size.to_string()),
        ];
        // Ordered by updated time so the next page can start after this one's last time
        // (`Cursor::advance_by_time`): Zoho lists take `sort_column`/`sort_order`; that
        // `last_modified_time` is a sort column of every module we list is unconfirmed.
        if filters_by_time(entity) {
            query.push(("sort_column", "last_modified_time".to_string()));
            query.push(("sort_order", "A".to_string()));
            if let Some(since) = cursor.list_since() {
                query.push(("last_modified_time", zoho_time(since)));
            }
        }
        let ok = self.core.call_text(self.authed(tokens, self.core.http.reqwest().get(url)).query(&query)).await?;
        read_page(org_id, cursor, &ok.response.body, ok.date, ok.rate_limit, &mut finish)
    }

    /// An entity of several modules is looked for in each in turn: the first that has the id
    /// answers. A retryable failure is returned at once rather than taken for "not in this one".
    async fn get(&self, tokens: &TokenSet, org_id: &str, entity: Entity, id: &str) -> Result<Record> {
        let mut last = None;
        for (module, _, single, _) in collections(entity) {
            let url = api_url(&self.api_base(tokens)?, &[module, &[id][..]].concat())?;
            let req = self.authed(tokens, self.core.http.reqwest().get(url)).query(&[("organization_id", check_org(org_id)?)]);
            match self.core.call(req).await {
                Ok(ok) => {
                    let one = ok
                        .body
                        .get(*single)
                        .cloned()
                        .ok_or_else(|| Error::ProviderMalformed { provider: PROVIDER, message: format!("response has no {single}") })?;
                    return normalise(entity, org_id, one);
                }
                Err(e) if e.is_retryable() => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Internal(format!("{entity} has no Zoho module"))))
    }

    /// Zoho Books has no idempotency key: a retried create can make a second record. The sync
    /// worker tags each create with its own reference (a custom field) and looks for it before
    /// creating again (`worker::job::push`).
    async fn create(&self, tokens: &TokenSet, org_id: &str, entity: Entity, payload: &Value, _idempotency_key: &str) -> Result<Record> {
        let (module, _, single, _) = collection_at(entity, create_collection(entity, payload))?;
        let url = api_url(&self.api_base(tokens)?, module)?;
        let req = self.authed(tokens, self.core.http.reqwest().post(url)).query(&[("organization_id", check_org(org_id)?)]).json(payload);
        let ok = self.core.call(req).await?;
        normalise(entity, org_id, Self::single(&ok.body, single)?)
    }

    /// Zoho has neither an idempotency key nor a conditional update: the version check is the
    /// caller's read before this, and a repeated change sets the same values again. A void answers
    /// without the record, so the record is read back.
    async fn change(
        &self,
        tokens: &TokenSet,
        org_id: &str,
        entity: Entity,
        change: &Change<'_>,
        _idempotency_key: &str,
    ) -> Result<Option<Record>> {
        let (module, _, single, _) = collection_at(entity, change.collection)?;
        let base = self.api_base(tokens)?;
        let org = [("organization_id", check_org(org_id)?)];
        let http = self.core.http.reqwest();
        let at = |tail: &[&str]| api_url(&base, &[module, &[change.id][..], tail].concat());
        match change.kind {
            ChangeKind::Update => {
                if !change.body.is_object() {
                    return Err(Error::InvalidInput("an update body must be an object".into()));
                }
                let req = self.authed(tokens, http.put(at(&[])?)).query(&org).json(change.body);
                let ok = self.core.call(req).await?;
                normalise(entity, org_id, Self::single(&ok.body, single)?).map(Some)
            }
            ChangeKind::Void => {
                let req = self.authed(tokens, http.post(at(&["status", "void"])?)).query(&org);
                self.core.call(req).await?;
                self.get(tokens, org_id, entity, change.id).await.map(Some)
            }
            ChangeKind::Delete => {
                let req = self.authed(tokens, http.delete(at(&[])?)).query(&org);
                self.core.call(req).await?;
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    #[test]
    fn records_normalise() {
        let v = json!({"invoice_id": "460000000026049", "invoice_number": "INV-00003", "customer_name": "Bowman", "total": 40.6,
            "currency_code": "USD", "status": "draft", "last_modified_time": "2013-11-18T02:17:40-0800"});
        let r = normalise(Entity::Invoice, "700000001", v).unwrap();
        assert_eq!((r.id.as_str(), r.number.as_deref(), r.status.as_deref()), ("460000000026049", Some("INV-00003"), Some("draft")));
        assert_eq!(r.updated_at, Some(Utc.with_ymd_and_hms(2013, 11, 18, 10, 17, 40).unwrap()));
        let a = normalise(Entity::Account, "1", json!({"account_id": "9", "account_name": "Cash", "is_active": true})).unwrap();
        assert_eq!((a.name.as_deref(), a.status.as_deref()), (Some("Cash"), Some("active")));
        assert!(normalise(Entity::Payment, "1", json!({"amount": 1})).is_err());
    }

    #[test]
    fn zoho_time_has_no_colon_in_the_offset() {
        assert_eq!(zoho_time(Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()), "2026-01-02T03:04:05+0000");
    }

    #[test]
    fn org_ids_are_digits() {
        assert!(check_org("700000001").is_ok());
        assert!(check_org("7&x=1").is_err());
        assert!(check_org("").is_err());
    }
}
