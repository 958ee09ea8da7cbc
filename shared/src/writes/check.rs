//! Checks a write against the tenant's stored books and builds the provider's body from it. Every
//! problem is found (not only the first) and names its field; nothing here calls a provider.

use serde_json::{json, Map, Value};

use crate::money::{currency_code, currency_scale};
use crate::providers::model::Entity;
use crate::sync::model::SyncRecord;
use crate::writes::wire::{self, put, AppliedWire, Placement, RefBy, SideWire, StatusWire};
use crate::writes::{
    format_minor, line_amount, Action, BankTransactionInput, ContactInput, CreditKind, DocumentInput, JournalInput, JournalStatus,
    LineInput, PaymentInput, Problem, RefInput,
};
use crate::Provider;

/// The most lines a write takes (QuickBooks and Xero document limits are higher; a write from an
/// assistant with more is a mistake, not a document).
pub const MAX_LINES: usize = 500;

/// What of the tenant's stored books a write is checked against (loaded by the worker).
#[derive(Debug, Default)]
pub struct Books<'a> {
    /// The stored contact the document names, if it is stored.
    pub contact: Option<&'a SyncRecord>,
    /// The org's stored accounts.
    pub accounts: &'a [SyncRecord],
    /// The org's stored tax codes; None when the tenant does not sync tax rates (not checked).
    pub tax_codes: Option<&'a [String]>,
    /// The stored documents a payment names (those found).
    pub documents: &'a [SyncRecord],
}

fn inactive(r: &SyncRecord) -> bool {
    r.deleted || r.status.as_deref().is_some_and(|s| matches!(s.to_ascii_lowercase().as_str(), "inactive" | "archived" | "deleted"))
}

/// The account a line names, as the provider takes it (its id or its code).
fn resolve_account(field: &str, r: &RefInput, by: RefBy, books: &Books<'_>, problems: &mut Vec<Problem>) -> Option<String> {
    let found = books.accounts.iter().find(|a| {
        r.id.as_deref().is_some_and(|id| a.provider_id == id) || r.code.as_deref().is_some_and(|c| a.number.as_deref() == Some(c))
    });
    let Some(a) = found else {
        problems.push(Problem::new(
            field,
            "unknown_account",
            "no stored account has this id or code (sync accounts first, or check the id)",
        ));
        return None;
    };
    if inactive(a) {
        problems.push(Problem::new(field, "inactive_account", format!("account {} is archived or inactive", a.provider_id)));
        return None;
    }
    match by {
        RefBy::Id => Some(a.provider_id.clone()),
        RefBy::Code => match &a.number {
            Some(code) => Some(code.clone()),
            None => {
                problems.push(Problem::new(field, "invalid", "this provider names accounts by code, and the account has none"));
                None
            }
        },
    }
}

fn resolve_item(field: &str, r: &RefInput, by: RefBy, problems: &mut Vec<Problem>) -> Option<String> {
    let v = match by {
        RefBy::Id => r.id.clone(),
        RefBy::Code => r.code.clone(),
    };
    if v.as_deref().is_none_or(str::is_empty) {
        let want = if by == RefBy::Id { "id" } else { "code" };
        problems.push(Problem::new(field, "required", format!("this provider names items by {want}")));
    }
    v
}

fn text_ok(field: &str, v: &Option<String>, max: usize, problems: &mut Vec<Problem>) {
    if let Some(s) = v {
        if s.trim().is_empty() || s.chars().count() > max || s.chars().any(char::is_control) {
            problems.push(Problem::new(field, "invalid", format!("1-{max} characters without control characters")));
        }
    }
}

/// The document's currency: the one named, else the contact's, else the books' default (None).
fn currency_of(doc: &DocumentInput, books: &Books<'_>, problems: &mut Vec<Problem>) -> Option<String> {
    let contact_currency = books
        .contact
        .and_then(|c| c.contact.as_ref().and_then(|k| k.currency.clone()).or_else(|| c.amount.as_ref().map(|m| m.currency.clone())))
        .filter(|c| c != "XXX");
    match &doc.currency {
        Some(c) => match currency_code(Some(c)) {
            Some(code) => {
                if let Some(cc) = contact_currency.filter(|cc| *cc != code) {
                    problems.push(Problem::new("record.currency", "currency_mismatch", format!("the contact trades in {cc}, not {code}")));
                }
                Some(code)
            }
            None => {
                problems.push(Problem::new("record.currency", "invalid", "an ISO 4217 code (three letters)"));
                None
            }
        },
        None => contact_currency,
    }
}

/// Checks an invoice or bill and builds the provider's body. `creating`: required fields apply.
pub fn document(provider: Provider, entity: Entity, creating: bool, doc: &DocumentInput, books: &Books<'_>) -> Result<Value, Vec<Problem>> {
    // A credit note is a customer's (written like an invoice) or a supplier's (like a bill).
    let (w, purchase) = match (entity, doc.kind) {
        (Entity::CreditNote, Some(k)) => (wire::credit_note(provider, k == CreditKind::Purchase), k == CreditKind::Purchase),
        (Entity::CreditNote, None) => {
            return Err(vec![Problem::new("record.kind", "required", "a credit note is a customer's (sales) or a supplier's (purchase)")])
        }
        (_, Some(_)) => return Err(vec![Problem::new("record.kind", "unsupported", "only credit notes take a kind")]),
        (_, None) => match wire::document(provider, entity) {
            Some(w) => (w, entity == Entity::Bill),
            None => return Err(vec![Problem::new("record", "unsupported", format!("{provider} {entity} writes are not supported"))]),
        },
    };
    let mut problems = Vec::new();
    let mut body = Value::Object(Map::new());
    if creating {
        for (path, v) in w.constants {
            put(&mut body, path, json!(v));
        }
    }
    // An invoice's contact must be a customer, a bill's a supplier, where the stored contact says
    // which it is (QuickBooks keeps customers and vendors apart; Xero and Zoho contacts can be both).
    let role_ok = |c: &SyncRecord| match c.contact.as_ref() {
        Some(k) if purchase => k.is_supplier || !k.is_customer,
        Some(k) => k.is_customer || !k.is_supplier,
        None => true,
    };
    match &doc.contact {
        Some(RefInput { id: Some(id), .. }) if !id.is_empty() => match books.contact {
            Some(c) if !inactive(c) && !role_ok(c) => problems.push(Problem::new(
                "record.contact.id",
                "wrong_contact_role",
                if purchase { "the contact is a customer, not a supplier" } else { "the contact is a supplier, not a customer" },
            )),
            Some(c) if !inactive(c) => put(&mut body, w.contact, json!(id)),
            Some(_) => problems.push(Problem::new("record.contact.id", "unknown_contact", "the contact is archived, inactive or deleted")),
            None => {
                problems.push(Problem::new("record.contact.id", "unknown_contact", "no stored contact has this id (sync contacts first)"))
            }
        },
        Some(_) => problems.push(Problem::new("record.contact.id", "required", "name the contact by its provider id")),
        None if creating => problems.push(Problem::new(
            "record.contact",
            "required",
            "an invoice or a customer's credit names its customer, a bill or a supplier's credit its supplier",
        )),
        None => {}
    }
    text_ok("record.number", &doc.number, 21, &mut problems);
    match (&doc.number, w.number) {
        (Some(n), Some(path)) => put(&mut body, path, json!(n)),
        (Some(_), None) => problems.push(Problem::new("record.number", "unsupported", format!("{provider} numbers this document itself"))),
        (None, _) if creating && w.number_required => {
            problems.push(Problem::new("record.number", "required", format!("{provider} needs a number for this document")))
        }
        (None, _) => {}
    }
    text_ok("record.reference", &doc.reference, 255, &mut problems);
    match (&doc.reference, w.reference) {
        (Some(r), Some(path)) => put(&mut body, path, json!(r)),
        (Some(_), None) => problems.push(Problem::new(
            "record.reference",
            "unsupported",
            format!("{provider} has no reference on this document; use number"),
        )),
        (None, _) => {}
    }
    if let Some(d) = doc.issue_date {
        put(&mut body, w.issue_date, json!(d.to_string()));
    }
    match (doc.due_date, w.due_date) {
        (Some(d), Some(path)) => put(&mut body, path, json!(d.to_string())),
        (Some(_), None) => problems.push(Problem::new("record.due_date", "unsupported", "a credit note has no due date")),
        (None, _) => {}
    }
    if let (Some(i), Some(d)) = (doc.issue_date, doc.due_date) {
        if d < i {
            problems.push(Problem::new("record.due_date", "invalid", "the due date is before the issue date"));
        }
    }
    let currency = currency_of(doc, books, &mut problems);
    if let (Some(c), Some(path)) = (&doc.currency, w.currency) {
        if let Some(code) = currency_code(Some(c)) {
            put(&mut body, path, json!(code));
        }
    }
    if let Some(s) = doc.status {
        match &w.status {
            StatusWire::Field(path, table) => match table.iter().find(|(k, _)| *k == s) {
                Some((_, word)) => put(&mut body, path, json!(word)),
                None => {
                    problems.push(Problem::new("record.status", "unsupported", format!("{provider} does not take this status on a write")))
                }
            },
            StatusWire::Implicit(allowed) if allowed.contains(&s) => {}
            _ => problems.push(Problem::new("record.status", "unsupported", format!("{provider} does not take this status on a write"))),
        }
    }
    match &doc.lines {
        Some(lines) if lines.is_empty() => problems.push(Problem::new("record.lines", "required", "at least one line")),
        Some(lines) if lines.len() > MAX_LINES => {
            problems.push(Problem::new("record.lines", "invalid", format!("at most {MAX_LINES} lines")))
        }
        Some(lines) => {
            let scale = currency_scale(currency.as_deref().unwrap_or("XXX"));
            let mut sum: Option<i64> = Some(0);
            let mut out = Vec::with_capacity(lines.len());
            for (i, l) in lines.iter().enumerate() {
                let (v, amount) = line(provider, &w.line, i, l, scale, books, &mut problems);
                sum = sum.zip(amount).and_then(|(s, a)| s.checked_add(a));
                out.push(v);
            }
            body[w.lines] = Value::Array(out);
            if let (Some(want), Some(got)) = (doc.subtotal, sum) {
                if want != got {
                    problems.push(Problem::new(
                        "record.subtotal",
                        "subtotal_mismatch",
                        format!("the lines add up to {}, not {}", format_minor(got, scale), format_minor(want, scale)),
                    ));
                }
            }
        }
        None if creating => problems.push(Problem::new("record.lines", "required", "at least one line")),
        None => {
            if doc.subtotal.is_some() {
                problems.push(Problem::new("record.subtotal", "invalid", "a subtotal is checked against lines sent with it"));
            }
        }
    }
    if problems.is_empty() {
        Ok(body)
    } else {
        Err(problems)
    }
}

