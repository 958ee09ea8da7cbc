//! One model for what the three providers return, and the values the callers keep between calls
//! (cursors, callback parameters).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::providers::Provider;
use crate::secret::SecretString;
use crate::tokens::TokenSet;

/// Our OAuth client at one provider.
#[derive(Clone, Debug)]
pub struct ClientCredentials {
    pub client_id: String,
    pub client_secret: SecretString,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Entity {
    Invoice,
    Contact,
    Account,
    Payment,
    /// A purchase invoice (QuickBooks Bill, Xero ACCPAY invoice, Zoho bill).
    Bill,
    /// The organisation itself (QuickBooks CompanyInfo, Xero Organisation, Zoho organization).
    Company,
    /// Credit notes, sales and purchase (QuickBooks CreditMemo and VendorCredit, Xero CreditNotes
    /// of both types, Zoho creditnotes and vendorcredits); the document's kind tells them apart.
    #[serde(rename = "credit_note")]
    CreditNote,
    /// Payments made to suppliers (QuickBooks BillPayment, Xero ACCPAYPAYMENT payments, Zoho
    /// vendorpayments); `Payment` stays the payments received.
    #[serde(rename = "bill_payment")]
    BillPayment,
    /// A tax code lines name (QuickBooks TaxCode, Xero TaxRates by TaxType, Zoho settings/taxes).
    #[serde(rename = "tax_rate")]
    TaxRate,
    /// A product or service lines name (QuickBooks Item, Xero Items, Zoho items).
    Item,
    /// What lines are tracked by (QuickBooks Class, Xero TrackingCategories, Zoho reporting tags).
    #[serde(rename = "tracking_category")]
    TrackingCategory,
    /// A manual journal entry (QuickBooks JournalEntry, Xero ManualJournals, Zoho journals).
    Journal,
    /// Orders to suppliers (QuickBooks PurchaseOrder, Xero PurchaseOrders, Zoho purchaseorders).
    #[serde(rename = "purchase_order")]
    PurchaseOrder,
    /// Bank transactions and expenses (QuickBooks Purchase, Deposit and Transfer; Xero
    /// BankTransactions and BankTransfers; Zoho expenses and banktransactions).
    #[serde(rename = "bank_transaction")]
    BankTransaction,
}

impl Entity {
    pub const ALL: [Entity; 14] = [
        Entity::Invoice,
        Entity::Contact,
        Entity::Account,
        Entity::Payment,
        Entity::Bill,
        Entity::Company,
        Entity::CreditNote,
        Entity::BillPayment,
        Entity::TaxRate,
        Entity::Item,
        Entity::TrackingCategory,
        Entity::Journal,
        Entity::PurchaseOrder,
        Entity::BankTransaction,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Entity::Invoice => "invoice",
            Entity::Contact => "contact",
            Entity::Account => "account",
            Entity::Payment => "payment",
            Entity::Bill => "bill",
            Entity::Company => "company",
            Entity::CreditNote => "credit_note",
            Entity::BillPayment => "bill_payment",
            Entity::TaxRate => "tax_rate",
            Entity::Item => "item",
            Entity::TrackingCategory => "tracking_category",
            Entity::Journal => "journal",
            Entity::PurchaseOrder => "purchase_order",
            Entity::BankTransaction => "bank_transaction",
        }
    }
}

impl std::fmt::Display for Entity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Entity {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "invoice" | "invoices" => Ok(Entity::Invoice),
            "contact" | "contacts" | "customer" | "customers" => Ok(Entity::Contact),
            "account" | "accounts" | "chartofaccounts" => Ok(Entity::Account),
            "payment" | "payments" | "customerpayments" => Ok(Entity::Payment),
            "bill" | "bills" => Ok(Entity::Bill),
            "company" | "companyinfo" | "organisation" | "organization" => Ok(Entity::Company),
            "credit_note" | "credit_notes" | "creditnote" | "creditnotes" => Ok(Entity::CreditNote),
            "purchase_order" | "purchase_orders" | "purchaseorder" | "purchaseorders" => Ok(Entity::PurchaseOrder),
            "bill_payment" | "bill_payments" | "billpayment" | "vendorpayments" | "vendorpayment" => Ok(Entity::BillPayment),
            "tax_rate" | "tax_rates" | "taxrate" | "taxrates" | "taxcode" | "taxes" => Ok(Entity::TaxRate),
            "item" | "items" => Ok(Entity::Item),
            "journal" | "journals" | "journalentry" | "manualjournals" => Ok(Entity::Journal),
            "bank_transaction" | "bank_transactions" | "banktransaction" | "banktransactions" => Ok(Entity::BankTransaction),
            "tracking_category" | "tracking_categories" | "trackingcategories" | "class" | "classes" | "reporting_tags" => {
                Ok(Entity::TrackingCategory)
            }
            other => Err(Error::InvalidInput(format!("unknown entity '{other}'"))),
        }
    }
}

