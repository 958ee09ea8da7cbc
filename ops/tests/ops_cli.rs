//! The ops CLI against the local stack (moto) and the provider sandbox, driven through its argument
//! parser: `infra/local-aws.sh up && source .local/aws.env && cargo test -p ttya-ops --test ops_cli`.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Duration;
use integration_tests::{aws, copy_grants_table, sandbox_grant, unique};
use reqwest::Url;
use shared::refresh::TokenService;
use shared::store::grants::{GrantStatus, GrantStore};
use shared::tenancy::{Plan, Priority, Role, TenantStore};
use shared::vault::{CacheLimits, SealContext, Vault};
use shared::{ErrorCode, Provider};
use ttya_ops::{run_args, Ops};

async fn ops() -> Ops {
    shared::http_client::install_crypto_provider();
    let env = aws().await;
    Ops::new(env.config, env.clients).unwrap()
}

async fn cli(ops: &Ops, args: &[&str]) -> shared::Result<String> {
    run_args(ops, std::iter::once("ttya-ops").chain(args.iter().copied())).await
}

fn tenants(ops: &Ops) -> TenantStore {
    TenantStore::new(ops.clients.dynamodb.clone(), ops.config.tables.tenants.clone())
}

#[tokio::test]
async fn tenants_are_created_listed_and_changed_through_the_store() {
    let ops = ops().await;
    let id = unique("ops-t");
    let out = cli(
        &ops,
        &["tenants", "create", &id, "--name", "Acme Ltd", "--plan", "professional", "--return-url", "https://app.example.com/back"],
    )
    .await
    .unwrap();
    assert!(out.contains(&id), "{out}");
    let t = tenants(&ops).get(&id).await.unwrap();
    assert_eq!(t.plan, Plan::Professional);
    assert_eq!(t.config.return_urls, vec!["https://app.example.com/back".to_string()]);

    let again = cli(&ops, &["tenants", "create", &id, "--name", "Other", "--return-url", "https://x.example.com"]).await.unwrap_err();
    assert_eq!(again.code(), ErrorCode::Conflict);

    let list = cli(&ops, &["tenants", "list"]).await.unwrap();
    assert!(list.lines().any(|l| l.starts_with(&format!("{id}\t"))), "{list}");

    // A connection of the tenant, to see the update reach its routing copy.
    let grants = GrantStore::new(ops.clients.dynamodb.clone(), ops.config.tables.grants.clone());
    let org = unique("org");
    let now = chrono::Utc::now();
    grants
        .put_connection(&shared::store::grants::Connection {
            tenant_id: id.clone(),
            provider: Provider::Xero,
            org_id: org.clone(),
            org_name: None,
            grant_id: unique("g"),
            status: GrantStatus::Active,
            webhook_id: None,
            webhook_secret: None,
            created_at: now,
            updated_at: now,
        })
        .await
        .unwrap();

    cli(&ops, &["tenants", "set-plan", &id, "enterprise"]).await.unwrap();
    cli(&ops, &["tenants", "set-config", &id, "sync_frequency_minutes=15", "queue_priority=high", "enabled_providers=xero,zoho"])
        .await
        .unwrap();
    let t = tenants(&ops).get(&id).await.unwrap();
    assert_eq!(t.plan, Plan::Enterprise);
    assert_eq!(t.config.sync_frequency_minutes, 15);
    assert_eq!(t.config.queue_priority, Priority::High);
    assert_eq!(t.config.enabled_providers, vec![Provider::Xero, Provider::Zoho]);
    assert_eq!(t.version, 2);
    // The webhook receiver routes by the copy on the connection: it follows the update.
    let routed = grants.connections_for_org_routed(Provider::Xero, &org).await.unwrap();
    let routing = routed[0].1.clone().expect("routing copy");
    assert_eq!((routing.version, routing.queue_priority), (2, Priority::High));
    assert_eq!(routing.enabled_providers, vec![Provider::Xero, Provider::Zoho]);

    // The store's own validation applies: nothing is written around it.
    let bad = cli(&ops, &["tenants", "set-config", &id, "return_urls=ftp://x"]).await.unwrap_err();
    assert_eq!(bad.code(), ErrorCode::InvalidTenantConfig, "{bad}");
    let bad = cli(&ops, &["tenants", "set-plan", &id, "platinum"]).await.unwrap_err();
    assert_eq!(bad.code(), ErrorCode::InvalidInput);
    assert_eq!(tenants(&ops).get(&id).await.unwrap().version, 2);

    let shown: serde_json::Value = serde_json::from_str(&cli(&ops, &["tenants", "show", &id]).await.unwrap()).unwrap();
    assert_eq!(shown["tenant"]["plan"], "enterprise");
    assert_eq!(shown["limits"]["integrations"], 100);
    let missing = cli(&ops, &["tenants", "show", &unique("nobody")]).await.unwrap_err();
    assert_eq!(missing.code(), ErrorCode::TenantNotFound);
}