/// One line's body and its amount in minor units (None when it could not be worked out).
fn line(
    provider: Provider,
    w: &wire::LineWire,
    i: usize,
    l: &LineInput,
    scale: u32,
    books: &Books<'_>,
    problems: &mut Vec<Problem>,
) -> (Value, Option<i64>) {
    let f = |name: &str| format!("record.lines[{i}].{name}");
    let mut v = Value::Object(Map::new());
    text_ok(&f("description"), &l.description, 4000, problems);
    if let Some(d) = &l.description {
        v[w.description] = json!(d);
    }
    for (name, t) in [("quantity", &l.quantity), ("unit_price", &l.unit_price)] {
        if t.as_deref().is_some_and(|t| crate::writes::decimal(t).is_none()) {
            problems.push(Problem::new(f(name), "invalid", "decimal text, at most 18 digits and 9 decimals"));
        }
    }
    // The amount: stated, or quantity x unit price; when both, they must agree to the minor unit.
    let quantity = l.quantity.clone().or_else(|| l.unit_price.as_ref().map(|_| "1".to_string()));
    let computed = match (&quantity, &l.unit_price) {
        (Some(q), Some(p)) => line_amount(q, p, scale),
        _ => None,
    };
    let amount = match (l.amount, computed) {
        (Some(a), Some(c)) if a != c => {
            problems.push(Problem::new(
                f("amount"),
                "line_total_mismatch",
                format!("quantity x unit_price is {}, not {}", format_minor(c, scale), format_minor(a, scale)),
            ));
            None
        }
        (Some(a), _) => Some(a),
        (None, Some(c)) => Some(c),
        (None, None) if l.unit_price.is_some() => None,
        (None, None) => {
            problems.push(Problem::new(f("amount"), "required", "a line needs amount, or quantity and unit_price"));
            None
        }
    };
    // A line of an amount alone is one of that price.
    let (quantity, unit_price) = match (&quantity, &l.unit_price, amount) {
        (Some(q), Some(p), _) => (Some(q.clone()), Some(p.clone())),
        (None, None, Some(a)) => (Some("1".to_string()), Some(format_minor(a, scale))),
        _ => (quantity.clone(), l.unit_price.clone()),
    };
    let p: &Placement = match (&l.item, &w.without_item) {
        (None, Some(without)) => without,
        _ => &w.with_item,
    };
    if let Some((type_name, _)) = p.detail {
        v["DetailType"] = json!(type_name);
    }
    let mut d = Value::Object(Map::new());
    if let Some(k) = p.quantity {
        if let Some(q) = &quantity {
            d[k] = wire::number(q);
        }
    }
    if let Some(k) = p.unit_price {
        if let Some(u) = &unit_price {
            d[k] = wire::number(u);
        }
    }
    match (&l.item, p.item) {
        (Some(r), Some((path, by))) => {
            if let Some(x) = resolve_item(&f("item"), r, by, problems) {
                put(&mut d, path, json!(x));
            }
        }
        (Some(_), None) => problems.push(Problem::new(f("item"), "unsupported", format!("{provider} takes no item on this line"))),
        (None, _) => {}
    }
    match (&l.account, p.account) {
        (Some(r), Some((path, by))) => {
            if let Some(x) = resolve_account(&f("account"), r, by, books, problems) {
                put(&mut d, path, json!(x));
            }
        }
        (Some(_), None) => problems.push(Problem::new(
            f("account"),
            "unsupported",
            format!("{provider} takes the account of this line from its item; name the item instead"),
        )),
        (None, _) if l.item.is_none() && w.account_required => {
            problems.push(Problem::new(f("account"), "required", format!("{provider} needs an account on a line without an item")))
        }
        (None, _) => {}
    }
    if let Some(code) = &l.tax_code {
        match (p.tax_code, books.tax_codes) {
            (None, _) => problems.push(Problem::new(f("tax_code"), "unsupported", format!("{provider} takes no tax code on this line"))),
            (Some(_), Some(known)) if !known.iter().any(|k| k == code) => {
                problems.push(Problem::new(f("tax_code"), "unknown_tax_code", "no stored tax rate has this code"))
            }
            (Some(path), _) => put(&mut d, path, json!(code)),
        }
    }
    if let (Some(k), Some(a)) = (w.amount, amount) {
        v[k] = wire::number(&format_minor(a, scale));
    }
    match p.detail {
        Some((_, key)) => v[key] = d,
        None => {
            if let (Value::Object(line), Value::Object(fields)) = (&mut v, d) {
                line.extend(fields);
            }
        }
    }
    (v, amount)
}

