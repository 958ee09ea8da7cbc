//! Reports on demand and passthrough calls through the sync worker, against moto and the provider
//! sandbox: every report of every provider matches totals computed here, independently, from the
//! sandbox's own records; a passthrough on the allow-list returns the provider's answer; one off
//! the list is refused with its code and no provider call; the token never reaches what we store
//! or announce.
//!
//! Each test runs its own sandbox, tenant and queues; the test plays the Lambda event source
//! mapping (receive, run the batch, delete what was acknowledged), as tests/sync.rs does.

use std::collections::HashMap;
use std::time::Duration as StdDuration;

use chrono::{Duration, NaiveDate, Utc};
use integration_tests::harness::{enterprise_tenant, own_queue, own_sync_queues, sandboxed, unseeded, Sandboxed};
use integration_tests::jobs::app_job;
use integration_tests::queues::{app_events, batch, delete_acknowledged, queue_arn};
use integration_tests::sandbox_control::org_id_for;
use integration_tests::{audit, aws, connect_sandbox, sandbox_control, unique, TestEnv};
use serde_json::{json, Value};
use shared::events::{AppEvent, EventType};
use shared::jobs::Operation;
use shared::refresh::TokenService;
use shared::reports::Report;
use shared::tenancy::{Entity, Priority};
use shared::worker::batch::{handle_batch, Disposition};
use shared::worker::{SyncDeps, WorkerSettings};
use shared::Provider;

struct H {
    env: TestEnv,
    sb: sandbox::RunningSandbox,
    http: reqwest::Client,
    tenant: String,
    dlq: String,
}

async fn harness() -> H {
    let Sandboxed { mut env, sb, http } = sandboxed(unseeded()).await;
    env.config.queues.events = own_queue(&env, "events").await;
    let dlq = own_queue(&env, "sync-dlq").await;
    own_sync_queues(&mut env).await;
    let h = H { env, sb, http, tenant: unique("tenant"), dlq };
    enterprise_tenant(&h.env, &h.tenant).await;
    h
}

/// Scopes that reach the accounting data and the reports (Xero's granular report scope names and
/// Zoho's reports scope are unconfirmed; see shared::reports::job::report_scopes).
fn scopes(provider: Provider) -> Vec<String> {
    let v: &[&str] = match provider {
        Provider::QuickBooks => &["com.intuit.quickbooks.accounting"],
        Provider::Xero => &[
            "offline_access",
            "accounting.invoices",
            "accounting.payments",
            "accounting.contacts",
            "accounting.settings.read",
            "accounting.reports.profitandloss.read",
            "accounting.reports.balancesheet.read",
            "accounting.reports.aged.read",
        ],
        Provider::Zoho => &["ZohoBooks.invoices.ALL", "ZohoBooks.contacts.ALL", "ZohoBooks.settings.ALL", "ZohoBooks.reports.READ"],
    };
    v.iter().map(|s| s.to_string()).collect()
}

impl H {
    fn service(&self) -> TokenService {
        self.env.token_service(StdDuration::from_secs(10))
    }

    fn deps(&self) -> SyncDeps {
        self.env.sync_deps(StdDuration::from_secs(10)).with_settings(WorkerSettings::default()).with_dlq_url(self.dlq.clone())
    }

    async fn control(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        sandbox_control::control(&self.http, &self.sb, method, path, body).await
    }

    async fn seed(&self, provider: Provider, org: &str, entity: &str, count: usize) {
        self.control(
            "POST",
            "seed",
            Some(json!({"provider": provider.as_str(), "org_id": org, "dc": "us", "entity": entity, "count": count})),
        )
        .await;
    }

    async fn clock(&self, days: i64) {
        self.control("POST", "clock", Some(json!({"advance_seconds": days * 86_400}))).await;
    }

    /// An org with books spread over time: invoices 130, 50 and 0 days ago for three customers,
    /// payments against some of them, and one payment more than its invoice owed (a credit).
    async fn make_books(&self, provider: Provider) -> String {
        let org = org_id_for(provider);
        self.seed(provider, &org, "account", 5).await;
        self.clock(-130).await;
        self.seed(provider, &org, "contact", 1).await;
        self.seed(provider, &org, "invoice", 2).await;
        self.seed(provider, &org, "payment", 1).await;
        self.clock(80).await;
        self.seed(provider, &org, "contact", 1).await;
        self.seed(provider, &org, "invoice", 2).await;
        self.seed(provider, &org, "payment", 1).await;
        self.clock(50).await;
        self.seed(provider, &org, "contact", 1).await;
        self.seed(provider, &org, "invoice", 2).await;
        self.seed(provider, &org, "payment", 2).await;
        org
    }

    async fn records(&self, provider: Provider, org: &str, entity: &str) -> Vec<Value> {
        let v = self.control("GET", &format!("records?provider={}&org_id={org}&entity={entity}", provider.as_str()), None).await;
        v["records"].as_array().unwrap().iter().filter(|r| r["deleted"] != json!(true)).cloned().collect()
    }

    /// A real grant for `org` (consent at the sandbox, code exchange, sealed and stored as the
    /// connect flow does). Returns the access token it holds.
    async fn connect(&self, provider: Provider, org: &str) -> String {
        self.connect_with(provider, org, scopes(provider)).await
    }

    async fn connect_with(&self, provider: Provider, org: &str, scopes: Vec<String>) -> String {
        let svc = self.service();
        let store = self.env.grants();
        connect_sandbox(&self.http, &svc, &store, &self.tenant, provider, Some(org), &scopes, None).await.1
    }

    /// A job message as the main app sends it: the job plus its `report` or `passthrough`.
    fn message(&self, provider: Provider, org: &str, operation: Operation, request: Value) -> String {
        let job = app_job(&self.tenant, provider, org, operation, Entity::Account, Priority::High);
        let mut v: Value = serde_json::from_str(&job.to_json()).unwrap();
        assert!(v.get("entity").is_none(), "report and passthrough jobs carry no entity on the wire");
        let key = if operation == Operation::Report { "report" } else { "passthrough" };
        v[key] = request;
        v.to_string()
    }

    async fn run(&self, bodies: &[String]) -> Vec<Disposition> {
        self.send(bodies).await;
        self.run_batches(&self.deps(), Duration::seconds(90), usize::MAX, 2).await.0
    }

    async fn send(&self, bodies: &[String]) {
        let url = self.env.config.queues.sync_high.clone();
        for b in bodies {
            self.env.clients.sqs.send_message().queue_url(&url).message_body(b).send().await.unwrap();
        }
    }

