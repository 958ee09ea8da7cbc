//! The double-entry books of an org: every live record posts balanced entries (account, signed
//! cents, date), and the reports the sandbox serves (profit and loss, balance sheet, trial balance)
//! are sums of these postings, so they agree with the records by construction and a trial balance
//! sums to zero.
//!
//! What each record posts (accrual; debits positive, credits negative):
//! - sales invoice: Cr each line's account (net), Cr tax payable, Dr receivables (their sum);
//! - bill: Dr each line's account, Dr tax, Cr payables; credit notes are the reverse of each;
//! - payment received: Dr its bank account, Cr receivables for what it pays of live invoices (capped
//!   at what each still owes), Cr customer credits (a liability) for the rest; a Xero refund of a
//!   credit note (a payment naming a CreditNote and no Invoice) is the reverse;
//! - payment made: Dr payables, Cr its bank account (a Xero refund from a supplier the reverse);
//! - manual journal: its lines (a journal whose lines do not balance posts nothing: every provider
//!   refuses one, so only a seeded record can be like that);
//! - spend (QuickBooks Purchase, Xero SPEND, Zoho expense): Dr lines and tax, Cr the bank account;
//!   receive (QuickBooks Deposit, Xero RECEIVE, Zoho deposit): Dr the bank account, Cr lines;
//!   transfer: Dr the account transferred to, Cr the one it came from. Xero also lists a transfer's
//!   two sides among its BankTransactions (SPEND-TRANSFER, RECEIVE-TRANSFER): those post nothing,
//!   the BankTransfer posts once.
//!
//! A line posts to the account it names (by id, or by code on Xero; a line naming an item and no
//! account posts to the item's account). Where a record names none, or one the org does not have,
//! the org's first live account of that kind is used, or a ledger-only account (`sandbox:*`) when
//! the org has none. Each record's control side is the sum of what its lines post, so a record
//! always balances; the tests recompute the control accounts from the records' own totals, which
//! is what catches a record whose lines and total disagree.
//!
//! Not posted: drafts, voided and deleted records (QuickBooks: deleted; a voided QuickBooks
//! document has zero amounts and posts zero. Xero: DRAFT, SUBMITTED, DELETED, VOIDED, and journals
//! not POSTED. Zoho: draft and void). Cash basis: invoices, bills and credit notes post nothing;
//! a payment received posts Dr bank, Cr the default income account, a payment made Dr the default
//! expense account, Cr bank (tax is not separated on cash basis); bank records and journals post as
//! on accrual (a Xero journal with ShowOnCashBasisReports false posts nothing).
//!
//! Money is integer cents; amounts that are not numbers count as zero and each amount is clamped to
//! ±10^12 cents (ten billion dollars), so sums over millions of hostile records cannot overflow.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use serde_json::Value;

use crate::data::{Org, Record};
use crate::model::{parse_time, utc, Entity, Provider};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Class {
    Asset,
    Liability,
    Equity,
    Income,
    Expense,
}

/// What a report groups an account under, beyond its class.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Bank,
    Receivable,
    Payable,
    Tax,
    Other,
}

#[derive(Clone, Debug)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub code: String,
    pub class: Class,
    pub kind: Kind,
}

#[derive(Clone, Debug)]
pub struct Posting {
    pub account: String,
    /// Debit positive, credit negative, cents.
    pub amount: i64,
    pub date: NaiveDate,
    pub entity: Entity,
    pub record: String,
}

/// The role a posting plays when its record names no account.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Role {
    Receivable,
    Payable,
    Bank,
    Income,
    Expense,
    Tax,
    CustomerCredit,
}

impl Role {
    fn class(self) -> Class {
        match self {
            Role::Receivable | Role::Bank => Class::Asset,
            Role::Payable | Role::Tax | Role::CustomerCredit => Class::Liability,
            Role::Income => Class::Income,
            Role::Expense => Class::Expense,
        }
    }

    fn kind(self) -> Kind {
        match self {
            Role::Receivable => Kind::Receivable,
            Role::Payable => Kind::Payable,
            Role::Bank => Kind::Bank,
            Role::Tax => Kind::Tax,
            _ => Kind::Other,
        }
    }

    /// The ledger-only account used when the org has none of this kind.
    fn fallback(self) -> (&'static str, &'static str) {
        match self {
            Role::Receivable => ("sandbox:receivable", "Accounts Receivable"),
            Role::Payable => ("sandbox:payable", "Accounts Payable"),
            Role::Bank => ("sandbox:bank", "Bank"),
            Role::Income => ("sandbox:income", "Sales"),
            Role::Expense => ("sandbox:expense", "Expenses"),
            Role::Tax => ("sandbox:tax", "Sales Tax Payable"),
            Role::CustomerCredit => ("sandbox:customer-credits", "Customer Credits"),
        }
    }
}

/// Accounts with an amount each, as a report lists them.
pub type Amounts<'a> = Vec<(&'a Account, i64)>;

#[derive(Clone, Debug, Default)]
pub struct Ledger {
    /// Every account a posting names, by id, in the order first seen (the org's own first).
    pub accounts: Vec<Account>,
    index: HashMap<String, usize>,
    codes: HashMap<String, String>,
    pub postings: Vec<Posting>,
}

const MAX_CENTS: f64 = 1e12;