#[tokio::test]
async fn users_get_roles_within_the_plan_limit() {
    let ops = ops().await;
    let id = unique("ops-u");
    cli(&ops, &["tenants", "create", &id, "--name", "Users Ltd", "--return-url", "https://app.example.com/back"]).await.unwrap();
    cli(&ops, &["users", "set-role", &id, "alice", "owner"]).await.unwrap();
    cli(&ops, &["users", "set-role", &id, "bob", "viewer"]).await.unwrap();
    cli(&ops, &["users", "set-role", &id, "bob", "admin"]).await.unwrap();
    assert_eq!(tenants(&ops).get_role(&id, "bob").await.unwrap(), Some(Role::Admin));
    assert_eq!(cli(&ops, &["users", "list", &id]).await.unwrap(), "alice\towner\nbob\tadmin");
    // Starter allows 3 users.
    cli(&ops, &["users", "set-role", &id, "carol", "member"]).await.unwrap();
    let over = cli(&ops, &["users", "set-role", &id, "dave", "member"]).await.unwrap_err();
    assert_eq!(over.code(), ErrorCode::PlanLimit);
    let bad = cli(&ops, &["users", "set-role", &id, "erin", "god"]).await.unwrap_err();
    assert_eq!(bad.code(), ErrorCode::InvalidInput);
    cli(&ops, &["users", "remove", &id, "carol"]).await.unwrap();
    assert_eq!(tenants(&ops).get_role(&id, "carol").await.unwrap(), None);
    assert_eq!(cli(&ops, &["users", "remove", &id, "carol"]).await.unwrap_err().code(), ErrorCode::NotFound);
}

