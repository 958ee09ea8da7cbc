//! One error type for the whole integration layer.
//!
//! Every variant maps to a stable numeric code in a band (1xxx auth, 2xxx rate limit, 3xxx circuit,
//! 4xxx webhook/input, 5xxx provider, 6xxx tenancy/quota, 9xxx internal) and knows whether a retry
//! can help. Codes are a public contract with the main app: never renumber, only add.
//! Messages never carry secrets: variants hold descriptions, not token or key material.

use std::time::Duration;

use crate::provider::Provider;

/// Stable error codes. The numeric value is what logs, events and HTTP bodies carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[repr(u16)]
pub enum ErrorCode {
    // 1xxx: authentication and authorisation
    Unauthenticated = 1001,
    Forbidden = 1002,
    InvalidGrant = 1003,
    InvalidState = 1004,
    TokenUnavailable = 1005,
    ProviderAuthFailed = 1006,
    /// The user (or the provider on their behalf) declined the authorisation.
    ConsentDenied = 1007,
    /// The connection's grant can no longer be refreshed; an admin must connect again.
    NeedsReauth = 1008,
    /// The grant lacks a scope the operation needs; an admin must connect again with it.
    MissingScope = 1009,
    /// The provider granted fewer scopes than the tenant's enabled entities need.
    InsufficientScope = 1010,
    // 2xxx: rate limits
    RateLimited = 2001,
    ProviderRateLimited = 2002,
    // 3xxx: circuit breaker
    CircuitOpen = 3001,
    // 4xxx: webhook and input
    InvalidInput = 4000,
    InvalidSignature = 4001,
    PayloadTooLarge = 4002,
    UnsupportedMediaType = 4003,
    NotFound = 4004,
    MethodNotAllowed = 4005,
    StaleWebhook = 4006,
    DuplicateDelivery = 4007,
    Conflict = 4009,
    RedirectNotAllowed = 4010,
    /// A passthrough request for a path, method or host not on the provider's allow-list.
    PassthroughNotAllowed = 4011,
    /// A records API page cursor that is malformed, forged, or from another query or tenant.
    InvalidCursor = 4012,
    // 5xxx: provider
    ProviderTransient = 5001,
    ProviderPermanent = 5002,
    ProviderTimeout = 5003,
    ProviderMalformed = 5004,
    ProviderError = 5005,
    // 6xxx: tenancy and quota
    TenantNotFound = 6001,
    QuotaExceeded = 6002,
    PlanLimit = 6003,
    InvalidTenantConfig = 6004,
    ProviderNotEnabled = 6005,
    // 9xxx: internal
    Internal = 9000,
    Config = 9001,
    Storage = 9002,
    Crypto = 9003,
    Queue = 9004,
    NotImplemented = 9501,
}

impl ErrorCode {
    pub fn as_u16(self) -> u16 {
        self as u16
    }

