//! The records API through the real handler (`records_api::handle_at`) with API Gateway-shaped,
//! app-signed requests, against the local AWS (moto, with the harness's AWS rules). Records are
//! written by the sync store's own write path (`SyncStore::put_records`), so they carry exactly the
//! index attributes the worker writes. Each test has its own tenant (and connection), so tests run
//! in parallel against the shared tables.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use integration_tests::{aws, unique};
use lambda_http::{Body, Request, RequestExt};
use serde_json::{json, Value};
use shared::connect::app_auth;
use shared::providers::model::Entity;
use shared::records::{RecordsApi, Route};
use shared::store::grants::{Connection, GrantStatus};
use shared::sync::{Money, SyncRecord, SyncStore};
use shared::tenancy::{Plan, Role, Tenant, TenantConfig};
use shared::{Provider, SecretString};

const USER: &str = "viewer-1";
const ORG: &str = "org/7 é";

struct Fixture {
    api: RecordsApi,
    sync: SyncStore,
    tenant: String,
    kid: String,
    key: SecretString,
    now: DateTime<Utc>,
}

async fn fixture() -> Fixture {
    let env = aws().await;
    let api = RecordsApi::new(env.config.clone(), &env.clients);
    let now = Utc::now();
    let cfg = TenantConfig { return_urls: vec!["https://app.example.com/settings".into()], ..Default::default() };
    let tenant = Tenant::new(unique("tenant"), "Acme Ltd", Plan::Enterprise, cfg, now);
    api.tenants.create(&tenant).await.unwrap();
    // The least role there is: reading records is for everyone in the tenant.
    api.tenants.set_role(&tenant, USER, Role::Viewer).await.unwrap();
    api.grants
        .put_connection(&Connection {
            tenant_id: tenant.tenant_id.clone(),
            provider: Provider::Xero,
            org_id: ORG.into(),
            org_name: Some("Demo Company".into()),
            grant_id: unique("grant"),
            status: GrantStatus::Active,
            webhook_id: None,
            webhook_secret: None,
            created_at: now,
            updated_at: now,
        })
        .await
        .unwrap();
    let signing = api.secrets.app_signing(&api.config.secrets.app_signing).await.unwrap();
    let (kid, key) = signing.connect_keys.iter().next().map(|(k, v)| (k.clone(), v.clone())).expect("a connect key");
    let sync = SyncStore::new(env.clients.dynamodb.clone(), env.config.tables.sync.clone());
    Fixture { api, sync, tenant: tenant.tenant_id, kid, key, now }
}

fn enc(s: &str) -> String {
    app_auth::encode_component(s)
}

fn invoice(id: usize) -> SyncRecord {
    SyncRecord {
        provider: Provider::Xero,
        org_id: ORG.into(),
        entity: Entity::Invoice,
        provider_id: format!("inv-{id:05}"),
        number: Some(format!("INV-{id}")),
        name: Some("City Limousines".into()),
        status: Some("AUTHORISED".into()),
        amount: Some(Money { minor: 10_000 + id as i64, currency: "NZD".into() }),
        contact_id: Some("c-1".into()),
        issue_date: NaiveDate::from_ymd_opt(2026, 1, 1),
        due_date: NaiveDate::from_ymd_opt(2026, 2, 1),
        updated_at: DateTime::from_timestamp(1_767_225_600, 0),
        deleted: false,
        raw_ref: format!("xero/{ORG}/invoice/inv-{id:05}"),
        flags: vec![],
        document: None,
        company: None,
        version: None,
        payment: None,
        reference: Default::default(),
        contact: None,
    }
}

fn raw_of(r: &SyncRecord) -> Option<String> {
    Some(json!({"InvoiceID": r.provider_id, "Status": r.status, "padding": "x".repeat(600)}).to_string())
}

impl Fixture {
    fn list_path(&self, entity: &str) -> String {
        format!("/v1/tenants/{}/connections/xero/{}/records/{entity}", self.tenant, enc(ORG))
    }

    /// A request as the app signs it for `tenant` (the path's tenant unless a test says otherwise).
    fn request_as(&self, tenant: &str, method: &str, path: &str, params: &[(&str, &str)]) -> Request {
        raw_request(method, path, &self.signed(tenant, path, params))
    }

