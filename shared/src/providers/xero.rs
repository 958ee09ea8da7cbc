//! Xero.
//!
//! One token set per user reaches several tenants; each API call names its tenant in
//! `xero-tenant-id`. The callback names no tenant: the access token's `authentication_event_id`
//! claim asks `/connections` for the tenants this consent added. Refresh tokens rotate on every
//! refresh (the previous one works for a grace period). PKCE (S256) is supported and used.

use chrono::{DateTime, SecondsFormat, Utc};
use oauth2::AuthType;
use serde_json::{json, Value};
use url::Url;

use crate::books::bank::{BankKind, BankMap, BankStatus, BankStatusRule, KindRule, NO_LINES};
use crate::books::reference::{
    AccountClass, AccountMap, ActiveRule, ClassRule, ItemMap, JournalMap, OptionsRule, SideRule, TaxRateMap, TrackingMap,
};
use crate::books::{
    AddressMap, AllocationMap, AppliedList, CompanyMap, ContactMap, DocumentKind, DocumentMap, DocumentStatus, FiscalMonth, LineMap,
    PaymentDirection, PaymentMap, RoleRule, StatusRule,
};
use crate::error::{Error, Result};
use crate::http_client::HttpClient;
use crate::providers::client::{AccountingProvider, Change, ChangeKind};
use crate::providers::core::Core;
use crate::providers::endpoints::Endpoints;
use crate::providers::model::{
    api_url, parse_time, read_items, split_page, text, text_at, AuthorizeRequest, CallbackParams, ClientCredentials, Cursor, Entity, Grant,
    Org, Page, PageText, RateLimitInfo, Record,
};
use crate::providers::oauth;
use crate::providers::Provider;
use crate::tokens::TokenSet;

const PROVIDER: Provider = Provider::Xero;
/// Granular scopes (mandatory for apps created from 2026-03-02); older apps pass their own
/// (`accounting.transactions`) in `AuthorizeRequest::scopes`.
pub const DEFAULT_SCOPES: &[&str] =
    &["offline_access", "accounting.invoices", "accounting.payments", "accounting.contacts", "accounting.settings.read"];
/// Xero caps Idempotency-Key at 128 characters.
const MAX_IDEMPOTENCY_KEY: usize = 128;

#[derive(Clone, Debug)]
pub struct XeroClient {
    core: Core,
}

/// The collection name (path and response key) and the id field.
pub fn entity_names(entity: Entity) -> (&'static str, &'static str) {
    match entity {
        Entity::Invoice => ("Invoices", "InvoiceID"),
        Entity::Contact => ("Contacts", "ContactID"),
        Entity::Account => ("Accounts", "AccountID"),
        Entity::Payment => ("Payments", "PaymentID"),
        // Xero keeps sales invoices and bills in one collection, told apart by Type.
        Entity::Bill => ("Invoices", "InvoiceID"),
        Entity::Company => ("Organisation", "OrganisationID"),
        // Sales (ACCRECCREDIT) and purchase (ACCPAYCREDIT) credit notes in one collection; one
        // entity of ours holds both, told apart by the document's kind.
        Entity::CreditNote => ("CreditNotes", "CreditNoteID"),
        // Payments received and made share one collection, told apart by PaymentType.
        Entity::BillPayment => ("Payments", "PaymentID"),
        // A tax rate has no id of its own: lines name it by TaxType.
        Entity::TaxRate => ("TaxRates", "TaxType"),
        Entity::Item => ("Items", "ItemID"),
        Entity::TrackingCategory => ("TrackingCategories", "TrackingCategoryID"),
        Entity::Journal => ("ManualJournals", "ManualJournalID"),
        Entity::PurchaseOrder => ("PurchaseOrders", "PurchaseOrderID"),
        // And BankTransfers (see `collections`).
        Entity::BankTransaction => ("BankTransactions", "BankTransactionID"),
    }
}

/// Every Xero collection an entity of ours is read from, in the order a pass reads them: bank
/// transactions are spent and received money (`BankTransactions`) and transfers between the org's
/// accounts (`BankTransfers`); one entity names the other's collection only here.
pub fn collections(entity: Entity) -> &'static [(&'static str, &'static str)] {
    const BANK: &[(&str, &str)] = &[("BankTransactions", "BankTransactionID"), ("BankTransfers", "BankTransferID")];
    match entity {
        Entity::BankTransaction => BANK,
        _ => &[],
    }
}

/// The collection (name, id field) a cursor reads; one past the entity's collections is refused.
fn collection_of(entity: Entity, collection: u8) -> Result<(&'static str, &'static str)> {
    match (collections(entity), collection) {
        (&[], 0) => Ok(entity_names(entity)),
        (list, n) => list.get(usize::from(n)).copied().ok_or_else(|| Error::InvalidInput("cursor collection is out of range".into())),
    }
}

fn collection_count(entity: Entity) -> usize {
    collections(entity).len().max(1)
}

const BANK_STATUSES: &[(&str, BankStatus)] =
    &[("AUTHORISED", BankStatus::Posted), ("VOIDED", BankStatus::Void), ("DELETED", BankStatus::Deleted)];

