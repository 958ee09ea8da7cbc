//! QuickBooks Online (Intuit).
//!
//! One grant per company (realm); the realm comes on the callback and is in every API path. Lists
//! use the query endpoint ordered by Id with a keyset (`Id > <last Id read>`, MAXRESULTS), so records
//! updated while we page keep their place and one deleted mid-pass cannot shift another past a page
//! boundary (STARTPOSITION offsets would). `>` on Id is in Intuit's operator list and third-party
//! tables of the IdType; that `ORDERBY Id` and `Id >` compare Ids the same way (as numbers) is
//! unconfirmed. PKCE is not
//! sent: Intuit documents no support for it, and this is a confidential client with a state.

use chrono::{DateTime, SecondsFormat, Utc};
use oauth2::AuthType;
use serde_json::{json, Value};
use url::Url;

use crate::books::bank::{BankKind, BankMap, BankStatusRule, KindRule, NO_LINES};
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
    api_url, parse_time, read_items, split_page, text, text_at, AuthorizeRequest, CallbackParams, ClientCredentials, Cursor, Entity, Grant,
    Org, Page, PageText, RateLimitInfo, Record,
};
use crate::providers::oauth;
use crate::providers::Provider;
use crate::tokens::TokenSet;

const PROVIDER: Provider = Provider::QuickBooks;
pub const DEFAULT_SCOPES: &[&str] = &["com.intuit.quickbooks.accounting"];
/// Every request states the minor version Intuit now applies anyway, so answers do not change
/// shape under us when a newer one becomes the default.
const MINOR_VERSION: &str = "75";
/// TaxRate records read per query, and at most this many queries per join (a realm has tens).
const TAX_RATE_PAGE: usize = 1000;
const MAX_TAX_RATE_PAGES: usize = 10;

#[derive(Clone, Debug)]
pub struct QuickBooksClient {
    core: Core,
}

/// QuickBooks' entity name (query `FROM`, response key) and its path segment: the entity's first
/// collection (see [`collections`]).
pub fn entity_names(entity: Entity) -> (&'static str, &'static str) {
    collections(entity)[0]
}

/// Every QuickBooks entity an entity of ours is read from, in the order a pass reads them.
/// Credit notes are two: customers' CreditMemo and suppliers' VendorCredit. Their Ids are taken
/// to be unique across the two within a realm (QuickBooks numbers transactions from one sequence;
/// unconfirmed, the sandbox does so).
pub fn collections(entity: Entity) -> &'static [(&'static str, &'static str)] {
    match entity {
        Entity::Invoice => &[("Invoice", "invoice")],
        // Customers, then vendors (suppliers): both are contacts. Their Ids are taken to be unique
        // across the two (one name list; unconfirmed, the sandbox numbers them from one sequence).
        Entity::Contact => &[("Customer", "customer"), ("Vendor", "vendor")],
        Entity::Account => &[("Account", "account")],
        Entity::Payment => &[("Payment", "payment")],
        Entity::Bill => &[("Bill", "bill")],
        // Queried like the others; whether CompanyInfo honours the LastUpdatedTime filter and the
        // Id keyset is unconfirmed (it is one record, so a full answer costs nothing more).
        Entity::Company => &[("CompanyInfo", "companyinfo")],
        Entity::CreditNote => &[("CreditMemo", "creditmemo"), ("VendorCredit", "vendorcredit")],
        Entity::BillPayment => &[("BillPayment", "billpayment")],
        // What a line's TaxCodeRef names, read whole each pass ([`READ_WHOLE`]) with the TaxRate
        // records it names joined in for the percentages ([`QuickBooksClient::join_tax_rates`]).
        Entity::TaxRate => &[("TaxCode", "taxcode")],
        Entity::Item => &[("Item", "item")],
        // Classes are what a line's ClassRef names; Departments (locations) what a document's
        // DepartmentRef names (and a journal line's). Both are lists of their own, whose Ids
        // QuickBooks does not promise apart: a Department is keyed `department-<Id>` (see
        // [`record_id`]).
        Entity::TrackingCategory => &[("Class", "class"), ("Department", "department")],
        Entity::Journal => &[("JournalEntry", "journalentry")],
        Entity::PurchaseOrder => &[("PurchaseOrder", "purchaseorder")],
        // Expenses, cheques and card charges (Purchase), deposits, and transfers between the
        // company's accounts; one Id sequence across them is assumed as for credit notes.
        Entity::BankTransaction => &[("Purchase", "purchase"), ("Deposit", "deposit"), ("Transfer", "transfer")],
    }
}

/// What a Department record's id, and a tracking reference to one, starts with: QuickBooks'
/// Department and Class are separate lists whose Ids may be equal (Intuit does not say they share
/// a sequence), and both are tracking categories here. Class ids stay as QuickBooks sends them.
pub const DEPARTMENT_ID_PREFIX: &str = "department-";

/// The collections whose record ids carry a prefix, by QuickBooks entity name.
const ID_PREFIXES: &[(&str, &str)] = &[("Department", DEPARTMENT_ID_PREFIX)];

fn id_prefix(collection: &str) -> &'static str {
    ID_PREFIXES.iter().find(|(n, _)| n.eq_ignore_ascii_case(collection)).map_or("", |(_, p)| p)
}

/// Our record id of QuickBooks' record `id` in `collection` (an entity name, matched
/// case-insensitively, as webhooks spell it): the Id itself, or the collection's prefix and the Id.
pub fn record_id(collection: &str, id: &str) -> String {
    format!("{}{id}", id_prefix(collection))
}

/// QuickBooks' Id of our record `id` if the record is of `collection`, else `None` (a prefixed id
/// is only of its prefix's collection; an unprefixed one only of the others).
fn provider_id<'a>(collection: &str, id: &'a str) -> Option<&'a str> {
    match id_prefix(collection) {
        "" => (!ID_PREFIXES.iter().any(|(_, p)| id.starts_with(p))).then_some(id),
        p => id.strip_prefix(p),
    }
}

/// Name lists QuickBooks answers with their active records only unless the query names `Active`
/// (Intuit's blog on queries: `SELECT * FROM Customer` "retrieves all active customers"): read
/// with inactive ones too, so a class or department made inactive reaches the copy. That
/// `Active IN (true, false)` combines with the Id keyset and ORDERBY is unconfirmed (`IN` and
/// boolean values are in Intuit's query grammar). Customer, Vendor, Account and Item are the same
/// kind of list and are not asked so yet (left as they were).
const WITH_INACTIVE: &[&str] = &["Class", "Department"];

/// Read whole on every pass, without the LastUpdatedTime filter: a TaxCode's rates are joined
/// from TaxRate records ([`QuickBooksClient::join_tax_rates`]) whose changes do not move the
/// code's own time. A realm has tens of codes; unchanged ones are not written again (the store
/// compares content).
const READ_WHOLE: &[&str] = &["TaxCode"];

