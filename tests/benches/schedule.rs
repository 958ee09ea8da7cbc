//! Sync scheduler at scale against the local AWS (`scripts/bench schedule`).
//!
//! SCHEDULE_SIM_CONNECTIONS active connections (default 100,000), 100 per tenant, every tenant
//! Enterprise, hourly, one entity: each connection is due once in any hour. The scheduler then runs
//! over one simulated hour at one run per simulated minute (as deployed: `rate(1 minute)`, all
//! shards, the template's 50 s timeout as the deadline), and the normal queue is drained after each
//! run. Prints every due pull enqueued exactly once or not (duplicates, misses, late ones), the
//! per-minute counts against their mean (the largest deviation, target within 10 %), wall time per
//! run and the set-up time. Figures only: nothing here is timed as a pass/fail.

use std::collections::HashMap;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use integration_tests::harness::{own_queue, own_sync_queues};
use integration_tests::{active_connection, aws, copy_grants_table, unique};
use shared::jobs::{Source, SyncJob};
use shared::sync::schedule::{interval_minutes, next_slot, scheduled_key, RunLimits, RunReport, SyncScheduler};
use shared::tenancy::{Entity, Plan, Tenant, TenantConfig};
use shared::Provider;

const PER_TENANT: usize = 100;
/// Concurrent set-up writes: enough to keep the emulator busy without queueing behind it.
const SETUP_CONCURRENCY: usize = 25;
/// The template's Timeout for the sync-scheduler function.
const RUN_DEADLINE: StdDuration = StdDuration::from_secs(50);

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    shared::http_client::install_crypto_provider();
    let total: usize = std::env::var("SCHEDULE_SIM_CONNECTIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let mut env = aws().await;
    // Its own grants table and queues: the scheduler sees only these connections.
    env.config.tables.grants = copy_grants_table(&env).await;
    env.config.queues.events = own_queue(&env, "bench-events").await;
    own_sync_queues(&mut env).await;
    let sched = SyncScheduler::new(&env.config, &env.clients);
    let (tenants_store, grants) = (env.tenants(), env.grants());
    let start: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-06-01T00:00:00Z").unwrap().into();
    let end = start + Duration::hours(1);

    println!("== scheduler: {total} connections ({PER_TENANT} per hourly Enterprise tenant, one entity), one run per simulated minute for an hour");
    // The spread is set by the slots alone (a hash of tenant, provider and org): shown here for the
    // full 100,000 whatever size the emulator runs, from the same names the run below uses.
    spread_of_slots(100_000, start);
    let t_setup = Instant::now();
    let n_tenants = total.div_ceil(PER_TENANT);
    let cfg = TenantConfig {
        return_urls: vec!["https://app.example.com/integrations".into()],
        sync_frequency_minutes: 60,
        enabled_entities: vec![Entity::Invoice],
        ..Default::default()
    };
    let tenants: Vec<Tenant> = futures::stream::iter(0..n_tenants)
        .map(|_| {
            let (store, cfg) = (&tenants_store, cfg.clone());
            async move {
                let t = Tenant::new(unique("tenant"), "Acme", Plan::Enterprise, cfg, start);
                store.create(&t).await.unwrap();
                t
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect()
        .await;
    assert_eq!(interval_minutes(&tenants[0]), 60);
    let conns: Vec<(usize, Provider, String)> = (0..total)
        .map(|i| (i / PER_TENANT, Provider::ALL[i % 3], format!("o{i}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])))
        .collect();
    // expected idempotency key -> due time: each connection's one slot in (start, start + 1 h]
    let mut expected: HashMap<String, i64> = HashMap::with_capacity(total);
    let mut done = 0usize;
    let mut enrolled = futures::stream::iter(&conns)
        .map(|(t, p, org)| {
            let (grants, sched, tenant) = (&grants, &sched, &tenants[*t]);
            async move {
                grants.put_connection(&active_connection(&tenant.tenant_id, *p, org, "g-1", start)).await.unwrap();
                let due = sched.enroll(tenant, *p, org, true, start).await.unwrap();
                assert_eq!(due, next_slot(tenant, *p, org, start));
                (scheduled_key(*p, org, Entity::Invoice, due), due)
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY);
    while let Some((key, due)) = enrolled.next().await {
        assert!(due > start.timestamp() && due <= end.timestamp(), "{key} due {due}");
        expected.insert(key, due);
        done += 1;
        if done % 10_000 == 0 {
            println!("  set up {done} connections, {:.0}/s", done as f64 / t_setup.elapsed().as_secs_f64());
        }
    }
    drop(enrolled);
    let setup = t_setup.elapsed();
    println!(
        "set up {n_tenants} tenants and {total} connections (put_connection + enroll, {SETUP_CONCURRENCY} at a time) in {:.0} s",
        setup.as_secs_f64()
    );

    let sqs = &env.clients.sqs;
    let normal = env.config.queues.sync_normal.clone();
    let mut got: HashMap<String, u32> = HashMap::with_capacity(total);
    let (mut unexpected, mut late, mut other_source) = (0usize, 0usize, 0usize);
    let mut per_minute = Vec::new();
    let mut run_secs = Vec::new();
    let mut total_report = RunReport::default();
    let sim = Instant::now();
    for k in 1..=60i64 {
        let now = start + Duration::minutes(k);
        let t_run = Instant::now();
        let r = sched.run(now, tokio::time::Instant::now() + RUN_DEADLINE, &RunLimits::default()).await.unwrap();
        run_secs.push(t_run.elapsed().as_secs_f64());
        total_report.found += r.found;
        total_report.jobs += r.jobs;
        total_report.failed += r.failed;
        total_report.left_for_next_run += r.left_for_next_run + r.shards_left_for_next_run;
        total_report.lost_race += r.lost_race;
        let mut this_minute = 0usize;
        for body in drain(sqs, &normal).await {
            let j = SyncJob::from_json(&body).unwrap();
            this_minute += 1;
            if j.source != Source::Schedule {
                other_source += 1;
            }
            match expected.get(&j.idempotency_key) {
                None => unexpected += 1,
                // Due within this run's minute; anything older was left by an earlier run.
                Some(due) if *due <= now.timestamp() - 60 => late += 1,
                Some(_) => {}
            }
            *got.entry(j.idempotency_key).or_default() += 1;
        }
        per_minute.push(this_minute);
    }
    let sim = sim.elapsed();
    let others = depth(sqs, &env.config.queues.sync_high).await + depth(sqs, &env.config.queues.sync_low).await;

    let duplicates: u32 = got.values().map(|n| n - 1).sum();
    let missed = expected.keys().filter(|k| !got.contains_key(*k)).count();
    let mean = per_minute.iter().sum::<usize>() as f64 / per_minute.len() as f64;
    let max_dev = per_minute.iter().map(|c| (*c as f64 - mean).abs() / mean * 100.0).fold(0.0, f64::max);
    let (lo, hi) = (per_minute.iter().min().unwrap(), per_minute.iter().max().unwrap());
    let mut sorted = run_secs.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "{} pulls due in the hour: {} enqueued, {duplicates} duplicates, {missed} missed, {late} late (after their minute), {unexpected} not due, {other_source} not from the schedule, {others} on the other queues",
        expected.len(),
        got.len()
    );
    println!(
        "per simulated minute: mean {mean:.0}, min {lo}, max {hi}, largest deviation from the mean {max_dev:.1} % (target within 10 %)"
    );
    println!(
        "60 runs in {:.0} s: wall time per run median {:.2} s, max {:.2} s (deadline {} s); {} connections found, {} jobs, {} failed, {} left for a next run, {} lost races",
        sim.as_secs_f64(),
        sorted[sorted.len() / 2],
        sorted[sorted.len() - 1],
        RUN_DEADLINE.as_secs(),
        total_report.found,
        total_report.jobs,
        total_report.failed,
        total_report.left_for_next_run,
        total_report.lost_race
    );
}

/// Each connection's one slot in the hour after `start`, counted per minute: the largest deviation
/// of a minute from the mean. No AWS involved.
fn spread_of_slots(total: usize, start: DateTime<Utc>) {
    let cfg = TenantConfig { sync_frequency_minutes: 60, enabled_entities: vec![Entity::Invoice], ..Default::default() };
    let tenants: Vec<Tenant> =
        (0..total.div_ceil(PER_TENANT)).map(|_| Tenant::new(unique("tenant"), "Acme", Plan::Enterprise, cfg.clone(), start)).collect();
    let mut per_minute = [0usize; 60];
    for i in 0..total {
        let org = format!("o{i}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let due = next_slot(&tenants[i / PER_TENANT], Provider::ALL[i % 3], &org, start);
        per_minute[((due - start.timestamp() - 1) / 60) as usize] += 1;
    }
    let mean = total as f64 / 60.0;
    let max_dev = per_minute.iter().map(|c| (*c as f64 - mean).abs() / mean * 100.0).fold(0.0, f64::max);
    println!(
        "slots of {total} connections (computed, no emulator): per minute mean {mean:.0}, min {}, max {}, largest deviation {max_dev:.1} %",
        per_minute.iter().min().unwrap(),
        per_minute.iter().max().unwrap()
    );
}

/// Receives and deletes everything on a queue; the bodies.
async fn drain(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let r = sqs.receive_message().queue_url(url).max_number_of_messages(10).send().await.unwrap();
        let msgs = r.messages.unwrap_or_default();
        if msgs.is_empty() {
            return out;
        }
        let mut del = sqs.delete_message_batch().queue_url(url);
        for (i, m) in msgs.iter().enumerate() {
            del = del.entries(
                aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle.clone().unwrap())
                    .build()
                    .unwrap(),
            );
            out.push(m.body.clone().unwrap_or_default());
        }
        del.send().await.unwrap();
    }
}

async fn depth(sqs: &aws_sdk_sqs::Client, url: &str) -> u64 {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap();
    let a = out.attributes.unwrap();
    a[&A::ApproximateNumberOfMessages].parse::<u64>().unwrap() + a[&A::ApproximateNumberOfMessagesNotVisible].parse::<u64>().unwrap()
}
