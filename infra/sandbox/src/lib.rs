//! Provider sandbox: one HTTP server that plays QuickBooks Online, Xero and Zoho Books with their real
//! wire formats (OAuth, accounting lists and creates, rate limits, error bodies, signed webhooks), plus
//! a control API under `/_sandbox` for tests. The URL layout is in README.md.
//!
//! Tests run it in-process on a random port:
//! ```no_run
//! # async fn f() {
//! let sb = sandbox::spawn(sandbox::SandboxConfig::default()).await.unwrap();
//! let token_url = format!("{}/xero/identity/connect/token", sb.base_url);
//! # let _ = token_url; sb.shutdown().await;
//! # }
//! ```

// Handlers bail out with a ready provider-shaped `Response` as the error; it is the cold path and
// boxing it would only add noise.
#![allow(clippy::result_large_err)]

pub mod client;
pub mod control;
pub mod data;
pub mod faults;
pub mod http;
pub mod ledger;
pub mod lines;
pub mod model;
pub mod oauth;
pub mod quickbooks;
pub mod reference;
pub mod reports;
pub mod state;
pub mod webhooks;
pub mod writes;
pub mod xero;
pub mod zoho;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::routing::{delete, get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use model::{Entity, Provider};
pub use state::Settings;
use state::{AppState, Shared, World};

/// How to start a sandbox.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    pub host: IpAddr,
    /// 0 picks a free port.
    pub port: u16,
    /// The URL clients use to reach it, when it differs from `http://host:port` (e.g. behind a proxy).
    pub public_url: Option<String>,
    pub settings: Settings,
    /// Seed the default orgs and records (on by default).
    pub seed: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig { host: IpAddr::V4(Ipv4Addr::LOCALHOST), port: 0, public_url: None, settings: Settings::default(), seed: true }
    }
}

/// The sandbox itself, for callers that want to serve it on their own listener or runtime.
pub struct Sandbox {
    state: AppState,
}

impl Sandbox {
    pub fn new(base_url: String, settings: Settings, seed: bool) -> Sandbox {
        Sandbox { state: AppState(Arc::new(Shared { world: Mutex::new(World::new(settings, seed)), base_url })) }
    }

    pub fn router(&self) -> Router {
        router(self.state.clone())
    }
}