/// The collection a create goes to, told by its body: a supplier's credit note is a VendorCredit
/// (it names a VendorRef), a customer's a CreditMemo; money received is a Deposit (it names
/// DepositToAccountRef), money spent a Purchase.
fn create_collection(entity: Entity, payload: &Value) -> usize {
    match entity {
        Entity::CreditNote => usize::from(payload.get("VendorRef").is_some()),
        Entity::BankTransaction => usize::from(payload.get("DepositToAccountRef").is_some()),
        _ => 0,
    }
}

/// The entity's collection at `index` (a write names which one holds its record).
fn collection_at(entity: Entity, index: usize) -> Result<(&'static str, &'static str)> {
    collections(entity).get(index).copied().ok_or_else(|| Error::InvalidInput(format!("{entity} has no collection {index}")))
}

/// The collection a cursor is reading (a cursor is data: one past the entity's collections is refused).
fn collection_of(cursor: &Cursor) -> Result<(&'static str, &'static str)> {
    collections(cursor.entity)
        .get(usize::from(cursor.collection))
        .copied()
        .ok_or_else(|| Error::InvalidInput("cursor collection is out of range".into()))
}

/// A JournalEntry's lines: a positive Amount and JournalEntryLineDetail.PostingType Debit or
/// Credit, the account and class under the detail.
pub const JOURNAL: JournalMap = JournalMap {
    narration: &[&["PrivateNote"]],
    currency: &[&["CurrencyRef", "value"]],
    lines: &["Line"],
    line_kind: Some((&["DetailType"], "JournalEntryLineDetail")),
    account_id: &[&["JournalEntryLineDetail", "AccountRef", "value"]],
    account_name: &[&["JournalEntryLineDetail", "AccountRef", "name"]],
    description: &[&["Description"]],
    side: SideRule::Typed(&["Amount"], &["JournalEntryLineDetail", "PostingType"], "Debit", "Credit"),
    tracking: &[
        (&["JournalEntryLineDetail", "ClassRef"], &["value"], &["name"], ""),
        (&["JournalEntryLineDetail", "DepartmentRef"], &["value"], &["name"], DEPARTMENT_ID_PREFIX),
    ],
};

/// A Class is one tracking value: the record is its own one option (a line's ClassRef names its
/// Id). Sub-classes are classes of their own (`FullyQualifiedName` `Parent:Child`).
pub const TRACKING: TrackingMap = TrackingMap {
    id: &[&["Id"]],
    name: &[&["FullyQualifiedName"], &["Name"]],
    active: ActiveRule::Flag(&[&["Active"]]),
    options: OptionsRule::SelfOption(""),
};

/// A Department (location) likewise, its option id prefixed as a document's DepartmentRef is
/// read ([`DEPARTMENT_ID_PREFIX`]); sub-departments are departments of their own (`SubDepartment`,
/// `ParentRef`, `FullyQualifiedName` `Parent:Child`).
pub const DEPARTMENT: TrackingMap = TrackingMap { options: OptionsRule::SelfOption(DEPARTMENT_ID_PREFIX), ..TRACKING };

/// The map of a tracking category record, told by our id: a Department's is prefixed.
pub fn tracking_map(record_id: &str) -> &'static TrackingMap {
    if record_id.starts_with(DEPARTMENT_ID_PREFIX) {
        &DEPARTMENT
    } else {
        &TRACKING
    }
}

/// An Item: its prices (`UnitPrice`, `PurchaseCost`), accounts and tax codes by reference. Deleting
/// one in QuickBooks makes it inactive.
pub const ITEM: ItemMap = ItemMap {
    code: &[&["Sku"]],
    name: &[&["Name"]],
    description: &[&["Description"], &["PurchaseDesc"]],
    item_type: &[&["Type"]],
    sales_price: &[&["UnitPrice"]],
    purchase_price: &[&["PurchaseCost"]],
    income_account: (&[&["IncomeAccountRef", "value"]], &[&["IncomeAccountRef", "name"]]),
    expense_account: (&[&["ExpenseAccountRef", "value"]], &[&["ExpenseAccountRef", "name"]]),
    tax_code: &[&["SalesTaxCodeRef", "value"]],
    purchase_tax_code: &[&["PurchaseTaxCodeRef", "value"]],
    active: ActiveRule::Flag(&[&["Active"]]),
};

/// A Deposit's lines keep their account (and the payer) under `DepositLineDetail`; a line that
/// deposits a received payment names it in `LinkedTxn` and has no account.
const BANK_LINE: LineMap = LineMap {
    account_id: &[
        &["AccountBasedExpenseLineDetail", "AccountRef", "value"],
        &["DepositLineDetail", "AccountRef", "value"],
        &["ItemBasedExpenseLineDetail", "ItemAccountRef", "value"],
    ],
    account_name: &[
        &["AccountBasedExpenseLineDetail", "AccountRef", "name"],
        &["DepositLineDetail", "AccountRef", "name"],
        &["ItemBasedExpenseLineDetail", "ItemAccountRef", "name"],
    ],
    tracking: &[
        (&["ItemBasedExpenseLineDetail", "ClassRef"], &["value"], &["name"]),
        (&["AccountBasedExpenseLineDetail", "ClassRef"], &["value"], &["name"]),
        (&["DepositLineDetail", "ClassRef"], &["value"], &["name"]),
    ],
    ..LINE
};

/// A Purchase: money out of `AccountRef` (a bank account for Cash and Check, a card for
/// CreditCard) to `EntityRef` (a vendor, customer or employee). QuickBooks has no status: a listed
/// one is posted, a deleted one comes through CDC. A card refund (`Credit: true`, CreditCard only)
/// is money back: `receive`.
pub const PURCHASE: BankMap = BankMap {
    kind: KindRule::Flag(&["Credit"], BankKind::Receive, BankKind::Spend),
    provider_type: &[&["PaymentType"]],
    provider_type_is: Some("Purchase"),
    status: BankStatusRule::Posted,
    bank_account_id: &[&["AccountRef", "value"]],
    bank_account_name: &[&["AccountRef", "name"]],
    contact_id: &[&["EntityRef", "value"]],
    contact_name: &[&["EntityRef", "name"]],
    date: &[&["TxnDate"]],
    reference: &[&["DocNumber"]],
    currency: &[&["CurrencyRef", "value"]],
    tax: &[&["TxnTaxDetail", "TotalTax"]],
    total: &[&["TotalAmt"]],
    lines: Some(&["Line"]),
    line: BANK_LINE,
    from_id: &[],
    from_name: &[],
    to_id: &[],
    to_name: &[],
};

/// A Deposit into `DepositToAccountRef`; its lines say where the money came from.
pub const DEPOSIT: BankMap = BankMap {
    kind: KindRule::Fixed(BankKind::Receive),
    provider_type: &[],
    provider_type_is: Some("Deposit"),
    bank_account_id: &[&["DepositToAccountRef", "value"]],
    bank_account_name: &[&["DepositToAccountRef", "name"]],
    contact_id: &[],
    contact_name: &[],
    ..PURCHASE
};