/// Spent and received money: `Type` says which (the transfer sides SPEND-TRANSFER and
/// RECEIVE-TRANSFER are listed here too, beside their BankTransfers record; prepayments and
/// overpayments read as other), `BankAccount` the account, lines as invoices' lines.
pub const BANK_TRANSACTION: BankMap = BankMap {
    kind: KindRule::Field(
        &["Type"],
        &[
            ("SPEND", BankKind::Spend),
            ("RECEIVE", BankKind::Receive),
            ("SPEND-TRANSFER", BankKind::Transfer),
            ("RECEIVE-TRANSFER", BankKind::Transfer),
        ],
    ),
    provider_type: &[&["Type"]],
    provider_type_is: None,
    status: BankStatusRule::Field(&["Status"], BANK_STATUSES, BankStatus::Unknown),
    bank_account_id: &[&["BankAccount", "AccountID"]],
    bank_account_name: &[&["BankAccount", "Name"], &["BankAccount", "Code"]],
    contact_id: &[&["Contact", "ContactID"]],
    contact_name: &[&["Contact", "Name"]],
    date: &[&["DateString"], &["Date"]],
    reference: &[&["Reference"]],
    currency: &[&["CurrencyCode"]],
    tax: &[&["TotalTax"]],
    total: &[&["Total"]],
    lines: Some(&["LineItems"]),
    line: LINE,
    from_id: &[],
    from_name: &[],
    to_id: &[],
    to_name: &[],
};

/// A transfer: `Amount` from `FromBankAccount` to `ToBankAccount`, Status AUTHORISED or DELETED
/// (deleted ones are listed only with `includeDeleted=true`, which the list asks for). It states no
/// currency (the accounts'): `XXX`.
pub const BANK_TRANSFER: BankMap = BankMap {
    kind: KindRule::Fixed(BankKind::Transfer),
    provider_type: &[],
    provider_type_is: Some("BANKTRANSFER"),
    bank_account_id: &[],
    bank_account_name: &[],
    contact_id: &[],
    contact_name: &[],
    currency: &[],
    tax: &[],
    total: &[&["Amount"]],
    lines: None,
    line: NO_LINES,
    from_id: &[&["FromBankAccount", "AccountID"]],
    from_name: &[&["FromBankAccount", "Name"], &["FromBankAccount", "Code"]],
    to_id: &[&["ToBankAccount", "AccountID"]],
    to_name: &[&["ToBankAccount", "Name"], &["ToBankAccount", "Code"]],
    ..BANK_TRANSACTION
};

/// Which collection's map reads this record (a transfer has its BankTransferID).
pub fn bank_map_of(entity: Entity, v: &Value) -> Option<&'static BankMap> {
    (entity == Entity::BankTransaction).then(|| if v.get("BankTransferID").is_some() { &BANK_TRANSFER } else { &BANK_TRANSACTION })
}

/// A manual journal's lines: LineAmount is positive for a debit, negative for a credit (Xero's
/// ManualJournals page). The journal states no currency (the org's base currency): `XXX`.
pub const JOURNAL: JournalMap = JournalMap {
    narration: &[&["Narration"]],
    currency: &[],
    lines: &["JournalLines"],
    line_kind: None,
    account_id: &[&["AccountID"], &["AccountCode"]],
    account_name: &[],
    description: &[&["Description"]],
    side: SideRule::Signed(&["LineAmount"]),
    tracking: &[(&["Tracking"], &["TrackingOptionID"], &["Option"], "")],
};

const TRACKING_STATUS: &[(&str, bool)] = &[("ACTIVE", true), ("ARCHIVED", false), ("DELETED", false)];

/// A category's Status and each option's Status are ACTIVE, ARCHIVED or DELETED; lines name the
/// option's TrackingOptionID. The list is asked for with `includeArchived=true`, so an archived
/// category arrives inactive rather than vanishing.
pub const TRACKING: TrackingMap = TrackingMap {
    id: &[&["TrackingCategoryID"]],
    name: &[&["Name"]],
    active: ActiveRule::Status(&["Status"], TRACKING_STATUS),
    options: OptionsRule::List(&["Options"], &["TrackingOptionID"], &["Name"], ActiveRule::Status(&["Status"], TRACKING_STATUS)),
};

/// Items name their accounts by code and their tax by TaxType, under SalesDetails and
/// PurchaseDetails. An item has no status: a deleted one leaves the list (the next full pass
/// tombstones it).
pub const ITEM: ItemMap = ItemMap {
    code: &[&["Code"]],
    name: &[&["Name"]],
    description: &[&["Description"], &["PurchaseDescription"]],
    item_type: &[],
    sales_price: &[&["SalesDetails", "UnitPrice"]],
    purchase_price: &[&["PurchaseDetails", "UnitPrice"]],
    income_account: (&[&["SalesDetails", "AccountCode"]], &[]),
    expense_account: (&[&["PurchaseDetails", "AccountCode"], &["PurchaseDetails", "COGSAccountCode"]], &[]),
    tax_code: &[&["SalesDetails", "TaxType"]],
    purchase_tax_code: &[&["PurchaseDetails", "TaxType"]],
    active: ActiveRule::Listed,
};

/// Status ACTIVE, ARCHIVED, DELETED or PENDING (xero_accounting.yaml). DELETED also marks the
/// record deleted (`sync::model`); PENDING reads as unknown.
pub const TAX_RATE: TaxRateMap = TaxRateMap {
    code: &[&["TaxType"]],
    name: &[&["Name"]],
    rate: &[&["EffectiveRate"], &["DisplayTaxRate"]],
    active: ActiveRule::Status(&["Status"], &[("ACTIVE", true), ("ARCHIVED", false), ("DELETED", false)]),
    components: &[(&["TaxComponents"], &[], &["Name"], &["Rate"], &["IsCompound"])],
    rate_from_components: None,
};

/// Class is one of ASSET, EQUITY, EXPENSE, LIABILITY, REVENUE; Status ACTIVE or ARCHIVED (DELETED
/// marks the record deleted). The Accounts answer has no balance.
pub const ACCOUNT: AccountMap = AccountMap {
    code: &[&["Code"]],
    name: &[&["Name"]],
    account_type: &[&["Type"]],
    class: ClassRule::Field(
        &["Class"],
        &[
            ("ASSET", AccountClass::Asset),
            ("LIABILITY", AccountClass::Liability),
            ("EQUITY", AccountClass::Equity),
            ("REVENUE", AccountClass::Revenue),
            ("EXPENSE", AccountClass::Expense),
        ],
    ),
    currency: &[&["CurrencyCode"]],
    bank_types: &["BANK"],
    active: ActiveRule::Status(&["Status"], &[("ACTIVE", true), ("ARCHIVED", false), ("DELETED", false)]),
    balance: &[],
};

