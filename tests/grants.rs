//! Grants, connections, leases and audit against the local DynamoDB (moto).

use chrono::{DateTime, Duration, Utc};
use integration_tests::{aws, unique};
use shared::audit::{AuditLog, TokenEvent};
use shared::store::grants::{Connection, Grant, GrantStatus, GrantStore};
use shared::vault::{CacheLimits, SealContext, Vault};
use shared::{ErrorCode, Provider, SecretString, TokenSet};

struct Fixture {
    store: GrantStore,
    vault: Vault,
    audit: AuditLog,
}

async fn fixture() -> Fixture {
    let env = aws().await;
    Fixture {
        store: GrantStore::new(env.clients.dynamodb.clone(), env.config.tables.grants.clone()),
        vault: Vault::new(env.clients.kms.clone(), env.config.kms_key_id.clone(), CacheLimits::default()),
        audit: AuditLog::new(env.clients.dynamodb.clone(), env.config.tables.tenants.clone()),
    }
}

fn now() -> DateTime<Utc> {
    // Whole seconds: the store keeps epoch seconds.
    DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap()
}

async fn grant(f: &Fixture, tenant: &str, provider: Provider, orgs: &[&str], access_in: Duration) -> (Grant, Vec<Connection>) {
    let grant_id = unique("g");
    let t = now();
    let tokens = TokenSet {
        access_token: SecretString::new("at"),
        refresh_token: Some(SecretString::new("rt")),
        access_expires_at: t + access_in,
        refresh_expires_at: Some(t + Duration::days(60)),
        refresh_hard_expires_at: None,
        scopes: vec![],
        api_domain: None,
        accounts_server: None,
    };
    let sealed = f.vault.seal_tokens(&SealContext::new(tenant, provider, &grant_id), &tokens).await.unwrap();
    let g = Grant {
        tenant_id: tenant.into(),
        provider,
        grant_id: grant_id.clone(),
        org_ids: orgs.iter().map(|o| o.to_string()).collect(),
        status: GrantStatus::Active,
        scopes: vec!["s1".into()],
        sealed: Some(sealed),
        access_expires_at: tokens.access_expires_at,
        refresh_expires_at: tokens.refresh_expires_at,
        version: 1,
        lease_owner: None,
        lease_expires_at: None,
        seal_version: 0,
        degraded_since: None,
        last_failure_at: None,
        created_at: t,
        updated_at: t,
    };
    let conns: Vec<Connection> = orgs
        .iter()
        .map(|o| Connection {
            tenant_id: tenant.into(),
            provider,
            org_id: o.to_string(),
            org_name: Some(format!("Org {o}")),
            grant_id: grant_id.clone(),
            status: GrantStatus::Active,
            webhook_id: None,
            webhook_secret: None,
            created_at: t,
            updated_at: t,
        })
        .collect();
    f.store.put_grant(&g, &conns).await.unwrap();
    (g, conns)
}

#[tokio::test]
async fn grant_and_connections_round_trip_and_are_found_by_org() {
    let f = fixture().await;
    let tenant = unique("tenant");
    let org_a = unique("xero-org");
    let org_b = unique("xero-org");
    let (g, conns) = grant(&f, &tenant, Provider::Xero, &[&org_a, &org_b], Duration::minutes(30)).await;
    let got = f.store.get_grant(&tenant, Provider::Xero, &g.grant_id).await.unwrap().unwrap();
    assert_eq!(got, g);
    assert_eq!(f.store.list_grants(&tenant).await.unwrap(), vec![g.clone()]);
    let mut listed = f.store.list_connections(&tenant).await.unwrap();
    listed.sort_by(|a, b| a.org_id.cmp(&b.org_id));
    let mut expected = conns.clone();
    expected.sort_by(|a, b| a.org_id.cmp(&b.org_id));
    assert_eq!(listed, expected);
    let by_org = f.store.connections_for_org(Provider::Xero, &org_b).await.unwrap();
    assert_eq!(by_org.len(), 1);
    assert_eq!(by_org[0].tenant_id, tenant);
    assert_eq!(by_org[0].grant_id, g.grant_id);
    assert!(f.store.connections_for_org(Provider::Zoho, &org_b).await.unwrap().is_empty(), "org ids are per provider");
    assert!(f.store.get_grant(&unique("nobody"), Provider::Xero, &g.grant_id).await.unwrap().is_none(), "keys begin with the tenant");
}

