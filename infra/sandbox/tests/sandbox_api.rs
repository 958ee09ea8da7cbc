//! Accounting APIs: pagination, change filters, reads, creates with idempotency, error bodies.

mod common;

use std::collections::HashSet;

use common::*;
use serde_json::{json, Value};

// ---------------------------------------------------------------- QuickBooks

#[tokio::test]
async fn quickbooks_pages_with_startposition_and_maxresults() {
    let sb = start().await;
    let b = &sb.base_url;
    control(b, "seed", json!({"provider": "quickbooks", "entity": "Customer", "count": 247})).await;
    let (at, _, realm) = qbo_connect(b).await;
    let total = qbo_query(b, &at, &realm, "SELECT COUNT(*) FROM Customer").await.json()["QueryResponse"]["totalCount"].as_u64().unwrap();
    assert_eq!(total, 250, "3 seeded + 247");
    let mut seen = HashSet::new();
    let mut start = 1;
    loop {
        let r = qbo_query(b, &at, &realm, &format!("SELECT * FROM Customer STARTPOSITION {start} MAXRESULTS 100")).await;
        assert_eq!(r.status, 200);
        assert!(r.header("intuit_tid").is_some());
        let v = r.json();
        let page = v["QueryResponse"]["Customer"].as_array().cloned().unwrap_or_default();
        if page.is_empty() {
            assert_eq!(v["QueryResponse"], json!({}), "an empty page has an empty QueryResponse");
            break;
        }
        assert_eq!(v["QueryResponse"]["startPosition"], start);
        assert_eq!(v["QueryResponse"]["maxResults"], page.len());
        for c in &page {
            assert!(seen.insert(s(&c["Id"])), "no record twice across pages");
        }
        start += 100;
    }
    assert_eq!(seen.len(), 250);
    sb.shutdown().await;
}

#[tokio::test]
async fn quickbooks_last_updated_filter_and_cdc_see_changes_and_deletes() {
    let sb = start().await;
    let b = &sb.base_url;
    // Move on from the seed time first, then connect (tokens live an hour on the sandbox clock).
    control(b, "clock", json!({"advance_seconds": 3600})).await;
    let (at, _, realm) = qbo_connect(b).await;
    let cutoff = get(&format!("{b}/_sandbox/clock"), &[]).await.json()["now"].as_str().unwrap().to_string();
    control(b, "clock", json!({"advance_seconds": 10})).await;
    // Nothing changed after the cutoff yet.
    let q = format!("SELECT * FROM Invoice WHERE MetaData.LastUpdatedTime > '{cutoff}'");
    assert_eq!(qbo_query(b, &at, &realm, &q).await.json()["QueryResponse"], json!({}));
    // One invoice changes, one customer is created: both show up, nothing else does.
    let inv = qbo_query(b, &at, &realm, "SELECT * FROM Invoice MAXRESULTS 1").await.json()["QueryResponse"]["Invoice"][0].clone();
    let r = control(b, "webhooks/emit", json!({"provider": "quickbooks", "entity": "Invoice", "entity_id": inv["Id"], "operation": "Update", "target_url": "http://127.0.0.1:9/"})).await;
    assert!(r["error"].is_string(), "no receiver listens on port 9, the change still happened");
    let changed = qbo_query(b, &at, &realm, &q).await.json();
    let list = changed["QueryResponse"]["Invoice"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["Id"], inv["Id"]);
    assert_eq!(list[0]["SyncToken"], "1");
    // A customer created and the changed invoice deleted through the API (operation=delete, with its
    // current SyncToken): CDC shows the customer and the invoice as Deleted.
    let bearer = format!("Bearer {at}");
    let created = post_json(
        &format!("{b}/quickbooks/v3/company/{realm}/customer"),
        &[("Authorization", &bearer)],
        &json!({"DisplayName": "Temp Customer"}),
    )
    .await
    .json();
    let cust = created["Customer"].clone();
    let del = post_json(
        &format!("{b}/quickbooks/v3/company/{realm}/invoice?operation=delete"),
        &[("Authorization", &bearer)],
        &json!({"Id": inv["Id"], "SyncToken": "1"}),
    )
    .await;
    assert_eq!(del.status, 200, "{}", del.text());
    assert_eq!(del.json()["Invoice"]["status"], "Deleted");
    let cdc = get(
        &format!("{b}/quickbooks/v3/company/{realm}/cdc?entities=Invoice,Customer&changedSince={}", enc(&cutoff)),
        &[("Authorization", &bearer)],
    )
    .await;
    assert_eq!(cdc.status, 200, "{}", cdc.text());
    let v = cdc.json();
    let parts = v["CDCResponse"][0]["QueryResponse"].as_array().unwrap();
    let invoices = parts[0]["Invoice"].as_array().unwrap();
    assert_eq!(invoices.len(), 1);
    assert_eq!(invoices[0]["status"], "Deleted");
    assert_eq!(invoices[0]["Id"], inv["Id"]);
    let customers = parts[1]["Customer"].as_array().unwrap();
    assert_eq!(customers.len(), 1);
    assert_eq!(customers[0]["Id"], cust["Id"]);
    // CDC refuses to look back more than 30 days.
    let old =
        get(&format!("{b}/quickbooks/v3/company/{realm}/cdc?entities=Invoice&changedSince=2001-01-01"), &[("Authorization", &bearer)])
            .await;
    assert_eq!(old.status, 400);
    sb.shutdown().await;
}

