//! Line items of generated invoices and bills, worked out in integer cents so that every document
//! adds up exactly however a provider renders it: the sum of line amounts is the subtotal, subtotal
//! plus tax is the total, and an unpaid document's balance is its total.
//!
//! Tax is computed per line (rounded half up to the cent) and a document's tax is the sum of its
//! lines' tax. Xero rounds tax per line by default; whether QuickBooks and Zoho Books round per line
//! or per document is unconfirmed, and per line keeps each line's tax amount meaningful.

use serde_json::{json, Value};

/// Most lines a seed may ask for on one document.
pub const MAX_LINES: usize = 100;

/// The one non-zero tax rate of the sandbox's companies, in basis points (8.25%).
pub const TAX_RATE_BP: i64 = 825;

/// A product or service lines can name. Ids per provider are fixed: QuickBooks-style small numbers,
/// Xero GUIDs, Zoho long numbers. The org's items entity serves them once a document names them
/// (`data::Org::ensure_items`).
#[derive(Debug)]
pub struct CatalogItem {
    pub qbo_id: &'static str,
    pub xero_id: &'static str,
    pub zoho_id: &'static str,
    pub code: &'static str,
    pub name: &'static str,
}

const SALES_ITEMS: [CatalogItem; 4] = [
    CatalogItem {
        qbo_id: "1",
        xero_id: "9a59cffd-7d1b-4a61-a1a4-1c7c3f6b0e01",
        zoho_id: "460000000020001",
        code: "SERVICES",
        name: "Services",
    },
    CatalogItem { qbo_id: "2", xero_id: "9a59cffd-7d1b-4a61-a1a4-1c7c3f6b0e02", zoho_id: "460000000020002", code: "HOURS", name: "Hours" },
    CatalogItem {
        qbo_id: "3",
        xero_id: "9a59cffd-7d1b-4a61-a1a4-1c7c3f6b0e03",
        zoho_id: "460000000020003",
        code: "DESIGN",
        name: "Design",
    },
    CatalogItem {
        qbo_id: "4",
        xero_id: "9a59cffd-7d1b-4a61-a1a4-1c7c3f6b0e04",
        zoho_id: "460000000020004",
        code: "INSTALL",
        name: "Installation",
    },
];

const PURCHASE_ITEMS: [CatalogItem; 3] = [
    CatalogItem {
        qbo_id: "11",
        xero_id: "9a59cffd-7d1b-4a61-a1a4-1c7c3f6b0e11",
        zoho_id: "460000000020011",
        code: "PAPER",
        name: "Printer paper",
    },
    CatalogItem { qbo_id: "12", xero_id: "9a59cffd-7d1b-4a61-a1a4-1c7c3f6b0e12", zoho_id: "460000000020012", code: "TONER", name: "Toner" },
    CatalogItem {
        qbo_id: "13",
        xero_id: "9a59cffd-7d1b-4a61-a1a4-1c7c3f6b0e13",
        zoho_id: "460000000020013",
        code: "PARTS",
        name: "Spare parts",
    },
];

/// The items sales (or purchase) lines name.
pub fn catalog(purchase: bool) -> &'static [CatalogItem] {
    if purchase {
        &PURCHASE_ITEMS
    } else {
        &SALES_ITEMS
    }
}

const SALES_DESCRIPTIONS: [&str; 5] = ["Consulting", "Hours worked", "Logo design", "Installation on site", "Support plan"];
const PURCHASE_DESCRIPTIONS: [&str; 5] = ["Office supplies", "Courier", "Software subscription", "Printer paper", "Equipment hire"];

#[derive(Debug)]
pub struct Line {
    pub description: &'static str,
    pub quantity: i64,
    /// Cents.
    pub unit: i64,
    /// quantity x unit, cents.
    pub amount: i64,
    /// Basis points: 0 or [`TAX_RATE_BP`].
    pub tax_bp: i64,
    /// Cents.
    pub tax: i64,
    /// Purchases: only some lines name an item (QuickBooks' item-based expense lines); sales lines
    /// always do.
    pub item: Option<&'static CatalogItem>,
}

impl Line {
    pub fn taxed(&self) -> bool {
        self.tax_bp != 0
    }
}

#[derive(Debug)]
pub struct Doc {
    pub lines: Vec<Line>,
    pub sub_total: i64,
    pub tax: i64,
    pub total: i64,
}

impl Doc {
    /// Taxable net amount (cents) of the lines with tax.
    pub fn taxable(&self) -> i64 {
        self.lines.iter().filter(|l| l.taxed()).map(|l| l.amount).sum()
    }
}

