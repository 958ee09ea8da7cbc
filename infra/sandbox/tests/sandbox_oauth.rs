//! OAuth behaviour per provider: callbacks, client authentication, code reuse and expiry, rotation and
//! grace, revocation, Xero connections, Zoho data centres.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use serde_json::json;
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------- QuickBooks

#[tokio::test]
async fn quickbooks_callback_carries_realm_and_state_and_code_is_single_use() {
    let sb = start().await;
    let b = &sb.base_url;
    let cb = qbo_code(b, "").await;
    assert_eq!(cb["state"], "st-1");
    assert_eq!(cb["realmId"], QBO_REALM);
    let r = qbo_exchange(b, &cb["code"]).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["token_type"], "bearer");
    assert_eq!(v["expires_in"], 3600);
    assert_eq!(v["x_refresh_token_expires_in"], 8_726_400);
    // Reusing the code: invalid_grant, HTTP 400.
    let again = qbo_exchange(b, &cb["code"]).await;
    assert_eq!(again.status, 400);
    assert_eq!(again.json(), json!({"error": "invalid_grant"}));
    sb.shutdown().await;
}

#[tokio::test]
async fn quickbooks_denial_and_chosen_realm() {
    let sb = start().await;
    let b = &sb.base_url;
    let cb = qbo_code(b, "&sandbox_deny=1").await;
    assert_eq!(cb["error"], "access_denied");
    assert_eq!(cb["state"], "st-1");
    assert!(!cb.contains_key("code"));
    // A realm named by the test is created on the fly with some records.
    let cb = qbo_code(b, "&sandbox_realm=123145").await;
    assert_eq!(cb["realmId"], "123145");
    let v = qbo_exchange(b, &cb["code"]).await.json();
    let at = s(&v["access_token"]);
    let r = qbo_query(b, &at, "123145", "SELECT COUNT(*) FROM Customer").await;
    assert_eq!(r.status, 200);
    assert!(r.json()["QueryResponse"]["totalCount"].as_u64().unwrap() >= 1);
    // That token does not reach the default realm.
    let r = qbo_query(b, &at, QBO_REALM, "SELECT * FROM Customer").await;
    assert_eq!(r.status, 403);
    sb.shutdown().await;
}

#[tokio::test]
async fn quickbooks_client_authentication_is_basic_only() {
    let sb = start().await;
    let b = &sb.base_url;
    let cb = qbo_code(b, "").await;
    let url = format!("{b}/quickbooks/oauth2/v1/tokens/bearer");
    let form = [("grant_type", "authorization_code"), ("code", cb["code"].as_str()), ("redirect_uri", REDIRECT)];
    let wrong = post_form(&url, &[("Authorization", &basic("sandbox-qbo-client", "nope"))], &form).await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json(), json!({"error": "invalid_client"}));
    let mut in_body = form.to_vec();
    in_body.push(("client_id", "sandbox-qbo-client"));
    in_body.push(("client_secret", "sandbox-qbo-secret"));
    let body_creds = post_form(&url, &[], &in_body).await;
    assert_eq!(body_creds.status, 401, "credentials in the body are not accepted by Intuit");
    // The failed attempts did not burn the code.
    assert_eq!(qbo_exchange(b, &cb["code"]).await.status, 200);
    sb.shutdown().await;
}

