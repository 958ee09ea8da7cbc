//! JSON logs and CloudWatch EMF metrics, the way Lambda's advanced logging controls and AWS Lambda
//! Powertools users expect them.
//!
//! Logs: tracing-subscriber's own JSON formatter (event fields flattened, the span list included, so
//! spans reach the logs), and on every line besides: `correlation_id`, `tenant_id`, `provider` from
//! the task-local [`crate::context`]; `function_request_id` and `xray_trace_id` from the invocation
//! (lambda_runtime's "Lambda runtime invoke" span, else `_X_AMZN_TRACE_ID`); `function_name`
//! (AWS_LAMBDA_FUNCTION_NAME), `cold_start` (true until the process's first invocation is over) and
//! `service`. Field names follow Powertools' logger.
//!
//! Metrics: EMF lines on stdout, which CloudWatch turns into metrics without an API call. Every metric
//! carries the deployment's `service` and `stage` dimensions, so dev and prod never mix in one series.
//! (metrics_cloudwatch_embedded 0.10, the maintained EMF crate, was considered: it needs a global
//! `metrics` recorder flushed by wrapping each function's lambda service, i.e. every main changes and
//! a flush can be lost to a timeout, for what one JSON line per event already does here.)

use std::fmt;
use std::io::Write;
use std::sync::OnceLock;

use serde_json::{Map, Value};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::{Format, Json, JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;

use crate::context;

/// The `service` of every log line and metric. One name for the four functions of a deployment:
/// `function_name` tells them apart, `stage` tells deployments apart.
pub const SERVICE: &str = "ttya-integrations";

/// The EMF namespace (template.yaml's alarms read it).
pub const NAMESPACE: &str = "TalkToYourAccounts/Integrations";

/// Who is logging: read once per process from the Lambda environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub service: String,
    pub stage: String,
    pub function_name: Option<String>,
}

impl Deployment {
    pub fn from_env() -> Self {
        Deployment {
            service: SERVICE.to_string(),
            // Config requires STAGE; a process without it (a unit test) reports "unknown" rather
            // than borrowing another deployment's series.
            stage: std::env::var("STAGE").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| "unknown".into()),
            function_name: std::env::var("AWS_LAMBDA_FUNCTION_NAME").ok().filter(|s| !s.is_empty()),
        }
    }

    pub fn current() -> &'static Deployment {
        static D: OnceLock<Deployment> = OnceLock::new();
        D.get_or_init(Deployment::from_env)
    }
}

/// The request id of the process's first invocation: lines logged before it ends (and during init)
/// are the cold start's.
static FIRST_REQUEST: OnceLock<String> = OnceLock::new();

fn is_cold(request_id: Option<&str>) -> bool {
    match request_id {
        None => FIRST_REQUEST.get().is_none(),
        Some(id) => FIRST_REQUEST.get_or_init(|| id.to_string()) == id,
    }
}

/// tracing-subscriber's JSON event format, with the Lambda and request fields added on top.
#[derive(Debug, Clone)]
pub struct JsonFormat {
    inner: Format<Json>,
    deployment: Deployment,
}

impl Default for JsonFormat {
    fn default() -> Self {
        JsonFormat::new(Deployment::current().clone())
    }
}

impl JsonFormat {
    pub fn new(deployment: Deployment) -> Self {
        let inner = tracing_subscriber::fmt::format().json().flatten_event(true).with_current_span(false).with_span_list(true);
        JsonFormat { inner, deployment }
    }
}

/// The innermost value of `key` among the line's spans (lambda_runtime's invoke span carries
/// `requestId` and `xrayTraceId`).
fn span_field(obj: &Map<String, Value>, key: &str) -> Option<String> {
    obj.get("spans")?.as_array()?.iter().rev().find_map(|s| s.get(key)?.as_str().map(str::to_string))
}