/// Checks a contact and builds the provider's body.
pub fn contact(provider: Provider, creating: bool, c: &ContactInput) -> Result<Value, Vec<Problem>> {
    let w = wire::contact(provider);
    let mut problems = Vec::new();
    let mut body = Value::Object(Map::new());
    if creating {
        for (path, v) in w.constants {
            put(&mut body, path, json!(v));
        }
    }
    text_ok("record.name", &c.name, 255, &mut problems);
    match &c.name {
        Some(n) => put(&mut body, w.name, json!(n.trim())),
        None if creating => problems.push(Problem::new("record.name", "required", "a contact has a name")),
        None => {}
    }
    if let Some(e) = &c.email {
        let ok =
            e.len() <= 254 && e.split_once('@').is_some_and(|(a, d)| !a.is_empty() && d.contains('.') && !e.contains(char::is_whitespace));
        if !ok {
            problems.push(Problem::new("record.email", "invalid", "an email address"));
        }
    }
    text_ok("record.phone", &c.phone, 50, &mut problems);
    text_ok("record.tax_number", &c.tax_number, 50, &mut problems);
    let fields =
        [("record.email", &c.email, w.email), ("record.phone", &c.phone, w.phone), ("record.tax_number", &c.tax_number, w.tax_number)];
    for (field, value, path) in fields {
        match (value, path) {
            (Some(v), Some(path)) => put(&mut body, path, json!(v)),
            (Some(_), None) => {
                problems.push(Problem::new(field, "unsupported", format!("{provider} contacts take no such field through writes")))
            }
            (None, _) => {}
        }
    }
    if c.phone.is_some() && w.phone.is_some() {
        for (path, v) in w.phone_constants {
            put(&mut body, path, json!(v));
        }
    }
    if provider == Provider::Zoho && (c.email.is_some() || c.phone.is_some()) {
        // The first contact person carries the email and phone; Zoho wants it marked primary.
        put(&mut body, &["contact_persons", "0", "is_primary_contact"], json!(true));
    }
    match (&c.currency, w.currency) {
        (Some(cur), Some(path)) => match currency_code(Some(cur)) {
            Some(code) => put(&mut body, path, json!(code)),
            None => problems.push(Problem::new("record.currency", "invalid", "an ISO 4217 code (three letters)")),
        },
        (Some(_), None) => problems.push(Problem::new(
            "record.currency",
            "unsupported",
            format!("{provider} contacts take no currency code through writes"),
        )),
        (None, _) => {}
    }
    if problems.is_empty() {
        Ok(body)
    } else {
        Err(problems)
    }
}

/// Checks a payment received (`payment`: a customer pays invoices) or made (`bill_payment`: a
/// supplier is paid for bills) and builds the provider's body: the contact and the account are
/// stored and active, the contact is of the right kind, every document it pays is the contact's and
/// owes at least what is applied, and it applies no more than it is.
pub fn payment(provider: Provider, entity: Entity, creating: bool, p: &PaymentInput, books: &Books<'_>) -> Result<Value, Vec<Problem>> {
    let w = wire::payment(provider, entity);
    let made = entity == Entity::BillPayment;
    let (who, noun) = if made { ("supplier", "bill") } else { ("customer", "invoice") };
    let mut problems = Vec::new();
    if !creating {
        return payment_update(provider, w, p, books);
    }
    let mut body = Value::Object(Map::new());
    for (path, v) in w.constants {
        put(&mut body, path, json!(v));
    }
    let contact_id = p.contact.as_ref().and_then(|c| c.id.clone()).filter(|id| !id.is_empty());
    // As for documents: where the stored contact says which it is, it must be the right kind.
    let role_ok = |c: &SyncRecord| match c.contact.as_ref() {
        Some(k) if made => k.is_supplier || !k.is_customer,
        Some(k) => k.is_customer || !k.is_supplier,
        None => true,
    };
    match (&contact_id, books.contact) {
        (None, _) => problems.push(Problem::new("record.contact.id", "required", format!("the {who}, by provider id"))),
        (Some(_), None) => {
            problems.push(Problem::new("record.contact.id", "unknown_contact", "no stored contact has this id (sync contacts first)"))
        }
        (Some(_), Some(c)) if inactive(c) => {
            problems.push(Problem::new("record.contact.id", "unknown_contact", "the contact is archived, inactive or deleted"))
        }
        (Some(_), Some(c)) if !role_ok(c) => {
            problems.push(Problem::new("record.contact.id", "wrong_contact_role", format!("the contact is not a {who}")))
        }
        (Some(id), Some(_)) => {
            if let Some(path) = w.contact {
                put(&mut body, path, json!(id));
            }
        }
    }
    let currency = match &p.currency {
        Some(c) => match currency_code(Some(c)) {
            Some(code) => Some(code),
            None => {
                problems.push(Problem::new("record.currency", "invalid", "an ISO 4217 code (three letters)"));
                None
            }
        },
        None => books.documents.first().and_then(|d| d.document.as_ref()).map(|d| d.currency.clone()),
    };
    let scale = currency_scale(currency.as_deref().unwrap_or("XXX"));
    let amount = match p.amount {
        Some(a) if a > 0 => {
            put(&mut body, w.amount, wire::number(&format_minor(a, scale)));
            Some(a)
        }
        Some(_) => {
            problems.push(Problem::new("record.amount", "invalid", "more than zero"));
            None
        }
        None => {
            problems.push(Problem::new("record.amount", "required", "the amount paid, in minor units"));
            None
        }
    };
    if let Some(d) = p.date {
        put(&mut body, w.date, json!(d.to_string()));
    }
    match &p.account {
        Some(r) => {
            let (path, by) = w.account;
            if let Some(x) = resolve_account("record.account", r, by, books, &mut problems) {
                put(&mut body, path, json!(x));
            }
        }
        None if w.account_required => {
            let how = if made { "was paid from" } else { "went into" };
            problems.push(Problem::new("record.account", "required", format!("{provider} needs the account the money {how}")))
        }
        None => {}
    }
    text_ok("record.reference", &p.reference, 255, &mut problems);
    if let (Some(r), Some(path)) = (&p.reference, w.reference) {
        put(&mut body, path, json!(r));
    }
    let applied = p.applied_to.as_deref().unwrap_or_default();
    let mut total_applied: i64 = 0;
    let mut elements = Vec::new();
    for (i, a) in applied.iter().enumerate() {
        let f = format!("record.applied_to[{i}]");
        let Some(id) = a.document.id.as_deref().filter(|id| !id.is_empty()) else {
            problems.push(Problem::new(format!("{f}.document.id"), "required", format!("the {noun}'s provider id")));
            continue;
        };
        let Some(doc) = books.documents.iter().find(|d| d.provider_id == id && !d.deleted) else {
            problems.push(Problem::new(
                format!("{f}.document.id"),
                "unknown_document",
                format!("no stored {noun} has this id (sync {noun}s first)"),
            ));
            continue;
        };
        if contact_id.is_some() && doc.contact_id.is_some() && doc.contact_id != contact_id {
            problems.push(Problem::new(format!("{f}.document.id"), "invalid", format!("the {noun} is another contact's")));
        }
        let due = doc.document.as_ref().and_then(|d| d.amount_due.as_ref()).map(|m| m.minor);
        if a.amount <= 0 {
            problems.push(Problem::new(format!("{f}.amount"), "invalid", "more than zero"));
        } else if let Some(due) = due.filter(|due| a.amount > *due) {
            problems.push(Problem::new(
                format!("{f}.amount"),
                "exceeds_amount_due",
                format!("the {noun} owes {}", format_minor(due, scale)),
            ));
        }
        if let (Some(cur), Some(d)) = (&currency, doc.document.as_ref()) {
            if &d.currency != cur {
                problems.push(Problem::new(format!("{f}.document.id"), "currency_mismatch", format!("the {noun} is in {}", d.currency)));
            }
        }
        total_applied = total_applied.saturating_add(a.amount);
        elements.push((id.to_string(), a.amount));
    }
    if let Some(amount) = amount {
        if total_applied > amount {
            problems.push(Problem::new("record.applied_to", "invalid", "applies more than the payment's amount"));
        }
    }
    match &w.applied {
        AppliedWire::Single(path) => match elements.as_slice() {
            [(id, a)] => {
                put(&mut body, path, json!(id));
                if amount.is_some_and(|amount| amount != *a) {
                    problems.push(Problem::new(
                        "record.applied_to[0].amount",
                        "invalid",
                        format!("a {provider} payment pays one document with all of its amount"),
                    ));
                }
            }
            _ if applied.len() == 1 => {}
            _ => problems.push(Problem::new("record.applied_to", "unsupported", format!("a {provider} payment pays exactly one document"))),
        },
        AppliedWire::List { key, id, amount: amount_path, constants } => {
            let list: Vec<Value> = elements
                .iter()
                .map(|(doc, a)| {
                    let mut e = Value::Object(Map::new());
                    put(&mut e, id, json!(doc));
                    put(&mut e, amount_path, wire::number(&format_minor(*a, scale)));
                    for (path, v) in *constants {
                        put(&mut e, path, json!(v));
                    }
                    e
                })
                .collect();
            if !list.is_empty() {
                body[*key] = Value::Array(list);
            }
        }
    }
    if problems.is_empty() {
        Ok(body)
    } else {
        Err(problems)
    }
}