    fn signed(&self, tenant: &str, path: &str, params: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut p: BTreeMap<String, String> = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        p.insert("tenant".into(), tenant.into());
        p.insert("user".into(), USER.into());
        p.insert("ts".into(), self.now.timestamp().to_string());
        p.insert("kid".into(), self.kid.clone());
        let sig = app_auth::sign(&self.key, "GET", path, &p);
        p.insert("sig".into(), sig);
        p.into_iter().collect()
    }

    async fn get(&self, path: &str, params: &[(&str, &str)]) -> (u16, Value) {
        self.send(self.request_as(&self.tenant.clone(), "GET", path, params)).await
    }

    async fn send(&self, req: Request) -> (u16, Value) {
        send(&self.api, req, self.now).await
    }

    /// Every page of a listing: the provider ids in order, and the number of pages.
    async fn all(&self, params: &[(&str, &str)]) -> (Vec<String>, usize) {
        let path = self.list_path("invoice");
        let mut ids = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut p = params.to_vec();
            if let Some(c) = &cursor {
                p.push(("cursor", c));
            }
            let (status, body) = self.get(&path, &p).await;
            assert_eq!(status, 200, "{body}");
            pages += 1;
            for r in body["records"].as_array().unwrap() {
                ids.push(r["record"]["provider_id"].as_str().unwrap().to_string());
            }
            match body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return (ids, pages),
            }
        }
    }

    async fn write(&self, records: &[SyncRecord], at: DateTime<Utc>) {
        let with_raw: Vec<(SyncRecord, Option<String>)> = records.iter().map(|r| (r.clone(), raw_of(r))).collect();
        let counts = self.sync.put_records(&self.tenant, &with_raw, "job-1", at).await.unwrap();
        assert_eq!(counts.written, records.len());
    }
}

fn raw_request(method: &str, path: &str, query: &[(String, String)]) -> Request {
    let qs = url_query(query);
    let mut multi: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in query {
        multi.entry(k.clone()).or_default().push(v.clone());
    }
    http::Request::builder()
        .method(method)
        .uri(format!("https://integrations.test.example{path}?{qs}"))
        .body(Body::Empty)
        .unwrap()
        .with_query_string_parameters(multi)
}

fn url_query(query: &[(String, String)]) -> String {
    query.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

async fn send(api: &RecordsApi, req: Request, now: DateTime<Utc>) -> (u16, Value) {
    let resp = records_api::handle_at(api, req, now).await.unwrap();
    let status = resp.status().as_u16();
    let body = match resp.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap(),
        Body::Binary(b) => serde_json::from_slice(b).unwrap(),
        Body::Empty => Value::Null,
        _ => Value::Null,
    };
    (status, body)
}

#[tokio::test]
async fn pagination_over_ten_thousand_records_returns_each_once() {
    let f = fixture().await;
    let records: Vec<SyncRecord> = (0..10_000).map(invoice).collect();
    for chunk in records.chunks(1000) {
        f.write(chunk, f.now).await;
    }
    let (ids, pages) = f.all(&[("limit", "500")]).await;
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(ids.len(), 10_000, "every record once: {} returned, {} distinct", ids.len(), unique.len());
    assert_eq!(unique.len(), 10_000);
    assert_eq!(unique, records.iter().map(|r| &r.provider_id).collect::<BTreeSet<_>>());
    assert!((20..=21).contains(&pages), "500 a page: {pages} pages");

    // The default page is 100 records.
    let (status, body) = f.get(&f.list_path("invoice"), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body["records"].as_array().unwrap().len(), 100);
    assert!(body["next_cursor"].is_string());
}

#[tokio::test]
async fn modified_after_returns_only_records_stored_later() {
    let f = fixture().await;
    let t0 = f.now - Duration::minutes(10);
    let t1 = f.now - Duration::minutes(1);
    let before: Vec<SyncRecord> = (0..50).map(invoice).collect();
    f.write(&before, t0).await;
    // Five change and three are new, a minute ago.
    let mut later: Vec<SyncRecord> = (0..5)
        .map(|i| {
            let mut r = invoice(i);
            r.status = Some("PAID".into());
            r.updated_at = Some(r.updated_at.unwrap() + Duration::hours(1));
            r
        })
        .collect();
    later.extend((100..103).map(invoice));
    f.write(&later, t1).await;

    let since = (t0 + Duration::seconds(30)).to_rfc3339();
    let (ids, _) = f.all(&[("modified_after", &since)]).await;
    let want: Vec<String> = later.iter().map(|r| r.provider_id.clone()).collect();
    assert_eq!(ids.iter().collect::<BTreeSet<_>>(), want.iter().collect::<BTreeSet<_>>());
    assert_eq!(ids.len(), 8);
    // Exactly at a record's stored time is not "after" it.
    let (ids, _) = f.all(&[("modified_after", &t1.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))]).await;
    assert!(ids.is_empty(), "{ids:?}");
    let (ids, _) = f.all(&[]).await;
    assert_eq!(ids.len(), 53);
}