#[tokio::test]
async fn quickbooks_refresh_rotates_and_the_old_token_dies_at_once() {
    let sb = start().await;
    let b = &sb.base_url;
    let (_, rt1, _) = qbo_connect(b).await;
    let r = qbo_refresh(b, &rt1).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    let rt2 = s(&v["refresh_token"]);
    assert_ne!(rt1, rt2, "QuickBooks hands out a new refresh token");
    // Grace defaults to 0: the previous refresh token is single-use.
    let old = qbo_refresh(b, &rt1).await;
    assert_eq!(old.status, 400);
    assert_eq!(old.json()["error"], "invalid_grant");
    let r3 = qbo_refresh(b, &rt2).await;
    assert_eq!(r3.status, 200);
    let counters = get(&format!("{b}/_sandbox/counters"), &[]).await.json();
    let per_grant: Vec<u64> = counters["refreshes"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(per_grant, vec![2]);
    sb.shutdown().await;
}

#[tokio::test]
async fn quickbooks_grace_can_be_configured() {
    let sb = start().await;
    let b = &sb.base_url;
    control(b, "config", json!({"provider": "quickbooks", "refresh_grace": 60})).await;
    let (_, rt1, _) = qbo_connect(b).await;
    let first = qbo_refresh(b, &rt1).await.json();
    let replay = qbo_refresh(b, &rt1).await;
    assert_eq!(replay.status, 200);
    assert_eq!(replay.json()["refresh_token"], first["refresh_token"]);
    control(b, "clock", json!({"advance_seconds": 61})).await;
    assert_eq!(qbo_refresh(b, &rt1).await.status, 400);
    sb.shutdown().await;
}

#[tokio::test]
async fn quickbooks_access_token_and_code_expire_on_the_sandbox_clock() {
    let sb = start().await;
    let b = &sb.base_url;
    control(b, "config", json!({"provider": "quickbooks", "access_token_ttl": 30})).await;
    let (at, rt, realm) = qbo_connect(b).await;
    assert_eq!(qbo_query(b, &at, &realm, "SELECT * FROM Invoice").await.status, 200);
    control(b, "clock", json!({"advance_seconds": 31})).await;
    let r = qbo_query(b, &at, &realm, "SELECT * FROM Invoice").await;
    assert_eq!(r.status, 401);
    // Intuit's gateway shape: lower-case `fault.error[]`, type AUTHENTICATION.
    assert_eq!(r.json()["fault"]["type"], "AUTHENTICATION");
    assert_eq!(r.json()["fault"]["error"][0]["code"], "3200");
    // Refresh gets a working token again, with the shrunk lifetime.
    let v = qbo_refresh(b, &rt).await.json();
    assert_eq!(v["expires_in"], 30);
    assert_eq!(qbo_query(b, &s(&v["access_token"]), &realm, "SELECT * FROM Invoice").await.status, 200);
    // Codes live 5 minutes.
    let cb = qbo_code(b, "").await;
    control(b, "clock", json!({"advance_seconds": 301})).await;
    assert_eq!(qbo_exchange(b, &cb["code"]).await.json()["error"], "invalid_grant");
    sb.shutdown().await;
}

#[tokio::test]
async fn quickbooks_revoke_and_control_revoke_kill_the_grant() {
    let sb = start().await;
    let b = &sb.base_url;
    let (at, rt, realm) = qbo_connect(b).await;
    let auth = qbo_auth_header();
    let r = post_json(&format!("{b}/quickbooks/oauth2/v2/tokens/revoke"), &[("Authorization", &auth)], &json!({"token": rt})).await;
    assert_eq!(r.status, 200);
    assert_eq!(qbo_refresh(b, &rt).await.json()["error"], "invalid_grant");
    assert_eq!(qbo_query(b, &at, &realm, "SELECT * FROM Invoice").await.status, 401);

    let (at2, rt2, _) = qbo_connect(b).await;
    let v = control(b, "revoke", json!({"provider": "quickbooks", "refresh_token": rt2})).await;
    assert_eq!(v["revoked"].as_array().unwrap().len(), 1);
    assert_eq!(qbo_refresh(b, &rt2).await.status, 400);
    assert_eq!(qbo_query(b, &at2, &realm, "SELECT * FROM Invoice").await.status, 401);
    sb.shutdown().await;
}

// ---------------------------------------------------------------- Xero

#[tokio::test]
async fn xero_code_exchange_gives_a_jwt_whose_auth_event_selects_connections() {
    let sb = start().await;
    let b = &sb.base_url;
    let cb = xero_code(b, "openid email offline_access accounting.invoices", "").await;
    assert!(!cb.contains_key("realmId") && !cb.contains_key("tenantId"), "Xero's callback names no tenant");
    assert_eq!(cb["state"], "st-x");
    let v = xero_token(b, &[("grant_type", "authorization_code"), ("code", &cb["code"]), ("redirect_uri", REDIRECT)]).await.json();
    assert_eq!(v["expires_in"], 1800);
    assert_eq!(v["token_type"], "Bearer");
    assert!(v["id_token"].is_string());
    let claims = jwt_claims(&s(&v["access_token"]));
    let event = s(&claims["authentication_event_id"]);
    let at = s(&v["access_token"]);
    let all = get(&format!("{b}/xero/connections"), &[("Authorization", &format!("Bearer {at}"))]).await.json();
    assert_eq!(all.as_array().unwrap().len(), 2);
    let mut tenants: Vec<String> = all.as_array().unwrap().iter().map(|c| s(&c["tenantId"])).collect();
    tenants.sort();
    assert_eq!(tenants, vec![XERO_T1.to_string(), XERO_T2.to_string()]);
    assert!(all.as_array().unwrap().iter().all(|c| c["authEventId"] == event.as_str() && c["tenantType"] == "ORGANISATION"));
    // A second consent to one tenant: filtering by its auth event returns only that one.
    let cb2 = xero_code(b, "offline_access accounting.invoices", &format!("&sandbox_tenants={XERO_T2}")).await;
    let v2 = xero_token(b, &[("grant_type", "authorization_code"), ("code", &cb2["code"]), ("redirect_uri", REDIRECT)]).await.json();
    let at2 = s(&v2["access_token"]);
    let event2 = s(&jwt_claims(&at2)["authentication_event_id"]);
    assert_ne!(event, event2);
    let only = get(&format!("{b}/xero/connections?authEventId={event2}"), &[("Authorization", &format!("Bearer {at2}"))]).await.json();
    assert_eq!(only.as_array().unwrap().len(), 1);
    assert_eq!(only[0]["tenantId"], XERO_T2);
    let none = get(&format!("{b}/xero/connections?authEventId={event}"), &[("Authorization", &format!("Bearer {at2}"))]).await.json();
    assert_eq!(none, json!([]));
    sb.shutdown().await;
}

#[tokio::test]
async fn xero_without_offline_access_gets_no_refresh_token() {
    let sb = start().await;
    let b = &sb.base_url;
    let cb = xero_code(b, "accounting.invoices", "").await;
    let v = xero_token(b, &[("grant_type", "authorization_code"), ("code", &cb["code"]), ("redirect_uri", REDIRECT)]).await.json();
    assert!(v["access_token"].is_string());
    assert!(v.get("refresh_token").is_none());
    sb.shutdown().await;
}

#[tokio::test]
async fn xero_rotation_with_grace_replays_the_same_pair_then_invalid_grant() {
    let sb = start().await;
    let b = &sb.base_url;
    let v = xero_connect(b).await;
    let rt1 = s(&v["refresh_token"]);
    let first = xero_token(b, &[("grant_type", "refresh_token"), ("refresh_token", &rt1)]).await;
    assert_eq!(first.status, 200);
    let first = first.json();
    assert_ne!(first["refresh_token"], rt1.as_str(), "rotates on every refresh");
    // The response was "lost": the old token, within 30 minutes, gets the same pair again.
    control(b, "clock", json!({"advance_seconds": 29 * 60})).await;
    let replay = xero_token(b, &[("grant_type", "refresh_token"), ("refresh_token", &rt1)]).await.json();
    assert_eq!(replay["refresh_token"], first["refresh_token"]);
    assert_eq!(replay["access_token"], first["access_token"]);
    // After the grace period: invalid_grant.
    control(b, "clock", json!({"advance_seconds": 2 * 60})).await;
    let late = xero_token(b, &[("grant_type", "refresh_token"), ("refresh_token", &rt1)]).await;
    assert_eq!(late.status, 400);
    assert_eq!(late.json()["error"], "invalid_grant");
    // The new one still works and rotates again.
    let next = xero_token(b, &[("grant_type", "refresh_token"), ("refresh_token", &s(&first["refresh_token"]))]).await;
    assert_eq!(next.status, 200);
    sb.shutdown().await;
}

#[tokio::test]
async fn xero_grace_is_shrinkable_and_unused_refresh_tokens_expire() {
    let sb = start().await;
    let b = &sb.base_url;
    control(b, "config", json!({"provider": "xero", "refresh_grace": 5, "refresh_token_ttl": 100})).await;
    let v = xero_connect(b).await;
    let rt1 = s(&v["refresh_token"]);
    let first = xero_token(b, &[("grant_type", "refresh_token"), ("refresh_token", &rt1)]).await.json();
    control(b, "clock", json!({"advance_seconds": 6})).await;
    assert_eq!(xero_token(b, &[("grant_type", "refresh_token"), ("refresh_token", &rt1)]).await.json()["error"], "invalid_grant");
    // Unused for longer than its lifetime: dead.
    control(b, "clock", json!({"advance_seconds": 101})).await;
    let expired = xero_token(b, &[("grant_type", "refresh_token"), ("refresh_token", &s(&first["refresh_token"]))]).await;
    assert_eq!(expired.json()["error"], "invalid_grant");
    sb.shutdown().await;
}

#[tokio::test]
async fn xero_pkce_public_client() {
    let sb = start().await;
    let b = &sb.base_url;
    let verifier = "a-very-long-code-verifier-with-enough-entropy-0123456789";
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let cb = xero_code(b, "offline_access accounting.invoices", &format!("&code_challenge={challenge}&code_challenge_method=S256")).await;
    let url = format!("{b}/xero/identity/connect/token");
    let base_form = [
        ("grant_type", "authorization_code"),
        ("code", cb["code"].as_str()),
        ("redirect_uri", REDIRECT),
        ("client_id", "sandbox-xero-client"),
    ];
    let mut wrong = base_form.to_vec();
    wrong.push(("code_verifier", "not-the-verifier"));
    let r = post_form(&url, &[], &wrong).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "invalid_grant");
    let mut right = base_form.to_vec();
    right.push(("code_verifier", verifier));
    let r = post_form(&url, &[], &right).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let rt = s(&r.json()["refresh_token"]);
    // The public client refreshes with only its client_id.
    let r = post_form(&url, &[], &[("grant_type", "refresh_token"), ("refresh_token", &rt), ("client_id", "sandbox-xero-client")]).await;
    assert_eq!(r.status, 200);
    // Without PKCE a public client (no secret) is refused.
    let cb = xero_code(b, "offline_access", "").await;
    let r = post_form(
        &url,
        &[],
        &[("grant_type", "authorization_code"), ("code", &cb["code"]), ("redirect_uri", REDIRECT), ("client_id", "sandbox-xero-client")],
    )
    .await;
    assert_eq!(r.json()["error"], "invalid_client");
    sb.shutdown().await;
}

