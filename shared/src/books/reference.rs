//! Reference data of the books: the tax rates and accounts (and later items and tracking
//! categories) that documents' lines name, as the app reads them and as writes are checked against
//! (a line's `tax_code` is a stored tax rate's `code`, its account a stored account's id or code).
//!
//! As for documents, each provider describes where the fields sit with a map (JSON paths,
//! alternatives in order, small tables of the provider's words); [`map_tax_rate`] and
//! [`map_account`] are the one reader each. Provider JSON is untrusted: a field that cannot be read
//! is absent, never an error or a panic.

use serde_json::Value;

use super::{at, first_text, money_of, prefixed_tracking, text_of, Path, PrefixedTracking, Ref};
use crate::money::{currency_code, Money};

/// The typed part of a reference-data record (one of these is set, by its entity), kept flat in the
/// record beside `document` and `company`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Parts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_rate: Option<TaxRate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<Account>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<Item>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_category: Option<TrackingCategory>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<Journal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bank_transaction: Option<super::bank::BankTransaction>,
}

/// Whether a record is in use, read from a boolean or from a status word.
#[derive(Debug)]
pub enum ActiveRule {
    /// A boolean field (QuickBooks `Active`, Zoho `is_active`).
    Flag(&'static [Path]),
    /// A status field matched case-insensitively against (word, active); another word reads as
    /// unknown (absent).
    Status(Path, &'static [(&'static str, bool)]),
    /// The provider states nothing (Xero Items): a listed record is in use.
    Listed,
}

fn active(rule: &ActiveRule, v: &Value) -> Option<bool> {
    match rule {
        ActiveRule::Flag(paths) => paths.iter().find_map(|p| at(v, p).and_then(Value::as_bool)),
        ActiveRule::Status(path, table) => {
            let s = at(v, path).and_then(Value::as_str)?;
            table.iter().find(|(k, _)| k.eq_ignore_ascii_case(s.trim())).map(|(_, a)| *a)
        }
        ActiveRule::Listed => Some(true),
    }
}

/// One rate a tax code combines (Xero TaxComponents, QuickBooks TaxRateDetail, Zoho group taxes).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TaxComponent {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Percentage as decimal text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
    /// Charged on the other components as well as the net amount.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compound: Option<bool>,
}

/// A tax code as the app reads it (`schemas/records.v1.json#/$defs/TaxRate`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TaxRate {
    /// What a document line's `tax_code` names: QuickBooks TaxCode Id, Xero TaxType, Zoho tax_id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The effective percentage as decimal text (`8.25`). QuickBooks states it on each TaxRate, not
    /// on the code: there it is the sum of the sales components' rates, absent when one of them is
    /// compound or has no rate (see `TaxRateMap::rate_from_components`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<TaxComponent>,
}

/// Where one provider's tax code fields are.
#[derive(Debug)]
pub struct TaxRateMap {
    pub code: &'static [Path],
    pub name: &'static [Path],
    pub rate: &'static [Path],
    pub active: ActiveRule,
    /// (array of components, id, name, rate, compound flag), each array read in turn.
    pub components: &'static [(Path, Path, Path, Path, Path)],
    /// The code states no rate of its own (QuickBooks): its rate is the sum of the rates of the
    /// first array's components, each of which must apply to the net amount alone: (the
    /// component's field that says how it applies, the word for the net amount). A component with
    /// another word is compound (it is charged on tax too), and then no sum is the code's rate.
    pub rate_from_components: Option<(Path, &'static str)>,
}

/// Most decimals a summed rate keeps (8.875% has three).
const RATE_SCALE: u32 = 6;

/// `a + b + ...` of decimal texts, exact to [`RATE_SCALE`] decimals, written without trailing zeros.
fn sum_rates<'a>(rates: impl Iterator<Item = Option<&'a str>>) -> Option<String> {
    let mut total: i64 = 0;
    let mut any = false;
    for r in rates {
        total = total.checked_add(crate::money::parse_minor(r?, RATE_SCALE)?)?;
        any = true;
    }
    if !any {
        return None;
    }
    let unit = 10i64.pow(RATE_SCALE);
    let (int, frac) = (total / unit, (total % unit).unsigned_abs());
    let sign = if total < 0 && int == 0 { "-" } else { "" };
    let frac = format!("{frac:0width$}", width = RATE_SCALE as usize);
    let frac = frac.trim_end_matches('0');
    Some(if frac.is_empty() { format!("{sign}{int}") } else { format!("{sign}{int}.{frac}") })
}

