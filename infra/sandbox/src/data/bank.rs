//! Bank transactions and expenses, in the org's bank account and with its suppliers, customers and
//! accounts:
//!
//! - `Expense`: QuickBooks Purchase (Cash or Check from the bank account), Xero SPEND bank
//!   transaction, Zoho expense; lines post to the expense account, with tax as bills have it.
//! - `BankTransaction`: QuickBooks Deposit, Xero RECEIVE bank transaction, Zoho deposit; one line
//!   from the sales account, from a customer.
//! - `BankTransfer`: QuickBooks Transfer, Xero BankTransfers, Zoho `transfer_fund`; from the bank
//!   account to a second one (a savings account the org gets when it has none). Xero also lists a
//!   transfer's two sides in BankTransactions (SPEND-TRANSFER and RECEIVE-TRANSFER), which the
//!   BankTransfer names: the sandbox makes them too.

use super::*;

/// The second bank account transfers go to (not in the generated cycle).
const SAVINGS_ACCOUNT: (&str, &str, &str, &str, &str) = ("Savings Account", "091", "Bank", "BANK", "bank");
/// The sales account deposits come from (ACCOUNTS[0]).
const SALES_ACCOUNT: usize = 0;

fn is_bank(v: &Value) -> bool {
    ["AccountType", "Type", "account_type"].iter().any(|k| matches!(v.get(*k).and_then(Value::as_str), Some("Bank" | "BANK" | "bank")))
}

impl Org {
    /// A live bank account other than `first` (by id), or the savings account made now.
    fn other_bank_account(&mut self, first: &Value, now: DateTime<Utc>) -> Value {
        let id_key = match self.provider {
            Provider::Quickbooks => "Id",
            Provider::Xero => "AccountID",
            Provider::Zoho => "account_id",
        };
        let found = self.store(Entity::Account).items.iter().find(|r| !r.deleted && is_bank(&r.value) && r.value[id_key] != first[id_key]);
        if let Some(r) = found {
            return r.value.clone();
        }
        let n = self.next_seq();
        let value = self.gen_account_from(SAVINGS_ACCOUNT, n, n > 1);
        let id = self.id_for(n);
        self.put(Entity::Account, &id, value, now).value.clone()
    }

    /// A bank account to draw on: the org's first, or a new one (never another kind of account).
    fn own_bank_account(&mut self, now: DateTime<Utc>) -> Value {
        let found = self.store(Entity::Account).items.iter().find(|r| !r.deleted && is_bank(&r.value)).map(|r| r.value.clone());
        match found {
            Some(v) => v,
            None => {
                let n = self.next_seq();
                let value = self.gen_account_from(ACCOUNTS[2], n, true);
                let id = self.id_for(n);
                self.put(Entity::Account, &id, value, now).value.clone()
            }
        }
    }