/// A Transfer of `Amount` from `FromAccountRef` to `ToAccountRef`; no lines. Whether a Transfer
/// carries CurrencyRef in a multicurrency company is unconfirmed (absent reads as `XXX`).
pub const TRANSFER: BankMap = BankMap {
    kind: KindRule::Fixed(BankKind::Transfer),
    provider_type_is: Some("Transfer"),
    bank_account_id: &[],
    bank_account_name: &[],
    tax: &[],
    total: &[&["Amount"]],
    lines: None,
    line: NO_LINES,
    from_id: &[&["FromAccountRef", "value"]],
    from_name: &[&["FromAccountRef", "name"]],
    to_id: &[&["ToAccountRef", "value"]],
    to_name: &[&["ToAccountRef", "name"]],
    ..DEPOSIT
};

/// Which collection's map reads this record: a Purchase has PaymentType, a Transfer FromAccountRef.
pub fn bank_map_of(entity: Entity, v: &Value) -> Option<&'static BankMap> {
    (entity == Entity::BankTransaction).then(|| {
        if v.get("FromAccountRef").is_some() {
            &TRANSFER
        } else if v.get("DepositToAccountRef").is_some() {
            &DEPOSIT
        } else {
            &PURCHASE
        }
    })
}

/// Whether change data capture serves the entity (Intuit's CDC list of entities has no CompanyInfo).
pub fn in_cdc(entity: Entity) -> bool {
    !matches!(entity, Entity::Company | Entity::TaxRate)
}

/// Where a TaxCode's TaxRateDetail carries the TaxRate record it names: put there by the client
/// ([`QuickBooksClient::join_tax_rates`]), not by Intuit, since a TaxCode states no percentage.
pub const JOINED_TAX_RATE: &str = "ttya_TaxRate";

/// A TaxCode names its rates (TaxRate ids) for sales and purchases; the percentages sit on each
/// TaxRate (`RateValue`), joined in by the client under [`JOINED_TAX_RATE`]. The code's rate is
/// the sum of its sales rates when each applies to the net amount (`TaxTypeApplicable`
/// `TaxOnAmount`); a compound code (a rate on amount plus tax, `TaxOnAmountPlusTax`, or on tax)
/// has no single rate and leaves it absent, its components marked compound.
pub const TAX_RATE: TaxRateMap = TaxRateMap {
    code: &[&["Id"]],
    name: &[&["Name"]],
    rate: &[],
    active: ActiveRule::Flag(&[&["Active"]]),
    components: &[
        (&["SalesTaxRateList", "TaxRateDetail"], &["TaxRateRef", "value"], &["TaxRateRef", "name"], &[JOINED_TAX_RATE, "RateValue"], &[]),
        (
            &["PurchaseTaxRateList", "TaxRateDetail"],
            &["TaxRateRef", "value"],
            &["TaxRateRef", "name"],
            &[JOINED_TAX_RATE, "RateValue"],
            &[],
        ),
    ],
    rate_from_components: Some((&["TaxTypeApplicable"], "TaxOnAmount")),
};

/// `Classification` is one of Asset, Liability, Equity, Revenue, Expense (Intuit's Account page).
pub const ACCOUNT: AccountMap = AccountMap {
    code: &[&["AcctNum"]],
    name: &[&["Name"]],
    account_type: &[&["AccountType"]],
    class: ClassRule::Field(
        &["Classification"],
        &[
            ("Asset", AccountClass::Asset),
            ("Liability", AccountClass::Liability),
            ("Equity", AccountClass::Equity),
            ("Revenue", AccountClass::Revenue),
            ("Expense", AccountClass::Expense),
        ],
    ),
    currency: &[&["CurrencyRef", "value"]],
    bank_types: &["Bank"],
    active: ActiveRule::Flag(&[&["Active"]]),
    balance: &[&["CurrentBalance"]],
};

/// CompanyInfo has no currency (Preferences.CurrencyPrefs has it) and no tax basis.
pub const COMPANY: CompanyMap = CompanyMap {
    legal_name: &[&["LegalName"], &["CompanyName"]],
    base_currency: &[],
    country: &[&["Country"]],
    fiscal_month: (&[&["FiscalYearStartMonth"]], FiscalMonth::StartName),
    tax_basis: &[],
};

/// A QuickBooks line's fields: sales lines keep item, quantity and price under
/// `SalesItemLineDetail`; bill lines under `ItemBasedExpenseLineDetail` or, for an account,
/// `AccountBasedExpenseLineDetail`. Subtotal and discount lines are not lines of goods: the subtotal
/// is the sum of the others, and a discount (which QuickBooks sends as a positive amount that
/// reduces the total) is left to the raw record.
const LINE: LineMap = LineMap {
    id: &[&["Id"]],
    description: &[&["Description"]],
    quantity: &[&["SalesItemLineDetail", "Qty"], &["ItemBasedExpenseLineDetail", "Qty"]],
    unit_price: &[&["SalesItemLineDetail", "UnitPrice"], &["ItemBasedExpenseLineDetail", "UnitPrice"]],
    amount: &[&["Amount"]],
    account_id: &[&["AccountBasedExpenseLineDetail", "AccountRef", "value"], &["SalesItemLineDetail", "ItemAccountRef", "value"]],
    account_name: &[&["AccountBasedExpenseLineDetail", "AccountRef", "name"], &["SalesItemLineDetail", "ItemAccountRef", "name"]],
    item_id: &[&["SalesItemLineDetail", "ItemRef", "value"], &["ItemBasedExpenseLineDetail", "ItemRef", "value"]],
    item_name: &[&["SalesItemLineDetail", "ItemRef", "name"], &["ItemBasedExpenseLineDetail", "ItemRef", "name"]],
    tax_code: &[
        &["SalesItemLineDetail", "TaxCodeRef", "value"],
        &["ItemBasedExpenseLineDetail", "TaxCodeRef", "value"],
        &["AccountBasedExpenseLineDetail", "TaxCodeRef", "value"],
    ],
    tax_rate: &[],
    // QuickBooks states tax per document (TxnTaxDetail), not per line.
    tax_amount: &[],
    tracking: &[
        (&["SalesItemLineDetail", "ClassRef"], &["value"], &["name"]),
        (&["ItemBasedExpenseLineDetail", "ClassRef"], &["value"], &["name"]),
        (&["AccountBasedExpenseLineDetail", "ClassRef"], &["value"], &["name"]),
    ],
    // A transaction's location is named once, in the header (Invoice, Bill, CreditMemo,
    // VendorCredit, Purchase, Deposit; a PurchaseOrder's is unconfirmed): every line is tracked by it.
    header_tracking: &[(&["DepartmentRef"], &["value"], &["name"], DEPARTMENT_ID_PREFIX)],
    skip_if: Some((&["DetailType"], &["SubTotalLineDetail", "DiscountLineDetail"])),
};