/// The key of the list in an answer: the path's name, except `/Organisation`, which answers
/// `Organisations`.
fn list_key(entity: Entity) -> &'static str {
    match entity {
        Entity::Company => "Organisations",
        e => entity_names(e).0,
    }
}

/// The list key of one of the entity's collections.
fn list_key_of(entity: Entity, collection: u8) -> Result<&'static str> {
    if collection == 0 {
        return Ok(list_key(entity));
    }
    collection_of(entity, collection).map(|(name, _)| name)
}

pub const COMPANY: CompanyMap = CompanyMap {
    legal_name: &[&["LegalName"], &["Name"]],
    base_currency: &[&["BaseCurrency"]],
    country: &[&["CountryCode"]],
    fiscal_month: (&[&["FinancialYearEndMonth"]], FiscalMonth::EndOneBased),
    tax_basis: &[&["SalesTaxBasis"]],
};

/// Xero states a contact's roles as flags (set by Xero once the contact has a sales or purchase
/// document) and its balances under `Balances` (whether list answers carry them is unconfirmed).
pub const CONTACT: ContactMap = ContactMap {
    roles: RoleRule::Flags { customer: &["IsCustomer"], supplier: &["IsSupplier"] },
    name: &[&["Name"]],
    company_name: &[],
    emails: &[&["EmailAddress"]],
    // The number without its area and country codes (kept apart in the raw record).
    phones: &[(&["Phones"], &[&["PhoneNumber"]])],
    addresses: &[AddressMap {
        at: &["Addresses"],
        kind: &[&["AddressType"]],
        kind_is: None,
        lines: &[&["AddressLine1"], &["AddressLine2"], &["AddressLine3"], &["AddressLine4"]],
        city: &[&["City"]],
        region: &[&["Region"]],
        postal_code: &[&["PostalCode"]],
        country: &[&["Country"]],
    }],
    tax_number: &[&["TaxNumber"]],
    currency: &[&["DefaultCurrency"]],
    receivable: &[&["Balances", "AccountsReceivable", "Outstanding"]],
    payable: &[&["Balances", "AccountsPayable", "Outstanding"]],
    balance_by_role: &[],
};