/// How many lines document `n` has: `fixed` (clamped to 1..=MAX_LINES), or 1 to 5 by `n`.
pub fn line_count(n: u64, fixed: Option<usize>) -> usize {
    fixed.map(|f| f.clamp(1, MAX_LINES)).unwrap_or(1 + (n % 5) as usize)
}

/// The lines of generated document `n` (deterministic in `n`, `fixed` and `purchase`).
pub fn document(n: u64, fixed: Option<usize>, purchase: bool) -> Doc {
    let count = line_count(n, fixed);
    let mut lines = Vec::with_capacity(count);
    for k in 0..count as u64 {
        let quantity = 1 + ((n + k) % 4) as i64;
        // Odd cents on purpose: totals must hold for amounts a float would not keep exactly.
        let unit = 995 + ((n.wrapping_mul(7919) + k.wrapping_mul(104_729)) % 20_000) as i64;
        let amount = quantity * unit;
        let tax_bp = if (n + k) % 2 == 0 { TAX_RATE_BP } else { 0 };
        let tax = (amount * tax_bp + 5_000) / 10_000;
        let (descriptions, items): (&[&str], &'static [CatalogItem]) =
            if purchase { (&PURCHASE_DESCRIPTIONS, &PURCHASE_ITEMS) } else { (&SALES_DESCRIPTIONS, &SALES_ITEMS) };
        let item = if purchase && k % 2 == 0 { None } else { Some(&items[((n + k) as usize) % items.len()]) };
        lines.push(Line { description: descriptions[((n + k) as usize) % descriptions.len()], quantity, unit, amount, tax_bp, tax, item });
    }
    let sub_total = lines.iter().map(|l| l.amount).sum();
    let tax = lines.iter().map(|l| l.tax).sum();
    Doc { lines, sub_total, tax, total: sub_total + tax }
}

/// Cents as the JSON number the providers write (`12.5` for 1250). Division by 100 is correctly
/// rounded, so the shortest decimal that names the double is the exact two-place amount.
pub fn money(cents: i64) -> Value {
    json!(cents as f64 / 100.0)
}

/// Cents of an amount a client sent, when it is small enough for cents to be exact (under 10^13, a
/// tenth of what a double holds exactly in cents); None for larger or non-finite amounts.
pub fn exact_cents(x: f64) -> Option<i64> {
    (x.is_finite() && x.abs() < 1e13).then(|| (x * 100.0).round() as i64)
}

/// The sum of amounts a client sent, in cents when every one of them is exact (so 0.1 + 0.2 is 0.3);
/// otherwise the plain float sum, so an amount too large for minor units reaches clients unchanged
/// (their normalisers flag it).
pub fn sum_money(xs: &[f64]) -> Value {
    let cents: Option<i64> = xs.iter().try_fold(0i64, |acc, x| acc.checked_add(exact_cents(*x)?));
    match cents {
        Some(c) => money(c),
        None => json!(xs.iter().sum::<f64>()),
    }
}

/// A tax rate in basis points as a JSON percentage (`8.25`).
pub fn percent(bp: i64) -> Value {
    json!(bp as f64 / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cents_of(v: &Value) -> i64 {
        // Parse the rendered text, not the double: that is what a client reading decimals sees.
        let t = v.to_string();
        let (whole, frac) = t.split_once('.').unwrap_or((&t, ""));
        assert!(frac.len() <= 2, "at most two decimals: {t}");
        let frac = format!("{frac:0<2}");
        whole.parse::<i64>().unwrap() * 100 + frac.parse::<i64>().unwrap()
    }

    #[test]
    fn documents_add_up_exactly_as_rendered() {
        for n in 0..1000 {
            for purchase in [false, true] {
                let d = document(n, None, purchase);
                assert!((1..=5).contains(&d.lines.len()));
                let rendered: i64 = d.lines.iter().map(|l| cents_of(&money(l.amount))).sum();
                assert_eq!(rendered, cents_of(&money(d.sub_total)));
                let tax: i64 = d.lines.iter().map(|l| cents_of(&money(l.tax))).sum();
                assert_eq!(cents_of(&money(d.sub_total)) + tax, cents_of(&money(d.total)));
            }
        }
        assert_eq!(document(7, Some(12), false).lines.len(), 12);
        assert_eq!(document(7, Some(0), false).lines.len(), 1);
    }

    #[test]
    fn client_amounts_sum_in_cents_unless_too_large() {
        assert_eq!(sum_money(&[0.1, 0.2]).to_string(), "0.3");
        assert_eq!(sum_money(&[9.5e18]), json!(9.5e18));
        assert_eq!(sum_money(&[f64::NAN, 1.0]), json!(null), "serde_json writes NaN as null");
        assert_eq!(sum_money(&[]).to_string(), "0.0");
    }
}