#[tokio::test]
async fn two_writers_on_one_version_exactly_one_wins() {
    let f = fixture().await;
    let tenant = unique("tenant");
    let (g, _) = grant(&f, &tenant, Provider::QuickBooks, &["realm-1"], Duration::minutes(60)).await;
    let sealed = g.sealed.clone().unwrap();
    let t = now();
    let w1 = f.store.update_tokens(&g, &sealed, t + Duration::hours(1), None, g.version, None, t);
    let w2 = f.store.update_tokens(&g, &sealed, t + Duration::hours(2), None, g.version, None, t);
    let (r1, r2) = tokio::join!(w1, w2);
    let wins = [&r1, &r2].iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "{r1:?} {r2:?}");
    let loser = if r1.is_ok() { r2 } else { r1 };
    assert_eq!(loser.unwrap_err().code(), ErrorCode::Conflict);
    let stored = f.store.get_grant(&tenant, Provider::QuickBooks, &g.grant_id).await.unwrap().unwrap();
    assert_eq!(stored.version, g.version + 1);
}

#[tokio::test]
async fn two_lease_takers_exactly_one_wins_and_an_expired_lease_is_taken_over() {
    let f = fixture().await;
    let tenant = unique("tenant");
    let (g, _) = grant(&f, &tenant, Provider::Xero, &["org"], Duration::minutes(5)).await;
    let t = now();
    let lease = Duration::seconds(60);
    let a = f.store.acquire_lease(&tenant, Provider::Xero, &g.grant_id, "worker-a", lease, t);
    let b = f.store.acquire_lease(&tenant, Provider::Xero, &g.grant_id, "worker-b", lease, t);
    let (ra, rb) = tokio::join!(a, b);
    assert_eq!([&ra, &rb].iter().filter(|r| r.is_ok()).count(), 1, "{ra:?} {rb:?}");
    let (winner, loser) = if ra.is_ok() { ("worker-a", "worker-b") } else { ("worker-b", "worker-a") };

    // The loser still cannot take it while it is live, nor write tokens under it.
    let again = f.store.acquire_lease(&tenant, Provider::Xero, &g.grant_id, loser, lease, t + Duration::seconds(30)).await;
    assert_eq!(again.unwrap_err().code(), ErrorCode::Conflict);
    let stored = f.store.get_grant(&tenant, Provider::Xero, &g.grant_id).await.unwrap().unwrap();
    let write = f.store.update_tokens(&stored, stored.sealed.as_ref().unwrap(), t, None, stored.version, Some(loser), t).await;
    assert_eq!(write.unwrap_err().code(), ErrorCode::Conflict, "a write must hold the lease");
    // The holder renews and writes.
    f.store.renew_lease(&stored, winner, lease, t + Duration::seconds(10)).await.unwrap();
    let v = f
        .store
        .update_tokens(&stored, stored.sealed.as_ref().unwrap(), t + Duration::minutes(30), None, stored.version, Some(winner), t)
        .await
        .unwrap();
    assert_eq!(v, stored.version + 1);

    // After expiry, the other worker takes over; the old holder can no longer renew or write.
    let later = t + Duration::seconds(200);
    f.store.acquire_lease(&tenant, Provider::Xero, &g.grant_id, loser, lease, later).await.unwrap();
    assert!(f.store.renew_lease(&stored, winner, lease, later).await.is_err());
    assert!(!f.store.release_lease(&tenant, Provider::Xero, &g.grant_id, winner).await.unwrap());
    assert!(f.store.release_lease(&tenant, Provider::Xero, &g.grant_id, loser).await.unwrap());
    let released = f.store.get_grant(&tenant, Provider::Xero, &g.grant_id).await.unwrap().unwrap();
    assert_eq!(released.lease_owner, None);
}

#[tokio::test]
async fn expiring_soon_query_returns_exactly_the_due_grants() {
    let f = fixture().await;
    let (t1, t2) = (unique("tenant"), unique("tenant"));
    let (due_a, _) = grant(&f, &t1, Provider::Zoho, &["o1"], Duration::minutes(3)).await;
    let (due_b, _) = grant(&f, &t2, Provider::Zoho, &["o2"], Duration::minutes(8)).await;
    let (later, _) = grant(&f, &t1, Provider::Zoho, &["o3"], Duration::minutes(50)).await;
    let (other_provider, _) = grant(&f, &t2, Provider::Xero, &["o4"], Duration::minutes(1)).await;
    let (reauth, _) = grant(&f, &t2, Provider::Zoho, &["o5"], Duration::minutes(1)).await;
    f.store.mark_needs_reauth(&reauth, now()).await.unwrap();

    let before = now() + Duration::minutes(10);
    let due = f.store.due_grants(Provider::Zoho, before, 10_000).await.unwrap();
    // Other tests share the table: every grant returned must be due, and of ours exactly the due ones.
    assert!(due.iter().all(|g| g.provider == Provider::Zoho && g.due_at() <= before && g.status == GrantStatus::Active));
    let ours: Vec<&str> = due.iter().filter(|g| g.tenant_id == t1 || g.tenant_id == t2).map(|g| g.grant_id.as_str()).collect();
    let mut ours_sorted = ours.clone();
    ours_sorted.sort();
    let mut expected = vec![due_a.grant_id.as_str(), due_b.grant_id.as_str()];
    expected.sort();
    assert_eq!(ours_sorted, expected);
    assert!(!ours.contains(&later.grant_id.as_str()) && !ours.contains(&other_provider.grant_id.as_str()));
    // Soonest first.
    assert!(due.windows(2).all(|w| w[0].due_at() <= w[1].due_at()));
}