    /// A fixed sentence per code for events the app may show its users. An error's own text can
    /// carry provider answers, ids and internal detail; events carry this instead (with the code).
    pub fn public_message(self) -> &'static str {
        use ErrorCode::*;
        match self {
            Unauthenticated => "The request was not authenticated.",
            Forbidden => "The request is not allowed.",
            InvalidGrant | NeedsReauth => "The connection needs to be authorised again by an admin.",
            InvalidState => "The authorisation request expired or was already used.",
            TokenUnavailable => "No usable access token for the connection right now.",
            ProviderAuthFailed => "The provider rejected our credentials.",
            ConsentDenied => "The authorisation was declined.",
            MissingScope | InsufficientScope => "The connection lacks a permission this operation needs; connect again granting it.",
            RateLimited | ProviderRateLimited => "The provider's rate limit was reached; the work continues later.",
            CircuitOpen => "The provider is failing calls for this organisation; the work continues later.",
            InvalidInput => "The request was invalid.",
            InvalidSignature => "The signature was missing or invalid.",
            PayloadTooLarge => "The payload is too large.",
            UnsupportedMediaType => "The media type is not supported.",
            NotFound => "A record or connection the job needs was not found.",
            MethodNotAllowed => "The method is not allowed.",
            StaleWebhook => "The webhook delivery was too old.",
            DuplicateDelivery => "Duplicate delivery.",
            Conflict => "The work conflicted with other work on the same records.",
            RedirectNotAllowed => "The redirect target is not allowed.",
            PassthroughNotAllowed => "The passthrough request is not allowed.",
            InvalidCursor => "The page cursor is not valid for this request; start the listing again.",
            ProviderTransient | ProviderError => "The provider failed temporarily.",
            ProviderPermanent => "The provider rejected the request.",
            ProviderTimeout => "The provider did not answer in time.",
            ProviderMalformed => "The provider sent an answer we could not read.",
            TenantNotFound => "The tenant was not found.",
            QuotaExceeded => "The monthly API call quota is spent; the work continues when it resets or is raised.",
            PlanLimit => "A plan limit was reached.",
            InvalidTenantConfig => "The tenant's configuration is invalid.",
            ProviderNotEnabled => "The provider is not enabled for this tenant.",
            Internal | Config | Storage | Crypto | Queue | NotImplemented => "An internal error occurred.",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "E{}", self.as_u16())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("{provider} grant is no longer valid ({reason}); the user must reconnect")]
    InvalidGrant { provider: Provider, reason: String },
    #[error("invalid oauth state: {0}")]
    InvalidState(String),
    #[error("no usable access token: {0}")]
    TokenUnavailable(String),
    #[error("{provider} rejected our credentials: {reason}")]
    ProviderAuth { provider: Provider, reason: String },
    #[error("the {provider} connection (grant {grant_id}) needs to be connected again")]
    NeedsReauth { provider: Provider, grant_id: String },
    #[error("the {provider} grant lacks the scope '{scope}' that {operation} needs; connect again granting it")]
    MissingScope { provider: Provider, scope: String, operation: String },
    #[error("{provider} did not grant the scopes this tenant's enabled entities need; missing: {missing}")]
    InsufficientScope { provider: Provider, missing: String },
    #[error("the authorisation at {provider} was declined ({error})")]
    ConsentDenied { provider: Provider, error: String },
    #[error("rate limited ({scope}); retry after {retry_after:?}")]
    RateLimited { scope: String, retry_after: Duration },
    #[error("{provider} rate limit hit ({problem}); retry after {retry_after:?}")]
    ProviderRateLimited { provider: Provider, problem: String, retry_after: Option<Duration> },
    #[error("circuit open for {scope}; retry after {retry_after:?}")]
    CircuitOpen { scope: String, retry_after: Duration },
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("webhook signature missing or invalid")]
    InvalidSignature,
    #[error("payload of {size} bytes exceeds the limit of {limit}")]
    PayloadTooLarge { size: usize, limit: usize },
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("method not allowed: {0}")]
    MethodNotAllowed(String),
    #[error("stale webhook: {0}")]
    StaleWebhook(String),
    #[error("duplicate delivery")]
    DuplicateDelivery,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("redirect target not allowed")]
    RedirectNotAllowed,
    #[error("invalid cursor: {0}")]
    InvalidCursor(String),
    #[error("passthrough not allowed for {provider}: {reason}")]
    PassthroughNotAllowed { provider: Provider, reason: String },
    #[error("{provider} transient error: {message}")]
    ProviderTransient { provider: Provider, status: Option<u16>, message: String },
    #[error("{provider} rejected the request: {message}")]
    ProviderPermanent { provider: Provider, status: Option<u16>, message: String },
    #[error("{provider} did not answer within {timeout:?}")]
    ProviderTimeout { provider: Provider, timeout: Duration },
    #[error("{provider} sent a malformed response: {message}")]
    ProviderMalformed { provider: Provider, message: String },
    #[error("tenant not found: {0}")]
    TenantNotFound(String),
    #[error("monthly API call quota of {limit} reached")]
    QuotaExceeded { limit: u64 },
    #[error("plan limit reached: {0}")]
    PlanLimit(String),
    #[error("invalid tenant configuration: {0}")]
    InvalidTenantConfig(String),
    #[error("provider {0} is not enabled for this tenant")]
    ProviderNotEnabled(Provider),
    #[error("storage: {message}")]
    Storage { message: String, retryable: bool },
    #[error("crypto: {0}")]
    Crypto(String),
    #[error("queue: {message}")]
    Queue { message: String, retryable: bool },
    #[error("not implemented: {0}")]
    NotImplemented(&'static str),
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        use Error::*;
        match self {
            Config(_) => ErrorCode::Config,
            Unauthenticated(_) => ErrorCode::Unauthenticated,
            Forbidden(_) => ErrorCode::Forbidden,
            InvalidGrant { .. } => ErrorCode::InvalidGrant,
            InvalidState(_) => ErrorCode::InvalidState,
            TokenUnavailable(_) => ErrorCode::TokenUnavailable,
            ProviderAuth { .. } => ErrorCode::ProviderAuthFailed,
            ConsentDenied { .. } => ErrorCode::ConsentDenied,
            NeedsReauth { .. } => ErrorCode::NeedsReauth,
            MissingScope { .. } => ErrorCode::MissingScope,
            InsufficientScope { .. } => ErrorCode::InsufficientScope,
            RateLimited { .. } => ErrorCode::RateLimited,
            ProviderRateLimited { .. } => ErrorCode::ProviderRateLimited,
            CircuitOpen { .. } => ErrorCode::CircuitOpen,
            InvalidInput(_) => ErrorCode::InvalidInput,
            InvalidSignature => ErrorCode::InvalidSignature,
            PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            NotFound(_) => ErrorCode::NotFound,
            MethodNotAllowed(_) => ErrorCode::MethodNotAllowed,
            StaleWebhook(_) => ErrorCode::StaleWebhook,
            DuplicateDelivery => ErrorCode::DuplicateDelivery,
            Conflict(_) => ErrorCode::Conflict,
            RedirectNotAllowed => ErrorCode::RedirectNotAllowed,
            PassthroughNotAllowed { .. } => ErrorCode::PassthroughNotAllowed,
            InvalidCursor(_) => ErrorCode::InvalidCursor,
            ProviderTransient { .. } => ErrorCode::ProviderTransient,
            ProviderPermanent { .. } => ErrorCode::ProviderPermanent,
            ProviderTimeout { .. } => ErrorCode::ProviderTimeout,
            ProviderMalformed { .. } => ErrorCode::ProviderMalformed,
            TenantNotFound(_) => ErrorCode::TenantNotFound,
            QuotaExceeded { .. } => ErrorCode::QuotaExceeded,
            PlanLimit(_) => ErrorCode::PlanLimit,
            InvalidTenantConfig(_) => ErrorCode::InvalidTenantConfig,
            ProviderNotEnabled(_) => ErrorCode::ProviderNotEnabled,
            Storage { .. } => ErrorCode::Storage,
            Crypto(_) => ErrorCode::Crypto,
            Queue { .. } => ErrorCode::Queue,
            NotImplemented(_) => ErrorCode::NotImplemented,
            Internal(_) => ErrorCode::Internal,
        }
    }

    /// Whether trying the same thing again later can succeed without a human changing something.
    pub fn is_retryable(&self) -> bool {
        use Error::*;
        match self {
            RateLimited { .. }
            | ProviderRateLimited { .. }
            | CircuitOpen { .. }
            | ProviderTransient { .. }
            | ProviderTimeout { .. }
            | TokenUnavailable(_)
            // Someone else changed the item first: read again and retry.
            | Conflict(_) => true,
            // A monthly quota resets; the job waits in the queue rather than failing.
            QuotaExceeded { .. } => true,
            Storage { retryable, .. } | Queue { retryable, .. } => *retryable,
            _ => false,
        }
    }

    /// How long the caller should wait before retrying, when the error says.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_after, .. } | Error::CircuitOpen { retry_after, .. } => Some(*retry_after),
            Error::ProviderRateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status an API-facing handler answers with for this error.
    pub fn http_status(&self) -> u16 {
        match self.code() {
            ErrorCode::Unauthenticated | ErrorCode::InvalidSignature => 401,
            ErrorCode::Forbidden
            | ErrorCode::MissingScope
            | ErrorCode::ProviderNotEnabled
            | ErrorCode::RedirectNotAllowed
            | ErrorCode::PassthroughNotAllowed
            | ErrorCode::ConsentDenied
            | ErrorCode::InsufficientScope => 403,
            ErrorCode::InvalidState
            | ErrorCode::InvalidInput
            | ErrorCode::InvalidCursor
            | ErrorCode::StaleWebhook
            | ErrorCode::InvalidTenantConfig => 400,
            ErrorCode::NotFound | ErrorCode::TenantNotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Conflict | ErrorCode::NeedsReauth => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::RateLimited | ErrorCode::QuotaExceeded | ErrorCode::PlanLimit => 429,
            ErrorCode::NotImplemented => 501,
            ErrorCode::CircuitOpen | ErrorCode::ProviderRateLimited => 503,
            ErrorCode::InvalidGrant
            | ErrorCode::TokenUnavailable
            | ErrorCode::ProviderAuthFailed
            | ErrorCode::ProviderTransient
            | ErrorCode::ProviderPermanent
            | ErrorCode::ProviderTimeout
            | ErrorCode::ProviderMalformed
            | ErrorCode::ProviderError => 502,
            _ => 500,
        }
    }

    /// The message a caller may see. A 4xx says what was wrong with the request, which the caller
    /// can act on; a 5xx is our (or a provider's) failure, and its text can carry SDK error chains,
    /// resource names or provider answers, and the endpoints that answer are unauthenticated, so
    /// callers get a fixed sentence and the correlation id leads to the details in our logs.
    /// What an event may carry beyond its code's fixed sentence: details of our own refusals the
    /// app can act on (which scope to ask for, why a passthrough path is refused), never provider
    /// answers or internals.
    pub fn public_detail(&self) -> Option<serde_json::Value> {
        match self {
            Error::MissingScope { scope, operation, .. } => Some(serde_json::json!({"scope": scope, "operation": operation})),
            Error::PassthroughNotAllowed { reason, .. } => Some(serde_json::json!({"reason": reason})),
            _ => None,
        }
    }

    pub fn public_message(&self) -> String {
        if self.http_status() < 500 {
            return self.to_string();
        }
        match self.code() {
            ErrorCode::NotImplemented => "not implemented",
            ErrorCode::CircuitOpen | ErrorCode::ProviderRateLimited => "temporarily unavailable; retry later",
            ErrorCode::InvalidGrant | ErrorCode::TokenUnavailable | ErrorCode::ProviderAuthFailed => {
                "the provider did not accept the authorisation"
            }
            ErrorCode::ProviderTransient
            | ErrorCode::ProviderPermanent
            | ErrorCode::ProviderTimeout
            | ErrorCode::ProviderMalformed
            | ErrorCode::ProviderError => "the provider could not complete the request",
            _ => "internal error",
        }
        .to_string()
    }

    /// The JSON body handlers return: code, name, message, retryable. Safe to show to callers
    /// (see [`Error::public_message`]).
    pub fn to_body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "code": self.code().as_u16(),
                "name": format!("{:?}", self.code()),
                "message": self.public_message(),
                "retryable": self.is_retryable(),
            }
        })
    }

    /// [`Error::to_body`] plus the request's correlation id, which is what support needs to find
    /// the full error in the logs.
    pub fn to_public_body(&self, correlation_id: &str) -> serde_json::Value {
        let mut body = self.to_body();
        body["error"]["correlation_id"] = serde_json::Value::String(correlation_id.to_string());
        body
    }

    pub fn storage(e: impl std::fmt::Display) -> Self {
        Error::Storage { message: e.to_string(), retryable: true }
    }

    pub fn queue(e: impl std::fmt::Display) -> Self {
        Error::Queue { message: e.to_string(), retryable: true }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_sit_in_their_bands() {
        let cases: Vec<(Error, u16)> = vec![
            (Error::Unauthenticated("x".into()), 1),
            (Error::InvalidGrant { provider: Provider::Xero, reason: "invalid_grant".into() }, 1),
            (Error::RateLimited { scope: "t".into(), retry_after: Duration::from_secs(1) }, 2),
            (Error::CircuitOpen { scope: "t".into(), retry_after: Duration::from_secs(1) }, 3),
            (Error::InvalidSignature, 4),
            (Error::PayloadTooLarge { size: 2, limit: 1 }, 4),
            (Error::ProviderTransient { provider: Provider::QuickBooks, status: Some(503), message: "x".into() }, 5),
            (Error::QuotaExceeded { limit: 10 }, 6),
            (Error::Crypto("x".into()), 9),
            (Error::NotImplemented("x"), 9),
        ];
        for (err, band) in cases {
            assert_eq!(err.code().as_u16() / 1000, band, "{err:?}");
        }
    }

    #[test]
    fn retryable_flag_follows_the_kind_of_failure() {
        assert!(Error::ProviderTimeout { provider: Provider::Zoho, timeout: Duration::from_secs(1) }.is_retryable());
        assert!(Error::ProviderRateLimited { provider: Provider::Xero, problem: "minute".into(), retry_after: None }.is_retryable());
        assert!(!Error::InvalidGrant { provider: Provider::Xero, reason: "x".into() }.is_retryable());
        assert!(!Error::InvalidSignature.is_retryable());
        assert!(!Error::ProviderPermanent { provider: Provider::Zoho, status: Some(400), message: "x".into() }.is_retryable());
        assert!(!Error::Storage { message: "x".into(), retryable: false }.is_retryable());
        assert!(Error::storage("throttled").is_retryable());
    }

    #[test]
    fn http_status_and_body_carry_the_code() {
        let e = Error::InvalidSignature;
        assert_eq!(e.http_status(), 401);
        let body = e.to_body();
        assert_eq!(body["error"]["code"], 4001);
        assert_eq!(body["error"]["name"], "InvalidSignature");
        assert_eq!(body["error"]["retryable"], false);
        assert_eq!(Error::NotImplemented("sync").http_status(), 501);
        assert_eq!(Error::PayloadTooLarge { size: 2, limit: 1 }.http_status(), 413);
        assert_eq!(ErrorCode::QuotaExceeded.to_string(), "E6002");
    }

    #[test]
    fn server_errors_show_callers_only_the_code_a_fixed_message_and_the_correlation_id() {
        let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:ttya-prod-webhook-keys-AbCdEf";
        let cases = vec![
            Error::Internal(format!("GetSecretValue({arn}): AccessDeniedException: dispatch failure: io error")),
            Error::storage(format!("PutItem(nonce): ServiceError {{ source: ThrottlingException, raw: {arn} }}")),
            Error::queue(format!("SendMessageBatch: {arn}")),
            Error::Crypto(format!("kms Decrypt {arn} denied")),
            Error::ProviderPermanent { provider: Provider::Zoho, status: Some(500), message: format!("body: {arn}") },
        ];
        for e in cases {
            assert!(e.http_status() >= 500, "{e:?}");
            let body = e.to_public_body("corr-123").to_string();
            assert!(!body.contains(arn) && !body.contains("arn:aws") && !body.contains("Exception"), "{body}");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["error"]["code"], e.code().as_u16());
            assert_eq!(v["error"]["correlation_id"], "corr-123");
            assert!(!e.public_message().contains("dispatch"));
        }
        // 4xx messages keep telling the caller what to fix.
        let e = Error::InvalidInput("return_url is missing".into());
        assert_eq!(e.to_public_body("c")["error"]["message"], "invalid input: return_url is missing");
    }

    #[test]
    fn retry_after_is_carried() {
        let e =
            Error::ProviderRateLimited { provider: Provider::Xero, problem: "minute".into(), retry_after: Some(Duration::from_secs(7)) };
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(Error::InvalidSignature.retry_after(), None);
    }
}