/// Adds the context and Lambda fields to one formatted line. Fields the event set itself win.
pub fn enrich(obj: &mut Map<String, Value>, d: &Deployment) {
    context::with_current(|ctx| {
        if let Some(ctx) = ctx {
            obj.entry("correlation_id").or_insert_with(|| ctx.correlation_id.clone().into());
            if let Some(t) = &ctx.tenant_id {
                obj.entry("tenant_id").or_insert_with(|| t.clone().into());
            }
            if let Some(p) = ctx.provider {
                obj.entry("provider").or_insert_with(|| p.as_str().into());
            }
        }
    });
    let request_id = span_field(obj, "requestId");
    if let Some(id) = &request_id {
        obj.entry("function_request_id").or_insert_with(|| id.clone().into());
    }
    let trace = span_field(obj, "xrayTraceId").or_else(|| std::env::var("_X_AMZN_TRACE_ID").ok().filter(|t| !t.is_empty()));
    if let Some(t) = trace {
        obj.entry("xray_trace_id").or_insert_with(|| t.into());
    }
    if let Some(f) = &d.function_name {
        obj.entry("function_name").or_insert_with(|| f.clone().into());
    }
    obj.insert("cold_start".into(), is_cold(request_id.as_deref()).into());
    obj.entry("service").or_insert_with(|| d.service.clone().into());
}

impl<S, N> FormatEvent<S, N> for JsonFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut line = String::new();
        self.inner.format_event(ctx, Writer::new(&mut line), event)?;
        let mut obj: Map<String, Value> = serde_json::from_str(line.trim_end()).map_err(|_| fmt::Error)?;
        enrich(&mut obj, &self.deployment);
        writeln!(writer, "{}", Value::Object(obj))
    }
}

/// The JSON subscriber writing to `writer` (stdout in the functions; a buffer in tests).
pub fn subscriber<W>(filter: Targets, format: JsonFormat, writer: W) -> impl Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    // `filter` decides what is logged. The formatter's own cap is the filter's most verbose level:
    // the process's max-level hint is the larger of the two, and a lower hint is what makes the
    // dependencies' debug and trace events cost one comparison each instead of a callsite
    // registration (measured: 0.15 ms of a cold start's CPU with the cap at TRACE).
    let most_verbose = filter.iter().map(|(_, level)| level).chain(filter.default_level()).max().unwrap_or(LevelFilter::OFF);
    tracing_subscriber::fmt()
        .with_max_level(most_verbose)
        .fmt_fields(JsonFields::new())
        .event_format(format)
        .with_writer(writer)
        .finish()
        .with(filter)
}

/// A log filter: levels, comma-separated, each either the default (`info`) or a target's
/// (`shared=debug`), as `LOG_LEVEL` takes them. A word that is neither (a misspelt level, a span or
/// field directive) is refused rather than read as a target: read so, `debgu` would turn every log
/// line off.
pub fn log_filter(spec: &str) -> Result<Targets, String> {
    let mut filter = Targets::new();
    let mut any = false;
    for directive in spec.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let (target, level) = match directive.split_once('=') {
            Some((target, level)) => (Some(target.trim()), level.trim()),
            None => (None, directive),
        };
        let level: LevelFilter =
            level.parse().map_err(|_| format!("'{directive}' is not a level (trace, debug, info, warn, error, off)"))?;
        filter = match target {
            None => filter.with_default(level),
            Some(t) if !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') => {
                filter.with_target(t, level)
            }
            Some(_) => return Err(format!("'{directive}' does not name a target (a crate or module path)")),
        };
        any = true;
    }
    if any {
        Ok(filter)
    } else {
        Err(format!("'{spec}' names no level"))
    }
}

/// Our own crates: the ones a DEBUG or TRACE application log level opens up.
const OWN_CRATES: [&str; 7] =
    ["shared", "oauth_callback", "token_refresher", "webhook_receiver", "sync_worker", "sync_scheduler", "records_api"];