#[tokio::test]
async fn needs_reauth_and_disconnect_keep_the_records() {
    let f = fixture().await;
    let tenant = unique("tenant");
    let (g, _) = grant(&f, &tenant, Provider::Xero, &["org-1", "org-2"], Duration::minutes(30)).await;
    f.store.mark_needs_reauth(&g, now()).await.unwrap();
    let stored = f.store.get_grant(&tenant, Provider::Xero, &g.grant_id).await.unwrap().expect("never deleted");
    assert_eq!(stored.status, GrantStatus::NeedsReauth);
    assert!(stored.sealed.is_some(), "tokens kept for a later reconnect or audit");
    assert!(f.store.list_connections(&tenant).await.unwrap().iter().all(|c| c.status == GrantStatus::NeedsReauth));

    f.store.disconnect(&stored, now()).await.unwrap();
    f.audit.record(&tenant, Provider::Xero, &g.grant_id, TokenEvent::Disconnected, "user-1", None, now()).await.unwrap();
    let gone = f.store.get_grant(&tenant, Provider::Xero, &g.grant_id).await.unwrap().expect("record stays");
    assert_eq!(gone.status, GrantStatus::Disconnected);
    assert!(gone.sealed.is_none(), "tokens removed on disconnect");
    assert!(f.store.list_connections(&tenant).await.unwrap().iter().all(|c| c.status == GrantStatus::Disconnected));
    let trail = f.audit.list(&tenant).await.unwrap();
    assert_eq!(trail.len(), 1);
    assert_eq!(trail[0].event, "disconnected");
    assert_eq!(trail[0].actor, "user-1");
    assert!(!trail[0].correlation_id.is_empty());
}

#[tokio::test]
async fn reading_tokens_sealed_under_an_old_key_reseals_them_and_audits_it() {
    let f = fixture().await;
    let env = aws().await;
    let tenant = unique("tenant");
    let (g, _) = grant(&f, &tenant, Provider::QuickBooks, &["realm"], Duration::minutes(60)).await;
    let new_key = env.clients.kms.create_key().send().await.unwrap().key_metadata.unwrap().key_id;
    let rotated = Vault::new(env.clients.kms.clone(), new_key.clone(), CacheLimits::default());

    let tokens = shared::grant_tokens::read_tokens(&f.store, &rotated, &f.audit, &g, now()).await.unwrap();
    assert_eq!(tokens.refresh_token.as_ref().unwrap().expose(), "rt");
    let stored = f.store.get_grant(&tenant, Provider::QuickBooks, &g.grant_id).await.unwrap().unwrap();
    // Blobs name their key by canonical ARN; a re-seal takes the seal version, never the token version.
    assert!(stored.sealed.as_ref().unwrap().key_id.ends_with(&format!("key/{new_key}")), "{}", stored.sealed.as_ref().unwrap().key_id);
    assert_eq!(stored.version, g.version);
    assert_eq!(stored.seal_version, g.seal_version + 1);
    let trail = f.audit.list(&tenant).await.unwrap();
    assert_eq!(trail.iter().filter(|r| r.event == "resealed").count(), 1);

    // Reading again under the current key changes nothing.
    shared::grant_tokens::read_tokens(&f.store, &rotated, &f.audit, &stored, now()).await.unwrap();
    assert_eq!(f.store.get_grant(&tenant, Provider::QuickBooks, &g.grant_id).await.unwrap().unwrap().seal_version, stored.seal_version);
    assert_eq!(f.audit.list(&tenant).await.unwrap().len(), 1);
}

