//! Payments made: QuickBooks BillPayment, Xero `ACCPAYPAYMENT` payments, Zoho vendor payments.
//! A generated one pays the newest open bill of the org in full (a fresh bill when none is open),
//! and the bill's amount due drops to zero (Xero `AmountPaid`, status PAID; Zoho status `paid`), so
//! a bill's total is what is due plus what was paid and credited.

use super::*;

impl Org {
    pub(super) fn gen_bill_payment(&mut self, n: u64, now: DateTime<Utc>) -> Value {
        let p = self.provider;
        let due_key = match p {
            Provider::Quickbooks => "Balance",
            Provider::Xero => "AmountDue",
            Provider::Zoho => "balance",
        };
        let due_of = |v: &Value| v.get(due_key).and_then(Value::as_f64).and_then(exact_cents).unwrap_or(0);
        let open = self
            .store(Entity::Bill)
            .items
            .iter()
            .rev()
            .find(|r| !r.deleted && is_kind(p, Entity::Bill, &r.value) && due_of(&r.value) > 0)
            .map(|r| r.id.clone());
        let bill_id = match open {
            Some(id) => id,
            None => self.generate(Entity::Bill, now),
        };
        let bank = self.bank_account(now);
        let mut bill = self.get(Entity::Bill, &bill_id).map(|r| r.value.clone()).unwrap_or_default();
        let cents = due_of(&bill);
        let amount = money(cents);
        let date = (now - Duration::days(1)).format("%Y-%m-%d").to_string();
        let payment = match p {
            Provider::Quickbooks => {
                bill["Balance"] = money(0);
                json!({
                    "TxnDate": date, "DocNumber": format!("BP-{n}"), "VendorRef": bill["VendorRef"], "APAccountRef": bill["APAccountRef"],
                    "PayType": "Check", "CheckPayment": {"BankAccountRef": {"value": bank["Id"], "name": bank["Name"]}, "PrintStatus": "NotSet"},
                    "CurrencyRef": {"value": "USD", "name": "United States Dollar"}, "TotalAmt": amount,
                    "Line": [{"Amount": amount, "LinkedTxn": [{"TxnId": bill_id, "TxnType": "Bill"}]}],
                    "domain": "QBO", "sparse": false,
                })
            }
            Provider::Xero => {
                let paid = bill.get("AmountPaid").and_then(Value::as_f64).and_then(exact_cents).unwrap_or(0);
                bill["AmountPaid"] = money(paid + cents);
                bill["AmountDue"] = money(0);
                bill["Status"] = json!("PAID");
                json!({
                    "Date": xero_msdate(now - Duration::days(1)), "Amount": amount, "BankAmount": amount, "Reference": format!("BP{n}"),
                    "CurrencyRate": 1.0, "PaymentType": "ACCPAYPAYMENT", "Status": "AUTHORISED",
                    "IsReconciled": false, "HasAccount": true, "HasValidationErrors": false,
                    "Account": {"AccountID": bank["AccountID"], "Code": bank["Code"], "Name": bank["Name"]},
                    "Invoice": {"InvoiceID": bill_id, "InvoiceNumber": bill["InvoiceNumber"], "Type": "ACCPAY",
                        "Contact": bill["Contact"], "CurrencyCode": "USD", "IsDiscounted": false, "HasErrors": false},
                })
            }
            Provider::Zoho => {
                bill["balance"] = money(0);
                bill["status"] = json!("paid");
                json!({
                    "payment_number": format!("{n}"), "date": date, "payment_mode": "Bank Transfer", "amount": amount,
                    "vendor_id": bill["vendor_id"], "vendor_name": bill["vendor_name"],
                    "paid_through_account_id": bank["account_id"], "paid_through_account_name": bank["account_name"],
                    "currency_code": "USD", "reference_number": format!("BP{n}"),
                    "bills": [{"bill_id": bill_id, "bill_number": bill["bill_number"], "date": date, "amount_applied": amount}],
                })
            }
        };
        self.put(Entity::Bill, &bill_id, bill, now);
        payment
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each payment made pays a bill of the org in full, and that bill then owes nothing.
    #[test]
    fn a_payment_made_pays_an_open_bill_of_the_org() {
        let now = Utc::now();
        for p in Provider::ALL {
            let mut org = Org::new(p, "o1", "Org", None, now);
            for _ in 0..3 {
                org.generate(Entity::Bill, now);
            }
            let ids: Vec<String> = (0..5).map(|_| org.generate(Entity::BillPayment, now)).collect();
            let mut paid = std::collections::HashSet::new();
            for id in &ids {
                let v = &org.get(Entity::BillPayment, id).unwrap().value;
                assert!(is_kind(p, Entity::BillPayment, v) && !is_kind(p, Entity::Payment, v) || p != Provider::Xero, "{p:?}");
                let (bill, amount) = match p {
                    Provider::Quickbooks => (v["Line"][0]["LinkedTxn"][0]["TxnId"].clone(), v["TotalAmt"].clone()),
                    Provider::Xero => (v["Invoice"]["InvoiceID"].clone(), v["Amount"].clone()),
                    Provider::Zoho => (v["bills"][0]["bill_id"].clone(), v["amount"].clone()),
                };
                let bill = bill.as_str().unwrap().to_string();
                assert!(paid.insert(bill.clone()), "{p:?}: each bill is paid once");
                let b = &org.get(Entity::Bill, &bill).unwrap().value;
                let (total, due) = match p {
                    Provider::Quickbooks => (&b["TotalAmt"], &b["Balance"]),
                    Provider::Xero => (&b["Total"], &b["AmountDue"]),
                    Provider::Zoho => (&b["total"], &b["balance"]),
                };
                assert_eq!(
                    (exact_cents(amount.as_f64().unwrap()), exact_cents(due.as_f64().unwrap())),
                    (exact_cents(total.as_f64().unwrap()), Some(0))
                );
            }
            assert_eq!(org.records(Entity::Bill).count(), 5, "{p:?}: two more bills made to be paid");
        }
    }
}