#[tokio::test]
async fn connections_show_health_refresh_and_disconnect() {
    let mut ops = ops().await;
    let sb = sandbox::spawn(sandbox::SandboxConfig::default()).await.expect("sandbox starts");
    ops.config.provider_base_url = Some(Url::parse(&sb.base_url).unwrap());
    // Every sandbox has the same org ids: limits and breakers of this test's own.
    ops.config.tables.resilience = integration_tests::harness::own_resilience_table(&ops.clients.dynamodb).await;
    // Events (connection.disconnected) go to a queue of this test's own.
    ops.config.queues.events = ops.clients.sqs.create_queue().queue_name(unique("events")).send().await.unwrap().queue_url.unwrap();
    let tenant = unique("ops-c");
    cli(
        &ops,
        &["tenants", "create", &tenant, "--name", "Conn Ltd", "--plan", "professional", "--return-url", "https://app.example.com/back"],
    )
    .await
    .unwrap();

    let svc = TokenService::new(&ops.config, &ops.clients, ops.http.clone());
    let store = GrantStore::new(ops.clients.dynamodb.clone(), ops.config.tables.grants.clone());
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let fresh = sandbox_grant(&http, &svc, &store, &tenant, Provider::Xero, Duration::minutes(30)).await;
    let stale = sandbox_grant(&http, &svc, &store, &tenant, Provider::QuickBooks, Duration::minutes(-30)).await;

    let list = cli(&ops, &["connections", "list", "--tenant", &tenant]).await.unwrap();
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(list.contains(&fresh.grant_id) && list.contains(&stale.grant_id));

    let rows = ttya_ops::health(&ops, Some(tenant.clone())).await.unwrap();
    let of = |g: &str| rows.iter().find(|h| h.grant_id == g).unwrap().health.clone();
    assert_eq!(of(&fresh.grant_id), "ok");
    assert_eq!(of(&stale.grant_id), "overdue");
    let text = cli(&ops, &["connections", "health", "--tenant", &tenant]).await.unwrap();
    assert!(text.contains("2 connections: 1 ok, 1 overdue"), "{text}");

    // The copy's freshness, as the worker keeps it per entity, shows with the connection: a pull
    // ten minutes ago, an error since; entities never pulled are behind since the connect.
    {
        use shared::sync::freshness::{CopyOf, FreshnessStore};
        let xero_org = rows.iter().find(|h| h.grant_id == fresh.grant_id).unwrap().org_id.clone();
        let fs = FreshnessStore::new(ops.clients.dynamodb.clone(), ops.config.tables.sync.clone(), ops.config.tables.grants.clone());
        let of =
            CopyOf { tenant_id: &tenant, provider: Provider::Xero, org_id: &xero_org, entity: shared::providers::model::Entity::Invoice };
        fs.success(of, true, true, chrono::Utc::now() - Duration::minutes(10)).await.unwrap();
        fs.failure(of, 3001, chrono::Utc::now() - Duration::minutes(1)).await.unwrap();
        let rows = ttya_ops::health(&ops, Some(tenant.clone())).await.unwrap();
        let x = rows.iter().find(|h| h.grant_id == fresh.grant_id).unwrap();
        assert_eq!(x.freshness.len(), 1, "{x:?}");
        assert_eq!(x.freshness[0].last_error_code, Some(3001));
        assert!(x.freshness[0].last_success_at.is_some() && x.copy_lag_s.is_some(), "{x:?}");
        let text = cli(&ops, &["connections", "health", "--tenant", &tenant]).await.unwrap();
        assert!(text.contains("invoice pulled") && text.contains("error E3001") && text.contains("copy lag"), "{text}");
    }

    // A forced refresh rotates even a token that is still fresh.
    let out = cli(&ops, &["connections", "refresh", &tenant, "xero", &fresh.grant_id]).await.unwrap();
    assert!(out.contains("refreshed"), "{out}");
    let after = store.get_grant(&tenant, Provider::Xero, &fresh.grant_id).await.unwrap().unwrap();
    assert_eq!(after.version, fresh.version + 1);
    let open = |g: &shared::store::grants::Grant| {
        let ctx = SealContext::new(&g.tenant_id, g.provider, &g.grant_id);
        let blob = g.sealed.clone().unwrap();
        let vault = svc.vault().clone();
        async move { vault.unseal_tokens(&ctx, &blob).await.unwrap().access_token.expose().to_string() }
    };
    assert_ne!(open(&after).await, open(&fresh).await, "a new access token");
    cli(&ops, &["connections", "refresh", &tenant, "quickbooks", &stale.grant_id]).await.unwrap();
    // An expired token is refreshed once, not once by valid_access_token and again on top.
    let q = store.get_grant(&tenant, Provider::QuickBooks, &stale.grant_id).await.unwrap().unwrap();
    assert_eq!(q.version, stale.version + 1);
    let rows = ttya_ops::health(&ops, Some(tenant.clone())).await.unwrap();
    assert!(rows.iter().all(|h| h.health == "ok"), "{rows:?}");

    let out = cli(&ops, &["connections", "disconnect", &tenant, "xero", &fresh.grant_id]).await.unwrap();
    assert!(out.contains("disconnected"), "{out}");
    let gone = store.get_grant(&tenant, Provider::Xero, &fresh.grant_id).await.unwrap().unwrap();
    assert_eq!(gone.status, GrantStatus::Disconnected);
    assert!(gone.sealed.is_none());
    let out = cli(&ops, &["connections", "disconnect", &tenant, "xero", &fresh.grant_id]).await.unwrap();
    assert!(out.contains("already disconnected"), "{out}");
    let rows = ttya_ops::health(&ops, Some(tenant.clone())).await.unwrap();
    assert_eq!(of_rows(&rows, &fresh.grant_id), "disconnected");
    let bad = cli(&ops, &["connections", "refresh", &tenant, "sage", "g"]).await.unwrap_err();
    assert_eq!(bad.code(), ErrorCode::InvalidInput);
}

fn of_rows(rows: &[ttya_ops::Health], grant: &str) -> String {
    rows.iter().find(|h| h.grant_id == grant).unwrap().health.clone()
}