/// A record normalised across providers. `raw` keeps the provider's JSON so nothing is lost.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub provider: Provider,
    pub entity: Entity,
    pub org_id: String,
    pub id: String,
    pub updated_at: Option<DateTime<Utc>>,
    /// Document number (invoice/payment number) where the entity has one.
    pub number: Option<String>,
    /// Display name (contact, account) or the counterparty's name on a document.
    pub name: Option<String>,
    /// The amount as the provider's decimal text, so no float rounding touches money.
    pub amount: Option<String>,
    pub currency: Option<String>,
    pub status: Option<String>,
    pub raw: Value,
}

/// An organisation (QuickBooks realm, Xero tenant, Zoho organization) reachable through a grant.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Org {
    pub provider: Provider,
    pub id: String,
    pub name: Option<String>,
    /// Xero: the connection id (for DELETE /connections/{id}).
    pub connection_id: Option<String>,
    /// Xero: ORGANISATION or PRACTICE.
    pub kind: Option<String>,
    /// Zoho: the data centre location of the grant.
    pub region: Option<String>,
}

/// What the provider's redirect to our callback carried besides code and state.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CallbackParams {
    /// QuickBooks `realmId`.
    pub realm_id: Option<String>,
    /// Zoho `location`.
    pub location: Option<String>,
    /// Zoho `accounts-server`.
    pub accounts_server: Option<String>,
}

impl CallbackParams {
    /// From the callback's query pairs, by the providers' own parameter names.
    pub fn from_query<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut p = CallbackParams::default();
        for (k, v) in pairs {
            match k {
                "realmId" => p.realm_id = Some(v.to_string()),
                "location" => p.location = Some(v.to_string()),
                "accounts-server" => p.accounts_server = Some(v.to_string()),
                _ => {}
            }
        }
        p
    }
}

/// The result of a code exchange.
#[derive(Debug, Clone)]
pub struct Grant {
    pub tokens: TokenSet,
    /// The org the callback named, where the provider names one (QuickBooks realm).
    pub org_hint: Option<String>,
}

/// Everything needed to send a user to the provider's consent page.
#[derive(Debug, Clone)]
pub struct AuthorizeRequest<'a> {
    pub state: &'a str,
    pub redirect_uri: &'a url::Url,
    /// Empty: the provider's default scopes for this integration.
    pub scopes: &'a [String],
    /// The S256 challenge; ignored for providers that do not support PKCE (see `supports_pkce`).
    pub pkce_challenge: Option<&'a oauth2::PkceCodeChallenge>,
    /// Extra query parameters (e.g. the sandbox's `sandbox_realm`, `sandbox_dc`).
    pub extra: &'a [(String, String)],
}

/// The rate-limit state a response reported. Xero reports remaining calls on every response; the
/// others report nothing until they answer 429.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RateLimitInfo {
    pub day_remaining: Option<u32>,
    pub minute_remaining: Option<u32>,
    pub app_minute_remaining: Option<u32>,
    pub retry_after: Option<Duration>,
    /// Xero `X-Rate-Limit-Problem` (minute, day, concurrent, appminute).
    pub problem: Option<String>,
}

/// Where a listing is: kept by the sync worker between jobs, so it is versioned and serialisable.
///
/// One pass reads every record modified after `modified_since`, page by page. When the last page is
/// read, the next pass starts from the provider's clock at the start of this pass (`pass_started_at`):
/// records changed while we were paging are read again next time rather than missed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cursor {
    pub v: u8,
    pub provider: Provider,
    pub entity: Entity,
    pub modified_since: Option<DateTime<Utc>>,
    pub pass_started_at: Option<DateTime<Utc>>,
    /// 1-based: QuickBooks STARTPOSITION, Xero and Zoho page number. With keyset paging it stays 1
    /// and moves only inside a run of records that share one updated time (see `after_time`).
    pub position: u32,
    pub page_size: u32,
    /// QuickBooks keyset: the last Id read in this pass; the next page asks for `Id > after_id`, so a
    /// record that leaves the result set mid-pass cannot shift another past a page boundary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_id: Option<String>,
    /// Xero and Zoho keyset: within a pass, the list is ordered by updated time ascending and the
    /// next page asks for records modified after this (the last page's last time, a second early
    /// because the filters take whole seconds and whether they are inclusive is unconfirmed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_time: Option<DateTime<Utc>>,
    /// Ids read on the previous page whose times are at or after `after_time` (they come back once more
    /// on the next page) and the latest of those times: an id here at or before that time is
    /// dropped instead of counted twice.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub boundary: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boundary_until: Option<DateTime<Utc>>,
    /// A full pass (from the first record, no `modified_since`): when it started on our clock. The
    /// worker keeps what each page listed under it and, at the pass's end, turns stored records the
    /// provider no longer lists into tombstones (`sync::reconcile`). Cleared when the pass ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_pass_started: Option<DateTime<Utc>>,
    /// Which of the entity's collections the pass is reading, for an entity a provider keeps in
    /// several (QuickBooks CreditMemo then VendorCredit): one pass walks them in order, each from
    /// its first page, under the pass's one start time.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub collection: u8,
}