/// The process's filter. Lambda's advanced logging controls set AWS_LAMBDA_LOG_LEVEL from the
/// function's ApplicationLogLevel; it wins over LOG_LEVEL so the level is one setting in
/// template.yaml.
fn process_filter(lambda_level: Option<&str>, log_level: &str) -> Targets {
    match lambda_level.map(|l| l.to_ascii_lowercase()).as_deref() {
        // Debug and trace for our own crates only: the AWS SDK's and hyper's would drown them and
        // print request details nobody asked for.
        Some(l @ ("debug" | "trace")) => log_filter(&format!("info,{}", OWN_CRATES.map(|c| format!("{c}={l}")).join(","))),
        Some(l @ ("info" | "warn" | "error")) => log_filter(l),
        // FATAL (Lambda's highest) has no tracing counterpart: errors only.
        Some("fatal") => log_filter("error"),
        _ => log_filter(log_level),
    }
    .unwrap_or_else(|_| Targets::new().with_default(LevelFilter::INFO))
}

/// Installs the JSON subscriber once per process. Safe to call more than once (tests do). In a
/// Lambda process the first call also counts the cold start (metric `ColdStart`).
pub fn init(log_level: &str) {
    let lambda_level = std::env::var("AWS_LAMBDA_LOG_LEVEL").ok();
    let filter = process_filter(lambda_level.as_deref(), log_level);
    let installed = tracing::subscriber::set_global_default(subscriber(filter, JsonFormat::default(), std::io::stdout)).is_ok();
    if installed {
        if let Some(f) = &Deployment::current().function_name {
            metric("ColdStart", 1.0, "Count", &[("function_name", f)]);
        }
    }
}