/// Own queues with the template's shape (three sync queues sharing one DLQ, events with its own),
/// so the test sees exactly the messages it put there.
async fn own_queues(ops: &mut Ops) -> (String, String) {
    let sqs = ops.clients.sqs.clone();
    let mk = |name: String, dlq_arn: Option<String>| {
        let sqs = sqs.clone();
        async move {
            let mut req = sqs.create_queue().queue_name(name);
            if let Some(arn) = dlq_arn {
                req = req.attributes(
                    aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy,
                    serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": 5}).to_string(),
                );
            }
            req.send().await.unwrap().queue_url.unwrap()
        }
    };
    let arn = |url: String| {
        let sqs = sqs.clone();
        async move {
            let a = sqs
                .get_queue_attributes()
                .queue_url(url)
                .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .send()
                .await
                .unwrap();
            a.attributes().unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn].clone()
        }
    };
    let sync_dlq = mk(unique("sync-dlq"), None).await;
    let events_dlq = mk(unique("events-dlq"), None).await;
    let (sd, ed) = (arn(sync_dlq.clone()).await, arn(events_dlq.clone()).await);
    ops.config.queues.sync_high = mk(unique("high"), Some(sd.clone())).await;
    ops.config.queues.sync_normal = mk(unique("normal"), Some(sd.clone())).await;
    ops.config.queues.sync_low = mk(unique("low"), Some(sd)).await;
    ops.config.queues.events = mk(unique("events"), Some(ed)).await;
    (sync_dlq, events_dlq)
}

fn job(priority: &str) -> String {
    serde_json::json!({
        "version": 1, "job_id": unique("j"), "tenant_id": "t1", "provider": "xero", "org_id": "o1",
        "operation": "webhook", "entity": "invoice", "priority": priority, "idempotency_key": unique("k"),
        "correlation_id": "c1", "requested_at": "2026-01-01T00:00:00Z", "source": "webhook"
    })
    .to_string()
}

