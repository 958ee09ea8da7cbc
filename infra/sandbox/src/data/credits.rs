//! Credit notes: a customer's (QuickBooks CreditMemo, Xero `ACCRECCREDIT`, Zoho creditnote) and a
//! supplier's (QuickBooks VendorCredit, Xero `ACCPAYCREDIT`, Zoho vendor credit), with the same
//! lines as invoices and bills.
//!
//! Where a provider records on the credit note what it was applied to (Xero `Allocations`, Zoho
//! `invoices_credited` / `bills_credited`), a generated credit is applied to an open invoice (or
//! bill) of the org: half its total, at most what the document still owes. The document's amount
//! due drops by what was applied and the credit keeps the rest, so the books still add up.
//! QuickBooks applies credits through payments (a Payment or BillPayment line's LinkedTxn), so
//! its credits are generated unapplied.

use super::*;

/// The document a credit was applied to: its id, number and the amount applied (cents).
struct Applied {
    id: String,
    number: Value,
    cents: i64,
}

impl Org {
    /// A credit of `n` (a customer's, or with `purchase` a supplier's), applied where the provider
    /// records applications.
    pub(super) fn gen_credit(&mut self, n: u64, purchase: bool, lines: Option<usize>, now: DateTime<Utc>) -> Value {
        let doc = document(n, lines, purchase);
        let mut v = if purchase {
            let vendor = self.first_or_generate(Entity::Vendor, now);
            let expense = self.account_of_type(&["Expense", "EXPENSE", "expense"], ACCOUNTS[EXPENSE_ACCOUNT], now);
            let payable = match self.provider {
                Provider::Quickbooks => Some(self.account_of_type(&["Accounts Payable"], AP_ACCOUNT, now)),
                _ => None,
            };
            self.gen_bill(n, &vendor, &expense, payable.as_ref(), &doc, now)
        } else {
            let contact = self.first_or_generate(Entity::Contact, now);
            let account = self.account_of_type(&["Income", "REVENUE", "income"], ACCOUNTS[0], now);
            self.gen_invoice(n, &contact, &account, &doc, now)
        };
        let applied = match self.provider {
            Provider::Quickbooks => None,
            _ => self.apply_to_open(if purchase { Entity::Bill } else { Entity::Invoice }, doc.total / 2, now),
        };
        let used = applied.as_ref().map_or(0, |a| a.cents);
        let (left, on) = (money(doc.total - used), (now - Duration::days(1)).format("%Y-%m-%d").to_string());
        let Some(o) = v.as_object_mut() else { return v };
        match self.provider {
            Provider::Quickbooks => {
                o.remove("DueDate");
                o.remove("EmailStatus");
                o.insert("DocNumber".into(), json!(format!("{}-{n:05}", if purchase { "VC" } else { "CM" })));
                o.insert("Balance".into(), left.clone());
                if !purchase {
                    o.insert("RemainingCredit".into(), left);
                }
            }
            Provider::Xero => {
                for k in ["InvoiceNumber", "DueDate", "DueDateString", "AmountDue", "AmountPaid", "AmountCredited", "IsDiscounted"] {
                    o.remove(k);
                }
                o.insert("Type".into(), json!(if purchase { "ACCPAYCREDIT" } else { "ACCRECCREDIT" }));
                o.insert("CreditNoteNumber".into(), json!(format!("CN-{n:05}")));
                o.insert("Status".into(), json!(if used == doc.total { "PAID" } else { "AUTHORISED" }));
                o.insert("RemainingCredit".into(), left);
                o.insert("Payments".into(), json!([]));
                let allocations: Vec<Value> = applied
                    .iter()
                    .map(|a| {
                        json!({"AllocationID": uuid::Uuid::new_v4().to_string(), "Amount": money(a.cents),
                            "Date": xero_msdate(now - Duration::days(1)), "IsDeleted": false,
                            "Invoice": {"InvoiceID": a.id, "InvoiceNumber": a.number}})
                    })
                    .collect();
                o.insert("Allocations".into(), Value::Array(allocations));
            }
            Provider::Zoho => {
                for k in ["invoice_number", "bill_number", "due_date"] {
                    o.remove(k);
                }
                o.insert("status".into(), json!(if used == doc.total { "closed" } else { "open" }));
                o.insert("balance".into(), left);
                let link = format!("4600000{:08}", n * 1000 + 999);
                if purchase {
                    o.insert("vendor_credit_number".into(), json!(format!("DN-{n:05}")));
                    let credited: Vec<Value> = applied
                        .iter()
                        .map(|a| json!({"vendor_credit_bill_id": link, "bill_id": a.id, "bill_number": a.number, "date": on, "amount": money(a.cents)}))
                        .collect();
                    o.insert("bills_credited".into(), Value::Array(credited));
                } else {
                    o.insert("creditnote_number".into(), json!(format!("CN-{n:05}")));
                    let credited: Vec<Value> = applied
                        .iter()
                        .map(|a| json!({"creditnote_invoice_id": link, "invoice_id": a.id, "invoice_number": a.number, "date": on, "amount_applied": money(a.cents)}))
                        .collect();
                    o.insert("invoices_credited".into(), Value::Array(credited));
                }
            }
        }
        v
    }