/// An update of a recorded payment: its date, reference and account (QuickBooks and Zoho edit a
/// payment in place; Xero does not). What it pays, how much, whose and in which currency change
/// only by deleting it and recording it again: the invoices' or bills' balances follow a payment's
/// whole life, and a partial edit of them is where books go wrong.
fn payment_update(provider: Provider, w: &wire::PaymentWire, p: &PaymentInput, books: &Books<'_>) -> Result<Value, Vec<Problem>> {
    if provider == Provider::Xero {
        return Err(vec![Problem::new("action", "unsupported", "a Xero payment is not edited: delete it and record it again")]);
    }
    let mut problems = Vec::new();
    let mut body = Value::Object(Map::new());
    let fixed = [
        ("record.amount", p.amount.is_some()),
        ("record.applied_to", p.applied_to.is_some()),
        ("record.contact", p.contact.is_some()),
        ("record.currency", p.currency.is_some()),
    ];
    for (field, named) in fixed {
        if named {
            problems.push(Problem::new(field, "unsupported", "changed only by deleting the payment and recording it again"));
        }
    }
    if let Some(d) = p.date {
        put(&mut body, w.date, json!(d.to_string()));
    }
    text_ok("record.reference", &p.reference, 255, &mut problems);
    match (&p.reference, w.reference) {
        (Some(r), Some(path)) => put(&mut body, path, json!(r)),
        (Some(_), None) => problems.push(Problem::new("record.reference", "unsupported", format!("{provider} has no reference here"))),
        (None, _) => {}
    }
    if let Some(r) = &p.account {
        let (path, by) = w.account;
        if let Some(x) = resolve_account("record.account", r, by, books, &mut problems) {
            put(&mut body, path, json!(x));
        }
    }
    if problems.is_empty() && body.as_object().is_some_and(Map::is_empty) {
        problems.push(Problem::new("record", "required", "name what changes: date, reference or account"));
    }
    if problems.is_empty() {
        Ok(body)
    } else {
        Err(problems)
    }
}

/// Checks a manual journal and builds the provider's body: at least two lines, each an active
/// stored account with a debit or a credit (more than zero, not both), and debits equal to credits
/// to the minor unit. `creating`: the lines are required (an update replaces them all when it
/// names them).
pub fn journal(provider: Provider, creating: bool, j: &JournalInput, books: &Books<'_>) -> Result<Value, Vec<Problem>> {
    let w = wire::journal(provider);
    let mut problems = Vec::new();
    let mut body = Value::Object(Map::new());
    if creating {
        for (path, v) in w.constants {
            put(&mut body, path, json!(v));
        }
    }
    if let Some(d) = j.date {
        put(&mut body, w.date, json!(d.to_string()));
    }
    text_ok("record.narration", &j.narration, 4000, &mut problems);
    match &j.narration {
        Some(n) => put(&mut body, w.narration, json!(n)),
        None if creating && w.narration_required => {
            problems.push(Problem::new("record.narration", "required", format!("{provider} needs a narration on a manual journal")))
        }
        None => {}
    }
    text_ok("record.reference", &j.reference, 21, &mut problems);
    match (&j.reference, w.reference) {
        (Some(r), Some(path)) => put(&mut body, path, json!(r)),
        (Some(_), None) => {
            problems.push(Problem::new("record.reference", "unsupported", format!("{provider} has no reference on a journal")))
        }
        (None, _) => {}
    }
    let currency = match &j.currency {
        Some(c) => match (currency_code(Some(c)), w.currency) {
            (Some(code), Some(path)) => {
                put(&mut body, path, json!(code));
                Some(code)
            }
            (Some(_), None) => {
                problems.push(Problem::new(
                    "record.currency",
                    "unsupported",
                    format!("{provider} journals are in the org's base currency"),
                ));
                None
            }
            (None, _) => {
                problems.push(Problem::new("record.currency", "invalid", "an ISO 4217 code (three letters)"));
                None
            }
        },
        None => None,
    };
    let scale = currency_scale(currency.as_deref().unwrap_or("XXX"));
    match (j.status, w.status) {
        (Some(st), Some((path, table))) => match table.iter().find(|(k, _)| *k == st) {
            Some((_, word)) => put(&mut body, path, json!(word)),
            None => problems.push(Problem::new("record.status", "unsupported", format!("{provider} does not take this status"))),
        },
        // Posted is what the others make anyway; a draft they do not have.
        (Some(JournalStatus::Posted), None) => {}
        (Some(_), None) => {
            problems.push(Problem::new("record.status", "unsupported", format!("{provider} journals are posted when made (no drafts)")))
        }
        (None, _) => {}
    }
    match &j.lines {
        None if creating => problems.push(Problem::new("record.lines", "required", "a journal's debit and credit lines")),
        None => {}
        Some(lines) if lines.len() < 2 => {
            problems.push(Problem::new("record.lines", "invalid", "at least two lines (a debit and a credit)"))
        }
        Some(lines) if lines.len() > MAX_LINES => {
            problems.push(Problem::new("record.lines", "invalid", format!("at most {MAX_LINES} lines")))
        }
        Some(lines) => {
            let (mut debits, mut credits) = (0i64, 0i64);
            let mut out = Vec::with_capacity(lines.len());
            for (i, l) in lines.iter().enumerate() {
                let f = format!("record.lines[{i}]");
                let mut line = Value::Object(Map::new());
                for (path, v) in w.line_constants {
                    put(&mut line, path, json!(v));
                }
                match &l.account {
                    Some(r) => {
                        let (path, by) = w.line_account;
                        if let Some(a) = resolve_account(&format!("{f}.account"), r, by, books, &mut problems) {
                            put(&mut line, path, json!(a));
                        }
                    }
                    None => problems.push(Problem::new(format!("{f}.account"), "required", "every journal line names its account")),
                }
                text_ok(&format!("{f}.description"), &l.description, 4000, &mut problems);
                if let Some(d) = &l.description {
                    put(&mut line, w.line_description, json!(d));
                }
                let side = match (l.debit, l.credit) {
                    (Some(d), None) if d > 0 => Some((true, d)),
                    (None, Some(c)) if c > 0 => Some((false, c)),
                    (Some(_), Some(_)) => {
                        problems.push(Problem::new(f.clone(), "invalid", "a line has a debit or a credit, not both"));
                        None
                    }
                    (None, None) => {
                        problems.push(Problem::new(f.clone(), "required", "a debit or a credit, in minor units"));
                        None
                    }
                    _ => {
                        problems.push(Problem::new(f.clone(), "invalid", "a debit or a credit is more than zero"));
                        None
                    }
                };
                if let Some((debit, amount)) = side {
                    if debit {
                        debits = debits.saturating_add(amount);
                    } else {
                        credits = credits.saturating_add(amount);
                    }
                    match &w.line_side {
                        SideWire::Signed(path) => {
                            let signed = if debit { amount } else { -amount };
                            put(&mut line, path, wire::number(&format_minor(signed, scale)));
                        }
                        SideWire::Typed { amount: path, side, debit: dw, credit: cw } => {
                            put(&mut line, path, wire::number(&format_minor(amount, scale)));
                            put(&mut line, side, json!(if debit { dw } else { cw }));
                        }
                    }
                }
                if let Some(t) = &l.tax_code {
                    match (w.line_tax_code, books.tax_codes) {
                        (_, Some(codes)) if !codes.iter().any(|c| c == t) => problems.push(Problem::new(
                            format!("{f}.tax_code"),
                            "unknown_tax_code",
                            "no active stored tax rate has this code",
                        )),
                        (Some(path), _) => put(&mut line, path, json!(t)),
                        (None, _) => problems.push(Problem::new(format!("{f}.tax_code"), "unsupported", "no tax codes on journal lines")),
                    }
                }
                out.push(line);
            }
            if debits != credits {
                problems.push(Problem::new(
                    "record.lines",
                    "unbalanced",
                    format!("debits ({}) do not equal credits ({})", format_minor(debits, scale), format_minor(credits, scale)),
                ));
            }
            body[w.lines] = Value::Array(out);
        }
    }
    if problems.is_empty() {
        Ok(body)
    } else {
        Err(problems)
    }
}