fn is_zero(n: &u8) -> bool {
    *n == 0
}

impl Cursor {
    pub const VERSION: u8 = 1;

    /// A full read from the beginning with the provider's default page size.
    pub fn start(provider: Provider, entity: Entity) -> Self {
        Cursor {
            v: Self::VERSION,
            provider,
            entity,
            modified_since: None,
            pass_started_at: None,
            position: 1,
            page_size: default_page_size(provider),
            after_id: None,
            after_time: None,
            boundary: Vec::new(),
            boundary_until: None,
            full_pass_started: None,
            collection: 0,
        }
    }

    /// Records modified after `since` only.
    pub fn since(provider: Provider, entity: Entity, since: DateTime<Utc>) -> Self {
        Cursor { modified_since: Some(since), ..Self::start(provider, entity) }
    }

    /// Clamped to what the provider allows.
    pub fn with_page_size(mut self, size: u32) -> Self {
        self.page_size = size.clamp(1, max_page_size(self.provider));
        self
    }

    pub fn is_first_page(&self) -> bool {
        self.position == 1 && self.after_id.is_none() && self.after_time.is_none() && self.collection == 0
    }

    /// After the last page of one of an entity's `collections`, the first page of the next one in
    /// the same pass (same start, same full pass); `None` after the last collection. The pass's
    /// start is kept so what changed in an earlier collection while the later ones were read is
    /// read again by the next pass.
    pub(crate) fn next_collection(&self, collections: usize, server_time: Option<DateTime<Utc>>) -> Option<Cursor> {
        let next = self.collection.checked_add(1)?;
        if usize::from(next) >= collections {
            return None;
        }
        let pass_started_at =
            if self.is_first_page() { server_time.or(self.pass_started_at) } else { self.pass_started_at.or(server_time) };
        Some(Cursor {
            collection: next,
            pass_started_at,
            position: 1,
            after_id: None,
            after_time: None,
            boundary: Vec::new(),
            boundary_until: None,
            ..self.clone()
        })
    }

    /// The lower bound of the next list call: the keyset time inside a pass, else the watermark.
    pub fn list_since(&self) -> Option<DateTime<Utc>> {
        self.after_time.or(self.modified_since)
    }