    /// Plays the event source mapping for at most `max_batches` batches, each invocation given
    /// `budget` before its deadline, until the queue stays empty for `patience` one-second polls in a row.
    /// Also returns how many invocations ran and whether each returned before its deadline.
    async fn run_batches(&self, deps: &SyncDeps, budget: Duration, max_batches: usize, patience: u32) -> (Vec<Disposition>, usize, bool) {
        let url = self.env.config.queues.sync_high.clone();
        // The queue's ARN, as the event source mapping passes it: a waiting job's visibility is set
        // on its own queue.
        let arn = queue_arn(&self.env, &url).await;
        let mut out = Vec::new();
        let (mut empty, mut batches, mut in_time) = (0, 0, true);
        while empty < patience && batches < max_batches {
            let msgs = self
                .env
                .clients
                .sqs
                .receive_message()
                .queue_url(&url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap();
            let msgs = msgs.messages.unwrap_or_default();
            if msgs.is_empty() {
                empty += 1;
                continue;
            }
            let ins = batch(&msgs, &arn, false);
            empty = 0;
            let deadline = Utc::now() + budget;
            let results = handle_batch(deps, &ins, deadline).await;
            in_time &= Utc::now() <= deadline;
            batches += 1;
            delete_acknowledged(&self.env, &url, &ins, &results).await;
            out.extend(results.into_iter().map(|(_, d)| d));
        }
        (out, batches, in_time)
    }

    /// Every event on the events queue, each checked against the published schema; with raw bodies.
    async fn events(&self) -> Vec<(AppEvent, String)> {
        app_events(&self.env).await
    }

    /// The stored item an event's `location` names.
    async fn stored(&self, event: &AppEvent) -> HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
        let loc = &event.data["location"];
        assert_eq!(loc["table"], json!(self.env.config.tables.sync));
        assert_eq!(loc["pk"], json!(format!("TENANT#{}", self.tenant)), "keys begin with the tenant");
        let out = self
            .env
            .clients
            .dynamodb
            .get_item()
            .table_name(loc["table"].as_str().unwrap())
            .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(loc["pk"].as_str().unwrap().into()))
            .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(loc["sk"].as_str().unwrap().into()))
            .send()
            .await
            .unwrap();
        let item = out.item.expect("the event names a stored item");
        let expires: i64 = item["expires_at"].as_n().unwrap().parse().unwrap();
        let lifetime = expires - Utc::now().timestamp();
        assert!((23 * 3600..=24 * 3600 + 60).contains(&lifetime), "a short lifetime (24 h TTL), got {lifetime} s");
        item
    }

    async fn sandbox_calls(&self, needle: &str) -> u64 {
        sandbox_control::calls(&self.http, &self.sb, needle).await
    }
}

// ------------------------------------------------------------------ expected figures, from the records

fn cents(v: &Value) -> i64 {
    let f = v.as_f64().or_else(|| v.as_str().and_then(|s| s.parse().ok())).unwrap_or(0.0);
    (f * 100.0).round() as i64
}

fn day(s: &str) -> NaiveDate {
    if let Some(ms) = s.strip_prefix("/Date(") {
        let ms: i64 = ms.chars().take_while(|c| c.is_ascii_digit()).collect::<String>().parse().unwrap();
        return chrono::DateTime::from_timestamp_millis(ms).unwrap().date_naive();
    }
    NaiveDate::parse_from_str(&s[..10], "%Y-%m-%d").unwrap()
}

struct Inv {
    id: String,
    contact: String,
    date: NaiveDate,
    due: NaiveDate,
    total: i64,
    /// The tax in the total (the sandbox's ledger books it as a liability, not income).
    tax: i64,
}

struct Pay {
    date: NaiveDate,
    amount: i64,
    applied: Vec<(String, i64)>,
}

/// The sandbox's records read independently: the generated ones carry every field.
fn ledger(provider: Provider, invoices: &[Value], payments: &[Value]) -> (Vec<Inv>, Vec<Pay>) {
    let invs = invoices
        .iter()
        .map(|r| {
            let v = &r["value"];
            let id = r["id"].as_str().unwrap().to_string();
            match provider {
                Provider::QuickBooks => Inv {
                    id,
                    contact: v["CustomerRef"]["value"].as_str().unwrap().into(),
                    date: day(v["TxnDate"].as_str().unwrap()),
                    due: day(v["DueDate"].as_str().unwrap()),
                    total: cents(&v["TotalAmt"]),
                    tax: cents(&v["TxnTaxDetail"]["TotalTax"]),
                },
                Provider::Xero => Inv {
                    id,
                    contact: v["Contact"]["ContactID"].as_str().unwrap().to_ascii_lowercase(),
                    date: day(v["Date"].as_str().unwrap()),
                    due: day(v["DueDate"].as_str().unwrap()),
                    total: cents(&v["Total"]),
                    tax: cents(&v["TotalTax"]),
                },
                Provider::Zoho => Inv {
                    id,
                    contact: v["customer_id"].as_str().unwrap().into(),
                    date: day(v["date"].as_str().unwrap()),
                    due: day(v["due_date"].as_str().unwrap()),
                    total: cents(&v["total"]),
                    tax: cents(&v["tax_total"]),
                },
            }
        })
        .collect();
    let pays = payments
        .iter()
        .map(|r| {
            let v = &r["value"];
            match provider {
                Provider::QuickBooks => Pay {
                    date: day(v["TxnDate"].as_str().unwrap()),
                    amount: cents(&v["TotalAmt"]),
                    applied: v["Line"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|l| (l["LinkedTxn"][0]["TxnId"].as_str().unwrap().to_string(), cents(&l["Amount"])))
                        .collect(),
                },
                Provider::Xero => Pay {
                    date: day(v["Date"].as_str().unwrap()),
                    amount: cents(&v["Amount"]),
                    applied: vec![(v["Invoice"]["InvoiceID"].as_str().unwrap().to_ascii_lowercase(), cents(&v["Amount"]))],
                },
                Provider::Zoho => Pay {
                    date: day(v["date"].as_str().unwrap()),
                    amount: cents(&v["amount"]),
                    applied: v["invoices"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|i| (i["invoice_id"].as_str().unwrap().to_string(), cents(&i["amount_applied"])))
                        .collect(),
                },
            }
        })
        .collect();
    (invs, pays)
}

/// (outstanding per invoice, bank, credits) as of `as_of`.
fn balances(invs: &[Inv], pays: &[Pay], as_of: NaiveDate) -> (Vec<(usize, i64)>, i64, i64) {
    let mut paid = vec![0i64; invs.len()];
    let (mut bank, mut credits) = (0, 0);
    let mut sorted: Vec<&Pay> = pays.iter().filter(|p| p.date <= as_of).collect();
    sorted.sort_by_key(|p| p.date);
    for p in pays.iter().filter(|p| p.date <= as_of) {
        bank += p.amount;
        let mut used = 0;
        for (id, a) in &p.applied {
            if let Some(i) = invs.iter().position(|inv| &inv.id == id && inv.date <= as_of) {
                let take = (*a).min(invs[i].total - paid[i]).max(0);
                paid[i] += take;
                used += take;
            }
        }
        credits += p.amount - used;
    }
    let owed =
        invs.iter().enumerate().filter(|(_, i)| i.date <= as_of).map(|(k, i)| (k, i.total - paid[k])).filter(|(_, o)| *o != 0).collect();
    (owed, bank, credits)
}

fn bucket(days: i64) -> usize {
    match days {
        d if d <= 0 => 0,
        1..=30 => 1,
        31..=60 => 2,
        61..=90 => 3,
        _ => 4,
    }
}

