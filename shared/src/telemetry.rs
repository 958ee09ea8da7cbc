//! JSON logs and CloudWatch EMF metrics.
//!
//! Every log line is one JSON object with `timestamp`, `level`, `target`, `message`, the event's own
//! fields, and `correlation_id`, `tenant_id`, `provider` from the task-local [`crate::context`].
//! Metrics are EMF lines on stdout, which CloudWatch turns into metrics without an API call.

use std::fmt;
use std::io::Write;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use crate::context;

/// Formats one event as a JSON object, adding the request context.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonFormat;

struct FieldVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for FieldVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_string(), Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), Value::String(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_string(), value.into());
    }
}

/// Builds the JSON object for an event; split out so tests can check lines without a subscriber.
pub fn event_to_json(event: &Event<'_>) -> Map<String, Value> {
    let mut obj = Map::new();
    obj.insert("timestamp".into(), chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true).into());
    obj.insert("level".into(), event.metadata().level().as_str().into());
    obj.insert("target".into(), event.metadata().target().into());
    event.record(&mut FieldVisitor(&mut obj));
    context::with_current(|ctx| {
        if let Some(ctx) = ctx {
            // Explicit fields on the event win over the ambient context.
            obj.entry("correlation_id").or_insert_with(|| ctx.correlation_id.clone().into());
            if let Some(t) = &ctx.tenant_id {
                obj.entry("tenant_id").or_insert_with(|| t.clone().into());
            }
            if let Some(p) = ctx.provider {
                obj.entry("provider").or_insert_with(|| p.as_str().into());
            }
        }
    });
    obj
}

impl<S, N> FormatEvent<S, N> for JsonFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let obj = event_to_json(event);
        let line = serde_json::to_string(&obj).map_err(|_| fmt::Error)?;
        writeln!(writer, "{line}")
    }
}

/// Installs the JSON subscriber once per process. Safe to call more than once (tests do).
pub fn init(log_level: &str) {
    let filter = EnvFilter::try_new(log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).event_format(JsonFormat).with_writer(std::io::stdout).try_init();
}

/// Writes one CloudWatch Embedded Metric Format line with the given metric and dimensions.
pub fn metric(name: &str, value: f64, unit: &str, dimensions: &[(&str, &str)]) {
    let line = emf_line(name, value, unit, dimensions, chrono::Utc::now().timestamp_millis());
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

/// Metrics that alarms watch (template.yaml). Besides their dimensioned series they are also
/// published without dimensions (an empty EMF dimension set), because a CloudWatch alarm reads one
/// exact series and cannot sum over every provider and reason.
pub const ALARMED_TOTALS: [&str; 4] = ["WebhookFailed", "ConnectServerFailed", "EventPublishFailed", "ConnectUndoIncomplete"];

pub fn emf_line(name: &str, value: f64, unit: &str, dimensions: &[(&str, &str)], timestamp_ms: i64) -> String {
    let dim_names: Vec<&str> = dimensions.iter().map(|(k, _)| *k).collect();
    let dim_sets: Vec<Vec<&str>> =
        if ALARMED_TOTALS.contains(&name) && !dim_names.is_empty() { vec![dim_names, vec![]] } else { vec![dim_names] };
    let mut obj = Map::new();
    obj.insert(
        "_aws".into(),
        serde_json::json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": "TalkToYourAccounts/Integrations",
                "Dimensions": dim_sets,
                "Metrics": [{ "Name": name, "Unit": unit }]
            }]
        }),
    );
    for (k, v) in dimensions {
        obj.insert((*k).into(), (*v).into());
    }
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
    use tracing_subscriber::fmt::MakeWriter;

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

    #[tokio::test]
    async fn log_lines_are_json_with_the_context_fields() {
        let buf = Buf::default();
        let subscriber = tracing_subscriber::fmt().event_format(JsonFormat).with_writer(buf.clone()).finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        RequestContext::new(Some("corr-42"))
            .with_tenant("tenant-7")
            .with_provider(Provider::Zoho)
            .scope(async {
                tracing::info!(entity = "invoice", count = 3u64, "synced");
            })
            .await;
        tracing::warn!("outside");
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["message"], "synced");
        assert_eq!(lines[0]["correlation_id"], "corr-42");
        assert_eq!(lines[0]["tenant_id"], "tenant-7");
        assert_eq!(lines[0]["provider"], "zoho");
        assert_eq!(lines[0]["count"], 3);
        assert_eq!(lines[0]["level"], "INFO");
        assert!(lines[1].get("tenant_id").is_none());
    }

    #[test]
    fn emf_line_declares_its_metric() {
        let v: Value =
            serde_json::from_str(&emf_line("WebhookRejected", 1.0, "Count", &[("provider", "xero"), ("reason", "E4001")], 1)).unwrap();
        assert_eq!(v["WebhookRejected"], 1.0);
        assert_eq!(v["provider"], "xero");
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"], "WebhookRejected");
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0][1], "reason");
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Dimensions"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn alarmed_metrics_also_publish_a_total_without_dimensions() {
        for name in ALARMED_TOTALS {
            let v: Value = serde_json::from_str(&emf_line(name, 1.0, "Count", &[("provider", "xero"), ("reason", "E9004")], 1)).unwrap();
            let sets = v["_aws"]["CloudWatchMetrics"][0]["Dimensions"].as_array().unwrap().clone();
            assert_eq!(sets, vec![serde_json::json!(["provider", "reason"]), serde_json::json!([])], "{name}");
        }
    }
}
