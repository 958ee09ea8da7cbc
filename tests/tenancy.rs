//! Tenants, quotas and roles against the local DynamoDB (moto).

use chrono::Utc;
use integration_tests::{aws, unique};
use shared::tenancy::{Limits, Permission, Plan, Role, Tenant, TenantConfig, TenantStore};
use shared::ErrorCode;

async fn store() -> TenantStore {
    let env = aws().await;
    TenantStore::new(env.clients.dynamodb.clone(), env.config.tables.tenants.clone())
}

fn tenant(plan: Plan) -> Tenant {
    let cfg = TenantConfig { return_urls: vec!["https://app.example.com/settings/integrations".into()], ..Default::default() };
    Tenant::new(unique("tenant"), "Acme Ltd", plan, cfg, Utc::now())
}

#[tokio::test]
async fn create_get_update_with_validation_and_versioning() {
    let s = store().await;
    let t = tenant(Plan::Professional);
    s.create(&t).await.unwrap();
    assert_eq!(s.create(&t).await.unwrap_err().code(), ErrorCode::Conflict);
    let got = s.get(&t.tenant_id).await.unwrap();
    assert_eq!(got.config, t.config);
    assert_eq!(got.version, 0);

    let mut changed = got.clone();
    changed.config.sync_frequency_minutes = 30;
    let v1 = s.update(&changed, Utc::now()).await.unwrap();
    assert_eq!(v1.version, 1);
    // A writer holding the old version loses.
    assert_eq!(s.update(&changed, Utc::now()).await.unwrap_err().code(), ErrorCode::Conflict);

    let mut invalid = v1.clone();
    invalid.config.return_urls = vec!["ftp://x".into()];
    let err = s.update(&invalid, Utc::now()).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidTenantConfig);
    assert_eq!(s.get(&t.tenant_id).await.unwrap().config.sync_frequency_minutes, 30, "nothing written");
    assert_eq!(s.get(&unique("missing")).await.unwrap_err().code(), ErrorCode::TenantNotFound);
}

#[tokio::test]
async fn twenty_concurrent_quota_increments_never_pass_the_limit() {
    let s = store().await;
    let mut t = tenant(Plan::Starter);
    t.limits_override = Some(Limits { api_calls_per_month: 7, ..Plan::Starter.limits() });
    s.create(&t).await.unwrap();
    let now = Utc::now();
    let results = futures_join_all((0..20).map(|_| {
        let s = s.clone();
        let t = t.clone();
        tokio::spawn(async move { s.consume_api_calls(&t, 1, now).await })
    }))
    .await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 7);
    assert!(results.iter().filter(|r| r.is_err()).all(|r| r.as_ref().unwrap_err().code() == ErrorCode::QuotaExceeded));
    assert_eq!(s.api_calls_used(&t.tenant_id, now).await.unwrap(), 7);
    // A batch that would cross the limit is refused whole.
    let mut roomy = tenant(Plan::Starter);
    roomy.limits_override = Some(Limits { api_calls_per_month: 10, ..Plan::Starter.limits() });
    s.create(&roomy).await.unwrap();
    assert_eq!(s.consume_api_calls(&roomy, 6, now).await.unwrap(), 6);
    assert_eq!(s.consume_api_calls(&roomy, 5, now).await.unwrap_err().code(), ErrorCode::QuotaExceeded);
    assert_eq!(s.consume_api_calls(&roomy, 4, now).await.unwrap(), 10);
}

async fn futures_join_all<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    let handles: Vec<_> = handles.collect();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn roles_decide_who_may_connect() {
    let s = store().await;
    let t = tenant(Plan::Starter);
    s.create(&t).await.unwrap();
    s.set_role(&t, "owner-1", Role::Owner).await.unwrap();
    s.set_role(&t, "admin-1", Role::Admin).await.unwrap();
    s.set_role(&t, "viewer-1", Role::Viewer).await.unwrap();
    assert_eq!(s.authorize(&t.tenant_id, "admin-1", Permission::Connect).await.unwrap(), Role::Admin);
    assert_eq!(s.authorize(&t.tenant_id, "viewer-1", Permission::Connect).await.unwrap_err().code(), ErrorCode::Forbidden);
    assert_eq!(s.authorize(&t.tenant_id, "stranger", Permission::ViewConnections).await.unwrap_err().code(), ErrorCode::Forbidden);
    // Roles are per tenant.
    let other = tenant(Plan::Starter);
    s.create(&other).await.unwrap();
    assert!(s.authorize(&other.tenant_id, "owner-1", Permission::ViewConnections).await.is_err());
    // Starter allows 3 users: a fourth is refused, changing an existing user's role is not.
    assert_eq!(s.set_role(&t, "member-1", Role::Member).await.unwrap_err().code(), ErrorCode::PlanLimit);
    s.set_role(&t, "viewer-1", Role::Member).await.unwrap();
    assert_eq!(s.get_role(&t.tenant_id, "viewer-1").await.unwrap(), Some(Role::Member));
}

#[tokio::test]
async fn users_added_concurrently_never_pass_the_plan_limit() {
    let s = store().await;
    let t = tenant(Plan::Starter); // 3 users
    s.create(&t).await.unwrap();
    s.set_role(&t, "owner-1", Role::Owner).await.unwrap();
    // Ten additions race for the two seats left; retry conflicts as a caller would.
    let handles = (0..10).map(|i| {
        let (s, t) = (s.clone(), t.clone());
        tokio::spawn(async move {
            loop {
                match s.set_role(&t, &format!("user-{i}"), Role::Member).await {
                    Err(e) if e.code() == ErrorCode::Conflict => continue,
                    other => return other.map_err(|e| e.code()),
                }
            }
        })
    });
    let results = futures_join_all(handles).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 2, "{results:?}");
    assert!(results.iter().filter(|r| r.is_err()).all(|r| *r == Err(ErrorCode::PlanLimit)), "{results:?}");
    let mut members = 0;
    for i in 0..10 {
        members += s.get_role(&t.tenant_id, &format!("user-{i}")).await.unwrap().is_some() as usize;
    }
    assert_eq!(members, 2);
}