#[tokio::test]
async fn xero_code_reuse_wrong_redirect_and_revocation() {
    let sb = start().await;
    let b = &sb.base_url;
    let cb = xero_code(b, "offline_access", "").await;
    let bad_redirect =
        xero_token(b, &[("grant_type", "authorization_code"), ("code", &cb["code"]), ("redirect_uri", "http://evil/cb")]).await;
    assert_eq!(bad_redirect.json()["error"], "invalid_grant");
    let ok = xero_token(b, &[("grant_type", "authorization_code"), ("code", &cb["code"]), ("redirect_uri", REDIRECT)]).await;
    // The failed attempt above consumed nothing; this one succeeds, the next is a reuse.
    assert_eq!(ok.status, 200);
    let reuse = xero_token(b, &[("grant_type", "authorization_code"), ("code", &cb["code"]), ("redirect_uri", REDIRECT)]).await;
    assert_eq!(reuse.json()["error"], "invalid_grant");

    let v = ok.json();
    let (at, rt) = (s(&v["access_token"]), s(&v["refresh_token"]));
    let auth = xero_auth_header();
    let r = post_form(&format!("{b}/xero/identity/connect/revocation"), &[("Authorization", &auth)], &[("token", &rt)]).await;
    assert_eq!(r.status, 200);
    assert_eq!(xero_token(b, &[("grant_type", "refresh_token"), ("refresh_token", &rt)]).await.json()["error"], "invalid_grant");
    let r = get(&format!("{b}/xero/connections"), &[("Authorization", &format!("Bearer {at}"))]).await;
    assert_eq!(r.status, 401);
    sb.shutdown().await;
}