/// QuickBooks has no status on invoices and bills: what is still due (`Balance`) says it.
const fn document(kind: DocumentKind) -> DocumentMap {
    DocumentMap {
        kind,
        reference: &[],
        contact_id: match kind {
            DocumentKind::SalesInvoice | DocumentKind::SalesCredit => &[&["CustomerRef", "value"]],
            DocumentKind::Bill | DocumentKind::PurchaseCredit | DocumentKind::PurchaseOrder => &[&["VendorRef", "value"]],
        },
        contact_name: match kind {
            DocumentKind::SalesInvoice | DocumentKind::SalesCredit => &[&["CustomerRef", "name"]],
            DocumentKind::Bill | DocumentKind::PurchaseCredit | DocumentKind::PurchaseOrder => &[&["VendorRef", "name"]],
        },
        currency: &[&["CurrencyRef", "value"]],
        exchange_rate: &[&["ExchangeRate"]],
        subtotal: &[],
        tax: &[&["TxnTaxDetail", "TotalTax"]],
        total: &[&["TotalAmt"]],
        // A credit note's Balance is the credit not yet applied (CreditMemo also states it as
        // RemainingCredit).
        amount_due: &[&["Balance"], &["RemainingCredit"]],
        status: StatusRule::FromAmountDue,
        lines: &["Line"],
        line: LINE,
    }
}

const INVOICE: DocumentMap = document(DocumentKind::SalesInvoice);
const BILL: DocumentMap = document(DocumentKind::Bill);
const CREDIT_MEMO: DocumentMap = document(DocumentKind::SalesCredit);
const VENDOR_CREDIT: DocumentMap = document(DocumentKind::PurchaseCredit);
/// A purchase order owes nothing (it is not a bill): no amount due, and `POStatus` says whether it
/// is still open.
const PURCHASE_ORDER: DocumentMap = DocumentMap {
    amount_due: &[],
    status: StatusRule::Field(&["POStatus"], &[("Open", DocumentStatus::Open), ("Closed", DocumentStatus::Closed)]),
    ..document(DocumentKind::PurchaseOrder)
};

/// Where an invoice's or a bill's fields are (`books::map_document`); `None` for other entities.
pub fn document_map(entity: Entity) -> Option<&'static DocumentMap> {
    match entity {
        Entity::Invoice => Some(&INVOICE),
        Entity::Bill => Some(&BILL),
        Entity::CreditNote => Some(&CREDIT_MEMO),
        Entity::PurchaseOrder => Some(&PURCHASE_ORDER),
        _ => None,
    }
}

/// As [`document_map`], for this record: a credit note naming a vendor is a VendorCredit.
pub fn document_map_of(entity: Entity, v: &Value) -> Option<&'static DocumentMap> {
    match entity {
        Entity::CreditNote if v.get("VendorRef").is_some() => Some(&VENDOR_CREDIT),
        e => document_map(e),
    }
}

/// QuickBooks lists no applications on a credit note: a CreditMemo is applied by a Payment, a
/// VendorCredit by a BillPayment (their lines' LinkedTxn name it), so the allocations are read
/// from the payments, not here.
pub fn allocation_map(_entity: Entity) -> Option<&'static AllocationMap> {
    None
}

/// A payment's lines each pay one document: the line's `Amount`, its `LinkedTxn` the document
/// (`TxnType` Invoice, CreditMemo, Bill, VendorCredit, ...). A line linking several transactions
/// is read by its first (unconfirmed whether QuickBooks sends such lines on payments).
const PAID_LINES: &[AppliedList] = &[AppliedList {
    at: &["Line"],
    document_id: &[&["LinkedTxn", "0", "TxnId"]],
    document_number: &[],
    document_type: &[&["LinkedTxn", "0", "TxnType"]],
    document_type_is: None,
    amount: &[&["Amount"]],
}];

const RECEIVED: PaymentMap = PaymentMap {
    direction: PaymentDirection::Received,
    currency: &[&["CurrencyRef", "value"]],
    amount: &[&["TotalAmt"]],
    date: &[&["TxnDate"]],
    reference: &[&["PaymentRefNum"]],
    contact_id: &[&["CustomerRef", "value"]],
    contact_name: &[&["CustomerRef", "name"]],
    account_id: &[&["DepositToAccountRef", "value"]],
    account_name: &[&["DepositToAccountRef", "name"]],
    unapplied: &[&["UnappliedAmt"]],
    applied: PAID_LINES,
};

/// A BillPayment pays from a bank account (`PayType: Check`) or a card (`CreditCard`).
const MADE: PaymentMap = PaymentMap {
    direction: PaymentDirection::Made,
    currency: &[&["CurrencyRef", "value"]],
    amount: &[&["TotalAmt"]],
    date: &[&["TxnDate"]],
    reference: &[&["DocNumber"]],
    contact_id: &[&["VendorRef", "value"]],
    contact_name: &[&["VendorRef", "name"]],
    account_id: &[&["CheckPayment", "BankAccountRef", "value"], &["CreditCardPayment", "CCAccountRef", "value"]],
    account_name: &[&["CheckPayment", "BankAccountRef", "name"], &["CreditCardPayment", "CCAccountRef", "name"]],
    unapplied: &[],
    applied: PAID_LINES,
};

/// Where a payment's fields are (`books::map_payment`); `None` for other entities.
pub fn payment_map(entity: Entity) -> Option<&'static PaymentMap> {
    match entity {
        Entity::Payment => Some(&RECEIVED),
        Entity::BillPayment => Some(&MADE),
        _ => None,
    }
}

const fn qbo_address(at: Path, kind: &'static str) -> AddressMap {
    AddressMap {
        at,
        kind: &[],
        kind_is: Some(kind),
        lines: &[&["Line1"], &["Line2"], &["Line3"], &["Line4"], &["Line5"]],
        city: &[&["City"]],
        region: &[&["CountrySubDivisionCode"]],
        postal_code: &[&["PostalCode"]],
        country: &[&["Country"]],
    }
}

/// Customers and vendors in one map: a vendor is told by `Vendor1099` (always on a Vendor, never
/// on a Customer; unconfirmed beyond Intuit's entity pages), and `Balance` is what a customer owes
/// us or what we owe a vendor.
pub const CONTACT: ContactMap = ContactMap {
    roles: RoleRule::SupplierIfAny(&[&["Vendor1099"]]),
    name: &[&["DisplayName"]],
    company_name: &[&["CompanyName"]],
    emails: &[&["PrimaryEmailAddr", "Address"]],
    phones: &[(&["PrimaryPhone"], &[&["FreeFormNumber"]]), (&["Mobile"], &[&["FreeFormNumber"]])],
    addresses: &[qbo_address(&["BillAddr"], "billing"), qbo_address(&["ShipAddr"], "shipping")],
    tax_number: &[&["TaxIdentifier"], &["PrimaryTaxIdentifier"]],
    currency: &[&["CurrencyRef", "value"]],
    receivable: &[],
    payable: &[],
    balance_by_role: &[&["Balance"]],
};

/// A realm id goes into every URL path: only digits are accepted.
fn check_realm(realm: &str) -> Result<&str> {
    if !realm.is_empty() && realm.len() <= 32 && realm.bytes().all(|b| b.is_ascii_digit()) {
        Ok(realm)
    } else {
        Err(Error::InvalidInput("QuickBooks realmId must be digits".into()))
    }
}

