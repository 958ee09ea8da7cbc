//! Where each field of a write goes in each provider's JSON, as data: one table per provider and
//! entity. `check` resolves and checks the record first; `document_body` and `contact_body` only
//! place what it resolved.
//!
//! Sources: QuickBooks Online API v3 (Invoice, Bill, Customer: `CustomerRef`/`VendorRef`, `Line`
//! with `DetailType` and its detail object, `TxnDate`, `DueDate`, `DocNumber`, `CurrencyRef`);
//! Xero Accounting API (`/Invoices` with `Type` ACCREC/ACCPAY, `LineItems` with `AccountCode`,
//! `ItemCode`, `TaxType`, `LineAmount`; `/Contacts`); Zoho Books API v3 (`customer_id`/`vendor_id`,
//! `line_items` with `rate`, `account_id`, `item_id`, `tax_id`; `contact_persons`).

use serde_json::{json, Map, Value};

use crate::books::DocumentStatus;
use crate::providers::client::ChangeKind;
use crate::providers::model::Entity;
use crate::writes::{Action, BankWriteKind, InputStatus, JournalStatus};
use crate::Provider;

/// A JSON path of object keys; a key of digits inside an array position (`Phones.0.PhoneNumber`).
pub type Path = &'static [&'static str];

/// How a provider names a referenced record on a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefBy {
    /// The provider's id (QuickBooks, Zoho).
    Id,
    /// The record's code (Xero's `AccountCode`, `ItemCode`).
    Code,
}

/// Where a line's fields go. QuickBooks puts them in a detail object named by `DetailType`.
#[derive(Debug)]
pub struct Placement {
    /// (`DetailType` value, the detail object's key); None: on the line itself.
    pub detail: Option<(&'static str, &'static str)>,
    pub quantity: Option<&'static str>,
    pub unit_price: Option<&'static str>,
    pub item: Option<(Path, RefBy)>,
    pub account: Option<(Path, RefBy)>,
    pub tax_code: Option<Path>,
}

#[derive(Debug)]
pub struct LineWire {
    pub description: &'static str,
    /// The line's amount before tax, where the provider takes one (Zoho computes it).
    pub amount: Option<&'static str>,
    /// A line with an item.
    pub with_item: Placement,
    /// A line without an item (None: the same placement as with one).
    pub without_item: Option<Placement>,
    /// Lines without an item must name an account.
    pub account_required: bool,
}

#[derive(Debug)]
pub struct DocumentWire {
    pub contact: Path,
    /// None: the provider numbers the document itself (a `number` is refused).
    pub number: Option<Path>,
    pub number_required: bool,
    /// None: the provider has no reference field on this document.
    pub reference: Option<Path>,
    pub issue_date: Path,
    /// None: the document has no due date (credit notes).
    pub due_date: Option<Path>,
    /// None: the contact's currency decides (a `currency` is checked against it, not sent).
    pub currency: Option<Path>,
    pub status: StatusWire,
    /// Fields every body of this entity carries (Xero's `Type`).
    pub constants: &'static [(Path, &'static str)],
    pub lines: &'static str,
    pub line: LineWire,
}

/// Which statuses a write may name, and how they are sent.
#[derive(Debug)]
pub enum StatusWire {
    /// The provider has no such states on this document (a status is refused).
    None,
    /// Where the status goes and the provider's word for each one it takes on a write.
    Field(Path, &'static [(InputStatus, &'static str)]),
    /// A new document is in this state anyway; naming it sends nothing.
    Implicit(&'static [InputStatus]),
}

#[derive(Debug)]
pub struct ContactWire {
    pub name: Path,
    pub email: Option<Path>,
    pub phone: Option<Path>,
    /// Set beside a phone (Xero's `PhoneType`).
    pub phone_constants: &'static [(Path, &'static str)],
    pub tax_number: Option<Path>,
    pub currency: Option<Path>,
    pub constants: &'static [(Path, &'static str)],
}

