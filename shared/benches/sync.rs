//! Sync benchmark.
//!
//! 1. Records normalised per second on one core (CPU time of the thread, no I/O), per provider: the
//!    provider client's record reader plus the sync model's normaliser into the document model
//!    (invoices of five lines with item, account, tax and tracking), as the worker reads a list
//!    answer (`list_with`): the provider's default page (QuickBooks 1,000, Xero 100, Zoho 200) split
//!    at its records, each record's JSON parsed just before it is normalised and freed straight
//!    after. The figure is the read's CPU time less the same JSON parse done alone. Target: at
//!    least 100,000 records/s. Also: with the raw JSON's text the worker stores beside each record;
//!    the whole read from the page's text (JSON parse included); and, for comparison, the way the
//!    worker read before (a page's values parsed at once, then normalised over cold trees).
//! 2. End to end against the sandbox and the local AWS (needs AWS_ENDPOINT_URL): one pull job of
//!    10,000 QuickBooks bills (one to five lines each) in pages of 1,000 (claim, token, list, normalise, conditional writes,
//!    cursor, completion, audit), records per second and the process's peak RSS. The sandbox runs in
//!    this process (it holds the 10,000 bills too), so the RSS figure is an upper bound for the
//!    worker; how much the job raised the peak is printed separately. This part runs first.
//!
//! Run: `source .local/aws.env && cargo bench -p shared --bench sync` (release). Without
//! AWS_ENDPOINT_URL only part 1 runs; BENCH_SYNC_PAGE=1000 runs part 1 in pages of 1,000 for all
//! three providers.

use std::time::{Duration as StdDuration, Instant};

use chrono::Utc;
use serde_json::{json, Value};
use shared::aws::AwsClients;
use shared::jobs::{Operation, Source, SyncJob, JOB_VERSION};
use shared::providers::model::{default_page_size, Cursor, Entity};
use shared::providers::{new_pkce, quickbooks, xero, zoho, AccountingProvider, AuthorizeRequest, CallbackParams};
use shared::refresh::TokenService;
use shared::store::grants::{Connection, Grant, GrantStatus, GrantStore};
use shared::sync::model;
use shared::tenancy::{Plan, Priority, Tenant, TenantConfig, TenantStore};
use shared::vault::SealContext;
use shared::worker::{run_job, Outcome, SyncDeps, WorkerSettings};
use shared::{Config, Provider};

fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// (current, peak) resident set in KiB.
fn rss_kib() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        s.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Five lines each, with item, account, tax and tracking: the richer model's typical invoice.
const LINES: usize = 5;

fn qbo_invoice(i: usize) -> Value {
    let lines: Vec<Value> = (0..LINES)
        .map(|l| json!({"Id": (l + 1).to_string(), "LineNum": l + 1, "Description": format!("Service {l}"), "Amount": 72.41,
            "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": {"ItemRef": {"value": "1", "name": "Services"}, "Qty": 1, "UnitPrice": 72.41,
            "ItemAccountRef": {"value": "79", "name": "Sales"}, "TaxCodeRef": {"value": "TAX"}, "ClassRef": {"value": "200", "name": "North"}}}))
        .chain(std::iter::once(json!({"Amount": 362.05, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}})))
        .collect();
    json!({"Id": i.to_string(), "SyncToken": "0", "DocNumber": format!("{}", 1000 + i), "TxnDate": "2026-01-15", "DueDate": "2026-02-14",
        "TotalAmt": 391.01, "Balance": 12.5, "CustomerRef": {"value": "3", "name": "Cool Cars"}, "CurrencyRef": {"value": "USD", "name": "United States Dollar"},
        "TxnTaxDetail": {"TotalTax": 28.96}, "Line": lines,
        "MetaData": {"CreateTime": "2026-01-15T10:00:00-08:00", "LastUpdatedTime": "2026-01-16T10:00:00-08:00"}})
}