#[tokio::test]
async fn xero_deleting_a_connection_disconnects_only_that_tenant() {
    let sb = start().await;
    let b = &sb.base_url;
    let v = xero_connect(b).await;
    let at = s(&v["access_token"]);
    let bearer = format!("Bearer {at}");
    let conns = get(&format!("{b}/xero/connections"), &[("Authorization", &bearer)]).await.json();
    let c1 = conns.as_array().unwrap().iter().find(|c| c["tenantId"] == XERO_T1).unwrap().clone();
    let r = call("DELETE", &format!("{b}/xero/connections/{}", s(&c1["id"])), &[("Authorization", &bearer)], b"").await;
    assert_eq!(r.status, 204);
    assert_eq!(xero_get(b, &at, XERO_T1, "Contacts", &[]).await.status, 403);
    assert_eq!(xero_get(b, &at, XERO_T2, "Contacts", &[]).await.status, 200);
    // Refresh still works while another tenant remains.
    assert_eq!(xero_token(b, &[("grant_type", "refresh_token"), ("refresh_token", &s(&v["refresh_token"]))]).await.status, 200);
    sb.shutdown().await;
}

// ---------------------------------------------------------------- Zoho

#[tokio::test]
async fn zoho_callback_names_the_data_centre_and_tokens_point_at_it() {
    let sb = start().await;
    let b = &sb.base_url;
    let cb = zoho_code(b, "&sandbox_dc=eu").await;
    assert_eq!(cb["location"], "eu");
    assert_eq!(cb["accounts-server"], format!("{b}/zoho/accounts/eu"));
    assert_eq!(cb["state"], "st-z");
    // The code exchanged at the US server (where authorize started) is unknown there.
    let wrong_dc = zoho_token(
        &format!("{b}/zoho/accounts/us"),
        &[("grant_type", "authorization_code"), ("code", &cb["code"]), ("redirect_uri", REDIRECT)],
    )
    .await;
    assert_eq!(wrong_dc.status, 200, "Zoho reports token errors with HTTP 200");
    assert_eq!(wrong_dc.json(), json!({"error": "invalid_client"}));
    let r = zoho_token(&cb["accounts-server"], &[("grant_type", "authorization_code"), ("code", &cb["code"]), ("redirect_uri", REDIRECT)])
        .await;
    let v = r.json();
    assert_eq!(v["api_domain"], format!("{b}/zoho/api/eu"));
    assert_eq!(v["expires_in"], 3600);
    assert!(s(&v["refresh_token"]).starts_with("1000."));
    let at = s(&v["access_token"]);
    let orgs = zoho_get(&s(&v["api_domain"]), &at, "organizations").await.json();
    assert_eq!(orgs["organizations"].as_array().unwrap().len(), 1);
    assert_eq!(orgs["organizations"][0]["organization_id"], "700000002");
    // The EU token means nothing to the US API.
    let us = zoho_get(&format!("{b}/zoho/api/us"), &at, "invoices?organization_id=700000001").await;
    assert_eq!(us.status, 401);
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_refresh_does_not_rotate_and_bad_codes_are_invalid_code_with_200() {
    let sb = start().await;
    let b = &sb.base_url;
    let (v, server) = zoho_connect(b, "us").await;
    let rt = s(&v["refresh_token"]);
    for _ in 0..3 {
        let r = zoho_token(&server, &[("grant_type", "refresh_token"), ("refresh_token", &rt)]).await.json();
        assert!(r["access_token"].is_string());
        assert!(r.get("refresh_token").is_none(), "Zoho returns no new refresh token");
        assert_eq!(r["api_domain"], format!("{b}/zoho/api/us"));
    }
    let bad = zoho_token(&server, &[("grant_type", "refresh_token"), ("refresh_token", "1000.nope")]).await;
    assert_eq!(bad.status, 200);
    assert_eq!(bad.json(), json!({"error": "invalid_code"}));
    // Codes live about two minutes.
    let cb = zoho_code(b, "").await;
    control(b, "clock", json!({"advance_seconds": 121})).await;
    let late =
        zoho_token(&cb["accounts-server"], &[("grant_type", "authorization_code"), ("code", &cb["code"]), ("redirect_uri", REDIRECT)])
            .await;
    assert_eq!(late.json(), json!({"error": "invalid_code"}));
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_takes_credentials_as_form_fields_but_not_basic() {
    let sb = start().await;
    let b = &sb.base_url;
    let cb = zoho_code(b, "").await;
    let url = format!("{}/oauth/v2/token", cb["accounts-server"]);
    let basic_only = post_form(
        &url,
        &[("Authorization", &basic("sandbox-zoho-client", "sandbox-zoho-secret"))],
        &[("grant_type", "authorization_code"), ("code", &cb["code"]), ("redirect_uri", REDIRECT)],
    )
    .await;
    assert_eq!(basic_only.json(), json!({"error": "invalid_client"}));
    let form = post_form(
        &url,
        &[],
        &[
            ("grant_type", "authorization_code"),
            ("code", &cb["code"]),
            ("redirect_uri", REDIRECT),
            ("client_id", "sandbox-zoho-client"),
            ("client_secret", "sandbox-zoho-secret"),
        ],
    )
    .await;
    assert!(form.json()["refresh_token"].is_string());
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_offline_refresh_token_only_on_first_consent_or_prompt_consent() {
    let sb = start().await;
    let b = &sb.base_url;
    let url = |extra: &str| {
        format!(
            "{b}/zoho/accounts/us/oauth/v2/auth?client_id=sandbox-zoho-client&response_type=code&scope=ZohoBooks.invoices.READ&redirect_uri={}&access_type=offline&sandbox_user=u1{extra}",
            enc(REDIRECT)
        )
    };
    let exchange = |cb: std::collections::HashMap<String, String>| async move {
        zoho_token(&cb["accounts-server"], &[("grant_type", "authorization_code"), ("code", &cb["code"]), ("redirect_uri", REDIRECT)])
            .await
            .json()
    };
    let first = exchange(authorize(&url("")).await).await;
    assert!(first["refresh_token"].is_string());
    let second = exchange(authorize(&url("")).await).await;
    assert!(second.get("refresh_token").is_none(), "a repeat consent without prompt=consent gets none");
    let forced = exchange(authorize(&url("&prompt=consent")).await).await;
    assert!(forced["refresh_token"].is_string());
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_twenty_first_refresh_token_evicts_the_oldest() {
    let sb = start().await;
    let b = &sb.base_url;
    let mut tokens = Vec::new();
    for _ in 0..21 {
        let (v, server) = zoho_connect(b, "us").await;
        tokens.push((s(&v["refresh_token"]), server));
    }
    let (oldest, server) = &tokens[0];
    assert_eq!(
        zoho_token(server, &[("grant_type", "refresh_token"), ("refresh_token", oldest)]).await.json(),
        json!({"error": "invalid_code"})
    );
    for (rt, server) in &tokens[1..] {
        assert!(zoho_token(server, &[("grant_type", "refresh_token"), ("refresh_token", rt)]).await.json()["access_token"].is_string());
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_revoke_kills_refresh_and_access_tokens() {
    let sb = start().await;
    let b = &sb.base_url;
    let (v, server) = zoho_connect(b, "us").await;
    let (rt, at) = (s(&v["refresh_token"]), s(&v["access_token"]));
    let api = s(&v["api_domain"]);
    assert_eq!(zoho_get(&api, &at, "invoices?organization_id=700000001").await.status, 200);
    let r = call("POST", &format!("{server}/oauth/v2/token/revoke?token={rt}"), &[], b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(zoho_token(&server, &[("grant_type", "refresh_token"), ("refresh_token", &rt)]).await.json()["error"], "invalid_code");
    let r = zoho_get(&api, &at, "invoices?organization_id=700000001").await;
    assert_eq!(r.status, 401);
    sb.shutdown().await;
}

#[tokio::test]
async fn quickbooks_hard_expiry_only_when_asked() {
    let sb = start().await;
    let b = &sb.base_url;
    let cb = qbo_code(b, "").await;
    let v = qbo_exchange(b, &cb["code"]).await.json();
    assert!(v.get("x_refresh_token_hard_expires_in").is_none(), "not asked: {v}");
    let rt = s(&v["refresh_token"]);
    let r = post_form(
        &format!("{b}/quickbooks/oauth2/v1/tokens/bearer"),
        &[("authorization", &qbo_auth_header()), ("x-include-refresh-token-hard-expires-in", "true")],
        &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
    )
    .await
    .json();
    let hard = r["x_refresh_token_hard_expires_in"].as_i64().expect("asked: reported");
    assert!((5 * 365 * 86_400 - 60..=5 * 365 * 86_400).contains(&hard), "{hard}");
    assert!(r["x_refresh_token_expires_in"].as_i64().unwrap() <= hard);
    sb.shutdown().await;
}

#[tokio::test]
async fn xero_app_scope_vocabulary_and_partial_consent() {
    let sb = start().await;
    let b = &sb.base_url;
    // A new (granular) app may not ask for the broad scopes.
    let cb = xero_code(b, "offline_access accounting.transactions", "").await;
    assert_eq!(cb.get("error").map(String::as_str), Some("invalid_scope"), "{cb:?}");
    // An older app may.
    control(b, "config", json!({"xero_app_scopes": "broad"})).await;
    let cb = xero_code(b, "offline_access accounting.transactions", "").await;
    assert!(cb.contains_key("code"), "{cb:?}");
    // A consent that grants less than asked reports what it granted.
    let cb =
        xero_code(b, "offline_access accounting.invoices accounting.contacts", "&sandbox_scope=offline_access%20accounting.contacts").await;
    let v = xero_token(b, &[("grant_type", "authorization_code"), ("code", &cb["code"]), ("redirect_uri", REDIRECT)]).await.json();
    assert_eq!(v["scope"], "offline_access accounting.contacts");
    sb.shutdown().await;
}