/// Checks a bank transaction (money spent from or received into a bank account without an invoice
/// or a bill) and builds the provider's body: the bank account and each line's account are stored
/// and active, the contact (where named) is stored and active, each line has an amount (or quantity
/// x unit price) and the lines add up to the stated subtotal.
pub fn bank_transaction(provider: Provider, creating: bool, t: &BankTransactionInput, books: &Books<'_>) -> Result<Value, Vec<Problem>> {
    let Some(kind) = t.kind else {
        return Err(vec![Problem::new("record.kind", "required", "spend (money out) or receive (money in)")]);
    };
    let w = wire::bank_transaction(provider, kind);
    let mut problems = Vec::new();
    let mut body = Value::Object(Map::new());
    if creating {
        for (path, v) in w.constants {
            put(&mut body, path, json!(v));
        }
    }
    match &t.bank_account {
        Some(r) => {
            let (path, by) = w.bank_account;
            if let Some(a) = resolve_account("record.bank_account", r, by, books, &mut problems) {
                put(&mut body, path, json!(a));
            }
        }
        None if creating => problems.push(Problem::new("record.bank_account", "required", "the bank account the money leaves or enters")),
        None => {}
    }
    let contact_id = t.contact.as_ref().and_then(|c| c.id.clone()).filter(|id| !id.is_empty());
    match (&contact_id, books.contact) {
        (None, _) if w.contact_required && creating => {
            problems.push(Problem::new("record.contact.id", "required", format!("{provider} names the payee or payer")))
        }
        (None, _) => {}
        (Some(_), None) => {
            problems.push(Problem::new("record.contact.id", "unknown_contact", "no stored contact has this id (sync contacts first)"))
        }
        (Some(_), Some(c)) if inactive(c) => {
            problems.push(Problem::new("record.contact.id", "unknown_contact", "the contact is archived, inactive or deleted"))
        }
        (Some(id), Some(c)) => {
            if let Some(path) = w.contact {
                put(&mut body, path, json!(id));
            }
            if let Some(path) = w.contact_type {
                let supplier = c.contact.as_ref().is_some_and(|k| k.is_supplier && !k.is_customer);
                put(&mut body, path, json!(if supplier { "Vendor" } else { "Customer" }));
            }
        }
    }
    if let Some(d) = t.date {
        put(&mut body, w.date, json!(d.to_string()));
    }
    text_ok("record.reference", &t.reference, 50, &mut problems);
    match (&t.reference, w.reference) {
        (Some(r), Some(path)) => put(&mut body, path, json!(r)),
        (Some(_), None) => {
            problems.push(Problem::new("record.reference", "unsupported", format!("{provider} has no reference on this transaction")))
        }
        (None, _) => {}
    }
    let currency = match &t.currency {
        Some(c) => match currency_code(Some(c)) {
            Some(code) => {
                if let Some(path) = w.currency {
                    put(&mut body, path, json!(code));
                }
                Some(code)
            }
            None => {
                problems.push(Problem::new("record.currency", "invalid", "an ISO 4217 code (three letters)"));
                None
            }
        },
        None => None,
    };
    let scale = currency_scale(currency.as_deref().unwrap_or("XXX"));
    let lines = t.lines.as_deref().unwrap_or_default();
    if lines.is_empty() && (creating || t.lines.is_some()) {
        problems.push(Problem::new("record.lines", "required", "at least one line: an account and an amount"));
    } else if lines.len() > MAX_LINES {
        problems.push(Problem::new("record.lines", "invalid", format!("at most {MAX_LINES} lines")));
    }
    let mut sum: i64 = 0;
    let mut built = Vec::new();
    for (i, l) in lines.iter().enumerate().take(MAX_LINES) {
        let f = format!("record.lines[{i}]");
        text_ok(&format!("{f}.description"), &l.description, 4000, &mut problems);
        if l.item.is_some() {
            problems.push(Problem::new(format!("{f}.item"), "unsupported", "bank transaction lines name an account, not an item"));
        }
        let amount = match (l.amount, &l.quantity, &l.unit_price) {
            (Some(a), _, _) => Some(a),
            (None, Some(q), Some(p)) => line_amount(q, p, scale),
            _ => None,
        };
        match amount {
            Some(a) if a > 0 => sum = sum.saturating_add(a),
            Some(_) => problems.push(Problem::new(format!("{f}.amount"), "invalid", "more than zero")),
            None => problems.push(Problem::new(
                format!("{f}.amount"),
                "required",
                "the line's amount in minor units (or quantity and unit price)",
            )),
        }
        let account = match &l.account {
            Some(r) => {
                let by = match &w.lines {
                    wire::BankLines::List { account, .. } | wire::BankLines::Single { account, .. } => account.1,
                };
                resolve_account(&format!("{f}.account"), r, by, books, &mut problems)
            }
            None => {
                problems.push(Problem::new(format!("{f}.account"), "required", "the account the money went to or came from"));
                None
            }
        };
        if let (Some(code), Some(codes)) = (&l.tax_code, books.tax_codes) {
            if !codes.iter().any(|c| c == code) {
                problems.push(Problem::new(format!("{f}.tax_code"), "unknown_tax_code", "no active stored tax rate has this code"));
            }
        }
        built.push((l, amount.unwrap_or(0), account));
    }
    if let (Some(want), true) = (t.subtotal, !lines.is_empty()) {
        if want != sum {
            problems.push(Problem::new(
                "record.subtotal",
                "subtotal_mismatch",
                format!("the lines add up to {}", format_minor(sum, scale)),
            ));
        }
    }
    match &w.lines {
        wire::BankLines::List { key, description, amount, account, tax_code, constants, contact } => {
            let out: Vec<Value> = built
                .iter()
                .map(|(l, a, acct)| {
                    let mut line = Value::Object(Map::new());
                    for (path, v) in *constants {
                        put(&mut line, path, json!(v));
                    }
                    if let Some(d) = &l.description {
                        put(&mut line, description, json!(d));
                    }
                    put(&mut line, amount, wire::number(&format_minor(*a, scale)));
                    if let Some(x) = acct {
                        put(&mut line, account.0, json!(x));
                    }
                    if let (Some(code), Some(path)) = (&l.tax_code, tax_code) {
                        put(&mut line, path, json!(code));
                    }
                    if let (Some(id), Some(path)) = (&contact_id, contact) {
                        put(&mut line, path, json!(id));
                    }
                    line
                })
                .collect();
            if !out.is_empty() {
                body[*key] = Value::Array(out);
            }
        }
        wire::BankLines::Single { description, amount, account } => match built.as_slice() {
            [(l, a, acct)] => {
                if let Some(d) = &l.description {
                    put(&mut body, description, json!(d));
                }
                put(&mut body, amount, wire::number(&format_minor(*a, scale)));
                if let Some(x) = acct {
                    put(&mut body, account.0, json!(x));
                }
                if l.tax_code.is_some() {
                    problems.push(Problem::new("record.lines[0].tax_code", "unsupported", format!("{provider} takes no tax code here")));
                }
            }
            [] => {}
            _ => problems.push(Problem::new("record.lines", "unsupported", format!("a {provider} deposit has one line"))),
        },
    }
    if problems.is_empty() {
        Ok(body)
    } else {
        Err(problems)
    }
}