#[tokio::test]
async fn filters_return_exactly_the_records_asked_for() {
    let f = fixture().await;
    let d = |m, day| NaiveDate::from_ymd_opt(2026, m, day);
    let mut rs: Vec<SyncRecord> = (0..12).map(invoice).collect();
    for (i, r) in rs.iter_mut().enumerate() {
        r.status = Some(if i % 3 == 0 { "PAID" } else { "AUTHORISED" }.into());
        r.contact_id = Some(format!("c-{}", i % 4));
        r.due_date = d(3, 1 + i as u32);
        r.issue_date = d(2, 1 + i as u32);
    }
    rs[11].deleted = true;
    rs[11].status = Some("DELETED".into());
    rs[10].due_date = None;
    f.write(&rs, f.now).await;
    let ids = |want: &'static [usize]| want.iter().map(|i| format!("inv-{i:05}")).collect::<BTreeSet<_>>();
    let got = |v: Vec<String>| v.into_iter().collect::<BTreeSet<_>>();

    assert_eq!(got(f.all(&[("status", "paid")]).await.0), ids(&[0, 3, 6, 9]), "status, any case");
    assert_eq!(got(f.all(&[("contact_id", "c-1")]).await.0), ids(&[1, 5, 9]));
    // Due before 5 March: 1-4 March.
    assert_eq!(got(f.all(&[("due_before", "2026-03-05")]).await.0), ids(&[0, 1, 2, 3]));
    assert_eq!(got(f.all(&[("due_after", "2026-03-08")]).await.0), ids(&[8, 9]), "10 has no due date, 11 is deleted");
    assert_eq!(got(f.all(&[("due_after", "2026-03-02"), ("due_before", "2026-03-06")]).await.0), ids(&[2, 3, 4]));
    assert_eq!(got(f.all(&[("issued_after", "2026-02-09"), ("include_deleted", "true")]).await.0), ids(&[9, 10, 11]));
    assert_eq!(got(f.all(&[("status", "PAID"), ("due_before", "2026-03-05")]).await.0), ids(&[0, 3]), "status index, due filter");
    assert_eq!(got(f.all(&[("contact_id", "c-3"), ("include_deleted", "true")]).await.0), ids(&[3, 7, 11]));
    assert_eq!(got(f.all(&[("contact_id", "c-3")]).await.0), ids(&[3, 7]));
    assert_eq!(got(f.all(&[("contact_id", "c-3"), ("status", "authorised")]).await.0), ids(&[7]));

    // One record: the common model's JSON, raw only when asked.
    let path = format!("{}/inv-00003", f.list_path("invoice"));
    let (status, body) = f.get(&path, &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_value::<SyncRecord>(body["record"].clone()).unwrap(), rs[3]);
    assert!(body.get("raw").is_none());
    let (_, body) = f.get(&path, &[("include_raw", "true")]).await;
    assert_eq!(body["raw"]["InvoiceID"], "inv-00003");
    let (_, page) = f.get(&f.list_path("invoice"), &[("include_raw", "true"), ("limit", "5")]).await;
    for r in page["records"].as_array().unwrap() {
        assert_eq!(r["raw"]["InvoiceID"], r["record"]["provider_id"], "each page record gets its own raw JSON");
    }
    let (status, body) = f.get(&format!("{}/inv-99999", f.list_path("invoice")), &[]).await;
    assert_eq!((status, body["error"]["code"].as_u64()), (404, Some(4004)));
}