pub fn map_tax_rate(map: &TaxRateMap, v: &Value) -> TaxRate {
    let mut components = Vec::new();
    // How many components the first array gave (those a summed rate adds up).
    let mut first = None;
    for (list, id, name, rate, compound) in map.components {
        if let Some(Value::Array(items)) = at(v, list) {
            for c in items.iter().filter(|c| c.is_object()) {
                let applies = map
                    .rate_from_components
                    .map(|(field, net)| at(c, field).and_then(Value::as_str).is_some_and(|w| !w.trim().eq_ignore_ascii_case(net)));
                let comp = TaxComponent {
                    id: at(c, id).and_then(text_of),
                    name: at(c, name).and_then(text_of),
                    rate: at(c, rate).and_then(text_of),
                    compound: at(c, compound).and_then(Value::as_bool).or(applies.filter(|c| *c)),
                };
                if comp != TaxComponent::default() {
                    components.push(comp);
                }
            }
        }
        first.get_or_insert(components.len());
    }
    let summed = map.rate_from_components.and_then(|_| {
        let firsts = &components[..first.unwrap_or(0)];
        if firsts.iter().any(|c| c.compound == Some(true)) {
            return None;
        }
        sum_rates(firsts.iter().map(|c| c.rate.as_deref()))
    });
    TaxRate {
        code: first_text(v, map.code),
        name: first_text(v, map.name),
        rate: first_text(v, map.rate).or(summed),
        active: active(&map.active, v),
        components,
    }
}

/// The side of the balance sheet or the profit and loss an account is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountClass {
    Asset,
    Liability,
    Equity,
    Revenue,
    Expense,
}

/// An account's typed part as the app reads it (`schemas/records.v1.json#/$defs/Account`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Account {
    /// The account number or code (QuickBooks AcctNum, Xero Code, Zoho account_code).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The provider's own type word (QuickBooks AccountType, Xero Type, Zoho account_type).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub account_type: Option<String>,
    /// Normalised from the provider's class or type; absent for a word the map does not know.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<AccountClass>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// A bank account (payments can be made from and to it).
    pub bank: bool,
    /// False when archived (Xero) or made inactive (QuickBooks, Zoho).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// Where the provider sends it (QuickBooks CurrentBalance); minor units.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balance: Option<Money>,
}

/// Where the class comes from.
#[derive(Debug)]
pub enum ClassRule {
    /// A class field (QuickBooks Classification, Xero Class) matched against the table.
    Field(Path, &'static [(&'static str, AccountClass)]),
    /// The type word itself, matched against the table (Zoho has no class field).
    FromType(&'static [(&'static str, AccountClass)]),
}

#[derive(Debug)]
pub struct AccountMap {
    pub code: &'static [Path],
    pub name: &'static [Path],
    pub account_type: &'static [Path],
    pub class: ClassRule,
    pub currency: &'static [Path],
    /// Type words that mean a bank account.
    pub bank_types: &'static [&'static str],
    pub active: ActiveRule,
    pub balance: &'static [Path],
}

pub fn map_account(map: &AccountMap, v: &Value) -> Account {
    let account_type = first_text(v, map.account_type);
    let lookup = |word: Option<&str>, table: &[(&str, AccountClass)]| {
        word.and_then(|w| table.iter().find(|(k, _)| k.eq_ignore_ascii_case(w.trim())).map(|(_, c)| *c))
    };
    let class = match &map.class {
        ClassRule::Field(path, table) => lookup(at(v, path).and_then(Value::as_str), table),
        ClassRule::FromType(table) => lookup(account_type.as_deref(), table),
    };
    let currency = currency_code(first_text(v, map.currency).as_deref());
    let balance = currency.as_deref().and_then(|c| money_of(v, map.balance, c));
    Account {
        code: first_text(v, map.code),
        name: first_text(v, map.name),
        bank: account_type.as_deref().is_some_and(|t| map.bank_types.iter().any(|b| b.eq_ignore_ascii_case(t))),
        account_type,
        class,
        currency,
        active: active(&map.active, v),
        balance,
    }
}