/// The query for one page. The timestamp is written with an explicit offset, as Intuit's examples do.
pub fn list_query(entity: Entity, cursor: &Cursor) -> String {
    let (name, _) = collections(entity).get(usize::from(cursor.collection)).copied().unwrap_or(entity_names(entity));
    let mut conds = Vec::new();
    if WITH_INACTIVE.contains(&name) {
        conds.push("Active IN (true, false)".to_string());
    }
    if let Some(t) = cursor.modified_since.filter(|_| !READ_WHOLE.contains(&name)) {
        conds.push(format!("MetaData.LastUpdatedTime > '{}'", t.to_rfc3339_opts(SecondsFormat::Secs, false)));
    }
    // Keyset: `Cursor::check` lets only digits through, so the literal cannot break the query.
    if let Some(id) = &cursor.after_id {
        conds.push(format!("Id > '{id}'"));
    }
    let filter = if conds.is_empty() { String::new() } else { format!(" WHERE {}", conds.join(" AND ")) };
    format!("SELECT * FROM {name}{filter} ORDERBY Id STARTPOSITION {} MAXRESULTS {}", cursor.position, cursor.page_size)
}

/// As [`normalise`], for a record of `collection`: its id as we key it ([`record_id`]).
pub fn normalise_in(entity: Entity, collection: &str, org_id: &str, v: Value) -> Result<Record> {
    let mut r = normalise(entity, org_id, v)?;
    if !id_prefix(collection).is_empty() {
        r.id = record_id(collection, &r.id);
    }
    Ok(r)
}

pub fn normalise(entity: Entity, org_id: &str, v: Value) -> Result<Record> {
    let id = text(&v, "Id").ok_or_else(|| Error::ProviderMalformed { provider: PROVIDER, message: format!("{entity} without Id") })?;
    let active = |v: &Value| v.get("Active").and_then(Value::as_bool).map(|a| if a { "Active" } else { "Inactive" }.to_string());
    let (number, name, amount, status) = match entity {
        Entity::Invoice => {
            // QuickBooks invoices have no status field; the balance says whether one is paid.
            let status = v.get("Balance").and_then(Value::as_f64).map(|b| if b == 0.0 { "Paid" } else { "Open" }.to_string());
            (text(&v, "DocNumber"), text_at(&v, &["CustomerRef", "name"]), text(&v, "TotalAmt"), status)
        }
        Entity::Contact => (None, text(&v, "DisplayName"), text(&v, "Balance"), active(&v)),
        Entity::Account => (text(&v, "AcctNum"), text(&v, "Name"), text(&v, "CurrentBalance"), active(&v)),
        Entity::Payment => (text(&v, "PaymentRefNum"), text_at(&v, &["CustomerRef", "name"]), text(&v, "TotalAmt"), None),
        Entity::Bill => {
            let status = v.get("Balance").and_then(Value::as_f64).map(|b| if b == 0.0 { "Paid" } else { "Open" }.to_string());
            (text(&v, "DocNumber"), text_at(&v, &["VendorRef", "name"]), text(&v, "TotalAmt"), status)
        }
        Entity::Company => (None, text(&v, "CompanyName"), None, None),
        Entity::PurchaseOrder => (text(&v, "DocNumber"), text_at(&v, &["VendorRef", "name"]), text(&v, "TotalAmt"), text(&v, "POStatus")),
        Entity::BillPayment => (text(&v, "DocNumber"), text_at(&v, &["VendorRef", "name"]), text(&v, "TotalAmt"), None),
        // No status field: the document's status says what is left of the credit.
        Entity::CreditNote => {
            let name = text_at(&v, &["CustomerRef", "name"]).or_else(|| text_at(&v, &["VendorRef", "name"]));
            (text(&v, "DocNumber"), name, text(&v, "TotalAmt"), None)
        }
        Entity::TaxRate => (text(&v, "Id"), text(&v, "Name"), None, active(&v)),
        Entity::Item => (text(&v, "Sku"), text(&v, "Name"), None, active(&v)),
        Entity::TrackingCategory => (None, text(&v, "FullyQualifiedName").or_else(|| text(&v, "Name")), None, active(&v)),
        Entity::Journal => (text(&v, "DocNumber"), None, text(&v, "TotalAmt"), None),
        Entity::BankTransaction => {
            (text(&v, "DocNumber"), text_at(&v, &["EntityRef", "name"]), text(&v, "TotalAmt").or_else(|| text(&v, "Amount")), None)
        }
    };
    Ok(Record {
        provider: PROVIDER,
        entity,
        org_id: org_id.to_string(),
        id,
        updated_at: text_at(&v, &["MetaData", "LastUpdatedTime"]).and_then(|t| parse_time(&t)),
        number,
        name,
        amount,
        currency: text_at(&v, &["CurrencyRef", "value"]),
        status,
        raw: v,
    })
}

/// A company's TaxRate records by Id.
type TaxRates = std::collections::HashMap<String, Value>;

/// Puts the TaxRate each of a tax code's details names into the detail (under [`JOINED_TAX_RATE`]).
fn join_rates(raw: &mut Value, rates: &TaxRates) {
    for list in ["SalesTaxRateList", "PurchaseTaxRateList"] {
        let Some(Value::Array(details)) = raw.get_mut(list).and_then(|l| l.get_mut("TaxRateDetail")) else { continue };
        for d in details.iter_mut().filter(|d| d.is_object()) {
            if let Some(rate) = text_at(d, &["TaxRateRef", "value"]).and_then(|id| rates.get(&id)) {
                d[JOINED_TAX_RATE] = rate.clone();
            }
        }
    }
}

/// One query answer as a page (a pure function of the answer, so it can be fuzzed on its own).
pub fn parse_page(org_id: &str, cursor: &Cursor, body: Value, date: Option<DateTime<Utc>>, rate_limit: RateLimitInfo) -> Result<Page> {
    let text = serde_json::to_vec(&body).map_err(|e| Error::Internal(format!("page text: {e}")))?;
    read_page(org_id, cursor, &text, date, rate_limit, &mut |_| {})
}

/// One page of a query answer read from its text, each record handed to `finish` as it is read
/// (`model::read_items`).
pub fn read_page<F: FnMut(&mut Record)>(
    org_id: &str,
    cursor: &Cursor,
    body: &[u8],
    date: Option<DateTime<Utc>>,
    rate_limit: RateLimitInfo,
    finish: &mut F,
) -> Result<Page> {
    read_page_joined(org_id, cursor, body, date, rate_limit, None, finish)
}