#[tokio::test]
async fn quickbooks_requestid_makes_creates_idempotent() {
    let sb = start().await;
    let b = &sb.base_url;
    let (at, _, realm) = qbo_connect(b).await;
    let bearer = format!("Bearer {at}");
    let cust = qbo_query(b, &at, &realm, "SELECT * FROM Customer MAXRESULTS 1").await.json()["QueryResponse"]["Customer"][0].clone();
    let before = qbo_query(b, &at, &realm, "SELECT COUNT(*) FROM Invoice").await.json()["QueryResponse"]["totalCount"].as_u64().unwrap();
    let body = json!({"CustomerRef": {"value": cust["Id"]}, "Line": [{"Amount": 150.0, "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}]});
    let url = format!("{b}/quickbooks/v3/company/{realm}/invoice?requestid=req-42&minorversion=75");
    let first = post_json(&url, &[("Authorization", &bearer)], &body).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let second = post_json(&url, &[("Authorization", &bearer)], &body).await;
    assert_eq!(second.json()["Invoice"]["Id"], first.json()["Invoice"]["Id"]);
    assert_eq!(first.json()["Invoice"]["TotalAmt"], 150.0);
    assert_eq!(first.json()["Invoice"]["CustomerRef"]["name"], cust["DisplayName"]);
    let after = qbo_query(b, &at, &realm, "SELECT COUNT(*) FROM Invoice").await.json()["QueryResponse"]["totalCount"].as_u64().unwrap();
    assert_eq!(after, before + 1);
    // Without a requestid a retry creates a second invoice.
    let url2 = format!("{b}/quickbooks/v3/company/{realm}/invoice");
    post_json(&url2, &[("Authorization", &bearer)], &body).await;
    post_json(&url2, &[("Authorization", &bearer)], &body).await;
    let after2 = qbo_query(b, &at, &realm, "SELECT COUNT(*) FROM Invoice").await.json()["QueryResponse"]["totalCount"].as_u64().unwrap();
    assert_eq!(after2, before + 3);
    sb.shutdown().await;
}

#[tokio::test]
async fn quickbooks_validation_faults() {
    let sb = start().await;
    let b = &sb.base_url;
    let (at, _, realm) = qbo_connect(b).await;
    let bearer = format!("Bearer {at}");
    let url = |e: &str| format!("{b}/quickbooks/v3/company/{realm}/{e}");
    let r = post_json(&url("invoice"), &[("Authorization", &bearer)], &json!({"Line": []})).await;
    assert_eq!(r.status, 400);
    let v = r.json();
    assert_eq!(v["Fault"]["type"], "ValidationFault");
    assert_eq!(v["Fault"]["Error"][0]["code"], "2020");
    assert!(v["time"].is_string());
    let r = post_json(
        &url("invoice"),
        &[("Authorization", &bearer)],
        &json!({"CustomerRef": {"value": "99999"}, "Line": [{"Amount": 1, "DetailType": "SalesItemLineDetail"}]}),
    )
    .await;
    assert_eq!(r.json()["Fault"]["Error"][0]["code"], "2500");
    let name = qbo_query(b, &at, &realm, "SELECT * FROM Customer MAXRESULTS 1").await.json()["QueryResponse"]["Customer"][0]["DisplayName"]
        .clone();
    let r = post_json(&url("customer"), &[("Authorization", &bearer)], &json!({"DisplayName": name})).await;
    assert_eq!(r.json()["Fault"]["Error"][0]["code"], "6240");
    let r = qbo_query(b, &at, &realm, "SELECT * FROM Invoice WHERE").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["Fault"]["Error"][0]["code"], "4000");
    let r = get(&url("invoice/424242"), &[("Authorization", &bearer)]).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["Fault"]["Error"][0]["code"], "610");
    // Stale SyncToken on update.
    let c = qbo_query(b, &at, &realm, "SELECT * FROM Customer MAXRESULTS 1").await.json()["QueryResponse"]["Customer"][0].clone();
    let r = post_json(
        &url("customer"),
        &[("Authorization", &bearer)],
        &json!({"Id": c["Id"], "SyncToken": "7", "sparse": true, "CompanyName": "X"}),
    )
    .await;
    assert_eq!(r.json()["Fault"]["Error"][0]["code"], "5010");
    let r = post_json(
        &url("customer"),
        &[("Authorization", &bearer)],
        &json!({"Id": c["Id"], "SyncToken": c["SyncToken"], "sparse": true, "CompanyName": "X"}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["Customer"]["CompanyName"], "X");
    assert_eq!(r.json()["Customer"]["DisplayName"], c["DisplayName"], "sparse update keeps other fields");
    sb.shutdown().await;
}

#[tokio::test]
async fn quickbooks_where_in_like_and_payment_applies_to_invoice() {
    let sb = start().await;
    let b = &sb.base_url;
    let (at, _, realm) = qbo_connect(b).await;
    let bearer = format!("Bearer {at}");
    let r = qbo_query(b, &at, &realm, "SELECT * FROM Customer WHERE DisplayName LIKE 'Bill%'").await.json();
    let list = r["QueryResponse"]["Customer"].as_array().unwrap();
    assert!(list.iter().all(|c| c["DisplayName"].as_str().unwrap().starts_with("Bill")));
    assert_eq!(list.len(), 1);
    let ids = qbo_query(b, &at, &realm, "SELECT * FROM Invoice").await.json()["QueryResponse"]["Invoice"].as_array().unwrap().clone();
    let inv = ids[0].clone();
    let q = format!("SELECT * FROM Invoice WHERE Id IN ('{}', '424242')", s(&inv["Id"]));
    assert_eq!(qbo_query(b, &at, &realm, &q).await.json()["QueryResponse"]["Invoice"].as_array().unwrap().len(), 1);
    let total = inv["TotalAmt"].as_f64().unwrap();
    let pay = post_json(
        &format!("{b}/quickbooks/v3/company/{realm}/payment"),
        &[("Authorization", &bearer)],
        &json!({"CustomerRef": inv["CustomerRef"], "TotalAmt": 40.0, "Line": [{"Amount": 40.0, "LinkedTxn": [{"TxnId": inv["Id"], "TxnType": "Invoice"}]}]}),
    )
    .await;
    assert_eq!(pay.status, 200, "{}", pay.text());
    let after = get(&format!("{b}/quickbooks/v3/company/{realm}/invoice/{}", s(&inv["Id"])), &[("Authorization", &bearer)]).await.json();
    assert_eq!(after["Invoice"]["Balance"].as_f64().unwrap(), inv["Balance"].as_f64().unwrap() - 40.0);
    assert!(total > 40.0);
    sb.shutdown().await;
}

// ---------------------------------------------------------------- Xero

#[tokio::test]
async fn xero_pages_and_accounts_are_unpaged() {
    let sb = start().await;
    let b = &sb.base_url;
    control(b, "seed", json!({"provider": "xero", "org_id": XERO_T1, "entity": "Contacts", "count": 203})).await;
    let at = s(&xero_connect(b).await["access_token"]);
    let mut seen = HashSet::new();
    for page in 1..=3 {
        let r = xero_get(b, &at, XERO_T1, &format!("Contacts?page={page}&pageSize=100"), &[]).await;
        assert_eq!(r.status, 200);
        let v = r.json();
        assert_eq!(v["Status"], "OK");
        assert!(s(&v["DateTimeUTC"]).starts_with("/Date("));
        assert_eq!(v["pagination"], json!({"page": page, "pageSize": 100, "pageCount": 3, "itemCount": 206}));
        let n = v["Contacts"].as_array().unwrap().len();
        assert_eq!(n, if page < 3 { 100 } else { 6 });
        for c in v["Contacts"].as_array().unwrap() {
            assert!(seen.insert(s(&c["ContactID"])));
        }
    }
    assert_eq!(seen.len(), 206);
    let beyond = xero_get(b, &at, XERO_T1, "Contacts?page=4&pageSize=100", &[]).await.json();
    assert_eq!(beyond["Contacts"], json!([]));
    // Default page size is 100; more than 1000 is capped.
    assert_eq!(xero_get(b, &at, XERO_T1, "Contacts?page=1", &[]).await.json()["Contacts"].as_array().unwrap().len(), 100);
    assert_eq!(xero_get(b, &at, XERO_T1, "Contacts?page=1&pageSize=5000", &[]).await.json()["pagination"]["pageSize"], 1000);
    let acc = xero_get(b, &at, XERO_T1, "Accounts", &[]).await.json();
    assert!(acc.get("pagination").is_none());
    assert_eq!(acc["Accounts"].as_array().unwrap().len(), 4);
    // Tenants are separate.
    assert_eq!(xero_get(b, &at, XERO_T2, "Contacts?page=1", &[]).await.json()["pagination"]["itemCount"], 3);
    sb.shutdown().await;
}

#[tokio::test]
async fn xero_if_modified_since_and_where_filters() {
    let sb = start().await;
    let b = &sb.base_url;
    control(b, "clock", json!({"advance_seconds": 7200})).await;
    let at = s(&xero_connect(b).await["access_token"]);
    let now = get(&format!("{b}/_sandbox/clock"), &[]).await.json();
    let since = chrono::DateTime::parse_from_rfc3339(now["now"].as_str().unwrap()).unwrap().with_timezone(&chrono::Utc);
    control(b, "clock", json!({"advance_seconds": 5})).await;
    let http_date = since.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    let none = xero_get(b, &at, XERO_T1, "Invoices?page=1", &[("If-Modified-Since", &http_date)]).await.json();
    assert_eq!(none["Invoices"], json!([]));
    let inv = xero_get(b, &at, XERO_T1, "Invoices?page=1", &[]).await.json()["Invoices"][1].clone();
    control(b, "webhooks/emit", json!({"provider": "xero", "org_id": XERO_T1, "entity": "Invoice", "entity_id": inv["InvoiceID"], "operation": "UPDATE", "target_url": "http://127.0.0.1:9/"})).await;
    let iso = since.format("%Y-%m-%dT%H:%M:%S").to_string();
    for header in [http_date.as_str(), iso.as_str()] {
        let v = xero_get(b, &at, XERO_T1, "Invoices?page=1", &[("If-Modified-Since", header)]).await.json();
        let list = v["Invoices"].as_array().unwrap();
        assert_eq!(list.len(), 1, "{header}");
        assert_eq!(list[0]["InvoiceID"], inv["InvoiceID"]);
    }
    let contact_id = s(&inv["Contact"]["ContactID"]);
    let w = format!("Contact.ContactID==guid(\"{contact_id}\") AND Status==\"AUTHORISED\"");
    let v = xero_get(b, &at, XERO_T1, &format!("Invoices?page=1&where={}", enc(&w)), &[]).await.json();
    assert!(!v["Invoices"].as_array().unwrap().is_empty());
    assert!(v["Invoices"].as_array().unwrap().iter().all(|i| i["Contact"]["ContactID"] == contact_id.as_str()));
    let v = xero_get(b, &at, XERO_T1, &format!("Invoices?page=1&where={}", enc("Status==\"VOIDED\"")), &[]).await.json();
    assert_eq!(v["Invoices"], json!([]));
    let v = xero_get(b, &at, XERO_T1, &format!("Invoices?IDs={}", s(&inv["InvoiceID"])), &[]).await.json();
    assert_eq!(v["Invoices"].as_array().unwrap().len(), 1);
    sb.shutdown().await;
}

#[tokio::test]
async fn xero_idempotency_key_and_validation_errors() {
    let sb = start().await;
    let b = &sb.base_url;
    let at = s(&xero_connect(b).await["access_token"]);
    let count = |v: &Value| v["pagination"]["itemCount"].as_u64().unwrap();
    let before = count(&xero_get(b, &at, XERO_T1, "Contacts?page=1", &[]).await.json());
    let body = json!({"Contacts": [{"Name": "Idempotent Ltd", "EmailAddress": "a@b.c"}]});
    let first = xero_put(b, &at, XERO_T1, "Contacts", &body, &[("Idempotency-Key", "key-1")]).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let second = xero_put(b, &at, XERO_T1, "Contacts", &body, &[("Idempotency-Key", "key-1")]).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.json()["Contacts"][0]["ContactID"], first.json()["Contacts"][0]["ContactID"]);
    assert_eq!(count(&xero_get(b, &at, XERO_T1, "Contacts?page=1", &[]).await.json()), before + 1);
    // Without a key, the same name again is a validation error (names are unique).
    let dup = xero_put(b, &at, XERO_T1, "Contacts", &body, &[]).await;
    assert_eq!(dup.status, 400);
    let v = dup.json();
    assert_eq!(v["ErrorNumber"], 10);
    assert_eq!(v["Type"], "ValidationException");
    assert!(s(&v["Elements"][0]["ValidationErrors"][0]["Message"]).contains("already assigned"));
    // One bad element fails the whole batch.
    let batch = json!({"Contacts": [{"Name": "Good One"}, {"EmailAddress": "no-name@x.y"}]});
    assert_eq!(xero_put(b, &at, XERO_T1, "Contacts", &batch, &[]).await.status, 400);
    assert_eq!(count(&xero_get(b, &at, XERO_T1, "Contacts?page=1", &[]).await.json()), before + 1);
    sb.shutdown().await;
}

#[tokio::test]
async fn xero_invoice_and_payment_create_update_totals() {
    let sb = start().await;
    let b = &sb.base_url;
    let at = s(&xero_connect(b).await["access_token"]);
    let inv = json!({"Type": "ACCREC", "Contact": {"Name": "Brand New Customer"}, "Status": "AUTHORISED", "Date": "2026-01-15",
        "LineItems": [{"Description": "Work", "Quantity": 2.0, "UnitAmount": 50.0, "AccountCode": "200"}]});
    let r = xero_put(b, &at, XERO_T1, "Invoices", &inv, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let created = r.json()["Invoices"][0].clone();
    assert_eq!(created["Total"], 100.0);
    assert_eq!(created["AmountDue"], 100.0);
    assert!(s(&created["Date"]).starts_with("/Date("));
    // The contact was created by name.
    let cid = s(&created["Contact"]["ContactID"]);
    assert_eq!(xero_get(b, &at, XERO_T1, &format!("Contacts/{cid}"), &[]).await.json()["Contacts"][0]["Name"], "Brand New Customer");
    let account = xero_get(b, &at, XERO_T1, "Accounts", &[]).await.json()["Accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["Type"] == "BANK")
        .unwrap()
        .clone();
    let pay = json!({"Invoice": {"InvoiceID": created["InvoiceID"]}, "Account": {"Code": account["Code"]}, "Amount": 100.0});
    let r = xero_put(b, &at, XERO_T1, "Payments", &pay, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let after = xero_get(b, &at, XERO_T1, &format!("Invoices/{}", s(&created["InvoiceID"])), &[]).await.json()["Invoices"][0].clone();
    assert_eq!(after["Status"], "PAID");
    assert_eq!(after["AmountDue"], 0.0);
    // Paying a paid invoice is refused.
    assert_eq!(xero_put(b, &at, XERO_T1, "Payments", &pay, &[]).await.status, 400);
    sb.shutdown().await;
}

#[tokio::test]
async fn quickbooks_and_xero_answer_xml_unless_json_is_asked_for() {
    let sb = start().await;
    let b = &sb.base_url;
    let (at, _, realm) = qbo_connect(b).await;
    let url = format!("{b}/quickbooks/v3/company/{realm}/query?query={}", enc("SELECT * FROM Invoice"));
    let xml = get(&url, &[("Authorization", &format!("Bearer {at}")), ("Accept", "*/*")]).await;
    assert_eq!(xml.status, 200);
    assert!(xml.header("content-type").unwrap().starts_with("application/xml"));
    assert!(xml.text().starts_with("<?xml"));
    let json = get(&url, &[("Authorization", &format!("Bearer {at}")), ("Accept", "application/json")]).await;
    assert!(json.json()["QueryResponse"]["Invoice"].is_array());
    let xat = s(&xero_connect(b).await["access_token"]);
    let bearer = format!("Bearer {xat}");
    let xml = get(
        &format!("{b}/xero/api.xro/2.0/Contacts?page=1"),
        &[("Authorization", &bearer), ("xero-tenant-id", XERO_T1), ("Accept", "text/html")],
    )
    .await;
    assert!(xml.text().starts_with("<?xml"));
    // OAuth endpoints and Zoho always answer JSON.
    let (v, _) = zoho_connect(b, "us").await;
    let z = get(
        &format!("{}/books/v3/invoices?organization_id=700000001", s(&v["api_domain"])),
        &[("Authorization", &format!("Zoho-oauthtoken {}", s(&v["access_token"]))), ("Accept", "*/*")],
    )
    .await;
    assert_eq!(z.json()["code"], 0);
    sb.shutdown().await;
}

#[tokio::test]
async fn xero_auth_errors() {
    let sb = start().await;
    let b = &sb.base_url;
    let at = s(&xero_connect(b).await["access_token"]);
    let r = get(&format!("{b}/xero/api.xro/2.0/Invoices"), &[("Authorization", &format!("Bearer {at}"))]).await;
    assert_eq!(r.status, 403, "no xero-tenant-id");
    let r = xero_get(b, &at, "00000000-0000-0000-0000-000000000000", "Invoices", &[]).await;
    assert_eq!(r.status, 403);
    let r = xero_get(b, "not-a-token", XERO_T1, "Invoices", &[]).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["Title"], "Unauthorized");
    control(b, "clock", json!({"advance_seconds": 1801})).await;
    let r = xero_get(b, &at, XERO_T1, "Invoices", &[]).await;
    assert_eq!(r.status, 401);
    assert!(s(&r.json()["Detail"]).starts_with("TokenExpired"));
    let r = xero_get(b, &s(&xero_connect(b).await["access_token"]), XERO_T1, "Invoices/00000000-0000-0000-0000-000000000001", &[]).await;
    assert_eq!(r.status, 404);
    sb.shutdown().await;
}

// ---------------------------------------------------------------- Zoho

#[tokio::test]
async fn zoho_pages_with_has_more_page_and_lists_are_partial() {
    let sb = start().await;
    let b = &sb.base_url;
    control(b, "seed", json!({"provider": "zoho", "org_id": "700000001", "entity": "invoices", "count": 400})).await;
    let (v, _) = zoho_connect(b, "us").await;
    let (at, api) = (s(&v["access_token"]), s(&v["api_domain"]));
    let mut seen = HashSet::new();
    let mut page = 1;
    loop {
        let r = zoho_get(&api, &at, &format!("invoices?organization_id=700000001&page={page}&per_page=200")).await;
        assert_eq!(r.status, 200);
        let v = r.json();
        assert_eq!(v["code"], 0);
        assert_eq!(v["page_context"]["page"], page);
        assert_eq!(v["page_context"]["per_page"], 200);
        for i in v["invoices"].as_array().unwrap() {
            assert!(i.get("line_items").is_none(), "list items are partial");
            assert!(seen.insert(s(&i["invoice_id"])));
        }
        if !v["page_context"]["has_more_page"].as_bool().unwrap() {
            break;
        }
        page += 1;
    }
    assert_eq!(seen.len(), 403);
    assert_eq!(page, 3);
    let id = seen.iter().next().unwrap();
    let full = zoho_get(&api, &at, &format!("invoices/{id}?organization_id=700000001")).await.json();
    assert!(full["invoice"]["line_items"].is_array());
    // per_page above 200 is capped.
    let v = zoho_get(&api, &at, "invoices?organization_id=700000001&per_page=500").await.json();
    assert_eq!(v["page_context"]["per_page"], 200);
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_last_modified_time_filter() {
    let sb = start().await;
    let b = &sb.base_url;
    let (v, _) = zoho_connect(b, "us").await;
    let (at, api) = (s(&v["access_token"]), s(&v["api_domain"]));
    control(b, "clock", json!({"advance_seconds": 600})).await;
    let now = get(&format!("{b}/_sandbox/clock"), &[]).await.json();
    let since = chrono::DateTime::parse_from_rfc3339(now["now"].as_str().unwrap()).unwrap();
    let filter = enc(&since.format("%Y-%m-%dT%H:%M:%S%z").to_string());
    let list = zoho_get(&api, &at, &format!("contacts?organization_id=700000001&last_modified_time={filter}")).await.json();
    assert_eq!(list["contacts"], json!([]));
    let created = zoho_post(&api, &at, "contacts?organization_id=700000001", &json!({"contact_name": "Fresh Co"})).await;
    assert_eq!(created.status, 201);
    let list = zoho_get(&api, &at, &format!("contacts?organization_id=700000001&last_modified_time={filter}")).await.json();
    assert_eq!(list["contacts"].as_array().unwrap().len(), 1);
    assert_eq!(list["contacts"][0]["contact_name"], "Fresh Co");
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_has_no_idempotency_and_answers_with_codes() {
    let sb = start().await;
    let b = &sb.base_url;
    let (v, _) = zoho_connect(b, "us").await;
    let (at, api) = (s(&v["access_token"]), s(&v["api_domain"]));
    let contact = zoho_get(&api, &at, "contacts?organization_id=700000001").await.json()["contacts"][0].clone();
    let body = json!({"customer_id": contact["contact_id"], "line_items": [{"name": "Work", "rate": 10.0, "quantity": 3.0}]});
    let a = zoho_post(&api, &at, "invoices?organization_id=700000001", &body).await;
    let b2 = zoho_post(&api, &at, "invoices?organization_id=700000001", &body).await;
    assert_eq!(a.status, 201);
    assert_eq!(a.json()["code"], 0);
    assert_eq!(a.json()["invoice"]["total"], 30.0);
    assert_ne!(a.json()["invoice"]["invoice_id"], b2.json()["invoice"]["invoice_id"], "a retried POST creates twice");
    let r = zoho_post(&api, &at, "invoices?organization_id=700000001", &json!({"line_items": []})).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["code"], 4);
    let r = zoho_get(&api, &at, "invoices/999?organization_id=700000001").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json(), json!({"code": 1002, "message": "Invoice does not exist."}));
    let r = zoho_get(&api, &at, "invoices").await;
    assert_eq!(r.status, 400, "organization_id is required");
    let r = zoho_get(&api, &at, "invoices?organization_id=700000002").await;
    assert_eq!(r.status, 401, "an org in another data centre is not this user's");
    assert_eq!(r.json()["code"], 57);
    let r = get(&format!("{api}/books/v3/invoices?organization_id=700000001"), &[("Authorization", &format!("Bearer {at}"))]).await;
    assert_eq!(r.status, 401, "Zoho wants the Zoho-oauthtoken scheme");
    // Delete, then it is gone.
    let id = s(&a.json()["invoice"]["invoice_id"]);
    let r = call(
        "DELETE",
        &format!("{api}/books/v3/invoices/{id}?organization_id=700000001"),
        &[("Authorization", &format!("Zoho-oauthtoken {at}"))],
        b"",
    )
    .await;
    assert_eq!(r.json()["code"], 0);
    assert_eq!(zoho_get(&api, &at, &format!("invoices/{id}?organization_id=700000001")).await.status, 404);
    sb.shutdown().await;
}

#[tokio::test]
async fn seeded_records_in_provider_format_are_served_back() {
    let sb = start().await;
    let b = &sb.base_url;
    let r = control(
        b,
        "seed",
        json!({"provider": "quickbooks", "org_id": "5550001", "entity": "Customer",
        "records": [{"DisplayName": "Seeded One", "Active": true}, {"Id": "77", "DisplayName": "Seeded Two"}]}),
    )
    .await;
    assert_eq!(r["created_org"], true);
    assert_eq!(r["ids"].as_array().unwrap().len(), 2);
    assert_eq!(r["ids"][1], "77");
    let cb = qbo_code(b, "&sandbox_realm=5550001").await;
    let at = s(&qbo_exchange(b, &cb["code"]).await.json()["access_token"]);
    let v = qbo_query(b, &at, "5550001", "SELECT * FROM Customer").await.json();
    let names: Vec<String> = v["QueryResponse"]["Customer"].as_array().unwrap().iter().map(|c| s(&c["DisplayName"])).collect();
    assert_eq!(names, vec!["Seeded One", "Seeded Two"]);
    assert!(v["QueryResponse"]["Customer"][1]["MetaData"]["LastUpdatedTime"].is_string());
    sb.shutdown().await;
}