/// A product or service as the app reads it (`schemas/records.v1.json#/$defs/Item`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Item {
    /// The item's code or SKU (QuickBooks Sku, Xero Code, Zoho sku).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The provider's own kind (QuickBooks Type: Service, NonInventory, Inventory; Zoho product_type).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub item_type: Option<String>,
    /// Unit prices as the provider's decimal text (they may carry more decimals than the currency).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sales_price: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purchase_price: Option<String>,
    /// The account sales of it post to (`id`: the account's id, or its code where the provider
    /// names accounts by code, as Xero does here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub income_account: Option<Ref>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expense_account: Option<Ref>,
    /// Tax codes of its sales and purchases (a stored tax rate's `code`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tax_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purchase_tax_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
}

#[derive(Debug)]
pub struct ItemMap {
    pub code: &'static [Path],
    pub name: &'static [Path],
    pub description: &'static [Path],
    pub item_type: &'static [Path],
    pub sales_price: &'static [Path],
    pub purchase_price: &'static [Path],
    /// (id, name) alternatives.
    pub income_account: (&'static [Path], &'static [Path]),
    pub expense_account: (&'static [Path], &'static [Path]),
    pub tax_code: &'static [Path],
    pub purchase_tax_code: &'static [Path],
    pub active: ActiveRule,
}

pub fn map_item(map: &ItemMap, v: &Value) -> Item {
    let reference = |(id, name): (&[Path], &[Path])| {
        let (id, name) = (first_text(v, id), first_text(v, name));
        (id.is_some() || name.is_some()).then_some(Ref { id, name })
    };
    Item {
        code: first_text(v, map.code),
        name: first_text(v, map.name),
        description: first_text(v, map.description),
        item_type: first_text(v, map.item_type),
        sales_price: first_text(v, map.sales_price),
        purchase_price: first_text(v, map.purchase_price),
        income_account: reference(map.income_account),
        expense_account: reference(map.expense_account),
        tax_code: first_text(v, map.tax_code),
        purchase_tax_code: first_text(v, map.purchase_tax_code),
        active: active(&map.active, v),
    }
}

/// One value lines can be tracked by (a Xero tracking option, a QuickBooks class, a Zoho tag option):
/// `id` is what a line's tracking names.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TrackingOption {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
}

/// A tracking category with its options (`schemas/records.v1.json#/$defs/TrackingCategory`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TrackingCategory {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    pub options: Vec<TrackingOption>,
}

/// Where a category's options are.
#[derive(Debug)]
pub enum OptionsRule {
    /// An array of options: (array, id, name, active rule).
    List(Path, Path, Path, ActiveRule),
    /// The record is itself the one option (a QuickBooks Class or Department): its id after this
    /// prefix (see [`PrefixedTracking`]), name and status.
    SelfOption(&'static str),
}

#[derive(Debug)]
pub struct TrackingMap {
    pub id: &'static [Path],
    pub name: &'static [Path],
    pub active: ActiveRule,
    pub options: OptionsRule,
}

pub fn map_tracking_category(map: &TrackingMap, v: &Value) -> TrackingCategory {
    let name = first_text(v, map.name);
    let in_use = active(&map.active, v);
    let options = match &map.options {
        OptionsRule::SelfOption(prefix) => vec![TrackingOption {
            id: first_text(v, map.id).map(|id| if prefix.is_empty() { id } else { format!("{prefix}{id}") }),
            name: name.clone(),
            active: in_use,
        }],
        OptionsRule::List(list, id, oname, rule) => match at(v, list) {
            Some(Value::Array(items)) => items
                .iter()
                .filter(|o| o.is_object())
                .map(|o| TrackingOption { id: at(o, id).and_then(text_of), name: at(o, oname).and_then(text_of), active: active(rule, o) })
                .filter(|o| o.id.is_some() || o.name.is_some())
                .collect(),
            _ => Vec::new(),
        },
    };
    TrackingCategory { name, active: in_use, options }
}

/// One line of a journal: a debit or a credit to an account.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JournalLine {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<Ref>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Minor units; one of debit and credit is set when the amount could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub debit: Option<Money>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credit: Option<Money>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tracking: Vec<Ref>,
}