#[tokio::test]
async fn dead_letters_are_shown_with_reasons_and_redriven_to_their_queue() {
    let mut ops = ops().await;
    let (sync_dlq, events_dlq) = own_queues(&mut ops).await;
    let sqs = ops.clients.sqs.clone();
    for body in [job("high"), job("low"), "{not json".to_string()] {
        sqs.send_message().queue_url(&sync_dlq).message_body(body).send().await.unwrap();
    }
    sqs.send_message().queue_url(&events_dlq).message_body(r#"{"type":"connection.created","tenant_id":"t1"}"#).send().await.unwrap();

    let depths = cli(&ops, &["queues", "depths"]).await.unwrap();
    let line = |name: &str| depths.lines().find(|l| l.contains(name)).unwrap_or_default().to_string();
    assert!(line(sync_dlq.rsplit('/').next().unwrap()).ends_with("3 / 0 / 0"), "{depths}");
    assert!(line(events_dlq.rsplit('/').next().unwrap()).ends_with("1 / 0 / 0"), "{depths}");
    assert!(line("sync-high").ends_with("0 / 0 / 0"), "{depths}");

    let shown = cli(&ops, &["queues", "dlq"]).await.unwrap();
    assert_eq!(shown.matches("failed 1 deliveries").count(), 2, "{shown}");
    assert!(shown.contains("poison: E4000"), "{shown}");
    assert!(shown.contains("not consumed after 1 deliveries"), "{shown}");
    // Inspecting leaves every message where it was.
    assert_eq!(ttya_ops::depth(&ops, &sync_dlq).await.unwrap().visible + ttya_ops::depth(&ops, &sync_dlq).await.unwrap().in_flight, 3);

    let out = cli(&ops, &["queues", "redrive"]).await.unwrap();
    assert!(out.starts_with("redrove 3 messages; 1 left"), "{out}");
    assert_eq!(ttya_ops::depth(&ops, &ops.config.queues.sync_high).await.unwrap().visible, 1);
    assert_eq!(ttya_ops::depth(&ops, &ops.config.queues.sync_low).await.unwrap().visible, 1);
    assert_eq!(ttya_ops::depth(&ops, &ops.config.queues.sync_normal).await.unwrap().visible, 0);
    assert_eq!(ttya_ops::depth(&ops, &ops.config.queues.events).await.unwrap().visible, 1);
    let left = ttya_ops::depth(&ops, &sync_dlq).await.unwrap();
    assert_eq!(left.visible + left.in_flight, 1, "the poison message stays in the DLQ");
}

#[tokio::test]
async fn reseal_moves_every_token_to_the_new_key_and_resumes() {
    let mut ops = ops().await;
    let env_for_copy = integration_tests::TestEnv { config: ops.config.clone(), clients: ops.clients.clone() };
    // A grants table of the test's own: re-seal walks every tenant's grants.
    ops.config.tables.grants = copy_grants_table(&env_for_copy).await;
    let store = GrantStore::new(ops.clients.dynamodb.clone(), ops.config.tables.grants.clone());
    let old = Vault::from_config(ops.clients.kms.clone(), &ops.config);
    let tenant = unique("ops-k");
    cli(
        &ops,
        &["tenants", "create", &tenant, "--name", "Keys Ltd", "--plan", "enterprise", "--return-url", "https://app.example.com/back"],
    )
    .await
    .unwrap();
    let now = chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp(), 0).unwrap();
    let mut ids = Vec::new();
    for i in 0..3 {
        let grant_id = unique("g");
        let tokens = shared::TokenSet {
            access_token: shared::SecretString::new(format!("access-{i}")),
            refresh_token: Some(shared::SecretString::new(format!("refresh-{i}"))),
            access_expires_at: now + Duration::hours(1),
            refresh_expires_at: None,
            refresh_hard_expires_at: None,
            scopes: vec![],
            api_domain: None,
            accounts_server: None,
        };
        let sealed = old.seal_tokens(&SealContext::new(&tenant, Provider::Xero, &grant_id), &tokens).await.unwrap();
        let g = shared::store::grants::Grant {
            tenant_id: tenant.clone(),
            provider: Provider::Xero,
            grant_id: grant_id.clone(),
            org_ids: vec![format!("org-{grant_id}")],
            status: GrantStatus::Active,
            scopes: vec![],
            sealed: Some(sealed),
            access_expires_at: tokens.access_expires_at,
            refresh_expires_at: None,
            version: 1,
            lease_owner: None,
            lease_expires_at: None,
            seal_version: 0,
            degraded_since: None,
            last_failure_at: None,
            created_at: now,
            updated_at: now,
        };
        store.put_grant(&g, &[]).await.unwrap();
        ids.push(grant_id);
    }
    // One grant is leased by a "refresher": it must be left alone and reported as deferred.
    store.acquire_lease(&tenant, Provider::Xero, &ids[2], "refresher-x", Duration::minutes(5), chrono::Utc::now()).await.unwrap();

    let new_key = ops.clients.kms.create_key().description(unique("rotation")).send().await.unwrap().key_metadata.unwrap().key_id;
    let dir = std::env::temp_dir().join(unique("reseal"));
    std::fs::create_dir_all(&dir).unwrap();
    let ck = dir.join("checkpoint");
    let ck_s = ck.to_str().unwrap();

    // Named by an alias, as an operator would: still compared by the key behind it.
    let alias = format!("alias/{}", unique("rotation"));
    ops.clients.kms.create_alias().alias_name(&alias).target_key_id(&new_key).send().await.unwrap();
    let out = cli(&ops, &["keys", "reseal", "--new-key", &alias, "--checkpoint", ck_s]).await.unwrap();
    assert!(out.contains("2 re-sealed") && out.contains("1 deferred"), "{out}");
    let new = Vault::new(ops.clients.kms.clone(), new_key.clone(), CacheLimits::default());
    for (i, id) in ids.iter().enumerate().take(2) {
        let g = store.get_grant(&tenant, Provider::Xero, id).await.unwrap().unwrap();
        let blob = g.sealed.unwrap();
        assert!(blob.key_id.ends_with(&new_key), "{}", blob.key_id);
        let t = new.unseal_tokens(&SealContext::new(&tenant, Provider::Xero, id), &blob).await.unwrap();
        assert_eq!(t.access_token.expose(), format!("access-{i}"));
        assert_eq!(g.version, 1, "a re-seal never takes the token version");
    }
    assert_eq!(std::fs::read_to_string(&ck).unwrap().lines().count(), 2);
    let bad = cli(&ops, &["keys", "reseal", "--new-key", "alias/no-such-key", "--checkpoint", ck_s]).await.unwrap_err();
    assert_eq!(bad.code(), ErrorCode::Crypto, "{bad}");

    // Resume once the lease is gone: only the deferred grant is left to do.
    store.release_lease(&tenant, Provider::Xero, &ids[2], "refresher-x").await.unwrap();
    let out = cli(&ops, &["keys", "reseal", "--new-key", &new_key, "--checkpoint", ck_s]).await.unwrap();
    assert!(out.contains("1 re-sealed, 2 already done, 0 deferred"), "{out}");
    let g = store.get_grant(&tenant, Provider::Xero, &ids[2]).await.unwrap().unwrap();
    assert!(g.sealed.unwrap().key_id.ends_with(&new_key));
    // Without the checkpoint, the grants' own key ids still make a rerun a no-op.
    std::fs::remove_file(&ck).unwrap();
    let out = cli(&ops, &["keys", "reseal", "--new-key", &new_key, "--checkpoint", ck_s]).await.unwrap();
    assert!(out.contains("0 re-sealed, 3 already done"), "{out}");
}

