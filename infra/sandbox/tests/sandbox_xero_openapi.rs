//! The sandbox's Xero answers validate against Xero's own OpenAPI specs (specs/xero, JSON copies of
//! XeroAPI/Xero-OpenAPI made by specs/convert.py).
//!
//! A small validator for the subset of OpenAPI 3.0/3.1 schema keywords those specs use: $ref (JSON
//! pointers into the same document), type (incl. 3.1 type arrays and 3.0 nullable), properties,
//! required, items, enum, const, allOf, oneOf, anyOf, minimum/maximum and formats uuid, date,
//! date-time and uri. Strict mode also rejects properties the schema does not define, so the sandbox
//! cannot invent fields; the few that real Xero sends but the spec omits are listed in `UNDOCUMENTED`.

mod common;

use std::collections::HashSet;

use common::*;
use serde_json::{json, Value};

/// Fields real Xero answers carry that the spec's schemas leave out: the response envelope (every
/// Accounting API answer has it; the spec's own examples show it) and DateString/DueDateString.
const UNDOCUMENTED: [&str; 6] = ["Id", "Status", "ProviderName", "DateTimeUTC", "DateString", "DueDateString"];

struct Spec {
    doc: Value,
}

impl Spec {
    fn load(name: &str) -> Spec {
        let path = format!("{}/specs/xero/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        Spec { doc: serde_json::from_str(&text).expect("spec JSON") }
    }

    fn resolve<'a>(&'a self, r: &str) -> &'a Value {
        let ptr = r.strip_prefix('#').unwrap_or_else(|| panic!("only local refs are used: {r}"));
        self.doc.pointer(ptr).unwrap_or_else(|| panic!("dangling $ref {r}"))
    }

    /// The JSON schema the spec names for an operation's response.
    fn response_schema(&self, path: &str, method: &str, status: &str) -> Value {
        let mut r = self.doc["paths"][path][method]["responses"][status].clone();
        if let Some(x) = r.get("$ref").and_then(Value::as_str) {
            r = self.resolve(x).clone();
        }
        r["content"]["application/json"]["schema"].clone()
    }

    fn schema(&self, name: &str) -> Value {
        json!({"$ref": format!("#/components/schemas/{name}")})
    }

    fn errors(&self, schema: &Value, v: &Value, strict: bool) -> Vec<String> {
        let mut errs = Vec::new();
        self.check(schema, v, "$", strict, &mut errs);
        errs
    }

    /// Property names a schema defines, through $ref and allOf.
    fn known(&self, s: &Value, out: &mut HashSet<String>) {
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            self.known(self.resolve(r), out);
        }
        if let Some(p) = s.get("properties").and_then(Value::as_object) {
            out.extend(p.keys().cloned());
        }
        for sub in s.get("allOf").and_then(Value::as_array).into_iter().flatten() {
            self.known(sub, out);
        }
    }

    fn check(&self, s: &Value, v: &Value, at: &str, strict: bool, errs: &mut Vec<String>) {
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            self.check(self.resolve(r), v, at, strict, errs);
        }
        if v.is_null() && s.get("nullable") == Some(&json!(true)) {
            return;
        }
        for sub in s.get("allOf").and_then(Value::as_array).into_iter().flatten() {
            // Strictness is judged once, below, against the union of all parts.
            self.check(sub, v, at, false, errs);
        }
        if let Some(alts) = s.get("oneOf").and_then(Value::as_array) {
            let ok = alts.iter().filter(|a| self.errors(a, v, false).is_empty()).count();
            if ok != 1 {
                errs.push(format!("{at}: matches {ok} of the oneOf alternatives, not exactly one ({v})"));
            }
        }
        if let Some(alts) = s.get("anyOf").and_then(Value::as_array) {
            if !alts.iter().any(|a| self.errors(a, v, false).is_empty()) {
                errs.push(format!("{at}: matches none of anyOf"));
            }
        }
        if let Some(t) = s.get("type") {
            let types: Vec<&str> = match t {
                Value::String(x) => vec![x.as_str()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            if !types.iter().any(|t| type_ok(t, v)) {
                errs.push(format!("{at}: expected {types:?}, got {v}"));
                return;
            }
        }
        if let Some(e) = s.get("enum").and_then(Value::as_array) {
            if !e.contains(v) {
                errs.push(format!("{at}: {v} is not one of the enum values"));
            }
        }
        if let Some(c) = s.get("const") {
            if c != v {
                errs.push(format!("{at}: {v} is not the constant {c}"));
            }
        }
        if let (Some(f), Some(x)) = (s.get("format").and_then(Value::as_str), v.as_str()) {
            if !format_ok(f, x) {
                errs.push(format!("{at}: {x:?} is not a valid {f}"));
            }
        }
        if let Some(n) = v.as_f64() {
            if s.get("minimum").and_then(Value::as_f64).is_some_and(|m| n < m)
                || s.get("maximum").and_then(Value::as_f64).is_some_and(|m| n > m)
            {
                errs.push(format!("{at}: {n} is out of range"));
            }
        }
        if let Some(obj) = v.as_object() {
            for r in s.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
                if !obj.contains_key(r) {
                    errs.push(format!("{at}: required property {r} is missing"));
                }
            }
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                for (k, ps) in props {
                    if let Some(x) = obj.get(k) {
                        self.check(ps, x, &format!("{at}.{k}"), strict, errs);
                    }
                }
            }
            let mut known = HashSet::new();
            self.known(s, &mut known);
            if strict && !known.is_empty() && s.get("additionalProperties").is_none() {
                for k in obj.keys().filter(|k| !known.contains(*k) && !UNDOCUMENTED.contains(&k.as_str())) {
                    errs.push(format!("{at}: property {k} is not in the schema"));
                }
            }
        }
        if let (Some(items), Some(arr)) = (s.get("items"), v.as_array()) {
            for (i, x) in arr.iter().enumerate() {
                self.check(items, x, &format!("{at}[{i}]"), strict, errs);
            }
        }
    }
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.as_f64().is_some_and(|n| n.fract() == 0.0),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "null" => v.is_null(),
        _ => true,
    }
}

