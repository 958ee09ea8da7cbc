//! Reference data every org starts with, in each provider's wire format: the tax codes the
//! generated invoices' and bills' lines name (`lines::TAX_RATE_BP` and no tax), so a client can check
//! every line's tax code against the org's tax rates.

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use crate::lines::{percent, CatalogItem, TAX_RATE_BP};
use crate::model::{xero_msdate, Provider};

/// Zoho's id of the one sales tax the generated lines use (`data::Org::zoho_lines`).
pub const ZOHO_TAX_ID: &str = "460000000030001";
/// QuickBooks' TaxRate the taxable code applies (`data::Org::qbo_tax_detail` names it).
pub const QBO_TAX_RATE_ID: &str = "3";

/// The tax codes an org starts with, as (id, record).
///
/// - QuickBooks (US): the `TAX` and `NON` codes lines name, `TAX` applying TaxRate 3. That a
///   `SELECT * FROM TaxCode` lists `TAX` and `NON` in US companies is unconfirmed (Intuit documents
///   them as the values of a US line's TaxCodeRef).
/// - Xero: `OUTPUT` (sales), `INPUT` (purchases) at the sandbox's rate and `NONE`.
/// - Zoho: one tax; untaxed lines name none (`tax_id: ""`).
pub fn tax_rates(p: Provider) -> Vec<(String, Value)> {
    let rate = percent(TAX_RATE_BP);
    match p {
        Provider::Quickbooks => vec![
            (
                "TAX".into(),
                json!({"Name": "TAX", "Description": "TAX", "Active": true, "Hidden": false, "Taxable": true, "TaxGroup": false,
                    "SalesTaxRateList": {"TaxRateDetail": [{"TaxRateRef": {"value": QBO_TAX_RATE_ID, "name": "California"},
                        "TaxTypeApplicable": "TaxOnAmount", "TaxOrder": 0}]},
                    "PurchaseTaxRateList": {"TaxRateDetail": []}, "domain": "QBO", "sparse": false}),
            ),
            (
                "NON".into(),
                json!({"Name": "NON", "Description": "NON", "Active": true, "Hidden": false, "Taxable": false, "TaxGroup": false,
                    "domain": "QBO", "sparse": false}),
            ),
        ],
        Provider::Xero => [("OUTPUT", "Tax on Sales", &rate), ("INPUT", "Tax on Purchases", &rate), ("NONE", "Tax Exempt", &json!(0.0))]
            .into_iter()
            .map(|(t, name, r)| (t.to_string(), xero_tax_rate(t, name, r)))
            .collect(),
        Provider::Zoho => vec![(ZOHO_TAX_ID.into(), zoho_tax(ZOHO_TAX_ID, "Sales Tax", &rate))],
    }
}

fn xero_tax_rate(tax_type: &str, name: &str, rate: &Value) -> Value {
    // ReportTaxType is an enum of Xero's report categories (xero_accounting.yaml); a custom
    // `TAX001`-style rate reports under one of them, never under its own name (the official SDKs
    // refuse any other value: infra/sdk_check.py). Which one a real org shows is set per rate.
    let report = if tax_type.starts_with("TAX") { "OUTPUT" } else { tax_type };
    json!({"Name": name, "TaxType": tax_type, "ReportTaxType": report, "CanApplyToAssets": true, "CanApplyToEquity": true,
        "CanApplyToExpenses": true, "CanApplyToLiabilities": true, "CanApplyToRevenue": true, "DisplayTaxRate": rate,
        "EffectiveRate": rate, "Status": "ACTIVE",
        "TaxComponents": [{"Name": name, "Rate": rate, "IsCompound": false, "IsNonRecoverable": false}]})
}

/// Zoho's tax fields as its Taxes page lists them; `status` is unconfirmed (third-party clients
/// read it; Zoho's page does not show it).
fn zoho_tax(id: &str, name: &str, rate: &Value) -> Value {
    json!({"tax_id": id, "tax_name": name, "tax_percentage": rate, "tax_type": "tax", "tax_specific_type": "",
        "is_value_added": false, "is_default_tax": false, "is_editable": true, "status": "active"})
}