/// A sandbox serving in the background. Dropping it does not stop it; call `shutdown`.
pub struct RunningSandbox {
    pub base_url: String,
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl RunningSandbox {
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Resolves when the server stops (the binary waits on this).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Binds, then serves on the current Tokio runtime.
pub async fn spawn(cfg: SandboxConfig) -> std::io::Result<RunningSandbox> {
    let listener = TcpListener::bind((cfg.host, cfg.port)).await?;
    let addr = listener.local_addr()?;
    let base_url = cfg.public_url.clone().unwrap_or_else(|| {
        let host = if addr.ip().is_unspecified() { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { addr.ip() };
        format!("http://{}", SocketAddr::new(host, addr.port()))
    });
    let sandbox = Sandbox::new(base_url.clone(), cfg.settings, cfg.seed);
    let app = sandbox.router();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
    });
    Ok(RunningSandbox { base_url, addr, shutdown: Some(tx), task })
}

pub fn router(st: AppState) -> Router {
    let mut r = Router::new()
        // QuickBooks Online
        .route("/quickbooks/connect/oauth2", get(oauth::qbo_authorize))
        .route("/quickbooks/oauth2/v1/tokens/bearer", post(oauth::qbo_token))
        .route("/quickbooks/oauth2/v2/tokens/revoke", post(oauth::qbo_revoke))
        .route("/quickbooks/v3/company/{realm}/query", get(quickbooks::query_get).post(quickbooks::query_post))
        .route("/quickbooks/v3/company/{realm}/cdc", get(quickbooks::cdc))
        .route("/quickbooks/v3/company/{realm}/companyinfo/{id}", get(quickbooks::company_info))
        .route("/quickbooks/v3/company/{realm}/reports/{name}", get(quickbooks::report))
        // Xero
        .route("/xero/identity/connect/authorize", get(oauth::xero_authorize))
        .route("/xero/identity/connect/token", post(oauth::xero_token))
        .route("/xero/identity/connect/revocation", post(oauth::xero_revoke))
        .route("/xero/connections", get(oauth::xero_connections))
        .route("/xero/Connections", get(oauth::xero_connections))
        .route("/xero/connections/{id}", delete(oauth::xero_delete_connection))
        .route("/xero/Connections/{id}", delete(oauth::xero_delete_connection))
        .route("/xero/api.xro/2.0/Organisation", get(xero::organisation))
        .route("/xero/api.xro/2.0/Reports/{name}", get(xero::report))
        // Zoho
        .route("/zoho/accounts/{dc}/oauth/v2/auth", get(oauth::zoho_authorize))
        .route("/zoho/accounts/{dc}/oauth/v2/token", post(oauth::zoho_token))
        .route("/zoho/accounts/{dc}/oauth/v2/token/revoke", post(oauth::zoho_revoke))
        .route("/zoho/api/{dc}/books/v3/organizations", get(zoho::organizations))
        .route("/zoho/api/{dc}/books/v3/reports/{name}", get(zoho::report))
        .route("/zoho/api/{dc}/books/v3/settings/webhooks", get(zoho::list_webhooks).post(zoho::create_webhook))
        .route("/zoho/api/{dc}/books/v3/settings/webhooks/{id}", get(zoho::get_webhook).delete(zoho::delete_webhook))
        .route("/zoho/api/{dc}/books/v3/settings/workflows", get(zoho::list_workflows).post(zoho::create_workflow))
        .route("/zoho/api/{dc}/books/v3/settings/workflows/{id}", axum::routing::delete(zoho::delete_workflow));

    // One route per entity (rather than a path parameter) so counters read "GET /xero/api.xro/2.0/Invoices".
    for e in Entity::ALL {
        let lower = e.qbo_name().to_ascii_lowercase();
        // Entities another one's endpoint serves (Xero bills and suppliers; Zoho vendors) get no
        // route of their own.
        let (xero_own, zoho_own) = (e.home(Provider::Xero) == e, e.home(Provider::Zoho) == e);
        r = r
            .route(&format!("/quickbooks/v3/company/{{realm}}/{lower}"), post(move |s, p, q, h, b| quickbooks::create(s, e, p, q, h, b)))
            .route(&format!("/quickbooks/v3/company/{{realm}}/{lower}/{{id}}"), get(move |s, p, q, h| quickbooks::read(s, e, p, q, h)));
        let x = e.xero_name();
        if xero_own {
            r = r
                .route(
                    &format!("/xero/api.xro/2.0/{x}"),
                    get(move |s, q, h| xero::list(s, e, q, h))
                        .put(move |s, q, h, b| writes::xero::put_create(s, e, q, h, b))
                        .post(move |s, q, h, b| xero::create(s, e, q, h, b)),
                )
                .route(&format!("/xero/api.xro/2.0/{x}/{{id}}"), get(move |s, p, h| xero::read(s, e, p, h)));
        }
        if !zoho_own {
            continue;
        }
        let z = e.zoho_plural();
        r = r
            .route(
                &format!("/zoho/api/{{dc}}/books/v3/{z}"),
                get(move |s, p, q, h| zoho::list(s, e, p, q, h)).post(move |s, p, q, h, b| zoho::create(s, e, p, q, h, b)),
            )
            .route(
                &format!("/zoho/api/{{dc}}/books/v3/{z}/{{id}}"),
                get(move |s, p, q, h| zoho::read(s, e, p, q, h)).delete(move |s, p, q, h| zoho::remove(s, e, p, q, h)),
            );
    }

    let r = writes::routes(r);
    let r = r.route_layer(axum::middleware::from_fn_with_state(st.clone(), faults::provider_middleware));
    r.merge(control::routes()).fallback(faults::not_found).with_state(st)
}