/// The `where` filter that selects an entity from a collection it shares with another.
pub fn type_filter(entity: Entity) -> Option<&'static str> {
    match entity {
        Entity::Invoice => Some(r#"Type=="ACCREC""#),
        Entity::Bill => Some(r#"Type=="ACCPAY""#),
        // Before bill payments, a pull of payments took both kinds; credit note refunds and
        // prepayment or overpayment payments (AR/APCREDITPAYMENT, ...) are in neither.
        Entity::Payment => Some(r#"PaymentType=="ACCRECPAYMENT""#),
        Entity::BillPayment => Some(r#"PaymentType=="ACCPAYPAYMENT""#),
        _ => None,
    }
}

/// An invoice read by id (a webhook names only INVOICE) is a bill when its Type says so.
fn entity_of(entity: Entity, v: &Value) -> Entity {
    match (entity, v.get("Type").and_then(Value::as_str)) {
        (Entity::Invoice | Entity::Bill, Some("ACCPAY")) => Entity::Bill,
        (Entity::Invoice | Entity::Bill, Some("ACCREC")) => Entity::Invoice,
        _ => match (entity, v.get("PaymentType").and_then(Value::as_str)) {
            (Entity::Payment | Entity::BillPayment, Some("ACCPAYPAYMENT")) => Entity::BillPayment,
            (Entity::Payment | Entity::BillPayment, Some("ACCRECPAYMENT")) => Entity::Payment,
            _ => entity,
        },
    }
}

/// Xero's line: `LineAmount` includes tax when the document's LineAmountTypes is Inclusive. An
/// account is named by its code on older lines, by AccountID on newer ones.
const LINE: LineMap = LineMap {
    id: &[&["LineItemID"]],
    description: &[&["Description"]],
    quantity: &[&["Quantity"]],
    unit_price: &[&["UnitAmount"]],
    amount: &[&["LineAmount"]],
    account_id: &[&["AccountID"], &["AccountCode"]],
    account_name: &[],
    item_id: &[&["Item", "ItemID"], &["ItemCode"]],
    item_name: &[&["Item", "Name"]],
    tax_code: &[&["TaxType"]],
    tax_rate: &[],
    tax_amount: &[&["TaxAmount"]],
    tracking: &[(&["Tracking"], &["TrackingOptionID"], &["Option"])],
    header_tracking: &[],
    skip_if: None,
};

const STATUSES: &[(&str, DocumentStatus)] = &[
    ("DRAFT", DocumentStatus::Draft),
    ("SUBMITTED", DocumentStatus::AwaitingApproval),
    ("AUTHORISED", DocumentStatus::Open),
    ("PAID", DocumentStatus::Paid),
    ("VOIDED", DocumentStatus::Void),
    ("DELETED", DocumentStatus::Deleted),
];

const fn document(kind: DocumentKind) -> DocumentMap {
    DocumentMap {
        kind,
        reference: &[&["Reference"]],
        contact_id: &[&["Contact", "ContactID"]],
        contact_name: &[&["Contact", "Name"]],
        currency: &[&["CurrencyCode"]],
        exchange_rate: &[&["CurrencyRate"]],
        subtotal: &[&["SubTotal"]],
        tax: &[&["TotalTax"]],
        total: &[&["Total"]],
        amount_due: &[&["AmountDue"]],
        status: StatusRule::Field(&["Status"], STATUSES),
        lines: &["LineItems"],
        line: LINE,
    }
}

const INVOICE: DocumentMap = document(DocumentKind::SalesInvoice);
const BILL: DocumentMap = document(DocumentKind::Bill);

/// A credit note is a document whose `RemainingCredit` is what is left to apply.
const fn credit_note(kind: DocumentKind) -> DocumentMap {
    DocumentMap { reference: &[&["Reference"]], amount_due: &[&["RemainingCredit"]], ..document(kind) }
}

/// A purchase order: no amount due; BILLED is closed.
const PURCHASE_ORDER: DocumentMap = DocumentMap {
    amount_due: &[],
    status: StatusRule::Field(
        &["Status"],
        &[
            ("DRAFT", DocumentStatus::Draft),
            ("SUBMITTED", DocumentStatus::AwaitingApproval),
            ("AUTHORISED", DocumentStatus::Open),
            ("BILLED", DocumentStatus::Closed),
            ("DELETED", DocumentStatus::Deleted),
        ],
    ),
    ..document(DocumentKind::PurchaseOrder)
};

const SALES_CREDIT: DocumentMap = credit_note(DocumentKind::SalesCredit);
const PURCHASE_CREDIT: DocumentMap = credit_note(DocumentKind::PurchaseCredit);

/// A credit note's `Allocations`: each names the invoice (or bill) and the amount and date applied.
const ALLOCATIONS: AllocationMap = AllocationMap {
    lists: &[&["Allocations"]],
    document_id: &[&["Invoice", "InvoiceID"]],
    document_number: &[&["Invoice", "InvoiceNumber"]],
    amount: &[&["Amount"]],
    date: &[&["Date"]],
};

/// A Xero payment pays one document: the invoice (or bill) it names, or a credit note (a refund).
const PAID: &[AppliedList] = &[
    AppliedList {
        at: &["Invoice"],
        document_id: &[&["InvoiceID"]],
        document_number: &[&["InvoiceNumber"]],
        document_type: &[&["Type"]],
        document_type_is: None,
        amount: &[],
    },
    AppliedList {
        at: &["CreditNote"],
        document_id: &[&["CreditNoteID"]],
        document_number: &[&["CreditNoteNumber"]],
        document_type: &[&["Type"]],
        document_type_is: None,
        amount: &[],
    },
];

/// The currency and the contact are the paid document's.
const fn payment(direction: PaymentDirection) -> PaymentMap {
    PaymentMap {
        direction,
        currency: &[&["Invoice", "CurrencyCode"], &["CreditNote", "CurrencyCode"]],
        amount: &[&["Amount"]],
        date: &[&["Date"]],
        reference: &[&["Reference"]],
        contact_id: &[&["Invoice", "Contact", "ContactID"], &["CreditNote", "Contact", "ContactID"]],
        contact_name: &[&["Invoice", "Contact", "Name"], &["CreditNote", "Contact", "Name"]],
        account_id: &[&["Account", "AccountID"]],
        account_name: &[&["Account", "Name"], &["Account", "Code"]],
        unapplied: &[],
        applied: PAID,
    }
}

const RECEIVED: PaymentMap = payment(PaymentDirection::Received);
const MADE: PaymentMap = payment(PaymentDirection::Made);

/// Where a payment's fields are (`books::map_payment`); `None` for other entities.
pub fn payment_map(entity: Entity) -> Option<&'static PaymentMap> {
    match entity {
        Entity::Payment => Some(&RECEIVED),
        Entity::BillPayment => Some(&MADE),
        _ => None,
    }
}

/// As [`document_map`], for this record: an ACCPAYCREDIT credit note is a supplier's.
pub fn document_map_of(entity: Entity, v: &Value) -> Option<&'static DocumentMap> {
    match (entity, v.get("Type").and_then(Value::as_str)) {
        (Entity::CreditNote, Some("ACCPAYCREDIT")) => Some(&PURCHASE_CREDIT),
        (Entity::CreditNote, _) => Some(&SALES_CREDIT),
        (e, _) => document_map(e),
    }
}

pub fn allocation_map(entity: Entity) -> Option<&'static AllocationMap> {
    (entity == Entity::CreditNote).then_some(&ALLOCATIONS)
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

/// `/Accounts` returns the whole chart in one answer, `/Organisation` the one organisation,
/// `/TaxRates` every rate, `/Items` every item, `/TrackingCategories` every category (their
/// parameters have no page).
fn is_paged(entity: Entity) -> bool {
    !matches!(entity, Entity::Account | Entity::Company | Entity::TaxRate | Entity::Item | Entity::TrackingCategory)
}

/// As [`is_paged`], for one of the entity's collections: `/BankTransfers` takes no page
/// (xero_accounting.yaml), so it is read whole, from the watermark.
fn is_paged_at(entity: Entity, collection: u8) -> bool {
    is_paged(entity) && !(entity == Entity::BankTransaction && collection == 1)
}

pub fn normalise(entity: Entity, org_id: &str, v: Value) -> Result<Record> {
    let entity = entity_of(entity, &v);
    let (_, id_field) = entity_names(entity);
    let id = text(&v, id_field)
        .or_else(|| collections(entity).iter().find_map(|(_, f)| text(&v, f)))
        .ok_or_else(|| Error::ProviderMalformed { provider: PROVIDER, message: format!("{entity} without {id_field}") })?;
    let (number, name, amount, currency, status) = match entity {
        Entity::Invoice | Entity::Bill => {
            (text(&v, "InvoiceNumber"), text_at(&v, &["Contact", "Name"]), text(&v, "Total"), text(&v, "CurrencyCode"), text(&v, "Status"))
        }
        Entity::Contact => (text(&v, "AccountNumber"), text(&v, "Name"), None, text(&v, "DefaultCurrency"), text(&v, "ContactStatus")),
        Entity::Account => (text(&v, "Code"), text(&v, "Name"), None, text(&v, "CurrencyCode"), text(&v, "Status")),
        Entity::Company => (text(&v, "ShortCode"), text(&v, "Name"), None, text(&v, "BaseCurrency"), text(&v, "OrganisationStatus")),
        Entity::PurchaseOrder => (
            text(&v, "PurchaseOrderNumber"),
            text_at(&v, &["Contact", "Name"]),
            text(&v, "Total"),
            text(&v, "CurrencyCode"),
            text(&v, "Status"),
        ),
        Entity::CreditNote => (
            text(&v, "CreditNoteNumber"),
            text_at(&v, &["Contact", "Name"]),
            text(&v, "Total"),
            text(&v, "CurrencyCode"),
            text(&v, "Status"),
        ),
        Entity::TaxRate => (text(&v, "TaxType"), text(&v, "Name"), None, None, text(&v, "Status")),
        Entity::Item => (text(&v, "Code"), text(&v, "Name"), None, None, None),
        Entity::TrackingCategory => (None, text(&v, "Name"), None, None, text(&v, "Status")),
        Entity::Journal => (None, text(&v, "Narration"), None, None, text(&v, "Status")),
        Entity::BankTransaction => (
            text(&v, "Reference"),
            text_at(&v, &["Contact", "Name"]),
            text(&v, "Total").or_else(|| text(&v, "Amount")),
            text(&v, "CurrencyCode"),
            text(&v, "Status"),
        ),
        Entity::Payment | Entity::BillPayment => (
            text(&v, "Reference"),
            text_at(&v, &["Invoice", "Contact", "Name"]),
            text(&v, "Amount"),
            text_at(&v, &["Invoice", "CurrencyCode"]),
            text(&v, "Status"),
        ),
    };
    Ok(Record {
        provider: PROVIDER,
        entity,
        org_id: org_id.to_string(),
        id,
        // A bank transfer cannot be edited: it has only its CreatedDateUTC.
        updated_at: text(&v, "UpdatedDateUTC").or_else(|| text(&v, "CreatedDateUTC")).and_then(|t| parse_time(&t)),
        number,
        name,
        amount,
        currency,
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
    let name = list_key_of(entity, cursor.collection)?;
    let PageText { envelope, items } = split_page(PROVIDER, body, &[name])?;
    let has_more = if !is_paged_at(entity, cursor.collection) {
        false
    } else if let Some(p) = envelope.get("pagination") {
        let page = p.get("page").and_then(Value::as_u64).unwrap_or(cursor.position as u64);
        let count = p.get("pageCount").and_then(Value::as_u64).unwrap_or(0);
        page < count
    } else {
        items.len() as u64 >= u64::from(cursor.page_size)
    };
    let records = read_items(PROVIDER, items, cursor, finish, |v| normalise(entity, org_id, v).map(Some))?;
    let server_time = envelope.get("DateTimeUTC").and_then(Value::as_str).and_then(parse_time).or(date);
    let next_cursor = cursor.advance_by_time(has_more, server_time, &records);
    let page = Page { records: cursor.drop_boundary(records), next_cursor, has_more, rate_limit };
    Ok(page.then_next_collection(cursor, collection_count(entity), server_time))
}

/// Xero's connection objects as tenants.
pub fn parse_connections(body: &Value) -> Result<Vec<Org>> {
    let list =
        body.as_array().ok_or_else(|| Error::ProviderMalformed { provider: PROVIDER, message: "connections is not an array".into() })?;
    list.iter()
        .map(|c| {
            Ok(Org {
                provider: PROVIDER,
                id: text(c, "tenantId")
                    .ok_or_else(|| Error::ProviderMalformed { provider: PROVIDER, message: "connection without tenantId".into() })?,
                name: text(c, "tenantName"),
                connection_id: text(c, "id"),
                kind: text(c, "tenantType"),
                region: None,
            })
        })
        .collect()
}

impl XeroClient {
    /// The shared request plumbing, for calls outside the entity API (`providers::raw`).
    pub(crate) fn core(&self) -> &Core {
        &self.core
    }

    pub fn new(endpoints: Endpoints, credentials: ClientCredentials, http: HttpClient) -> Self {
        XeroClient { core: Core::new(PROVIDER, endpoints, credentials, http) }
    }

    fn oauth(&self) -> oauth::OAuthClient {
        let e = &self.core.endpoints;
        oauth::build_client(&self.core.credentials, &e.authorize, &e.token, AuthType::BasicAuth)
    }

    fn connections_url(&self) -> Result<Url> {
        self.core.endpoints.connections.clone().ok_or_else(|| Error::Internal("xero endpoints lack the connections URL".into()))
    }

    fn tenant_request(&self, tokens: &TokenSet, tenant: &str, req: reqwest::RequestBuilder) -> Result<reqwest::RequestBuilder> {
        if tenant.is_empty() || tenant.len() > 64 || !tenant.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(Error::InvalidInput("Xero tenant id must be a uuid".into()));
        }
        Ok(req.bearer_auth(tokens.access_token.expose()).header("xero-tenant-id", tenant))
    }

    fn first_of(body: &Value, entity: Entity) -> Result<Value> {
        Self::first_in(body, list_key(entity))
    }

    fn first_in(body: &Value, name: &str) -> Result<Value> {
        let first = body
            .get(name)
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .cloned()
            .ok_or_else(|| Error::ProviderMalformed { provider: PROVIDER, message: format!("response has no {name}") })?;
        // With summarizeErrors=false Xero answers 200 and marks the element instead.
        if first.get("HasErrors").and_then(Value::as_bool) == Some(true)
            || first.get("ValidationErrors").and_then(Value::as_array).is_some_and(|a| !a.is_empty())
        {
            let messages: Vec<String> =
                first.get("ValidationErrors").and_then(Value::as_array).into_iter().flatten().filter_map(|e| text(e, "Message")).collect();
            return Err(Error::ProviderPermanent { provider: PROVIDER, status: Some(200), message: messages.join("; ") });
        }
        Ok(first)
    }

    /// Disconnects one tenant (DELETE /connections/{id}); the token set keeps its other tenants.
    pub async fn delete_connection(&self, tokens: &TokenSet, connection_id: &str) -> Result<()> {
        let base = self.connections_url()?;
        let mut url = base.clone();
        url.path_segments_mut().map_err(|_| Error::Internal("connections URL".into()))?.push(connection_id);
        let req = self.core.http.reqwest().delete(url).bearer_auth(tokens.access_token.expose());
        self.core.call_no_content(req).await
    }
}

impl AccountingProvider for XeroClient {
    fn provider(&self) -> Provider {
        PROVIDER
    }

    fn supports_pkce(&self) -> bool {
        true
    }

    fn authorize_url(&self, req: &AuthorizeRequest<'_>) -> Result<Url> {
        Ok(oauth::authorize_url(&self.oauth(), req, DEFAULT_SCOPES, " ", true, &[]))
    }

    async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &Url,
        pkce_verifier: Option<&str>,
        _callback: &CallbackParams,
    ) -> Result<Grant> {
        let resp = oauth::exchange_code(&self.core.http, PROVIDER, &self.oauth(), code, redirect_uri, pkce_verifier).await?;
        let tokens = oauth::token_set(PROVIDER, &resp, None, None, None, Utc::now())?;
        Ok(Grant { tokens, org_hint: None })
    }

    async fn refresh(&self, tokens: &TokenSet) -> Result<TokenSet> {
        let rt = tokens
            .refresh_token
            .as_ref()
            .ok_or_else(|| Error::InvalidGrant { provider: PROVIDER, reason: "no refresh token stored".into() })?;
        let resp = oauth::refresh(&self.core.http, PROVIDER, &self.oauth(), rt).await?;
        oauth::token_set(PROVIDER, &resp, Some(tokens), None, None, Utc::now())
    }

    async fn revoke(&self, tokens: &TokenSet) -> Result<()> {
        let token = tokens.refresh_token.as_ref().unwrap_or(&tokens.access_token);
        let req = self
            .core
            .http
            .reqwest()
            .post(self.core.endpoints.revoke.clone())
            .basic_auth(&self.core.credentials.client_id, Some(self.core.credentials.client_secret.expose()))
            .header(http::header::ACCEPT, "application/json")
            .form(&[("token", token.expose())]);
        let resp = self.core.send(req).await?;
        oauth::revoke_outcome(PROVIDER, &resp)
    }

    async fn discover_orgs(&self, tokens: &TokenSet, _callback: &CallbackParams) -> Result<Vec<Org>> {
        let mut url = self.connections_url()?;
        // Without the claim (not a fresh consent) every tenant of the token set is listed.
        if let Some(event) = oauth::jwt_claim(tokens.access_token.expose(), "authentication_event_id") {
            url.query_pairs_mut().append_pair("authEventId", &event);
        }
        let ok = self.core.call(self.core.http.reqwest().get(url).bearer_auth(tokens.access_token.expose())).await?;
        parse_connections(&ok.body)
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
        // A cursor is data: one past the entity's collections is refused before any call.
        let entity = cursor.entity;
        let (name, _) = collection_of(entity, cursor.collection)?;
        let paged = is_paged_at(entity, cursor.collection);
        let url = api_url(&self.core.endpoints.api, &[name])?;
        let mut req = self.tenant_request(tokens, org_id, self.core.http.reqwest().get(url))?;
        if paged {
            // Ordered by updated time so the next page can start after this one's last time
            // (`Cursor::advance_by_time`); `order` takes any returned element (xero_accounting.yaml).
            req = req.query(&[("page", cursor.position.to_string()), ("pageSize", cursor.page_size.to_string())]);
            req = req.query(&[("order", "UpdatedDateUTC ASC")]);
        }
        if let Some(filter) = type_filter(entity) {
            req = req.query(&[("where", filter)]);
        }
        // The organisation is read whole each time (one record; If-Modified-Since on it is unconfirmed).
        if entity == Entity::TrackingCategory {
            req = req.query(&[("includeArchived", "true")]);
        }
        // A deleted transfer is listed only when asked for (xero_accounting.yaml): asked, so the
        // deletion reaches the copy as Status DELETED.
        if name == "BankTransfers" {
            req = req.query(&[("includeDeleted", "true")]);
        }
        // TaxRates and TrackingCategories take no If-Modified-Since (xero_accounting.yaml): read
        // whole each time.
        let since = match entity {
            Entity::Company | Entity::TaxRate | Entity::TrackingCategory => None,
            _ if paged => cursor.list_since(),
            _ => cursor.modified_since,
        };
        if let Some(since) = since {
            req = req.header(http::header::IF_MODIFIED_SINCE, since.to_rfc3339_opts(SecondsFormat::Secs, true));
        }
        let ok = self.core.call_text(req).await?;
        read_page(org_id, cursor, &ok.response.body, ok.date, ok.rate_limit, &mut finish)
    }

    /// An entity of several collections is looked for in each in turn: the first that has the id
    /// answers. A retryable failure is returned at once rather than taken for "not in this one".
    async fn get(&self, tokens: &TokenSet, org_id: &str, entity: Entity, id: &str) -> Result<Record> {
        let mut last = None;
        for n in 0..collection_count(entity) {
            let (name, _) = collection_of(entity, u8::try_from(n).unwrap_or(u8::MAX))?;
            let url = api_url(&self.core.endpoints.api, &[name, id])?;
            match self.core.call(self.tenant_request(tokens, org_id, self.core.http.reqwest().get(url))?).await {
                Ok(ok) => {
                    let key = if n == 0 { list_key(entity) } else { name };
                    return normalise(entity, org_id, Self::first_in(&ok.body, key)?);
                }
                Err(e) if e.is_retryable() => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Internal(format!("{entity} has no Xero collection"))))
    }

    async fn create(&self, tokens: &TokenSet, org_id: &str, entity: Entity, payload: &Value, idempotency_key: &str) -> Result<Record> {
        if idempotency_key.is_empty() || idempotency_key.len() > MAX_IDEMPOTENCY_KEY {
            return Err(Error::InvalidInput(format!("Xero idempotency keys are 1 to {MAX_IDEMPOTENCY_KEY} characters")));
        }
        let (name, _) = entity_names(entity);
        let url = api_url(&self.core.endpoints.api, &[name])?;
        let body = create_body(entity, name, payload)?;
        let req =
            self.tenant_request(tokens, org_id, self.core.http.reqwest().put(url))?.header("Idempotency-Key", idempotency_key).json(&body);
        let ok = self.core.call(req).await?;
        normalise(entity, org_id, Self::first_of(&ok.body, entity)?)
    }

    /// Xero changes a record by POSTing to it: voids, deletions and archiving are updates of
    /// `Status` / `ContactStatus` (`crate::writes` builds the body). Xero has no conditional update:
    /// the version check is the caller's read before this (`crate::writes`).
    async fn change(
        &self,
        tokens: &TokenSet,
        org_id: &str,
        entity: Entity,
        change: &Change<'_>,
        idempotency_key: &str,
    ) -> Result<Option<Record>> {
        if idempotency_key.is_empty() || idempotency_key.len() > MAX_IDEMPOTENCY_KEY {
            return Err(Error::InvalidInput(format!("Xero idempotency keys are 1 to {MAX_IDEMPOTENCY_KEY} characters")));
        }
        if change.kind != ChangeKind::Update {
            return Err(Error::InvalidInput("Xero voids, deletes and archives by an update of the record's status".into()));
        }
        let (name, id_field) = entity_names(entity);
        let mut one = match change.body {
            Value::Object(m) => Value::Object(m.clone()),
            _ => return Err(Error::InvalidInput("an update body must be an object".into())),
        };
        one[id_field] = json!(change.id);
        let url = api_url(&self.core.endpoints.api, &[name, change.id])?;
        let req = self
            .tenant_request(tokens, org_id, self.core.http.reqwest().post(url))?
            .header("Idempotency-Key", idempotency_key)
            .json(&json!({ name: [one] }));
        let ok = self.core.call(req).await?;
        normalise(entity, org_id, Self::first_of(&ok.body, entity)?).map(Some)
    }
}

/// The PUT body. Invoices, Contacts and Payments take the `{"Invoices": [..]}` wrapper (or one object,
/// which we wrap); `PUT /Accounts` takes one bare Account object (xero_accounting.yaml: the request
/// schema is `Account`, not `Accounts`), so a wrapper of one is unwrapped and a batch refused.
fn create_body(entity: Entity, name: &str, payload: &Value) -> Result<Value> {
    if entity != Entity::Account {
        return Ok(if payload.get(name).is_some() { payload.clone() } else { json!({ name: [payload] }) });
    }
    let one = match payload.get(name) {
        None if payload.is_object() => payload,
        Some(Value::Array(list)) if list.len() == 1 && list[0].is_object() => &list[0],
        _ => return Err(Error::InvalidInput("Xero creates one account per request: send a single Account object".into())),
    };
    Ok(one.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_are_put_as_one_object_and_other_entities_wrapped() {
        let acc = json!({"Code": "200", "Name": "Sales", "Type": "REVENUE"});
        assert_eq!(create_body(Entity::Account, "Accounts", &acc).unwrap(), acc);
        assert_eq!(create_body(Entity::Account, "Accounts", &json!({"Accounts": [acc.clone()]})).unwrap(), acc);
        for bad in [json!({"Accounts": [acc.clone(), acc.clone()]}), json!([acc.clone()]), json!({"Accounts": acc.clone()})] {
            assert_eq!(create_body(Entity::Account, "Accounts", &bad).unwrap_err().code(), crate::ErrorCode::InvalidInput, "{bad}");
        }
        let c = json!({"Name": "Amy"});
        assert_eq!(create_body(Entity::Contact, "Contacts", &c).unwrap(), json!({"Contacts": [c.clone()]}));
        let w = json!({"Contacts": [c]});
        assert_eq!(create_body(Entity::Contact, "Contacts", &w).unwrap(), w);
    }

    #[test]
    fn records_normalise() {
        let v = json!({"InvoiceID": "b1", "InvoiceNumber": "INV-1", "Total": 10.5, "CurrencyCode": "NZD", "Status": "AUTHORISED",
            "Contact": {"Name": "Ridgeway"}, "UpdatedDateUTC": "/Date(1551212901659+0000)/"});
        let r = normalise(Entity::Invoice, "t1", v).unwrap();
        assert_eq!((r.id.as_str(), r.number.as_deref(), r.name.as_deref()), ("b1", Some("INV-1"), Some("Ridgeway")));
        assert_eq!((r.amount.as_deref(), r.currency.as_deref(), r.status.as_deref()), (Some("10.5"), Some("NZD"), Some("AUTHORISED")));
        assert_eq!(r.updated_at.unwrap().timestamp_millis(), 1551212901659);
        let p = normalise(
            Entity::Payment,
            "t1",
            json!({"PaymentID": "p", "Amount": 3, "Invoice": {"CurrencyCode": "USD", "Contact": {"Name": "A"}}}),
        )
        .unwrap();
        assert_eq!((p.amount.as_deref(), p.currency.as_deref(), p.name.as_deref()), (Some("3"), Some("USD"), Some("A")));
        assert!(normalise(Entity::Contact, "t1", json!({"Name": "x"})).is_err());
    }

    /// Bank transactions are two Xero collections: the pass reads BankTransactions' pages, then
    /// BankTransfers (one answer, no pages) under the first page's start; a cursor past them is refused.
    #[test]
    fn bank_transactions_walk_transactions_then_transfers_in_one_pass() {
        let c = Cursor::start(PROVIDER, Entity::BankTransaction);
        let page = |key: &str, ids: &[&str], pages: u64| {
            let items: Vec<Value> = ids
                .iter()
                .map(
                    |id| json!({"BankTransactionID": id, "BankTransferID": id, "Total": 1, "UpdatedDateUTC": "/Date(1551212901659+0000)/"}),
                )
                .collect();
            json!({key: items, "pagination": {"page": 1, "pageCount": pages}, "DateTimeUTC": "/Date(1551212900000)/"})
        };
        let p1 = parse_page("t", &c, page("BankTransactions", &["a"], 1), None, RateLimitInfo::default()).unwrap();
        assert!(p1.has_more && p1.next_cursor.collection == 1, "BankTransfers is still to read");
        assert_eq!(collection_of(Entity::BankTransaction, 1).unwrap().0, "BankTransfers");
        let p2 = parse_page("t", &p1.next_cursor, page("BankTransfers", &["b"], 5), None, RateLimitInfo::default()).unwrap();
        assert_eq!(p2.records.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["b"]);
        assert!(!p2.has_more && p2.next_cursor.collection == 0, "BankTransfers has no pages: the pass ends");
        let mut bad = p1.next_cursor.clone();
        bad.collection = 2;
        assert!(parse_page("t", &bad, page("BankTransfers", &[], 1), None, RateLimitInfo::default()).is_err());
        let mut bad = Cursor::start(PROVIDER, Entity::Invoice);
        bad.collection = 1;
        assert!(parse_page("t", &bad, json!({"Invoices": []}), None, RateLimitInfo::default()).is_err());
    }

    /// A page is read a record at a time from its text: each record reaches `finish` in order,
    /// parsed whole, except those the previous page already read (they stay for the cursor's sake
    /// and are dropped from the page); the page and cursor are what the parsed-whole reading gave.
    #[test]
    fn a_page_read_from_its_text_hands_each_new_record_to_finish_in_order() {
        let inv = |id: &str, secs: i64| json!({"InvoiceID": id, "Total": "1.50", "Note": "a \"quoted\" \u{e9}", "UpdatedDateUTC": format!("/Date({}000+0000)/", secs)});
        let body = json!({"Invoices": [inv("a", 100), inv("b", 100), inv("c", 200)], "pagination": {"page": 1, "pageCount": 3}, "DateTimeUTC": "/Date(1551212900000)/"});
        let mut c = Cursor::start(PROVIDER, Entity::Invoice).with_page_size(3);
        c.boundary = vec!["a".into()];
        c.boundary_until = parse_time("/Date(100000+0000)/");
        let text = serde_json::to_vec(&body).unwrap();
        let mut seen = Vec::new();
        let page = read_page("t", &c, &text, None, RateLimitInfo::default(), &mut |r: &mut Record| seen.push(r.raw.clone())).unwrap();
        assert_eq!(seen, [inv("b", 100), inv("c", 200)], "the boundary record is not handed over; the others whole, in order");
        assert_eq!(page.records.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["b", "c"]);
        assert_eq!(page, parse_page("t", &c, body, None, RateLimitInfo::default()).unwrap());
        assert!(page.has_more);
    }

    /// What the text of a list answer can be: not JSON or not an object is malformed (the
    /// provider named, nothing of the body echoed); a missing or null array is an empty page; an
    /// array that is not one is malformed.
    #[test]
    fn odd_list_answers_are_malformed_or_empty_never_a_panic() {
        let c = Cursor::start(PROVIDER, Entity::Invoice);
        let read = |text: &[u8]| read_page("t", &c, text, None, RateLimitInfo::default(), &mut |_: &mut Record| {});
        for bad in [&b"not json"[..], b"[]", b"\"Invoices\"", b"{\"Invoices\": {\"a\": 1}}", b"{\"Invoices\": [1", b"{\"Invoices\": [1]}"] {
            let e = read(bad).unwrap_err();
            assert!(matches!(e, Error::ProviderMalformed { provider: PROVIDER, .. }), "{e:?}");
        }
        for empty in [&b"{}"[..], b"{\"Invoices\": null}", b"{\"Invoices\": []}"] {
            assert!(read(empty).unwrap().records.is_empty());
        }
    }

    #[test]
    fn connections_become_orgs() {
        let body = json!([{"id": "c1", "authEventId": "e", "tenantId": "t1", "tenantType": "ORGANISATION", "tenantName": "Demo"}]);
        let orgs = parse_connections(&body).unwrap();
        assert_eq!(orgs.len(), 1);
        assert_eq!((orgs[0].id.as_str(), orgs[0].connection_id.as_deref(), orgs[0].name.as_deref()), ("t1", Some("c1"), Some("Demo")));
        assert!(parse_connections(&json!({"not": "array"})).is_err());
    }

    #[test]
    fn element_validation_errors_on_200_are_errors() {
        let body = json!({"Invoices": [{"InvoiceID": "x", "HasErrors": true, "ValidationErrors": [{"Message": "Bad date"}]}]});
        let e = XeroClient::first_of(&body, Entity::Invoice).unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::ProviderPermanent);
        assert!(e.to_string().contains("Bad date"));
    }
}