fn xero_invoice(i: usize) -> Value {
    let lines: Vec<Value> = (0..LINES)
        .map(|l| json!({"LineItemID": format!("1b2c3d4e-0000-4000-8000-{:012}", i * 10 + l), "Description": format!("Service {l}"), "Quantity": 1.0,
            "UnitAmount": 300.05, "AccountCode": "200", "ItemCode": "SVC", "TaxType": "OUTPUT2", "TaxAmount": 45.01, "LineAmount": 300.05,
            "Tracking": [{"TrackingCategoryID": "e2f2f732-e92a-4f3a-9c4d-ee4da0182a13", "TrackingOptionID": "ae777a87-5ef3-4fa0-a4f0-d10e1f13073a",
                "Name": "Region", "Option": "North"}]}))
        .collect();
    json!({"InvoiceID": format!("6b6e1e2c-0000-4000-8000-{i:012}"), "InvoiceNumber": format!("INV-{i}"), "Type": "ACCREC", "Status": "AUTHORISED",
        "Contact": {"ContactID": "c1b2a3d4-0000-4000-8000-000000000001", "Name": "Ridgeway"}, "Date": "/Date(1551139200000+0000)/",
        "DateString": "2019-02-26T00:00:00", "DueDateString": "2019-03-26T00:00:00", "SubTotal": 1500.25, "TotalTax": 225.05, "Total": 1725.30,
        "AmountDue": 1725.30, "CurrencyCode": "NZD", "CurrencyRate": 1.0, "LineAmountTypes": "Exclusive",
        "UpdatedDateUTC": "/Date(1551212901659+0000)/", "LineItems": lines})
}

/// The single-invoice form (a get or a webhook's read): Zoho's list summaries carry no lines.
fn zoho_invoice(i: usize) -> Value {
    let lines: Vec<Value> = (0..LINES)
        .map(|l| {
            json!({"line_item_id": format!("46000001{:08}", i * 10 + l), "item_id": "460000000027009", "name": "Service",
            "description": format!("Service {l}"), "rate": 8.12, "quantity": 1.0, "item_total": 8.12, "account_id": "460000000000388",
            "account_name": "Sales", "tax_id": "460000000029005", "tax_percentage": 12,
            "tags": [{"tag_id": "460000000028001", "tag_option_id": "460000000028005", "tag_option_name": "South"}]})
        })
        .collect();
    json!({"invoice_id": format!("4600000{i:08}"), "invoice_number": format!("INV-{i:06}"), "customer_id": "460000000026001", "customer_name": "Bowman",
        "status": "sent", "date": "2013-11-17", "due_date": "2013-12-03", "sub_total": 40.6, "tax_total": 4.87, "total": 45.47, "balance": 45.47,
        "currency_code": "USD", "exchange_rate": 1.0, "last_modified_time": "2013-11-18T02:17:40-0800", "reference_number": format!("REF-{i}"),
        "line_items": lines})
}

/// Normalises one page the way the worker did before each record was read on its own: the page's
/// values parsed at once, then the provider reader and the sync normaliser over them (cold trees).
fn normalise_values(provider: Provider, values: Vec<Value>) -> usize {
    let mut ok = 0;
    for v in values {
        let r = match provider {
            Provider::QuickBooks => quickbooks::normalise(Entity::Invoice, "934", v),
            Provider::Xero => xero::normalise(Entity::Invoice, "t1", v),
            Provider::Zoho => zoho::normalise(Entity::Invoice, "7", v),
        };
        let Ok(r) = r else { continue };
        if let Some(n) = model::normalise(&r) {
            ok += std::hint::black_box(n.document.as_ref().is_some_and(|d| d.lines.len() == LINES)) as usize;
        }
    }
    ok
}

