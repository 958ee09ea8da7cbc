//! One interface over the three providers. Callers pick the implementation by `Provider` at run time
//! through `ProviderClient`; the futures are `Send` so they can run on spawned tasks.

use std::future::Future;

use serde_json::Value;
use url::Url;

use crate::error::Result;
use crate::http_client::HttpClient;
use crate::providers::endpoints::Endpoints;
use crate::providers::model::{AuthorizeRequest, CallbackParams, ClientCredentials, Cursor, Entity, Grant, Org, Page, Record};
use crate::providers::quickbooks::QuickBooksClient;
use crate::providers::xero::XeroClient;
use crate::providers::zoho::ZohoClient;
use crate::providers::Provider;
use crate::tokens::TokenSet;
use crate::Config;

pub trait AccountingProvider {
    fn provider(&self) -> Provider;

    /// Whether the authorize URL carries a PKCE challenge (and the exchange its verifier).
    fn supports_pkce(&self) -> bool;

    /// The consent page to send the user to.
    fn authorize_url(&self, req: &AuthorizeRequest<'_>) -> Result<Url>;

    /// Exchanges the callback's code for tokens. `callback` carries the provider's extra callback
    /// parameters (QuickBooks realmId; Zoho location and accounts-server).
    fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &Url,
        pkce_verifier: Option<&str>,
        callback: &CallbackParams,
    ) -> impl Future<Output = Result<Grant>> + Send;

    /// New tokens for a grant. Where the provider rotates refresh tokens the result carries the new
    /// one, and the caller must store it before anything else; where it does not (Zoho) the old one
    /// is kept.
    fn refresh(&self, tokens: &TokenSet) -> impl Future<Output = Result<TokenSet>> + Send;

    /// Revokes the grant at the provider. Revoking a grant that is already dead succeeds.
    fn revoke(&self, tokens: &TokenSet) -> impl Future<Output = Result<()>> + Send;

    /// The organisations this grant reaches (QuickBooks: the callback's realm; Xero: the tenants of
    /// this consent; Zoho: every organization of the user).
    fn discover_orgs(&self, tokens: &TokenSet, callback: &CallbackParams) -> impl Future<Output = Result<Vec<Org>>> + Send;

    /// One page of records from where `cursor` is.
    fn list(&self, tokens: &TokenSet, org_id: &str, cursor: &Cursor) -> impl Future<Output = Result<Page>> + Send;

    /// `list`, each record handed to `finish` as soon as it is read, while its parsed JSON is still
    /// in the cache (the sync worker normalises it there and takes its raw JSON). A record the
    /// previous page already read is not handed over (`Cursor::keeps`).
    fn list_with<F: FnMut(&mut Record) + Send>(
        &self,
        tokens: &TokenSet,
        org_id: &str,
        cursor: &Cursor,
        finish: F,
    ) -> impl Future<Output = Result<Page>> + Send;

    fn get(&self, tokens: &TokenSet, org_id: &str, entity: Entity, id: &str) -> impl Future<Output = Result<Record>> + Send;

    /// Creates a record. The same `idempotency_key` gives the same record, not a second one, where
    /// the provider supports it (QuickBooks `requestid`, Xero `Idempotency-Key`; Zoho has none).
    fn create(
        &self,
        tokens: &TokenSet,
        org_id: &str,
        entity: Entity,
        payload: &Value,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<Record>> + Send;

    /// Changes a record that exists (`crate::writes` decides what each action sends). The same
    /// `idempotency_key` acts once where the provider supports one (QuickBooks `requestid`, Xero
    /// `Idempotency-Key`). `None`: the provider answered without the record (a deletion).
    fn change(
        &self,
        tokens: &TokenSet,
        org_id: &str,
        entity: Entity,
        change: &Change<'_>,
        idempotency_key: &str,
    ) -> impl Future<Output = Result<Option<Record>>> + Send;
}

/// How a change reaches the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// QuickBooks: a sparse update naming `Id` and `SyncToken`; Xero: POST to the record; Zoho: PUT.
    Update,
    /// QuickBooks `operation=void`; Zoho `POST /{module}/{id}/status/void`. (Xero voids by update.)
    Void,
    /// QuickBooks `operation=delete`; Zoho `DELETE`. (Xero deletes and archives by update.)
    Delete,
}

#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    pub kind: ChangeKind,
    pub id: &'a str,
    /// QuickBooks: the SyncToken the change is based on (QuickBooks refuses a stale one).
    pub version: Option<&'a str>,
    /// The fields to set (Update), in the provider's own JSON.
    pub body: &'a Value,
    /// Which of the entity's collections holds the record (`write_collection`): QuickBooks and
    /// Zoho keep suppliers' credit notes apart from customers'.
    pub collection: usize,
}