#[tokio::test]
async fn another_tenants_connection_is_refused_before_anything_is_read() {
    let f = fixture().await;
    f.write(&(0..3).map(invoice).collect::<Vec<_>>(), f.now).await;
    let other = fixture().await;

    // The other tenant signs a request for our tenant's records: refused. With tables that do not
    // exist, any read would fail with a 5xx, so the 403 shows nothing was read first.
    let env = aws().await;
    let mut blind_config = env.config.clone();
    blind_config.tables.tenants = "no-such-table".into();
    blind_config.tables.grants = "no-such-table".into();
    blind_config.tables.sync = "no-such-table".into();
    let blind = RecordsApi::new(blind_config, &env.clients);
    for path in [f.list_path("invoice"), format!("{}/inv-00001", f.list_path("invoice")), format!("/v1/tenants/{}/connections", f.tenant)] {
        let req = other.request_as(&other.tenant, "GET", &path, &[]);
        let (status, body) = send(&blind, req, f.now).await;
        assert_eq!((status, body["error"]["code"].as_u64()), (403, Some(1002)), "{path}: {body}");
        let req = other.request_as(&other.tenant, "GET", &path, &[]);
        let (status, _) = other.send(req).await;
        assert_eq!(status, 403, "{path}");
    }
    // Bad input is refused before any read as well (the same tables that do not exist).
    for (params, code) in
        [(vec![("cursor", "bm90IGEgY3Vyc29y")], 4012), (vec![("limit", "501")], 4000), (vec![("due_after", "tomorrow")], 4000)]
    {
        let req = f.request_as(&f.tenant, "GET", &f.list_path("invoice"), &params);
        let (status, body) = send(&blind, req, f.now).await;
        assert_eq!((status, body["error"]["code"].as_u64()), (400, Some(code)), "{params:?}: {body}");
    }
    // Our cursor presented by the other tenant for its own connection of the same org id.
    let (_, page) = f.get(&f.list_path("invoice"), &[("limit", "1")]).await;
    let cursor = page["next_cursor"].as_str().unwrap();
    let (status, body) = other.get(&other.list_path("invoice"), &[("cursor", cursor), ("limit", "1")]).await;
    assert_eq!((status, body["error"]["code"].as_u64()), (400, Some(4012)), "{body}");
    // And the other tenant's own listing sees none of ours.
    let (ids, _) = other.all(&[]).await;
    assert!(ids.is_empty(), "{ids:?}");
}

/// (label, path, parameters, status, code)
type BadCase<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, u16, u64);

#[tokio::test]
async fn bad_input_gets_a_4xx_with_its_stable_code() {
    let f = fixture().await;
    let list = f.list_path("invoice");
    let cases: Vec<BadCase> = vec![
        ("unknown entity", f.list_path("invoicez"), vec![], 400, 4000),
        ("oversized page", list.clone(), vec![("limit", "501")], 400, 4000),
        ("bad cursor", list.clone(), vec![("cursor", "not-a-cursor")], 400, 4012),
        ("bad date", list.clone(), vec![("due_before", "05/03/2026")], 400, 4000),
        ("bad time", list.clone(), vec![("modified_after", "2026-03-01")], 400, 4000),
        ("unknown parameter", list.clone(), vec![("due_befor", "2026-03-01")], 400, 4000),
        ("unknown connection", format!("/v1/tenants/{}/connections/xero/nope/records/invoice", f.tenant), vec![], 404, 4004),
        ("unknown route", format!("/v1/tenants/{}/grants", f.tenant), vec![], 404, 4004),
    ];
    for (label, path, params, status, code) in cases {
        let (s, body) = f.get(&path, &params).await;
        assert_eq!((s, body["error"]["code"].as_u64()), (status, Some(code)), "{label}: {body}");
        assert!(body["error"]["correlation_id"].is_string(), "{label}");
    }
    // Unsigned, tampered, and not a GET.
    let (s, body) = f.send(raw_request("GET", &list, &[("tenant".into(), f.tenant.clone())])).await;
    assert_eq!((s, body["error"]["code"].as_u64()), (401, Some(1001)));
    let tampered: Vec<(String, String)> = f
        .signed(&f.tenant, &list, &[("limit", "5")])
        .into_iter()
        .map(|(k, v)| if k == "limit" { (k, "500".to_string()) } else { (k, v) })
        .collect();
    let (s, body) = f.send(raw_request("GET", &list, &tampered)).await;
    assert_eq!((s, body["error"]["code"].as_u64()), (401, Some(1001)), "a parameter changed after signing");
    let (s, body) = f.send(f.request_as(&f.tenant, "POST", &list, &[])).await;
    assert_eq!((s, body["error"]["code"].as_u64()), (405, Some(4005)));
    // A user without a role in the tenant.
    let mut p: BTreeMap<String, String> =
        [("tenant", f.tenant.as_str()), ("user", "stranger"), ("ts", &f.now.timestamp().to_string()), ("kid", &f.kid)]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    p.insert("sig".into(), app_auth::sign(&f.key, "GET", &list, &p));
    let (s, body) = f.send(raw_request("GET", &list, &p.into_iter().collect::<Vec<_>>())).await;
    assert_eq!((s, body["error"]["code"].as_u64()), (403, Some(1002)));
}