fn is_msdate(x: &str) -> bool {
    let Some(inner) = x.strip_prefix("/Date(").and_then(|r| r.strip_suffix(")/")) else { return false };
    let digits = inner.split(['+', '-']).next().unwrap_or("");
    !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
}

fn format_ok(f: &str, x: &str) -> bool {
    match f {
        "uuid" => {
            let parts: Vec<&str> = x.split('-').collect();
            parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
                && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
        }
        // Xero writes date-times without a zone (2019-12-07T18:46:19.5165400) or as MS dates.
        "date-time" => {
            is_msdate(x)
                || chrono::NaiveDateTime::parse_from_str(x.trim_end_matches('Z'), "%Y-%m-%dT%H:%M:%S%.f").is_ok()
                || chrono::DateTime::parse_from_rfc3339(x).is_ok()
        }
        "date" => is_msdate(x) || chrono::NaiveDate::parse_from_str(x.get(..10).unwrap_or(x), "%Y-%m-%d").is_ok(),
        "uri" => url::Url::parse(x).is_ok(),
        _ => true,
    }
}

fn assert_valid(spec: &Spec, schema: &Value, v: &Value, what: &str) {
    let errs = spec.errors(schema, v, true);
    assert!(errs.is_empty(), "{what} does not match Xero's schema:\n{}\n{v}", errs.join("\n"));
}