    pub fn check(&self, provider: Provider, entity: Entity) -> Result<()> {
        if self.v != Self::VERSION {
            return Err(Error::InvalidInput(format!("cursor version {} is not supported", self.v)));
        }
        if self.provider != provider || self.entity != entity {
            return Err(Error::InvalidInput(format!("cursor is for {}/{}, not {provider}/{entity}", self.provider, self.entity)));
        }
        if self.position == 0 || self.page_size == 0 || self.page_size > max_page_size(provider) {
            return Err(Error::InvalidInput("cursor position or page size is out of range".into()));
        }
        // A cursor can arrive in a job: the QuickBooks keyset id goes into a query literal, so it
        // must be an Id (digits); the others carry no id keyset.
        match (&self.after_id, provider) {
            (None, _) => {}
            (Some(id), Provider::QuickBooks) if !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_digit()) => {}
            _ => return Err(Error::InvalidInput("cursor keyset id is not valid for this provider".into())),
        }
        if (self.after_time.is_some() || !self.boundary.is_empty()) && provider == Provider::QuickBooks {
            return Err(Error::InvalidInput("cursor keyset time is not valid for this provider".into()));
        }
        if self.boundary.len() > max_page_size(provider) as usize || self.boundary.iter().any(|id| id.is_empty() || id.len() > 255) {
            return Err(Error::InvalidInput("cursor boundary is out of range".into()));
        }
        Ok(())
    }

    /// Drops the records the previous page already read (see `boundary`).
    pub(crate) fn drop_boundary(&self, records: Vec<Record>) -> Vec<Record> {
        if self.boundary.is_empty() {
            return records;
        }
        records.into_iter().filter(|r| self.keeps(r)).collect()
    }

    /// Whether `record` is new to this page rather than one the previous page already read.
    pub(crate) fn keeps(&self, r: &Record) -> bool {
        !(self.boundary.contains(&r.id) && r.updated_at.zip(self.boundary_until).is_none_or(|(t, u)| t <= u))
    }

    /// The cursor after a QuickBooks page ordered by Id: the next page starts after its last Id.
    pub(crate) fn advance_by_id(&self, has_more: bool, server_time: Option<DateTime<Utc>>, records: &[Record]) -> Cursor {
        let last =
            records.last().map(|r| r.id.clone()).filter(|id| !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_digit()));
        match last {
            Some(id) if has_more => {
                let mut next = self.advance(true, 0, server_time);
                next.position = self.position;
                next.after_id = Some(id);
                next
            }
            _ => self.advance(has_more, self.page_size, server_time),
        }
    }

    /// The cursor after a Xero or Zoho page ordered by updated time ascending: the next page asks
    /// for records modified since this page's last time (less a second). Where that would not move
    /// past the page's first record (a run of records sharing one time longer than a page), the
    /// next page number under the same filter is read instead.
    ///
    /// The filter is taken as inclusive (unconfirmed either way), and the times on a page are whole
    /// seconds while the provider compares its own finer ones: every record of this page at or
    /// after the new filter time can come back, so all of them are the boundary, and the filter
    /// only moves when the page's first record is strictly before it.
    pub(crate) fn advance_by_time(&self, has_more: bool, server_time: Option<DateTime<Utc>>, records: &[Record]) -> Cursor {
        let first = records.first().and_then(|r| r.updated_at);
        let last = records.iter().rev().find_map(|r| r.updated_at);
        let candidate = last.and_then(|t| {
            let whole = DateTime::from_timestamp(t.timestamp(), 0)?;
            whole.checked_sub_signed(chrono::Duration::seconds(1))
        });
        let moves = match (candidate, first) {
            (Some(c), Some(f)) => f < c && self.list_since().is_none_or(|s| c > s),
            _ => false,
        };
        if has_more && moves {
            let mut next = self.advance(true, 0, server_time);
            let c = candidate.expect("checked above");
            next.position = 1;
            next.after_time = Some(c);
            // Bounded so our own cursor always passes `check` (a provider may send more rows than
            // asked); an id left out is only read twice, which the upserts absorb.
            next.boundary = records
                .iter()
                .filter(|r| r.updated_at.is_some_and(|t| t >= c) && !r.id.is_empty() && r.id.len() <= 255)
                .map(|r| r.id.clone())
                .take(max_page_size(self.provider) as usize)
                .collect();
            next.boundary_until = last;
            return next;
        }
        let mut next = self.advance(has_more, 1, server_time);
        next.boundary = Vec::new();
        next.boundary_until = None;
        next
    }

    /// The cursor after a page: the next page of this pass, or the start of the next pass.
    /// `step` is how far `position` moves per page (page size for QuickBooks, 1 for page numbers).
    pub(crate) fn advance(&self, has_more: bool, step: u32, server_time: Option<DateTime<Utc>>) -> Cursor {
        let pass_started_at =
            if self.is_first_page() { server_time.or(self.pass_started_at) } else { self.pass_started_at.or(server_time) };
        // A position past u32 (a stored cursor is data, and a provider can claim endless pages)
        // ends the pass instead of overflowing: the next pass starts from the watermark.
        let next = if has_more { self.position.checked_add(step) } else { None };
        if let Some(position) = next {
            Cursor { position, pass_started_at, ..self.clone() }
        } else {
            Cursor {
                // Checked: the server time is the provider's (Xero's `/Date(ms)/` reaches chrono's minimum).
                modified_since: pass_started_at
                    .map(|t| t.checked_sub_signed(chrono::Duration::seconds(WATERMARK_OVERLAP_SECS)).unwrap_or(t))
                    .or(self.modified_since),
                pass_started_at: None,
                position: 1,
                after_id: None,
                after_time: None,
                boundary: Vec::new(),
                boundary_until: None,
                full_pass_started: None,
                collection: 0,
                ..self.clone()
            }
        }
    }
}

/// The next pass starts this much before the previous one did: providers report times to the
/// second (QuickBooks' `time`, the `Date` header) and their servers' clocks differ a little, so a
/// record changed just after the reported start could otherwise fall between two passes. Reading a
/// few records twice is harmless (writes are upserts); missing one is not.
pub const WATERMARK_OVERLAP_SECS: i64 = 5;

pub fn default_page_size(provider: Provider) -> u32 {
    match provider {
        Provider::QuickBooks => 1000,
        Provider::Xero => 100,
        Provider::Zoho => 200,
    }
}

pub fn max_page_size(provider: Provider) -> u32 {
    match provider {
        Provider::QuickBooks => 1000,
        Provider::Xero => 1000,
        Provider::Zoho => 200,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub records: Vec<Record>,
    /// Store this; pass it to the next `list`. When `has_more` is false it already points at the
    /// start of the next incremental pass.
    pub next_cursor: Cursor,
    pub has_more: bool,
    pub rate_limit: RateLimitInfo,
}

/// A list answer split at its records: the rest of it parsed, each record kept as its text until it
/// is read. Parsed whole, a page builds every record's tree before the first is read, and by the
/// time the sync model reads a record its tree is out of the cache (a 1,000-invoice QuickBooks page
/// is some 30 MB of trees); read one at a time, each tree is hot while it is normalised and freed
/// straight after (docs/measurements.md, "sync").
pub(crate) struct PageText<'a> {
    /// The answer without its records.
    pub envelope: Value,
    pub items: Vec<&'a serde_json::value::RawValue>,
}

