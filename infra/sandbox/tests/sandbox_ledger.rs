//! The sandbox's books over HTTP, per provider: an org seeded with every entity serves a trial
//! balance whose debits equal its credits, a balance sheet that balances with the profit and loss's
//! earnings as its equity, and writes made through the provider's own API (a manual journal, money
//! spent, money received, an invoice voided) move exactly the accounts and amounts they name.

mod common;

use std::collections::BTreeMap;

use common::*;
use serde_json::{json, Value};

const ZORG: &str = "organization_id=700000001";

fn cents(v: &Value) -> i64 {
    let f = v.as_f64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok())).unwrap_or(0.0);
    (f * 100.0).round() as i64
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum P {
    Qbo,
    Xero,
    Zoho,
}

struct Books {
    p: P,
    base: String,
    at: String,
    /// QuickBooks realm, Xero tenant or Zoho organisation.
    org: String,
    /// Zoho's api domain.
    api: String,
}

/// A trial balance as served: per account id, debit minus credit; and the column totals.
struct Tb {
    net: BTreeMap<String, i64>,
    debits: i64,
    credits: i64,
}

impl Books {
    async fn connect(base: &str, p: P) -> Books {
        let (at, org, api) = match p {
            P::Qbo => {
                let (at, _, realm) = qbo_connect(base).await;
                (at, realm, String::new())
            }
            P::Xero => (s(&xero_connect(base).await["access_token"]), XERO_T1.to_string(), String::new()),
            P::Zoho => {
                let (v, _) = zoho_connect(base, "us").await;
                (s(&v["access_token"]), "700000001".to_string(), s(&v["api_domain"]))
            }
        };
        Books { p, base: base.to_string(), at, org, api }
    }

