//! Organisations and their records, held in each provider's own wire format.
//!
//! Each record keeps its JSON pre-serialised (full form, and the shorter form Zoho lists return), so a
//! list answer is string concatenation rather than serialisation: that is what lets one core serve
//! thousands of list requests a second.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use crate::lines::{document, exact_cents, money, percent, Doc, TAX_RATE_BP};
use crate::model::{qbo_time, xero_datestring, xero_msdate, zoho_time, Entity, Provider};

mod bank;
mod credits;
mod orders;
mod payments;

#[derive(Debug, Clone)]
pub struct Record {
    pub id: String,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    pub deleted: bool,
    pub value: Value,
    pub full: Arc<str>,
    pub summary: Arc<str>,
}

#[derive(Debug, Default, Clone)]
pub struct Store {
    pub items: Vec<Record>,
    index: HashMap<String, usize>,
}

impl Store {
    pub fn get(&self, id: &str) -> Option<&Record> {
        self.index.get(id).map(|&i| &self.items[i])
    }

    fn upsert(&mut self, rec: Record) {
        match self.index.get(&rec.id) {
            Some(&i) => self.items[i] = rec,
            None => {
                self.index.insert(rec.id.clone(), self.items.len());
                self.items.push(rec);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// A Zoho Books webhook registration (kept so the emitter can deliver to it).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ZohoWebhook {
    pub webhook_id: String,
    pub webhook_name: String,
    pub url: String,
    pub method: String,
    pub entity: String,
    pub events: Vec<String>,
    pub headers: Vec<(String, String)>,
    pub query_parameters: Vec<(String, String)>,
    #[serde(skip)]
    pub secret: Option<String>,
    pub raw: Value,
}

/// A Zoho Books workflow rule: when a record of `entity` meets `event`, its webhook actions fire.
/// Zoho Books sends webhooks only as workflow actions (Books help, "Webhooks": a webhook is
/// associated with a workflow rule); a registration no rule uses delivers nothing.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ZohoWorkflow {
    pub workflow_id: String,
    pub workflow_name: String,
    pub entity: String,
    pub event: String,
    pub webhook_ids: Vec<String>,
    pub is_active: bool,
}

/// A stored answer for a repeated idempotency key: status and body.
#[derive(Debug, Clone)]
pub struct StoredAnswer {
    pub status: u16,
    pub body: String,
    pub entity: Entity,
}

#[derive(Debug, Clone)]
pub struct Org {
    pub provider: Provider,
    pub id: String,
    pub name: String,
    /// Zoho data centre.
    pub dc: Option<String>,
    pub created: DateTime<Utc>,
    stores: [Store; 19],
    seq: u64,
    pub idempotency: HashMap<String, StoredAnswer>,
    pub webhooks: Vec<ZohoWebhook>,
    pub workflows: Vec<ZohoWorkflow>,
}

fn slot(p: Provider, e: Entity) -> usize {
    match e.home(p) {
        Entity::Invoice => 0,
        Entity::Contact => 1,
        Entity::Account => 2,
        Entity::Payment => 3,
        Entity::Bill => 4,
        Entity::Vendor => 5,
        Entity::CreditNote => 6,
        Entity::VendorCredit => 7,
        Entity::BillPayment => 8,
        Entity::TaxRate => 9,
        Entity::Item => 10,
        Entity::TrackingCategory => 11,
        Entity::Journal => 12,
        Entity::PurchaseOrder => 13,
        Entity::Expense => 14,
        Entity::BankTransaction => 15,
        Entity::BankTransfer => 16,
        Entity::Department => 17,
        Entity::TaxComponent => 18,
    }
}

/// Whether a record of the store `e` lives in is one of `e` (Xero bills and invoices share a store,
/// as do contacts and suppliers on Xero and Zoho). A Xero contact that is neither customer nor
/// supplier yet counts as a customer.
pub fn is_kind(p: Provider, e: Entity, v: &Value) -> bool {
    let flag = |k: &str| v.get(k).and_then(Value::as_bool) == Some(true);
    match (p, e) {
        (Provider::Xero, Entity::Bill) => v.get("Type").and_then(Value::as_str) == Some("ACCPAY"),
        (Provider::Xero, Entity::Invoice) => v.get("Type").and_then(Value::as_str) != Some("ACCPAY"),
        (Provider::Xero, Entity::Vendor) => flag("IsSupplier"),
        (Provider::Xero, Entity::Contact) => flag("IsCustomer") || !flag("IsSupplier"),
        (Provider::Xero, Entity::BillPayment) => v.get("PaymentType").and_then(Value::as_str) == Some("ACCPAYPAYMENT"),
        (Provider::Xero, Entity::Payment) => v.get("PaymentType").and_then(Value::as_str) != Some("ACCPAYPAYMENT"),
        (Provider::Xero, Entity::VendorCredit) => v.get("Type").and_then(Value::as_str) == Some("ACCPAYCREDIT"),
        (Provider::Xero, Entity::CreditNote) => v.get("Type").and_then(Value::as_str) != Some("ACCPAYCREDIT"),
        (Provider::Xero, Entity::Expense) => v.get("Type").and_then(Value::as_str) == Some("SPEND"),
        (Provider::Xero, Entity::BankTransaction) => v.get("Type").and_then(Value::as_str) != Some("SPEND"),
        (Provider::Zoho, Entity::BankTransfer) => v.get("transaction_type").and_then(Value::as_str) == Some("transfer_fund"),
        (Provider::Zoho, Entity::BankTransaction) => v.get("transaction_type").and_then(Value::as_str) != Some("transfer_fund"),
        (Provider::Zoho, Entity::Vendor) => v.get("contact_type").and_then(Value::as_str) == Some("vendor"),
        (Provider::Zoho, Entity::Contact) => v.get("contact_type").and_then(Value::as_str) != Some("vendor"),
        // QuickBooks-only lists (see `Entity::home`): nothing of another provider is one.
        (Provider::Xero | Provider::Zoho, Entity::Department | Entity::TaxComponent) => false,
        _ => true,
    }
}

/// Suppliers of Intuit's sample company.
const VENDOR_NAMES: [&str; 8] = [
    "Brosnahan Insurance Agency",
    "Cal Telephone",
    "Computers by Jenni",
    "Ellis Equipment Rental",
    "Hicks Hardware",
    "Norton Lumber and Building Materials",
    "PG&E",
    "Robertson & Associates",
];

/// The payables account bills post to (QuickBooks' `APAccountRef`); not in the generated cycle.
const AP_ACCOUNT: (&str, &str, &str, &str, &str) = ("Accounts Payable (A/P)", "800", "Accounts Payable", "CURRLIAB", "accounts_payable");
/// Index in ACCOUNTS of the expense account bill lines post to when the org has none.
const EXPENSE_ACCOUNT: usize = 4;

const CONTACT_NAMES: [&str; 8] = [
    "Amy's Bird Sanctuary",
    "Bill's Windsurf Shop",
    "Cool Cars",
    "Diego Rodriguez",
    "Dukes Basketball Camp",
    "Freeman Sporting Goods",
    "Geeta Kalapatapu",
    "Jeff's Jalopies",
];

/// (name, code, QuickBooks type, Xero type, Zoho type)
pub(crate) const ACCOUNTS: [(&str, &str, &str, &str, &str); 5] = [
    ("Sales", "200", "Income", "REVENUE", "income"),
    ("Accounts Receivable", "610", "Accounts Receivable", "CURRENT", "accounts_receivable"),
    ("Business Bank Account", "090", "Bank", "BANK", "bank"),
    ("Advertising", "400", "Expense", "EXPENSE", "expense"),
    ("Office Expenses", "453", "Expense", "EXPENSE", "expense"),
];

impl Org {
    pub fn new(provider: Provider, id: &str, name: &str, dc: Option<&str>, now: DateTime<Utc>) -> Org {
        let mut org = Org {
            provider,
            id: id.to_string(),
            name: name.to_string(),
            dc: dc.map(str::to_string),
            created: now,
            stores: Default::default(),
            seq: 0,
            idempotency: HashMap::new(),
            webhooks: Vec::new(),
            workflows: Vec::new(),
        };
        // The tax codes generated lines name exist from the start (reference data is no list's default).
        for (tax_id, v) in crate::reference::tax_rates(provider) {
            org.put(Entity::TaxRate, &tax_id, v, now);
        }
        for (rate_id, v) in crate::reference::tax_components(provider) {
            org.put(Entity::TaxComponent, &rate_id, v, now);
        }
        let (id, v) = crate::reference::tracking_category(provider, 0);
        org.put(Entity::TrackingCategory, &id, v, now);
        org
    }

    /// The records `e`'s endpoint serves (on Xero, bills with invoices; see [`Entity::home`]).
    pub fn store(&self, e: Entity) -> &Store {
        &self.stores[slot(self.provider, e)]
    }

    /// The live and deleted records that are `e` (unlike [`Org::store`], without the other kind
    /// sharing the store).
    pub fn records(&self, e: Entity) -> impl Iterator<Item = &Record> {
        let p = self.provider;
        self.store(e).items.iter().filter(move |r| is_kind(p, e, &r.value))
    }

    pub fn get(&self, e: Entity, id: &str) -> Option<&Record> {
        self.stores[slot(self.provider, e)].get(id)
    }

    pub fn next_id(&mut self) -> String {
        let n = self.next_seq();
        self.id_for(n)
    }

    fn id_for(&self, n: u64) -> String {
        match self.provider {
            Provider::Quickbooks => n.to_string(),
            Provider::Xero => uuid::Uuid::new_v4().to_string(),
            Provider::Zoho => format!("4600000{n:08}"),
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Stores `value` as the entity's record `id`, writing the provider's id and timestamp fields
    /// (and bumping QuickBooks' SyncToken on updates).
    pub fn put(&mut self, e: Entity, id: &str, mut value: Value, now: DateTime<Utc>) -> &Record {
        let (created, sync) = match self.get(e, id) {
            Some(old) => (old.created, old.value.get("SyncToken").and_then(Value::as_str).and_then(|s| s.parse::<u64>().ok())),
            None => (now, None),
        };
        stamp(self.provider, e, &mut value, id, created, now, sync.map(|s| s + 1).unwrap_or(0));
        let summary: Arc<str> = match self.provider {
            Provider::Zoho => Arc::from(serde_json::to_string(&zoho_summary(e.home(Provider::Zoho), &value)).expect("json").as_str()),
            _ => Arc::from(serde_json::to_string(&value).expect("json").as_str()),
        };
        let full: Arc<str> = if self.provider == Provider::Zoho {
            Arc::from(serde_json::to_string(&value).expect("json").as_str())
        } else {
            summary.clone()
        };
        let rec = Record { id: id.to_string(), created, updated: now, deleted: false, value, full, summary };
        let store = &mut self.stores[slot(self.provider, e)];
        store.upsert(rec);
        store.get(id).expect("just inserted")
    }

    /// Marks a record deleted (QuickBooks CDC reports it; lists skip it).
    pub fn delete(&mut self, e: Entity, id: &str, now: DateTime<Utc>) -> bool {
        let store = &mut self.stores[slot(self.provider, e)];
        match store.index.get(id) {
            Some(&i) => {
                store.items[i].deleted = true;
                store.items[i].updated = now;
                true
            }
            None => false,
        }
    }

    /// Re-stamps a record as changed now (what an edit in the provider's UI would do).
    pub fn touch(&mut self, e: Entity, id: &str, now: DateTime<Utc>) -> bool {
        let Some(value) = self.get(e, id).map(|r| r.value.clone()) else { return false };
        self.put(e, id, value, now);
        true
    }

    /// Generates one plausible record of `e` (creating the contact/account/invoice it refers to when
    /// the org has none yet) and stores it.
    pub fn generate(&mut self, e: Entity, now: DateTime<Utc>) -> String {
        self.generate_with(e, now, None)
    }

    /// As [`Org::generate`]; invoices and bills get `lines` lines when given (else 1 to 5, by their
    /// sequence number).
    pub fn generate_with(&mut self, e: Entity, now: DateTime<Utc>, lines: Option<usize>) -> String {
        let n = self.next_seq();
        let value = match e {
            // Xero keys a tax rate by its TaxType, not by a generated id.
            Entity::TaxRate => {
                // A QuickBooks code names TaxRate records of its own, made first.
                for (rate_id, v) in crate::reference::gen_tax_components(self.provider, n) {
                    self.put(Entity::TaxComponent, &rate_id, v, now);
                }
                let (id, value) = crate::reference::gen_tax_rate(self.provider, n, &self.id_for(n));
                self.put(e, &id, value, now);
                return id;
            }
            Entity::Contact => self.gen_contact(n),
            Entity::Vendor => self.gen_vendor(n),
            Entity::Account => self.gen_account(n),
            Entity::Journal => {
                let debit = self.account_of_type(&["Expense", "EXPENSE", "expense"], ACCOUNTS[EXPENSE_ACCOUNT], now);
                let credit = self.bank_account(now);
                crate::reference::journal(self.provider, n, &debit, &credit, now)
            }
            Entity::TrackingCategory => {
                let (id, value) = crate::reference::tracking_category(self.provider, n);
                self.put(e, &id, value, now);
                return id;
            }
            Entity::Department => crate::reference::department(n),
            // A rate alone, named by no code (seeded codes make their own).
            Entity::TaxComponent => crate::reference::tax_component(&format!("Rate {n}"), 100 + (n % 100) as i64),
            Entity::Item => {
                let account = self.first_or_generate(Entity::Account, now);
                let (id, value) = crate::reference::gen_item(self.provider, n, &account);
                self.put(e, &id, value, now);
                return id;
            }
            Entity::Invoice => {
                let contact = self.first_or_generate(Entity::Contact, now);
                // Sales lines post to an income account (the ledger's reports count them as income).
                let account = self.account_of_type(&["Income", "REVENUE", "income"], ACCOUNTS[0], now);
                self.ensure_items(false, &account, now);
                self.gen_invoice(n, &contact, &account, &document(n, lines, false), now)
            }
            Entity::Bill => {
                let vendor = self.first_or_generate(Entity::Vendor, now);
                let expense = self.account_of_type(&["Expense", "EXPENSE", "expense"], ACCOUNTS[EXPENSE_ACCOUNT], now);
                self.ensure_items(true, &expense, now);
                let payable = match self.provider {
                    Provider::Quickbooks => Some(self.account_of_type(&["Accounts Payable"], AP_ACCOUNT, now)),
                    _ => None,
                };
                self.gen_bill(n, &vendor, &expense, payable.as_ref(), &document(n, lines, true), now)
            }
            Entity::Payment => {
                let invoice = self.first_or_generate(Entity::Invoice, now);
                let account = self.bank_account(now);
                self.gen_payment(n, &invoice, &account, now)
            }
            Entity::CreditNote => self.gen_credit(n, false, lines, now),
            Entity::VendorCredit => self.gen_credit(n, true, lines, now),
            Entity::BillPayment => self.gen_bill_payment(n, now),
            Entity::PurchaseOrder => self.gen_purchase_order(n, lines, now),
            Entity::Expense => self.gen_expense(n, lines, now),
            Entity::BankTransaction => self.gen_deposit(n, now),
            Entity::BankTransfer => self.gen_bank_transfer(n, now),
        };
        let value = self.with_department(e, value);
        let id = self.id_for(n);
        self.put(e, &id, value, now);
        id
    }

    /// A QuickBooks transaction of a realm that has departments names the newest live one in its
    /// header (`DepartmentRef`), as a company tracking locations does; Intuit documents the field
    /// on Invoice, Bill, CreditMemo, VendorCredit, Purchase and Deposit. Without departments, as
    /// before.
    fn with_department(&self, e: Entity, mut value: Value) -> Value {
        let tracked = matches!(
            e,
            Entity::Invoice | Entity::Bill | Entity::CreditNote | Entity::VendorCredit | Entity::Expense | Entity::BankTransaction
        );
        if self.provider != Provider::Quickbooks || !tracked {
            return value;
        }
        let live = self.store(Entity::Department).items.iter().rev().find(|r| !r.deleted && r.value["Active"] != json!(false));
        if let (Some(d), Some(o)) = (live, value.as_object_mut()) {
            o.insert("DepartmentRef".into(), json!({"value": d.id, "name": d.value["Name"]}));
        }
        value
    }

    /// The catalogue items sales (or purchase) lines name, posting to `account`, unless the org
    /// has them already: every item a document names is then one of the org's items.
    fn ensure_items(&mut self, purchase: bool, account: &Value, now: DateTime<Utc>) {
        for item in crate::lines::catalog(purchase) {
            let (id, value) = crate::reference::catalog_item(self.provider, item, purchase, account);
            if self.get(Entity::Item, &id).is_none() {
                self.put(Entity::Item, &id, value, now);
            }
        }
    }

    /// A record of `e` to refer to: the newest live one of that kind, or a fresh one.
    fn first_or_generate(&mut self, e: Entity, now: DateTime<Utc>) -> Value {
        if let Some(r) = self.store(e).items.iter().rev().find(|r| !r.deleted && is_kind(self.provider, e, &r.value)) {
            return r.value.clone();
        }
        let id = self.generate(e, now);
        self.get(e, &id).expect("generated").value.clone()
    }

    /// The newest live account whose type is one of `types`, or a new one made from `entry`.
    fn account_of_type(&mut self, types: &[&str], entry: (&str, &str, &str, &str, &str), now: DateTime<Utc>) -> Value {
        let found = self.store(Entity::Account).items.iter().rev().find(|r| {
            !r.deleted
                && ["AccountType", "Type", "account_type"]
                    .iter()
                    .any(|k| r.value.get(*k).and_then(Value::as_str).is_some_and(|t| types.contains(&t)))
        });
        if let Some(r) = found {
            return r.value.clone();
        }
        let n = self.next_seq();
        let value = self.gen_account_from(entry, n, true);
        let id = self.id_for(n);
        self.put(Entity::Account, &id, value, now).value.clone()
    }

    fn bank_account(&mut self, now: DateTime<Utc>) -> Value {
        let is_bank = |v: &Value| {
            ["AccountType", "Type", "account_type"]
                .iter()
                .any(|k| matches!(v.get(*k).and_then(Value::as_str), Some("Bank" | "BANK" | "bank")))
        };
        if let Some(r) = self.store(Entity::Account).items.iter().find(|r| !r.deleted && is_bank(&r.value)) {
            return r.value.clone();
        }
        self.first_or_generate(Entity::Account, now)
    }

    fn gen_contact(&self, n: u64) -> Value {
        let name = CONTACT_NAMES[(n as usize) % CONTACT_NAMES.len()];
        let name = if n as usize >= CONTACT_NAMES.len() { format!("{name} {n}") } else { name.to_string() };
        let email = format!("contact{n}@example.com");
        let (first, last) = ("Sam", format!("Customer{n}"));
        let (phone, street) = (format!("555-{:04}", n % 10_000), format!("{n} Ocean Dr."));
        match self.provider {
            Provider::Quickbooks => json!({
                "Taxable": false, "Job": false, "BillWithParent": false, "Balance": 0, "BalanceWithJobs": 0,
                "CurrencyRef": {"value": "USD", "name": "United States Dollar"},
                "PreferredDeliveryMethod": "Print", "domain": "QBO", "sparse": false,
                "GivenName": first, "FamilyName": last, "CompanyName": name, "DisplayName": name,
                "FullyQualifiedName": name, "PrintOnCheckName": name, "Active": true,
                "PrimaryEmailAddr": {"Address": email}, "PrimaryPhone": {"FreeFormNumber": phone},
                "BillAddr": {"Id": n.to_string(), "Line1": street, "City": "Half Moon Bay", "CountrySubDivisionCode": "CA", "PostalCode": "94213"},
            }),
            Provider::Xero => json!({
                "ContactStatus": "ACTIVE", "Name": name, "FirstName": first, "LastName": last, "EmailAddress": email,
                "Addresses": [{"AddressType": "STREET", "AddressLine1": street, "City": "Wellington", "PostalCode": "6011", "Country": "NZ"}],
                "Phones": [{"PhoneType": "DEFAULT", "PhoneNumber": phone}], "IsSupplier": false, "IsCustomer": true, "HasAttachments": false,
            }),
            Provider::Zoho => json!({
                "contact_name": name, "company_name": name, "contact_type": "customer", "customer_sub_type": "business",
                "status": "active", "email": email, "first_name": first, "last_name": last, "currency_code": "USD",
                "outstanding_receivable_amount": 0.0, "unused_credits_receivable_amount": 0.0, "phone": phone,
                "billing_address": {"address": street, "city": "Pleasanton", "state": "CA", "zip": "94588", "country": "U.S.A"},
            }),
        }
    }

    fn gen_account(&self, n: u64) -> Value {
        let k = (n as usize) % ACCOUNTS.len();
        self.gen_account_from(ACCOUNTS[k], n, n as usize >= ACCOUNTS.len())
    }

    fn gen_account_from(&self, entry: (&str, &str, &str, &str, &str), n: u64, suffix: bool) -> Value {
        let (name, code, qtype, xtype, ztype) = entry;
        // Names must stay unique per org (every provider enforces that), so repeats get a suffix.
        let name = if suffix { format!("{name} {n}") } else { name.to_string() };
        let code = format!("{}{}", code, if suffix { n.to_string() } else { String::new() });
        match self.provider {
            Provider::Quickbooks => {
                let classification = match qtype {
                    "Income" => "Revenue",
                    "Expense" => "Expense",
                    "Accounts Payable" => "Liability",
                    _ => "Asset",
                };
                json!({
                    "Name": name, "SubAccount": false, "FullyQualifiedName": name, "Active": true,
                    "Classification": classification, "AccountType": qtype, "AcctNum": code,
                    "CurrentBalance": 0, "CurrentBalanceWithSubAccounts": 0,
                    "CurrencyRef": {"value": "USD", "name": "United States Dollar"}, "domain": "QBO", "sparse": false,
                })
            }
            Provider::Xero => {
                let class = match xtype {
                    "REVENUE" => "REVENUE",
                    "EXPENSE" => "EXPENSE",
                    "CURRLIAB" => "LIABILITY",
                    _ => "ASSET",
                };
                let mut v = json!({
                    "Code": code, "Name": name, "Status": "ACTIVE", "Type": xtype, "TaxType": "NONE", "Class": class,
                    "EnablePaymentsToAccount": false, "ShowInExpenseClaims": false, "ReportingCode": class,
                    "ReportingCodeName": name, "HasAttachments": false, "AddToWatchlist": false,
                });
                if xtype == "BANK" {
                    v["BankAccountNumber"] = json!("121212 0012345");
                    v["BankAccountType"] = json!("BANK");
                    v["CurrencyCode"] = json!("USD");
                    v["EnablePaymentsToAccount"] = json!(true);
                }
                v
            }
            Provider::Zoho => json!({
                "account_name": name, "account_code": code, "account_type": ztype, "is_active": true,
                "is_user_created": true, "is_system_account": false, "description": "", "currency_code": "USD",
            }),
        }
    }

    fn gen_vendor(&self, n: u64) -> Value {
        let name = VENDOR_NAMES[(n as usize) % VENDOR_NAMES.len()];
        let name = if n as usize >= VENDOR_NAMES.len() { format!("{name} {n}") } else { name.to_string() };
        let email = format!("supplier{n}@example.com");
        let (first, last) = ("Pat", format!("Supplier{n}"));
        let (phone, street) = (format!("555-{:04}", n % 10_000), format!("{n} Mill Rd"));
        match self.provider {
            Provider::Quickbooks => json!({
                "Vendor1099": false, "Balance": 0, "CurrencyRef": {"value": "USD", "name": "United States Dollar"},
                "domain": "QBO", "sparse": false, "GivenName": first, "FamilyName": last, "CompanyName": name,
                "DisplayName": name, "PrintOnCheckName": name, "Active": true, "AcctNum": format!("V{n}"),
                "PrimaryEmailAddr": {"Address": email}, "PrimaryPhone": {"FreeFormNumber": phone},
                "BillAddr": {"Id": n.to_string(), "Line1": street, "City": "Tacoma", "CountrySubDivisionCode": "WA", "PostalCode": "98401"},
            }),
            // Xero sets IsSupplier itself once a contact has a bill (it is read-only in the API).
            Provider::Xero => json!({
                "ContactStatus": "ACTIVE", "Name": name, "FirstName": first, "LastName": last, "EmailAddress": email,
                "Addresses": [{"AddressType": "POBOX", "AddressLine1": street, "City": "Auckland", "PostalCode": "1010", "Country": "NZ"}],
                "Phones": [{"PhoneType": "DEFAULT", "PhoneNumber": phone}], "IsSupplier": true, "IsCustomer": false, "HasAttachments": false,
            }),
            Provider::Zoho => json!({
                "contact_name": name, "company_name": name, "contact_type": "vendor", "status": "active", "email": email,
                "first_name": first, "last_name": last, "currency_code": "USD",
                "outstanding_payable_amount": 0.0, "unused_credits_payable_amount": 0.0, "phone": phone,
                "billing_address": {"address": street, "city": "Tacoma", "state": "WA", "zip": "98401", "country": "U.S.A"},
            }),
        }
    }

    /// QuickBooks US tax codes on lines: `TAX` or `NON`; the rate sits in the document's TxnTaxDetail.
    fn qbo_tax_code(taxed: bool) -> Value {
        json!({"value": if taxed { "TAX" } else { "NON" }})
    }

    /// QuickBooks' document-level tax: one TaxLine for the one rate, over the taxable lines. The
    /// TaxRateRef id is the sandbox's own (unconfirmed shape for purchases in US companies).
    fn qbo_tax_detail(doc: &Doc) -> Value {
        let mut lines = Vec::new();
        if doc.taxable() > 0 {
            lines.push(json!({"Amount": money(doc.tax), "DetailType": "TaxLineDetail", "TaxLineDetail": {
                "TaxRateRef": {"value": "3"}, "PercentBased": true, "TaxPercent": percent(TAX_RATE_BP),
                "NetAmountTaxable": money(doc.taxable())}}));
        }
        json!({"TotalTax": money(doc.tax), "TaxLine": lines})
    }

    /// Xero line items. Xero's tax types: OUTPUT (sales) and INPUT (purchases) at the sandbox's one
    /// rate, or NONE (which rate an org's OUTPUT/INPUT carries depends on its country).
    fn xero_lines(doc: &Doc, account: &Value, purchase: bool) -> Value {
        let taxed_type = if purchase { "INPUT" } else { "OUTPUT" };
        Value::Array(
            doc.lines
                .iter()
                .map(|l| {
                    let mut v = json!({"LineItemID": uuid::Uuid::new_v4().to_string(), "Description": l.description,
                        "Quantity": l.quantity as f64, "UnitAmount": money(l.unit), "AccountCode": account["Code"],
                        "AccountID": account["AccountID"], "TaxType": if l.taxed() { taxed_type } else { "NONE" },
                        "TaxAmount": money(l.tax), "LineAmount": money(l.amount), "Tracking": []});
                    if let Some(i) = l.item {
                        v["ItemCode"] = json!(i.code);
                        v["Item"] = json!({"ItemID": i.xero_id, "Name": i.name, "Code": i.code});
                    }
                    v
                })
                .collect(),
        )
    }

    /// Zoho line items and the document's `taxes` summary. The sandbox's tax id is its own.
    fn zoho_lines(n: u64, doc: &Doc, account: &Value) -> (Value, Value) {
        const TAX_ID: &str = "460000000030001";
        let lines = doc
            .lines
            .iter()
            .enumerate()
            .map(|(k, l)| {
                let (tax_id, tax_name) = if l.taxed() { (TAX_ID, "Sales Tax") } else { ("", "") };
                let item = l.item;
                json!({"line_item_id": format!("4600000{:08}", n * 1000 + k as u64),
                    "item_id": item.map_or("", |i| i.zoho_id), "name": item.map_or(l.description, |i| i.name),
                    "description": l.description, "rate": money(l.unit), "quantity": l.quantity as f64,
                    "item_total": money(l.amount), "account_id": account["account_id"], "account_name": account["account_name"],
                    "tax_id": tax_id, "tax_name": tax_name, "tax_percentage": percent(l.tax_bp)})
            })
            .collect();
        let taxes =
            if doc.tax > 0 { json!([{"tax_id": TAX_ID, "tax_name": "Sales Tax", "tax_amount": money(doc.tax)}]) } else { json!([]) };
        (Value::Array(lines), taxes)
    }

    fn gen_invoice(&self, n: u64, contact: &Value, account: &Value, doc: &Doc, now: DateTime<Utc>) -> Value {
        let number = format!("INV-{n:05}");
        let date = now - Duration::days(3);
        let due = date + Duration::days(30);
        let (sub, tax, total) = (money(doc.sub_total), money(doc.tax), money(doc.total));
        match self.provider {
            Provider::Quickbooks => {
                let mut lines: Vec<Value> = doc
                    .lines
                    .iter()
                    .enumerate()
                    .map(|(k, l)| {
                        let item = l.item.expect("sales lines name an item");
                        json!({"Id": (k + 1).to_string(), "LineNum": k + 1, "Description": l.description, "Amount": money(l.amount),
                            "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": {
                                "ItemRef": {"value": item.qbo_id, "name": item.name}, "Qty": l.quantity, "UnitPrice": money(l.unit),
                                // Returned on reads at recent minor versions (unconfirmed which).
                                "ItemAccountRef": {"value": account["Id"], "name": account["Name"]},
                                "TaxCodeRef": Self::qbo_tax_code(l.taxed())}})
                    })
                    .collect();
                lines.push(json!({"Amount": sub, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}}));
                json!({
                    "DocNumber": number, "TxnDate": date.format("%Y-%m-%d").to_string(), "DueDate": due.format("%Y-%m-%d").to_string(),
                    "CurrencyRef": {"value": "USD", "name": "United States Dollar"},
                    "CustomerRef": {"value": contact["Id"], "name": contact["DisplayName"]},
                    "Line": lines, "TxnTaxDetail": Self::qbo_tax_detail(doc),
                    "TotalAmt": total, "Balance": total, "EmailStatus": "NotSet", "PrintStatus": "NeedToPrint",
                    "ApplyTaxAfterDiscount": false, "domain": "QBO", "sparse": false,
                })
            }
            Provider::Xero => json!({
                "Type": "ACCREC", "InvoiceNumber": number, "Reference": format!("REF-{n}"),
                "Contact": {"ContactID": contact["ContactID"], "Name": contact["Name"]},
                "Date": xero_msdate(date), "DateString": xero_datestring(date),
                "DueDate": xero_msdate(due), "DueDateString": xero_datestring(due),
                "Status": "AUTHORISED", "LineAmountTypes": "Exclusive",
                "LineItems": Self::xero_lines(doc, account, false),
                "SubTotal": sub, "TotalTax": tax, "Total": total, "AmountDue": total, "AmountPaid": 0.0,
                "AmountCredited": 0.0, "CurrencyCode": "USD", "CurrencyRate": 1.0, "HasAttachments": false, "IsDiscounted": false,
                "HasErrors": false,
            }),
            Provider::Zoho => {
                let (lines, taxes) = Self::zoho_lines(n, doc, account);
                json!({
                    "invoice_number": number, "reference_number": format!("REF-{n}"), "status": "sent",
                    "date": date.format("%Y-%m-%d").to_string(), "due_date": due.format("%Y-%m-%d").to_string(),
                    "customer_id": contact["contact_id"], "customer_name": contact["contact_name"], "currency_code": "USD",
                    "is_inclusive_tax": false, "line_items": lines, "taxes": taxes,
                    "sub_total": sub, "tax_total": tax, "total": total, "balance": total,
                })
            }
        }
    }

    /// A purchase bill from `vendor`, unpaid, posting its lines to `expense` (QuickBooks: and the
    /// payable to `payable`).
    fn gen_bill(&self, n: u64, vendor: &Value, expense: &Value, payable: Option<&Value>, doc: &Doc, now: DateTime<Utc>) -> Value {
        let number = format!("BILL-{n:05}");
        let date = now - Duration::days(5);
        let due = date + Duration::days(30);
        let (sub, tax, total) = (money(doc.sub_total), money(doc.tax), money(doc.total));
        match self.provider {
            Provider::Quickbooks => {
                let lines: Vec<Value> = doc
                    .lines
                    .iter()
                    .enumerate()
                    .map(|(k, l)| {
                        let mut v =
                            json!({"Id": (k + 1).to_string(), "LineNum": k + 1, "Description": l.description, "Amount": money(l.amount)});
                        match l.item {
                            Some(i) => {
                                v["DetailType"] = json!("ItemBasedExpenseLineDetail");
                                v["ItemBasedExpenseLineDetail"] = json!({"ItemRef": {"value": i.qbo_id, "name": i.name},
                                    "Qty": l.quantity, "UnitPrice": money(l.unit), "TaxCodeRef": Self::qbo_tax_code(l.taxed()),
                                    "BillableStatus": "NotBillable"});
                            }
                            None => {
                                v["DetailType"] = json!("AccountBasedExpenseLineDetail");
                                v["AccountBasedExpenseLineDetail"] = json!({"AccountRef": {"value": expense["Id"], "name": expense["Name"]},
                                    "TaxCodeRef": Self::qbo_tax_code(l.taxed()), "BillableStatus": "NotBillable"});
                            }
                        }
                        v
                    })
                    .collect();
                let ap = payable.cloned().unwrap_or(Value::Null);
                json!({
                    "DocNumber": number, "TxnDate": date.format("%Y-%m-%d").to_string(), "DueDate": due.format("%Y-%m-%d").to_string(),
                    "CurrencyRef": {"value": "USD", "name": "United States Dollar"},
                    // Intuit returns ExchangeRate when multicurrency is on; the sandbox always sends it
                    // (whether a single-currency company omits it is unconfirmed).
                    "ExchangeRate": 1,
                    "VendorRef": {"value": vendor["Id"], "name": vendor["DisplayName"]},
                    "APAccountRef": {"value": ap["Id"], "name": ap["Name"]},
                    "Line": lines, "TxnTaxDetail": Self::qbo_tax_detail(doc),
                    "TotalAmt": total, "Balance": total, "domain": "QBO", "sparse": false,
                })
            }
            Provider::Xero => json!({
                "Type": "ACCPAY", "InvoiceNumber": number,
                "Contact": {"ContactID": vendor["ContactID"], "Name": vendor["Name"]},
                "Date": xero_msdate(date), "DateString": xero_datestring(date),
                "DueDate": xero_msdate(due), "DueDateString": xero_datestring(due),
                "Status": "AUTHORISED", "LineAmountTypes": "Exclusive",
                "LineItems": Self::xero_lines(doc, expense, true),
                "SubTotal": sub, "TotalTax": tax, "Total": total, "AmountDue": total, "AmountPaid": 0.0,
                "AmountCredited": 0.0, "CurrencyCode": "USD", "CurrencyRate": 1.0, "HasAttachments": false, "IsDiscounted": false,
                "HasErrors": false,
            }),
            Provider::Zoho => {
                let (lines, taxes) = Self::zoho_lines(n, doc, expense);
                json!({
                    "bill_number": number, "reference_number": format!("PO-{n}"), "status": "open",
                    "date": date.format("%Y-%m-%d").to_string(), "due_date": due.format("%Y-%m-%d").to_string(),
                    "vendor_id": vendor["contact_id"], "vendor_name": vendor["contact_name"], "currency_code": "USD",
                    "exchange_rate": 1.0, "is_inclusive_tax": false, "line_items": lines, "taxes": taxes,
                    "sub_total": sub, "tax_total": tax, "total": total, "balance": total,
                })
            }
        }
    }

    fn gen_payment(&self, n: u64, invoice: &Value, account: &Value, now: DateTime<Utc>) -> Value {
        let date = now - Duration::days(1);
        match self.provider {
            Provider::Quickbooks => {
                let amount = invoice["TotalAmt"].as_f64().unwrap_or(100.0);
                json!({
                    "TxnDate": date.format("%Y-%m-%d").to_string(), "CustomerRef": invoice["CustomerRef"],
                    "CurrencyRef": {"value": "USD", "name": "United States Dollar"},
                    "DepositToAccountRef": {"value": account["Id"]}, "TotalAmt": amount, "UnappliedAmt": 0,
                    "ProcessPayment": false, "PaymentRefNum": format!("P{n}"),
                    "Line": [{"Amount": amount, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}],
                    "domain": "QBO", "sparse": false,
                })
            }
            Provider::Xero => {
                let amount = invoice["Total"].as_f64().unwrap_or(100.0);
                json!({
                    "Date": xero_msdate(date), "Amount": amount, "BankAmount": amount, "Reference": format!("P{n}"),
                    "CurrencyRate": 1.0, "PaymentType": "ACCRECPAYMENT", "Status": "AUTHORISED",
                    "IsReconciled": false, "HasAccount": true, "HasValidationErrors": false,
                    "Account": {"AccountID": account["AccountID"], "Code": account["Code"]},
                    "Invoice": {"InvoiceID": invoice["InvoiceID"], "InvoiceNumber": invoice["InvoiceNumber"], "Type": "ACCREC",
                        "Contact": invoice["Contact"], "CurrencyCode": "USD", "IsDiscounted": false, "HasErrors": false},
                })
            }
            Provider::Zoho => {
                let amount = invoice["total"].as_f64().unwrap_or(100.0);
                json!({
                    "payment_number": format!("{n}"), "date": date.format("%Y-%m-%d").to_string(), "payment_mode": "cash",
                    "amount": amount, "unused_amount": 0.0, "customer_id": invoice["customer_id"],
                    "customer_name": invoice["customer_name"], "account_id": account["account_id"],
                    "account_name": account["account_name"], "currency_code": "USD", "reference_number": format!("P{n}"),
                    "invoices": [{"invoice_id": invoice["invoice_id"], "invoice_number": invoice["invoice_number"],
                        "amount_applied": amount}],
                })
            }
        }
    }
}

/// Writes the provider's id and timestamp fields into `v`.
fn stamp(p: Provider, e: Entity, v: &mut Value, id: &str, created: DateTime<Utc>, updated: DateTime<Utc>, sync: u64) {
    let Some(obj) = v.as_object_mut() else { return };
    match p {
        Provider::Quickbooks => {
            obj.insert("Id".into(), json!(id));
            obj.insert("SyncToken".into(), json!(sync.to_string()));
            obj.insert("MetaData".into(), json!({"CreateTime": qbo_time(created), "LastUpdatedTime": qbo_time(updated)}));
        }
        Provider::Xero => {
            obj.insert(e.xero_id_field().into(), json!(id));
            // A BankTransfer has only its CreatedDateUTC (xero_accounting.yaml): it is not edited.
            if e == Entity::BankTransfer {
                obj.insert("CreatedDateUTC".into(), json!(xero_msdate(created)));
            }
            // Xero's TaxRate and TrackingCategory have no UpdatedDateUTC (xero_accounting.yaml).
            if !matches!(e, Entity::TaxRate | Entity::TrackingCategory | Entity::BankTransfer) {
                obj.insert("UpdatedDateUTC".into(), json!(xero_msdate(updated)));
            }
        }
        Provider::Zoho => {
            obj.insert(e.zoho_id_field().into(), json!(id));
            // Zoho's Taxes page shows no timestamps on a tax (unconfirmed either way), nor is one known
            // for reporting tags: none are added.
            if !matches!(e, Entity::TaxRate | Entity::TrackingCategory) {
                obj.insert("created_time".into(), json!(zoho_time(created)));
                obj.insert("last_modified_time".into(), json!(zoho_time(updated)));
            }
        }
    }
}

/// Zoho list answers carry a subset of each record (no line items): clients must GET each one for
/// details, and the sandbox makes that visible.
fn zoho_summary(e: Entity, v: &Value) -> Value {
    let keep: &[&str] = match e {
        Entity::Invoice => &[
            "invoice_id",
            "invoice_number",
            "reference_number",
            "status",
            "date",
            "due_date",
            "customer_id",
            "customer_name",
            "currency_code",
            "total",
            "balance",
            "created_time",
            "last_modified_time",
        ],
        Entity::Contact => &[
            "contact_id",
            "contact_name",
            "company_name",
            "contact_type",
            "customer_sub_type",
            "status",
            "email",
            "currency_code",
            "outstanding_receivable_amount",
            "outstanding_payable_amount",
            "created_time",
            "last_modified_time",
        ],
        Entity::Account => return v.clone(),
        // Zoho's list answer for bills has no line items; third-party client models of it show these
        // fields (and due_days, currency_id, price_precision, tds_total, which the sandbox does not
        // keep). Not checked against Zoho's own reference or a live org: unconfirmed.
        Entity::Bill => &[
            "bill_id",
            "vendor_id",
            "vendor_name",
            "status",
            "bill_number",
            "reference_number",
            "date",
            "due_date",
            "currency_code",
            "exchange_rate",
            "total",
            "balance",
            "created_time",
            "last_modified_time",
        ],
        Entity::Vendor => return v.clone(),
        // Credit notes and vendor credits listed without lines or applications, as invoices and
        // bills are (the fields of Zoho's list examples; unconfirmed against a live org).
        Entity::CreditNote => &[
            "creditnote_id",
            "creditnote_number",
            "status",
            "reference_number",
            "date",
            "customer_id",
            "customer_name",
            "currency_code",
            "total",
            "balance",
            "created_time",
            "last_modified_time",
        ],
        Entity::VendorCredit => &[
            "vendor_credit_id",
            "vendor_credit_number",
            "status",
            "reference_number",
            "date",
            "vendor_id",
            "vendor_name",
            "currency_code",
            "total",
            "balance",
            "created_time",
            "last_modified_time",
        ],
        // Purchase orders listed without lines, as bills are (unconfirmed field set).
        Entity::PurchaseOrder => &[
            "purchaseorder_id",
            "purchaseorder_number",
            "reference_number",
            "status",
            "date",
            "delivery_date",
            "vendor_id",
            "vendor_name",
            "currency_code",
            "total",
            "created_time",
            "last_modified_time",
        ],
        // A vendor payment listed without the bills it paid (as customer payments drop invoices).
        Entity::BillPayment => &[
            "payment_id",
            "payment_number",
            "date",
            "payment_mode",
            "amount",
            "vendor_id",
            "vendor_name",
            "paid_through_account_id",
            "paid_through_account_name",
            "currency_code",
            "reference_number",
            "created_time",
            "last_modified_time",
        ],
        Entity::TaxRate | Entity::Item | Entity::TrackingCategory | Entity::Department | Entity::TaxComponent => return v.clone(),
        // An expense listed without its lines, as bills are (unconfirmed field set).
        Entity::Expense => &[
            "expense_id",
            "date",
            "account_id",
            "account_name",
            "paid_through_account_id",
            "paid_through_account_name",
            "vendor_id",
            "vendor_name",
            "currency_code",
            "reference_number",
            "description",
            "status",
            "is_billable",
            "sub_total",
            "total",
            "created_time",
            "last_modified_time",
        ],
        // A bank transaction has no lines: listed whole (unconfirmed).
        Entity::BankTransaction | Entity::BankTransfer => return v.clone(),
        // Like invoices, the list's summary has no lines (unconfirmed for journals).
        Entity::Journal => &[
            "journal_id",
            "entry_number",
            "reference_number",
            "journal_date",
            "notes",
            "currency_code",
            "total",
            "status",
            "created_time",
            "last_modified_time",
        ],
        Entity::Payment => &[
            "payment_id",
            "payment_number",
            "date",
            "payment_mode",
            "amount",
            "unused_amount",
            "customer_id",
            "customer_name",
            "account_id",
            "account_name",
            "reference_number",
            "created_time",
            "last_modified_time",
        ],
    };
    let mut out = serde_json::Map::new();
    for k in keep {
        if let Some(x) = v.get(*k) {
            out.insert((*k).to_string(), x.clone());
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_records_refer_to_each_other_and_carry_provider_stamps() {
        let now = Utc::now();
        for p in Provider::ALL {
            let mut org = Org::new(p, "o1", "Org", None, now);
            let pay = org.generate(Entity::Payment, now);
            assert_eq!(org.store(Entity::Invoice).len(), 1, "{p:?}");
            assert_eq!(org.store(Entity::Contact).len(), 1, "{p:?}");
            let rec = org.get(Entity::Payment, &pay).unwrap();
            match p {
                Provider::Quickbooks => {
                    let inv = &org.store(Entity::Invoice).items[0];
                    assert_eq!(rec.value["Line"][0]["LinkedTxn"][0]["TxnId"], json!(inv.id));
                    assert_eq!(rec.value["SyncToken"], "0");
                }
                Provider::Xero => {
                    let inv = &org.store(Entity::Invoice).items[0];
                    assert_eq!(rec.value["Invoice"]["InvoiceID"], json!(inv.id));
                    assert!(rec.value["UpdatedDateUTC"].as_str().unwrap().starts_with("/Date("));
                }
                Provider::Zoho => {
                    assert!(!rec.summary.contains("\"invoices\""), "list form drops applied invoices");
                    assert!(rec.full.contains("\"invoices\""));
                }
            }
        }
    }

    #[test]
    fn quickbooks_updates_bump_sync_token() {
        let now = Utc::now();
        let mut org = Org::new(Provider::Quickbooks, "r", "Co", None, now);
        let id = org.generate(Entity::Contact, now);
        org.touch(Entity::Contact, &id, now + Duration::seconds(5));
        let r = org.get(Entity::Contact, &id).unwrap();
        assert_eq!(r.value["SyncToken"], "1");
        assert_eq!(r.created, now);
        assert_eq!(r.updated, now + Duration::seconds(5));
    }
}