#[tokio::test]
async fn records_written_before_the_indexes_are_listed_once_backfilled() {
    let f = fixture().await;
    let at = f.now - Duration::hours(2);
    let rs: Vec<SyncRecord> = (0..30).map(invoice).collect();
    f.write(&rs, at).await;
    // As the items were before this change: no index attributes.
    let env = aws().await;
    let db = &env.clients.dynamodb;
    for r in &rs {
        db.update_item()
            .table_name(&env.config.tables.sync)
            .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(shared::store::tenant_pk(&f.tenant)))
            .key(
                "sk",
                aws_sdk_dynamodb::types::AttributeValue::S(shared::sync::store::record_sk(r.provider, &r.org_id, r.entity, &r.provider_id)),
            )
            .update_expression("REMOVE rx_scope, rx_mod, rx_due, rx_issue, rx_status, rx_contact")
            .send()
            .await
            .unwrap();
    }
    assert!(f.all(&[]).await.0.is_empty(), "unindexed records are in no index");
    // A pull of the same content does not rewrite them (their content hash matches) ...
    let again: Vec<(SyncRecord, Option<String>)> = rs.iter().map(|r| (r.clone(), raw_of(r))).collect();
    assert_eq!(f.sync.put_records(&f.tenant, &again, "job-2", f.now).await.unwrap().written, 0);
    assert!(f.all(&[]).await.0.is_empty());
    // ... the backfill does, keeping each record's write time.
    let done = shared::sync::record_index::backfill(db, &env.config.tables.sync, &f.tenant).await.unwrap();
    assert_eq!((done.indexed, done.skipped), (30, 0));
    let (ids, _) = f.all(&[("status", "authorised")]).await;
    assert_eq!(ids.len(), 30);
    let (_, page) = f.get(&f.list_path("invoice"), &[("limit", "1")]).await;
    let written = DateTime::parse_from_rfc3339(page["records"][0]["modified_at"].as_str().unwrap()).unwrap();
    assert_eq!(written.timestamp_millis(), at.timestamp_millis());
    let (ids, _) = f.all(&[("modified_after", &(at + Duration::minutes(1)).to_rfc3339())]).await;
    assert!(ids.is_empty(), "backfilled records keep their old write time: {ids:?}");
    assert_eq!(shared::sync::record_index::backfill(db, &env.config.tables.sync, &f.tenant).await.unwrap().indexed, 0);
}

// --- The OpenAPI document against the handler --------------------------------------------------

fn openapi() -> Value {
    serde_json::from_str(include_str!("../../../schemas/records-api.v1.json")).expect("the OpenAPI document is JSON")
}

/// A small JSON Schema check over the keywords the document uses (type, enum, required,
/// properties, additionalProperties, items, $ref into components).
fn check(doc: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.strip_prefix("#/components/schemas/").ok_or(format!("{at}: unsupported $ref {r}"))?;
        return check(doc, &doc["components"]["schemas"][name], v, at);
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let ok = types.iter().any(|t| match *t {
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            "object" => v.is_object(),
            "array" => v.is_array(),
            "null" => v.is_null(),
            _ => false,
        });
        if !ok {
            return Err(format!("{at}: {v} is not {types:?}"));
        }
    }
    if let Some(e) = schema["enum"].as_array() {
        if !e.contains(v) {
            return Err(format!("{at}: {v} not in {e:?}"));
        }
    }
    if let Some(obj) = v.as_object() {
        for r in schema["required"].as_array().into_iter().flatten() {
            if !obj.contains_key(r.as_str().unwrap()) {
                return Err(format!("{at}: missing {r}"));
            }
        }
        for (k, val) in obj {
            match schema["properties"].get(k) {
                Some(p) => check(doc, p, val, &format!("{at}/{k}"))?,
                None if schema["additionalProperties"] == Value::Bool(false) => return Err(format!("{at}: {k} is not documented")),
                None => {}
            }
        }
    }
    if let (Some(items), Some(a)) = (schema.get("items"), v.as_array()) {
        for (i, x) in a.iter().enumerate() {
            check(doc, items, x, &format!("{at}/{i}"))?;
        }
    }
    Ok(())
}