#[tokio::test]
async fn accounting_lists_and_creates_match_the_spec() {
    let spec = Spec::load("xero_accounting.json");
    let sb = start().await;
    let b = &sb.base_url;
    let at = s(&xero_connect(b).await["access_token"]);
    for (path, name) in [("/Invoices", "Invoices"), ("/Contacts", "Contacts"), ("/Accounts", "Accounts"), ("/Payments", "Payments")] {
        let r = xero_get(b, &at, XERO_T1, &format!("{name}?page=1"), &[]).await;
        assert_eq!(r.status, 200);
        let v = r.json();
        assert!(!v[name].as_array().unwrap().is_empty(), "{name} has records to check");
        assert_valid(&spec, &spec.response_schema(path, "get", "200"), &v, name);
    }
    let r = xero_get(b, &at, XERO_T1, "Organisation", &[]).await;
    assert_valid(&spec, &spec.response_schema("/Organisation", "get", "200"), &r.json(), "Organisation");

    // Objects made through the API validate too (they pass through a different code path).
    let created = xero_put(
        b,
        &at,
        XERO_T1,
        "Invoices",
        &json!({"Type": "ACCREC", "Contact": {"Name": "Spec Check Ltd"}, "Status": "AUTHORISED", "DueDate": "2026-02-01",
            "LineItems": [{"Description": "x", "Quantity": 1.0, "UnitAmount": 10.0, "AccountCode": "200"}]}),
        &[],
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.text());
    assert_valid(&spec, &spec.response_schema("/Invoices", "put", "200"), &created.json(), "created invoice");
    let inv = created.json()["Invoices"][0].clone();
    let bank = xero_get(b, &at, XERO_T1, "Accounts", &[]).await.json()["Accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["Type"] == "BANK")
        .unwrap()
        .clone();
    let pay = xero_put(
        b,
        &at,
        XERO_T1,
        "Payments",
        &json!({"Invoice": {"InvoiceID": inv["InvoiceID"]}, "Account": {"AccountID": bank["AccountID"]}, "Amount": 4.0}),
        &[],
    )
    .await;
    assert_valid(&spec, &spec.response_schema("/Payments", "put", "200"), &pay.json(), "created payment");
    let acc = xero_put(b, &at, XERO_T1, "Accounts", &json!({"Code": "4999", "Name": "Spec Sales", "Type": "REVENUE"}), &[]).await;
    assert_valid(&spec, &spec.response_schema("/Accounts", "put", "200"), &acc.json(), "created account");

    // A validation error body.
    let err = xero_put(b, &at, XERO_T1, "Contacts", &json!({"Contacts": [{"EmailAddress": "nameless@example.com"}]}), &[]).await;
    assert_eq!(err.status, 400);
    let e = err.json();
    // Elements echo the submitted object, which the Element schema does not enumerate: not strict.
    let errs = spec.errors(&spec.response_schema("/Contacts", "put", "400"), &e, false);
    assert!(errs.is_empty(), "{errs:?}\n{e}");
    assert!(e["Elements"][0]["ValidationErrors"][0]["Message"].is_string());
    sb.shutdown().await;
}

/// Bills (ACCPAY invoices with several lines) and supplier contacts, seeded and made through the API.
#[tokio::test]
async fn bills_and_suppliers_match_the_spec() {
    let spec = Spec::load("xero_accounting.json");
    let sb = start().await;
    let b = &sb.base_url;
    control(b, "seed", json!({"provider": "xero", "org_id": XERO_T1, "entity": "bill", "count": 5, "lines": 4})).await;
    let at = s(&xero_connect(b).await["access_token"]);
    let r = xero_get(b, &at, XERO_T1, &format!("Invoices?page=1&where={}", enc("Type==\"ACCPAY\"")), &[]).await.json();
    let bills = r["Invoices"].as_array().unwrap();
    assert_eq!(bills.len(), 5);
    assert!(bills.iter().all(|x| x["LineItems"].as_array().unwrap().len() == 4 && x["LineItems"][1]["Item"].is_object()));
    assert_valid(&spec, &spec.response_schema("/Invoices", "get", "200"), &r, "bills");
    let one = xero_get(b, &at, XERO_T1, &format!("Invoices/{}", s(&bills[0]["InvoiceID"])), &[]).await.json();
    assert_valid(&spec, &spec.response_schema("/Invoices/{InvoiceID}", "get", "200"), &one, "one bill");
    let sup = xero_get(b, &at, XERO_T1, &format!("Contacts?where={}", enc("IsSupplier==true")), &[]).await.json();
    assert!(!sup["Contacts"].as_array().unwrap().is_empty());
    assert_valid(&spec, &spec.response_schema("/Contacts", "get", "200"), &sup, "suppliers");
    let made = xero_put(
        b,
        &at,
        XERO_T1,
        "Invoices",
        &json!({"Type": "ACCPAY", "Contact": {"ContactID": bills[0]["Contact"]["ContactID"]}, "Status": "AUTHORISED", "DueDate": "2026-02-01",
            "LineItems": [{"Description": "Toner", "Quantity": 2.0, "UnitAmount": 10.05, "AccountCode": "453", "TaxType": "INPUT", "TaxAmount": 1.66}]}),
        &[],
    )
    .await;
    assert_eq!(made.status, 200, "{}", made.text());
    assert_valid(&spec, &spec.response_schema("/Invoices", "put", "200"), &made.json(), "created bill");
    sb.shutdown().await;
}

#[tokio::test]
async fn connections_match_the_identity_spec() {
    let spec = Spec::load("xero-identity.json");
    let sb = start().await;
    let b = &sb.base_url;
    let at = s(&xero_connect(b).await["access_token"]);
    let v = get(&format!("{b}/xero/connections"), &[("Authorization", &format!("Bearer {at}"))]).await.json();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_valid(&spec, &spec.response_schema("/Connections", "get", "200"), &v, "connections");
    sb.shutdown().await;
}

#[tokio::test]
async fn webhook_payload_matches_the_webhooks_spec() {
    let spec = Spec::load("xero-webhooks.json");
    let sb = start().await;
    let b = &sb.base_url;
    for (entity, op) in [("Invoice", "CREATE"), ("Contact", "UPDATE")] {
        let mut body = json!({"provider": "xero", "target_url": "http://127.0.0.1:9/", "entity": entity, "operation": op});
        if op == "UPDATE" {
            let at = s(&xero_connect(b).await["access_token"]);
            body["entity_id"] = xero_get(b, &at, XERO_T1, "Contacts?page=1", &[]).await.json()["Contacts"][0]["ContactID"].clone();
        }
        let v = control(b, "webhooks/emit", body).await;
        let payload: Value = serde_json::from_str(v["payload"].as_str().unwrap()).unwrap();
        assert_valid(&spec, &spec.schema("WebhookEvent"), &payload, "webhook payload");
    }
    sb.shutdown().await;
}

/// The validator itself: it accepts Xero's own examples and rejects wrong types, bad enums, missing
/// required fields, bad formats and invented fields.
#[test]
fn validator_accepts_spec_examples_and_rejects_broken_answers() {
    let spec = Spec::load("xero_accounting.json");
    let example = |path: &str| spec.doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["example"].clone();
    for path in ["/Invoices", "/Contacts", "/Accounts"] {
        let errs = spec.errors(&spec.response_schema(path, "get", "200"), &example(path), false);
        assert!(errs.is_empty(), "Xero's own example for {path} fails the validator: {errs:?}");
    }
    // Xero's Payments example contradicts its own schema (BatchPayment.IsReconciled "false" and
    // TotalAmount "50.00" as strings): the validator must catch exactly that.
    let mut errs = spec.errors(&spec.response_schema("/Payments", "get", "200"), &example("/Payments"), false);
    errs.sort();
    assert_eq!(
        errs,
        vec![
            "$.Payments[0].BatchPayment.IsReconciled: expected [\"boolean\"], got \"false\"".to_string(),
            "$.Payments[0].BatchPayment.TotalAmount: expected [\"number\"], got \"50.00\"".to_string(),
        ]
    );
    let invoices = spec.schema("Invoices");
    let good = json!({"Invoices": [{"InvoiceID": "4a3f5f2e-6c1b-4b8e-9f0a-1d2c3b4a5e61", "Type": "ACCREC", "Total": 10.5,
        "Contact": {"ContactID": "8b7e6d5c-4f3a-4e2b-8c1d-0a9b8c7d6e52", "Name": "A"}, "UpdatedDateUTC": "/Date(1573755038314+0000)/"}],
        "pagination": {"page": 1, "pageSize": 100, "pageCount": 1, "itemCount": 1}});
    assert!(spec.errors(&invoices, &good, true).is_empty(), "{:?}", spec.errors(&invoices, &good, true));
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        spec.errors(&invoices, &v, true)
    };
    assert!(!broken(&|v| v["Invoices"][0]["Total"] = json!("10.5")).is_empty(), "number as string");
    assert!(!broken(&|v| v["Invoices"][0]["Type"] = json!("INVOICE")).is_empty(), "enum");
    assert!(!broken(&|v| v["Invoices"][0]["InvoiceID"] = json!("not-a-uuid")).is_empty(), "uuid format");
    assert!(!broken(&|v| v["Invoices"][0]["Contact"]["Name"] = json!(5)).is_empty(), "nested type");
    assert!(!broken(&|v| v["pagination"]["page"] = json!(1.5)).is_empty(), "integer");
    assert!(!broken(&|v| v["Invoices"] = json!({})).is_empty(), "array");
    assert!(!broken(&|v| v["Invoices"][0]["Colour"] = json!("red")).is_empty(), "invented field (strict)");
    // Required fields (the webhook schema has them), const/oneOf and minimum.
    let wh = Spec::load("xero-webhooks.json");
    let event = json!({"events": [{"resourceUrl": "https://api.xero.com/api.xro/2.0/Contacts/4a3f5f2e-6c1b-4b8e-9f0a-1d2c3b4a5e61",
        "resourceId": "4a3f5f2e-6c1b-4b8e-9f0a-1d2c3b4a5e61", "eventDateUtc": "2025-12-02T00:44:09.923", "eventType": "CREATE",
        "eventCategory": "CONTACT", "tenantId": "8b7e6d5c-4f3a-4e2b-8c1d-0a9b8c7d6e52", "tenantType": "ORGANISATION"}],
        "firstEventSequence": 1, "lastEventSequence": 1, "entropy": "ABCDEFGHIJKLMNOPQRST"});
    let s = wh.schema("WebhookEvent");
    assert!(wh.errors(&s, &event, true).is_empty(), "{:?}", wh.errors(&s, &event, true));
    let mut missing = event.clone();
    missing.as_object_mut().unwrap().remove("entropy");
    assert!(wh.errors(&s, &missing, true).iter().any(|e| e.contains("required property entropy")));
    let mut missing_inner = event.clone();
    missing_inner["events"][0].as_object_mut().unwrap().remove("tenantId");
    assert!(!wh.errors(&s, &missing_inner, true).is_empty());
    let mut bad_type = event.clone();
    bad_type["events"][0]["eventType"] = json!("DELETE");
    assert!(!wh.errors(&s, &bad_type, true).is_empty(), "oneOf of consts");
    let mut zero = event.clone();
    zero["firstEventSequence"] = json!(0);
    assert!(!wh.errors(&s, &zero, true).is_empty(), "minimum 1");
}