    fn provider(&self) -> &'static str {
        match self.p {
            P::Qbo => "quickbooks",
            P::Xero => "xero",
            P::Zoho => "zoho",
        }
    }

    async fn seed(&self, entity: &str, count: usize) {
        control(&self.base, "seed", json!({"provider": self.provider(), "org_id": self.org, "entity": entity, "count": count})).await;
    }

    async fn records(&self, entity: &str) -> Vec<Value> {
        let url = format!("{}/_sandbox/records?provider={}&org_id={}&entity={entity}", self.base, self.provider(), self.org);
        let r = get(&url, &[]).await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["records"].as_array().unwrap().iter().filter(|r| r["deleted"] != json!(true)).map(|r| r["value"].clone()).collect()
    }

    /// GET a report by the provider's name for it, with its query.
    async fn report(&self, name: &str, query: &str) -> Value {
        let r = match self.p {
            P::Qbo => {
                let url = format!("{}/quickbooks/v3/company/{}/reports/{name}?{query}", self.base, self.org);
                get(&url, &[("Authorization", &format!("Bearer {}", self.at)), ("Accept", "application/json")]).await
            }
            P::Xero => xero_get(&self.base, &self.at, &self.org, &format!("Reports/{name}?{query}"), &[]).await,
            P::Zoho => zoho_get(&self.api, &self.at, &format!("reports/{}?{query}&{ZORG}", name.to_ascii_lowercase())).await,
        };
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        r.json()
    }

    async fn trial_balance(&self) -> Tb {
        let v = self.report("TrialBalance", "").await;
        let mut tb = Tb { net: BTreeMap::new(), debits: 0, credits: 0 };
        match self.p {
            P::Qbo => {
                for row in v["Rows"]["Row"].as_array().unwrap() {
                    if let Some(cols) = row["ColData"].as_array() {
                        *tb.net.entry(s(&cols[0]["id"])).or_default() += cents(&cols[1]["value"]) - cents(&cols[2]["value"]);
                    } else if row["group"] == "GrandTotal" {
                        let c = &row["Summary"]["ColData"];
                        (tb.debits, tb.credits) = (cents(&c[1]["value"]), cents(&c[2]["value"]));
                    }
                }
                assert_eq!(v["Columns"]["Column"][1]["ColTitle"], "Debit");
                assert_eq!(v["Columns"]["Column"][2]["ColTitle"], "Credit");
            }
            P::Xero => {
                let report = &v["Reports"][0];
                assert_eq!(report["ReportType"], "TrialBalance");
                for section in report["Rows"].as_array().unwrap().iter().filter(|r| r["RowType"] == "Section") {
                    for row in section["Rows"].as_array().unwrap() {
                        let cells = row["Cells"].as_array().unwrap();
                        match row["RowType"].as_str() {
                            Some("Row") => {
                                let id = s(&cells[0]["Attributes"][0]["Value"]);
                                *tb.net.entry(id).or_default() += cents(&cells[1]["Value"]) - cents(&cells[2]["Value"]);
                            }
                            Some("SummaryRow") => (tb.debits, tb.credits) = (cents(&cells[1]["Value"]), cents(&cells[2]["Value"])),
                            _ => {}
                        }
                    }
                }
            }
            P::Zoho => {
                for group in v["trial_balance"].as_array().unwrap() {
                    for a in group["account_transactions"].as_array().unwrap() {
                        *tb.net.entry(s(&a["account_id"])).or_default() += cents(&a["debit_total"]) - cents(&a["credit_total"]);
                    }
                }
                (tb.debits, tb.credits) = (cents(&v["total"]["debit_total"]), cents(&v["total"]["credit_total"]));
            }
        }
        assert_eq!(tb.debits, tb.credits, "{:?}: the trial balance sums to zero", self.p);
        assert_eq!(tb.net.values().sum::<i64>(), 0, "{:?}: its rows too", self.p);
        assert_eq!(tb.net.values().filter(|x| **x > 0).sum::<i64>(), tb.debits, "{:?}: the debit column is its rows'", self.p);
        tb
    }

    /// Net income from the beginning to today, as the profit and loss states it.
    async fn net_income(&self) -> i64 {
        let today = chrono::Utc::now().date_naive();
        match self.p {
            P::Qbo => {
                let v = self.report("ProfitAndLoss", &format!("start_date=1900-01-01&end_date={today}")).await;
                let rows = v["Rows"]["Row"].as_array().unwrap();
                cents(&rows.iter().find(|r| r["group"] == "NetIncome").unwrap()["Summary"]["ColData"][1]["value"])
            }
            P::Xero => {
                let v = self.report("ProfitAndLoss", &format!("fromDate=1900-01-01&toDate={today}")).await;
                let rows = v["Reports"][0]["Rows"].as_array().unwrap();
                let summary =
                    rows.iter().flat_map(|r| r["Rows"].as_array().into_iter().flatten()).find(|r| r["Cells"][0]["Value"] == "Net Profit");
                cents(&summary.unwrap()["Cells"][1]["Value"])
            }
            P::Zoho => {
                let v = self.report("ProfitAndLoss", &format!("from_date=1900-01-01&to_date={today}")).await;
                cents(&v["profit_and_loss"].as_array().unwrap().iter().find(|g| g["name"] == "Net Profit/Loss").unwrap()["total"])
            }
        }
    }

    /// (total assets, total liabilities, total equity) of today's balance sheet.
    async fn balance_sheet(&self) -> (i64, i64, i64) {
        match self.p {
            P::Qbo => {
                let v = self.report("BalanceSheet", "").await;
                let rows = v["Rows"]["Row"].as_array().unwrap();
                let total = |r: &Value| cents(&r["Summary"]["ColData"][1]["value"]);
                let le = rows[1]["Rows"]["Row"].as_array().unwrap();
                (total(&rows[0]), total(&le[0]), total(&le[1]))
            }
            P::Xero => {
                let v = self.report("BalanceSheet", "").await;
                let mut t = BTreeMap::new();
                for r in v["Reports"][0]["Rows"].as_array().unwrap().iter().flat_map(|r| r["Rows"].as_array().into_iter().flatten()) {
                    if r["RowType"] == "SummaryRow" {
                        t.insert(s(&r["Cells"][0]["Value"]), cents(&r["Cells"][1]["Value"]));
                    }
                }
                (t["Total Assets"], t["Total Liabilities"], t["Total Equity"])
            }
            P::Zoho => {
                let v = self.report("BalanceSheet", "").await;
                let g = v["balance_sheet"].as_array().unwrap();
                (cents(&g[0]["total"]), cents(&g[1]["total"]), cents(&g[2]["total"]))
            }
        }
    }

    /// (id, code) of the org's first live account whose type is one of `types`.
    async fn account(&self, types: &[&str]) -> (String, String) {
        let (id, ty, code) = match self.p {
            P::Qbo => ("Id", "AccountType", "AcctNum"),
            P::Xero => ("AccountID", "Type", "Code"),
            P::Zoho => ("account_id", "account_type", "account_code"),
        };
        let a = self.records("account").await.into_iter().find(|a| a[ty].as_str().is_some_and(|t| types.contains(&t))).unwrap();
        (s(&a[id]), a[code].as_str().unwrap_or_default().to_string())
    }

    async fn send(&self, method: &str, path: &str, body: &Value) -> Value {
        let r = match self.p {
            P::Qbo => {
                let url = format!("{}/quickbooks/v3/company/{}/{path}", self.base, self.org);
                post_json(&url, &[("Authorization", &format!("Bearer {}", self.at)), ("Accept", "application/json")], body).await
            }
            P::Xero if method == "PUT" => xero_put(&self.base, &self.at, &self.org, path, body, &[]).await,
            P::Xero => {
                let bearer = format!("Bearer {}", self.at);
                post_json(
                    &format!("{}/xero/api.xro/2.0/{path}", self.base),
                    &[("Authorization", &bearer), ("xero-tenant-id", &self.org)],
                    body,
                )
                .await
            }
            P::Zoho => {
                let url = format!("{}/books/v3/{path}{}{ZORG}", self.api, if path.contains('?') { '&' } else { '?' });
                let auth = format!("Zoho-oauthtoken {}", self.at);
                call(method, &url, &[("Authorization", &auth), ("Content-Type", "application/json")], body.to_string().as_bytes()).await
            }
        };
        assert!(r.status == 200 || r.status == 201, "{:?} {method} {path}: {}", self.p, r.text());
        r.json()
    }
}

