//! The native side's `tracing` events (the server's model loads, failures,
//! drain) as pino-compatible JSON lines, handed to the JS logger through the
//! hub. One sink per process, since events carry no server identity; with
//! no sink every callsite is disabled, so an idle log costs one branch.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use napi::bindgen_prelude::*;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::{reload, Layer};

use crate::errors::to_napi;
use crate::hub::{Hub, NativeHub};

/// Where lines go: the hub, for listener `id`.
static SINK: Mutex<Option<(Arc<Hub>, u64)>> = Mutex::new(None);
/// Changes the level of the installed subscriber.
static LEVEL: OnceLock<reload::Handle<LevelFilter, tracing_subscriber::Registry>> = OnceLock::new();

/// pino's numeric levels.
fn pino_level(l: &Level) -> u8 {
    match *l {
        Level::TRACE => 10,
        Level::DEBUG => 20,
        Level::INFO => 30,
        Level::WARN => 40,
        Level::ERROR => 50,
    }
}

fn filter_of(level: &str) -> Option<LevelFilter> {
    Some(match level {
        "trace" => LevelFilter::TRACE,
        "debug" => LevelFilter::DEBUG,
        "info" => LevelFilter::INFO,
        "warn" => LevelFilter::WARN,
        "error" | "fatal" => LevelFilter::ERROR,
        "silent" => LevelFilter::OFF,
        _ => return None,
    })
}

/// An event's fields as JSON values (`message` becomes pino's `msg`).
struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(key(field), Value::from(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(key(field), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(key(field), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(key(field), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(key(field), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(key(field), Value::from(value));
    }
}

fn key(field: &Field) -> String {
    match field.name() {
        "message" => "msg".into(),
        n => n.to_string(),
    }
}

fn hostname() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default())
}

/// Formats each event as one pino line and queues it for JS.
struct Pino;

impl<S: Subscriber> Layer<S> for Pino {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let Some((hub, id)) = SINK.lock().unwrap_or_else(|e| e.into_inner()).clone() else { return };
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert("level".into(), Value::from(pino_level(meta.level())));
        line.insert("time".into(), Value::from(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)));
        line.insert("pid".into(), Value::from(std::process::id()));
        line.insert("hostname".into(), Value::from(hostname()));
        line.insert("name".into(), Value::from("oxinfer"));
        line.insert("target".into(), Value::from(meta.target()));
        let mut fields = Fields(Map::new());
        event.record(&mut fields);
        line.extend(fields.0);
        if !hub.try_push(crate::hub::Event::Log(id, Value::Object(line).to_string())) {
            // JS has gone: stop formatting lines no one reads.
            *SINK.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }
}

/// Installs the process-wide subscriber once (off until a sink is set).
fn install() -> Result<&'static reload::Handle<LevelFilter, tracing_subscriber::Registry>> {
    if let Some(h) = LEVEL.get() {
        return Ok(h);
    }
    let (filter, handle) = reload::Layer::new(LevelFilter::OFF);
    let subscriber = tracing_subscriber::registry().with(filter).with(Pino);
    // Another subscriber may already be global (an embedding that set its own): then ours stays off.
    tracing::subscriber::set_global_default(subscriber).map_err(|e| to_napi(oxinfer_core::Error::Unsupported(format!("native logs: another tracing subscriber is installed ({e})"))))?;
    Ok(LEVEL.get_or_init(|| handle))
}

/// Sends native log lines at `level` and above to hub listener `id`; level
/// "silent" (or no hub) turns them off.
#[napi]
pub fn set_log_sink(hub: Option<&NativeHub>, id: f64, level: String) -> Result<()> {
    let filter = filter_of(&level).ok_or_else(|| to_napi(oxinfer_core::Error::InvalidArgument(format!("unknown log level '{level}'; use trace, debug, info, warn, error or silent"))))?;
    let handle = install()?;
    let filter = if hub.is_some() { filter } else { LevelFilter::OFF };
    *SINK.lock().unwrap_or_else(|e| e.into_inner()) = hub.map(|h| (Arc::clone(&h.hub), id as u64));
    handle.modify(|f| *f = filter).map_err(|e| to_napi(oxinfer_core::Error::Backend(format!("cannot set the log level: {e}"))))?;
    Ok(())
}