/// QuickBooks' TaxRate records an org starts with: the one the `TAX` code applies, at the
/// sandbox's rate. Fields as Intuit's TaxRate entity (Id, Name, Description, RateValue, AgencyRef,
/// SpecialTaxType, DisplayType, Active); the agency's id is the sandbox's own (no TaxAgency is
/// served). Other providers keep rates inside their tax records.
pub fn tax_components(p: Provider) -> Vec<(String, Value)> {
    match p {
        Provider::Quickbooks => vec![(QBO_TAX_RATE_ID.into(), tax_component("California", TAX_RATE_BP))],
        Provider::Xero | Provider::Zoho => Vec::new(),
    }
}

/// A QuickBooks TaxRate of `bp` basis points.
pub fn tax_component(name: &str, bp: i64) -> Value {
    json!({"Name": name, "Description": name, "Active": true, "RateValue": percent(bp), "AgencyRef": {"value": "1"},
        "SpecialTaxType": "NONE", "DisplayType": "ReadOnly", "domain": "QBO", "sparse": false})
}

/// The TaxRate records a further QuickBooks code `n` combines, as (id, record): a state rate of 5%
/// plus `n` basis points and a county rate of 1.25%, both on the net amount. Their Ids are kept
/// apart from the org's sequence (TaxRate is a list of its own).
pub fn gen_tax_components(p: Provider, n: u64) -> Vec<(String, Value)> {
    match p {
        Provider::Quickbooks => vec![
            (format!("{}", 1000 + 2 * n), tax_component(&format!("State {n}"), 500 + (n % 100) as i64)),
            (format!("{}", 1001 + 2 * n), tax_component(&format!("County {n}"), 125)),
        ],
        Provider::Xero | Provider::Zoho => Vec::new(),
    }
}

/// A further tax code `n` (seeded with `{"entity":"tax_rate","count":k}`): 5% plus `n` basis points
/// (QuickBooks: the sum of the TaxRate records [`gen_tax_components`] makes). Xero's custom tax
/// types are `TAX001`-style; the others use the org's next id.
pub fn gen_tax_rate(p: Provider, n: u64, id: &str) -> (String, Value) {
    let rate = percent(500 + (n % 100) as i64);
    let name = format!("Tax {n}");
    match p {
        Provider::Quickbooks => {
            let details: Vec<Value> = gen_tax_components(p, n)
                .iter()
                .enumerate()
                .map(|(k, (rid, r))| json!({"TaxRateRef": {"value": rid, "name": r["Name"]}, "TaxTypeApplicable": "TaxOnAmount", "TaxOrder": k}))
                .collect();
            (
                id.to_string(),
                json!({"Name": name, "Description": name, "Active": true, "Hidden": false, "Taxable": true, "TaxGroup": true,
                    "SalesTaxRateList": {"TaxRateDetail": details},
                    "PurchaseTaxRateList": {"TaxRateDetail": []}, "domain": "QBO", "sparse": false}),
            )
        }
        Provider::Xero => {
            let t = format!("TAX{n:03}");
            let v = xero_tax_rate(&t, &name, &rate);
            (t, v)
        }
        Provider::Zoho => (id.to_string(), zoho_tax(id, &name, &rate)),
    }
}

/// A catalogue item's default unit price: 40.00 plus 15.00 per position of its code's first letter.
fn default_price(code: &str) -> Value {
    let k = code.bytes().next().map_or(0, |b| i64::from(b % 26));
    crate::lines::money(4000 + 1500 * k)
}

/// A catalogue item (`lines::catalog`) as the provider serves it, posting to `account` (the income
/// account of a sales item, the expense account of a purchase item), with the tax code its lines
/// use when taxed. QuickBooks US items carry `Taxable`, not a tax code.
pub fn catalog_item(p: Provider, item: &CatalogItem, purchase: bool, account: &Value) -> (String, Value) {
    item_value(p, item.qbo_id, item.xero_id, item.zoho_id, item.code, item.name, purchase, account)
}