/// Where what a payment pays goes.
#[derive(Debug)]
pub enum AppliedWire {
    /// One document per payment (Xero): its id at this path; the payment's amount is what it pays.
    Single(Path),
    /// A list under `key`, each element the document's id and the amount applied, plus constants.
    List { key: &'static str, id: Path, amount: Path, constants: &'static [(Path, &'static str)] },
}

#[derive(Debug)]
pub struct PaymentWire {
    /// None: the provider takes the contact from the document (Xero).
    pub contact: Option<Path>,
    pub amount: Path,
    pub date: Path,
    pub account: (Path, RefBy),
    pub account_required: bool,
    pub reference: Option<Path>,
    pub applied: AppliedWire,
    pub constants: &'static [(Path, &'static str)],
}

const QBO_PAYMENT: PaymentWire = PaymentWire {
    contact: Some(&["CustomerRef", "value"]),
    amount: &["TotalAmt"],
    date: &["TxnDate"],
    // Without one, QuickBooks puts the money in Undeposited Funds.
    account: (&["DepositToAccountRef", "value"], RefBy::Id),
    account_required: false,
    reference: Some(&["PaymentRefNum"]),
    applied: AppliedWire::List {
        key: "Line",
        id: &["LinkedTxn", "0", "TxnId"],
        amount: &["Amount"],
        constants: &[(&["LinkedTxn", "0", "TxnType"], "Invoice")],
    },
    constants: &[],
};

const XERO_PAYMENT: PaymentWire = PaymentWire {
    contact: None,
    amount: &["Amount"],
    date: &["Date"],
    account: (&["Account", "Code"], RefBy::Code),
    account_required: true,
    reference: Some(&["Reference"]),
    applied: AppliedWire::Single(&["Invoice", "InvoiceID"]),
    constants: &[],
};

const ZOHO_PAYMENT: PaymentWire = PaymentWire {
    contact: Some(&["customer_id"]),
    amount: &["amount"],
    date: &["date"],
    account: (&["account_id"], RefBy::Id),
    account_required: false,
    reference: Some(&["reference_number"]),
    applied: AppliedWire::List { key: "invoices", id: &["invoice_id"], amount: &["amount_applied"], constants: &[] },
    // Zoho requires a payment mode; the common model has none (unconfirmed which modes an org lacks).
    constants: &[(&["payment_mode"], "banktransfer")],
};

/// QuickBooks BillPayment: a cheque from a bank account (`PayType: Check` with
/// `CheckPayment.BankAccountRef`, required by Intuit for that type); card payments
/// (`CreditCardPayment.CCAccountRef`) are not offered by the common model.
const QBO_BILL_PAYMENT: PaymentWire = PaymentWire {
    contact: Some(&["VendorRef", "value"]),
    account: (&["CheckPayment", "BankAccountRef", "value"], RefBy::Id),
    account_required: true,
    reference: Some(&["DocNumber"]),
    applied: AppliedWire::List {
        key: "Line",
        id: &["LinkedTxn", "0", "TxnId"],
        amount: &["Amount"],
        constants: &[(&["LinkedTxn", "0", "TxnType"], "Bill")],
    },
    constants: &[(&["PayType"], "Check")],
    ..QBO_PAYMENT
};

/// Zoho vendor payments: `vendor_id`, `paid_through_account_id`, `bills` with `amount_applied`.
const ZOHO_BILL_PAYMENT: PaymentWire = PaymentWire {
    contact: Some(&["vendor_id"]),
    account: (&["paid_through_account_id"], RefBy::Id),
    applied: AppliedWire::List { key: "bills", id: &["bill_id"], amount: &["amount_applied"], constants: &[] },
    ..ZOHO_PAYMENT
};

/// Where a payment's fields go: `entity` is `payment` (received) or `bill_payment` (made). Xero
/// takes both at `/Payments`, telling them apart by the document paid (an ACCPAY invoice is a bill).
pub fn payment(provider: Provider, entity: Entity) -> &'static PaymentWire {
    match (provider, entity) {
        (Provider::QuickBooks, Entity::BillPayment) => &QBO_BILL_PAYMENT,
        (Provider::QuickBooks, _) => &QBO_PAYMENT,
        (Provider::Xero, _) => &XERO_PAYMENT,
        (Provider::Zoho, Entity::BillPayment) => &ZOHO_BILL_PAYMENT,
        (Provider::Zoho, _) => &ZOHO_PAYMENT,
    }
}

/// How void and delete reach the provider, and from which states the provider allows them
/// (None: the provider decides; its refusal is reported).
#[derive(Debug)]
pub struct Lifecycle {
    pub void: Option<(ChangeKind, &'static [(Path, &'static str)])>,
    pub void_from: Option<&'static [DocumentStatus]>,
    pub delete: Option<(ChangeKind, &'static [(Path, &'static str)])>,
    pub delete_from: Option<&'static [DocumentStatus]>,
}

// ---- QuickBooks Online ----------------------------------------------------------------------

const QBO_SALES_LINE: LineWire = LineWire {
    description: "Description",
    amount: Some("Amount"),
    with_item: Placement {
        detail: Some(("SalesItemLineDetail", "SalesItemLineDetail")),
        quantity: Some("Qty"),
        unit_price: Some("UnitPrice"),
        item: Some((&["ItemRef", "value"], RefBy::Id)),
        // A sales line's account is its item's income account: it cannot be set on the line.
        account: None,
        tax_code: Some(&["TaxCodeRef", "value"]),
    },
    without_item: None,
    account_required: false,
};