async fn reports_match_the_sandbox_books(provider: Provider) {
    let h = harness().await;
    let org = h.make_books(provider).await;
    let token = h.connect(provider, &org).await;
    let today = Utc::now().date_naive();
    let from = today - Duration::days(100);
    let requests = [
        json!({"kind": "profit_and_loss", "from": from, "to": today, "basis": "accrual"}),
        json!({"kind": "profit_and_loss", "from": from, "to": today, "basis": "cash"}),
        json!({"kind": "balance_sheet", "as_of": today}),
        json!({"kind": "aged_receivables", "as_of": today}),
    ];
    let bodies: Vec<String> = requests.iter().map(|r| h.message(provider, &org, Operation::Report, r.clone())).collect();
    let started = std::time::Instant::now();
    let disp = h.run(&bodies).await;
    // A figure for the README, not an assertion (it includes the harness's two empty 1 s polls).
    eprintln!("figure: {provider} four report jobs through SQS, worker, sandbox and moto in {} ms", started.elapsed().as_millis());
    assert_eq!(disp.len(), 4, "{disp:?}");
    assert!(disp.iter().all(|d| *d == Disposition::Done), "{provider}: {disp:?}");

    let (invs, pays) = ledger(provider, &h.records(provider, &org, "invoice").await, &h.records(provider, &org, "payment").await);
    assert_eq!((invs.len(), pays.len()), (6, 4), "{provider}: the seeded books");
    let (owed, bank, credits) = balances(&invs, &pays, today);
    let receivables: i64 = owed.iter().map(|(_, o)| o).sum();
    // Income is each invoice's net; its tax is owed to the tax office (a liability).
    let earned: i64 = invs.iter().filter(|i| i.date <= today).map(|i| i.total - i.tax).sum();
    let tax: i64 = invs.iter().filter(|i| i.date <= today).map(|i| i.tax).sum();
    assert!(tax > 0, "{provider}: the invoices carry tax");
    assert!(receivables > 0 && credits > 0 && bank > 0, "{provider}: books exercise every line ({receivables}, {credits}, {bank})");

    let events = h.events().await;
    let ready: Vec<&(AppEvent, String)> = events.iter().filter(|(e, _)| e.event_type == EventType::ReportReady).collect();
    assert_eq!(ready.len(), 4, "{provider}: one report.ready per job: {events:?}");
    let mut seen = Vec::new();
    for (e, raw) in ready {
        assert!(!raw.contains(&token), "the token never reaches an event");
        let item = h.stored(e).await;
        let doc = item["doc"].as_s().unwrap();
        assert!(!doc.contains(&token), "the token never reaches the stored report");
        let r: Report = serde_json::from_str(doc).unwrap();
        assert_eq!((r.provider, r.org_id.as_str(), r.currency.as_str()), (provider, org.as_str(), "USD"));
        assert_eq!(e.data["totals"], serde_json::to_value(&r.totals).unwrap(), "the event carries the stored totals");
        let basis = r.basis;
        match r.kind {
            shared::reports::ReportKind::ProfitAndLoss => {
                let expected = match basis {
                    shared::reports::Basis::Accrual => {
                        invs.iter().filter(|i| i.date >= from && i.date <= today).map(|i| i.total - i.tax).sum::<i64>()
                    }
                    shared::reports::Basis::Cash => pays.iter().filter(|p| p.date >= from && p.date <= today).map(|p| p.amount).sum(),
                };
                assert!(expected > 0, "{provider}: the period holds income");
                assert_eq!(r.totals["income"], expected, "{provider} {basis:?} income");
                assert_eq!(r.totals["expenses"], 0, "{provider}: these books hold no bills, expenses or journals");
                assert_eq!(r.totals["net_income"], expected, "{provider} {basis:?} net income");
                let rows: i64 = r.sections.iter().flat_map(|s| &s.rows).map(|x| x.amount).sum();
                assert_eq!(rows, expected, "{provider}: rows add up to the income");
                assert_eq!((r.period.from, r.period.to), (Some(from), Some(today)));
            }
            shared::reports::ReportKind::BalanceSheet => {
                assert_eq!(r.totals["total_assets"], bank + receivables, "{provider} total assets");
                assert_eq!(r.totals["total_liabilities"], credits + tax, "{provider} liabilities (customer credits and sales tax)");
                assert_eq!(r.totals["total_equity"], earned, "{provider} equity (earnings)");
                assert_eq!(r.totals["total_assets"], r.totals["total_liabilities"] + r.totals["total_equity"], "{provider} balances");
                assert_eq!(r.period.as_of, Some(today));
            }
            shared::reports::ReportKind::AgedReceivables => {
                assert_eq!(r.totals["total_receivables"], receivables, "{provider} total receivables");
                let mut want = [0i64; 5];
                let mut by_contact: HashMap<String, i64> = HashMap::new();
                for (k, o) in &owed {
                    want[bucket((today - invs[*k].due).num_days())] += o;
                    *by_contact.entry(invs[*k].contact.clone()).or_default() += o;
                }
                let got: Vec<i64> = r.ageing.as_ref().unwrap().iter().map(|b| b.amount).collect();
                assert_eq!(got, want.to_vec(), "{provider} ageing buckets");
                assert!(want[4] > 0 && want[0] > 0, "{provider}: the books have current and 91+ day receivables: {want:?}");
                let rows = &r.sections[0].rows;
                assert_eq!(rows.len(), by_contact.len(), "{provider}: one row per customer owing");
                for row in rows {
                    let c = row.contact_id.clone().unwrap().to_ascii_lowercase();
                    assert_eq!(Some(&row.amount), by_contact.get(&c), "{provider}: customer {c}");
                    assert_eq!(row.buckets.as_ref().unwrap().iter().sum::<i64>(), row.amount);
                }
            }
        }
        seen.push((r.kind, basis));
    }
    assert_eq!(seen.len(), 4);
    // What the four reports cost at the provider: one call each for QuickBooks and Zoho; Xero adds
    // its Organisation (base currency) per report, and for aged receivables one open-invoice page
    // plus one by-contact report per customer with open invoices (three here).
    let (reports, extra) = match provider {
        Provider::Xero => {
            let contacts: std::collections::HashSet<&str> = invs.iter().map(|i| i.contact.as_str()).collect();
            assert_eq!(contacts.len(), 3);
            (h.sandbox_calls("/Reports/").await, h.sandbox_calls("/Organisation").await + h.sandbox_calls("/Invoices").await)
        }
        _ => (h.sandbox_calls("/reports/").await, 0),
    };
    let want = if provider == Provider::Xero { (3 + 3, 4 + 1) } else { (4, 0) };
    assert_eq!((reports, extra), want, "{provider}: provider calls for the four reports");
    eprintln!("figure: {provider} four reports = {reports} report calls + {extra} other calls");
    // Every report call went through the guarded path, which writes an audit record per call.
    let audits = audit_operations(&h).await;
    assert!(audits.iter().filter(|o| *o == "report").count() >= 4, "{provider}: {audits:?}");
    h.sb.shutdown().await;
}