/// `read_page`, each tax code's rates joined in from `rates` (TaxRate records by Id) before it is
/// handed over.
fn read_page_joined<F: FnMut(&mut Record)>(
    org_id: &str,
    cursor: &Cursor,
    body: &[u8],
    date: Option<DateTime<Utc>>,
    rate_limit: RateLimitInfo,
    rates: Option<&TaxRates>,
    finish: &mut F,
) -> Result<Page> {
    let entity = cursor.entity;
    let (name, _) = collection_of(cursor)?;
    // An empty result has no array at all.
    let PageText { envelope, items } = split_page(PROVIDER, body, &["QueryResponse", name])?;
    if envelope.get("QueryResponse").is_none() {
        return Err(Error::ProviderMalformed { provider: PROVIDER, message: "no QueryResponse".into() });
    }
    let server_time = envelope.get("time").and_then(Value::as_str).and_then(parse_time).or(date);
    let has_more = items.len() as u64 >= u64::from(cursor.page_size);
    let records = read_items(PROVIDER, items, cursor, finish, |v| {
        let mut r = normalise(entity, org_id, v)?;
        if let Some(rates) = rates {
            join_rates(&mut r.raw, rates);
        }
        // The keyset is QuickBooks' Id; the records take the ids we key them by.
        r.id = record_id(name, &r.id);
        Ok(Some(r))
    })?;
    let last: Vec<Record> =
        records.last().map(|r| Record { id: provider_id(name, &r.id).unwrap_or(&r.id).to_string(), ..r.clone() }).into_iter().collect();
    let page = Page { next_cursor: cursor.advance_by_id(has_more, server_time, &last), records, has_more, rate_limit };
    Ok(page.then_next_collection(cursor, collections(entity).len(), server_time))
}

impl QuickBooksClient {
    /// The shared request plumbing, for calls outside the entity API (`providers::raw`).
    pub(crate) fn core(&self) -> &Core {
        &self.core
    }

    pub fn new(endpoints: Endpoints, credentials: ClientCredentials, http: HttpClient) -> Self {
        QuickBooksClient { core: Core::new(PROVIDER, endpoints, credentials, http) }
    }

    fn oauth(&self) -> oauth::OAuthClient {
        let e = &self.core.endpoints;
        oauth::build_client(&self.core.credentials, &e.authorize, &e.token, AuthType::BasicAuth)
    }

    fn bearer(&self, tokens: &TokenSet, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        req.bearer_auth(tokens.access_token.expose())
    }

    /// Change data capture: every record of `entity` changed after `since`, deletions included
    /// (as `{"status":"Deleted","Id":..}`, which normalise to records whose raw status says so).
    /// Intuit caps an answer at 1,000 objects and 30 days back; the caller keeps windows short.
    /// Returns the records and the server's `time`.
    pub async fn cdc(
        &self,
        tokens: &TokenSet,
        org_id: &str,
        entity: Entity,
        since: chrono::DateTime<Utc>,
    ) -> Result<(Vec<Record>, Option<chrono::DateTime<Utc>>)> {
        let names: Vec<&str> = collections(entity).iter().map(|(n, _)| *n).collect();
        let joined = names.join(",");
        let url = api_url(&self.core.endpoints.api, &[check_realm(org_id)?, "cdc"])?;
        let since = since.to_rfc3339_opts(SecondsFormat::Secs, false);
        let req = self.bearer(tokens, self.core.http.reqwest().get(url)).query(&[
            ("entities", joined.as_str()),
            ("changedSince", since.as_str()),
            ("minorversion", MINOR_VERSION),
        ]);
        let ok = self.core.call(req).await?;
        let malformed = |m: &str| Error::ProviderMalformed { provider: PROVIDER, message: m.to_string() };
        let mut records = Vec::new();
        let responses = ok.body.get("CDCResponse").and_then(Value::as_array).ok_or_else(|| malformed("no CDCResponse"))?;
        for r in responses {
            for qr in r.get("QueryResponse").and_then(Value::as_array).into_iter().flatten() {
                for name in &names {
                    match qr.get(*name) {
                        None | Some(Value::Null) => {}
                        Some(Value::Array(items)) => {
                            for v in items {
                                records.push(normalise_in(entity, name, org_id, v.clone())?);
                            }
                        }
                        Some(_) => return Err(malformed("CDC QueryResponse entry is not an array")),
                    }
                }
            }
        }
        let server_time = ok.body.get("time").and_then(Value::as_str).and_then(parse_time).or(ok.date);
        Ok((records, server_time))
    }

    /// Tax codes' rates: every TaxRate of the realm (one query per 1,000) joined into the codes'
    /// TaxRateDetail entries under [`JOINED_TAX_RATE`]. Done for each page (and single read) on
    /// its own, so nothing is carried between calls: a pull split over several jobs joins each
    /// page afresh. The extra query passes the worker's rate limiter as part of the list call it
    /// belongs to. A rate not found leaves its component's rate, and the code's, absent.
    async fn join_tax_rates(&self, tokens: &TokenSet, org_id: &str, entity: Entity, records: &mut [Record]) -> Result<()> {
        if entity != Entity::TaxRate || records.is_empty() {
            return Ok(());
        }
        let rates = self.tax_rates(tokens, org_id).await?;
        for r in records.iter_mut() {
            join_rates(&mut r.raw, &rates);
        }
        Ok(())
    }

    /// Every TaxRate of the company by Id.
    async fn tax_rates(&self, tokens: &TokenSet, org_id: &str) -> Result<TaxRates> {
        let url = api_url(&self.core.endpoints.api, &[check_realm(org_id)?, "query"])?;
        let mut rates = std::collections::HashMap::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_TAX_RATE_PAGES {
            let keyset = after.as_ref().map(|id| format!(" WHERE Id > '{id}'")).unwrap_or_default();
            let query = format!("SELECT * FROM TaxRate{keyset} ORDERBY Id STARTPOSITION 1 MAXRESULTS {TAX_RATE_PAGE}");
            let req = self
                .bearer(tokens, self.core.http.reqwest().get(url.clone()))
                .query(&[("query", query.as_str()), ("minorversion", MINOR_VERSION)]);
            let ok = self.core.call(req).await?;
            let items = match ok.body.get("QueryResponse").and_then(|q| q.get("TaxRate")) {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(a)) => a.clone(),
                Some(_) => {
                    return Err(Error::ProviderMalformed { provider: PROVIDER, message: "QueryResponse.TaxRate is not an array".into() })
                }
            };
            let full = items.len() >= TAX_RATE_PAGE;
            after = None;
            for v in items {
                if let Some(id) = text(&v, "Id") {
                    after = Some(id.clone());
                    rates.insert(id, v);
                }
            }
            // The keyset goes into a query literal: only an Id of digits moves it on.
            match &after {
                Some(id) if full && !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_digit()) => {}
                _ => break,
            }
        }
        Ok(rates)
    }

    fn entity_from(body: &Value, name: &str) -> Result<Value> {
        body.get(name)
            .cloned()
            .ok_or_else(|| Error::ProviderMalformed { provider: PROVIDER, message: format!("response has no {name} object") })
    }
}

impl AccountingProvider for QuickBooksClient {
    fn provider(&self) -> Provider {
        PROVIDER
    }

    fn supports_pkce(&self) -> bool {
        false
    }

    fn authorize_url(&self, req: &AuthorizeRequest<'_>) -> Result<Url> {
        Ok(oauth::authorize_url(&self.oauth(), req, DEFAULT_SCOPES, " ", false, &[]))
    }