#[tokio::test]
async fn racing_connects_cannot_both_pass_the_plan_check_or_overwrite_each_other() {
    let f = fixture().await;
    let tenant = unique("tenant");
    let org = unique("realm");
    let (template, conns) = grant(&f, &unique("scratch"), Provider::QuickBooks, &[&org], Duration::minutes(60)).await;
    // Both connects read the same (empty) set of connections at the same version.
    let version = f.store.slots_version(&tenant).await.unwrap();
    assert_eq!(version, 0);
    let attempt = |grant_id: String| {
        let mut g = template.clone();
        g.tenant_id = tenant.clone();
        g.grant_id = grant_id.clone();
        let c: Vec<Connection> = conns
            .iter()
            .cloned()
            .map(|mut c| {
                c.tenant_id = tenant.clone();
                c.grant_id = grant_id.clone();
                c
            })
            .collect();
        (g, c)
    };
    let (g1, c1) = attempt(unique("g"));
    let (g2, c2) = attempt(unique("g"));
    let (a, b) =
        tokio::join!(f.store.put_grant_checked(&g1, &c1, &[], version, None), f.store.put_grant_checked(&g2, &c2, &[], version, None));
    assert!(a.is_ok() != b.is_ok(), "exactly one connect lands: {a:?} {b:?}");
    let loser = a.err().or(b.err()).expect("one failed");
    assert_eq!(loser.code(), ErrorCode::Conflict);
    assert!(loser.is_retryable());
    let stored = f.store.list_connections(&tenant).await.unwrap();
    assert_eq!(stored.len(), 1);
    let winner = stored[0].grant_id.clone();
    assert_eq!(f.store.list_grants(&tenant).await.unwrap().len(), 1, "no orphaned grant");

    // A reconnect that read the winner's connection succeeds; one with a stale read does not.
    let v = f.store.slots_version(&tenant).await.unwrap();
    assert_eq!(v, 1);
    let (g3, c3) = attempt(unique("g"));
    let stale = f.store.put_grant_checked(&g3, &c3, &[], v, None).await.unwrap_err();
    assert_eq!(stale.code(), ErrorCode::Conflict, "the org is taken: a read that missed it cannot overwrite it");
    let seen = f.store.list_connections(&tenant).await.unwrap();
    f.store.put_grant_checked(&g3, &c3, &seen, v, None).await.unwrap();
    assert_ne!(f.store.list_connections(&tenant).await.unwrap()[0].grant_id, winner);
}

/// The sync worker's Zoho registrations are stored only on the list it read, while the connection
/// is active and no disconnect holds the grant's lease (a disconnect removes what it read, so an
/// addition after its read would stay at Zoho); a refresher's lease does not stand in the way.
#[tokio::test]
async fn zoho_registrations_are_added_only_on_what_was_read_and_never_under_a_disconnect() {
    use shared::store::webhook_registrations::DISCONNECT_LEASE_PREFIX;
    let f = fixture().await;
    let tenant = unique("tenant");
    let org = unique("zorg");
    let (g, _) = grant(&f, &tenant, Provider::Zoho, &[&org], Duration::minutes(30)).await;
    let put = |before: Option<&'static str>, after: &'static str, at: DateTime<Utc>| {
        let (store, tenant, org, grant_id) = (f.store.clone(), tenant.clone(), org.clone(), g.grant_id.clone());
        async move { store.replace_webhook_registrations(&tenant, Provider::Zoho, &org, &grant_id, before, after, at).await }
    };
    let stored = || async { f.store.get_connection(&tenant, Provider::Zoho, &org).await.unwrap().unwrap().webhook_id };
    let t = now();
    put(None, "1:2", t).await.unwrap();
    // Another writer's list, read before ours was stored: refused, nothing lost.
    assert_eq!(put(None, "3:4", t).await.unwrap_err().code(), ErrorCode::Conflict);
    assert_eq!(stored().await.as_deref(), Some("1:2"));
    // A refresher holding the lease does not block an addition.
    f.store.acquire_lease(&tenant, Provider::Zoho, &g.grant_id, "refresher-x", Duration::seconds(60), t).await.unwrap();
    put(Some("1:2"), "1:2,bill/5:6", t).await.unwrap();
    assert!(f.store.release_lease(&tenant, Provider::Zoho, &g.grant_id, "refresher-x").await.unwrap());
    // A disconnect holding it does, until its lease runs out.
    let owner = format!("{DISCONNECT_LEASE_PREFIX}test");
    f.store.acquire_lease(&tenant, Provider::Zoho, &g.grant_id, &owner, Duration::seconds(60), t).await.unwrap();
    assert_eq!(put(Some("1:2,bill/5:6"), "1:2,bill/5:6,item/7:8", t).await.unwrap_err().code(), ErrorCode::Conflict);
    assert_eq!(stored().await.as_deref(), Some("1:2,bill/5:6"));
    put(Some("1:2,bill/5:6"), "1:2,bill/5:6,item/7:8", t + Duration::seconds(120)).await.unwrap();
    // Once disconnected, nothing more is added.
    let leased = f.store.get_grant(&tenant, Provider::Zoho, &g.grant_id).await.unwrap().unwrap();
    f.store.disconnect(&leased, t).await.unwrap();
    assert_eq!(put(Some("1:2,bill/5:6,item/7:8"), "1:2,bill/5:6,item/7:8,journal/9:10", t).await.unwrap_err().code(), ErrorCode::Conflict);
}