const QBO_PURCHASE_LINE: LineWire = LineWire {
    description: "Description",
    amount: Some("Amount"),
    with_item: Placement {
        detail: Some(("ItemBasedExpenseLineDetail", "ItemBasedExpenseLineDetail")),
        quantity: Some("Qty"),
        unit_price: Some("UnitPrice"),
        item: Some((&["ItemRef", "value"], RefBy::Id)),
        account: None,
        tax_code: Some(&["TaxCodeRef", "value"]),
    },
    without_item: Some(Placement {
        detail: Some(("AccountBasedExpenseLineDetail", "AccountBasedExpenseLineDetail")),
        quantity: None,
        unit_price: None,
        item: None,
        account: Some((&["AccountRef", "value"], RefBy::Id)),
        tax_code: Some(&["TaxCodeRef", "value"]),
    }),
    account_required: true,
};

const QBO_INVOICE: DocumentWire = DocumentWire {
    contact: &["CustomerRef", "value"],
    number: Some(&["DocNumber"]),
    number_required: false,
    reference: None,
    issue_date: &["TxnDate"],
    due_date: Some(&["DueDate"]),
    currency: Some(&["CurrencyRef", "value"]),
    // QuickBooks has no draft or approval state on invoices and bills.
    status: StatusWire::None,
    constants: &[],
    lines: "Line",
    line: QBO_SALES_LINE,
};

const QBO_BILL: DocumentWire = DocumentWire { contact: &["VendorRef", "value"], line: QBO_PURCHASE_LINE, ..QBO_INVOICE };

const QBO_CONTACT: ContactWire = ContactWire {
    name: &["DisplayName"],
    email: Some(&["PrimaryEmailAddr", "Address"]),
    phone: Some(&["PrimaryPhone", "FreeFormNumber"]),
    phone_constants: &[],
    // Customer has no general tax-number field (ResaleNum is a resale certificate).
    tax_number: None,
    currency: Some(&["CurrencyRef", "value"]),
    constants: &[],
};

// ---- Xero -------------------------------------------------------------------------------------

const XERO_LINE: LineWire = LineWire {
    description: "Description",
    amount: Some("LineAmount"),
    with_item: Placement {
        detail: None,
        quantity: Some("Quantity"),
        unit_price: Some("UnitAmount"),
        item: Some((&["ItemCode"], RefBy::Code)),
        account: Some((&["AccountCode"], RefBy::Code)),
        tax_code: Some(&["TaxType"]),
    },
    without_item: None,
    // Xero takes a draft without accounts but refuses to approve one; required here for all, so
    // a draft approved later never fails for it.
    account_required: true,
};

const XERO_STATUSES: &[(InputStatus, &str)] =
    &[(InputStatus::Draft, "DRAFT"), (InputStatus::AwaitingApproval, "SUBMITTED"), (InputStatus::Open, "AUTHORISED")];

const XERO_INVOICE: DocumentWire = DocumentWire {
    contact: &["Contact", "ContactID"],
    number: Some(&["InvoiceNumber"]),
    number_required: false,
    reference: Some(&["Reference"]),
    issue_date: &["Date"],
    due_date: Some(&["DueDate"]),
    currency: Some(&["CurrencyCode"]),
    status: StatusWire::Field(&["Status"], XERO_STATUSES),
    constants: &[(&["Type"], "ACCREC"), (&["LineAmountTypes"], "Exclusive")],
    lines: "LineItems",
    line: XERO_LINE,
};

const XERO_BILL: DocumentWire = DocumentWire { constants: &[(&["Type"], "ACCPAY"), (&["LineAmountTypes"], "Exclusive")], ..XERO_INVOICE };

const XERO_CONTACT: ContactWire = ContactWire {
    name: &["Name"],
    email: Some(&["EmailAddress"]),
    phone: Some(&["Phones", "0", "PhoneNumber"]),
    phone_constants: &[(&["Phones", "0", "PhoneType"], "DEFAULT")],
    tax_number: Some(&["TaxNumber"]),
    currency: Some(&["DefaultCurrency"]),
    constants: &[],
};

// ---- Zoho Books -------------------------------------------------------------------------------

const ZOHO_LINE: LineWire = LineWire {
    description: "description",
    amount: None,
    with_item: Placement {
        detail: None,
        quantity: Some("quantity"),
        unit_price: Some("rate"),
        item: Some((&["item_id"], RefBy::Id)),
        account: Some((&["account_id"], RefBy::Id)),
        tax_code: Some(&["tax_id"]),
    },
    without_item: None,
    account_required: false,
};

const ZOHO_INVOICE: DocumentWire = DocumentWire {
    contact: &["customer_id"],
    // Zoho numbers invoices itself unless auto-numbering is turned off for the org.
    number: None,
    number_required: false,
    reference: Some(&["reference_number"]),
    issue_date: &["date"],
    due_date: Some(&["due_date"]),
    // An invoice is in its customer's currency.
    currency: None,
    // A created invoice is a draft; sending it (its open state) is a separate action.
    status: StatusWire::Implicit(&[InputStatus::Draft]),
    constants: &[],
    lines: "line_items",
    line: ZOHO_LINE,
};