/// A further item `n` (seeded with `{"entity":"item","count":k}`), a service posting to `account`.
/// Ids are kept apart from the catalogue's fixed ones.
pub fn gen_item(p: Provider, n: u64, account: &Value) -> (String, Value) {
    let (qbo, zoho) = (format!("{}", 100_000 + n), format!("4610000{n:08}"));
    let xero = uuid::Uuid::new_v4().to_string();
    let (code, name) = (format!("ITEM-{n}"), format!("Item {n}"));
    item_value(p, &qbo, &xero, &zoho, &code, &name, false, account)
}

#[allow(clippy::too_many_arguments)]
fn item_value(
    p: Provider,
    qbo_id: &str,
    xero_id: &str,
    zoho_id: &str,
    code: &str,
    name: &str,
    purchase: bool,
    account: &Value,
) -> (String, Value) {
    let price = default_price(code);
    match p {
        Provider::Quickbooks => {
            let mut v = json!({"Name": name, "Sku": code, "Description": name, "Active": true, "FullyQualifiedName": name,
                "Taxable": true, "UnitPrice": if purchase { json!(0) } else { price.clone() }, "TrackQtyOnHand": false,
                "domain": "QBO", "sparse": false});
            let r = json!({"value": account["Id"], "name": account["Name"]});
            if purchase {
                v["Type"] = json!("NonInventory");
                v["PurchaseCost"] = price;
                v["PurchaseDesc"] = json!(name);
                v["ExpenseAccountRef"] = r;
            } else {
                v["Type"] = json!("Service");
                v["IncomeAccountRef"] = r;
            }
            (qbo_id.to_string(), v)
        }
        Provider::Xero => {
            let details = |tax: &str| json!({"UnitPrice": price, "AccountCode": account["Code"], "TaxType": tax});
            let (sales, bought) = if purchase { (json!({}), details("INPUT")) } else { (details("OUTPUT"), json!({})) };
            let v = json!({"ItemID": xero_id, "Code": code, "Name": name, "Description": name, "IsSold": !purchase,
                "IsPurchased": purchase, "IsTrackedAsInventory": false, "SalesDetails": sales, "PurchaseDetails": bought});
            (xero_id.to_string(), v)
        }
        Provider::Zoho => {
            let mut v = json!({"item_id": zoho_id, "name": name, "sku": code, "description": name, "status": "active",
                "product_type": if purchase { "goods" } else { "service" }, "tax_id": ZOHO_TAX_ID, "tax_name": "Sales Tax",
                "tax_percentage": percent(TAX_RATE_BP)});
            if purchase {
                v["item_type"] = json!("purchases");
                v["purchase_rate"] = price;
                v["purchase_account_id"] = account["account_id"].clone();
                v["purchase_account_name"] = account["account_name"].clone();
            } else {
                v["item_type"] = json!("sales");
                v["rate"] = price;
                v["account_id"] = account["account_id"].clone();
                v["account_name"] = account["account_name"].clone();
            }
            (zoho_id.to_string(), v)
        }
    }
}

/// Tracking category `n` (0: the one every org starts with) as (id, record), with two options:
/// a QuickBooks Class (its own one value; classes are flat records there), a Xero tracking
/// category with Options, a Zoho reporting tag with `tag_options` (Zoho's field names unconfirmed).
pub fn tracking_category(p: Provider, n: u64) -> (String, Value) {
    let (name, options) =
        if n == 0 { ("Region".to_string(), ["North", "South"]) } else { (format!("Category {n}"), ["Option A", "Option B"]) };
    match p {
        Provider::Quickbooks => {
            let id = format!("50000000000000{n:05}");
            let name = if n == 0 { "Retail".to_string() } else { format!("Class {n}") };
            (id, json!({"Name": name, "SubClass": false, "FullyQualifiedName": name, "Active": true, "domain": "QBO", "sparse": false}))
        }
        Provider::Xero => {
            let id = uuid::Uuid::new_v4().to_string();
            let opts: Vec<Value> = options
                .iter()
                .map(|o| json!({"TrackingOptionID": uuid::Uuid::new_v4().to_string(), "Name": o, "Status": "ACTIVE", "TrackingCategoryID": id}))
                .collect();
            (id.clone(), json!({"TrackingCategoryID": id, "Name": name, "Status": "ACTIVE", "Options": opts}))
        }
        Provider::Zoho => {
            let id = format!("4620000{n:08}");
            let opts: Vec<Value> = options
                .iter()
                .enumerate()
                .map(|(k, o)| json!({"tag_option_id": format!("4630000{:08}", n * 10 + k as u64), "tag_option_name": o, "is_active": true}))
                .collect();
            (id.clone(), json!({"tag_id": id, "tag_name": name, "is_active": true, "tag_options": opts}))
        }
    }
}

