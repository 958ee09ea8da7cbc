#!/usr/bin/env python3
"""Writes the committed seed corpora under fuzz/corpus/<target>/ from the provider sandbox's response
shapes (infra/sandbox/src/data.rs, quickbooks.rs, xero.rs, zoho.rs). Re-run after changing a shape;
each file is one input in the target's own byte layout (see fuzz_targets/*.rs)."""
import json, os, struct, base64

here = os.path.dirname(os.path.abspath(__file__))

def write(target, name, data):
    d = os.path.join(here, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

def j(v):
    return json.dumps(v, separators=(",", ":")).encode()

# provider_records: 12-byte header [provider, entity, position u32 LE, page_size u24 LE, b9, b10, b11], mode byte 0, JSON.
QB, XERO, ZOHO = 0, 1, 2
INV, CON, ACC, PAY = 0, 1, 2, 3
def rec_head(p, e, pos=1, size=2, b10=0, b11=0):
    return bytes([p, e]) + struct.pack("<I", pos) + struct.pack("<I", size)[:3] + bytes([0, b10, b11])

qb_inv = {"Id": "130", "SyncToken": "0", "DocNumber": "INV-00001", "TxnDate": "2026-01-15", "DueDate": "2026-02-14",
          "CurrencyRef": {"value": "USD", "name": "United States Dollar"}, "CustomerRef": {"value": "3", "name": "Cool Cars"},
          "TotalAmt": 362.07, "Balance": 362.07, "domain": "QBO", "sparse": False,
          "MetaData": {"CreateTime": "2026-01-15T10:00:00-08:00", "LastUpdatedTime": "2026-01-15T10:00:00-08:00"}}
qb_con = {"Id": "3", "DisplayName": "Cool Cars", "Balance": 0, "Active": True, "CurrencyRef": {"value": "USD"},
          "MetaData": {"LastUpdatedTime": "2026-01-15T10:00:00-08:00"}}
qb_acc = {"Id": "35", "Name": "Checking", "AcctNum": "1000", "CurrentBalance": 1201.0, "Active": True, "CurrencyRef": {"value": "USD"}}
qb_pay = {"Id": "40", "TxnDate": "2026-01-16", "TotalAmt": 362.07, "PaymentRefNum": "P1", "CustomerRef": {"value": "3", "name": "Cool Cars"}}
write("provider_records", "qb_invoice_page", rec_head(QB, INV) + b"\0" + j({"QueryResponse": {"Invoice": [qb_inv, {"domain": "QBO", "status": "Deleted", "Id": "7"}], "startPosition": 1, "maxResults": 2}, "time": "2026-01-15T10:00:00.000-08:00"}))
write("provider_records", "qb_contact", rec_head(QB, CON) + b"\0" + j(qb_con))
write("provider_records", "qb_account_page", rec_head(QB, ACC, size=1000) + b"\0" + j({"QueryResponse": {"Account": [qb_acc]}, "time": "2026-01-15T10:00:00-08:00"}))
write("provider_records", "qb_payment_empty", rec_head(QB, PAY) + b"\0" + j({"QueryResponse": {}, "time": "2026-01-15T10:00:00-08:00"}))
write("provider_records", "qb_payment", rec_head(QB, PAY) + b"\0" + j(qb_pay))

x_inv = {"Type": "ACCREC", "InvoiceID": "b1e2", "InvoiceNumber": "INV-00001", "Reference": "REF-1",
         "Contact": {"ContactID": "c9", "Name": "Ridgeway"}, "Date": "/Date(1551139200000+0000)/", "DateString": "2019-02-26T00:00:00",
         "DueDate": "/Date(1553731200000+0000)/", "DueDateString": "2019-03-28T00:00:00", "Status": "AUTHORISED",
         "Total": 1500, "CurrencyCode": "JPY", "UpdatedDateUTC": "/Date(1551212901659+0000)/"}
write("provider_records", "xero_invoice_page", rec_head(XERO, INV, size=100) + b"\0" + j({"Id": "x", "Status": "OK", "DateTimeUTC": "/Date(1551212901659)/", "pagination": {"page": 1, "pageSize": 100, "pageCount": 2, "itemCount": 101}, "Invoices": [x_inv]}))
write("provider_records", "xero_contact", rec_head(XERO, CON) + b"\0" + j({"ContactID": "c9", "ContactStatus": "ACTIVE", "Name": "Ridgeway", "AccountNumber": "A1", "DefaultCurrency": "NZD", "UpdatedDateUTC": "/Date(1551212901659+0000)/"}))
write("provider_records", "xero_accounts", rec_head(XERO, ACC) + b"\0" + j({"Accounts": [{"AccountID": "a1", "Code": "200", "Name": "Sales", "Status": "ACTIVE", "CurrencyCode": "NZD"}]}))
write("provider_records", "xero_payment", rec_head(XERO, PAY) + b"\0" + j({"PaymentID": "p1", "Date": "/Date(1551139200000+0000)/", "Amount": 12.345, "Reference": "P1", "Status": "DELETED", "Invoice": {"InvoiceID": "b1e2", "Contact": {"ContactID": "c9", "Name": "R"}, "CurrencyCode": "KWD"}}))

z_inv = {"invoice_id": "460000000012345", "invoice_number": "INV-00001", "status": "sent", "date": "2013-11-17", "due_date": "2013-12-03",
         "customer_id": "460000000000111", "customer_name": "Bowman", "currency_code": "kwd", "total": "40.6", "balance": 40.6,
         "last_modified_time": "2013-11-18T02:17:40+0530"}
write("provider_records", "zoho_invoice_page", rec_head(ZOHO, INV, size=200) + b"\0" + j({"code": 0, "message": "success", "invoices": [z_inv], "page_context": {"page": 1, "per_page": 200, "has_more_page": False}}))
write("provider_records", "zoho_contact", rec_head(ZOHO, CON) + b"\0" + j({"contact_id": "460000000000111", "contact_name": "Bowman", "status": "active", "currency_code": "USD", "outstanding_receivable_amount": 0.0}))
write("provider_records", "zoho_accounts", rec_head(ZOHO, ACC) + b"\0" + j({"code": 0, "chartofaccounts": [{"account_id": "4600", "account_name": "Sales", "account_code": "4000", "is_active": True}]}))
write("provider_records", "zoho_payment", rec_head(ZOHO, PAY) + b"\0" + j({"payment_id": "9", "payment_number": "2", "date": "2013-11-18", "amount": 40.6, "customer_id": "460000000000111", "currency_code": "USD"}))
write("provider_records", "xero_min_server_time", rec_head(XERO, INV, size=100) + b"\0" + j({"DateTimeUTC": "/Date(-8334601228800000)/", "Invoices": []}))
write("provider_records", "generated", rec_head(XERO, INV) + b"\x01" + bytes(range(0, 200, 3)))
write("provider_records", "text_date", rec_head(XERO, INV, b11=0x80) + b"/Date(1551139200000+0000)/")
write("provider_records", "text_money", rec_head(ZOHO, INV, b11=0x80) + b"-92233720368547758.075")

# provider_answers: status u16 LE, flags (bit i: header i present, bit 7: generated body), header values, body.
def answer(status, body, headers=()):
    flags = 0
    vals = b""
    for i, v in headers:
        flags |= 1 << i
        # Gen::string: a byte >= 200 takes a raw string of the next byte's length.
        vals += bytes([200, len(v)]) + v
    return struct.pack("<H", status) + bytes([flags]) + vals + body
write("provider_answers", "qb_fault_json", answer(400, j({"Fault": {"Error": [{"Message": "Object Not Found", "Detail": "Object Not Found : Something you're trying to use has been made inactive.", "code": "610"}], "type": "ValidationFault"}, "time": "2026-01-15T10:00:00.000-08:00"}), [(5, b"1-abc")]))
write("provider_answers", "qb_fault_xml", answer(403, b'<?xml version="1.0"?><IntuitResponse time="2026-01-15T10:00:00"><Fault type="AuthorizationFault"><Error code="003100"><Message>message=ApplicationAuthorizationFailed</Message><Detail>ThrottleExceeded</Detail></Error></Fault></IntuitResponse>'))
write("provider_answers", "qb_gateway_fault", answer(401, j({"fault": {"error": [{"message": "message=AuthenticationFailed; errorCode=003200; statusCode=401", "detail": "Token expired", "code": "3200"}], "type": "AUTHENTICATION"}})))
write("provider_answers", "xero_429", answer(429, b"", [(0, b"37"), (1, b"Minute"), (2, b"4998"), (3, b"0")]))
write("provider_answers", "xero_validation", answer(400, j({"ErrorNumber": 10, "Type": "ValidationException", "Message": "A validation exception occurred", "Elements": [{"ValidationErrors": [{"Message": "Email address must be valid."}]}]})))
write("provider_answers", "xero_problem", answer(401, j({"Type": None, "Title": "Unauthorized", "Status": 401, "Detail": "AuthenticationUnsuccessful"})))
write("provider_answers", "xero_connections", answer(200, j([{"id": "e1eede29", "authEventId": "d99ecdfe", "tenantId": "70784a63", "tenantType": "ORGANISATION", "tenantName": "Maple Florists", "createdDateUtc": "2019-07-09T23:40:30.1833130", "updatedDateUtc": "2020-05-15T01:35:13.8491980"}]), [(0, b"Wed, 21 Oct 2026 07:28:00 GMT")]))
write("provider_answers", "zoho_error_200", answer(200, j({"code": 1002, "message": "Organization does not exist."})))
write("provider_answers", "zoho_day_limit", answer(429, j({"code": 44, "message": "You have made too many requests. Please try again after some time."})))
write("provider_answers", "token_qb", answer(200, j({"token_type": "bearer", "access_token": "eyJlbmMiOiJBMTI4Q0JDLUhTMjU2IiwiYWxnIjoiZGlyIn0..x", "refresh_token": "AB11", "expires_in": 3600, "x_refresh_token_expires_in": 8726400, "x_refresh_token_hard_expires_in": 157680000})))
jwt = b"eyJhbGciOiJSUzI1NiJ9." + base64.urlsafe_b64encode(j({"authentication_event_id": "d99ecdfe", "exp": 1})).rstrip(b"=") + b".sig"
write("provider_answers", "token_xero", answer(200, j({"id_token": "x", "access_token": jwt.decode(), "expires_in": 1800, "token_type": "Bearer", "refresh_token": "rt", "scope": "openid offline_access accounting.invoices"})))
write("provider_answers", "token_zoho", answer(200, j({"access_token": "1000.a", "refresh_token": "1000.r", "api_domain": "https://www.zohoapis.eu", "token_type": "Bearer", "expires_in": 3600})))
write("provider_answers", "token_zoho_throttle", answer(200, j({"error_description": "You have made too many requests continuously. Please try again after some time.", "error": "Access Denied", "status": "failure"})))
write("provider_answers", "token_invalid_grant", answer(400, j({"error": "invalid_grant", "error_description": "Token invalid"})))
write("provider_answers", "token_huge_lifetime", answer(200, j({"access_token": "a", "token_type": "bearer", "expires_in": 9000000000000, "refresh_token": "r", "x_refresh_token_expires_in": 18446744073709551615})))
write("provider_answers", "generated", struct.pack("<H", 200) + bytes([0x80]) + bytes(range(1, 250, 7)))

# connect_inputs: selector byte (mod 6), then the case's bytes.
write("connect_inputs", "state_garbage", b"\x00" + b"AQID.BAUG")
write("connect_inputs", "state_signed", b"\x01" + b"\x01" + bytes(32) + struct.pack(">Q", 1_780_000_600) + b"\x02" + b"tenant-1")
write("connect_inputs", "cookies", b"\x02" + b"ttya_oauth_0011223344556677=abc; other=1\nttya_oauth_x=\"q\"")
# signed request: sign flag, count, then (name byte, kind byte, value...) per pair.
def pair(name_idx, kind, val=b""):
    return bytes([name_idx, kind]) + val
write("connect_inputs", "app_signed", b"\x03" + b"\x01" + b"\x05" + pair(0, 3, bytes([200, 8]) + b"tenant-1") + pair(1, 3, bytes([200, 3]) + b"u-1") + pair(2, 1, b"\x00") + pair(3, 2) + pair(4, 3, bytes([200, 19]) + b"https://app.example"))
write("connect_inputs", "app_ts_min", b"\x03" + b"\x01" + b"\x04" + pair(0, 3, bytes([200, 8]) + b"tenant-1") + pair(1, 3, bytes([200, 3]) + b"u-1") + pair(2, 0, struct.pack("<q", -2**63)) + pair(3, 2))
write("connect_inputs", "callback_query", b"\x04" + b"code=1000.abc&location=eu&accounts-server=https%3A%2F%2Faccounts.zoho.eu&state=x&realmId=934")
write("connect_inputs", "sync_job", b"\x05" + j({"version": 1, "tenant_id": "t1", "provider": "xero", "org_id": "o1", "operation": "pull", "entity": "invoice", "cursor": "full", "priority": "normal", "idempotency_key": "k1", "correlation_id": "c1", "requested_at": "2026-01-15T10:00:00Z", "source": "app"}))
write("connect_inputs", "cursor", b"\x05" + j({"v": 1, "provider": "zoho", "entity": "invoice", "modified_since": None, "pass_started_at": None, "position": 1, "page_size": 200}))
write("connect_inputs", "zoho_registrations", b"\x05" + b"46000001:47000001, 46000002,,46000003:")

# verify_parse: selector byte (provider = b % 3), then the body.
write("verify_parse", "qbo_legacy", b"\x00" + b'{"eventNotifications":[{"realmId":"310687","dataChangeEvent":{"entities":[{"id":"1234","operation":"Create","name":"Account","lastUpdated":"2025-09-08T20:52:31.657Z"},{"id":"9","operation":"Delete","name":"Invoice","lastUpdated":"2025-09-08T20:52:31.657Z"}]}}]}')
write("verify_parse", "qbo_cloudevents", b"\x00" + b'[{"specversion":"1.0","id":"88cd52aa-33b6-4351-9aa4-47572edbd068","source":"intuit.x","type":"qbo.invoice.deleted.v1","datacontenttype":"application/json","time":"2025-09-10T21:31:25.179851517Z","intuitentityid":"1234","intuitaccountid":"310687","data":{}}]')
write("verify_parse", "xero", b"\x01" + b'{"events":[{"resourceUrl":"https://api.xero.com/api.xro/2.0/Contacts/717f2bfc","resourceId":"717f2bfc","eventDateUtc":"2024-06-21T01:15:39.902","eventType":"UPDATE","eventCategory":"INVOICE","tenantId":"c2cc9b6e","tenantType":"ORGANISATION"}],"lastEventSequence":1,"firstEventSequence":1,"entropy":"S0m3r4Nd0mt3xt"}')
write("verify_parse", "xero_itr", b"\x01" + b'{"events":[],"firstEventSequence":0,"lastEventSequence":0,"entropy":"CWJLQXKOBYLKYFYHGXCK"}')
write("verify_parse", "zoho_json", b"\x02" + b'{"organization_id":"700000001","entity":"invoice","entity_id":"460000000012345","event":"deleted","event_id":"e1","last_modified_time":"2026-11-24T17:59:41+0000"}')
write("verify_parse", "zoho_form", b"\x02" + b"JSONString=%7B%22invoice%22%3A%7B%22invoice_id%22%3A%229%22%7D%7D")

# report_formats: [parser (0 QuickBooks, 1 Xero, 2 Zoho, 3 Xero aged by contact), kind (b % 3: P&L, balance sheet, aged;
# bits 2-3: Xero currency; bits 4-5: aged scale)], mode byte 0, JSON.
PNL, BS, AGED = 0, 1, 2
qb_pnl = {"Header": {"ReportName": "ProfitAndLoss", "Currency": "USD"}, "Rows": {"Row": [
    {"type": "Section", "group": "Income", "Header": {"ColData": [{"value": "Income"}, {"value": ""}]},
     "Rows": {"Row": [{"type": "Data", "ColData": [{"value": "Design income", "id": "82"}, {"value": "2250.00"}]}]},
     "Summary": {"ColData": [{"value": "Total Income"}, {"value": "2250.00"}]}},
    {"type": "Section", "group": "NetIncome", "Summary": {"ColData": [{"value": "Net Income"}, {"value": "2250.00"}]}}]}}
qb_aged = {"Header": {"Currency": "USD"}, "Columns": {"Column": [{"ColTitle": t} for t in ["", "Current", "1 - 30", "31 - 60", "61 - 90", "91 and over", "Total"]]},
           "Rows": {"Row": [{"type": "Data", "ColData": [{"value": "Cool Cars", "id": "3"}] + [{"value": v} for v in ["10.00", "", "5.00", "", "1.00", "16.00"]]}]}}
x_row = lambda name, v: {"RowType": "Row", "Cells": [{"Value": name, "Attributes": [{"Value": "a1", "Id": "account"}]}, {"Value": v}]}
x_bs = {"Reports": [{"ReportType": "BalanceSheet", "Rows": [{"RowType": "Header", "Cells": [{"Value": ""}, {"Value": "31 Mar 2026"}]},
        {"RowType": "Section", "Title": "Bank", "Rows": [x_row("Bank", "50.00"), {"RowType": "SummaryRow", "Cells": [{"Value": "Total Bank"}, {"Value": "50.00"}]}]},
        {"RowType": "Section", "Title": "", "Rows": [{"RowType": "SummaryRow", "Cells": [{"Value": "Total Assets"}, {"Value": "50.00"}]}]}]}]}
x_aged = {"Reports": [{"Rows": [{"RowType": "Section", "Rows": [
    {"RowType": "Row", "Cells": [{"Value": "2026-01-01T00:00:00"}, {"Value": "INV"}, {"Value": "2026-02-10T00:00:00"}, {"Value": ""}, {"Value": "20.00"}, {"Value": "0.00"}, {"Value": "0.00"}, {"Value": "20.00"}]}]}]}]}
z_pnl = {"code": 0, "page_context": {"currency_code": "USD"}, "profit_and_loss": [
    {"name": "Operating Income", "total": 2250.0, "account_transactions": [{"name": "Sales", "account_id": "1", "total": 2250.0}]},
    {"name": "Net Profit/Loss", "total": 2250.0}]}
z_aged = {"code": 0, "page_context": {"currency_code": "USD"}, "aged_receivables": [
    {"customer_id": "1", "customer_name": "C", "current": "10.00", "1_30": 0, "31_60": "", "61_90": 0, "91_and_over": 1, "total": "11.00"}]}
big = "92233720368547758.07"
write("report_formats", "qb_pnl", bytes([0, PNL]) + b"\0" + j(qb_pnl))
write("report_formats", "qb_aged", bytes([0, AGED]) + b"\0" + j(qb_aged))
write("report_formats", "xero_bs", bytes([1, BS]) + b"\0" + j(x_bs))
write("report_formats", "zoho_pnl", bytes([2, PNL]) + b"\0" + j(z_pnl))
write("report_formats", "zoho_aged", bytes([2, AGED]) + b"\0" + j(z_aged))
write("report_formats", "xero_aged_contact", bytes([3, AGED | 0x20]) + b"\0" + j(x_aged))
write("report_formats", "zoho_aged_overflow", bytes([2, AGED]) + b"\0" + j({"page_context": {"currency_code": "USD"}, "aged_receivables": [
    {"customer_id": "1", "total": big}, {"customer_id": "2", "total": "1.00"}]}))

# records_query: mode byte (bit 0: a fixed list route), then lines: the path, then `name=value`
# parameters (a one-byte name selects one of the target's NAMES).
write("records_query", "route_get", b"\x00" + b"/prod/v1/tenants/acme-1/connections/xero/o%2F1/records/invoice/inv%201")
write("records_query", "list_filters", b"\x01" + b"-\nstatus=PAID\ndue_after=2026-03-01\ndue_before=2026-03-06\nlimit=500\ninclude_deleted=true")
write("records_query", "list_contact_modified", b"\x01" + b"-\ncontact_id=c-1\nmodified_after=2026-03-01T12:00:00Z\nissued_before=2026-02-01")
write("records_query", "list_cursor", b"\x01" + b"-\ncursor=eyJ2IjoxLCJmIjoiIiwiayI6e319\nlimit=501")