    pub(super) fn gen_expense(&mut self, n: u64, lines: Option<usize>, now: DateTime<Utc>) -> Value {
        let vendor = self.first_or_generate(Entity::Vendor, now);
        let expense = self.account_of_type(&["Expense", "EXPENSE", "expense"], ACCOUNTS[EXPENSE_ACCOUNT], now);
        self.ensure_items(true, &expense, now);
        let bank = self.own_bank_account(now);
        let doc = document(n, lines, true);
        let date = now - Duration::days(2);
        let day = date.format("%Y-%m-%d").to_string();
        let (sub, tax, total) = (money(doc.sub_total), money(doc.tax), money(doc.total));
        match self.provider {
            Provider::Quickbooks => {
                // Account-based lines only: a Purchase's item lines would post to the item's own
                // expense account, which the sandbox's purchase items share anyway.
                let lines: Vec<Value> = doc
                    .lines
                    .iter()
                    .enumerate()
                    .map(|(k, l)| {
                        json!({"Id": (k + 1).to_string(), "LineNum": k + 1, "Description": l.description, "Amount": money(l.amount),
                            "DetailType": "AccountBasedExpenseLineDetail", "AccountBasedExpenseLineDetail": {
                                "AccountRef": {"value": expense["Id"], "name": expense["Name"]},
                                "TaxCodeRef": Self::qbo_tax_code(l.taxed()), "BillableStatus": "NotBillable"}})
                    })
                    .collect();
                json!({
                    "DocNumber": format!("EXP-{n:05}"), "TxnDate": day, "PaymentType": if n % 2 == 0 { "Cash" } else { "Check" },
                    "AccountRef": {"value": bank["Id"], "name": bank["Name"]},
                    "EntityRef": {"value": vendor["Id"], "name": vendor["DisplayName"], "type": "Vendor"},
                    "CurrencyRef": {"value": "USD", "name": "United States Dollar"}, "Credit": false,
                    "Line": lines, "TxnTaxDetail": Self::qbo_tax_detail(&doc), "TotalAmt": total,
                    "PrintStatus": "NotSet", "domain": "QBO", "sparse": false,
                })
            }
            Provider::Xero => json!({
                "Type": "SPEND", "Reference": format!("EXP-{n:05}"),
                "Contact": {"ContactID": vendor["ContactID"], "Name": vendor["Name"]},
                "BankAccount": {"AccountID": bank["AccountID"], "Code": bank["Code"], "Name": bank["Name"]},
                "Date": xero_msdate(date), "DateString": xero_datestring(date), "Status": "AUTHORISED", "LineAmountTypes": "Exclusive",
                "LineItems": Self::xero_lines(&doc, &expense, true), "SubTotal": sub, "TotalTax": tax, "Total": total,
                "CurrencyCode": "USD", "CurrencyRate": 1.0, "IsReconciled": false, "HasAttachments": false,
            }),
            Provider::Zoho => {
                let (lines, _) = Self::zoho_lines(n, &doc, &expense);
                // An expense line's amount is `amount` (Zoho's expenses page), not `item_total`.
                let lines: Vec<Value> = lines
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|l| {
                        json!({"line_item_id": l["line_item_id"], "account_id": l["account_id"], "account_name": l["account_name"],
                            "description": l["description"], "amount": l["item_total"], "tax_id": l["tax_id"], "tax_name": l["tax_name"],
                            "tax_percentage": l["tax_percentage"], "tags": []})
                    })
                    .collect();
                json!({
                    "date": day, "account_id": expense["account_id"], "account_name": expense["account_name"],
                    "paid_through_account_id": bank["account_id"], "paid_through_account_name": bank["account_name"],
                    "vendor_id": vendor["contact_id"], "vendor_name": vendor["contact_name"], "currency_code": "USD", "exchange_rate": 1.0,
                    "reference_number": format!("EXP-{n:05}"), "description": "Expense", "status": "nonbillable", "is_billable": false,
                    "is_itemized_expense": true, "line_items": lines, "sub_total": sub, "tax_amount": tax, "total": total,
                })
            }
        }
    }

    pub(super) fn gen_deposit(&mut self, n: u64, now: DateTime<Utc>) -> Value {
        let customer = self.first_or_generate(Entity::Contact, now);
        let sales = self.account_of_type(&["Income", "REVENUE", "income"], ACCOUNTS[SALES_ACCOUNT], now);
        let bank = self.own_bank_account(now);
        let cents = 2_500 + (n.wrapping_mul(6_007) % 40_000) as i64;
        let amount = money(cents);
        let date = now - Duration::days(1);
        let day = date.format("%Y-%m-%d").to_string();
        let note = format!("Cash sale {n}");
        match self.provider {
            Provider::Quickbooks => json!({
                "TxnDate": day, "PrivateNote": note, "DepositToAccountRef": {"value": bank["Id"], "name": bank["Name"]},
                "CurrencyRef": {"value": "USD", "name": "United States Dollar"}, "TotalAmt": amount,
                "Line": [{"Id": "1", "LineNum": 1, "Description": note, "Amount": amount, "DetailType": "DepositLineDetail",
                    "DepositLineDetail": {"AccountRef": {"value": sales["Id"], "name": sales["Name"]},
                        "Entity": {"value": customer["Id"], "name": customer["DisplayName"], "type": "CUSTOMER"}}}],
                "domain": "QBO", "sparse": false,
            }),
            Provider::Xero => json!({
                "Type": "RECEIVE", "Reference": format!("DEP-{n:05}"),
                "Contact": {"ContactID": customer["ContactID"], "Name": customer["Name"]},
                "BankAccount": {"AccountID": bank["AccountID"], "Code": bank["Code"], "Name": bank["Name"]},
                "Date": xero_msdate(date), "DateString": xero_datestring(date), "Status": "AUTHORISED", "LineAmountTypes": "NoTax",
                "LineItems": [{"LineItemID": uuid::Uuid::new_v4().to_string(), "Description": note, "Quantity": 1.0, "UnitAmount": amount,
                    "AccountCode": sales["Code"], "AccountID": sales["AccountID"], "TaxType": "NONE", "TaxAmount": 0.0,
                    "LineAmount": amount, "Tracking": []}],
                "SubTotal": amount, "TotalTax": 0.0, "Total": amount, "CurrencyCode": "USD", "CurrencyRate": 1.0,
                "IsReconciled": false, "HasAttachments": false,
            }),
            // Field names of Zoho's bank transactions page; unconfirmed against a live org.
            Provider::Zoho => json!({
                "transaction_type": "deposit", "date": day, "amount": amount, "account_id": bank["account_id"],
                "account_name": bank["account_name"], "from_account_id": sales["account_id"], "from_account_name": sales["account_name"],
                "to_account_id": bank["account_id"], "to_account_name": bank["account_name"], "customer_id": customer["contact_id"],
                "customer_name": customer["contact_name"], "currency_code": "USD", "reference_number": format!("DEP-{n:05}"),
                "description": note, "status": "manually_added", "debit_or_credit": "debit", "payment_mode": "Cash",
            }),
        }
    }

    pub(super) fn gen_bank_transfer(&mut self, n: u64, now: DateTime<Utc>) -> Value {
        let from = self.own_bank_account(now);
        let to = self.other_bank_account(&from, now);
        let cents = 10_000 + (n.wrapping_mul(3_001) % 90_000) as i64;
        let amount = money(cents);
        let date = now - Duration::days(1);
        let day = date.format("%Y-%m-%d").to_string();
        match self.provider {
            Provider::Quickbooks => json!({
                "TxnDate": day, "PrivateNote": format!("To savings {n}"),
                "FromAccountRef": {"value": from["Id"], "name": from["Name"]}, "ToAccountRef": {"value": to["Id"], "name": to["Name"]},
                "Amount": amount, "domain": "QBO", "sparse": false,
            }),
            Provider::Xero => {
                let reference = format!("TRF-{n:05}");
                let side = |kind: &str, account: &Value| {
                    json!({"Type": kind, "Reference": reference, "Status": "AUTHORISED", "LineAmountTypes": "NoTax",
                        "BankAccount": {"AccountID": account["AccountID"], "Code": account["Code"], "Name": account["Name"]},
                        "Date": xero_msdate(date), "DateString": xero_datestring(date), "LineItems": [],
                        "SubTotal": amount, "TotalTax": 0.0, "Total": amount, "CurrencyCode": "USD", "CurrencyRate": 1.0,
                        "IsReconciled": false, "HasAttachments": false})
                };
                let (spend_id, receive_id) = (self.next_id(), self.next_id());
                self.put(Entity::BankTransaction, &spend_id, side("SPEND-TRANSFER", &from), now);
                self.put(Entity::BankTransaction, &receive_id, side("RECEIVE-TRANSFER", &to), now);
                json!({
                    "FromBankAccount": {"AccountID": from["AccountID"], "Code": from["Code"], "Name": from["Name"]},
                    "ToBankAccount": {"AccountID": to["AccountID"], "Code": to["Code"], "Name": to["Name"]},
                    "Amount": amount, "Date": xero_msdate(date), "CurrencyRate": 1.0, "Reference": reference,
                    "FromBankTransactionID": spend_id, "ToBankTransactionID": receive_id,
                    "FromIsReconciled": false, "ToIsReconciled": false, "HasAttachments": false, "Status": "AUTHORISED",
                })
            }
            Provider::Zoho => json!({
                "transaction_type": "transfer_fund", "date": day, "amount": amount, "account_id": from["account_id"],
                "account_name": from["account_name"], "from_account_id": from["account_id"], "from_account_name": from["account_name"],
                "to_account_id": to["account_id"], "to_account_name": to["account_name"], "currency_code": "USD",
                "reference_number": format!("TRF-{n:05}"), "description": "Transfer to savings", "status": "manually_added",
                "debit_or_credit": "credit",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each provider's expense, deposit and transfer name the org's own bank accounts and contacts;
    /// a transfer goes between two different bank accounts, and a Xero transfer's two sides are in
    /// BankTransactions, named by the transfer.
    #[test]
    fn bank_records_name_the_orgs_accounts_and_xero_transfers_have_their_sides() {
        let now = Utc::now();
        for p in Provider::ALL {
            let mut org = Org::new(p, "o1", "Org", None, now);
            let exp = org.generate(Entity::Expense, now);
            let dep = org.generate(Entity::BankTransaction, now);
            let trf = org.generate(Entity::BankTransfer, now);
            let banks: Vec<&Record> = org.store(Entity::Account).items.iter().filter(|r| is_bank(&r.value)).collect();
            assert_eq!(banks.len(), 2, "{p:?}: the business account and the savings account");
            let (e, d, t) = (
                &org.get(Entity::Expense, &exp).unwrap().value,
                &org.get(Entity::BankTransaction, &dep).unwrap().value,
                &org.get(Entity::BankTransfer, &trf).unwrap().value,
            );
            match p {
                Provider::Quickbooks => {
                    assert_eq!(e["AccountRef"]["value"], json!(banks[0].id));
                    assert_eq!(d["DepositToAccountRef"]["value"], json!(banks[0].id));
                    assert_eq!((&t["FromAccountRef"]["value"], &t["ToAccountRef"]["value"]), (&json!(banks[0].id), &json!(banks[1].id)));
                }
                Provider::Xero => {
                    assert_eq!(e["BankAccount"]["AccountID"], json!(banks[0].id));
                    assert!(t.get("UpdatedDateUTC").is_none() && t.get("CreatedDateUTC").is_some());
                    let sides: Vec<&str> = org.records(Entity::BankTransaction).filter_map(|r| r.value["Type"].as_str()).collect();
                    assert_eq!(sides, ["RECEIVE", "SPEND-TRANSFER", "RECEIVE-TRANSFER"]);
                    assert!(org.get(Entity::BankTransaction, t["FromBankTransactionID"].as_str().unwrap()).is_some());
                    assert_eq!(org.records(Entity::Expense).count(), 1);
                }
                Provider::Zoho => {
                    assert_eq!(e["paid_through_account_id"], json!(banks[0].id));
                    assert_eq!((&t["from_account_id"], &t["to_account_id"]), (&json!(banks[0].id), &json!(banks[1].id)));
                    assert_eq!((org.records(Entity::BankTransaction).count(), org.records(Entity::BankTransfer).count()), (1, 1));
                    assert!(!org.get(Entity::Expense, &exp).unwrap().summary.contains("line_items"));
                }
            }
        }
    }
}