/// QuickBooks Department `n`: a location, flat (`SubDepartment` false). Fields as
/// Intuit's Department entity (Name, SubDepartment, ParentRef for a sub-department,
/// FullyQualifiedName, Active).
pub fn department(n: u64) -> Value {
    const NAMES: [&str; 4] = ["East", "West", "North", "South"];
    let base = NAMES[(n as usize) % NAMES.len()];
    let name = if (n as usize) < NAMES.len() { base.to_string() } else { format!("{base} {n}") };
    json!({"Name": name, "SubDepartment": false, "FullyQualifiedName": name, "Active": true, "domain": "QBO", "sparse": false})
}

/// Manual journal `n`: one amount moved from `credit` (the bank) to `debit` (an expense account),
/// so it balances. QuickBooks JournalEntry lines with PostingType; Xero signed LineAmounts
/// (positive debits); Zoho `line_items` with `debit_or_credit`.
pub fn journal(p: Provider, n: u64, debit: &Value, credit: &Value, now: DateTime<Utc>) -> Value {
    let cents = 10_000 + (n.wrapping_mul(7_919) % 50_000) as i64;
    let amount = crate::lines::money(cents);
    let date = now - Duration::days(2);
    let note = format!("Accrual {n}");
    match p {
        Provider::Quickbooks => {
            let line = |k: u32, side: &str, a: &Value| {
                json!({"Id": k.to_string(), "Description": note, "Amount": amount, "DetailType": "JournalEntryLineDetail",
                    "JournalEntryLineDetail": {"PostingType": side, "AccountRef": {"value": a["Id"], "name": a["Name"]}}})
            };
            json!({"DocNumber": format!("JE-{n:05}"), "TxnDate": date.format("%Y-%m-%d").to_string(), "PrivateNote": note,
                "CurrencyRef": {"value": "USD", "name": "United States Dollar"}, "Adjustment": false, "TotalAmt": amount,
                "Line": [line(0, "Debit", debit), line(1, "Credit", credit)], "domain": "QBO", "sparse": false})
        }
        Provider::Xero => {
            let line = |a: &Value, signed: Value| {
                json!({"LineAmount": signed, "AccountCode": a["Code"], "AccountID": a["AccountID"], "Description": note,
                    "TaxType": "NONE", "TaxAmount": 0.0, "IsBlank": false, "Tracking": []})
            };
            json!({"Narration": note, "Date": xero_msdate(date), "Status": "POSTED", "LineAmountTypes": "NoTax",
                "ShowOnCashBasisReports": true, "HasAttachments": false,
                "JournalLines": [line(debit, amount.clone()), line(credit, crate::lines::money(-cents))]})
        }
        Provider::Zoho => {
            let line = |k: u64, a: &Value, side: &str| {
                json!({"line_id": format!("4640000{:08}", n * 10 + k), "account_id": a["account_id"], "account_name": a["account_name"],
                    "description": note, "debit_or_credit": side, "amount": amount, "tags": []})
            };
            json!({"entry_number": format!("JE-{n:05}"), "reference_number": format!("REF-{n}"), "journal_date": date.format("%Y-%m-%d").to_string(),
                "notes": note, "currency_code": "USD", "total": amount, "status": "published",
                "line_items": [line(0, debit, "debit"), line(1, credit, "credit")]})
        }
    }
}