/// A list answer in the provider's wire format around records `from..to`, written a record at a
/// time as bytes arrive from the network: no page of parsed values is built and freed beside the
/// timed reads (freeing one hands its memory back to the system, and the next read's page faults
/// would be counted as its own).
fn answer(provider: Provider, make: fn(usize) -> Value, from: usize, to: usize) -> Vec<u8> {
    let n = to - from;
    let (head, tail) = match provider {
        Provider::QuickBooks => (
            r#"{"QueryResponse":{"Invoice":["#.to_string(),
            format!(r#"],"maxResults":{n},"startPosition":1}},"time":"2026-01-16T10:00:00-08:00"}}"#),
        ),
        Provider::Xero => (
            r#"{"DateTimeUTC":"/Date(1551212901659)/","Id":"b8e3f3d0-0000-4000-8000-000000000000","Invoices":["#.to_string(),
            r#"],"Status":"OK"}"#.to_string(),
        ),
        Provider::Zoho => (
            r#"{"code":0,"invoices":["#.to_string(),
            format!(r#"],"message":"success","page_context":{{"has_more_page":true,"page":1,"per_page":{n}}}}}"#),
        ),
    };
    let mut out = head.into_bytes();
    for i in from..to {
        if i > from {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, &make(i)).unwrap();
    }
    out.extend_from_slice(tail.as_bytes());
    out
}

/// Reads one answer as the worker does (`list_with`): each record parsed from its text, the
/// provider's reader, then the sync normaliser and the raw JSON's text while its tree is hot.
fn read_answer(provider: Provider, bytes: &[u8], page: usize, text: bool) -> usize {
    let cursor = Cursor::start(provider, Entity::Invoice).with_page_size(page as u32);
    let mut ok = 0usize;
    let mut f = |r: &mut shared::providers::Record| {
        if let Some(n) = model::normalise(r) {
            ok += std::hint::black_box(n.document.as_ref().is_some_and(|d| d.lines.len() == LINES)) as usize;
            if text {
                std::hint::black_box(serde_json::to_string(&r.raw).ok());
            }
        }
        r.raw = Value::Null;
    };
    let rl = shared::providers::RateLimitInfo::default();
    let read = match provider {
        Provider::QuickBooks => quickbooks::read_page("934", &cursor, bytes, None, rl, &mut f),
        Provider::Xero => xero::read_page("t1", &cursor, bytes, None, rl, &mut f),
        Provider::Zoho => zoho::read_page("7", &cursor, bytes, None, rl, &mut f),
    };
    assert_eq!(read.unwrap().records.len(), page);
    ok
}

/// The JSON parse of an answer as `read_answer` does it, and nothing else: the page split at its
/// records, each record's text parsed and its tree dropped.
fn parse_only(provider: Provider, bytes: &[u8]) -> usize {
    use serde_json::value::RawValue;
    let top: std::collections::BTreeMap<String, &RawValue> = serde_json::from_slice(bytes).unwrap();
    let qr: std::collections::BTreeMap<String, &RawValue>;
    let items = match provider {
        Provider::QuickBooks => {
            qr = serde_json::from_str(top["QueryResponse"].get()).unwrap();
            qr["Invoice"]
        }
        Provider::Xero => top["Invoices"],
        Provider::Zoho => top["invoices"],
    };
    let items: Vec<&RawValue> = serde_json::from_str(items.get()).unwrap();
    let mut n = 0;
    for item in items {
        let v: Value = serde_json::from_str(item.get()).unwrap();
        n += std::hint::black_box(v.is_object()) as usize;
    }
    n
}

/// CPU time of this thread for `f` (the machine is shared: wall time would count other builds).
fn cpu_of<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let t = thread_cpu_ns();
    let out = f();
    (out, thread_cpu_ns() - t)
}

fn cpu_part() {
    const N: usize = 200_000;
    eprintln!(
        "== normalise (one core, CPU time of this thread; {N} invoices of {LINES} lines per provider in the worker's pages (QuickBooks \
         1,000, Xero 100, Zoho 200, unless BENCH_SYNC_PAGE), into the document model with lines)"
    );
    for (provider, make) in [
        (Provider::QuickBooks, qbo_invoice as fn(usize) -> Value),
        (Provider::Xero, xero_invoice as fn(usize) -> Value),
        (Provider::Zoho, zoho_invoice as fn(usize) -> Value),
    ] {
        // BENCH_SYNC_PAGE sets one size for all (1000: how this bench ran before each provider's own).
        let page = std::env::var("BENCH_SYNC_PAGE").ok().and_then(|p| p.parse().ok()).unwrap_or(default_page_size(provider) as usize);
        let (mut worker_ns, mut values_ns, mut parse_ns, mut cold_ns, mut ok) = (0u64, 0u64, 0u64, 0u64, 0usize);
        // Untimed, once: the allocator's first taking of memory is not a record's cost.
        read_answer(provider, &answer(provider, make, 0, page), page, true);
        for p in 0..N / page {
            // A page as the provider sends it, each record its own ids (built untimed).
            let bytes = answer(provider, make, p * page, (p + 1) * page);
            // As the worker reads it: every step from the page's text to the normalised record and
            // its raw JSON's text.
            let (n, ns) = cpu_of(|| read_answer(provider, &bytes, page, true));
            (ok, worker_ns) = (ok + n, worker_ns + ns);
            // The same without the raw JSON's text.
            values_ns += cpu_of(|| read_answer(provider, &bytes, page, false)).1;
            // The JSON parse alone, the same way (each record's text parsed and its tree dropped):
            // what the read costs beyond normalising.
            parse_ns += cpu_of(|| parse_only(provider, &bytes)).1;
        }
        // Before: each page's values parsed at once (untimed), then read over cold trees. Last, as
        // freeing whole pages of trees would charge the next timed read with page faults.
        for p in 0..N / page {
            let bytes = answer(provider, make, p * page, (p + 1) * page);
            let page_values = match serde_json::from_slice::<Value>(&bytes).unwrap() {
                Value::Object(mut o) => match provider {
                    Provider::QuickBooks => o["QueryResponse"]["Invoice"].take(),
                    Provider::Xero => o.remove("Invoices").unwrap(),
                    Provider::Zoho => o.remove("invoices").unwrap(),
                },
                _ => unreachable!(),
            };
            let Value::Array(values) = page_values else { unreachable!() };
            cold_ns += cpu_of(|| normalise_values(provider, values)).1;
        }
        assert_eq!(ok, N);
        let rate = |ns: u64| N as f64 / (ns as f64 / 1e9);
        eprintln!(
            "{provider:>10} (pages of {page}): {:>7.0} records/s normalised (provider reader and sync model, each record's JSON \
             parsed just before: {:.2} us/record); {:>7.0} with the raw JSON's text as stored; {:>7.0} for the whole read from the \
             page's text (JSON parse included); before, from a page's values parsed at once (cold): {:>7.0}",
            rate(values_ns.saturating_sub(parse_ns)),
            values_ns.saturating_sub(parse_ns) as f64 / 1e3 / N as f64,
            rate(worker_ns.saturating_sub(parse_ns)),
            rate(worker_ns),
            rate(cold_ns)
        );
    }
}

async fn e2e_part() {
    const N: usize = 10_000;
    shared::http_client::install_crypto_provider();
    let mut config = Config::from_env().expect("the local stack's environment (.local/aws.env)");
    let clients = AwsClients::from_env().await;
    let settings = sandbox::Settings { rate_limits_enabled: false, ..sandbox::Settings::default() };
    let sb = sandbox::spawn(sandbox::SandboxConfig { settings, seed: false, ..Default::default() }).await.expect("sandbox");
    config.provider_base_url = Some(url::Url::parse(&sb.base_url).unwrap());
    let events = clients.sqs.create_queue().queue_name(format!("bench-events-{}", uuid::Uuid::new_v4().simple())).send().await.unwrap();
    config.queues.events = events.queue_url.unwrap();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let realm = format!("9{:015}", uuid::Uuid::new_v4().as_u128() % 1_000_000_000_000_000);
    // Bills of one to five lines each (the sandbox's default), the issue's "10,000-bill pull".
    let seed = json!({"provider": "quickbooks", "org_id": realm, "entity": "bill", "count": N});
    let r = http.post(format!("{}/_sandbox/seed", sb.base_url)).json(&seed).send().await.unwrap();
    assert!(r.status().is_success());

    let tenant = format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let mut cfg = TenantConfig { return_urls: vec!["https://app.example.com/x".into()], ..Default::default() };
    cfg.enabled_entities.push(shared::tenancy::Entity::Bill);
    TenantStore::new(clients.dynamodb.clone(), config.tables.tenants.clone())
        .create(&Tenant::new(&tenant, "Bench", Plan::Enterprise, cfg, Utc::now()))
        .await
        .unwrap();
    let svc = TokenService::new(&config, &clients, shared::http_client::HttpClient::new(StdDuration::from_secs(30)).unwrap());
    let client = svc.provider_client(Provider::QuickBooks).await.unwrap();
    let (challenge, _verifier) = new_pkce();
    let redirect = url::Url::parse("http://127.0.0.1:9/cb").unwrap();
    let extra = vec![("sandbox_realm".to_string(), realm.clone())];
    let req = AuthorizeRequest { state: "s", redirect_uri: &redirect, scopes: &[], pkce_challenge: Some(&challenge), extra: &extra };
    let resp = http.get(client.authorize_url(&req).unwrap()).send().await.unwrap();
    let location = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    let pairs: Vec<(String, String)> = location.query_pairs().into_owned().collect();
    let code = pairs.iter().find(|(k, _)| k == "code").unwrap().1.clone();
    let callback = CallbackParams::from_query(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let tokens = client.exchange_code(&code, &redirect, None, &callback).await.unwrap().tokens;
    let now = Utc::now();
    let grant_id = format!("g-{}", uuid::Uuid::new_v4().simple());
    let sealed = svc.vault().seal_tokens(&SealContext::new(&tenant, Provider::QuickBooks, &grant_id), &tokens).await.unwrap();
    let grant = Grant {
        tenant_id: tenant.clone(),
        provider: Provider::QuickBooks,
        grant_id: grant_id.clone(),
        org_ids: vec![realm.clone()],
        status: GrantStatus::Active,
        scopes: tokens.scopes.clone(),
        sealed: Some(sealed),
        access_expires_at: tokens.access_expires_at,
        refresh_expires_at: tokens.refresh_expires_at,
        version: 1,
        lease_owner: None,
        lease_expires_at: None,
        seal_version: 0,
        degraded_since: None,
        last_failure_at: None,
        created_at: now,
        updated_at: now,
    };
    let conn = Connection {
        tenant_id: tenant.clone(),
        provider: Provider::QuickBooks,
        org_id: realm.clone(),
        org_name: None,
        grant_id,
        status: GrantStatus::Active,
        webhook_id: None,
        webhook_secret: None,
        created_at: now,
        updated_at: now,
    };
    GrantStore::new(clients.dynamodb.clone(), config.tables.grants.clone()).put_grant(&grant, &[conn]).await.unwrap();

    let deps = SyncDeps::new(&config, &clients, svc).with_settings(WorkerSettings { page_size: Some(1000), ..Default::default() });
    let job = SyncJob {
        version: JOB_VERSION,
        job_id: uuid::Uuid::new_v4().to_string(),
        tenant_id: tenant.clone(),
        provider: Provider::QuickBooks,
        org_id: realm,
        operation: Operation::Pull,
        entity: shared::tenancy::Entity::Bill,
        entity_id: None,
        cursor: None,
        change: None,
        merged_from: None,
        priority: Priority::Normal,
        idempotency_key: format!("bench-{}", uuid::Uuid::new_v4()),
        correlation_id: "bench".into(),
        requested_at: Utc::now(),
        source: Source::App,
        totals_before: None,
    };
    let (rss_before, peak_before) = rss_kib();
    let started = Instant::now();
    let out = run_job(&deps, &job, None, Utc::now() + chrono::Duration::minutes(15)).await.expect("sync job");
    let elapsed = started.elapsed().as_secs_f64();
    let (rss_after, peak) = rss_kib();
    let Outcome::Done(result) = out else { panic!("job not done: {out:?}") };
    let fetched = result["counts"]["fetched"].as_u64().unwrap_or(0);
    assert_eq!(fetched as usize, N, "{result}");
    eprintln!("== end to end (sandbox + local AWS): one pull of {N} QuickBooks bills with their lines, pages of 1,000");
    eprintln!(
        "  {:.0} records/s ({elapsed:.1} s wall; the local emulator serialises DynamoDB requests, so this is a floor for a real region)",
        N as f64 / elapsed
    );
    eprintln!(
        "  peak RSS {:.1} MB for the whole process (the in-process sandbox with its {N} bills included); \
         before the job: RSS {:.1} MB, peak {:.1} MB; after: RSS {:.1} MB; the job raised the peak by {:.1} MB",
        peak as f64 / 1024.0,
        rss_before as f64 / 1024.0,
        peak_before as f64 / 1024.0,
        rss_after as f64 / 1024.0,
        peak.saturating_sub(peak_before) as f64 / 1024.0
    );
    sb.shutdown().await;
}

fn main() {
    // The end-to-end part runs first, so its peak RSS is not the CPU part's 600,000 parsed records.
    if std::env::var("AWS_ENDPOINT_URL").is_ok() {
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        rt.block_on(e2e_part());
    } else {
        eprintln!("(AWS_ENDPOINT_URL not set: end-to-end part skipped; source .local/aws.env)");
    }
    cpu_part();
}