const ZOHO_BILL: DocumentWire = DocumentWire {
    contact: &["vendor_id"],
    number: Some(&["bill_number"]),
    number_required: true,
    line: LineWire { account_required: true, ..ZOHO_LINE },
    ..ZOHO_INVOICE
};

const ZOHO_CONTACT_CUSTOMER: ContactWire = ContactWire {
    name: &["contact_name"],
    email: Some(&["contact_persons", "0", "email"]),
    phone: Some(&["contact_persons", "0", "phone"]),
    phone_constants: &[],
    // Tax numbers are edition-specific fields in Zoho (gst_no, vat_reg_no, tax_reg_no).
    tax_number: None,
    // Zoho names a contact's currency by its currency_id, not its code.
    currency: None,
    constants: &[(&["contact_type"], "customer")],
};

// ---- Credit notes ---------------------------------------------------------------------------
// A customer's credit note is written like an invoice and a supplier's like a bill, without a due
// date: QuickBooks CreditMemo (`CustomerRef`, sales lines) and VendorCredit (`VendorRef`, expense
// lines); Xero CreditNotes with `Type` ACCRECCREDIT or ACCPAYCREDIT (`CreditNoteNumber`); Zoho
// creditnotes (`customer_id`; Zoho numbers them) and vendorcredits (`vendor_id`,
// `vendor_credit_number`). Sources: the providers' API references for these objects.

const QBO_SALES_CREDIT: DocumentWire = DocumentWire { due_date: None, ..QBO_INVOICE };
const QBO_PURCHASE_CREDIT: DocumentWire = DocumentWire { due_date: None, ..QBO_BILL };

const XERO_SALES_CREDIT: DocumentWire = DocumentWire {
    number: Some(&["CreditNoteNumber"]),
    due_date: None,
    constants: &[(&["Type"], "ACCRECCREDIT"), (&["LineAmountTypes"], "Exclusive")],
    ..XERO_INVOICE
};
const XERO_PURCHASE_CREDIT: DocumentWire =
    DocumentWire { constants: &[(&["Type"], "ACCPAYCREDIT"), (&["LineAmountTypes"], "Exclusive")], ..XERO_SALES_CREDIT };

const ZOHO_SALES_CREDIT: DocumentWire = DocumentWire {
    due_date: None,
    // A created credit note is open (unconfirmed whether an org can create drafts through the API).
    status: StatusWire::Implicit(&[InputStatus::Open]),
    ..ZOHO_INVOICE
};
const ZOHO_PURCHASE_CREDIT: DocumentWire = DocumentWire {
    contact: &["vendor_id"],
    // Zoho numbers vendor credits unless the app names one (unconfirmed: auto-numbering per org).
    number: Some(&["vendor_credit_number"]),
    number_required: false,
    line: LineWire { account_required: true, ..ZOHO_LINE },
    ..ZOHO_SALES_CREDIT
};

/// Where a credit note's fields go: `purchase` is a supplier's credit (a credit from a supplier),
/// else a customer's.
pub fn credit_note(provider: Provider, purchase: bool) -> &'static DocumentWire {
    match (provider, purchase) {
        (Provider::QuickBooks, false) => &QBO_SALES_CREDIT,
        (Provider::QuickBooks, true) => &QBO_PURCHASE_CREDIT,
        (Provider::Xero, false) => &XERO_SALES_CREDIT,
        (Provider::Xero, true) => &XERO_PURCHASE_CREDIT,
        (Provider::Zoho, false) => &ZOHO_SALES_CREDIT,
        (Provider::Zoho, true) => &ZOHO_PURCHASE_CREDIT,
    }
}

// ---- Manual journals --------------------------------------------------------------------------

/// How a journal line says its side.
#[derive(Debug)]
pub enum SideWire {
    /// One signed amount: a debit positive, a credit negative (Xero `LineAmount`).
    Signed(Path),
    /// A positive amount and a side word (QuickBooks `PostingType` Debit/Credit, Zoho
    /// `debit_or_credit`).
    Typed { amount: Path, side: Path, debit: &'static str, credit: &'static str },
}

#[derive(Debug)]
pub struct JournalWire {
    pub date: Path,
    pub narration: Path,
    /// Xero refuses a manual journal without a narration.
    pub narration_required: bool,
    pub reference: Option<Path>,
    /// None: the journal is in the org's base currency (a `currency` is refused).
    pub currency: Option<Path>,
    pub status: Option<(Path, &'static [(JournalStatus, &'static str)])>,
    pub constants: &'static [(Path, &'static str)],
    pub lines: &'static str,
    pub line_account: (Path, RefBy),
    pub line_description: Path,
    pub line_side: SideWire,
    pub line_tax_code: Option<Path>,
    pub line_constants: &'static [(Path, &'static str)],
}