/// Cents of a JSON amount (number or decimal text); zero for anything else.
pub fn cents(v: Option<&Value>) -> i64 {
    let f = match v {
        Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
        Some(Value::String(s)) => s.trim().parse::<f64>().unwrap_or(0.0),
        _ => 0.0,
    };
    if !f.is_finite() {
        return 0;
    }
    (f * 100.0).round().clamp(-MAX_CENTS, MAX_CENTS) as i64
}

fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(*k))
}

/// A non-empty string at `path`, or a number there as text (ids are sometimes numbers).
fn text(v: &Value, path: &[&str]) -> Option<String> {
    match at(v, path)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn amount(v: &Value, path: &[&str]) -> i64 {
    cents(at(v, path))
}

fn lines<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

fn day(v: &Value, keys: &[&str], r: &Record) -> NaiveDate {
    keys.iter()
        .filter_map(|k| v.get(*k).and_then(Value::as_str))
        .find_map(|t| parse_time(t, utc()))
        .map(|t| t.date_naive())
        .unwrap_or_else(|| r.created.date_naive())
}

/// The class of an account type (QuickBooks AccountType or Classification, Xero Type or Class,
/// Zoho account_type), by the words the three providers use.
fn class_of_type(t: &str) -> Option<Class> {
    let t = t.to_ascii_lowercase();
    let has = |w: &str| t.contains(w);
    if has("liab") || has("payable") || has("credit card") || has("credit_card") || has("tax") {
        Some(Class::Liability)
    } else if has("equity") {
        Some(Class::Equity)
    } else if has("income") || has("revenue") || t == "sales" {
        Some(Class::Income)
    } else if has("expense") || has("cost") || has("overheads") || has("depreciatn") {
        Some(Class::Expense)
    } else if has("asset")
        || has("bank")
        || has("receivable")
        || t == "cash"
        || t == "current"
        || has("fixed")
        || has("inventory")
        || has("stock")
        || has("prepayment")
        || has("noncurrent")
    {
        Some(Class::Asset)
    } else {
        None
    }
}

impl Ledger {
    /// The accrual books of `org`.
    pub fn of(org: &Org) -> Ledger {
        build(org, false)
    }

    /// The books as a cash-basis report counts them.
    pub fn cash(org: &Org) -> Ledger {
        build(org, true)
    }

    pub fn basis(org: &Org, cash: bool) -> Ledger {
        build(org, cash)
    }

    pub fn account(&self, id: &str) -> Option<&Account> {
        self.index.get(id).map(|&i| &self.accounts[i])
    }

    fn add_account(&mut self, a: Account) {
        if !self.index.contains_key(&a.id) {
            if !a.code.is_empty() {
                self.codes.entry(a.code.clone()).or_insert_with(|| a.id.clone());
            }
            self.index.insert(a.id.clone(), self.accounts.len());
            self.accounts.push(a);
        }
    }

    /// The org's first account playing `role`, or its ledger-only fallback.
    fn default_for(&mut self, role: Role) -> String {
        let found = self.accounts.iter().find(|a| {
            !a.id.starts_with("sandbox:")
                && match role {
                    Role::Receivable | Role::Payable | Role::Bank | Role::Tax => a.kind == role.kind(),
                    Role::Income | Role::Expense => a.class == role.class() && a.kind == Kind::Other,
                    Role::CustomerCredit => false,
                }
        });
        if let Some(a) = found {
            return a.id.clone();
        }
        let (id, name) = role.fallback();
        self.add_account(Account { id: id.into(), name: name.into(), code: String::new(), class: role.class(), kind: role.kind() });
        id.to_string()
    }

    /// The account a posting goes to: the one named by id, else by code, else the role's default.
    /// An id the org does not have is kept as its own account of the role's class (the record
    /// names it; the report shows it).
    fn resolve(&mut self, id: Option<String>, code: Option<String>, role: Role) -> String {
        if let Some(id) = id {
            if self.index.contains_key(&id) {
                return id;
            }
            if let Some(known) = self.codes.get(&id) {
                return known.clone();
            }
            self.add_account(Account { id: id.clone(), name: id.clone(), code: String::new(), class: role.class(), kind: role.kind() });
            return id;
        }
        if let Some(known) = code.and_then(|c| self.codes.get(&c).cloned()) {
            return known;
        }
        self.default_for(role)
    }

    /// Posts one record's entry when it balances (it does unless a journal's lines do not).
    fn post(&mut self, entity: Entity, record: &str, date: NaiveDate, lines: Vec<(String, i64)>) {
        if lines.iter().map(|(_, a)| a).sum::<i64>() != 0 {
            return;
        }
        for (account, amount) in lines {
            if amount != 0 {
                self.postings.push(Posting { account, amount, date, entity, record: record.to_string() });
            }
        }
    }

    /// Per account, the sum of its postings dated in `from..=to` (debit positive).
    pub fn balances(&self, from: NaiveDate, to: NaiveDate) -> BTreeMap<String, i64> {
        let mut out = BTreeMap::new();
        for p in self.postings.iter().filter(|p| p.date >= from && p.date <= to) {
            *out.entry(p.account.clone()).or_insert(0) += p.amount;
        }
        out
    }

    /// Income and expenses in `from..=to`, per account: (account, amount as the report shows it:
    /// income positive when earned, expenses positive when spent).
    pub fn profit_and_loss(&self, from: NaiveDate, to: NaiveDate) -> (Amounts<'_>, Amounts<'_>) {
        let b = self.balances(from, to);
        let mut income = Vec::new();
        let mut expenses = Vec::new();
        for a in &self.accounts {
            let Some(&x) = b.get(&a.id) else { continue };
            match a.class {
                Class::Income if x != 0 => income.push((a, -x)),
                Class::Expense if x != 0 => expenses.push((a, x)),
                _ => {}
            }
        }
        (income, expenses)
    }

    /// Net income (income less expenses) of the postings in `from..=to`.
    pub fn net_income(&self, from: NaiveDate, to: NaiveDate) -> i64 {
        let (i, e) = self.profit_and_loss(from, to);
        i.iter().map(|(_, x)| x).sum::<i64>() - e.iter().map(|(_, x)| x).sum::<i64>()
    }
}

/// The org's accounts as the ledger knows them (deleted ones too: records may still name them).
fn chart(org: &Org) -> Vec<Account> {
    let p = org.provider;
    org.store(Entity::Account)
        .items
        .iter()
        .filter_map(|r| {
            let v = &r.value;
            let (name, code, types, system) = match p {
                Provider::Quickbooks => {
                    (text(v, &["Name"]), text(v, &["AcctNum"]), [text(v, &["Classification"]), text(v, &["AccountType"])], None)
                }
                Provider::Xero => {
                    (text(v, &["Name"]), text(v, &["Code"]), [text(v, &["Class"]), text(v, &["Type"])], text(v, &["SystemAccount"]))
                }
                Provider::Zoho => (text(v, &["account_name"]), text(v, &["account_code"]), [text(v, &["account_type"]), None], None),
            };
            let name = name.unwrap_or_else(|| r.id.clone());
            let kind_type = match p {
                Provider::Xero => text(v, &["Type"]),
                Provider::Quickbooks => text(v, &["AccountType"]),
                Provider::Zoho => text(v, &["account_type"]),
            }
            .unwrap_or_default()
            .to_ascii_lowercase();
            let lname = name.to_ascii_lowercase();
            let kind = if system.as_deref() == Some("DEBTORS") || kind_type.contains("receivable") || lname == "accounts receivable" {
                Kind::Receivable
            } else if system.as_deref() == Some("CREDITORS") || kind_type.contains("payable") || lname == "accounts payable" {
                Kind::Payable
            } else if kind_type == "bank" || kind_type == "cash" {
                Kind::Bank
            } else if kind_type.contains("tax") || lname.contains("tax payable") || system.as_deref() == Some("GST") {
                Kind::Tax
            } else {
                Kind::Other
            };
            let class = types.iter().flatten().find_map(|t| class_of_type(t)).or(match kind {
                Kind::Bank | Kind::Receivable => Some(Class::Asset),
                Kind::Payable | Kind::Tax => Some(Class::Liability),
                Kind::Other => None,
            })?;
            // Xero writes account ids in lower case in references; the store keys them so too.
            Some(Account { id: r.id.clone(), name, code: code.unwrap_or_default(), class, kind })
        })
        .collect()
}

fn live(p: Provider, e: Entity, r: &Record) -> bool {
    if r.deleted {
        return false;
    }
    let v = &r.value;
    let status = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_ascii_uppercase();
    match p {
        Provider::Quickbooks => true,
        Provider::Xero => match e {
            Entity::Journal => status("Status") == "POSTED",
            _ => !matches!(status("Status").as_str(), "DRAFT" | "SUBMITTED" | "DELETED" | "VOIDED"),
        },
        Provider::Zoho => !matches!(status("status").as_str(), "DRAFT" | "VOID" | "DELETED"),
    }
}

/// A document line: (account id named, account code named, item named, net cents).
type Line = (Option<String>, Option<String>, Option<String>, i64);

struct DocLines {
    lines: Vec<Line>,
    tax: i64,
    /// The receivable or payable account the document names (QuickBooks).
    control: Option<String>,
}

/// Lines of an invoice, bill, credit note or spend/receive bank record in the provider's shape.
fn doc_lines(p: Provider, e: Entity, v: &Value) -> DocLines {
    match p {
        Provider::Quickbooks => {
            let mut out = Vec::new();
            for l in lines(v, "Line") {
                let dt = l.get("DetailType").and_then(Value::as_str).unwrap_or_default();
                let amt = amount(l, &["Amount"]);
                let (acct, item) = match dt {
                    "SalesItemLineDetail" => (text(l, &[dt, "ItemAccountRef", "value"]), text(l, &[dt, "ItemRef", "value"])),
                    "AccountBasedExpenseLineDetail" => (text(l, &[dt, "AccountRef", "value"]), None),
                    "ItemBasedExpenseLineDetail" => (None, text(l, &[dt, "ItemRef", "value"])),
                    "DepositLineDetail" => (text(l, &[dt, "AccountRef", "value"]), None),
                    "DiscountLineDetail" => {
                        out.push((text(l, &[dt, "DiscountAccountRef", "value"]), None, None, -amt));
                        continue;
                    }
                    _ => continue,
                };
                out.push((acct, None, item, amt));
            }
            let control = match e {
                Entity::Invoice | Entity::CreditNote => text(v, &["ARAccountRef", "value"]),
                Entity::Bill | Entity::VendorCredit => text(v, &["APAccountRef", "value"]),
                _ => None,
            };
            DocLines { lines: out, tax: amount(v, &["TxnTaxDetail", "TotalTax"]), control }
        }
        Provider::Xero => {
            let inclusive = v.get("LineAmountTypes").and_then(Value::as_str) == Some("Inclusive");
            let mut line_tax = 0;
            let out = lines(v, "LineItems")
                .map(|l| {
                    let tax = amount(l, &["TaxAmount"]);
                    line_tax += tax;
                    let net = amount(l, &["LineAmount"]) - if inclusive { tax } else { 0 };
                    let id = text(l, &["AccountID"]).map(|s| s.to_ascii_lowercase());
                    (id, text(l, &["AccountCode"]), text(l, &["Item", "ItemID"]).or(text(l, &["ItemCode"])), net)
                })
                .collect();
            let tax = if v.get("TotalTax").is_some() { amount(v, &["TotalTax"]) } else { line_tax };
            DocLines { lines: out, tax, control: None }
        }
        Provider::Zoho => {
            let expense = e == Entity::Expense;
            let mut out: Vec<_> = lines(v, "line_items")
                .map(|l| {
                    let net = if expense { amount(l, &["amount"]) } else { amount(l, &["item_total"]) };
                    (text(l, &["account_id"]), None, text(l, &["item_id"]), net)
                })
                .collect();
            let tax = if expense { amount(v, &["tax_amount"]) } else { amount(v, &["tax_total"]) };
            if expense && out.is_empty() {
                out.push((text(v, &["account_id"]), None, None, amount(v, &["total"]) - tax));
            }
            // Inclusive prices hold the tax: it comes out of the first line (Zoho's per-line split
            // of inclusive tax is not modelled).
            if v.get("is_inclusive_tax").and_then(Value::as_bool) == Some(true) {
                if let Some(first) = out.first_mut() {
                    first.3 -= tax;
                }
            }
            DocLines { lines: out, tax, control: None }
        }
    }
}

/// The account an item posts to (sales or purchase side), as the item record names it.
fn item_account(org: &Org, item: &str, purchase: bool) -> (Option<String>, Option<String>) {
    let Some(r) = org.get(Entity::Item, item).or_else(|| {
        // Xero lines may name an item by its code only.
        org.store(Entity::Item).items.iter().find(|r| r.value.get("Code").and_then(Value::as_str) == Some(item))
    }) else {
        return (None, None);
    };
    let v = &r.value;
    match org.provider {
        Provider::Quickbooks => (text(v, &[if purchase { "ExpenseAccountRef" } else { "IncomeAccountRef" }, "value"]), None),
        Provider::Xero => (None, text(v, &[if purchase { "PurchaseDetails" } else { "SalesDetails" }, "AccountCode"])),
        Provider::Zoho => (text(v, &[if purchase { "purchase_account_id" } else { "account_id" }]), None),
    }
}

/// Posts a document: lines and tax on one side (`sign` +1: debits, as a bill; -1: credits, as an
/// invoice), their sum on the other in `control`.
#[allow(clippy::too_many_arguments)]
fn post_doc(
    l: &mut Ledger,
    org: &Org,
    e: Entity,
    r: &Record,
    date: NaiveDate,
    d: DocLines,
    sign: i64,
    line_role: Role,
    control: (Option<String>, Role),
) {
    let purchase = line_role == Role::Expense;
    let mut entry = Vec::with_capacity(d.lines.len() + 2);
    for (id, code, item, net) in d.lines {
        let (id, code) = match (id, code, item) {
            (None, None, Some(item)) => item_account(org, &item, purchase),
            (id, code, _) => (id, code),
        };
        entry.push((l.resolve(id, code, line_role), sign * net));
    }
    if d.tax != 0 {
        entry.push((l.default_for(Role::Tax), sign * d.tax));
    }
    let sum: i64 = entry.iter().map(|(_, a)| a).sum();
    let control = l.resolve(control.0.or(d.control), None, control.1);
    entry.push((control, -sum));
    l.post(e, &r.id, date, entry);
}

fn build(org: &Org, cash: bool) -> Ledger {
    let p = org.provider;
    let mut l = Ledger::default();
    for a in chart(org) {
        l.add_account(a);
    }
    let dates: &[&str] = &["TxnDate", "DateString", "Date", "date", "journal_date"];
    let live_records = |e: Entity| org.records(e).filter(move |r| live(p, e, r));

    // Documents (accrual only), and what each invoice still owes for capping payments.
    let mut owed: HashMap<String, i64> = HashMap::new();
    for (e, sign, role, control) in [
        (Entity::Invoice, -1, Role::Income, Role::Receivable),
        (Entity::CreditNote, 1, Role::Income, Role::Receivable),
        (Entity::Bill, 1, Role::Expense, Role::Payable),
        (Entity::VendorCredit, -1, Role::Expense, Role::Payable),
    ] {
        for r in live_records(e) {
            let d = doc_lines(p, e, &r.value);
            let total: i64 = d.lines.iter().map(|x| x.3).sum::<i64>() + d.tax;
            if e == Entity::Invoice {
                owed.insert(r.id.to_ascii_lowercase(), total);
            }
            if !cash {
                post_doc(&mut l, org, e, r, day(&r.value, dates, r), d, sign, role, (None, control));
            }
        }
    }

    // Payments received.
    for r in live_records(Entity::Payment) {
        let v = &r.value;
        let date = day(v, dates, r);
        let (total, bank, applied, refund) = match p {
            Provider::Quickbooks => {
                let applied: Vec<(String, i64)> = lines(v, "Line")
                    .flat_map(|ln| {
                        let a = amount(ln, &["Amount"]);
                        lines(ln, "LinkedTxn")
                            .filter(|t| t.get("TxnType").and_then(Value::as_str) == Some("Invoice"))
                            .filter_map(move |t| Some((text(t, &["TxnId"])?, a)))
                    })
                    .collect();
                (amount(v, &["TotalAmt"]), text(v, &["DepositToAccountRef", "value"]), applied, false)
            }
            Provider::Xero => {
                let a = amount(v, &["Amount"]);
                let inv = text(v, &["Invoice", "InvoiceID"]).map(|i| i.to_ascii_lowercase());
                let refund = inv.is_none() && v.get("CreditNote").is_some();
                let bank = text(v, &["Account", "AccountID"]).map(|s| s.to_ascii_lowercase()).or_else(|| {
                    let code = text(v, &["Account", "Code"])?;
                    l.codes.get(&code).cloned()
                });
                (a, bank, inv.map(|i| vec![(i, a)]).unwrap_or_default(), refund)
            }
            Provider::Zoho => {
                let applied =
                    lines(v, "invoices").filter_map(|i| Some((text(i, &["invoice_id"])?, amount(i, &["amount_applied"])))).collect();
                (amount(v, &["amount"]), text(v, &["account_id"]), applied, false)
            }
        };
        let bank = l.resolve(bank, None, Role::Bank);
        let sign = if refund { -1 } else { 1 };
        let mut entry = vec![(bank, sign * total)];
        if cash {
            entry.push((l.default_for(Role::Income), -sign * total));
        } else if refund {
            entry.push((l.default_for(Role::Receivable), total));
        } else {
            let mut used = 0;
            for (id, a) in applied {
                if let Some(left) = owed.get_mut(&id.to_ascii_lowercase()) {
                    let take = a.min(*left).max(0);
                    *left -= take;
                    used += take;
                }
            }
            let to_ar = used.min(total).max(0);
            entry.push((l.default_for(Role::Receivable), -to_ar));
            entry.push((l.default_for(Role::CustomerCredit), -(total - to_ar)));
        }
        l.post(Entity::Payment, &r.id, date, entry);
    }

    // Payments made.
    for r in live_records(Entity::BillPayment) {
        let v = &r.value;
        let date = day(v, dates, r);
        let (total, bank, ap, refund) = match p {
            Provider::Quickbooks => (
                amount(v, &["TotalAmt"]),
                text(v, &["CheckPayment", "BankAccountRef", "value"]).or(text(v, &["CreditCardPayment", "CCAccountRef", "value"])),
                text(v, &["APAccountRef", "value"]),
                false,
            ),
            Provider::Xero => {
                let bank = text(v, &["Account", "AccountID"]).map(|s| s.to_ascii_lowercase()).or_else(|| {
                    let code = text(v, &["Account", "Code"])?;
                    l.codes.get(&code).cloned()
                });
                (amount(v, &["Amount"]), bank, None, v.get("Invoice").is_none() && v.get("CreditNote").is_some())
            }
            Provider::Zoho => (amount(v, &["amount"]), text(v, &["paid_through_account_id"]), None, false),
        };
        let sign = if refund { -1 } else { 1 };
        let bank = l.resolve(bank, None, Role::Bank);
        let other = if cash { l.default_for(Role::Expense) } else { l.resolve(ap, None, Role::Payable) };
        l.post(Entity::BillPayment, &r.id, date, vec![(other, sign * total), (bank, -sign * total)]);
    }

    // Manual journals.
    for r in live_records(Entity::Journal) {
        let v = &r.value;
        if cash && v.get("ShowOnCashBasisReports").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        let date = day(v, dates, r);
        let raw: Vec<(Option<String>, Option<String>, i64)> = match p {
            Provider::Quickbooks => lines(v, "Line")
                .map(|ln| {
                    let d = &["JournalEntryLineDetail"];
                    let side = at(ln, &[d[0], "PostingType"]).and_then(Value::as_str) == Some("Credit");
                    let a = amount(ln, &["Amount"]);
                    (text(ln, &[d[0], "AccountRef", "value"]), None, if side { -a } else { a })
                })
                .collect(),
            Provider::Xero => lines(v, "JournalLines")
                .map(|ln| {
                    (text(ln, &["AccountID"]).map(|s| s.to_ascii_lowercase()), text(ln, &["AccountCode"]), amount(ln, &["LineAmount"]))
                })
                .collect(),
            Provider::Zoho => lines(v, "line_items")
                .map(|ln| {
                    let a = amount(ln, &["amount"]);
                    let credit = ln.get("debit_or_credit").and_then(Value::as_str) == Some("credit");
                    (text(ln, &["account_id"]), None, if credit { -a } else { a })
                })
                .collect(),
        };
        let entry =
            raw.into_iter().map(|(id, code, a)| (l.resolve(id, code, if a >= 0 { Role::Expense } else { Role::Income }), a)).collect();
        l.post(Entity::Journal, &r.id, date, entry);
    }

    // Money spent, received and moved without a document (Zoho's transfers are bank transactions
    // of type transfer_fund; `Org::records` gives them as BankTransfer).
    for e in [Entity::Expense, Entity::BankTransaction, Entity::BankTransfer] {
        for r in live_records(e) {
            let v = &r.value;
            let date = day(v, dates, r);
            match p {
                Provider::Quickbooks | Provider::Xero if e == Entity::BankTransfer => {
                    let (from, to) = match p {
                        Provider::Quickbooks => (text(v, &["FromAccountRef", "value"]), text(v, &["ToAccountRef", "value"])),
                        _ => (
                            text(v, &["FromBankAccount", "AccountID"]).map(|s| s.to_ascii_lowercase()),
                            text(v, &["ToBankAccount", "AccountID"]).map(|s| s.to_ascii_lowercase()),
                        ),
                    };
                    let a = amount(v, &["Amount"]);
                    let (from, to) = (l.resolve(from, None, Role::Bank), l.resolve(to, None, Role::Bank));
                    l.post(e, &r.id, date, vec![(to, a), (from, -a)]);
                }
                Provider::Quickbooks if e == Entity::Expense => {
                    // A Purchase with Credit true is a refund: money back into the account.
                    let refund = v.get("Credit").and_then(Value::as_bool) == Some(true);
                    let d = doc_lines(p, e, v);
                    let bank = (text(v, &["AccountRef", "value"]), Role::Bank);
                    post_doc(&mut l, org, e, r, date, d, if refund { -1 } else { 1 }, Role::Expense, bank);
                }
                Provider::Quickbooks => {
                    let d = doc_lines(p, e, v);
                    let bank = (text(v, &["DepositToAccountRef", "value"]), Role::Bank);
                    post_doc(&mut l, org, e, r, date, d, -1, Role::Income, bank);
                }
                Provider::Xero => {
                    let kind = v.get("Type").and_then(Value::as_str).unwrap_or_default();
                    if kind.ends_with("-TRANSFER") {
                        continue;
                    }
                    let spend = kind.starts_with("SPEND");
                    let bank = text(v, &["BankAccount", "AccountID"]).map(|s| s.to_ascii_lowercase());
                    let bank = bank.or_else(|| text(v, &["BankAccount", "Code"]).and_then(|c| l.codes.get(&c).cloned()));
                    let d = doc_lines(p, e, v);
                    let (sign, role) = if spend { (1, Role::Expense) } else { (-1, Role::Income) };
                    post_doc(&mut l, org, e, r, date, d, sign, role, (bank, Role::Bank));
                }
                Provider::Zoho if e == Entity::Expense => {
                    let d = doc_lines(p, e, v);
                    post_doc(&mut l, org, e, r, date, d, 1, Role::Expense, (text(v, &["paid_through_account_id"]), Role::Bank));
                }
                Provider::Zoho => {
                    let a = amount(v, &["amount"]);
                    let (from, to) = (text(v, &["from_account_id"]), text(v, &["to_account_id"]));
                    let (dr, cr) = match (from, to) {
                        (Some(f), Some(t)) => (l.resolve(Some(t), None, Role::Bank), l.resolve(Some(f), None, Role::Income)),
                        _ if v.get("debit_or_credit").and_then(Value::as_str) == Some("credit") => {
                            (l.default_for(Role::Expense), l.resolve(text(v, &["account_id"]), None, Role::Bank))
                        }
                        _ => (l.resolve(text(v, &["account_id"]), None, Role::Bank), l.default_for(Role::Income)),
                    };
                    l.post(e, &r.id, date, vec![(dr, a), (cr, -a)]);
                }
            }
        }
    }

    l
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::{beginning, trial_balance};
    use chrono::Utc;
    use serde_json::json;

    /// A document's figures read from its own header fields, not its lines: (total, tax).
    fn figures(p: Provider, e: Entity, v: &Value) -> (i64, i64) {
        match p {
            Provider::Quickbooks => (amount(v, &["TotalAmt"]), amount(v, &["TxnTaxDetail", "TotalTax"])),
            Provider::Xero => (amount(v, &["Total"]), amount(v, &["TotalTax"])),
            Provider::Zoho if e == Entity::Expense => (amount(v, &["total"]), amount(v, &["tax_amount"])),
            Provider::Zoho => (amount(v, &["total"]), amount(v, &["tax_total"])),
        }
    }

    fn paid(p: Provider, v: &Value) -> i64 {
        match p {
            Provider::Quickbooks => amount(v, &["TotalAmt"]),
            Provider::Xero => amount(v, &["Amount"]),
            Provider::Zoho => amount(v, &["amount"]),
        }
    }

    /// What the books must hold, recomputed from the records' totals (never their lines), with the
    /// liveness rules written out again here.
    struct Want {
        income: i64,
        expenses: i64,
        tax: i64,
        bank: i64,
        receivable_less_credits: i64,
        payable: i64,
    }

    fn live_here(p: Provider, e: Entity, r: &Record) -> bool {
        let st = |k: &str| r.value.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        !r.deleted
            && match p {
                Provider::Quickbooks => true,
                Provider::Xero if e == Entity::Journal => st("Status") == "POSTED",
                Provider::Xero => !["DRAFT", "SUBMITTED", "DELETED", "VOIDED"].contains(&st("Status").as_str()),
                Provider::Zoho => !["draft", "void"].contains(&st("status").as_str()),
            }
    }

    fn want(org: &Org) -> Want {
        let p = org.provider;
        let mut w = Want { income: 0, expenses: 0, tax: 0, bank: 0, receivable_less_credits: 0, payable: 0 };
        let each = |e: Entity| org.records(e).filter(move |r| live_here(p, e, r)).map(|r| &r.value);
        for v in each(Entity::Invoice) {
            let (t, x) = figures(p, Entity::Invoice, v);
            w.income += t - x;
            w.tax -= x;
            w.receivable_less_credits += t;
        }
        for v in each(Entity::CreditNote) {
            let (t, x) = figures(p, Entity::CreditNote, v);
            w.income -= t - x;
            w.tax += x;
            w.receivable_less_credits -= t;
        }
        for v in each(Entity::Bill) {
            let (t, x) = figures(p, Entity::Bill, v);
            w.expenses += t - x;
            w.tax += x;
            w.payable += t;
        }
        for v in each(Entity::VendorCredit) {
            let (t, x) = figures(p, Entity::VendorCredit, v);
            w.expenses -= t - x;
            w.tax -= x;
            w.payable -= t;
        }
        for v in each(Entity::Payment) {
            w.bank += paid(p, v);
            w.receivable_less_credits -= paid(p, v);
        }
        for v in each(Entity::BillPayment) {
            w.bank -= paid(p, v);
            w.payable -= paid(p, v);
        }
        for v in each(Entity::Expense) {
            let (t, x) = figures(p, Entity::Expense, v);
            w.expenses += t - x;
            w.tax += x;
            w.bank -= t;
        }
        for v in each(Entity::BankTransaction) {
            if v.get("Type").and_then(Value::as_str).is_some_and(|t| t.ends_with("-TRANSFER")) {
                continue;
            }
            let t = match p {
                Provider::Zoho => amount(v, &["amount"]),
                _ => figures(p, Entity::BankTransaction, v).0,
            };
            w.income += t;
            w.bank += t;
        }
        // Generated journals move an amount from the bank to an expense account.
        for v in each(Entity::Journal) {
            let t = match p {
                Provider::Quickbooks => amount(v, &["TotalAmt"]),
                Provider::Xero => lines(v, "JournalLines").map(|l| amount(l, &["LineAmount"]).max(0)).sum(),
                Provider::Zoho => amount(v, &["total"]),
            };
            w.expenses += t;
            w.bank -= t;
        }
        w
    }

    /// Sums of the ledger's balances per class or kind, as the reports group them.
    fn got(l: &Ledger, to: NaiveDate) -> Want {
        let b = l.balances(beginning(), to);
        let total = |f: &dyn Fn(&Account) -> bool| -> i64 { l.accounts.iter().filter(|a| f(a)).filter_map(|a| b.get(&a.id)).sum() };
        Want {
            income: -total(&|a| a.class == Class::Income),
            expenses: total(&|a| a.class == Class::Expense),
            tax: total(&|a| a.kind == Kind::Tax),
            bank: total(&|a| a.kind == Kind::Bank),
            receivable_less_credits: total(&|a| a.kind == Kind::Receivable) + total(&|a| a.id == "sandbox:customer-credits"),
            payable: -total(&|a| a.kind == Kind::Payable),
        }
    }

    fn check(org: &Org, what: &str) {
        let p = org.provider;
        let to = Utc::now().date_naive() + chrono::Duration::days(1);
        let l = Ledger::of(org);
        let tb = trial_balance(&l, to);
        assert_eq!(tb.debits, tb.credits, "{p:?} {what}: the trial balance sums to zero");
        assert!(tb.debits > 0, "{p:?} {what}: the books hold something");
        let b = l.balances(beginning(), to);
        for (a, dr, cr) in &tb.rows {
            assert_eq!(dr - cr, b[&a.id], "{p:?} {what}: the trial balance row of {} is the ledger's sum", a.name);
        }
        assert_eq!(tb.rows.len(), b.values().filter(|x| **x != 0).count(), "{p:?} {what}: every account with a balance is a row");
        let (w, g) = (want(org), got(&l, to));
        assert_eq!((g.income, g.expenses), (w.income, w.expenses), "{p:?} {what}: income and expenses");
        assert_eq!(g.tax, w.tax, "{p:?} {what}: tax");
        assert_eq!(g.bank, w.bank, "{p:?} {what}: bank");
        assert_eq!(g.receivable_less_credits, w.receivable_less_credits, "{p:?} {what}: receivables less customer credits");
        assert_eq!(g.payable, w.payable, "{p:?} {what}: payables");
        // Assets = liabilities + equity, equity being the earnings.
        let sheet = crate::reports::Sheet::of(&l, to);
        assert_eq!(sheet.assets(), sheet.liabilities() + sheet.equity_total(), "{p:?} {what}: the balance sheet balances");
        assert_eq!(sheet.before_year + sheet.this_year, w.income - w.expenses, "{p:?} {what}: earnings");
    }

    /// An org with every entity the sandbox serves, its accounts first so lines name an income and
    /// an expense account.
    fn full_org(p: Provider) -> Org {
        let now = Utc::now();
        let mut org = Org::new(p, "o1", "Org", None, now);
        for _ in 0..5 {
            org.generate(Entity::Account, now);
        }
        for _ in 0..2 {
            for e in Entity::ALL {
                org.generate(e, now);
            }
        }
        // A second payment on the newest invoice pays more than it owes: a customer credit.
        org.generate(Entity::Payment, now);
        org
    }

    #[test]
    fn every_entity_posts_books_that_balance_and_agree_with_the_records_totals() {
        for p in Provider::ALL {
            let org = full_org(p);
            check(&org, "generated");
            let l = Ledger::of(&org);
            let kinds: std::collections::HashSet<Entity> = l.postings.iter().map(|x| x.entity).collect();
            for e in [
                Entity::Invoice,
                Entity::Bill,
                Entity::CreditNote,
                Entity::VendorCredit,
                Entity::Payment,
                Entity::BillPayment,
                Entity::Journal,
                Entity::Expense,
                Entity::BankTransaction,
                Entity::BankTransfer,
            ] {
                assert!(kinds.contains(&e), "{p:?}: {e:?} posts");
            }
            assert!(l.account("sandbox:customer-credits").is_some(), "{p:?}: the overpayment is a customer credit");
        }
    }

    /// Voided, draft and deleted records leave the books; what stays still balances.
    #[test]
    fn voided_draft_and_deleted_records_do_not_post() {
        let now = Utc::now();
        for p in Provider::ALL {
            let mut org = full_org(p);
            let before = Ledger::of(&org);
            let inv = org.records(Entity::Invoice).next().unwrap().id.clone();
            let bill = org.records(Entity::Bill).next().unwrap().id.clone();
            let mut v = org.get(Entity::Invoice, &inv).unwrap().value.clone();
            match p {
                Provider::Quickbooks => {
                    org.delete(Entity::Invoice, &inv, now);
                }
                Provider::Xero => {
                    v["Status"] = json!("VOIDED");
                    org.put(Entity::Invoice, &inv, v, now);
                }
                Provider::Zoho => {
                    v["status"] = json!("draft");
                    org.put(Entity::Invoice, &inv, v, now);
                }
            }
            org.delete(Entity::Bill, &bill, now);
            let journal = org.records(Entity::Journal).next().unwrap().id.clone();
            org.delete(Entity::Journal, &journal, now);
            check(&org, "after voids and deletions");
            let after = Ledger::of(&org);
            for id in [&inv, &bill, &journal] {
                assert!(before.postings.iter().any(|x| &x.record == id), "{p:?}: {id} posted before");
                assert!(after.postings.iter().all(|x| &x.record != id), "{p:?}: {id} posts nothing now");
            }
        }
    }

    /// The checks can fail: a bill whose lines no longer add up to its total shows in payables.
    #[test]
    fn a_document_whose_lines_disagree_with_its_total_is_caught() {
        let now = Utc::now();
        for p in Provider::ALL {
            let mut org = full_org(p);
            let bill = org.records(Entity::Bill).next().unwrap().id.clone();
            let mut v = org.get(Entity::Bill, &bill).unwrap().value.clone();
            let key = match p {
                Provider::Quickbooks => "TotalAmt",
                Provider::Xero => "Total",
                Provider::Zoho => "total",
            };
            v[key] = json!(cents(v.get(key)) as f64 / 100.0 + 1.0);
            org.put(Entity::Bill, &bill, v, now);
            let r = std::panic::catch_unwind(|| check(&org, "tampered"));
            assert!(r.is_err(), "{p:?}: a bill total one dollar off its lines is noticed");
        }
    }

    /// Records with no accounts, amounts that are not numbers, and unknown account ids post without
    /// panicking, and the books still balance.
    #[test]
    fn hostile_records_post_safely_and_balance() {
        let now = Utc::now();
        for p in Provider::ALL {
            let mut org = Org::new(p, "o1", "Org", None, now);
            let hostile = [
                json!({}),
                json!({"Line": "x", "LineItems": 7, "line_items": null, "TotalAmt": "abc", "Total": {}, "total": [1]}),
                json!({"Line": [{"Amount": "12.5", "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": {"ItemAccountRef": {"value": 5}}}],
                       "LineItems": [{"LineAmount": 1e300, "AccountID": "nope"}, {"LineAmount": "NaN"}],
                       "line_items": [{"item_total": "7", "account_id": "nope"}, {"item_total": -3.5}],
                       "TxnTaxDetail": {"TotalTax": "1"}, "TotalTax": 1, "tax_total": 1, "Type": "SPEND", "transaction_type": "deposit",
                       "amount": "9", "Amount": 9, "Date": "not a date", "date": "2020-13-45"}),
            ];
            for (k, v) in hostile.iter().enumerate() {
                for e in Entity::ALL {
                    org.put(e, &format!("h{k}{}", e.generic()), v.clone(), now);
                }
            }
            let l = Ledger::of(&org);
            let tb = trial_balance(&l, Utc::now().date_naive() + chrono::Duration::days(1));
            assert_eq!(tb.debits, tb.credits, "{p:?}");
            assert!(!l.postings.is_empty(), "{p:?}: the numeric parts post");
            let _ = Ledger::cash(&org);
            let _ = crate::reports::quickbooks_trial_balance(&org, beginning(), Utc::now().date_naive(), false, now);
            let _ = crate::reports::xero_balance_sheet(&org, Utc::now().date_naive(), true, now);
            let _ = crate::reports::zoho_pnl(&org, beginning(), Utc::now().date_naive(), false);
        }
    }

    /// Cash basis: documents post nothing; payments are income and expenses when they are made.
    #[test]
    fn cash_basis_counts_payments_not_documents() {
        for p in Provider::ALL {
            let org = full_org(p);
            let l = Ledger::cash(&org);
            let to = Utc::now().date_naive() + chrono::Duration::days(1);
            let tb = trial_balance(&l, to);
            assert_eq!(tb.debits, tb.credits, "{p:?}");
            assert!(l
                .postings
                .iter()
                .all(|x| !matches!(x.entity, Entity::Invoice | Entity::Bill | Entity::CreditNote | Entity::VendorCredit)));
            let received: i64 = org.records(Entity::Payment).map(|r| paid(p, &r.value)).sum();
            let (income, _) = l.profit_and_loss(beginning(), to);
            let deposits: i64 = l.postings.iter().filter(|x| x.entity == Entity::BankTransaction && x.amount < 0).map(|x| -x.amount).sum();
            assert_eq!(income.iter().map(|(_, x)| x).sum::<i64>(), received + deposits, "{p:?}: cash income");
        }
    }
}