fn response_schema(doc: &Value, template: &str, status: u16) -> Value {
    doc["paths"][template]["get"]["responses"][status.to_string()]["content"]["application/json"]["schema"].clone()
}

#[tokio::test]
async fn the_openapi_document_and_the_handler_agree() {
    let doc = openapi();
    assert_eq!(doc["openapi"], "3.1.0");
    let documented: BTreeSet<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    // Every route the handler serves is documented, and nothing else is.
    assert_eq!(documented, Route::TEMPLATES.iter().map(|t| t.to_string()).collect::<BTreeSet<_>>());

    // Every example validates against its schema.
    for (template, item) in doc["paths"].as_object().unwrap() {
        for (status, resp) in item["get"]["responses"].as_object().unwrap() {
            let content = &resp["content"]["application/json"];
            if let Some(example) = content.get("example") {
                check(&doc, &content["schema"], example, &format!("{template} {status} example")).unwrap();
            }
        }
        for p in item["get"]["parameters"].as_array().unwrap() {
            let name = p["name"].as_str().unwrap();
            if p["in"] == "path" {
                assert!(template.contains(&format!("{{{name}}}")), "{template}: path parameter {name} is not in the path");
            }
        }
    }

    // Every documented route answers its documented 200 shape, and its errors the error shape.
    let f = fixture().await;
    let mut r = invoice(1);
    r.flags = vec!["amount_unreadable".into()];
    r.amount = None;
    f.write(&[r, invoice(2)], f.now).await;
    for template in Route::TEMPLATES {
        let path = template
            .replace("{tenant}", &f.tenant)
            .replace("{provider}", "xero")
            .replace("{org}", &enc(ORG))
            .replace("{entity}", "invoice")
            .replace("{id}", "inv-00001");
        let (parsed, _) = shared::records::query::parse_route(&path).unwrap();
        assert_eq!(parsed.template(), template);
        let params: Vec<(&str, &str)> = if template.ends_with("{entity}") {
            vec![("include_raw", "true"), ("include_deleted", "true"), ("limit", "1")]
        } else if template.ends_with("{id}") {
            vec![("include_raw", "true")]
        } else {
            vec![]
        };
        // Every query parameter the handler takes is documented for the route.
        let doc_params: BTreeSet<&str> = doc["paths"][template]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["in"] == "query")
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        let taken: BTreeSet<&str> =
            parsed.params().iter().chain(shared::records::query::AUTH_PARAMS.iter()).copied().chain(["sig"]).collect();
        assert_eq!(doc_params, taken, "{template}: documented query parameters");

        let (status, body) = f.get(&path, &params).await;
        assert_eq!(status, 200, "{template}: {body}");
        check(&doc, &response_schema(&doc, template, 200), &body, template).unwrap_or_else(|e| panic!("{e}\n{body}"));
        let (status, body) = f.get(&path, &[("bogus", "1")]).await;
        assert_eq!(status, 400);
        check(&doc, &response_schema(&doc, template, 400), &body, template).unwrap();
        assert!(doc["paths"][template]["get"]["responses"].get("401").is_some(), "{template}: 401 documented");
    }
}

/// The sample events (infra/make-events.py signs them in Python) verify in the handler: the signed
/// one reaches the tenant lookup (the local events' tenant does not exist: 404, 6001) at its own
/// time and is stale (401) a day later; the unknown entity is refused before the signature.
#[tokio::test]
async fn the_sample_events_are_signed_as_the_handler_verifies() {
    let env = aws().await;
    let api = RecordsApi::new(env.config.clone(), &env.clients);
    let event = |text: &str| lambda_http::request::from_str(text).expect("an API Gateway v2 event");
    let list = include_str!("../../../events/records-api/list-invoices.json");
    let ts: i64 = serde_json::from_str::<Value>(list).unwrap()["queryStringParameters"]["ts"].as_str().unwrap().parse().unwrap();
    let at = DateTime::from_timestamp(ts, 0).unwrap();
    for text in [list, include_str!("../../../events/records-api/connections.json")] {
        let (status, body) = send(&api, event(text), at).await;
        assert_eq!((status, body["error"]["code"].as_u64()), (404, Some(6001)), "{body}");
        let (status, _) = send(&api, event(text), at + Duration::days(1)).await;
        assert_eq!(status, 401);
    }
    let (status, body) = send(&api, event(include_str!("../../../events/records-api/unknown-entity.json")), at).await;
    assert_eq!((status, body["error"]["code"].as_u64()), (400, Some(4000)));
}