/// QuickBooks JournalEntry: `Line` with `JournalEntryLineDetail` (`PostingType`, `AccountRef`),
/// `PrivateNote`, `DocNumber` (Intuit's API reference, JournalEntry).
const QBO_JOURNAL: JournalWire = JournalWire {
    date: &["TxnDate"],
    narration: &["PrivateNote"],
    narration_required: false,
    reference: Some(&["DocNumber"]),
    currency: Some(&["CurrencyRef", "value"]),
    status: None,
    constants: &[],
    lines: "Line",
    line_account: (&["JournalEntryLineDetail", "AccountRef", "value"], RefBy::Id),
    line_description: &["Description"],
    line_side: SideWire::Typed { amount: &["Amount"], side: &["JournalEntryLineDetail", "PostingType"], debit: "Debit", credit: "Credit" },
    line_tax_code: Some(&["JournalEntryLineDetail", "TaxCodeRef", "value"]),
    line_constants: &[(&["DetailType"], "JournalEntryLineDetail")],
};

/// Xero ManualJournals: `Narration` (required), `JournalLines` with signed `LineAmount` and
/// `AccountCode`, `Status` DRAFT or POSTED; in the org's base currency (xero_accounting.yaml,
/// ManualJournal).
const XERO_JOURNAL: JournalWire = JournalWire {
    date: &["Date"],
    narration: &["Narration"],
    narration_required: true,
    reference: None,
    currency: None,
    status: Some((&["Status"], &[(JournalStatus::Draft, "DRAFT"), (JournalStatus::Posted, "POSTED")])),
    constants: &[(&["LineAmountTypes"], "NoTax")],
    lines: "JournalLines",
    line_account: (&["AccountCode"], RefBy::Code),
    line_description: &["Description"],
    line_side: SideWire::Signed(&["LineAmount"]),
    line_tax_code: Some(&["TaxType"]),
    line_constants: &[],
};

/// Zoho journals: `journal_date`, `reference_number`, `notes`, `line_items` with `account_id`,
/// `debit_or_credit` and `amount` (Zoho Books API, Journals).
const ZOHO_JOURNAL: JournalWire = JournalWire {
    date: &["journal_date"],
    narration: &["notes"],
    narration_required: false,
    reference: Some(&["reference_number"]),
    // Zoho names a journal's currency by its currency_id, not its code.
    currency: None,
    status: None,
    constants: &[],
    lines: "line_items",
    line_account: (&["account_id"], RefBy::Id),
    line_description: &["description"],
    line_side: SideWire::Typed { amount: &["amount"], side: &["debit_or_credit"], debit: "debit", credit: "credit" },
    line_tax_code: Some(&["tax_id"]),
    line_constants: &[],
};

pub fn journal(provider: Provider) -> &'static JournalWire {
    match provider {
        Provider::QuickBooks => &QBO_JOURNAL,
        Provider::Xero => &XERO_JOURNAL,
        Provider::Zoho => &ZOHO_JOURNAL,
    }
}

// ---- Bank transactions and expenses ----------------------------------------------------------

/// Where a bank transaction's lines go.
#[derive(Debug)]
pub enum BankLines {
    /// A list under `key`: each line's description, amount before tax, account and tax code, plus
    /// constants (QuickBooks' DetailType) and, where the provider names the payer on the line, the
    /// contact (QuickBooks Deposit).
    List {
        key: &'static str,
        description: Path,
        amount: Path,
        account: (Path, RefBy),
        tax_code: Option<Path>,
        constants: &'static [(Path, &'static str)],
        contact: Option<Path>,
    },
    /// One amount from one account (Zoho's deposit: `from_account_id` and `amount`).
    Single { description: Path, amount: Path, account: (Path, RefBy) },
}

#[derive(Debug)]
pub struct BankWire {
    pub constants: &'static [(Path, &'static str)],
    pub bank_account: (Path, RefBy),
    /// Where the payee or payer goes on the transaction itself (None: on the lines, or nowhere).
    pub contact: Option<Path>,
    /// Xero needs one.
    pub contact_required: bool,
    /// QuickBooks names the contact's kind beside its id (`EntityRef.type` Vendor or Customer).
    pub contact_type: Option<Path>,
    pub date: Path,
    pub reference: Option<Path>,
    pub currency: Option<Path>,
    pub lines: BankLines,
}

/// QuickBooks Purchase paid from a bank account (`PaymentType` Cash; `AccountRef` the bank,
/// `EntityRef` the payee, account-based expense lines).
const QBO_SPEND: BankWire = BankWire {
    constants: &[(&["PaymentType"], "Cash")],
    bank_account: (&["AccountRef", "value"], RefBy::Id),
    contact: Some(&["EntityRef", "value"]),
    contact_required: false,
    contact_type: Some(&["EntityRef", "type"]),
    date: &["TxnDate"],
    reference: Some(&["DocNumber"]),
    currency: Some(&["CurrencyRef", "value"]),
    lines: BankLines::List {
        key: "Line",
        description: &["Description"],
        amount: &["Amount"],
        account: (&["AccountBasedExpenseLineDetail", "AccountRef", "value"], RefBy::Id),
        tax_code: Some(&["AccountBasedExpenseLineDetail", "TaxCodeRef", "value"]),
        constants: &[(&["DetailType"], "AccountBasedExpenseLineDetail")],
        contact: None,
    },
};