/// `PUT /Accounts` takes one Account object, per the spec's request schema; the sandbox refuses the
/// `{"Accounts": [..]}` wrapper the other entities take.
#[tokio::test]
async fn put_accounts_takes_a_single_account_object() {
    let spec = Spec::load("xero_accounting.json");
    let put = &spec.doc["paths"]["/Accounts"]["put"]["requestBody"]["content"]["application/json"]["schema"]["$ref"];
    assert_eq!(put, "#/components/schemas/Account");
    let sb = start().await;
    let b = &sb.base_url;
    let at = s(&xero_connect(b).await["access_token"]);
    let one = json!({"Code": "4998", "Name": "Single", "Type": "REVENUE"});
    for wrapped in [json!({"Accounts": [one.clone()]}), json!([one.clone()])] {
        let r = xero_put(b, &at, XERO_T1, "Accounts", &wrapped, &[]).await;
        assert_eq!(r.status, 400, "{wrapped}");
        assert_eq!(r.json()["Type"], "ValidationException");
    }
    let r = xero_put(b, &at, XERO_T1, "Accounts", &one, &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["Accounts"][0]["Code"], "4998");
    sb.shutdown().await;
}

/// The reports the sandbox computes from its ledger (trial balance, profit and loss, balance sheet)
/// are Xero's ReportWithRows, for books with bills, bank transactions and journals in them.
#[tokio::test]
async fn ledger_reports_match_the_spec() {
    let spec = Spec::load("xero_accounting.json");
    let sb = start().await;
    let b = &sb.base_url;
    let at = s(&xero_connect(b).await["access_token"]);
    for e in ["bill", "expense", "bank_transaction", "bank_transfer", "journal", "credit_note"] {
        control(b, "seed", json!({"provider": "xero", "org_id": XERO_T1, "entity": e, "count": 2})).await;
    }
    for (name, query) in
        [("TrialBalance", ""), ("TrialBalance", "?paymentsOnly=true"), ("ProfitAndLoss", "?fromDate=2000-01-01"), ("BalanceSheet", "")]
    {
        let r = xero_get(b, &at, XERO_T1, &format!("Reports/{name}{query}"), &[]).await;
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        let v = r.json();
        assert!(v["Reports"][0]["Rows"].as_array().is_some_and(|r| r.len() > 2), "{name} has rows: {v}");
        assert_valid(&spec, &spec.response_schema(&format!("/Reports/{name}"), "get", "200"), &v, name);
    }
    sb.shutdown().await;
}
