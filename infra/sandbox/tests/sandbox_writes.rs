//! Changes to existing records per provider (update, void, delete) in each provider's wire format,
//! with the refusals each provider makes: QuickBooks' SyncToken lock and unsupported operations,
//! Xero's status transitions, Zoho's void and delete rules; and replays of a repeated request key.

mod common;

use common::*;
use serde_json::{json, Value};

// ---------------------------------------------------------------- QuickBooks

struct Qbo {
    base: String,
    bearer: String,
    realm: String,
    at: String,
}

impl Qbo {
    async fn connect(base: &str) -> Qbo {
        let (at, _, realm) = qbo_connect(base).await;
        Qbo { base: base.to_string(), bearer: format!("Bearer {at}"), realm, at }
    }

    /// POST /{entity}?{query} with a JSON body.
    async fn post(&self, entity_and_query: &str, body: &Value) -> Resp {
        post_json(
            &format!("{}/quickbooks/v3/company/{}/{entity_and_query}", self.base, self.realm),
            &[("Authorization", &self.bearer)],
            body,
        )
        .await
    }

    async fn read(&self, entity: &str, id: &Value) -> Value {
        let r = get(
            &format!("{}/quickbooks/v3/company/{}/{entity}/{}", self.base, self.realm, s(id)),
            &[("Authorization", &self.bearer), ("Accept", "application/json")],
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }

    async fn first(&self, entity: &str) -> Value {
        qbo_query(&self.base, &self.at, &self.realm, &format!("SELECT * FROM {entity} MAXRESULTS 1")).await.json()["QueryResponse"][entity]
            [0]
        .clone()
    }
}

fn fault_code(r: &Resp) -> String {
    s(&r.json()["Fault"]["Error"][0]["code"])
}

#[tokio::test]
async fn quickbooks_sparse_and_full_updates_bump_sync_token_and_last_updated_time() {
    let sb = start().await;
    let b = &sb.base_url;
    let q = Qbo::connect(b).await;
    let inv = q.first("Invoice").await;
    control(b, "clock", json!({"advance_seconds": 60})).await;
    let r = q.post("invoice", &json!({"Id": inv["Id"], "SyncToken": inv["SyncToken"], "sparse": true, "PrivateNote": "call first"})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let up = r.json()["Invoice"].clone();
    assert_eq!(up["SyncToken"], "1");
    assert_eq!(up["PrivateNote"], "call first");
    assert_ne!(up["MetaData"]["LastUpdatedTime"], inv["MetaData"]["LastUpdatedTime"]);
    assert_eq!(up["MetaData"]["CreateTime"], inv["MetaData"]["CreateTime"]);
    // A sparse update keeps what it does not name.
    assert_eq!(up["TotalAmt"], inv["TotalAmt"]);
    assert_eq!(up["Line"], inv["Line"]);
    assert_eq!(q.read("invoice", &inv["Id"]).await["Invoice"], up);

    // A full update replaces the object: new lines, totals worked out again, the note gone.
    let full = json!({"Id": inv["Id"], "SyncToken": "1", "CustomerRef": inv["CustomerRef"],
        "Line": [{"Amount": 40.0, "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "TaxCodeRef": {"value": "NON"}}},
                 {"Amount": 60.5, "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": {"ItemRef": {"value": "2"}, "TaxCodeRef": {"value": "NON"}}}]});
    let r = q.post("invoice", &full).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let up2 = r.json()["Invoice"].clone();
    assert_eq!(up2["SyncToken"], "2");
    assert_eq!(up2["TotalAmt"], 100.5);
    assert_eq!(up2["Balance"], 100.5);
    assert!(up2.get("PrivateNote").is_none(), "a full update clears what it leaves out: {up2}");
    assert_eq!(up2["Line"].as_array().unwrap().last().unwrap()["DetailType"], "SubTotalLineDetail");

    // A customer's full update: the name changes, FullyQualifiedName follows.
    let cust = q.first("Customer").await;
    let mut body = cust.clone();
    body["DisplayName"] = json!("Renamed Customer");
    body.as_object_mut().unwrap().remove("sparse");
    let r = q.post("customer", &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["Customer"]["FullyQualifiedName"], "Renamed Customer");
    assert_eq!(r.json()["Customer"]["SyncToken"], "1");
    // Another customer cannot take that name.
    let other = qbo_query(b, &q.at, &q.realm, "SELECT * FROM Customer STARTPOSITION 2 MAXRESULTS 1").await.json()["QueryResponse"]
        ["Customer"][0]
        .clone();
    let r = q
        .post("customer", &json!({"Id": other["Id"], "SyncToken": other["SyncToken"], "sparse": true, "DisplayName": "renamed customer"}))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(fault_code(&r), "6240");
    sb.shutdown().await;
}

#[tokio::test]
async fn quickbooks_stale_sync_token_is_refused_and_changes_nothing() {
    let sb = start().await;
    let q = Qbo::connect(&sb.base_url).await;
    let inv = q.first("Invoice").await;
    assert_eq!(q.post("invoice", &json!({"Id": inv["Id"], "SyncToken": "0", "sparse": true, "Memo": "first"})).await.status, 200);
    for (query, body) in [
        ("invoice", json!({"Id": inv["Id"], "SyncToken": "0", "sparse": true, "PrivateNote": "second"})),
        ("invoice?operation=void", json!({"Id": inv["Id"], "SyncToken": "0"})),
        ("invoice?operation=delete", json!({"Id": inv["Id"], "SyncToken": "0"})),
    ] {
        let r = q.post(query, &body).await;
        assert_eq!(r.status, 400, "{query}: {}", r.text());
        assert_eq!(r.json()["Fault"]["type"], "ValidationFault");
        assert_eq!(fault_code(&r), "5010", "{query}");
    }
    // Without a SyncToken nothing changes either.
    let r = q.post("invoice", &json!({"Id": inv["Id"], "sparse": true, "PrivateNote": "third"})).await;
    assert_eq!(r.status, 400);
    let now = q.read("invoice", &inv["Id"]).await["Invoice"].clone();
    assert_eq!(now["SyncToken"], "1");
    assert!(now.get("PrivateNote").is_none());
    assert_eq!(now["TotalAmt"], inv["TotalAmt"]);
    sb.shutdown().await;
}

#[tokio::test]
async fn quickbooks_void_zeroes_an_invoice_and_notes_it_and_unsupported_operations_are_refused() {
    let sb = start().await;
    let b = &sb.base_url;
    let q = Qbo::connect(b).await;
    let inv = q.first("Invoice").await;
    assert!(inv["TotalAmt"].as_f64().unwrap() > 0.0);
    assert_eq!(q.post("invoice", &json!({"Id": inv["Id"], "SyncToken": "0", "sparse": true, "PrivateNote": "RC 93"})).await.status, 200);
    let r = q.post("invoice?operation=void", &json!({"Id": inv["Id"], "SyncToken": "1"})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json()["Invoice"].clone();
    assert_eq!(v["SyncToken"], "2");
    assert_eq!(v["TotalAmt"], 0);
    assert_eq!(v["Balance"], 0);
    assert_eq!(v["PrivateNote"], "Voided - RC 93");
    assert!(v["Line"].as_array().unwrap().iter().all(|l| l["Amount"] == 0), "{v}");
    // The voided invoice is still there (a void is not a delete).
    assert_eq!(q.read("invoice", &inv["Id"]).await["Invoice"]["TotalAmt"], 0);

    // QuickBooks has no void for bills and no delete for customers, vendors or accounts.
    control(b, "seed", json!({"provider": "quickbooks", "entity": "bill", "count": 1})).await;
    let bill = q.first("Bill").await;
    let r = q.post("bill?operation=void", &json!({"Id": bill["Id"], "SyncToken": bill["SyncToken"]})).await;
    assert_eq!((r.status, fault_code(&r)), (400, "500".to_string()), "{}", r.text());
    let cust = q.first("Customer").await;
    let r = q.post("customer?operation=delete", &json!({"Id": cust["Id"], "SyncToken": cust["SyncToken"]})).await;
    assert_eq!((r.status, fault_code(&r)), (400, "500".to_string()), "{}", r.text());
    assert_eq!(s(&r.json()["Fault"]["Error"][0]["Detail"]), "Operation Delete is not supported.");
    // A bill's lines change by a sparse update: totals again, no subtotal line (bills have none).
    let lines = json!([{"Amount": 20.0, "DetailType": "AccountBasedExpenseLineDetail",
        "AccountBasedExpenseLineDetail": {"AccountRef": {"value": "1"}, "TaxCodeRef": {"value": "NON"}}}]);
    let r = q.post("bill", &json!({"Id": bill["Id"], "SyncToken": bill["SyncToken"], "sparse": true, "Line": lines})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let up = r.json()["Bill"].clone();
    assert_eq!((up["TotalAmt"].clone(), up["Balance"].clone(), up["SyncToken"].clone()), (json!(20.0), json!(20.0), json!("1")));
    assert_eq!(up["Line"].as_array().unwrap().len(), 1);
    assert_eq!(up["VendorRef"], bill["VendorRef"]);
    // A vendor without open bills can be made inactive once the bill is gone.
    let r = q.post("bill?operation=delete", &json!({"Id": bill["Id"], "SyncToken": "1"})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["Bill"]["status"], "Deleted");
    let vendor = q.read("vendor", &bill["VendorRef"]["value"]).await["Vendor"].clone();
    let r = q.post("vendor", &json!({"Id": vendor["Id"], "SyncToken": vendor["SyncToken"], "sparse": true, "Active": false})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["Vendor"]["Active"], false);
    sb.shutdown().await;
}

#[tokio::test]
async fn quickbooks_unknown_ids_and_missing_ids() {
    let sb = start().await;
    let q = Qbo::connect(&sb.base_url).await;
    let r = q.post("invoice", &json!({"Id": "999999", "SyncToken": "0", "sparse": true})).await;
    assert_eq!((r.status, fault_code(&r)), (400, "610".to_string()));
    let r = q.post("invoice?operation=void", &json!({"SyncToken": "0"})).await;
    assert_eq!((r.status, fault_code(&r)), (400, "2020".to_string()));
    let r = q.post("invoice?operation=frobnicate", &json!({"Id": "1", "SyncToken": "0"})).await;
    assert_eq!(r.status, 400);
    sb.shutdown().await;
}

#[tokio::test]
async fn quickbooks_customer_goes_inactive_only_without_open_balance() {
    let sb = start().await;
    let q = Qbo::connect(&sb.base_url).await;
    let inv = q.first("Invoice").await;
    let cid = inv["CustomerRef"]["value"].clone();
    let cust = q.read("customer", &cid).await["Customer"].clone();
    let r = q.post("customer", &json!({"Id": cid, "SyncToken": cust["SyncToken"], "sparse": true, "Active": false})).await;
    assert_eq!(r.status, 400, "a customer with open invoices stays active: {}", r.text());
    assert_eq!(q.read("customer", &cid).await["Customer"]["Active"], true);
    // A new customer without invoices can be made inactive.
    let created = q.post("customer", &json!({"DisplayName": "Short Lived"})).await.json()["Customer"].clone();
    let r = q.post("customer", &json!({"Id": created["Id"], "SyncToken": created["SyncToken"], "sparse": true, "Active": false})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["Customer"]["Active"], false);
    assert_eq!(r.json()["Customer"]["SyncToken"], "1");
    sb.shutdown().await;
}

#[tokio::test]
async fn quickbooks_payment_void_gives_the_invoice_its_balance_back() {
    let sb = start().await;
    let q = Qbo::connect(&sb.base_url).await;
    let inv = q.first("Invoice").await;
    let pay = json!({"CustomerRef": inv["CustomerRef"], "TotalAmt": 10.0,
        "Line": [{"Amount": 10.0, "LinkedTxn": [{"TxnId": inv["Id"], "TxnType": "Invoice"}]}]});
    let p = q.post("payment", &pay).await.json()["Payment"].clone();
    let paid = q.read("invoice", &inv["Id"]).await["Invoice"].clone();
    assert_eq!(paid["Balance"].as_f64().unwrap(), inv["Balance"].as_f64().unwrap() - 10.0);
    // A paid invoice is neither voided nor deleted by the sandbox (see writes/quickbooks.rs).
    assert_eq!(q.post("invoice?operation=void", &json!({"Id": inv["Id"], "SyncToken": paid["SyncToken"]})).await.status, 400);
    // operation=void is not how payments are voided.
    assert_eq!(q.post("payment?operation=void", &json!({"Id": p["Id"], "SyncToken": p["SyncToken"]})).await.status, 400);
    let r = q.post("payment?operation=update&include=void", &json!({"Id": p["Id"], "SyncToken": p["SyncToken"], "sparse": true})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json()["Payment"].clone();
    assert_eq!(v["TotalAmt"], 0);
    assert_eq!(v["PrivateNote"], "Voided");
    assert_eq!(v["SyncToken"], "1");
    assert_eq!(q.read("invoice", &inv["Id"]).await["Invoice"]["Balance"], inv["Balance"]);
    sb.shutdown().await;
}

#[tokio::test]
async fn quickbooks_requestid_replays_an_update_and_a_delete() {
    let sb = start().await;
    let q = Qbo::connect(&sb.base_url).await;
    let inv = q.first("Invoice").await;
    let body = json!({"Id": inv["Id"], "SyncToken": "0", "sparse": true, "PrivateNote": "once"});
    let first = q.post("invoice?requestid=upd-1", &body).await;
    assert_eq!(first.status, 200);
    let again = q.post("invoice?requestid=upd-1", &body).await;
    assert_eq!(again.status, 200, "the replay is the first answer, not a stale-object fault: {}", again.text());
    assert_eq!(again.json(), first.json());
    assert_eq!(q.read("invoice", &inv["Id"]).await["Invoice"]["SyncToken"], "1", "acted once");
    // Without the requestid the same body is stale now.
    assert_eq!(q.post("invoice", &body).await.status, 400);
    let del = json!({"Id": inv["Id"], "SyncToken": "1"});
    let d1 = q.post("invoice?operation=delete&requestid=del-1", &del).await;
    assert_eq!(d1.status, 200);
    let d2 = q.post("invoice?operation=delete&requestid=del-1", &del).await;
    assert_eq!((d2.status, d2.json()), (200, d1.json()));
    sb.shutdown().await;
}

// ---------------------------------------------------------------- Xero

async fn xero_post(base: &str, at: &str, path: &str, body: &Value, extra: &[(&str, &str)]) -> Resp {
    let bearer = format!("Bearer {at}");
    let mut h = vec![("Authorization", bearer.as_str()), ("xero-tenant-id", XERO_T1)];
    h.extend_from_slice(extra);
    post_json(&format!("{base}/xero/api.xro/2.0/{path}"), &h, body).await
}

/// A new ACCREC invoice for 100.00 in `status`.
async fn xero_invoice(base: &str, at: &str, status: &str) -> Value {
    let inv = json!({"Type": "ACCREC", "Contact": {"Name": "Writes Customer"}, "Status": status,
        "LineItems": [{"Description": "Work", "Quantity": 2.0, "UnitAmount": 50.0, "AccountCode": "200"}]});
    let r = xero_put(base, at, XERO_T1, "Invoices", &inv, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["Invoices"][0].clone()
}

fn xero_message(r: &Resp) -> String {
    let v = r.json();
    assert_eq!(v["Type"], "ValidationException", "{v}");
    assert_eq!(v["ErrorNumber"], 10);
    v["Elements"][0]["ValidationErrors"][0]["Message"].as_str().map(str::to_string).unwrap_or_else(|| s(&v["Message"]))
}

#[tokio::test]
async fn xero_update_by_id_and_in_the_envelope_sets_updated_date() {
    let sb = start().await;
    let b = &sb.base_url;
    let at = s(&xero_connect(b).await["access_token"]);
    let inv = xero_invoice(b, &at, "DRAFT").await;
    let id = s(&inv["InvoiceID"]);
    control(b, "clock", json!({"advance_seconds": 5})).await;
    // POST /Invoices/{id} with the envelope.
    let r = xero_post(
        b,
        &at,
        &format!("Invoices/{id}"),
        &json!({"Invoices": [{"Reference": "PO-7",
        "LineItems": [{"Description": "More work", "Quantity": 3.0, "UnitAmount": 50.0, "AccountCode": "200"}]}]}),
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let up = r.json()["Invoices"][0].clone();
    assert_eq!(up["InvoiceID"], inv["InvoiceID"]);
    assert_eq!(up["Reference"], "PO-7");
    assert_eq!(up["Total"], 150.0);
    assert_eq!(up["AmountDue"], 150.0);
    assert_ne!(up["UpdatedDateUTC"], inv["UpdatedDateUTC"]);
    assert!(s(&up["UpdatedDateUTC"]).starts_with("/Date("));
    // POST /Invoices with the id in the element, as one object.
    let r = xero_post(b, &at, "Invoices", &json!({"InvoiceID": id, "Status": "AUTHORISED"}), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["Invoices"][0]["Status"], "AUTHORISED");
    let read = xero_get(b, &at, XERO_T1, &format!("Invoices/{id}"), &[]).await.json()["Invoices"][0].clone();
    assert_eq!((read["Status"].clone(), read["Reference"].clone()), (json!("AUTHORISED"), json!("PO-7")));
    // A PUT with an existing id does not update; a URL and a body naming different ids is refused.
    assert_eq!(xero_put(b, &at, XERO_T1, "Invoices", &json!({"InvoiceID": id, "Reference": "x"}), &[]).await.status, 400);
    let other = xero_invoice(b, &at, "DRAFT").await;
    let r = xero_post(b, &at, &format!("Invoices/{id}"), &json!({"InvoiceID": other["InvoiceID"], "Reference": "x"}), &[]).await;
    assert_eq!(r.status, 400);
    // An unknown id is a validation error too.
    let r = xero_post(b, &at, "Invoices/00000000-0000-0000-0000-000000000000", &json!({"Reference": "x"}), &[]).await;
    assert_eq!(r.status, 400, "{}", r.text());
    sb.shutdown().await;
}

#[tokio::test]
async fn xero_status_transitions_delete_void_and_refuse_what_xero_refuses() {
    let sb = start().await;
    let b = &sb.base_url;
    let at = s(&xero_connect(b).await["access_token"]);
    let set = |id: Value, status: &'static str| json!({"Invoices": [{"InvoiceID": id, "Status": status}]});
    // DRAFT and SUBMITTED are deleted, not voided.
    let draft = xero_invoice(b, &at, "DRAFT").await;
    let r = xero_post(b, &at, "Invoices", &set(draft["InvoiceID"].clone(), "VOIDED"), &[]).await;
    assert_eq!((r.status, xero_message(&r)), (400, "Invoice not of valid status for modification".to_string()));
    let r = xero_post(b, &at, "Invoices", &set(draft["InvoiceID"].clone(), "DELETED"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["Invoices"][0]["Status"], "DELETED");
    // A deleted invoice cannot be edited or brought back.
    let r = xero_post(b, &at, &format!("Invoices/{}", s(&draft["InvoiceID"])), &json!({"Status": "DRAFT"}), &[]).await;
    assert_eq!(r.status, 400);
    // AUTHORISED is voided (not deleted) while nothing is paid.
    let auth = xero_invoice(b, &at, "AUTHORISED").await;
    assert_eq!(xero_post(b, &at, "Invoices", &set(auth["InvoiceID"].clone(), "DELETED"), &[]).await.status, 400);
    let r = xero_post(b, &at, "Invoices", &set(auth["InvoiceID"].clone(), "VOIDED"), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["Invoices"][0]["Status"], "VOIDED");
    assert_eq!(r.json()["Invoices"][0]["AmountDue"], 0.0);
    let r = xero_post(b, &at, &format!("Invoices/{}", s(&auth["InvoiceID"])), &json!({"Reference": "late"}), &[]).await;
    assert_eq!(r.status, 400, "a VOIDED invoice cannot be edited");
    // A PAID invoice cannot be voided or deleted; a part-paid one cannot be voided or re-lined.
    let paid = xero_invoice(b, &at, "AUTHORISED").await;
    let part = xero_invoice(b, &at, "AUTHORISED").await;
    let bank = xero_get(b, &at, XERO_T1, "Accounts", &[]).await.json()["Accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["Type"] == "BANK")
        .unwrap()["Code"]
        .clone();
    for (inv, amount) in [(&paid, 100.0), (&part, 30.0)] {
        let pay = json!({"Invoice": {"InvoiceID": inv["InvoiceID"]}, "Account": {"Code": bank}, "Amount": amount});
        assert_eq!(xero_put(b, &at, XERO_T1, "Payments", &pay, &[]).await.status, 200);
    }
    for status in ["VOIDED", "DELETED"] {
        let r = xero_post(b, &at, "Invoices", &set(paid["InvoiceID"].clone(), status), &[]).await;
        assert_eq!(r.status, 400, "PAID -> {status}: {}", r.text());
    }
    assert_eq!(
        xero_get(b, &at, XERO_T1, &format!("Invoices/{}", s(&paid["InvoiceID"])), &[]).await.json()["Invoices"][0]["Status"],
        "PAID"
    );
    assert_eq!(xero_post(b, &at, "Invoices", &set(part["InvoiceID"].clone(), "VOIDED"), &[]).await.status, 400);
    let relined = json!({"LineItems": [{"Description": "Other", "Quantity": 1.0, "UnitAmount": 5.0, "AccountCode": "200"}]});
    let r = xero_post(b, &at, &format!("Invoices/{}", s(&part["InvoiceID"])), &relined, &[]).await;
    assert_eq!(r.status, 400);
    assert!(xero_message(&r).contains("payment"));
    sb.shutdown().await;
}

#[tokio::test]
async fn xero_contact_update_and_archive() {
    let sb = start().await;
    let b = &sb.base_url;
    let at = s(&xero_connect(b).await["access_token"]);
    let c = xero_put(b, &at, XERO_T1, "Contacts", &json!({"Name": "Archivable Ltd"}), &[]).await.json()["Contacts"][0].clone();
    let id = s(&c["ContactID"]);
    control(b, "clock", json!({"advance_seconds": 5})).await;
    let r = xero_post(b, &at, &format!("Contacts/{id}"), &json!({"Contacts": [{"EmailAddress": "ap@archivable.example"}]}), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let up = r.json()["Contacts"][0].clone();
    assert_eq!(up["EmailAddress"], "ap@archivable.example");
    assert_eq!(up["Name"], "Archivable Ltd");
    assert_ne!(up["UpdatedDateUTC"], c["UpdatedDateUTC"]);
    let r = xero_post(b, &at, &format!("Contacts/{id}"), &json!({"ContactStatus": "ARCHIVED"}), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["Contacts"][0]["ContactStatus"], "ARCHIVED");
    // A contact with an approved invoice still due is not archived; names stay unique.
    let inv = xero_invoice(b, &at, "AUTHORISED").await;
    let owing = s(&inv["Contact"]["ContactID"]);
    let r = xero_post(b, &at, &format!("Contacts/{owing}"), &json!({"ContactStatus": "ARCHIVED"}), &[]).await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = xero_post(b, &at, &format!("Contacts/{owing}"), &json!({"Name": "Bill's Windsurf Shop"}), &[]).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(xero_message(&r).contains("already assigned"));
    sb.shutdown().await;
}

#[tokio::test]
async fn xero_idempotency_key_replays_an_update() {
    let sb = start().await;
    let b = &sb.base_url;
    let at = s(&xero_connect(b).await["access_token"]);
    let inv = xero_invoice(b, &at, "AUTHORISED").await;
    let path = format!("Invoices/{}", s(&inv["InvoiceID"]));
    let void = json!({"Status": "VOIDED"});
    let first = xero_post(b, &at, &path, &void, &[("Idempotency-Key", "void-1")]).await;
    assert_eq!(first.status, 200, "{}", first.text());
    // Without the key the second void is refused (VOIDED is final); with it, the first answer again.
    assert_eq!(xero_post(b, &at, &path, &void, &[]).await.status, 400);
    let again = xero_post(b, &at, &path, &void, &[("Idempotency-Key", "void-1")]).await;
    assert_eq!((again.status, again.json()), (200, first.json()));
    sb.shutdown().await;
}

// ---------------------------------------------------------------- Zoho Books

const ZORG: &str = "organization_id=700000001";

struct Zoho {
    api: String,
    auth: String,
}

impl Zoho {
    async fn connect(base: &str) -> Zoho {
        let (v, _) = zoho_connect(base, "us").await;
        Zoho { api: s(&v["api_domain"]), auth: format!("Zoho-oauthtoken {}", s(&v["access_token"])) }
    }

    async fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Resp {
        let url = format!("{}/books/v3/{path}{}{ZORG}", self.api, if path.contains('?') { '&' } else { '?' });
        match body {
            Some(b) => {
                call(method, &url, &[("Authorization", &self.auth), ("Content-Type", "application/json")], b.to_string().as_bytes()).await
            }
            None => call(method, &url, &[("Authorization", &self.auth)], b"").await,
        }
    }

    async fn read(&self, plural: &str, singular: &str, id: &Value) -> Value {
        let r = self.send("GET", &format!("{plural}/{}", s(id)), None).await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()[singular].clone()
    }

    /// A new sent invoice for 30.00 to the first contact.
    async fn sent_invoice(&self) -> Value {
        let contact = self.send("GET", "contacts", None).await.json()["contacts"][0].clone();
        let body = json!({"customer_id": contact["contact_id"], "status": "sent", "line_items": [{"name": "Work", "rate": 10.0, "quantity": 3.0}]});
        let r = self.send("POST", "invoices", Some(&body)).await;
        assert_eq!(r.status, 201, "{}", r.text());
        r.json()["invoice"].clone()
    }
}

#[tokio::test]
async fn zoho_update_by_put_in_json_and_jsonstring_bumps_last_modified_time() {
    let sb = start().await;
    let b = &sb.base_url;
    let z = Zoho::connect(b).await;
    let inv = z.sent_invoice().await;
    let id = inv["invoice_id"].clone();
    control(b, "clock", json!({"advance_seconds": 5})).await;
    let r = z
        .send(
            "PUT",
            &format!("invoices/{}", s(&id)),
            Some(&json!({"reference_number": "PO-9", "line_items": [{"name": "Work", "rate": 12.5, "quantity": 4.0}]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!((v["code"].clone(), v["message"].clone()), (json!(0), json!("Invoice information has been updated.")));
    let up = v["invoice"].clone();
    assert_eq!(up["reference_number"], "PO-9");
    assert_eq!((up["total"].clone(), up["balance"].clone()), (json!(50.0), json!(50.0)));
    assert_eq!(up["status"], "sent");
    assert_eq!(up["created_time"], inv["created_time"]);
    assert_ne!(up["last_modified_time"], inv["last_modified_time"]);
    assert_eq!(z.read("invoices", "invoice", &id).await, up);
    // The legacy JSONString form works as for creates, here on a contact.
    let contact = z.send("GET", "contacts", None).await.json()["contacts"][0].clone();
    let form: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("JSONString", &json!({"email": "new@example.com"}).to_string())
        .finish();
    let r = call(
        "PUT",
        &format!("{}/books/v3/contacts/{}?{ZORG}", z.api, s(&contact["contact_id"])),
        &[("Authorization", &z.auth), ("Content-Type", "application/x-www-form-urlencoded")],
        form.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["contact"]["email"], "new@example.com");
    // A name another contact has is refused; an unknown id is 404.
    let other = z.send("GET", "contacts", None).await.json()["contacts"][1].clone();
    let r = z.send("PUT", &format!("contacts/{}", s(&other["contact_id"])), Some(&json!({"contact_name": contact["contact_name"]}))).await;
    assert_eq!((r.status, r.json()["code"].clone()), (400, json!(3062)));
    assert_eq!(z.send("PUT", "invoices/999", Some(&json!({"reference_number": "x"}))).await.status, 404);
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_void_sets_status_void_moves_payments_to_credit_and_bumps_last_modified_time() {
    let sb = start().await;
    let b = &sb.base_url;
    let z = Zoho::connect(b).await;
    let inv = z.sent_invoice().await;
    let id = s(&inv["invoice_id"]);
    let pay = json!({"customer_id": inv["customer_id"], "amount": 10.0, "invoices": [{"invoice_id": id, "amount_applied": 10.0}]});
    let p = z.send("POST", "customerpayments", Some(&pay)).await;
    assert_eq!(p.status, 201, "{}", p.text());
    let p = p.json()["payment"].clone();
    // An invoice a payment is applied to is not deleted.
    let r = z.send("DELETE", &format!("invoices/{id}"), None).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_ne!(r.json()["code"], 0);
    let before = z.read("invoices", "invoice", &json!(id)).await;
    control(b, "clock", json!({"advance_seconds": 5})).await;
    let r = z.send("POST", &format!("invoices/{id}/status/void"), None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"code": 0, "message": "Invoice status has been changed to Void."}));
    let after = z.read("invoices", "invoice", &json!(id)).await;
    assert_eq!(after["status"], "void");
    assert_eq!(after["balance"], 0.0);
    assert_ne!(after["last_modified_time"], before["last_modified_time"]);
    // The payment's 10.00 is the customer's credit now.
    let p2 = z.read("customerpayments", "payment", &p["payment_id"]).await;
    assert_eq!(p2["unused_amount"], 10.0);
    assert!(p2["invoices"].as_array().unwrap().is_empty());
    // Void again, or edit while void: refused. Mark as draft brings it back whole.
    assert_eq!(z.send("POST", &format!("invoices/{id}/status/void"), None).await.status, 400);
    assert_eq!(z.send("PUT", &format!("invoices/{id}"), Some(&json!({"reference_number": "x"}))).await.status, 400);
    let r = z.send("POST", &format!("invoices/{id}/status/draft"), None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let d = z.read("invoices", "invoice", &json!(id)).await;
    assert_eq!((d["status"].clone(), d["balance"].clone()), (json!("draft"), d["total"].clone()));
    // A draft is deleted, not voided; with no payment left it can go.
    assert_eq!(z.send("POST", &format!("invoices/{id}/status/void"), None).await.status, 400);
    assert_eq!(z.send("DELETE", &format!("invoices/{id}"), None).await.json()["code"], 0);
    sb.shutdown().await;
}

#[tokio::test]
async fn zoho_bill_void_and_contact_inactive_and_delete_rules() {
    let sb = start().await;
    let b = &sb.base_url;
    let z = Zoho::connect(b).await;
    control(b, "seed", json!({"provider": "zoho", "org_id": "700000001", "entity": "bill", "count": 1})).await;
    let bill = z.send("GET", "bills", None).await.json()["bills"][0].clone();
    let bid = s(&bill["bill_id"]);
    control(b, "clock", json!({"advance_seconds": 5})).await;
    let r = z.send("POST", &format!("bills/{bid}/status/void"), None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["message"], "The bill has been marked as void.");
    let v = z.read("bills", "bill", &json!(bid)).await;
    assert_eq!((v["status"].clone(), v["balance"].clone()), (json!("void"), json!(0.0)));
    assert_ne!(v["last_modified_time"], bill["last_modified_time"]);
    // A contact with invoices is not deleted; it can be made inactive and active again.
    let inv = z.sent_invoice().await;
    let cid = s(&inv["customer_id"]);
    assert_eq!(z.send("DELETE", &format!("contacts/{cid}"), None).await.status, 400);
    let r = z.send("POST", &format!("contacts/{cid}/inactive"), None).await;
    assert_eq!(r.json(), json!({"code": 0, "message": "The contact has been marked as inactive."}));
    assert_eq!(z.read("contacts", "contact", &json!(cid)).await["status"], "inactive");
    assert_eq!(z.send("POST", &format!("contacts/{cid}/active"), None).await.json()["code"], 0);
    assert_eq!(z.read("contacts", "contact", &json!(cid)).await["status"], "active");
    // A contact without transactions can be deleted.
    let c = z.send("POST", "contacts", Some(&json!({"contact_name": "Nobody Yet"}))).await.json()["contact"].clone();
    assert_eq!(z.send("DELETE", &format!("contacts/{}", s(&c["contact_id"])), None).await.json()["code"], 0);
    sb.shutdown().await;
}

#[tokio::test]
async fn deleting_a_payment_makes_the_invoice_owe_again_xero_and_zoho() {
    let sb = start().await;
    let b = &sb.base_url;
    // Xero: POST /Payments/{id} {"Status":"DELETED"}; nothing else changes a payment.
    let at = s(&xero_connect(b).await["access_token"]);
    let inv = xero_invoice(b, &at, "AUTHORISED").await;
    let bank = xero_get(b, &at, XERO_T1, "Accounts", &[]).await.json()["Accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["Type"] == "BANK")
        .unwrap()["Code"]
        .clone();
    let pay = json!({"Invoice": {"InvoiceID": inv["InvoiceID"]}, "Account": {"Code": bank}, "Amount": 100.0});
    let p = xero_put(b, &at, XERO_T1, "Payments", &pay, &[]).await.json()["Payments"][0].clone();
    let path = format!("Payments/{}", s(&p["PaymentID"]));
    assert_eq!(xero_post(b, &at, &path, &json!({"Reference": "edit"}), &[]).await.status, 400);
    let r = xero_post(b, &at, &path, &json!({"Status": "DELETED"}), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["Payments"][0]["Status"], "DELETED");
    let after = xero_get(b, &at, XERO_T1, &format!("Invoices/{}", s(&inv["InvoiceID"])), &[]).await.json()["Invoices"][0].clone();
    assert_eq!(
        (after["Status"].clone(), after["AmountDue"].clone(), after["AmountPaid"].clone()),
        (json!("AUTHORISED"), json!(100.0), json!(0.0))
    );
    // Now it can be voided.
    let r = xero_post(b, &at, &format!("Invoices/{}", s(&inv["InvoiceID"])), &json!({"Status": "VOIDED"}), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());

    // Zoho: DELETE /customerpayments/{id}.
    let z = Zoho::connect(b).await;
    let zi = z.sent_invoice().await;
    let pay =
        json!({"customer_id": zi["customer_id"], "amount": 30.0, "invoices": [{"invoice_id": zi["invoice_id"], "amount_applied": 30.0}]});
    let zp = z.send("POST", "customerpayments", Some(&pay)).await.json()["payment"].clone();
    assert_eq!(z.read("invoices", "invoice", &zi["invoice_id"]).await["status"], "paid");
    assert_eq!(z.send("DELETE", &format!("customerpayments/{}", s(&zp["payment_id"])), None).await.json()["code"], 0);
    let back = z.read("invoices", "invoice", &zi["invoice_id"]).await;
    assert_eq!((back["status"].clone(), back["balance"].clone()), (json!("sent"), json!(30.0)));
    sb.shutdown().await;
}