/// The collection of `entity` a record is written to: 1 for a supplier's credit note where the
/// provider keeps them apart (QuickBooks VendorCredit, Zoho vendorcredits), else 0. Xero keeps both
/// kinds in CreditNotes, told apart by `Type`.
pub fn write_collection(provider: Provider, entity: Entity, purchase: bool) -> usize {
    usize::from(entity == Entity::CreditNote && purchase && provider != Provider::Xero)
}

/// The collection of `bank_transaction` a stored transaction is in, from what was read: QuickBooks
/// Purchase (0; a card refund too), Deposit (1), Transfer (2), told by the type word the read kept;
/// Zoho expenses (0) and banktransactions (1). Xero changes go to BankTransactions (0).
pub fn bank_collection(provider: Provider, t: &crate::books::bank::BankTransaction) -> usize {
    use crate::books::bank::BankKind as K;
    match provider {
        Provider::QuickBooks => match t.provider_type.as_deref() {
            Some("Deposit") => 1,
            Some("Transfer") => 2,
            _ => 0,
        },
        Provider::Zoho => usize::from(t.kind != K::Expense),
        Provider::Xero => 0,
    }
}

#[derive(Clone, Debug)]
pub enum ProviderClient {
    QuickBooks(QuickBooksClient),
    Xero(XeroClient),
    Zoho(ZohoClient),
}

impl ProviderClient {
    pub fn new(provider: Provider, endpoints: Endpoints, credentials: ClientCredentials, http: HttpClient) -> Self {
        match provider {
            Provider::QuickBooks => ProviderClient::QuickBooks(QuickBooksClient::new(endpoints, credentials, http)),
            Provider::Xero => ProviderClient::Xero(XeroClient::new(endpoints, credentials, http)),
            Provider::Zoho => ProviderClient::Zoho(ZohoClient::new(endpoints, credentials, http)),
        }
    }

    /// Endpoints from the configuration (sandbox when `PROVIDER_BASE_URL` is set).
    pub fn from_config(config: &Config, provider: Provider, credentials: ClientCredentials, http: HttpClient) -> Self {
        Self::new(provider, Endpoints::from_config(config, provider), credentials, http)
    }
}

macro_rules! dispatch {
    ($self:ident, $c:ident => $e:expr) => {
        match $self {
            ProviderClient::QuickBooks($c) => $e,
            ProviderClient::Xero($c) => $e,
            ProviderClient::Zoho($c) => $e,
        }
    };
}

impl AccountingProvider for ProviderClient {
    fn provider(&self) -> Provider {
        dispatch!(self, c => c.provider())
    }

    fn supports_pkce(&self) -> bool {
        dispatch!(self, c => c.supports_pkce())
    }

    fn authorize_url(&self, req: &AuthorizeRequest<'_>) -> Result<Url> {
        dispatch!(self, c => c.authorize_url(req))
    }

    async fn exchange_code(&self, code: &str, redirect_uri: &Url, pkce_verifier: Option<&str>, callback: &CallbackParams) -> Result<Grant> {
        dispatch!(self, c => c.exchange_code(code, redirect_uri, pkce_verifier, callback).await)
    }

    async fn refresh(&self, tokens: &TokenSet) -> Result<TokenSet> {
        dispatch!(self, c => c.refresh(tokens).await)
    }

    async fn revoke(&self, tokens: &TokenSet) -> Result<()> {
        dispatch!(self, c => c.revoke(tokens).await)
    }

    async fn discover_orgs(&self, tokens: &TokenSet, callback: &CallbackParams) -> Result<Vec<Org>> {
        dispatch!(self, c => c.discover_orgs(tokens, callback).await)
    }

    async fn list(&self, tokens: &TokenSet, org_id: &str, cursor: &Cursor) -> Result<Page> {
        dispatch!(self, c => c.list(tokens, org_id, cursor).await)
    }

    async fn list_with<F: FnMut(&mut Record) + Send>(&self, tokens: &TokenSet, org_id: &str, cursor: &Cursor, finish: F) -> Result<Page> {
        dispatch!(self, c => c.list_with(tokens, org_id, cursor, finish).await)
    }

    async fn get(&self, tokens: &TokenSet, org_id: &str, entity: Entity, id: &str) -> Result<Record> {
        dispatch!(self, c => c.get(tokens, org_id, entity, id).await)
    }

    async fn create(&self, tokens: &TokenSet, org_id: &str, entity: Entity, payload: &Value, idempotency_key: &str) -> Result<Record> {
        dispatch!(self, c => c.create(tokens, org_id, entity, payload, idempotency_key).await)
    }

    async fn change(
        &self,
        tokens: &TokenSet,
        org_id: &str,
        entity: Entity,
        change: &Change<'_>,
        idempotency_key: &str,
    ) -> Result<Option<Record>> {
        dispatch!(self, c => c.change(tokens, org_id, entity, change, idempotency_key).await)
    }
}