/// Writes one CloudWatch Embedded Metric Format line with the given metric and dimensions.
pub fn metric(name: &str, value: f64, unit: &str, dimensions: &[(&str, &str)]) {
    let line = emf_line(name, value, unit, dimensions, chrono::Utc::now().timestamp_millis());
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

/// Metrics that alarms watch (template.yaml). Besides their dimensioned series they are also
/// published with the deployment's dimensions only (`service`, `stage`), because a CloudWatch alarm
/// reads one exact series and cannot sum over every provider and reason.
pub const ALARMED_TOTALS: [&str; 6] = [
    "WebhookFailed",
    "ConnectServerFailed",
    "EventPublishFailed",
    "ConnectUndoIncomplete",
    "RefreshRunMostOverdueSeconds",
    "SyncStaleConnections",
];

/// The dimensions every metric carries, first in every dimension set.
pub const DEPLOYMENT_DIMENSIONS: [&str; 2] = ["service", "stage"];

pub fn emf_line(name: &str, value: f64, unit: &str, dimensions: &[(&str, &str)], timestamp_ms: i64) -> String {
    emf_line_for(Deployment::current(), name, value, unit, dimensions, timestamp_ms)
}

pub fn emf_line_for(d: &Deployment, name: &str, value: f64, unit: &str, dimensions: &[(&str, &str)], timestamp_ms: i64) -> String {
    let own: Vec<&str> = dimensions.iter().map(|(k, _)| *k).filter(|k| !DEPLOYMENT_DIMENSIONS.contains(k)).collect();
    let full: Vec<&str> = DEPLOYMENT_DIMENSIONS.iter().copied().chain(own.iter().copied()).collect();
    let dim_sets: Vec<Vec<&str>> =
        if ALARMED_TOTALS.contains(&name) && !own.is_empty() { vec![full, DEPLOYMENT_DIMENSIONS.to_vec()] } else { vec![full] };
    let mut obj = Map::new();
    obj.insert(
        "_aws".into(),
        serde_json::json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": dim_sets,
                "Metrics": [{ "Name": name, "Unit": unit }]
            }]
        }),
    );
    for (k, v) in dimensions {
        if !DEPLOYMENT_DIMENSIONS.contains(k) {
            obj.insert((*k).into(), (*v).into());
        }
    }
    obj.insert("service".into(), d.service.clone().into());
    obj.insert("stage".into(), d.stage.clone().into());
    obj.insert(name.into(), value.into());
    context::with_current(|ctx| {
        if let Some(ctx) = ctx {
            obj.insert("correlation_id".into(), ctx.correlation_id.clone().into());
        }
    });
    Value::Object(obj).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Provider, RequestContext};
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    fn deployment() -> Deployment {
        Deployment { service: SERVICE.into(), stage: "dev".into(), function_name: Some("webhook-receiver".into()) }
    }

    fn lines(buf: &Buf) -> Vec<Value> {
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    #[tokio::test]
    async fn log_lines_are_json_with_the_context_fields() {
        let buf = Buf::default();
        let _guard = tracing::subscriber::set_default(subscriber(
            Targets::new().with_default(LevelFilter::INFO),
            JsonFormat::new(deployment()),
            buf.clone(),
        ));
        RequestContext::new(Some("corr-42"))
            .with_tenant("tenant-7")
            .with_provider(Provider::Zoho)
            .scope(async {
                tracing::info!(entity = "invoice", count = 3u64, "synced");
            })
            .await;
        tracing::warn!("outside");
        let lines = lines(&buf);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["message"], "synced");
        assert_eq!(lines[0]["correlation_id"], "corr-42");
        assert_eq!(lines[0]["tenant_id"], "tenant-7");
        assert_eq!(lines[0]["provider"], "zoho");
        assert_eq!(lines[0]["count"], 3);
        assert_eq!(lines[0]["level"], "INFO");
        assert!(lines[1].get("tenant_id").is_none());
        for l in &lines {
            assert_eq!(l["service"], SERVICE);
            assert_eq!(l["function_name"], "webhook-receiver");
            assert!(l["cold_start"].is_boolean(), "{l}");
        }
    }

    #[tokio::test]
    async fn spans_and_the_invocation_reach_every_line() {
        let buf = Buf::default();
        let _guard = tracing::subscriber::set_default(subscriber(
            Targets::new().with_default(LevelFilter::INFO),
            JsonFormat::new(deployment()),
            buf.clone(),
        ));
        // The span lambda_runtime opens around every invocation (layers/trace.rs).
        for id in ["req-1", "req-2"] {
            let invoke = tracing::info_span!("Lambda runtime invoke", requestId = id, xrayTraceId = "Root=1-abc-def");
            let _e = invoke.enter();
            let inner = tracing::info_span!("verify", provider_hint = "xero");
            let _i = inner.enter();
            tracing::info!(step = 1u64, "checked");
        }
        let lines = lines(&buf);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["function_request_id"], "req-1");
        assert_eq!(lines[1]["function_request_id"], "req-2");
        assert_eq!(lines[0]["xray_trace_id"], "Root=1-abc-def");
        let spans = lines[0]["spans"].as_array().unwrap();
        assert_eq!(spans.len(), 2, "{}", lines[0]);
        assert_eq!(spans[1]["name"], "verify");
        assert_eq!(spans[1]["provider_hint"], "xero");
        assert_eq!(lines[0]["step"], 1);
        // The process's first invocation is the cold start; later ones are warm. (Whichever test
        // saw a request id first owns "first"; this one's second request is warm either way.)
        assert_eq!(lines[1]["cold_start"], false);
    }

    #[test]
    fn a_log_filter_lets_through_what_its_levels_name_and_nothing_else() {
        let buf = Buf::default();
        let filter = log_filter("warn, shared=debug").unwrap();
        let _guard = tracing::subscriber::set_default(subscriber(filter, JsonFormat::new(deployment()), buf.clone()));
        tracing::debug!(target: "shared::sync", "ours at debug");
        tracing::trace!(target: "shared::sync", "ours at trace");
        tracing::info!(target: "aws_smithy_runtime", "the SDK at info");
        tracing::warn!(target: "aws_smithy_runtime", "the SDK at warn");
        let got: Vec<String> = lines(&buf).iter().map(|l| l["message"].as_str().unwrap().to_string()).collect();
        assert_eq!(got, ["ours at debug", "the SDK at warn"]);
    }

    #[test]
    fn lambdas_debug_level_opens_every_function_crate_and_not_the_sdk() {
        let debug = |f: &Targets, target: &str| f.would_enable(target, &tracing::Level::DEBUG);
        let f = process_filter(Some("DEBUG"), "info");
        for c in ["shared::sync", "oauth_callback", "token_refresher", "webhook_receiver", "sync_worker", "sync_scheduler", "records_api"] {
            assert!(debug(&f, c), "{c}");
        }
        assert!(!debug(&f, "aws_smithy_runtime") && f.would_enable("aws_smithy_runtime", &tracing::Level::INFO));
        // Lambda's level wins over LOG_LEVEL; without it LOG_LEVEL is read; a bad one falls back to info.
        assert!(
            !debug(&process_filter(Some("WARN"), "debug"), "shared")
                && !process_filter(Some("WARN"), "debug").would_enable("shared", &tracing::Level::INFO)
        );
        assert!(debug(&process_filter(None, "info,shared=debug"), "shared::sync"));
        assert!(!process_filter(Some("FATAL"), "info").would_enable("shared", &tracing::Level::WARN));
        let fallback = process_filter(None, "debgu");
        assert!(fallback.would_enable("shared", &tracing::Level::INFO) && !debug(&fallback, "shared"));
    }

    #[test]
    fn the_subscriber_hints_the_filters_most_verbose_level() {
        // The hint lets every `trace!` and `debug!` in the SDK, hyper and rustls be skipped by one
        // comparison; a TRACE hint would send each through its callsite's registration.
        for (spec, hint) in
            [("info", LevelFilter::INFO), ("warn,shared=debug", LevelFilter::DEBUG), ("error,sync_worker=trace", LevelFilter::TRACE)]
        {
            let s = subscriber(log_filter(spec).unwrap(), JsonFormat::new(deployment()), Buf::default());
            assert_eq!(s.max_level_hint(), Some(hint), "{spec}");
        }
    }

    #[test]
    fn a_log_filter_refuses_what_is_not_a_level() {
        for ok in ["info", "WARN", "off", "info,shared=debug,sync_worker=trace", "info, shared::sync = debug"] {
            assert!(log_filter(ok).is_ok(), "{ok}");
        }
        // A misspelt level would otherwise be read as a target and turn every other line off.
        for bad in ["debgu", "info,[[[", "shared=loud", "=debug", "info,shared{tenant}=debug", "info,a b=debug", " , "] {
            let err = log_filter(bad).unwrap_err();
            assert!(err.contains('\''), "{bad}: {err}");
        }
    }

    #[test]
    fn emf_line_declares_its_metric_with_the_deployment_dimensions() {
        let d = deployment();
        let v: Value =
            serde_json::from_str(&emf_line_for(&d, "WebhookRejected", 1.0, "Count", &[("provider", "xero"), ("reason", "E4001")], 1))
                .unwrap();
        assert_eq!(v["WebhookRejected"], 1.0);
        assert_eq!(v["provider"], "xero");
        assert_eq!(v["service"], SERVICE);
        assert_eq!(v["stage"], "dev");
        let cw = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(cw["Namespace"], NAMESPACE);
        assert_eq!(cw["Metrics"][0]["Name"], "WebhookRejected");
        assert_eq!(cw["Dimensions"], serde_json::json!([["service", "stage", "provider", "reason"]]));
        let prod: Value = serde_json::from_str(&emf_line_for(
            &Deployment { stage: "prod".into(), ..d },
            "WebhookRejected",
            1.0,
            "Count",
            &[("provider", "xero")],
            1,
        ))
        .unwrap();
        assert_eq!(prod["stage"], "prod");
    }

    #[test]
    fn alarmed_metrics_also_publish_a_deployment_total() {
        for name in ALARMED_TOTALS {
            let v: Value =
                serde_json::from_str(&emf_line_for(&deployment(), name, 1.0, "Count", &[("provider", "xero"), ("reason", "E9004")], 1))
                    .unwrap();
            let sets = v["_aws"]["CloudWatchMetrics"][0]["Dimensions"].as_array().unwrap().clone();
            assert_eq!(
                sets,
                vec![serde_json::json!(["service", "stage", "provider", "reason"]), serde_json::json!(["service", "stage"])],
                "{name}"
            );
        }
        // Without dimensions of its own a metric has exactly the deployment set (no duplicate).
        let v: Value = serde_json::from_str(&emf_line_for(&deployment(), "RefreshRunMostOverdueSeconds", 5.0, "Seconds", &[], 1)).unwrap();
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Dimensions"], serde_json::json!([["service", "stage"]]));
    }
}