/// QuickBooks Deposit into `DepositToAccountRef`; each line names the account the money came from
/// and the payer (`DepositLineDetail.Entity`). A Deposit has no DocNumber in Intuit's reference.
const QBO_RECEIVE: BankWire = BankWire {
    constants: &[],
    bank_account: (&["DepositToAccountRef", "value"], RefBy::Id),
    contact: None,
    contact_required: false,
    contact_type: None,
    date: &["TxnDate"],
    reference: None,
    currency: Some(&["CurrencyRef", "value"]),
    lines: BankLines::List {
        key: "Line",
        description: &["Description"],
        amount: &["Amount"],
        account: (&["DepositLineDetail", "AccountRef", "value"], RefBy::Id),
        tax_code: Some(&["DepositLineDetail", "TaxCodeRef", "value"]),
        constants: &[(&["DetailType"], "DepositLineDetail")],
        contact: Some(&["DepositLineDetail", "Entity", "value"]),
    },
};

/// Xero BankTransactions (`Type` SPEND or RECEIVE, `BankAccount`, a required `Contact`,
/// `LineItems` like an invoice's).
const XERO_SPEND: BankWire = BankWire {
    constants: &[(&["Type"], "SPEND"), (&["LineAmountTypes"], "Exclusive")],
    bank_account: (&["BankAccount", "Code"], RefBy::Code),
    contact: Some(&["Contact", "ContactID"]),
    contact_required: true,
    contact_type: None,
    date: &["Date"],
    reference: Some(&["Reference"]),
    currency: Some(&["CurrencyCode"]),
    lines: BankLines::List {
        key: "LineItems",
        description: &["Description"],
        amount: &["LineAmount"],
        account: (&["AccountCode"], RefBy::Code),
        tax_code: Some(&["TaxType"]),
        constants: &[],
        contact: None,
    },
};
const XERO_RECEIVE: BankWire = BankWire { constants: &[(&["Type"], "RECEIVE"), (&["LineAmountTypes"], "Exclusive")], ..XERO_SPEND };

/// Zoho expenses: `paid_through_account_id` (the bank), `vendor_id`, itemised `line_items` with
/// `account_id` and `amount` (Zoho Books API, Expenses).
const ZOHO_SPEND: BankWire = BankWire {
    constants: &[],
    bank_account: (&["paid_through_account_id"], RefBy::Id),
    contact: Some(&["vendor_id"]),
    contact_required: false,
    contact_type: None,
    date: &["date"],
    reference: Some(&["reference_number"]),
    // Zoho names currencies by currency_id.
    currency: None,
    lines: BankLines::List {
        key: "line_items",
        description: &["description"],
        amount: &["amount"],
        account: (&["account_id"], RefBy::Id),
        tax_code: Some(&["tax_id"]),
        constants: &[],
        contact: None,
    },
};

/// Zoho bank transactions of type `deposit`: `to_account_id` (the bank), `from_account_id` and
/// one `amount` (Zoho Books API, Bank Transactions; fields unconfirmed against a live org).
const ZOHO_RECEIVE: BankWire = BankWire {
    constants: &[(&["transaction_type"], "deposit")],
    bank_account: (&["to_account_id"], RefBy::Id),
    contact: Some(&["customer_id"]),
    contact_required: false,
    contact_type: None,
    date: &["date"],
    reference: Some(&["reference_number"]),
    currency: None,
    lines: BankLines::Single { description: &["description"], amount: &["amount"], account: (&["from_account_id"], RefBy::Id) },
};

pub fn bank_transaction(provider: Provider, kind: BankWriteKind) -> &'static BankWire {
    match (provider, kind) {
        (Provider::QuickBooks, BankWriteKind::Spend) => &QBO_SPEND,
        (Provider::QuickBooks, BankWriteKind::Receive) => &QBO_RECEIVE,
        (Provider::Xero, BankWriteKind::Spend) => &XERO_SPEND,
        (Provider::Xero, BankWriteKind::Receive) => &XERO_RECEIVE,
        (Provider::Zoho, BankWriteKind::Spend) => &ZOHO_SPEND,
        (Provider::Zoho, BankWriteKind::Receive) => &ZOHO_RECEIVE,
    }
}