#[tokio::test]
async fn breakers_are_shown_and_closed_by_hand() {
    let ops = ops().await;
    let tenant = unique("tenant");
    let org = unique("realm");
    // Open the org breaker the way workers do: failures counted through the shared guard.
    let guard = shared::resilience::ProviderGuard::new(&ops.config, ops.clients.dynamodb.clone());
    for _ in 0..30 {
        let _ = guard
            .call(&tenant, Provider::QuickBooks, &org, "list", || async {
                Err::<(), _>(shared::Error::ProviderTransient { provider: Provider::QuickBooks, status: Some(503), message: "down".into() })
            })
            .await;
        if guard.breaker_state(Provider::QuickBooks, Some(&org)).await.unwrap().state.as_str() == "open" {
            break;
        }
    }
    // The breaker is the org's (every tenant connected to it shares it): named by the org alone.
    let out = cli(&ops, &["breakers", "show", "quickbooks", "--org", &org]).await.unwrap();
    assert!(out.contains(": open"), "{out}");
    // A tenant named with it must be connected to that org.
    let e = cli(&ops, &["breakers", "reset", "quickbooks", "--tenant", &tenant, "--org", &org]).await.unwrap_err();
    assert_eq!(e.code(), shared::ErrorCode::NotFound, "{e}");
    let out = cli(&ops, &["breakers", "reset", "quickbooks", "--org", &org]).await.unwrap();
    assert!(out.contains("closed"), "{out}");
    let out = cli(&ops, &["breakers", "show", "quickbooks", "--org", &org]).await.unwrap();
    assert!(out.contains(": closed"), "{out}");
    // A tenant alone names no breaker.
    assert!(cli(&ops, &["breakers", "show", "quickbooks", "--tenant", &tenant]).await.is_err());
}

#[tokio::test]
async fn connections_stored_before_scheduled_sync_are_enrolled_once() {
    let mut ops = ops().await;
    let sb = sandbox::spawn(sandbox::SandboxConfig::default()).await.expect("sandbox starts");
    ops.config.provider_base_url = Some(Url::parse(&sb.base_url).unwrap());
    // Every sandbox has the same org ids: limits and breakers of this test's own.
    ops.config.tables.resilience = integration_tests::harness::own_resilience_table(&ops.clients.dynamodb).await;
    let tenant = unique("ops-enroll");
    cli(
        &ops,
        &["tenants", "create", &tenant, "--name", "Old Ltd", "--plan", "professional", "--return-url", "https://app.example.com/back"],
    )
    .await
    .unwrap();
    let svc = TokenService::new(&ops.config, &ops.clients, ops.http.clone());
    let store = GrantStore::new(ops.clients.dynamodb.clone(), ops.config.tables.grants.clone());
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    sandbox_grant(&http, &svc, &store, &tenant, Provider::Xero, Duration::minutes(30)).await;
    let conns = store.list_connections(&tenant).await.unwrap();
    assert!(!conns.is_empty());
    // As a connection stored before scheduled sync existed: no index keys.
    for c in &conns {
        ops.clients
            .dynamodb
            .update_item()
            .table_name(&ops.config.tables.grants)
            .key("pk", AttributeValue::S(format!("TENANT#{tenant}")))
            .key("sk", AttributeValue::S(shared::store::grants::connection_sk(c.provider, &c.org_id)))
            .update_expression("REMOVE sync_pk, next_sync_at")
            .send()
            .await
            .unwrap();
    }
    let scheduler = shared::sync::schedule::SyncScheduler::new(&ops.config, &ops.clients);
    let c = &conns[0];
    assert!(!matches!(scheduler.connection_schedule(&tenant, c.provider, &c.org_id).await, Ok(Some(_))), "not on the schedule yet");

    let out = cli(&ops, &["connections", "enroll-sync", "--tenant", &tenant, "--initial-done"]).await.unwrap();
    assert!(out.ends_with(&format!("{} enrolled, 0 already scheduled, 0 not active", conns.len())), "{out}");
    for c in &conns {
        let due = scheduler.connection_schedule(&tenant, c.provider, &c.org_id).await.unwrap().expect("scheduled");
        // --initial-done: the first pull waits for the connection's slot, within one interval.
        let now = chrono::Utc::now().timestamp();
        assert!(due.next_sync_at > now - 5 && due.next_sync_at <= now + 24 * 3600, "{}", due.next_sync_at);
    }
    let again = cli(&ops, &["connections", "enroll-sync", "--tenant", &tenant]).await.unwrap();
    assert_eq!(again, format!("0 enrolled, {} already scheduled, 0 not active", conns.len()));
}