    async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &Url,
        _pkce_verifier: Option<&str>,
        callback: &CallbackParams,
    ) -> Result<Grant> {
        let realm = callback.realm_id.as_deref().ok_or_else(|| Error::InvalidInput("QuickBooks callback has no realmId".into()))?;
        let realm = check_realm(realm)?.to_string();
        let resp = oauth::exchange_code(&self.core.http, PROVIDER, &self.oauth(), code, redirect_uri, None).await?;
        let mut tokens = oauth::token_set(PROVIDER, &resp, None, None, None, Utc::now())?;
        if tokens.scopes.is_empty() {
            tokens.scopes = DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect();
        }
        Ok(Grant { tokens, org_hint: Some(realm) })
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
        // Revoking the refresh token ends the whole grant; the access token alone would not.
        let token = tokens.refresh_token.as_ref().unwrap_or(&tokens.access_token);
        let req = self
            .core
            .http
            .reqwest()
            .post(self.core.endpoints.revoke.clone())
            .basic_auth(&self.core.credentials.client_id, Some(self.core.credentials.client_secret.expose()))
            .header(http::header::ACCEPT, "application/json")
            .json(&json!({ "token": token.expose() }));
        let resp = self.core.send(req).await?;
        oauth::revoke_outcome(PROVIDER, &resp)
    }

    /// The callback's realm, named from its CompanyInfo (which also proves the token reaches it).
    async fn discover_orgs(&self, tokens: &TokenSet, callback: &CallbackParams) -> Result<Vec<Org>> {
        let realm = callback.realm_id.as_deref().ok_or_else(|| Error::InvalidInput("QuickBooks callback has no realmId".into()))?;
        let realm = check_realm(realm)?;
        let url = api_url(&self.core.endpoints.api, &[realm, "companyinfo", realm])?;
        let ok = self.core.call(self.bearer(tokens, self.core.http.reqwest().get(url)).query(&[("minorversion", MINOR_VERSION)])).await?;
        let info = ok.body.get("CompanyInfo");
        Ok(vec![Org {
            provider: PROVIDER,
            id: realm.to_string(),
            name: info.and_then(|i| text(i, "CompanyName")),
            connection_id: None,
            kind: None,
            region: info.and_then(|i| text(i, "Country")),
        }])
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
        collection_of(cursor)?;
        let entity = cursor.entity;
        let url = api_url(&self.core.endpoints.api, &[check_realm(org_id)?, "query"])?;
        let query = list_query(entity, cursor);
        let req =
            self.bearer(tokens, self.core.http.reqwest().get(url)).query(&[("query", query.as_str()), ("minorversion", MINOR_VERSION)]);
        let ok = self.core.call_text(req).await?;
        // Before the page is read: each code is normalised with its rates as it is read.
        let rates = match entity {
            Entity::TaxRate => Some(self.tax_rates(tokens, org_id).await?),
            _ => None,
        };
        read_page_joined(org_id, cursor, &ok.response.body, ok.date, ok.rate_limit, rates.as_ref(), &mut finish)
    }

    /// An entity of several collections is looked for in each in turn: the first that has the id
    /// answers. A retryable failure is returned at once rather than taken for "not in this one".
    async fn get(&self, tokens: &TokenSet, org_id: &str, entity: Entity, id: &str) -> Result<Record> {
        let mut last = None;
        for (name, segment) in collections(entity) {
            let Some(their_id) = provider_id(name, id) else { continue };
            let url = api_url(&self.core.endpoints.api, &[check_realm(org_id)?, segment, their_id])?;
            let req = self.bearer(tokens, self.core.http.reqwest().get(url)).query(&[("minorversion", MINOR_VERSION)]);
            match self.core.call(req).await {
                Ok(ok) => {
                    let mut r = normalise_in(entity, name, org_id, Self::entity_from(&ok.body, name)?)?;
                    self.join_tax_rates(tokens, org_id, entity, std::slice::from_mut(&mut r)).await?;
                    return Ok(r);
                }
                Err(e) if e.is_retryable() => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::NotFound(format!("{entity} {id} is of none of its QuickBooks collections"))))
    }

    async fn create(&self, tokens: &TokenSet, org_id: &str, entity: Entity, payload: &Value, idempotency_key: &str) -> Result<Record> {
        if idempotency_key.is_empty() {
            return Err(Error::InvalidInput("idempotency key is empty".into()));
        }
        let (name, segment) = collection_at(entity, create_collection(entity, payload))?;
        let url = api_url(&self.core.endpoints.api, &[check_realm(org_id)?, segment])?;
        let req = self
            .bearer(tokens, self.core.http.reqwest().post(url))
            .query(&[("requestid", idempotency_key), ("minorversion", MINOR_VERSION)])
            .json(payload);
        let ok = self.core.call(req).await?;
        normalise_in(entity, name, org_id, Self::entity_from(&ok.body, name)?)
    }

    /// Every change names the SyncToken it is based on, and QuickBooks refuses a stale one (Fault
    /// 5010), so a change never overwrites an edit it did not see. `requestid` makes a retry replay
    /// the first answer.
    async fn change(
        &self,
        tokens: &TokenSet,
        org_id: &str,
        entity: Entity,
        change: &Change<'_>,
        idempotency_key: &str,
    ) -> Result<Option<Record>> {
        if idempotency_key.is_empty() {
            return Err(Error::InvalidInput("idempotency key is empty".into()));
        }
        let Some(version) = change.version.filter(|v| !v.is_empty()) else {
            return Err(Error::InvalidInput("a QuickBooks change needs the SyncToken it is based on".into()));
        };
        let (name, segment) = collection_at(entity, change.collection)?;
        let url = api_url(&self.core.endpoints.api, &[check_realm(org_id)?, segment])?;
        let mut query = vec![("requestid", idempotency_key), ("minorversion", MINOR_VERSION)];
        let body = match change.kind {
            ChangeKind::Update => {
                let mut b = match change.body {
                    Value::Object(m) => Value::Object(m.clone()),
                    _ => return Err(Error::InvalidInput("an update body must be an object".into())),
                };
                b["sparse"] = Value::Bool(true);
                b["Id"] = json!(change.id);
                b["SyncToken"] = json!(version);
                b
            }
            // Payments and bill payments are voided by a sparse update with `include=void` (Intuit's
            // "Void a payment" / "Void a bill payment"), not `operation=void`.
            ChangeKind::Void if matches!(entity, Entity::Payment | Entity::BillPayment) => {
                query.push(("operation", "update"));
                query.push(("include", "void"));
                json!({"Id": change.id, "SyncToken": version, "sparse": true})
            }
            ChangeKind::Void | ChangeKind::Delete => {
                query.push(("operation", if change.kind == ChangeKind::Void { "void" } else { "delete" }));
                json!({"Id": change.id, "SyncToken": version})
            }
        };
        let req = self.bearer(tokens, self.core.http.reqwest().post(url)).query(&query).json(&body);
        let ok = self.core.call(req).await?;
        let v = Self::entity_from(&ok.body, name)?;
        // A deletion answers `{"Id", "status": "Deleted"}`, not the record.
        if change.kind == ChangeKind::Delete || v.get("status").and_then(Value::as_str).is_some_and(|s| s.eq_ignore_ascii_case("deleted")) {
            return Ok(None);
        }
        normalise_in(entity, name, org_id, v).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn list_query_filters_orders_and_pages() {
        let c = Cursor::start(PROVIDER, Entity::Contact).with_page_size(50);
        assert_eq!(list_query(Entity::Contact, &c), "SELECT * FROM Customer ORDERBY Id STARTPOSITION 1 MAXRESULTS 50");
        let mut c = Cursor::since(PROVIDER, Entity::Invoice, Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()).with_page_size(10);
        c.position = 21;
        assert_eq!(
            list_query(Entity::Invoice, &c),
            "SELECT * FROM Invoice WHERE MetaData.LastUpdatedTime > '2026-01-02T03:04:05+00:00' ORDERBY Id STARTPOSITION 21 MAXRESULTS 10"
        );
        c.position = 1;
        c.after_id = Some("130".into());
        assert_eq!(
            list_query(Entity::Invoice, &c),
            "SELECT * FROM Invoice WHERE MetaData.LastUpdatedTime > '2026-01-02T03:04:05+00:00' AND Id > '130' ORDERBY Id STARTPOSITION 1 MAXRESULTS 10"
        );
    }

    /// Credit notes are two QuickBooks entities: the pass reads CreditMemo to its end, then
    /// VendorCredit from its first page, under the first page's start time; only then does the pass end.
    #[test]
    fn credit_notes_walk_credit_memos_then_vendor_credits_in_one_pass() {
        let t0 = "2026-01-02T03:04:05-08:00";
        let c = Cursor::start(PROVIDER, Entity::CreditNote).with_page_size(2);
        let body = |name: &str, ids: &[&str], time: &str| {
            let items: Vec<Value> = ids.iter().map(|id| json!({"Id": id, "TotalAmt": 1})).collect();
            json!({"QueryResponse": {name: items}, "time": time})
        };
        let p1 = parse_page("934", &c, body("CreditMemo", &["3", "5"], t0), None, RateLimitInfo::default()).unwrap();
        assert!(p1.has_more && p1.next_cursor.collection == 0);
        let p2 =
            parse_page("934", &p1.next_cursor, body("CreditMemo", &["8"], "2026-01-02T04:00:00-08:00"), None, RateLimitInfo::default())
                .unwrap();
        assert!(p2.has_more, "VendorCredit is still to read");
        let n = &p2.next_cursor;
        assert_eq!((n.collection, n.position, n.after_id.as_deref(), n.pass_started_at), (1, 1, None, parse_time(t0)));
        assert_eq!(list_query(Entity::CreditNote, n), "SELECT * FROM VendorCredit ORDERBY Id STARTPOSITION 1 MAXRESULTS 2");
        // A page of the wrong collection's key is an empty page, not someone else's records.
        let p3 = parse_page("934", n, body("CreditMemo", &["9"], "2026-01-02T05:00:00-08:00"), None, RateLimitInfo::default()).unwrap();
        assert!(p3.records.is_empty() && !p3.has_more);
        let p3 = parse_page("934", n, body("VendorCredit", &["4"], "2026-01-02T05:00:00-08:00"), None, RateLimitInfo::default()).unwrap();
        assert_eq!(p3.records.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["4"]);
        let end = &p3.next_cursor;
        assert!(!p3.has_more);
        assert_eq!((end.collection, end.modified_since), (0, parse_time(t0).map(|t| t - chrono::Duration::seconds(5))));
        // A cursor past the entity's collections is refused.
        let mut bad = n.clone();
        bad.collection = 2;
        assert!(parse_page("934", &bad, body("VendorCredit", &[], t0), None, RateLimitInfo::default()).is_err());
    }

    /// Tracking categories are Classes, then Departments, each read with its inactive records; a
    /// Department is keyed by its prefixed id while the keyset stays QuickBooks' Id. Tax codes are
    /// read whole on every pass (their joined rates change without them).
    #[test]
    fn departments_are_read_after_classes_under_their_own_ids() {
        let c = Cursor::start(PROVIDER, Entity::TrackingCategory).with_page_size(2);
        assert_eq!(
            list_query(Entity::TrackingCategory, &c),
            "SELECT * FROM Class WHERE Active IN (true, false) ORDERBY Id STARTPOSITION 1 MAXRESULTS 2"
        );
        let body = |name: &str, ids: &[&str]| {
            let items: Vec<Value> = ids.iter().map(|id| json!({"Id": id, "Name": "n"})).collect();
            json!({"QueryResponse": {name: items}, "time": "2026-01-02T03:04:05-08:00"})
        };
        let p1 = parse_page("934", &c, body("Class", &["3"]), None, RateLimitInfo::default()).unwrap();
        let d = &p1.next_cursor;
        assert_eq!(d.collection, 1);
        let p2 = parse_page("934", d, body("Department", &["3", "4"]), None, RateLimitInfo::default()).unwrap();
        assert_eq!(p2.records.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["department-3", "department-4"]);
        assert_eq!(p2.next_cursor.after_id.as_deref(), Some("4"), "the keyset is the provider's Id");
        assert_eq!(
            list_query(Entity::TrackingCategory, &p2.next_cursor),
            "SELECT * FROM Department WHERE Active IN (true, false) AND Id > '4' ORDERBY Id STARTPOSITION 1 MAXRESULTS 2"
        );
        assert_eq!((provider_id("Department", "department-4"), provider_id("Class", "department-4")), (Some("4"), None));
        assert_eq!((provider_id("Class", "4"), provider_id("Department", "4")), (Some("4"), None));
        assert_eq!(record_id("department", "7"), "department-7", "webhooks spell the entity in lower case");
        let since = Cursor::since(PROVIDER, Entity::TaxRate, Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()).with_page_size(5);
        assert_eq!(list_query(Entity::TaxRate, &since), "SELECT * FROM TaxCode ORDERBY Id STARTPOSITION 1 MAXRESULTS 5");
    }

    #[test]
    fn realm_must_be_digits() {
        assert!(check_realm("9341452000000001").is_ok());
        for bad in ["", "93/41", "../x", "12 3", "abc"] {
            assert!(check_realm(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn records_normalise() {
        let inv = json!({"Id": "130", "DocNumber": "1037", "TotalAmt": 362.07, "Balance": 0,
            "CustomerRef": {"value": "3", "name": "Cool Cars"}, "CurrencyRef": {"value": "USD"},
            "MetaData": {"LastUpdatedTime": "2026-02-01T10:00:00-07:00"}});
        let r = normalise(Entity::Invoice, "934", inv).unwrap();
        assert_eq!((r.id.as_str(), r.number.as_deref(), r.name.as_deref()), ("130", Some("1037"), Some("Cool Cars")));
        assert_eq!((r.amount.as_deref(), r.currency.as_deref(), r.status.as_deref()), (Some("362.07"), Some("USD"), Some("Paid")));
        assert_eq!(r.updated_at, Some(Utc.with_ymd_and_hms(2026, 2, 1, 17, 0, 0).unwrap()));
        let c = normalise(Entity::Contact, "934", json!({"Id": 5, "DisplayName": "Amy", "Active": false})).unwrap();
        assert_eq!((c.id.as_str(), c.name.as_deref(), c.status.as_deref()), ("5", Some("Amy"), Some("Inactive")));
        assert!(normalise(Entity::Payment, "934", json!({"TotalAmt": 1})).is_err());
    }
}