/// Splits a list answer at `path` (the records array's keys from the top). An answer that is not
/// a JSON object is malformed; a missing or null array is an empty page; a level on the way that is
/// not an object holds no records (as a parsed `Value` lookup would find none).
pub(crate) fn split_page<'a>(provider: Provider, body: &'a [u8], path: &[&str]) -> Result<PageText<'a>> {
    use serde_json::value::RawValue;
    let malformed = |message: String| Error::ProviderMalformed { provider, message };
    let top: &RawValue = serde_json::from_slice(body).map_err(|e| malformed(format!("list answer is not JSON: {e}")))?;
    let mut items = None;
    let envelope = split_level(top, path, &mut items).map_err(malformed)?;
    if envelope.as_object().is_none() {
        return Err(malformed("list answer is not a JSON object".into()));
    }
    let items = match items {
        None => Vec::new(),
        Some(raw) if raw.get() == "null" => Vec::new(),
        Some(raw) => {
            serde_json::from_str::<Vec<&RawValue>>(raw.get()).map_err(|_| malformed(format!("{} is not an array", path.join("."))))?
        }
    };
    Ok(PageText { envelope, items })
}

fn split_level<'a>(
    raw: &'a serde_json::value::RawValue,
    path: &[&str],
    items: &mut Option<&'a serde_json::value::RawValue>,
) -> std::result::Result<Value, String> {
    use serde_json::value::RawValue;
    let parse = |r: &RawValue| serde_json::from_str::<Value>(r.get()).map_err(|e| format!("list answer is not JSON: {e}"));
    let Some((key, rest)) = path.split_first() else { return parse(raw) };
    let Ok(fields) = serde_json::from_str::<std::collections::BTreeMap<String, &'a RawValue>>(raw.get()) else { return parse(raw) };
    let mut envelope = serde_json::Map::new();
    for (k, v) in fields {
        let value = if k != *key {
            parse(v)?
        } else if rest.is_empty() {
            *items = Some(v);
            continue;
        } else {
            split_level(v, rest, items)?
        };
        envelope.insert(k, value);
    }
    Ok(Value::Object(envelope))
}

/// Reads a split page's records in order, one at a time: each record's text parsed, the provider's
/// reader (`read`; `None` leaves a record out), then `finish` on it while its tree is hot, unless the
/// previous page already read it (`Cursor::keeps`; those stay in the page for the cursor's sake and
/// are dropped by `drop_boundary`).
pub(crate) fn read_items<F: FnMut(&mut Record)>(
    provider: Provider,
    items: Vec<&serde_json::value::RawValue>,
    cursor: &Cursor,
    finish: &mut F,
    mut read: impl FnMut(Value) -> Result<Option<Record>>,
) -> Result<Vec<Record>> {
    let mut records = Vec::with_capacity(items.len());
    for item in items {
        let v: Value = serde_json::from_str(item.get())
            .map_err(|e| Error::ProviderMalformed { provider, message: format!("a listed record is not JSON: {e}") })?;
        let Some(mut r) = read(v)? else { continue };
        if cursor.keeps(&r) {
            finish(&mut r);
        }
        records.push(r);
    }
    Ok(records)
}

impl Page {
    /// For an entity a provider keeps in several collections: the end of one collection's pages
    /// is not the end of the pass but the first page of the next collection.
    pub(crate) fn then_next_collection(mut self, cursor: &Cursor, collections: usize, server_time: Option<DateTime<Utc>>) -> Page {
        if !self.has_more {
            if let Some(next) = cursor.next_collection(collections, server_time) {
                self.next_cursor = next;
                self.has_more = true;
            }
        }
        self
    }
}

/// Reads a string or number field as text (providers mix the two for ids and amounts).
pub(crate) fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A nested field such as `CustomerRef.name`.
pub(crate) fn text_at(v: &Value, path: &[&str]) -> Option<String> {
    let (last, parents) = path.split_last()?;
    let mut cur = v;
    for p in parents {
        cur = cur.get(*p)?;
    }
    text(cur, last)
}

/// Provider timestamps: RFC 3339, Zoho's `+0530` offsets, Xero's `/Date(ms+0000)/` and offset-less
/// ISO times (which Xero means as UTC).
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Some(inner) = s.strip_prefix("/Date(").and_then(|r| r.strip_suffix(")/")) {
        // Provider text: split on chars, never on byte offsets, so "/Date()/" or a multi-byte
        // character cannot land a slice inside a character. The offset after the millis is
        // informational (the millis are UTC already); a sign may lead the millis.
        let end = inner.char_indices().skip(1).find(|(_, c)| *c == '+' || *c == '-').map(|(i, _)| i).unwrap_or(inner.len());
        let ms: i64 = inner.get(..end)?.parse().ok()?;
        return DateTime::from_timestamp_millis(ms);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S%.f%z"] {
        if let Ok(t) = DateTime::parse_from_str(s, f) {
            return Some(t.with_timezone(&Utc));
        }
    }
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|n| n.and_utc())
}