    /// Applies up to `cents` to the newest open document of `e` (a fresh one when none is open) and
    /// stores the document with what it still owes.
    fn apply_to_open(&mut self, e: Entity, cents: i64, now: DateTime<Utc>) -> Option<Applied> {
        let (due_key, number_key) = match self.provider {
            Provider::Xero => ("AmountDue", "InvoiceNumber"),
            Provider::Zoho => ("balance", if e == Entity::Bill { "bill_number" } else { "invoice_number" }),
            Provider::Quickbooks => return None,
        };
        let due_of = |v: &Value| v.get(due_key).and_then(Value::as_f64).and_then(exact_cents).unwrap_or(0);
        let p = self.provider;
        let open =
            self.store(e).items.iter().rev().find(|r| !r.deleted && is_kind(p, e, &r.value) && due_of(&r.value) > 0).map(|r| r.id.clone());
        let id = match open {
            Some(id) => id,
            None => self.generate(e, now),
        };
        let mut v = self.get(e, &id)?.value.clone();
        let due = due_of(&v);
        let cents = cents.min(due);
        if cents <= 0 {
            return None;
        }
        let still = due - cents;
        match self.provider {
            Provider::Xero => {
                let credited = v.get("AmountCredited").and_then(Value::as_f64).and_then(exact_cents).unwrap_or(0);
                v["AmountCredited"] = money(credited + cents);
                v["AmountDue"] = money(still);
                if still == 0 {
                    v["Status"] = json!("PAID");
                }
            }
            _ => {
                let credited = v.get("credits_applied").and_then(Value::as_f64).and_then(exact_cents).unwrap_or(0);
                v["credits_applied"] = money(credited + cents);
                v["balance"] = money(still);
                v["status"] = json!(if still == 0 { "paid" } else { "partially_paid" });
            }
        }
        let number = v.get(number_key).cloned().unwrap_or(Value::Null);
        self.put(e, &id, v, now);
        Some(Applied { id, number, cents })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cents(v: &Value, k: &str) -> i64 {
        v.get(k).and_then(Value::as_f64).and_then(exact_cents).unwrap_or_else(|| panic!("{k} in {v}"))
    }

    /// Every credit's applications name a document of the org of the right kind, a credit keeps
    /// what it did not apply, and each document owes its total less what was applied to it.
    #[test]
    fn applied_credits_add_up_on_both_sides() {
        let now = Utc::now();
        for p in Provider::ALL {
            let mut org = Org::new(p, "o1", "Org", None, now);
            for _ in 0..3 {
                org.generate(Entity::Invoice, now);
                org.generate(Entity::Bill, now);
            }
            for _ in 0..12 {
                org.generate(Entity::CreditNote, now);
                org.generate(Entity::VendorCredit, now);
            }
            for (credit, target) in [(Entity::CreditNote, Entity::Invoice), (Entity::VendorCredit, Entity::Bill)] {
                let credits: Vec<Value> = org.records(credit).map(|r| r.value.clone()).collect();
                assert_eq!(credits.len(), 12, "{p:?} {credit:?}");
                let mut applied: HashMap<String, i64> = HashMap::new();
                for c in &credits {
                    let (total, left, list, id_key, amount_key) = match p {
                        Provider::Quickbooks => (cents(c, "TotalAmt"), cents(c, "Balance"), json!([]), "", ""),
                        Provider::Xero => {
                            assert_eq!(c["Type"], if credit == Entity::VendorCredit { "ACCPAYCREDIT" } else { "ACCRECCREDIT" });
                            (cents(c, "Total"), cents(c, "RemainingCredit"), c["Allocations"].clone(), "/Invoice/InvoiceID", "/Amount")
                        }
                        Provider::Zoho if credit == Entity::CreditNote => {
                            (cents(c, "total"), cents(c, "balance"), c["invoices_credited"].clone(), "/invoice_id", "/amount_applied")
                        }
                        Provider::Zoho => (cents(c, "total"), cents(c, "balance"), c["bills_credited"].clone(), "/bill_id", "/amount"),
                    };
                    let mut used = 0;
                    for a in list.as_array().unwrap() {
                        let id = a.pointer(id_key).and_then(Value::as_str).unwrap().to_string();
                        let amount = a.pointer(amount_key).and_then(Value::as_f64).and_then(exact_cents).unwrap();
                        assert!(org.get(target, &id).is_some_and(|r| is_kind(p, target, &r.value)), "{p:?}: {id} is a {target:?}");
                        used += amount;
                        *applied.entry(id).or_default() += amount;
                    }
                    assert_eq!(left + used, total, "{p:?} {credit:?}: {c}");
                }
                if p == Provider::Quickbooks {
                    assert!(applied.is_empty());
                    continue;
                }
                assert!(!applied.is_empty(), "{p:?}: some credit was applied");
                let (total_key, due_key) = if p == Provider::Xero { ("Total", "AmountDue") } else { ("total", "balance") };
                for r in org.records(target) {
                    let got = applied.get(&r.id).copied().unwrap_or(0);
                    assert_eq!(cents(&r.value, due_key) + got, cents(&r.value, total_key), "{p:?}: {}", r.value);
                }
            }
        }
    }
}