#[tokio::test]
async fn records_stored_before_the_indexes_are_reindexed_once() {
    use shared::providers::Entity;
    use shared::sync::{Money, SyncRecord, SyncStore};
    let ops = ops().await;
    let tenant = unique("ops-reindex");
    cli(
        &ops,
        &["tenants", "create", &tenant, "--name", "Old Books Ltd", "--plan", "professional", "--return-url", "https://app.example.com/b"],
    )
    .await
    .unwrap();
    let sync = SyncStore::new(ops.clients.dynamodb.clone(), ops.config.tables.sync.clone());
    let records: Vec<(SyncRecord, Option<String>)> = (0..25)
        .map(|i| {
            let r = SyncRecord {
                provider: Provider::Xero,
                org_id: "org-old".into(),
                entity: Entity::Invoice,
                provider_id: format!("inv-{i:03}"),
                number: Some(format!("INV-{i}")),
                name: None,
                status: Some("AUTHORISED".into()),
                amount: Some(Money { minor: 100 + i, currency: "NZD".into() }),
                contact_id: Some("c-1".into()),
                issue_date: None,
                due_date: None,
                updated_at: None,
                deleted: false,
                raw_ref: format!("xero/org-old/invoice/inv-{i:03}"),
                flags: vec![],
                document: None,
                company: None,
                version: None,
                payment: None,
                reference: Default::default(),
                contact: None,
            };
            let raw = serde_json::json!({"InvoiceID": r.provider_id}).to_string();
            (r, Some(raw))
        })
        .collect();
    sync.put_records(&tenant, &records, "job-1", chrono::Utc::now()).await.unwrap();
    let key = |id: &str| {
        (
            AttributeValue::S(shared::store::tenant_pk(&tenant)),
            AttributeValue::S(shared::sync::store::record_sk(Provider::Xero, "org-old", Entity::Invoice, id)),
        )
    };
    let has_index = |id: String| {
        let (pk, sk) = key(&id);
        let db = ops.clients.dynamodb.clone();
        let table = ops.config.tables.sync.clone();
        async move {
            let item = db.get_item().table_name(table).key("pk", pk).key("sk", sk).send().await.unwrap().item.expect("record item");
            item.contains_key("rx_scope") && item.contains_key("rx_mod")
        }
    };
    // As items written before the indexes existed.
    for (r, _) in &records {
        let (pk, sk) = key(&r.provider_id);
        ops.clients
            .dynamodb
            .update_item()
            .table_name(&ops.config.tables.sync)
            .key("pk", pk)
            .key("sk", sk)
            .update_expression("REMOVE rx_scope, rx_mod, rx_due, rx_issue, rx_status, rx_contact")
            .send()
            .await
            .unwrap();
    }
    assert!(!has_index("inv-007".into()).await);

    let out = cli(&ops, &["records", "reindex", "--tenant", &tenant]).await.unwrap();
    assert!(out.starts_with("1 tenants: 25 records indexed, 0 skipped"), "{out}");
    for (r, _) in &records {
        assert!(has_index(r.provider_id.clone()).await, "{} indexed", r.provider_id);
    }
    let again = cli(&ops, &["records", "reindex", "--tenant", &tenant]).await.unwrap();
    assert!(again.starts_with("1 tenants: 0 records indexed, 0 skipped"), "{again}");
}