/// Whether the provider allows `action` from the record's current state (checked before sending
/// where the provider's rule is known: Xero voids only approved, unpaid documents and deletes only
/// drafts).
pub fn lifecycle_allows(provider: Provider, entity: Entity, action: Action, current: Option<&SyncRecord>) -> Result<(), Problem> {
    let l = wire::lifecycle(provider, entity);
    let (how, from) = match action {
        Action::Void => (l.void.is_some(), l.void_from),
        Action::Delete => (l.delete.is_some(), l.delete_from),
        Action::Create | Action::Update => return Ok(()),
    };
    if !how {
        let hint = if action == Action::Void { "; delete it instead" } else { "" };
        return Err(Problem::new("action", "unsupported", format!("{provider} cannot {} a {entity}{hint}", action.as_str())));
    }
    let status = current.and_then(|c| c.document.as_ref()).map(|d| d.status);
    match (from, status) {
        (Some(allowed), Some(s)) if !allowed.contains(&s) => Err(Problem::new(
            "action",
            "status_forbids",
            format!(
                "{provider} cannot {} a {entity} that is {}",
                action.as_str(),
                serde_json::to_value(s).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Money;
    use crate::writes::RecordInput;

    fn rec(entity: Entity, id: &str, number: Option<&str>, status: Option<&str>) -> SyncRecord {
        SyncRecord {
            provider: Provider::Xero,
            org_id: "o".into(),
            entity,
            provider_id: id.into(),
            number: number.map(str::to_string),
            name: None,
            status: status.map(str::to_string),
            amount: Some(Money { minor: 0, currency: "NZD".into() }),
            contact_id: None,
            issue_date: None,
            due_date: None,
            updated_at: None,
            deleted: false,
            raw_ref: String::new(),
            flags: vec![],
            document: None,
            company: None,
            version: None,
            payment: None,
            reference: Default::default(),
            contact: None,
        }
    }

    fn doc(v: Value) -> DocumentInput {
        match RecordInput::parse(Entity::Invoice, &v).unwrap() {
            RecordInput::Document(d) => d,
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_xero_bill_is_translated_with_codes_and_exact_amounts() {
        let contact = rec(Entity::Contact, "c-1", None, Some("ACTIVE"));
        let accounts = [rec(Entity::Account, "a-uuid", Some("400"), Some("ACTIVE"))];
        let codes = vec!["INPUT".to_string()];
        let books = Books { contact: Some(&contact), accounts: &accounts, tax_codes: Some(&codes), documents: &[] };
        let d =
            doc(json!({"contact": {"id": "c-1"}, "number": "B-1", "issue_date": "2026-12-01", "due_date": "2026-12-31", "status": "open",
            "lines": [{"description": "Paper", "quantity": "3", "unit_price": "19.99", "account": {"id": "a-uuid"}, "tax_code": "INPUT"},
                      {"amount": 1000, "account": {"code": "400"}}], "subtotal": 6997}));
        let body = document(Provider::Xero, Entity::Bill, true, &d, &books).unwrap();
        assert_eq!(body["Type"], "ACCPAY");
        assert_eq!(body["Status"], "AUTHORISED");
        assert_eq!(body["Contact"]["ContactID"], "c-1");
        assert_eq!(
            body["LineItems"][0],
            json!({"Description": "Paper", "Quantity": 3, "UnitAmount": 19.99, "AccountCode": "400", "TaxType": "INPUT", "LineAmount": 59.97})
        );
        assert_eq!(body["LineItems"][1], json!({"Quantity": 1, "UnitAmount": 10.00, "AccountCode": "400", "LineAmount": 10.00}));
    }

    #[test]
    fn credit_notes_are_a_customers_or_a_suppliers_each_providers_way() {
        let contact = rec(Entity::Contact, "56", None, None);
        let accounts = [rec(Entity::Account, "7", Some("6000"), None)];
        let books = Books { contact: Some(&contact), accounts: &accounts, tax_codes: None, documents: &[] };
        let credit = |kind: &str| {
            doc(json!({"kind": kind, "contact": {"id": "56"}, "issue_date": "2026-12-01",
            "lines": [{"description": "Returned", "amount": 2500, "account": {"id": "7"}}]}))
        };
        let q = document(Provider::QuickBooks, Entity::CreditNote, true, &credit("purchase"), &books).unwrap();
        assert_eq!((&q["VendorRef"]["value"], q.get("CustomerRef")), (&json!("56"), None), "a VendorCredit");
        assert_eq!(q["Line"][0]["DetailType"], "AccountBasedExpenseLineDetail");
        // QuickBooks sales lines take their account from the item, on a credit as on an invoice.
        let sales =
            doc(json!({"kind": "sales", "contact": {"id": "56"}, "lines": [{"item": {"id": "3"}, "quantity": 1, "unit_price": "25"}]}));
        let q = document(Provider::QuickBooks, Entity::CreditNote, true, &sales, &books).unwrap();
        assert_eq!(
            (&q["CustomerRef"]["value"], &q["Line"][0]["DetailType"]),
            (&json!("56"), &json!("SalesItemLineDetail")),
            "a CreditMemo"
        );
        let x = document(Provider::Xero, Entity::CreditNote, true, &credit("purchase"), &books).unwrap();
        assert_eq!((&x["Type"], &x["Contact"]["ContactID"]), (&json!("ACCPAYCREDIT"), &json!("56")));
        let z = document(Provider::Zoho, Entity::CreditNote, true, &credit("purchase"), &books).unwrap();
        assert_eq!((&z["vendor_id"], z.get("customer_id")), (&json!("56"), None), "a vendor credit");
        let z = document(Provider::Zoho, Entity::CreditNote, true, &credit("sales"), &books).unwrap();
        assert_eq!(z["customer_id"], "56");

        let no_kind = doc(json!({"contact": {"id": "56"}, "lines": [{"amount": 1, "account": {"id": "7"}}]}));
        let p = document(Provider::Xero, Entity::CreditNote, true, &no_kind, &books).unwrap_err();
        assert_eq!((p[0].field.as_str(), p[0].code), ("record.kind", "required"));
        let p = document(Provider::Xero, Entity::Invoice, true, &credit("sales"), &books).unwrap_err();
        assert_eq!((p[0].field.as_str(), p[0].code), ("record.kind", "unsupported"));
        let mut due = credit("sales");
        due.due_date = chrono::NaiveDate::from_ymd_opt(2026, 12, 31);
        let p = document(Provider::QuickBooks, Entity::CreditNote, true, &due, &books).unwrap_err();
        assert_eq!((p[0].field.as_str(), p[0].code), ("record.due_date", "unsupported"));
        // A supplier's credit names a supplier.
        let mut customer = contact.clone();
        customer.contact = Some(crate::books::Contact { is_customer: true, is_supplier: false, ..Default::default() });
        let as_customer = Books { contact: Some(&customer), accounts: &accounts, tax_codes: None, documents: &[] };
        let p = document(Provider::Zoho, Entity::CreditNote, true, &credit("purchase"), &as_customer).unwrap_err();
        assert_eq!(p[0].code, "wrong_contact_role");
    }

    #[test]
    fn journals_balance_and_go_each_providers_way() {
        let accounts = [rec(Entity::Account, "bank-1", Some("090"), None), rec(Entity::Account, "exp-1", Some("453"), None)];
        let books = Books { contact: None, accounts: &accounts, tax_codes: None, documents: &[] };
        let parse = |v: Value| match RecordInput::parse(Entity::Journal, &v).unwrap() {
            RecordInput::Journal(j) => j,
            _ => unreachable!(),
        };
        let ok = parse(json!({"date": "2026-12-01", "narration": "Accrual", "lines": [
            {"account": {"id": "exp-1"}, "debit": 12550, "description": "Rent"}, {"account": {"code": "090"}, "credit": 12550}]}));
        let q = journal(Provider::QuickBooks, true, &ok, &books).unwrap();
        assert_eq!(
            q["Line"][0],
            json!({"DetailType": "JournalEntryLineDetail", "Description": "Rent", "Amount": 125.50,
                "JournalEntryLineDetail": {"PostingType": "Debit", "AccountRef": {"value": "exp-1"}}})
        );
        assert_eq!(q["Line"][1]["JournalEntryLineDetail"], json!({"PostingType": "Credit", "AccountRef": {"value": "bank-1"}}));
        let x = journal(Provider::Xero, true, &ok, &books).unwrap();
        assert_eq!(
            (
                &x["Narration"],
                &x["JournalLines"][0]["LineAmount"],
                &x["JournalLines"][1]["LineAmount"],
                &x["JournalLines"][1]["AccountCode"]
            ),
            (&json!("Accrual"), &json!(125.50), &json!(-125.50), &json!("090"))
        );
        let z = journal(Provider::Zoho, true, &ok, &books).unwrap();
        assert_eq!(z["line_items"][1], json!({"account_id": "bank-1", "debit_or_credit": "credit", "amount": 125.50}));

        let bad = parse(json!({"lines": [{"account": {"id": "exp-1"}, "debit": 100, "credit": 5},
            {"account": {"id": "nope"}, "credit": 100}, {"debit": 0, "account": {"id": "exp-1"}}, {"account": {"id": "exp-1"}, "debit": 1}]}));
        let p = journal(Provider::Xero, true, &bad, &books).unwrap_err();
        let got: Vec<(&str, &str)> = p.iter().map(|p| (p.field.as_str(), p.code)).collect();
        assert_eq!(
            got,
            [
                ("record.narration", "required"),
                ("record.lines[0]", "invalid"),
                ("record.lines[1].account", "unknown_account"),
                ("record.lines[2]", "invalid"),
                ("record.lines", "unbalanced"),
            ]
        );
        let draft = parse(json!({"status": "draft", "lines": ok.lines.iter().map(|_| json!({})).collect::<Vec<_>>()}));
        let p = journal(Provider::QuickBooks, false, &draft, &books).unwrap_err();
        assert_eq!((p[0].field.as_str(), p[0].code), ("record.status", "unsupported"), "QuickBooks has no draft journals");
    }

    #[test]
    fn bank_transactions_go_to_the_right_collection_each_providers_way() {
        let contact = rec(Entity::Contact, "v1", None, None);
        let accounts = [rec(Entity::Account, "bank-1", Some("090"), None), rec(Entity::Account, "exp-1", Some("453"), None)];
        let books = Books { contact: Some(&contact), accounts: &accounts, tax_codes: None, documents: &[] };
        let parse = |v: Value| match RecordInput::parse(Entity::BankTransaction, &v).unwrap() {
            RecordInput::BankTransaction(t) => t,
            _ => unreachable!(),
        };
        let spend = parse(json!({"kind": "spend", "bank_account": {"code": "090"}, "contact": {"id": "v1"},
            "lines": [{"description": "Taxi", "amount": 2350, "account": {"id": "exp-1"}}], "subtotal": 2350}));
        let q = bank_transaction(Provider::QuickBooks, true, &spend, &books).unwrap();
        assert_eq!(
            (&q["AccountRef"]["value"], &q["PaymentType"], &q["EntityRef"]["value"]),
            (&json!("bank-1"), &json!("Cash"), &json!("v1"))
        );
        assert_eq!(q["Line"][0]["AccountBasedExpenseLineDetail"]["AccountRef"]["value"], "exp-1");
        let x = bank_transaction(Provider::Xero, true, &spend, &books).unwrap();
        assert_eq!(
            (&x["Type"], &x["BankAccount"]["Code"], &x["LineItems"][0]["LineAmount"]),
            (&json!("SPEND"), &json!("090"), &json!(23.50))
        );
        let mut receive = spend.clone();
        receive.kind = Some(crate::writes::BankWriteKind::Receive);
        let q = bank_transaction(Provider::QuickBooks, true, &receive, &books).unwrap();
        assert_eq!(q["DepositToAccountRef"]["value"], "bank-1", "a Deposit");
        assert_eq!(q["Line"][0]["DepositLineDetail"]["Entity"]["value"], "v1");
        let z = bank_transaction(Provider::Zoho, true, &receive, &books).unwrap();
        assert_eq!(
            (&z["transaction_type"], &z["to_account_id"], &z["from_account_id"], &z["amount"]),
            (&json!("deposit"), &json!("bank-1"), &json!("exp-1"), &json!(23.50))
        );
        let bad = parse(
            json!({"kind": "spend", "lines": [{"amount": 100, "account": {"id": "nope"}}, {"item": {"id": "1"}, "account": {"id": "exp-1"}}], "subtotal": 5}),
        );
        let p = bank_transaction(Provider::Xero, true, &bad, &books).unwrap_err();
        let got: Vec<(&str, &str)> = p.iter().map(|p| (p.field.as_str(), p.code)).collect();
        assert_eq!(
            got,
            [
                ("record.bank_account", "required"),
                ("record.contact.id", "required"),
                ("record.lines[0].account", "unknown_account"),
                ("record.lines[1].item", "unsupported"),
                ("record.lines[1].amount", "required"),
                ("record.subtotal", "subtotal_mismatch"),
            ]
        );
        // An update names only what changes; the lines, when named, replace them all.
        let date_only = parse(json!({"kind": "spend", "date": "2026-12-09"}));
        assert_eq!(bank_transaction(Provider::Zoho, false, &date_only, &books).unwrap(), json!({"date": "2026-12-09"}));
        let q = bank_transaction(Provider::QuickBooks, false, &spend, &books).unwrap();
        assert!(q.get("PaymentType").is_none(), "constants go with a create only: {q}");
    }

    #[test]
    fn a_quickbooks_bill_line_without_an_item_is_account_based() {
        let contact = rec(Entity::Contact, "56", None, None);
        let accounts = [rec(Entity::Account, "7", Some("6000"), None)];
        let books = Books { contact: Some(&contact), accounts: &accounts, tax_codes: None, documents: &[] };
        let d = doc(
            json!({"contact": {"id": "56"}, "lines": [{"amount": 12345, "account": {"code": "6000"}}, {"item": {"id": "3"}, "quantity": 2, "unit_price": "5"}]}),
        );
        let body = document(Provider::QuickBooks, Entity::Bill, true, &d, &books).unwrap();
        assert_eq!(body["VendorRef"]["value"], "56");
        assert_eq!(
            body["Line"][0],
            json!({"DetailType": "AccountBasedExpenseLineDetail", "Amount": 123.45, "AccountBasedExpenseLineDetail": {"AccountRef": {"value": "7"}}})
        );
        assert_eq!(body["Line"][1]["ItemBasedExpenseLineDetail"], json!({"Qty": 2, "UnitPrice": 5, "ItemRef": {"value": "3"}}));
        assert_eq!(body["Line"][1]["Amount"], json!(10.00));
    }

    #[test]
    fn every_problem_is_named_and_nothing_is_built() {
        let contact = rec(Entity::Contact, "c-1", None, Some("ARCHIVED"));
        let accounts = [rec(Entity::Account, "a1", Some("200"), Some("ARCHIVED"))];
        let codes: Vec<String> = vec!["OUTPUT".into()];
        let books = Books { contact: Some(&contact), accounts: &accounts, tax_codes: Some(&codes), documents: &[] };
        let d = doc(json!({"contact": {"id": "c-1"}, "currency": "usd", "issue_date": "2026-12-10", "due_date": "2026-12-01",
            "lines": [{"quantity": "2", "unit_price": "10", "amount": 2001, "account": {"code": "200"}, "tax_code": "NONE"},
                      {"description": "no amount", "account": {"code": "999"}}], "subtotal": 5}));
        let problems = document(Provider::Xero, Entity::Invoice, true, &d, &books).unwrap_err();
        let got: Vec<(&str, &str)> = problems.iter().map(|p| (p.field.as_str(), p.code)).collect();
        for want in [
            ("record.contact.id", "unknown_contact"),
            ("record.due_date", "invalid"),
            ("record.currency", "currency_mismatch"),
            ("record.lines[0].amount", "line_total_mismatch"),
            ("record.lines[0].account", "inactive_account"),
            ("record.lines[0].tax_code", "unknown_tax_code"),
            ("record.lines[1].amount", "required"),
            ("record.lines[1].account", "unknown_account"),
        ] {
            assert!(got.contains(&want), "{want:?} missing from {got:?}");
        }
    }

    #[test]
    fn provider_rules_are_data() {
        let contact = rec(Entity::Contact, "9", None, None);
        let books = Books { contact: Some(&contact), accounts: &[], tax_codes: None, documents: &[] };
        // Zoho numbers invoices itself; a bill needs its number; QuickBooks has no reference or draft.
        let p = document(
            Provider::Zoho,
            Entity::Invoice,
            true,
            &doc(json!({"contact": {"id": "9"}, "number": "X", "lines": [{"amount": 1}]})),
            &books,
        )
        .unwrap_err();
        assert_eq!((p[0].field.as_str(), p[0].code), ("record.number", "unsupported"));
        let p = document(Provider::Zoho, Entity::Bill, true, &doc(json!({"contact": {"id": "9"}, "lines": [{"amount": 1}]})), &books)
            .unwrap_err();
        assert!(p.iter().any(|p| p.field == "record.number" && p.code == "required"), "{p:?}");
        assert!(p.iter().any(|p| p.field == "record.lines[0].account" && p.code == "required"), "{p:?}");
        let p = document(
            Provider::QuickBooks,
            Entity::Invoice,
            true,
            &doc(json!({"contact": {"id": "9"}, "reference": "PO", "status": "draft", "lines": [{"amount": 1, "account": {"id": "1"}}]})),
            &books,
        )
        .unwrap_err();
        let fields: Vec<&str> = p.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["record.reference", "record.status", "record.lines[0].account"]);
        // An update sends only what it names.
        let body = document(Provider::Zoho, Entity::Invoice, false, &doc(json!({"due_date": "2027-01-31"})), &books).unwrap();
        assert_eq!(body, json!({"due_date": "2027-01-31"}));
    }

    #[test]
    fn contacts_per_provider() {
        let c = ContactInput {
            name: Some("Amy Ltd".into()),
            email: Some("ap@amy.example".into()),
            phone: Some("+64 9 555".into()),
            tax_number: None,
            currency: Some("nzd".into()),
        };
        let x = contact(Provider::Xero, true, &c).unwrap();
        assert_eq!(
            x,
            json!({"Name": "Amy Ltd", "EmailAddress": "ap@amy.example", "Phones": [{"PhoneNumber": "+64 9 555", "PhoneType": "DEFAULT"}], "DefaultCurrency": "NZD"})
        );
        let q = contact(Provider::QuickBooks, true, &c).unwrap();
        assert_eq!(q["PrimaryEmailAddr"]["Address"], "ap@amy.example");
        let z = contact(Provider::Zoho, true, &ContactInput { currency: None, ..c.clone() }).unwrap();
        assert_eq!(z["contact_persons"][0], json!({"email": "ap@amy.example", "phone": "+64 9 555", "is_primary_contact": true}));
        assert_eq!(z["contact_type"], "customer");
        let bad =
            contact(Provider::Zoho, true, &ContactInput { name: None, email: Some("nope".into()), currency: Some("NZD".into()), ..c })
                .unwrap_err();
        let fields: Vec<&str> = bad.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["record.name", "record.email", "record.currency"]);
    }

    #[test]
    fn payments_pay_stored_invoices_of_their_customer_and_no_more_than_owed() {
        let contact = rec(Entity::Contact, "c1", None, None);
        let accounts = [rec(Entity::Account, "bank-1", Some("090"), None)];
        let mut inv = rec(Entity::Invoice, "i1", None, None);
        inv.contact_id = Some("c1".into());
        let due = |minor| crate::money::Money { minor, currency: "NZD".into() };
        inv.document = Some(crate::books::Document {
            kind: crate::books::DocumentKind::SalesInvoice,
            status: crate::books::DocumentStatus::Open,
            reference: None,
            contact: None,
            currency: "NZD".into(),
            exchange_rate: None,
            subtotal: None,
            tax: None,
            total: Some(due(10000)),
            amount_due: Some(due(6000)),
            lines: vec![],
            lines_complete: true,
            allocations: vec![],
        });
        let mut other = inv.clone();
        other.provider_id = "i2".into();
        other.contact_id = Some("c2".into());
        let docs = [inv, other];
        let books = Books { contact: Some(&contact), accounts: &accounts, tax_codes: None, documents: &docs };
        let parse = |v: Value| match RecordInput::parse(Entity::Payment, &v).unwrap() {
            RecordInput::Payment(p) => p,
            _ => unreachable!(),
        };
        let ok = parse(json!({"contact": {"id": "c1"}, "amount": 2550, "account": {"code": "090"}, "date": "2026-12-01",
            "applied_to": [{"document": {"id": "i1"}, "amount": 2550}]}));
        let q = payment(Provider::QuickBooks, Entity::Payment, true, &ok, &books).unwrap();
        assert_eq!(
            q,
            json!({"CustomerRef": {"value": "c1"}, "TotalAmt": 25.50, "TxnDate": "2026-12-01", "DepositToAccountRef": {"value": "bank-1"},
            "Line": [{"Amount": 25.50, "LinkedTxn": [{"TxnId": "i1", "TxnType": "Invoice"}]}]})
        );
        let x = payment(Provider::Xero, Entity::Payment, true, &ok, &books).unwrap();
        assert_eq!(x, json!({"Amount": 25.50, "Date": "2026-12-01", "Account": {"Code": "090"}, "Invoice": {"InvoiceID": "i1"}}));
        let z = payment(Provider::Zoho, Entity::Payment, true, &ok, &books).unwrap();
        assert_eq!(z["invoices"], json!([{"invoice_id": "i1", "amount_applied": 25.50}]));
        let bad = parse(json!({"contact": {"id": "c1"}, "amount": 100,
            "applied_to": [{"document": {"id": "i1"}, "amount": 6001}, {"document": {"id": "i2"}, "amount": 1}, {"document": {"id": "i9"}, "amount": 1}]}));
        let p = payment(Provider::Xero, Entity::Payment, true, &bad, &books).unwrap_err();
        let got: Vec<(&str, &str)> = p.iter().map(|p| (p.field.as_str(), p.code)).collect();
        assert_eq!(
            got,
            [
                ("record.account", "required"),
                ("record.applied_to[0].amount", "exceeds_amount_due"),
                ("record.applied_to[1].document.id", "invalid"),
                ("record.applied_to[2].document.id", "unknown_document"),
                ("record.applied_to", "invalid"),
                ("record.applied_to", "unsupported"),
            ]
        );
        assert_eq!(payment(Provider::Zoho, Entity::Payment, false, &ok, &books).unwrap_err()[0].code, "unsupported");

        // A payment made: the supplier's bills, from a bank account, each provider's way.
        let q = payment(Provider::QuickBooks, Entity::BillPayment, true, &ok, &books).unwrap();
        assert_eq!(
            q,
            json!({"VendorRef": {"value": "c1"}, "TotalAmt": 25.50, "TxnDate": "2026-12-01", "PayType": "Check",
            "CheckPayment": {"BankAccountRef": {"value": "bank-1"}},
            "Line": [{"Amount": 25.50, "LinkedTxn": [{"TxnId": "i1", "TxnType": "Bill"}]}]})
        );
        let z = payment(Provider::Zoho, Entity::BillPayment, true, &ok, &books).unwrap();
        assert_eq!(
            (&z["vendor_id"], &z["paid_through_account_id"], &z["bills"], z.get("customer_id")),
            (&json!("c1"), &json!("bank-1"), &json!([{"bill_id": "i1", "amount_applied": 25.50}]), None)
        );
        let no_account =
            parse(json!({"contact": {"id": "c1"}, "amount": 2550, "applied_to": [{"document": {"id": "i1"}, "amount": 2550}]}));
        let p = payment(Provider::QuickBooks, Entity::BillPayment, true, &no_account, &books).unwrap_err();
        assert_eq!((p[0].field.as_str(), p[0].code), ("record.account", "required"), "QuickBooks pays a bill from a named account");
        // A customer is not paid for bills, nor a supplier's payment recorded against invoices.
        let mut customer = contact.clone();
        customer.contact = Some(crate::books::Contact { is_customer: true, is_supplier: false, ..Default::default() });
        let as_customer = Books { contact: Some(&customer), accounts: &accounts, tax_codes: None, documents: &docs };
        let p = payment(Provider::Xero, Entity::BillPayment, true, &ok, &as_customer).unwrap_err();
        assert_eq!(p[0].code, "wrong_contact_role");
        assert!(payment(Provider::Xero, Entity::Payment, true, &ok, &as_customer).is_ok());
    }

    #[test]
    fn xero_voids_only_approved_documents_and_deletes_only_drafts() {
        let mut r = rec(Entity::Invoice, "i", None, Some("PAID"));
        r.document = Some(crate::books::Document {
            kind: crate::books::DocumentKind::SalesInvoice,
            status: crate::books::DocumentStatus::Paid,
            reference: None,
            contact: None,
            currency: "NZD".into(),
            exchange_rate: None,
            subtotal: None,
            tax: None,
            total: None,
            amount_due: None,
            lines: vec![],
            lines_complete: true,
            allocations: vec![],
        });
        assert_eq!(lifecycle_allows(Provider::Xero, Entity::Invoice, Action::Void, Some(&r)).unwrap_err().code, "status_forbids");
        assert_eq!(lifecycle_allows(Provider::Xero, Entity::Invoice, Action::Delete, Some(&r)).unwrap_err().code, "status_forbids");
        r.document.as_mut().unwrap().status = crate::books::DocumentStatus::Open;
        assert!(lifecycle_allows(Provider::Xero, Entity::Invoice, Action::Void, Some(&r)).is_ok());
        assert_eq!(lifecycle_allows(Provider::QuickBooks, Entity::Bill, Action::Void, Some(&r)).unwrap_err().code, "unsupported");
        assert_eq!(lifecycle_allows(Provider::Zoho, Entity::Contact, Action::Void, None).unwrap_err().code, "unsupported");
    }
}