pub fn document(provider: Provider, entity: Entity) -> Option<&'static DocumentWire> {
    match (provider, entity) {
        (Provider::QuickBooks, Entity::Invoice) => Some(&QBO_INVOICE),
        (Provider::QuickBooks, Entity::Bill) => Some(&QBO_BILL),
        (Provider::Xero, Entity::Invoice) => Some(&XERO_INVOICE),
        (Provider::Xero, Entity::Bill) => Some(&XERO_BILL),
        (Provider::Zoho, Entity::Invoice) => Some(&ZOHO_INVOICE),
        (Provider::Zoho, Entity::Bill) => Some(&ZOHO_BILL),
        _ => None,
    }
}

pub fn contact(provider: Provider) -> &'static ContactWire {
    match provider {
        Provider::QuickBooks => &QBO_CONTACT,
        Provider::Xero => &XERO_CONTACT,
        Provider::Zoho => &ZOHO_CONTACT_CUSTOMER,
    }
}

const OPEN: &[DocumentStatus] = &[DocumentStatus::Open];
const UNAPPROVED: &[DocumentStatus] = &[DocumentStatus::Draft, DocumentStatus::AwaitingApproval];

/// QuickBooks voids invoices (`operation=void`) but not bills (a bill is deleted); Xero voids an
/// approved, unpaid document and deletes a draft or submitted one, by updating its `Status`; Zoho
/// has a void status action and DELETE. Contacts: QuickBooks and Xero keep every contact (one is
/// made inactive or archived), Zoho deletes one.
pub fn lifecycle(provider: Provider, entity: Entity) -> Lifecycle {
    const NEITHER: Lifecycle = Lifecycle { void: None, void_from: None, delete: None, delete_from: None };
    const DELETE: Lifecycle = Lifecycle { void: None, void_from: None, delete: Some((ChangeKind::Delete, &[])), delete_from: None };
    match (provider, entity) {
        (Provider::QuickBooks, Entity::Invoice) => Lifecycle { void: Some((ChangeKind::Void, &[])), ..DELETE },
        (Provider::QuickBooks, Entity::Bill) => DELETE,
        (Provider::QuickBooks, Entity::Contact) => Lifecycle { delete: Some((ChangeKind::Update, &[(&["Active"], "false")])), ..NEITHER },
        // A payment is deleted (its invoices owe again); QuickBooks also voids one (kept, at zero;
        // an update with `include=void`, which the client sends for a void of a payment).
        (Provider::QuickBooks, Entity::Payment | Entity::BillPayment) => Lifecycle { void: Some((ChangeKind::Void, &[])), ..DELETE },
        (Provider::Zoho, Entity::Payment | Entity::BillPayment) => DELETE,
        // Bank transactions are deleted: QuickBooks `operation=delete`, Xero `Status` DELETED
        // (unreconciled ones; Xero's reference), Zoho DELETE.
        (Provider::QuickBooks | Provider::Zoho, Entity::BankTransaction) => DELETE,
        (Provider::Xero, Entity::BankTransaction) => {
            Lifecycle { delete: Some((ChangeKind::Update, &[(&["Status"], "DELETED")])), ..NEITHER }
        }
        // A QuickBooks JournalEntry and a Zoho journal are deleted; a Xero manual journal is voided
        // when posted and deleted as a draft (both by `Status`; the journal's state is the
        // provider's to check: the stored copy has no document status).
        (Provider::QuickBooks | Provider::Zoho, Entity::Journal) => DELETE,
        (Provider::Xero, Entity::Journal) => Lifecycle {
            void: Some((ChangeKind::Update, &[(&["Status"], "VOIDED")])),
            void_from: None,
            delete: Some((ChangeKind::Update, &[(&["Status"], "DELETED")])),
            delete_from: None,
        },
        // Credit notes are deleted (QuickBooks: CreditMemo and VendorCredit take `operation=delete`;
        // a void of either is not in Intuit's reference, unconfirmed).
        (Provider::QuickBooks, Entity::CreditNote) => DELETE,
        (Provider::Xero, Entity::Invoice | Entity::Bill | Entity::CreditNote) => Lifecycle {
            void: Some((ChangeKind::Update, &[(&["Status"], "VOIDED")])),
            void_from: Some(OPEN),
            delete: Some((ChangeKind::Update, &[(&["Status"], "DELETED")])),
            delete_from: Some(UNAPPROVED),
        },
        (Provider::Xero, Entity::Contact) => {
            Lifecycle { delete: Some((ChangeKind::Update, &[(&["ContactStatus"], "ARCHIVED")])), ..NEITHER }
        }
        (Provider::Xero, Entity::Payment | Entity::BillPayment) => {
            Lifecycle { delete: Some((ChangeKind::Update, &[(&["Status"], "DELETED")])), ..NEITHER }
        }
        // Zoho voids credit notes and vendor credits at `/{module}/{id}/status/void` (vendor credits:
        // unconfirmed).
        (Provider::Zoho, Entity::Invoice | Entity::Bill | Entity::CreditNote) => {
            Lifecycle { void: Some((ChangeKind::Void, &[])), ..DELETE }
        }
        (Provider::Zoho, Entity::Contact) => DELETE,
        // Entities writes do not take yet.
        _ => NEITHER,
    }
}