async fn books_balance_and_follow_writes(p: P) {
    let sb = start().await;
    let b = Books::connect(&sb.base_url, p).await;
    b.seed("account", 5).await;
    for e in [
        "invoice",
        "bill",
        "credit_note",
        "vendor_credit",
        "payment",
        "bill_payment",
        "journal",
        "expense",
        "bank_transaction",
        "bank_transfer",
    ] {
        b.seed(e, 2).await;
    }
    let before = b.trial_balance().await;
    assert!(before.debits > 0, "{p:?}: the books hold something");
    let (assets, liabilities, equity) = b.balance_sheet().await;
    assert_eq!(assets, liabilities + equity, "{p:?}: the balance sheet balances");
    let earned = b.net_income().await;
    assert_eq!(equity, earned, "{p:?}: the equity is the earnings (the org has no equity accounts)");
    assert!(liabilities > 0, "{p:?}: payables, tax and customer credits");

    let (expense, expense_code) = b.account(&["Expense", "EXPENSE", "expense"]).await;
    let (bank, bank_code) = b.account(&["Bank", "BANK", "bank"]).await;
    let (income, income_code) = b.account(&["Income", "REVENUE", "income"]).await;
    // A journal of 123.45 from the bank to an expense, 50.00 spent from the bank and 80.00 received
    // into it from a sale without an invoice.
    match p {
        P::Qbo => {
            let line = |side: &str, a: &str| json!({"Amount": 123.45, "DetailType": "JournalEntryLineDetail", "JournalEntryLineDetail": {"PostingType": side, "AccountRef": {"value": a}}});
            b.send("POST", "journalentry", &json!({"Line": [line("Debit", &expense), line("Credit", &bank)]})).await;
            b.send("POST", "purchase", &json!({"AccountRef": {"value": bank}, "PaymentType": "Cash",
                "Line": [{"Amount": 50.0, "DetailType": "AccountBasedExpenseLineDetail", "AccountBasedExpenseLineDetail": {"AccountRef": {"value": expense}}}]})).await;
            b.send(
                "POST",
                "deposit",
                &json!({"DepositToAccountRef": {"value": bank},
                "Line": [{"Amount": 80.0, "DetailType": "DepositLineDetail", "DepositLineDetail": {"AccountRef": {"value": income}}}]}),
            )
            .await;
        }
        P::Xero => {
            b.send("PUT", "ManualJournals", &json!({"ManualJournals": [{"Narration": "Ledger test", "Status": "POSTED",
                "JournalLines": [{"LineAmount": 123.45, "AccountCode": expense_code}, {"LineAmount": -123.45, "AccountCode": bank_code}]}]})).await;
            let contact = s(&b.records("contact").await[0]["ContactID"]);
            b.send("PUT", "BankTransactions", &json!({"BankTransactions": [{"Type": "SPEND", "Contact": {"ContactID": contact},
                "BankAccount": {"Code": bank_code}, "LineItems": [{"Description": "Paper", "LineAmount": 50.0, "AccountCode": expense_code, "TaxType": "NONE"}]}]})).await;
            b.send("PUT", "BankTransactions", &json!({"BankTransactions": [{"Type": "RECEIVE", "Contact": {"ContactID": contact},
                "BankAccount": {"Code": bank_code}, "LineItems": [{"Description": "Cash sale", "LineAmount": 80.0, "AccountCode": income_code, "TaxType": "NONE"}]}]})).await;
        }
        P::Zoho => {
            b.send(
                "POST",
                "journals",
                &json!({"journal_date": "2026-01-02", "line_items": [
                {"account_id": expense, "debit_or_credit": "debit", "amount": 123.45},
                {"account_id": bank, "debit_or_credit": "credit", "amount": 123.45}]}),
            )
            .await;
            b.send("POST", "expenses", &json!({"paid_through_account_id": bank, "line_items": [{"account_id": expense, "amount": 50.0}]}))
                .await;
            let deposit = json!({"transaction_type": "deposit", "to_account_id": bank, "from_account_id": income, "amount": 80.0});
            b.send("POST", "banktransactions", &deposit).await;
        }
    }
    let after = b.trial_balance().await;
    let delta = |id: &str| after.net.get(id).copied().unwrap_or(0) - before.net.get(id).copied().unwrap_or(0);
    assert_eq!(
        (delta(&expense), delta(&bank), delta(&income)),
        (12_345 + 5_000, -(12_345 + 5_000) + 8_000, -8_000),
        "{p:?}: the writes moved what they name"
    );
    let named = [&expense, &bank, &income];
    let moved: i64 = after.net.keys().chain(before.net.keys()).filter(|k| !named.contains(k)).map(|k| delta(k).abs()).sum();
    assert_eq!(moved, 0, "{p:?}: and nothing else");
    let earned = earned - 17_345 + 8_000;
    assert_eq!(b.net_income().await, earned, "{p:?}: the profit and loss counts them");

    // Voiding an unpaid invoice takes it out: its net leaves income, its total the receivables.
    let invoices = b.records("invoice").await;
    let (due_key, total_key, sub) = match p {
        P::Qbo => ("Balance", "TotalAmt", None),
        P::Xero => ("AmountDue", "Total", Some("SubTotal")),
        P::Zoho => ("balance", "total", Some("sub_total")),
    };
    let open = invoices
        .iter()
        .find(|v| cents(&v[due_key]) == cents(&v[total_key]) && cents(&v[total_key]) > 0 && v.get("Type").is_none_or(|t| t == "ACCREC"))
        .expect("an unpaid invoice")
        .clone();
    let net = match sub {
        Some(k) => cents(&open[k]),
        None => cents(&open["TotalAmt"]) - cents(&open["TxnTaxDetail"]["TotalTax"]),
    };
    match p {
        P::Qbo => b.send("POST", "invoice?operation=void", &json!({"Id": open["Id"], "SyncToken": open["SyncToken"]})).await,
        P::Xero => b.send("POST", "Invoices", &json!({"Invoices": [{"InvoiceID": open["InvoiceID"], "Status": "VOIDED"}]})).await,
        P::Zoho => b.send("POST", &format!("invoices/{}/status/void", s(&open["invoice_id"])), &json!({})).await,
    };
    let voided = b.trial_balance().await;
    let total = cents(&open[total_key]);
    let moves: Vec<i64> = voided
        .net
        .keys()
        .chain(after.net.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(|k| voided.net.get(k).copied().unwrap_or(0) - after.net.get(k).copied().unwrap_or(0))
        .filter(|d| *d != 0)
        .collect();
    // Receivables credited by the total; income and tax debited by its net and its tax.
    assert!(moves.contains(&-total), "{p:?}: the receivable leaves: {moves:?}");
    assert_eq!(moves.iter().filter(|d| **d > 0).sum::<i64>(), total, "{p:?}: {moves:?}");
    assert!(moves.len() <= 3, "{p:?}: receivables, income and tax only: {moves:?}");
    assert_eq!(b.net_income().await, earned - net, "{p:?}: the voided invoice is no income");
    let (assets, liabilities, equity) = b.balance_sheet().await;
    assert_eq!(assets, liabilities + equity, "{p:?}: the balance sheet still balances");
    sb.shutdown().await;
}

#[tokio::test]
async fn quickbooks_books_balance_and_follow_writes() {
    books_balance_and_follow_writes(P::Qbo).await;
}

#[tokio::test]
async fn xero_books_balance_and_follow_writes() {
    books_balance_and_follow_writes(P::Xero).await;
}

#[tokio::test]
async fn zoho_books_balance_and_follow_writes() {
    books_balance_and_follow_writes(P::Zoho).await;
}