async fn audit_operations(h: &H) -> Vec<String> {
    audit::provider_calls(&h.env, &h.tenant)
        .await
        .into_iter()
        .filter_map(|i| i.get("operation").and_then(|o| o.as_s().ok()).cloned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickbooks_reports_match_the_sandbox_books() {
    reports_match_the_sandbox_books(Provider::QuickBooks).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xero_reports_match_the_sandbox_books() {
    reports_match_the_sandbox_books(Provider::Xero).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zoho_reports_match_the_sandbox_books() {
    reports_match_the_sandbox_books(Provider::Zoho).await;
}

// ------------------------------------------------------------------ the whole books

/// A document's (date, total, tax) or a payment's (date, amount, 0), read from its header fields.
fn figures(provider: Provider, v: &Value) -> (NaiveDate, i64, i64) {
    match provider {
        Provider::QuickBooks => (day(v["TxnDate"].as_str().unwrap()), cents(&v["TotalAmt"]), cents(&v["TxnTaxDetail"]["TotalTax"])),
        Provider::Xero => {
            let amount = if v.get("Amount").is_some() { cents(&v["Amount"]) } else { cents(&v["Total"]) };
            (day(v["Date"].as_str().unwrap()), amount, cents(&v["TotalTax"]))
        }
        Provider::Zoho => {
            let date = v["date"].as_str().or(v["journal_date"].as_str()).unwrap();
            let amount = if v.get("amount").is_some() { cents(&v["amount"]) } else { cents(&v["total"]) };
            (day(date), amount, cents(&v["tax_total"]) + cents(&v["tax_amount"]))
        }
    }
}

/// What a generated journal moves from the bank to an expense account.
fn journal_amount(provider: Provider, v: &Value) -> i64 {
    match provider {
        Provider::Xero => v["JournalLines"].as_array().unwrap().iter().map(|l| cents(&l["LineAmount"]).max(0)).sum(),
        _ => figures(provider, v).1,
    }
}

/// The sandbox's trial balance for `org`, straight from the sandbox with the grant's token (our
/// report job knows only profit and loss, balance sheet and aged receivables): (debits, credits,
/// the sum of its rows' debit less credit).
async fn trial_balance(h: &H, provider: Provider, org: &str, token: &str) -> (i64, i64, i64) {
    let base = &h.sb.base_url;
    let req = match provider {
        Provider::QuickBooks => h.http.get(format!("{base}/quickbooks/v3/company/{org}/reports/TrialBalance")),
        Provider::Xero => h.http.get(format!("{base}/xero/api.xro/2.0/Reports/TrialBalance")).header("xero-tenant-id", org),
        Provider::Zoho => h.http.get(format!("{base}/zoho/api/us/books/v3/reports/trialbalance?organization_id={org}")),
    };
    let auth = if provider == Provider::Zoho { format!("Zoho-oauthtoken {token}") } else { format!("Bearer {token}") };
    let resp = req.header("Authorization", auth).header("Accept", "application/json").send().await.unwrap();
    assert_eq!(resp.status(), 200, "{provider}: trial balance");
    let v: Value = resp.json().await.unwrap();
    let (mut rows, mut debits, mut credits) = (0, 0, 0);
    match provider {
        Provider::QuickBooks => {
            for r in v["Rows"]["Row"].as_array().unwrap() {
                match r["ColData"].as_array() {
                    Some(c) => rows += cents(&c[1]["value"]) - cents(&c[2]["value"]),
                    None => (debits, credits) = (cents(&r["Summary"]["ColData"][1]["value"]), cents(&r["Summary"]["ColData"][2]["value"])),
                }
            }
        }
        Provider::Xero => {
            for r in v["Reports"][0]["Rows"].as_array().unwrap().iter().flat_map(|s| s["Rows"].as_array().into_iter().flatten()) {
                let c = &r["Cells"];
                match r["RowType"].as_str() {
                    Some("Row") => rows += cents(&c[1]["Value"]) - cents(&c[2]["Value"]),
                    Some("SummaryRow") => (debits, credits) = (cents(&c[1]["Value"]), cents(&c[2]["Value"])),
                    _ => {}
                }
            }
        }
        Provider::Zoho => {
            for a in v["trial_balance"].as_array().unwrap().iter().flat_map(|g| g["account_transactions"].as_array().unwrap()) {
                rows += cents(&a["debit_total"]) - cents(&a["credit_total"]);
            }
            (debits, credits) = (cents(&v["total"]["debit_total"]), cents(&v["total"]["credit_total"]));
        }
    }
    (debits, credits, rows)
}

/// Issue 22: books with bills, supplier credits, payments made, credit notes, money spent and
/// received, transfers and journals as well as invoices and payments. The profit and loss (accrual
/// and cash) and the balance sheet our report job fetches agree with figures recomputed here from
/// the records' own totals, and the sandbox's trial balance sums to zero.
async fn whole_books_agree_with_the_records(provider: Provider) {
    let h = harness().await;
    let org = h.make_books(provider).await;
    for (entity, count) in [
        ("bill", 3),
        ("bill_payment", 1),
        ("vendor_credit", 1),
        ("credit_note", 1),
        ("expense", 2),
        ("bank_transaction", 2),
        ("bank_transfer", 1),
        ("journal", 1),
    ] {
        h.seed(provider, &org, entity, count).await;
    }
    let token = h.connect(provider, &org).await;
    let today = Utc::now().date_naive();
    let from = today - Duration::days(100);
    let requests = [
        json!({"kind": "profit_and_loss", "from": from, "to": today, "basis": "accrual"}),
        json!({"kind": "profit_and_loss", "from": from, "to": today, "basis": "cash"}),
        json!({"kind": "balance_sheet", "as_of": today}),
    ];
    let bodies: Vec<String> = requests.iter().map(|r| h.message(provider, &org, Operation::Report, r.clone())).collect();
    let disp = h.run(&bodies).await;
    assert!(disp.len() == 3 && disp.iter().all(|d| *d == Disposition::Done), "{provider}: {disp:?}");

    // The records, read back from the sandbox, each by its header fields.
    let (invs, pays) = ledger(provider, &h.records(provider, &org, "invoice").await, &h.records(provider, &org, "payment").await);
    let (owed, _, credits) = balances(&invs, &pays, today);
    let values = |rs: Vec<Value>| rs.into_iter().map(|r| r["value"].clone()).collect::<Vec<Value>>();
    let docs = |rs: Vec<Value>| values(rs).iter().map(|v| figures(provider, v)).collect::<Vec<_>>();
    let bills = docs(h.records(provider, &org, "bill").await);
    let vendor_credits = docs(h.records(provider, &org, "vendor_credit").await);
    let credit_notes = docs(h.records(provider, &org, "credit_note").await);
    let paid_out = docs(h.records(provider, &org, "bill_payment").await);
    let spent = docs(h.records(provider, &org, "expense").await);
    // Xero lists a transfer's two sides among its bank transactions: money received is RECEIVE.
    let received: Vec<_> = values(h.records(provider, &org, "bank_transaction").await)
        .iter()
        .filter(|v| provider != Provider::Xero || v["Type"] == "RECEIVE")
        .map(|v| figures(provider, v))
        .collect();
    let journals: Vec<(NaiveDate, i64)> =
        values(h.records(provider, &org, "journal").await).iter().map(|v| (figures(provider, v).0, journal_amount(provider, v))).collect();
    assert_eq!((bills.len(), spent.len(), received.len(), journals.len()), (3, 2, 2, 1), "{provider}: the seeded books");
    assert!(bills.iter().chain(&spent).any(|b| b.2 > 0), "{provider}: purchases carry tax");

    let within = |d: NaiveDate| d >= from && d <= today;
    let net = |xs: &[(NaiveDate, i64, i64)], f: &dyn Fn(NaiveDate) -> bool| xs.iter().filter(|x| f(x.0)).map(|x| x.1 - x.2).sum::<i64>();
    let gross = |xs: &[(NaiveDate, i64, i64)]| xs.iter().filter(|x| x.0 <= today).map(|x| x.1).sum::<i64>();
    let taxes = |xs: &[(NaiveDate, i64, i64)]| xs.iter().filter(|x| x.0 <= today).map(|x| x.2).sum::<i64>();
    let inv_net = |f: &dyn Fn(NaiveDate) -> bool| invs.iter().filter(|i| f(i.date)).map(|i| i.total - i.tax).sum::<i64>();
    let journal_in = |f: &dyn Fn(NaiveDate) -> bool| journals.iter().filter(|j| f(j.0)).map(|j| j.1).sum::<i64>();
    let income = |f: &dyn Fn(NaiveDate) -> bool| inv_net(f) - net(&credit_notes, f) + net(&received, f);
    let expenses = |f: &dyn Fn(NaiveDate) -> bool| net(&bills, f) - net(&vendor_credits, f) + net(&spent, f) + journal_in(f);
    let all = |d: NaiveDate| d <= today;
    let cash_in = pays.iter().filter(|p| within(p.date)).map(|p| p.amount).sum::<i64>() + net(&received, &within);
    let cash_out = paid_out.iter().filter(|p| within(p.0)).map(|p| p.1).sum::<i64>() + net(&spent, &within) + journal_in(&within);

    let bank = pays.iter().filter(|p| p.date <= today).map(|p| p.amount).sum::<i64>() - gross(&paid_out) - gross(&spent) + gross(&received)
        - journal_in(&all);
    let receivables = owed.iter().map(|(_, o)| o).sum::<i64>() - gross(&credit_notes);
    let payables = gross(&bills) - gross(&vendor_credits) - gross(&paid_out);
    let tax = invs.iter().filter(|i| i.date <= today).map(|i| i.tax).sum::<i64>() - taxes(&credit_notes) - taxes(&bills)
        + taxes(&vendor_credits)
        - taxes(&spent);

    let events = h.events().await;
    let mut seen = 0;
    for (e, _) in events.iter().filter(|(e, _)| e.event_type == EventType::ReportReady) {
        let r: Report = serde_json::from_str(h.stored(e).await["doc"].as_s().unwrap()).unwrap();
        match (r.kind, r.basis) {
            (shared::reports::ReportKind::ProfitAndLoss, shared::reports::Basis::Accrual) => {
                let (i, x) = (income(&within), expenses(&within));
                assert!(x > 0, "{provider}: the period holds expenses");
                assert_eq!((r.totals["income"], r.totals["expenses"]), (i, x), "{provider} accrual income and expenses");
                assert_eq!(r.totals["net_income"], i - x, "{provider} accrual net income");
            }
            (shared::reports::ReportKind::ProfitAndLoss, shared::reports::Basis::Cash) => {
                assert_eq!((r.totals["income"], r.totals["expenses"]), (cash_in, cash_out), "{provider} cash income and expenses");
                assert_eq!(r.totals["net_income"], cash_in - cash_out, "{provider} cash net income");
            }
            (shared::reports::ReportKind::BalanceSheet, _) => {
                assert_eq!(r.totals["total_assets"], bank + receivables, "{provider} total assets (bank and receivables)");
                assert_eq!(r.totals["total_liabilities"], credits + payables + tax, "{provider} liabilities (credits, payables, tax)");
                assert_eq!(r.totals["total_equity"], income(&all) - expenses(&all), "{provider} equity (earnings)");
                assert_eq!(r.totals["total_assets"], r.totals["total_liabilities"] + r.totals["total_equity"], "{provider} balances");
            }
            other => panic!("{provider}: unexpected report {other:?}"),
        }
        seen += 1;
    }
    assert_eq!(seen, 3, "{provider}: {events:?}");
    let (debits, credits_column, rows) = trial_balance(&h, provider, &org, &token).await;
    assert!(debits > 0, "{provider}: the trial balance lists the books");
    assert_eq!((debits, rows), (credits_column, 0), "{provider}: the trial balance sums to zero");
    h.sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickbooks_whole_books_agree_with_the_records() {
    whole_books_agree_with_the_records(Provider::QuickBooks).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xero_whole_books_agree_with_the_records() {
    whole_books_agree_with_the_records(Provider::Xero).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zoho_whole_books_agree_with_the_records() {
    whole_books_agree_with_the_records(Provider::Zoho).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_without_its_scope_fails_with_the_scope_named() {
    let h = harness().await;
    let org = h.make_books(Provider::Xero).await;
    // A consent without any report scope (what our connect flow asks for today).
    let granted = ["offline_access", "accounting.invoices", "accounting.contacts", "accounting.settings.read"];
    let token = h.connect_with(Provider::Xero, &org, granted.iter().map(|s| s.to_string()).collect()).await;
    let before = h.sandbox_calls("/Reports").await;
    let body = h.message(Provider::Xero, &org, Operation::Report, json!({"kind": "balance_sheet", "as_of": Utc::now().date_naive()}));
    let disp = h.run(&[body]).await;
    assert!(matches!(disp.as_slice(), [Disposition::DeadLettered { code: 1009, .. }]), "{disp:?}");
    let events = h.events().await;
    let failed: Vec<_> = events.iter().filter(|(e, _)| e.event_type == EventType::ReportFailed).collect();
    assert_eq!(failed.len(), 1, "{events:?}");
    // A malformed request is announced too (code 4000), not only dead-lettered.
    let bad =
        h.message(Provider::Xero, &org, Operation::Report, json!({"kind": "profit_and_loss", "from": "2026-03-01", "to": "2026-01-01"}));
    let d = h.run(&[bad]).await;
    assert!(matches!(d.as_slice(), [Disposition::DeadLettered { code: 4000, .. }]), "{d:?}");
    let e = h.events().await;
    assert!(matches!(e.as_slice(), [(ev, _)] if ev.event_type == EventType::ReportFailed && ev.data["error_code"] == 4000), "{e:?}");
    assert_eq!(failed[0].0.data["error_code"], 1009);
    assert_eq!(failed[0].0.data["detail"]["scope"], "accounting.reports.balancesheet.read", "{}", failed[0].0.data);
    assert_eq!(failed[0].0.data["message"], shared::ErrorCode::MissingScope.public_message());
    assert!(!failed[0].1.contains(&token));
    assert_eq!(h.sandbox_calls("/Reports").await, before, "no report call without the scope");
    h.sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passthrough_on_the_allow_list_returns_the_providers_answer() {
    let h = harness().await;
    for provider in [Provider::QuickBooks, Provider::Xero, Provider::Zoho] {
        let org = org_id_for(provider);
        h.seed(provider, &org, "invoice", 2).await;
        let token = h.connect(provider, &org).await;
        let inv = h.records(provider, &org, "invoice").await.remove(1);
        let id = inv["id"].as_str().unwrap().to_string();
        let (path, query) = match provider {
            Provider::QuickBooks => (format!("invoice/{id}"), json!({})),
            Provider::Xero => (format!("Invoices/{id}"), json!({})),
            Provider::Zoho => (format!("invoices/{id}"), json!({})),
        };
        let missing = match provider {
            Provider::QuickBooks => "invoice/999999",
            Provider::Xero => "Invoices/00000000-0000-4000-8000-000000000000",
            Provider::Zoho => "invoices/999999",
        };
        let bodies = vec![
            h.message(provider, &org, Operation::Passthrough, json!({"method": "GET", "path": path, "query": query})),
            h.message(provider, &org, Operation::Passthrough, json!({"method": "GET", "path": missing})),
        ];
        let disp = h.run(&bodies).await;
        assert!(disp.iter().all(|d| *d == Disposition::Done), "{provider}: {disp:?}");
        let events = h.events().await;
        let ready: Vec<_> = events.iter().filter(|(e, _)| e.event_type == EventType::PassthroughReady).collect();
        assert_eq!(ready.len(), 2, "{provider}: {events:?}");
        for (e, raw) in ready {
            assert!(!raw.contains(&token), "{provider}: the token never reaches an event");
            let item = h.stored(e).await;
            let status: u16 = item["status"].as_n().unwrap().parse().unwrap();
            assert_eq!(e.data["status"], json!(status));
            assert_eq!((e.data["body_encoding"].as_str(), item["body_encoding"].as_s().map(String::as_str)), (Some("utf-8"), Ok("utf-8")));
            let body = item["body"].as_s().unwrap();
            assert!(!body.contains(&token), "{provider}: the token never reaches the stored answer");
            for v in item.values() {
                if let Ok(s) = v.as_s() {
                    assert!(!s.contains(&token), "{provider}: no stored attribute holds the token");
                }
            }
            if e.data["path"] == json!(path) {
                assert_eq!(status, 200, "{provider}: {body}");
                let v: Value = serde_json::from_str(body).unwrap();
                let got = match provider {
                    Provider::QuickBooks => v["Invoice"]["Id"].clone(),
                    Provider::Xero => v["Invoices"][0]["InvoiceID"].clone(),
                    Provider::Zoho => v["invoice"]["invoice_id"].clone(),
                };
                assert_eq!(got, json!(id), "{provider}: the provider's own answer for the record asked for");
            } else {
                // A 4xx is the provider's answer too: stored and announced, not retried.
                assert!((400..500).contains(&status), "{provider}: {status} {body}");
            }
        }
        let audits = audit_operations(&h).await;
        assert!(audits.iter().filter(|o| *o == "passthrough").count() >= 2, "{provider}: {audits:?}");
    }
    h.sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passthrough_off_the_allow_list_is_refused_without_a_provider_call() {
    let h = harness().await;
    let org = org_id_for(Provider::QuickBooks);
    h.seed(Provider::QuickBooks, &org, "invoice", 1).await;
    let token = h.connect(Provider::QuickBooks, &org).await;
    let before = h.sandbox_calls("/quickbooks/v3").await;
    let refused = [
        json!({"method": "POST", "path": "invoice", "body": {"Line": []}}),
        json!({"method": "DELETE", "path": "invoice/1"}),
        json!({"method": "GET", "path": "../../9130000000000001/invoice/1"}),
        json!({"method": "GET", "path": "invoice/%2e%2e%2fcompanyinfo"}),
        json!({"method": "GET", "path": "https://evil.example/steal"}),
        json!({"method": "GET", "path": "//evil.example/steal"}),
        json!({"method": "GET", "path": "query", "query": {"query": "DELETE FROM Invoice"}}),
        json!({"method": "GET", "path": "invoice/1", "query": {"access_token": "x"}}),
        json!({"method": "GET", "path": "payroll/employees"}),
    ];
    let bodies: Vec<String> = refused.iter().map(|r| h.message(Provider::QuickBooks, &org, Operation::Passthrough, r.clone())).collect();
    let disp = h.run(&bodies).await;
    assert_eq!(disp.len(), refused.len());
    for d in &disp {
        assert!(matches!(d, Disposition::DeadLettered { code: 4011, .. }), "refused with PassthroughNotAllowed: {d:?}");
    }
    let events = h.events().await;
    let failed: Vec<_> = events.iter().filter(|(e, _)| e.event_type == EventType::PassthroughFailed).collect();
    assert_eq!(failed.len(), refused.len(), "one passthrough.failed per refused call: {events:?}");
    for (e, raw) in failed {
        assert_eq!(e.data["error_code"], 4011);
        assert_eq!(e.data["retryable"], false);
        assert_eq!(e.data["message"], shared::ErrorCode::PassthroughNotAllowed.public_message(), "{}", e.data);
        assert!(e.data["detail"]["reason"].as_str().is_some_and(|r| !r.is_empty()), "{}", e.data);
        assert!(!raw.contains(&token));
    }
    assert!(events.iter().all(|(e, _)| e.event_type != EventType::PassthroughReady));
    assert_eq!(h.sandbox_calls("/quickbooks/v3").await, before, "no provider call for a refused passthrough");
    assert!(audit_operations(&h).await.iter().all(|o| o != "passthrough"), "nothing was called, so nothing was audited");
    h.sb.shutdown().await;
}

// ------------------------------------------------------------------ long Xero aged receivables

/// A Xero org whose `n` customers each owe one invoice, a third of them dated 100 days ago, a
/// third 50, a third today (so every ageing bucket of interest is used).
async fn many_debtors(h: &H, n: usize) -> String {
    let org = org_id_for(Provider::Xero);
    h.seed(Provider::Xero, &org, "account", 2).await;
    let thirds = [n / 3, n / 3, n - 2 * (n / 3)];
    h.clock(-100).await;
    for (i, count) in thirds.iter().enumerate() {
        for _ in 0..*count {
            h.seed(Provider::Xero, &org, "contact", 1).await;
            h.seed(Provider::Xero, &org, "invoice", 1).await;
        }
        if i < 2 {
            h.clock(50).await;
        }
    }
    org
}

/// Xero's limits shrunk to a two-second "minute" at the sandbox and in the guard alike, so 300
/// calls take seconds rather than minutes while the guard still spaces them as it would at Xero;
/// a worker that hands over when less than a second is left.
async fn fast_xero_deps(h: &H) -> SyncDeps {
    let body = json!({"provider": "xero", "rate_limit_per_minute": 60, "minute_window_seconds": 2, "rate_limit_per_day": 5000});
    h.control("POST", "config", Some(body)).await;
    let limits = shared::resilience::Limits {
        minute: StdDuration::from_secs(2),
        safety: StdDuration::from_millis(300),
        xero_app_per_minute: 1_000_000_000,
        ..Default::default()
    };
    let mut deps = h
        .env
        .sync_deps(StdDuration::from_secs(10))
        // 1.5 s for what an invocation does after it stops (its checkpoint, the follow-up job): with
        // 1 s, one of 3-second invocations overran under a clean-clone run's load and passed alone.
        .with_settings(WorkerSettings { deadline_margin: StdDuration::from_millis(1500), ..WorkerSettings::default() })
        .with_dlq_url(h.dlq.clone());
    deps.guard =
        shared::resilience::ProviderGuard::with_limits(h.env.clients.dynamodb.clone(), h.env.config.tables.resilience.clone(), limits);
    deps
}

/// Issue 20 #2: at Xero's 60 calls a minute, 300 contacts cannot be read inside one invocation.
/// Each invocation gets a 3-second deadline here (the worker's 120 s, shrunk with the minute):
/// the job hands over to follow-ups, each contact is asked about once, every invocation returns
/// before its deadline, one `report.ready` names the app's job, and the report's figures are the
/// sandbox's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xero_aged_receivables_for_300_contacts_continue_across_jobs() {
    let h = harness().await;
    let org = many_debtors(&h, 300).await;
    h.connect(Provider::Xero, &org).await;
    let deps = fast_xero_deps(&h).await;
    let today = Utc::now().date_naive();
    let body = h.message(Provider::Xero, &org, Operation::Report, json!({"kind": "aged_receivables", "as_of": today}));
    let sent: Value = serde_json::from_str(&body).unwrap();
    h.send(&[body]).await;
    let started = std::time::Instant::now();
    let (disp, invocations, in_time) = h.run_batches(&deps, Duration::seconds(3), usize::MAX, 2).await;
    eprintln!("figure: Xero aged receivables for 300 contacts in {invocations} invocations, {} ms", started.elapsed().as_millis());
    assert!(in_time, "every invocation returned before its deadline");
    assert!(disp.iter().all(|d| *d == Disposition::Done), "{disp:?}");
    assert!(disp.len() >= 3, "the report continued over several jobs: {disp:?}");

    let events = h.events().await;
    let ready: Vec<&AppEvent> = events.iter().map(|(e, _)| e).filter(|e| e.event_type == EventType::ReportReady).collect();
    assert_eq!(ready.len(), 1, "one report.ready for the whole report: {events:?}");
    assert!(events.iter().all(|(e, _)| e.event_type == EventType::ReportReady), "nothing else announced: {events:?}");
    let e = ready[0];
    assert_eq!(e.data["idempotency_key"], sent["idempotency_key"], "the event names the app's key");
    assert_eq!(e.data["job_id"], sent["job_id"], "and the app's job");
    // The sandbox counts per route (`/Reports/{name}`); the only reports asked for are by contact.
    assert_eq!(h.sandbox_calls("/Reports/").await, 300, "each contact asked about once");

    let item = h.stored(e).await;
    let r: Report = serde_json::from_str(item["doc"].as_s().unwrap()).unwrap();
    let (invs, pays) = ledger(Provider::Xero, &h.records(Provider::Xero, &org, "invoice").await, &[]);
    assert_eq!(invs.len(), 300);
    let (owed, _, _) = balances(&invs, &pays, today);
    let mut want = [0i64; 5];
    let mut by_contact: HashMap<String, i64> = HashMap::new();
    for (k, o) in &owed {
        want[bucket((today - invs[*k].due).num_days())] += o;
        *by_contact.entry(invs[*k].contact.clone()).or_default() += o;
    }
    assert_eq!(by_contact.len(), 300);
    assert_eq!(r.totals["total_receivables"], owed.iter().map(|(_, o)| o).sum::<i64>(), "total receivables");
    let got: Vec<i64> = r.ageing.as_ref().unwrap().iter().map(|b| b.amount).collect();
    assert_eq!(got, want.to_vec(), "ageing buckets");
    assert!(want.iter().filter(|a| **a > 0).count() >= 3, "the books use several buckets: {want:?}");
    let rows = &r.sections[0].rows;
    assert_eq!(rows.len(), 300, "one row per customer owing");
    for row in rows {
        let c = row.contact_id.clone().unwrap().to_ascii_lowercase();
        assert_eq!(Some(&row.amount), by_contact.get(&c), "customer {c}");
    }
    h.sb.shutdown().await;
}

/// A guard wait is a hand-over point too: a 429 whose Retry-After (12 s) is beyond the guard's
/// retry budget stops the job at its first contact with a `RateLimited` wait; it stores what it has
/// (the contacts it listed) and, when SQS brings it back, goes on from there without listing again.
/// Each contact is read successfully once; one `report.ready`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_stopped_by_a_rate_limit_wait_resumes_where_it_stopped() {
    let h = harness().await;
    let org = many_debtors(&h, 30).await;
    h.connect(Provider::Xero, &org).await;
    let deps = fast_xero_deps(&h).await;
    let fault = json!({"provider": "xero", "path_prefix": "/api.xro/2.0/Reports/AgedReceivablesByContact", "kind": "429", "count": 1, "retry_after": 12});
    h.control("POST", "faults", Some(fault)).await;
    let body = h.message(Provider::Xero, &org, Operation::Report, json!({"kind": "aged_receivables", "as_of": Utc::now().date_naive()}));
    h.send(&[body]).await;
    let (disp, _, in_time) = h.run_batches(&deps, Duration::seconds(90), usize::MAX, 16).await;
    assert!(in_time);
    assert!(matches!(disp.as_slice(), [Disposition::Retry { code: 2001, .. }, Disposition::Done]), "waited once, then done: {disp:?}");
    let events = h.events().await;
    assert!(matches!(events.as_slice(), [(e, _)] if e.event_type == EventType::ReportReady), "{events:?}");
    assert_eq!(h.sandbox_calls("/Reports/").await, 30 + 1, "each contact read once, plus the refused call");
    assert_eq!(
        (h.sandbox_calls("/Organisation").await, h.sandbox_calls("/Invoices").await),
        (1, 1),
        "the resumed job did not list the contacts again"
    );
    let r: Report = serde_json::from_str(h.stored(&events[0].0).await["doc"].as_s().unwrap()).unwrap();
    assert_eq!(r.sections[0].rows.len(), 30);
    h.sb.shutdown().await;
}

/// A report whose follow-up job fails for good is announced as `report.failed` once, under the
/// app's key and job, and never as ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continued_report_that_fails_for_good_sends_report_failed() {
    let h = harness().await;
    let org = many_debtors(&h, 90).await;
    h.connect(Provider::Xero, &org).await;
    let deps = fast_xero_deps(&h).await;
    let body = h.message(Provider::Xero, &org, Operation::Report, json!({"kind": "aged_receivables", "as_of": Utc::now().date_naive()}));
    let sent: Value = serde_json::from_str(&body).unwrap();
    h.send(&[body]).await;
    let (first, _, _) = h.run_batches(&deps, Duration::seconds(3), 1, 2).await;
    assert_eq!(first, vec![Disposition::Done], "the first job handed over");
    let fault =
        json!({"provider": "xero", "path_prefix": "/api.xro/2.0/Reports/AgedReceivablesByContact", "kind": "malformed", "count": 1});
    h.control("POST", "faults", Some(fault)).await;
    let (rest, _, in_time) = h.run_batches(&deps, Duration::seconds(3), usize::MAX, 2).await;
    assert!(in_time);
    assert!(matches!(rest.as_slice(), [Disposition::DeadLettered { code: 5004, .. }]), "{rest:?}");
    let events = h.events().await;
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0].0;
    assert_eq!(e.event_type, EventType::ReportFailed);
    assert_eq!((&e.data["idempotency_key"], &e.data["job_id"]), (&sent["idempotency_key"], &sent["job_id"]));
    assert_eq!(e.data["error_code"], 5004);
    h.sb.shutdown().await;
}

// ------------------------------------------------------------------ passthrough answers and the item limit

/// Issue 20 #11: a body that is not UTF-8 is stored as base64 (never converted lossily, which
/// could triple it past DynamoDB's 400 KB item), and an answer that does not fit one item is
/// refused with 4002 before anything is written. Against moto, with DynamoDB's item size counted
/// as AWS counts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_passthrough_answers_are_stored_whole_as_base64_or_refused_when_too_large() {
    use base64::Engine;
    use shared::providers::raw::RawAnswer;
    use shared::reports::store::{answer_item, item_size, MAX_ITEM_BYTES};
    let env = aws().await;
    let store = shared::reports::ReportStore::new(env.clients.dynamodb.clone(), env.config.tables.sync.clone());
    let tenant = unique("tenant");
    let answer = |body: Vec<u8>| RawAnswer {
        status: 200,
        content_type: Some("application/pdf".into()),
        body: bytes::Bytes::from(body),
        latency_ms: 1,
    };
    // Bytes 0x80-0xFF alone are never UTF-8: lossy conversion makes each three bytes.
    let binary = |len: usize| (0..len).map(|i| 0x80 | (i % 128) as u8).collect::<Vec<u8>>();
    let now = Utc::now();
    let put = |key: &str, a: &RawAnswer| {
        let (store, tenant, key, a) = (store.clone(), tenant.clone(), key.to_string(), a.clone());
        async move { store.put_answer(&tenant, Provider::Xero, "org-1", &key, "GET", "Invoices/1", &a, now).await }
    };
    let get = |sk: String| {
        let (store, tenant) = (store.clone(), tenant.clone());
        async move { store.get(&tenant, &sk, now).await.unwrap() }
    };

    // 200 KiB of binary: 600 KiB after lossy UTF-8, 273 KiB as base64.
    let pdf = binary(200 * 1024);
    let (loc, encoding) = put("k-binary", &answer(pdf.clone())).await.expect("a binary body that fits is stored");
    assert_eq!(encoding, "base64");
    let item = get(loc.sk.clone()).await.expect("stored");
    assert_eq!(item["body_encoding"].as_s().unwrap(), "base64");
    let back = base64::engine::general_purpose::STANDARD.decode(item["body"].as_s().unwrap()).unwrap();
    assert_eq!(back, pdf, "the bytes come back exactly");
    assert!(item_size(&item) <= MAX_ITEM_BYTES, "AWS's 400 KB rule holds for what was stored");

    // The largest binary body that fits, found with the same count the store uses; one base64
    // group more is just over the limit.
    let fits = |len: usize| {
        answer_item(&tenant, "PASSTHROUGH#xero#org-1#0123456789abcdef01234567", "GET", "Invoices/1", &answer(binary(len)), now).is_ok()
    };
    let mut len = 290 * 1024;
    while fits(len + 3) {
        len += 3;
    }
    assert!(fits(len) && !fits(len + 3));
    let (loc, _) = put("k-edge", &answer(binary(len))).await.expect("the largest body that fits is stored");
    assert_eq!(get(loc.sk).await.unwrap()["body"].as_s().unwrap().len(), len.div_ceil(3) * 4);
    let e = put("k-over", &answer(binary(len + 3))).await.unwrap_err();
    assert_eq!(e.code().as_u16(), 4002, "{e}");
    assert!(!e.is_retryable(), "too large stays too large: passthrough.failed, not a retry");
    let sk_over = format!("PASSTHROUGH#xero#org-1#{}", shared::reports::store::job_hash("k-over"));
    assert!(get(sk_over).await.is_none(), "nothing half-written");

    // Text is stored as text, whole, up to the same limit.
    let (loc, encoding) = put("k-text", &answer(br#"{"Invoices":[]}"#.to_vec())).await.unwrap();
    assert_eq!(encoding, "utf-8");
    assert_eq!(get(loc.sk).await.unwrap()["body"].as_s().unwrap(), r#"{"Invoices":[]}"#);
    let e = put("k-text-over", &answer(vec![b'a'; MAX_ITEM_BYTES])).await.unwrap_err();
    assert_eq!(e.code().as_u16(), 4002);
}

/// Through the worker: a provider answer larger than one DynamoDB item ends in
/// `passthrough.failed` with 4002 and a dead letter, with nothing stored (it was announced as ready
/// with `truncated` before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passthrough_answer_too_large_to_store_fails_with_4002() {
    let h = harness().await;
    let org = org_id_for(Provider::Xero);
    let id = uuid::Uuid::new_v4().to_string();
    let contact = json!({"ContactID": id, "Name": "x".repeat(420_000), "ContactStatus": "ACTIVE", "IsCustomer": true});
    h.control("POST", "seed", Some(json!({"provider": "xero", "org_id": org, "entity": "contact", "records": [contact]}))).await;
    h.connect(Provider::Xero, &org).await;
    let body = h.message(Provider::Xero, &org, Operation::Passthrough, json!({"method": "GET", "path": format!("Contacts/{id}")}));
    let sent: Value = serde_json::from_str(&body).unwrap();
    let disp = h.run(&[body]).await;
    assert!(matches!(disp.as_slice(), [Disposition::DeadLettered { code: 4002, .. }]), "{disp:?}");
    let events = h.events().await;
    assert!(
        matches!(events.as_slice(), [(e, _)] if e.event_type == EventType::PassthroughFailed && e.data["error_code"] == 4002 && e.data["retryable"] == false),
        "{events:?}"
    );
    let sk = format!("PASSTHROUGH#xero#{org}#{}", shared::reports::store::job_hash(sent["idempotency_key"].as_str().unwrap()));
    let store = shared::reports::ReportStore::new(h.env.clients.dynamodb.clone(), h.env.config.tables.sync.clone());
    assert!(store.get(&h.tenant, &sk, Utc::now()).await.unwrap().is_none(), "nothing stored");
    h.sb.shutdown().await;
}