/// A manual journal entry with its lines (`schemas/records.v1.json#/$defs/Journal`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Journal {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub narration: Option<String>,
    /// ISO 4217; `XXX` when the provider names none (Xero manual journals are in the org's base
    /// currency, which the journal does not state).
    pub currency: String,
    pub lines: Vec<JournalLine>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_debit: Option<Money>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_credit: Option<Money>,
    /// Debits equal credits. Absent when the lines are not all here or an amount could not be read;
    /// false is flagged on the record (`journal_unbalanced`), not refused: the provider keeps the
    /// journal as it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balanced: Option<bool>,
    /// False when the answer left the lines out (Zoho's list summaries).
    pub lines_complete: bool,
}

/// How a journal line's amount says its side.
#[derive(Debug)]
pub enum SideRule {
    /// One signed amount: positive is a debit (Xero LineAmount).
    Signed(Path),
    /// An amount and a side word: (amount, side, debit word, credit word), matched
    /// case-insensitively (QuickBooks PostingType Debit/Credit, Zoho debit_or_credit).
    Typed(Path, Path, &'static str, &'static str),
}

#[derive(Debug)]
pub struct JournalMap {
    pub narration: &'static [Path],
    pub currency: &'static [Path],
    pub lines: Path,
    /// Lines that are not journal lines (their DetailType): skipped when set.
    pub line_kind: Option<(Path, &'static str)>,
    pub account_id: &'static [Path],
    pub account_name: &'static [Path],
    pub description: &'static [Path],
    pub side: SideRule,
    /// Per line: (where: an array of tracking objects or one object, option id, option name, id prefix).
    pub tracking: &'static [PrefixedTracking],
}

pub fn map_journal(map: &JournalMap, v: &Value) -> Journal {
    let currency = currency_code(first_text(v, map.currency).as_deref()).unwrap_or_else(|| "XXX".to_string());
    let items = match at(v, map.lines) {
        Some(Value::Array(items)) => Some(items),
        _ => None,
    };
    let mut readable = true;
    let mut lines = Vec::new();
    for l in items.into_iter().flatten().filter(|l| l.is_object()) {
        if let Some((path, kind)) = map.line_kind {
            if at(l, path).and_then(Value::as_str).is_some_and(|k| k != kind) {
                continue;
            }
        }
        let (debit, credit) = match &map.side {
            SideRule::Signed(path) => match money_of(l, &[path], &currency) {
                Some(m) if m.minor >= 0 => (Some(m), None),
                Some(m) => (None, m.minor.checked_neg().map(|minor| Money { minor, currency: currency.clone() })),
                None => (None, None),
            },
            SideRule::Typed(amount, side, debit_word, credit_word) => {
                let m = money_of(l, &[amount], &currency);
                match at(l, side).and_then(Value::as_str).map(str::trim) {
                    Some(w) if w.eq_ignore_ascii_case(debit_word) => (m, None),
                    Some(w) if w.eq_ignore_ascii_case(credit_word) => (None, m),
                    _ => (None, None),
                }
            }
        };
        if debit.is_none() && credit.is_none() {
            readable = false;
        }
        let tracking = prefixed_tracking(l, map.tracking);
        let (id, name) = (first_text(l, map.account_id), first_text(l, map.account_name));
        lines.push(JournalLine {
            account: (id.is_some() || name.is_some()).then_some(Ref { id, name }),
            description: first_text(l, map.description),
            debit,
            credit,
            tracking,
        });
    }
    let sum = |f: fn(&JournalLine) -> Option<&Money>| {
        lines
            .iter()
            .filter_map(f)
            .try_fold(0i64, |acc, m| acc.checked_add(m.minor))
            .map(|minor| Money { minor, currency: currency.clone() })
    };
    let (total_debit, total_credit) = (sum(|l| l.debit.as_ref()), sum(|l| l.credit.as_ref()));
    let lines_complete = items.is_some();
    let balanced = match (&total_debit, &total_credit) {
        (Some(d), Some(c)) if lines_complete && readable => Some(d.minor == c.minor),
        _ => None,
    };
    Journal { narration: first_text(v, map.narration), currency, lines, total_debit, total_credit, balanced, lines_complete }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TAX: TaxRateMap = TaxRateMap {
        code: &[&["Code"]],
        name: &[&["Name"]],
        rate: &[&["Rate"]],
        active: ActiveRule::Status(&["Status"], &[("ACTIVE", true), ("ARCHIVED", false)]),
        components: &[(&["Parts"], &["Id"], &["Name"], &["Rate"], &["Compound"])],
        rate_from_components: None,
    };

    /// QuickBooks' shape: no rate on the code, components whose rates are summed unless compound.
    const SUMMED: TaxRateMap = TaxRateMap {
        code: &[&["Id"]],
        name: &[],
        rate: &[],
        active: ActiveRule::Listed,
        components: &[(&["Sales"], &["Id"], &[], &["Rate"], &[]), (&["Buy"], &["Id"], &[], &["Rate"], &[])],
        rate_from_components: Some((&["Applies"], "TaxOnAmount")),
    };

    #[test]
    fn a_code_without_a_rate_sums_its_first_lists_rates_unless_one_is_compound() {
        let t = map_tax_rate(
            &SUMMED,
            &json!({"Sales": [{"Id": 1, "Rate": 6.25, "Applies": "TaxOnAmount"}, {"Id": 2, "Rate": "2"}], "Buy": [{"Id": 3, "Rate": 10}]}),
        );
        assert_eq!((t.rate.as_deref(), t.components.len()), (Some("8.25"), 3), "purchase rates are not added");
        let c = map_tax_rate(&SUMMED, &json!({"Sales": [{"Id": 1, "Rate": 5}, {"Id": 2, "Rate": 1, "Applies": "TaxOnAmountPlusTax"}]}));
        assert_eq!((c.rate, c.components[1].compound), (None, Some(true)));
        let unknown = map_tax_rate(&SUMMED, &json!({"Sales": [{"Id": 1, "Rate": 5}, {"Id": 2}]}));
        assert_eq!(unknown.rate, None, "a component without its rate leaves the sum unknown");
        assert_eq!(map_tax_rate(&SUMMED, &json!({"Buy": [{"Id": 3, "Rate": 10}]})).rate, None, "no sales components, no rate");
        assert_eq!(map_tax_rate(&SUMMED, &json!({"Sales": [{"Rate": "8.875"}, {"Rate": "0.125"}]})).rate.as_deref(), Some("9"));
        assert_eq!(map_tax_rate(&SUMMED, &json!({"Sales": [{"Rate": "1e3"}]})).rate, None);
    }

    const ACCOUNT: AccountMap = AccountMap {
        code: &[&["Code"]],
        name: &[&["Name"]],
        account_type: &[&["Type"]],
        class: ClassRule::FromType(&[("income", AccountClass::Revenue), ("bank", AccountClass::Asset)]),
        currency: &[&["Cur"]],
        bank_types: &["bank"],
        active: ActiveRule::Flag(&[&["On"]]),
        balance: &[&["Balance"]],
    };

    #[test]
    fn a_tax_code_reads_with_its_components_and_status() {
        let t = map_tax_rate(
            &TAX,
            &json!({"Code": "GST", "Name": "GST on Income", "Rate": 15.0, "Status": "archived",
                "Parts": [{"Id": 1, "Name": "GST", "Rate": "15", "Compound": false}, null, {}]}),
        );
        assert_eq!((t.code.as_deref(), t.rate.as_deref(), t.active), (Some("GST"), Some("15.0"), Some(false)));
        assert_eq!(
            t.components,
            vec![TaxComponent { id: Some("1".into()), name: Some("GST".into()), rate: Some("15".into()), compound: Some(false) }]
        );
        assert_eq!(map_tax_rate(&TAX, &json!({"Status": "PENDING"})).active, None, "a word the table does not know is unknown");
    }

    #[test]
    fn an_account_reads_its_class_bank_flag_and_balance() {
        let a = map_account(&ACCOUNT, &json!({"Code": "090", "Type": "Bank", "Cur": "usd", "On": true, "Balance": "12.34"}));
        assert_eq!((a.class, a.bank, a.active), (Some(AccountClass::Asset), true, Some(true)));
        assert_eq!(a.balance, Some(Money { minor: 1234, currency: "USD".into() }));
        let b = map_account(&ACCOUNT, &json!({"Type": "Mystery", "Balance": 5}));
        assert_eq!((b.class, b.bank, b.balance), (None, false, None), "no currency, no balance");
    }

    const ITEM: ItemMap = ItemMap {
        code: &[&["Sku"], &["Code"]],
        name: &[&["Name"]],
        description: &[],
        item_type: &[],
        sales_price: &[&["Sales", "Price"]],
        purchase_price: &[],
        income_account: (&[&["Sales", "Account"]], &[]),
        expense_account: (&[], &[]),
        tax_code: &[&["Sales", "Tax"]],
        purchase_tax_code: &[],
        active: ActiveRule::Listed,
    };

    #[test]
    fn an_item_reads_prices_as_text_and_accounts_as_references() {
        let i = map_item(&ITEM, &json!({"Code": "PAPER", "Name": "Paper", "Sales": {"Price": 12.345, "Account": "200", "Tax": "OUTPUT"}}));
        assert_eq!((i.code.as_deref(), i.sales_price.as_deref(), i.tax_code.as_deref()), (Some("PAPER"), Some("12.345"), Some("OUTPUT")));
        assert_eq!(i.income_account, Some(Ref { id: Some("200".into()), name: None }));
        assert_eq!((i.expense_account, i.active), (None, Some(true)));
        for v in [json!(null), json!({"Sales": "x", "Sku": [], "Name": {"a": 1}}), json!({"Sales": {"Price": {}, "Account": [1]}})] {
            let i = map_item(&ITEM, &v);
            assert!(i.code.is_none() && i.sales_price.is_none() && i.income_account.is_none(), "{v}");
        }
    }

    #[test]
    fn tracking_options_read_from_a_list_or_from_the_record_itself() {
        let list = TrackingMap {
            id: &[&["Id"]],
            name: &[&["Name"]],
            active: ActiveRule::Status(&["Status"], &[("ACTIVE", true), ("ARCHIVED", false)]),
            options: OptionsRule::List(&["Options"], &["Id"], &["Name"], ActiveRule::Status(&["Status"], &[("ACTIVE", true)])),
        };
        let t = map_tracking_category(
            &list,
            &json!({"Name": "Region", "Status": "ACTIVE", "Options": [{"Id": "o1", "Name": "North", "Status": "ACTIVE"}, 7, {"X": 1}]}),
        );
        assert_eq!(t.options, vec![TrackingOption { id: Some("o1".into()), name: Some("North".into()), active: Some(true) }]);
        let own = TrackingMap {
            id: &[&["Id"]],
            name: &[&["Name"]],
            active: ActiveRule::Flag(&[&["Active"]]),
            options: OptionsRule::SelfOption(""),
        };
        let c = map_tracking_category(&own, &json!({"Id": "5", "Name": "Retail", "Active": false}));
        assert_eq!((c.active, c.options.len(), c.options[0].id.as_deref()), (Some(false), 1, Some("5")));
        let dept = TrackingMap { options: OptionsRule::SelfOption("department-"), ..own };
        assert_eq!(map_tracking_category(&dept, &json!({"Id": "5"})).options[0].id.as_deref(), Some("department-5"));
        for v in [json!(null), json!({"Options": {"a": 1}}), json!({"Options": [[], null, {"Id": {}}]})] {
            assert!(map_tracking_category(&list, &v).options.is_empty(), "{v}");
        }
    }

    const SIGNED: JournalMap = JournalMap {
        narration: &[&["Note"]],
        currency: &[&["Cur"]],
        lines: &["Lines"],
        line_kind: None,
        account_id: &[&["Acc"]],
        account_name: &[],
        description: &[],
        side: SideRule::Signed(&["Amount"]),
        tracking: &[(&["T"], &["Id"], &["Name"], "")],
    };

    const TYPED: JournalMap = JournalMap {
        narration: &[],
        currency: &[],
        lines: &["Lines"],
        line_kind: Some((&["Kind"], "JE")),
        account_id: &[&["Acc"]],
        account_name: &[],
        description: &[],
        side: SideRule::Typed(&["Amount"], &["Side"], "Debit", "Credit"),
        tracking: &[],
    };

    #[test]
    fn a_journals_debits_and_credits_are_summed_and_an_unbalanced_one_says_so() {
        let j = map_journal(
            &SIGNED,
            &json!({"Cur": "usd", "Lines": [{"Acc": "200", "Amount": 100.1, "T": [{"Id": "o1"}]}, {"Acc": "090", "Amount": "-100.10"}]}),
        );
        assert_eq!((j.total_debit.as_ref().map(|m| m.minor), j.total_credit.as_ref().map(|m| m.minor)), (Some(10010), Some(10010)));
        assert_eq!((j.balanced, j.lines_complete, j.lines[0].tracking.len()), (Some(true), true, 1));
        let off = map_journal(
            &TYPED,
            &json!({"Lines": [{"Kind": "JE", "Amount": 5, "Side": "debit"}, {"Kind": "JE", "Amount": 4, "Side": "Credit"},
            {"Kind": "Other", "Amount": 1, "Side": "Credit"}]}),
        );
        assert_eq!((off.lines.len(), off.balanced, off.currency.as_str()), (2, Some(false), "XXX"));
        let unread = map_journal(&TYPED, &json!({"Lines": [{"Amount": 5, "Side": "sideways"}, {"Amount": 5, "Side": "Credit"}]}));
        assert_eq!(unread.balanced, None, "an unreadable line leaves the balance unknown, not false");
        let summary = map_journal(&SIGNED, &json!({"Note": "x"}));
        assert_eq!((summary.lines_complete, summary.balanced), (false, None));
        for v in [
            json!(null),
            json!({"Lines": "x"}),
            json!({"Lines": [1, null, {"Amount": [1]}, {"Amount": "9e99"}]}),
            json!({"Lines": [{"Amount": -9223372036854775808i64}]}),
            json!({"Lines": [{"Amount": 92233720368547758i64}, {"Amount": 92233720368547758i64}]}),
        ] {
            let j = map_journal(&SIGNED, &v);
            assert!(j.balanced != Some(true) || j.lines.is_empty(), "{v}");
        }
    }

    #[test]
    fn hostile_shapes_read_as_absent() {
        for v in [
            json!(null),
            json!([1, 2]),
            json!("x"),
            json!({"Code": {"a": 1}, "Rate": [1], "Status": 7, "Parts": {"Id": 1}}),
            json!({"Parts": [1, "s", [], {"Id": {"x": 1}, "Rate": null}], "Type": 9, "On": "yes", "Balance": "1e999", "Cur": "USD"}),
            json!({"Type": "\u{0}\u{ffff}", "Cur": "ÉÉÉ", "Balance": "99999999999999999999999"}),
        ] {
            let t = map_tax_rate(&TAX, &v);
            assert!(t.code.is_none() && t.rate.is_none() && t.components.is_empty(), "{v}");
            let a = map_account(&ACCOUNT, &v);
            assert!(a.balance.is_none() && a.class.is_none() && !a.bank, "{v}");
        }
    }
}
