//! Reference data every org starts with, in each provider's wire format: the tax codes the
//! generated invoices' and bills' lines name (`lines::TAX_RATE_BP` and no tax), so a client can check
//! every line's tax code against the org's tax rates.

use serde_json::{json, Value};

use crate::lines::{percent, TAX_RATE_BP};
use crate::model::Provider;

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
    json!({"Name": name, "TaxType": tax_type, "ReportTaxType": tax_type, "CanApplyToAssets": true, "CanApplyToEquity": true,
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

/// A further tax code `n` (seeded with `{"entity":"tax_rate","count":k}`): 5% plus `n` basis points.
/// Xero's custom tax types are `TAX001`-style; the others use the org's next id.
pub fn gen_tax_rate(p: Provider, n: u64, id: &str) -> (String, Value) {
    let rate = percent(500 + (n % 100) as i64);
    let name = format!("Tax {n}");
    match p {
        Provider::Quickbooks => (
            id.to_string(),
            json!({"Name": name, "Description": name, "Active": true, "Hidden": false, "Taxable": true, "TaxGroup": false,
                "SalesTaxRateList": {"TaxRateDetail": [{"TaxRateRef": {"value": QBO_TAX_RATE_ID, "name": "California"},
                    "TaxTypeApplicable": "TaxOnAmount", "TaxOrder": 0}]},
                "PurchaseTaxRateList": {"TaxRateDetail": []}, "domain": "QBO", "sparse": false}),
        ),
        Provider::Xero => {
            let t = format!("TAX{n:03}");
            let v = xero_tax_rate(&t, &name, &rate);
            (t, v)
        }
        Provider::Zoho => (id.to_string(), zoho_tax(id, &name, &rate)),
    }
}