/// How `action` (void or delete) reaches the provider: the change and its body.
pub fn lifecycle_change(provider: Provider, entity: Entity, action: Action) -> Option<(ChangeKind, Value)> {
    let l = lifecycle(provider, entity);
    let (kind, fields) = match action {
        Action::Void => l.void?,
        Action::Delete => l.delete?,
        Action::Create | Action::Update => return None,
    };
    let mut body = Value::Object(Map::new());
    for (path, v) in fields {
        // "false" is QuickBooks' boolean Active; everything else is text.
        put(&mut body, path, if *v == "false" { Value::Bool(false) } else { json!(v) });
    }
    Some((kind, body))
}

/// Sets `value` at `path`, making the objects (and, for a digits key, arrays) on the way.
pub fn put(root: &mut Value, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut cur = root;
    for (i, key) in parents.iter().enumerate() {
        let next_is_index = path.get(i + 1).is_some_and(|k| k.bytes().all(|b| b.is_ascii_digit()));
        cur = step(cur, key, next_is_index);
    }
    match last.parse::<usize>() {
        Ok(idx) if cur.is_array() => {
            let arr = cur.as_array_mut().expect("array");
            while arr.len() <= idx {
                arr.push(Value::Null);
            }
            arr[idx] = value;
        }
        _ => {
            if !cur.is_object() {
                *cur = Value::Object(Map::new());
            }
            cur.as_object_mut().expect("object").insert((*last).to_string(), value);
        }
    }
}

fn step<'a>(cur: &'a mut Value, key: &str, next_is_index: bool) -> &'a mut Value {
    let empty = || if next_is_index { Value::Array(Vec::new()) } else { Value::Object(Map::new()) };
    let index = key.parse::<usize>().ok().filter(|_| cur.is_array());
    if let Some(idx) = index {
        let arr = cur.as_array_mut().expect("array");
        while arr.len() <= idx {
            arr.push(Value::Object(Map::new()));
        }
        let slot = &mut arr[idx];
        if !(slot.is_object() || slot.is_array()) {
            *slot = empty();
        }
        return slot;
    }
    if !cur.is_object() {
        *cur = Value::Object(Map::new());
    }
    let obj = cur.as_object_mut().expect("object");
    let slot = obj.entry(key.to_string()).or_insert_with(empty);
    if !(slot.is_object() || slot.is_array()) {
        *slot = empty();
    }
    slot
}

/// A number for the provider: decimal text that JSON carries as a number where it is one exactly.
pub fn number(text: &str) -> Value {
    match serde_json::from_str::<serde_json::Number>(text.trim()) {
        Ok(n) if !text.contains(['e', 'E']) => Value::Number(n),
        _ => Value::String(text.trim().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_make_objects_and_arrays() {
        let mut v = json!({});
        put(&mut v, &["Phones", "0", "PhoneNumber"], json!("555"));
        put(&mut v, &["Phones", "0", "PhoneType"], json!("DEFAULT"));
        put(&mut v, &["CurrencyRef", "value"], json!("USD"));
        assert_eq!(v, json!({"Phones": [{"PhoneNumber": "555", "PhoneType": "DEFAULT"}], "CurrencyRef": {"value": "USD"}}));
        let mut odd = json!({"CurrencyRef": 5});
        put(&mut odd, &["CurrencyRef", "value"], json!("EUR"));
        assert_eq!(odd, json!({"CurrencyRef": {"value": "EUR"}}));
    }

    #[test]
    fn voids_and_deletes_go_each_providers_way() {
        assert_eq!(
            lifecycle_change(Provider::Xero, Entity::Invoice, Action::Void),
            Some((ChangeKind::Update, json!({"Status": "VOIDED"})))
        );
        assert_eq!(
            lifecycle_change(Provider::Xero, Entity::Contact, Action::Delete),
            Some((ChangeKind::Update, json!({"ContactStatus": "ARCHIVED"})))
        );
        assert_eq!(
            lifecycle_change(Provider::QuickBooks, Entity::Contact, Action::Delete),
            Some((ChangeKind::Update, json!({"Active": false})))
        );
        assert_eq!(lifecycle_change(Provider::QuickBooks, Entity::Bill, Action::Void), None);
        assert_eq!(lifecycle_change(Provider::Zoho, Entity::Bill, Action::Void), Some((ChangeKind::Void, json!({}))));
        assert_eq!(lifecycle_change(Provider::Zoho, Entity::Contact, Action::Void), None);
    }

    #[test]
    fn numbers_stay_exact() {
        assert_eq!(number("19.99"), json!(19.99));
        assert_eq!(number("3"), json!(3));
        assert_eq!(number("1e3"), json!("1e3"));
    }
}
