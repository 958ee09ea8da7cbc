//! Purchase orders: QuickBooks PurchaseOrder, Xero PurchaseOrders, Zoho purchaseorders. The lines
//! and totals of a bill to the org's supplier, open (not yet billed), with no amount due: a
//! purchase order is not owed.

use super::*;

impl Org {
    pub(super) fn gen_purchase_order(&mut self, n: u64, lines: Option<usize>, now: DateTime<Utc>) -> Value {
        let doc = document(n, lines, true);
        let vendor = self.first_or_generate(Entity::Vendor, now);
        let expense = self.account_of_type(&["Expense", "EXPENSE", "expense"], ACCOUNTS[EXPENSE_ACCOUNT], now);
        let payable = match self.provider {
            Provider::Quickbooks => Some(self.account_of_type(&["Accounts Payable"], AP_ACCOUNT, now)),
            _ => None,
        };
        let mut v = self.gen_bill(n, &vendor, &expense, payable.as_ref(), &doc, now);
        let delivery = (now + Duration::days(14)).format("%Y-%m-%d").to_string();
        let Some(o) = v.as_object_mut() else { return v };
        match self.provider {
            Provider::Quickbooks => {
                for k in ["Balance", "DueDate"] {
                    o.remove(k);
                }
                o.insert("DocNumber".into(), json!(format!("PO-{n:05}")));
                o.insert("POStatus".into(), json!("Open"));
                o.insert("EmailStatus".into(), json!("NotSet"));
            }
            Provider::Xero => {
                for k in ["Type", "InvoiceNumber", "DueDate", "DueDateString", "AmountDue", "AmountPaid", "AmountCredited", "IsDiscounted"]
                {
                    o.remove(k);
                }
                o.insert("PurchaseOrderNumber".into(), json!(format!("PO-{n:05}")));
                o.insert("DeliveryDate".into(), json!(xero_msdate(now + Duration::days(14))));
                o.insert("DeliveryDateString".into(), json!(xero_datestring(now + Duration::days(14))));
                o.insert("SentToContact".into(), json!(false));
            }
            Provider::Zoho => {
                for k in ["bill_number", "due_date", "balance"] {
                    o.remove(k);
                }
                o.insert("purchaseorder_number".into(), json!(format!("PO-{n:05}")));
                o.insert("status".into(), json!("open"));
                o.insert("delivery_date".into(), json!(delivery));
            }
        }
        v
    }
}