/// `base` (ending in '/') plus path segments, each percent-encoded so an id cannot change the path.
pub(crate) fn api_url(base: &url::Url, segments: &[&str]) -> Result<url::Url> {
    let mut u = base.clone();
    {
        let mut path = u.path_segments_mut().map_err(|_| Error::Internal(format!("{base} cannot be a base")))?;
        path.pop_if_empty();
        for s in segments {
            if s.is_empty() || *s == "." || *s == ".." {
                return Err(Error::InvalidInput(format!("'{s}' is not a valid id")));
            }
            path.push(s);
        }
    }
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(s, 0).unwrap()
    }

    #[test]
    fn hostile_xero_dates_give_none_not_a_panic() {
        for s in ["/Date()/", "/Date(é)/", "/Date(-)/", "/Date(éé+0000)/", "/Date(99999999999999999999)/"] {
            assert_eq!(parse_time(s), None, "{s}");
        }
        assert_eq!(parse_time("/Date(1000+0000)/"), Some(t(1)));
        assert_eq!(parse_time("/Date(-1000)/"), Some(t(-1)));
    }

    #[test]
    fn cursor_moves_through_pages_then_starts_the_next_pass_at_the_first_page_server_time() {
        let c = Cursor::since(Provider::QuickBooks, Entity::Invoice, t(100)).with_page_size(10);
        let p2 = c.advance(true, 10, Some(t(500)));
        assert_eq!((p2.position, p2.pass_started_at, p2.modified_since), (11, Some(t(500)), Some(t(100))));
        // Later pages do not move the pass start even if the server clock moved on.
        let p3 = p2.advance(true, 10, Some(t(600)));
        assert_eq!((p3.position, p3.pass_started_at), (21, Some(t(500))));
        let next_pass = p3.advance(false, 10, Some(t(700)));
        assert_eq!((next_pass.position, next_pass.modified_since, next_pass.pass_started_at), (1, Some(t(495)), None));
        assert_eq!(next_pass.page_size, 10);
    }

    /// Found by fuzz/provider_records: a full page at the last representable position overflowed.
    #[test]
    fn a_page_at_the_last_position_ends_the_pass_instead_of_overflowing() {
        let mut c = Cursor::since(Provider::QuickBooks, Entity::Invoice, t(100)).with_page_size(1000);
        c.position = u32::MAX - 10;
        let next = c.advance(true, 1000, Some(t(500)));
        assert_eq!((next.position, next.modified_since, next.pass_started_at), (1, Some(t(495)), None));
    }

    /// Found in review after fuzzing: a provider's server time at chrono's minimum (Xero's
    /// `/Date(ms)/` reaches it) made the watermark overlap subtraction panic.
    #[test]
    fn a_server_time_at_the_minimum_date_does_not_panic() {
        let min = DateTime::<Utc>::MIN_UTC;
        let server = parse_time(&format!("/Date({})/", min.timestamp_millis())).expect("in range");
        let next = Cursor::start(Provider::Xero, Entity::Invoice).advance(false, 1, Some(server));
        assert_eq!((next.position, next.modified_since), (1, Some(server)));
    }

    #[test]
    fn a_single_page_pass_without_server_time_keeps_the_old_watermark() {
        let c = Cursor::since(Provider::Zoho, Entity::Contact, t(100));
        let next = c.advance(false, 1, None);
        assert_eq!((next.position, next.modified_since), (1, Some(t(100))));
    }

    #[test]
    fn cursor_round_trips_through_json_and_is_checked() {
        let c = Cursor::start(Provider::Xero, Entity::Payment).with_page_size(5000).advance(true, 1, Some(t(9)));
        assert_eq!(c.page_size, 1000);
        let back: Cursor = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        back.check(Provider::Xero, Entity::Payment).unwrap();
        assert!(back.check(Provider::Xero, Entity::Invoice).is_err());
        assert!(back.check(Provider::Zoho, Entity::Payment).is_err());
        let mut zoho = Cursor::start(Provider::Zoho, Entity::Invoice);
        zoho.page_size = 500;
        assert!(zoho.check(Provider::Zoho, Entity::Invoice).is_err());
        assert_eq!(Cursor::start(Provider::Zoho, Entity::Invoice).with_page_size(0).page_size, 1);
    }

    fn rec(p: Provider, id: &str, at: i64) -> Record {
        Record {
            provider: p,
            entity: Entity::Invoice,
            org_id: "o".into(),
            id: id.into(),
            updated_at: Some(t(at)),
            number: None,
            name: None,
            amount: None,
            currency: None,
            status: None,
            raw: Value::Null,
        }
    }

    #[test]
    fn quickbooks_pages_continue_after_the_last_id_read() {
        let c = Cursor::since(Provider::QuickBooks, Entity::Invoice, t(100)).with_page_size(2);
        let p2 = c.advance_by_id(true, Some(t(500)), &[rec(Provider::QuickBooks, "7", 1), rec(Provider::QuickBooks, "9", 2)]);
        assert_eq!((p2.position, p2.after_id.as_deref(), p2.pass_started_at), (1, Some("9"), Some(t(500))));
        let p3 = p2.advance_by_id(true, Some(t(600)), &[rec(Provider::QuickBooks, "12", 1), rec(Provider::QuickBooks, "13", 2)]);
        assert_eq!((p3.after_id.as_deref(), p3.pass_started_at), (Some("13"), Some(t(500))), "the pass start stays");
        let end = p3.advance_by_id(false, Some(t(700)), &[rec(Provider::QuickBooks, "14", 1)]);
        assert_eq!((end.position, end.after_id, end.modified_since), (1, None, Some(t(495))));
        // A forged keyset id cannot reach the query.
        let mut bad = p2.clone();
        bad.after_id = Some("1' OR 1=1".into());
        assert!(bad.check(Provider::QuickBooks, Entity::Invoice).is_err());
    }

    #[test]
    fn time_ordered_pages_continue_after_the_last_time_and_drop_what_was_read() {
        let p = Provider::Zoho;
        let c = Cursor::start(p, Entity::Invoice).with_page_size(3);
        let page1 = [rec(p, "a", 10), rec(p, "b", 20), rec(p, "c", 30)];
        let n = c.advance_by_time(true, Some(t(1000)), &page1);
        assert_eq!((n.position, n.after_time, n.boundary.clone()), (1, Some(t(29)), vec!["c".to_string()]));
        // The next answer repeats c (after 29 s): it is dropped, unless it changed since.
        let again = n.drop_boundary(vec![rec(p, "c", 30), rec(p, "d", 40)]);
        assert_eq!(again.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["d"]);
        assert_eq!(n.drop_boundary(vec![rec(p, "c", 35)]).len(), 1, "a newer version is read");
        // A page whose records share one time cannot move the keyset: the next page number instead.
        let tied = [rec(p, "x", 50), rec(p, "y", 50), rec(p, "z", 50)];
        let m = n.advance_by_time(true, Some(t(1001)), &tied);
        assert_eq!((m.position, m.after_time, m.boundary.len()), (2, Some(t(29)), 0));
        let m2 = m.advance_by_time(true, Some(t(1002)), &tied);
        assert_eq!((m2.position, m2.after_time), (3, Some(t(29))));
        // Once a page reaches past the run, the keyset moves on and the page number resets.
        let m3 = m2.advance_by_time(true, Some(t(1003)), &[rec(p, "u", 50), rec(p, "v", 60), rec(p, "w", 70)]);
        assert_eq!((m3.position, m3.after_time, m3.boundary.clone()), (1, Some(t(69)), vec!["w".to_string()]));
        let end = m2.advance_by_time(false, Some(t(1003)), &[]);
        assert_eq!((end.position, end.after_time, end.modified_since, end.boundary.len()), (1, None, Some(t(995)), 0));
        let mut q = n.clone();
        q.provider = Provider::QuickBooks;
        assert!(q.check(Provider::QuickBooks, Entity::Invoice).is_err(), "a time keyset is not a QuickBooks cursor");
    }

    /// CI found this one: three records written at x.9 s (listed as x) and seven at x+1.1 s. The
    /// filter one second before the last time is x, which takes the first three back: they must
    /// not be read twice, whatever second the clock was in.
    #[test]
    fn a_record_at_the_new_filter_time_is_not_read_twice() {
        let p = Provider::Zoho;
        let c = Cursor::start(p, Entity::Contact).with_page_size(4);
        let page1 = [rec(p, "a", 40), rec(p, "b", 40), rec(p, "c", 41), rec(p, "d", 41)];
        let n = c.advance_by_time(true, Some(t(1000)), &page1);
        // The first record is not before the new filter time (40), so the keyset cannot move.
        assert_eq!((n.position, n.after_time, n.boundary.len()), (2, None, 0));
        // A page that reaches past its first record moves, and everything at or after the filter
        // time is the boundary, the record exactly at it included.
        let page = [rec(p, "e", 10), rec(p, "f", 29), rec(p, "g", 30)];
        let m = c.advance_by_time(true, Some(t(1000)), &page);
        assert_eq!((m.position, m.after_time), (1, Some(t(29))));
        assert_eq!(m.boundary, ["f".to_string(), "g".to_string()]);
        let again = m.drop_boundary(vec![rec(p, "f", 29), rec(p, "g", 30), rec(p, "h", 30)]);
        assert_eq!(again.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["h"]);
    }

    proptest::proptest! {
        /// A time-ordered pass over an unchanging list reads every record exactly once, whatever
        /// the times: the provider keeps milliseconds and sorts by them (ties in store order), lists
        /// whole seconds (Zoho) or milliseconds (Xero), and its filter is inclusive or not.
        #[test]
        fn a_time_ordered_pass_reads_every_record_once(
            gaps in proptest::collection::vec(0i64..1_500, 1..60),
            page_size in 1u32..8,
            zoho in proptest::bool::ANY,
            inclusive in proptest::bool::ANY,
        ) {
            let p = if zoho { Provider::Zoho } else { Provider::Xero };
            // Fine times ascending from an arbitrary millisecond, often several in one second.
            let fine: Vec<i64> = gaps.iter().scan(1_700_000_000_123i64, |at, g| { *at += g; Some(*at) }).collect();
            let listed = |ms: i64| if zoho { ms.div_euclid(1000) * 1000 } else { ms };
            let mut cursor = Cursor::start(p, Entity::Invoice).with_page_size(page_size);
            let mut read: Vec<usize> = Vec::new();
            for _ in 0..200 {
                let since = cursor.list_since().map(|s| s.timestamp_millis());
                let matching: Vec<usize> = (0..fine.len())
                    .filter(|&i| since.is_none_or(|s| if inclusive { fine[i] >= s } else { fine[i] > s }))
                    .collect();
                let size = page_size as usize;
                let start = (cursor.position as usize - 1) * size;
                let rows: Vec<usize> = matching.iter().copied().skip(start).take(size).collect();
                let has_more = matching.len() > start + rows.len();
                let records: Vec<Record> = rows
                    .iter()
                    .map(|&i| Record { updated_at: DateTime::from_timestamp_millis(listed(fine[i])), ..rec(p, &i.to_string(), 0) })
                    .collect();
                let next = cursor.advance_by_time(has_more, None, &records);
                read.extend(cursor.drop_boundary(records).iter().map(|r| r.id.parse::<usize>().unwrap()));
                cursor = next;
                if !has_more {
                    break;
                }
            }
            read.sort_unstable();
            proptest::prop_assert_eq!(read, (0..fine.len()).collect::<Vec<_>>());
        }
    }

    #[test]
    fn callback_params_use_the_providers_names() {
        let p = CallbackParams::from_query([
            ("code", "c"),
            ("realmId", "934"),
            ("accounts-server", "https://accounts.zoho.eu"),
            ("location", "eu"),
        ]);
        assert_eq!(p.realm_id.as_deref(), Some("934"));
        assert_eq!(p.accounts_server.as_deref(), Some("https://accounts.zoho.eu"));
        assert_eq!(p.location.as_deref(), Some("eu"));
    }

    #[test]
    fn text_reads_strings_and_numbers() {
        let v = serde_json::json!({"Id": "7", "Total": 12.5, "Ref": {"name": "Acme"}, "Empty": ""});
        assert_eq!(text(&v, "Id").as_deref(), Some("7"));
        assert_eq!(text(&v, "Total").as_deref(), Some("12.5"));
        assert_eq!(text(&v, "Empty"), None);
        assert_eq!(text_at(&v, &["Ref", "name"]).as_deref(), Some("Acme"));
        assert_eq!("customerpayments".parse::<Entity>().unwrap(), Entity::Payment);
    }

    #[test]
    fn provider_timestamps_parse() {
        assert_eq!(parse_time("/Date(1551212901659+0000)/"), Some(Utc.timestamp_millis_opt(1551212901659).unwrap()));
        assert_eq!(parse_time("/Date(1551212901659)/"), Some(Utc.timestamp_millis_opt(1551212901659).unwrap()));
        assert_eq!(parse_time("2026-03-01T12:00:00+0530"), Some(Utc.with_ymd_and_hms(2026, 3, 1, 6, 30, 0).unwrap()));
        assert_eq!(parse_time("2026-03-01T12:00:00-08:00"), Some(Utc.with_ymd_and_hms(2026, 3, 1, 20, 0, 0).unwrap()));
        assert_eq!(parse_time("2026-03-01T12:00:00.123Z").unwrap().timestamp_subsec_millis(), 123);
        assert_eq!(parse_time("2019-02-26T20:28:21.659"), Some(Utc.timestamp_millis_opt(1551212901659).unwrap()));
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn hostile_timestamps_do_not_panic() {
        for s in [
            "/Date()/",
            "/Date(+)/",
            "/Date(-)/",
            "/Date(é)/",
            "/Date(1é+0000)/",
            "/Date(é+0000)/",
            "/Date(\u{1F600})/",
            "/Date(",
            ")/",
            "/Date(99999999999999999999999)/",
            "2026-13-45T99:99:99Z",
            "２０２６-01-01T00:00:00Z",
            "\u{0}",
            "",
        ] {
            let _ = parse_time(s);
        }
        assert_eq!(parse_time("/Date(-1000+0000)/"), Some(Utc.timestamp_millis_opt(-1000).unwrap()));
        assert_eq!(parse_time("/Date()/"), None);
    }

    #[test]
    fn api_urls_encode_ids() {
        let base = url::Url::parse("http://h/quickbooks/v3/company/").unwrap();
        assert_eq!(api_url(&base, &["9341", "invoice", "12"]).unwrap().as_str(), "http://h/quickbooks/v3/company/9341/invoice/12");
        assert_eq!(
            api_url(&base, &["1", "invoice", "../../x?y#z"]).unwrap().as_str(),
            "http://h/quickbooks/v3/company/1/invoice/..%2F..%2Fx%3Fy%23z"
        );
        assert!(api_url(&base, &["", "query"]).is_err());
        assert!(api_url(&base, &["1", "invoice", ".."]).is_err());
    }
}
