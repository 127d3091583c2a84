//! The online feature store: feature views (an entity key, typed features,
//! a TTL, defaults) over a backend chosen by configuration, embedded
//! (in-process, memory-bounded, LRU) or Redis, with the same results from
//! each. Stores are opened by name and shared: any number of pipelines,
//! graphs and served models read the same store, in one round trip per
//! batch and view. Reads count hits, misses, stale values, failures and
//! latency for `stats()` and the server's metrics.

mod ingest;
mod memory;
mod redis;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use ingest::IngestSummary;

use crate::error::{Error, Result};

/// A feature's type.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FeatureType {
    Number,
    Integer,
    Boolean,
    Category,
}

impl FeatureType {
    pub fn is_category(self) -> bool {
        self == FeatureType::Category
    }
}

/// One feature of a view.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FeatureSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: FeatureType,
    /// The value a lookup gives when the entity is missing or stale (and
    /// the stage's policy says `default`); none: missing (NaN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
}

/// A feature view: features of one kind of entity.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ViewSpec {
    pub name: String,
    /// The entity key's name (the id column when ingesting a file).
    pub entity: String,
    pub features: Vec<FeatureSpec>,
    /// Values older than this are stale (0: never).
    #[serde(default)]
    pub ttl_ms: u64,
}

fn default_max_bytes() -> u64 {
    256 << 20
}
fn default_prefix() -> String {
    "oxinfer:".into()
}
fn default_timeout() -> u64 {
    100
}
fn default_pool() -> u32 {
    8
}

/// Where the values live.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", rename_all_fields = "camelCase", deny_unknown_fields)]
pub enum BackendSpec {
    /// In this process: at most `maxBytes` (keys and values, approximately),
    /// the least recently used entities evicted first.
    Embedded {
        #[serde(default = "default_max_bytes")]
        max_bytes: u64,
    },
    /// A Redis server: one hash per entity (`<prefix><view>:<key>`), read
    /// with pipelined HMGETs (one round trip per batch), through a pool.
    Redis {
        url: String,
        #[serde(default = "default_prefix")]
        prefix: String,
        /// Connect, read and write timeout of each round trip, ms.
        #[serde(default = "default_timeout")]
        timeout_ms: u64,
        #[serde(default = "default_pool")]
        pool_size: u32,
    },
}

/// A store's configuration.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StoreSpec {
    /// The name pipelines and graphs find it by (default "default").
    #[serde(default = "default_name")]
    pub name: String,
    pub backend: BackendSpec,
    pub views: Vec<ViewSpec>,
}

fn default_name() -> String {
    "default".into()
}

/// One stored value.
#[derive(Clone, Debug, PartialEq)]
pub enum FValue {
    Num(f64),
    Cat(String),
}

/// An entity's values in a view (one per feature; None: missing) and when they were written.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub values: Vec<Option<FValue>>,
    pub written_ms: u64,
}

/// A compiled view.
#[derive(Debug)]
pub struct View {
    pub spec: ViewSpec,
    /// Each feature's default, typed.
    pub defaults: Vec<Option<FValue>>,
    stats: ViewStats,
}

#[derive(Debug, Default)]
struct ViewStats {
    lookups: AtomicU64,
    keys: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    stale: AtomicU64,
    failures: AtomicU64,
    latency_us_sum: AtomicU64,
    latency_us_max: AtomicU64,
    writes: AtomicU64,
}

impl View {
    /// The index of feature `name`.
    pub fn feature(&self, name: &str) -> Option<usize> {
        self.spec.features.iter().position(|f| f.name == name)
    }

    /// Whether a row written at `written_ms` is stale at `now_ms`.
    pub fn is_stale(&self, written_ms: u64, now_ms: u64) -> bool {
        self.spec.ttl_ms > 0 && now_ms.saturating_sub(written_ms) > self.spec.ttl_ms
    }
}

/// What a backend does; both give the same results for the same calls.
pub(crate) trait Backend: Send + Sync {
    /// The rows of `keys` (None: not stored), in order, in one round trip.
    fn get_many(&self, view: &View, keys: &[&str]) -> Result<Vec<Option<Row>>>;
    /// Stores rows, replacing what each key held.
    fn put_many(&self, view: &View, rows: &[(&str, &Row)]) -> Result<()>;
    /// Entities and bytes held (embedded only).
    fn usage(&self) -> Option<(u64, u64)>;
    fn kind(&self) -> &'static str;
}

/// A view's figures since the store opened.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ViewStatsSnapshot {
    pub view: String,
    /// Batch reads, and the keys they asked for.
    pub lookups: u64,
    pub keys: u64,
    pub hits: u64,
    pub misses: u64,
    /// Hits older than the view's TTL (counted in hits too).
    pub stale: u64,
    /// Batch reads that failed (Redis down or slow).
    pub failures: u64,
    /// Mean and largest batch-read latency, µs.
    pub mean_latency_us: f64,
    pub max_latency_us: u64,
    /// Rows written.
    pub writes: u64,
}

/// A store's figures.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StoreStats {
    pub name: String,
    pub backend: &'static str,
    /// Entities and bytes held (embedded only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entities: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    pub views: Vec<ViewStatsSnapshot>,
}

pub struct FeatureStore {
    spec: StoreSpec,
    views: Vec<View>,
    backend: Box<dyn Backend>,
}

pub use crate::timing::unix_ms as now_ms;

/// A JSON value as feature `f`'s type, or why it is not one.
pub fn typed(f: &FeatureSpec, v: &serde_json::Value) -> std::result::Result<Option<FValue>, String> {
    use serde_json::Value as J;
    Ok(match (f.kind, v) {
        (_, J::Null) => None,
        (FeatureType::Category, J::String(s)) => Some(FValue::Cat(s.clone())),
        (FeatureType::Category, J::Number(n)) => Some(FValue::Cat(n.to_string())),
        (FeatureType::Boolean, J::Bool(b)) => Some(FValue::Num(if *b { 1.0 } else { 0.0 })),
        (FeatureType::Number | FeatureType::Integer | FeatureType::Boolean, J::Number(n)) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            if f.kind == FeatureType::Integer && x.fract() != 0.0 {
                return Err(format!("feature '{}' is an integer, not {x}", f.name));
            }
            if f.kind == FeatureType::Boolean && x != 0.0 && x != 1.0 {
                return Err(format!("feature '{}' is a boolean (true, false, 0 or 1), not {x}", f.name));
            }
            Some(FValue::Num(x))
        }
        (kind, other) => return Err(format!("feature '{}' is {}, not {}", f.name, kind_name(kind), shown(other))),
    })
}

fn kind_name(k: FeatureType) -> &'static str {
    match k {
        FeatureType::Number => "a number",
        FeatureType::Integer => "an integer",
        FeatureType::Boolean => "a boolean",
        FeatureType::Category => "a category (string)",
    }
}

fn shown(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => format!("the string {s:?}"),
        serde_json::Value::Array(_) => "an array".into(),
        serde_json::Value::Object(_) => "an object".into(),
        other => other.to_string(),
    }
}

/// Open stores by name, so that specs can name the one they read.
fn registry() -> &'static Mutex<HashMap<String, Weak<FeatureStore>>> {
    static R: std::sync::OnceLock<Mutex<HashMap<String, Weak<FeatureStore>>>> = std::sync::OnceLock::new();
    R.get_or_init(Default::default)
}

/// The open store called `name`.
pub fn find(name: &str) -> Option<Arc<FeatureStore>> {
    registry().lock().unwrap_or_else(|e| e.into_inner()).get(name).and_then(Weak::upgrade)
}

/// Every open store, by name (for the server's metrics).
pub fn all() -> Vec<Arc<FeatureStore>> {
    let mut v: Vec<Arc<FeatureStore>> = registry().lock().unwrap_or_else(|e| e.into_inner()).values().filter_map(Weak::upgrade).collect();
    v.sort_by(|a, b| a.name().cmp(b.name()));
    v
}

impl FeatureStore {
    /// Opens a store and registers it under its name (refused while another
    /// store of that name is open). Redis is not contacted yet: the first
    /// read or write connects, so a store opens while Redis is down.
    pub fn open(spec: StoreSpec) -> Result<Arc<FeatureStore>> {
        let bad = |at: String, m: String| Error::invalid_spec("feature store", m).at(&at);
        if spec.name.is_empty() {
            return Err(bad("name".into(), "a store needs a name".into()));
        }
        if spec.views.is_empty() {
            return Err(bad("views".into(), "a store needs at least one view".into()));
        }
        let mut views = Vec::new();
        for (i, v) in spec.views.iter().enumerate() {
            if v.name.is_empty() || v.name.contains(':') {
                return Err(bad(format!("views[{i}].name"), format!("view name '{}' must be non-empty, without ':'", v.name)));
            }
            if spec.views[..i].iter().any(|w| w.name == v.name) {
                return Err(bad(format!("views[{i}].name"), format!("two views are named '{}'", v.name)));
            }
            if v.features.is_empty() {
                return Err(bad(format!("views[{i}].features"), format!("view '{}' has no features", v.name)));
            }
            let mut defaults = Vec::new();
            for (j, f) in v.features.iter().enumerate() {
                if f.name.is_empty() || f.name.starts_with("__") {
                    return Err(bad(format!("views[{i}].features[{j}].name"), format!("feature name '{}' must be non-empty and not start with '__'", f.name)));
                }
                if v.features[..j].iter().any(|g| g.name == f.name) {
                    return Err(bad(format!("views[{i}].features[{j}].name"), format!("view '{}' has two features named '{}'", v.name, f.name)));
                }
                let d = match &f.default {
                    Some(d) => typed(f, d).map_err(|m| bad(format!("views[{i}].features[{j}].default"), m))?,
                    None => None,
                };
                defaults.push(d);
            }
            views.push(View { spec: v.clone(), defaults, stats: ViewStats::default() });
        }
        let backend: Box<dyn Backend> = match &spec.backend {
            BackendSpec::Embedded { max_bytes } => Box::new(memory::Memory::new(*max_bytes, views.len())),
            BackendSpec::Redis { url, prefix, timeout_ms, pool_size } => {
                if *timeout_ms == 0 || *pool_size == 0 {
                    return Err(bad("backend".into(), "timeoutMs and poolSize must be at least 1".into()));
                }
                Box::new(redis::Redis::new(url, prefix, *timeout_ms, *pool_size).map_err(|m| bad("backend.url".into(), m))?)
            }
        };
        let store = Arc::new(FeatureStore { spec, views, backend });
        let mut reg = registry().lock().unwrap_or_else(|e| e.into_inner());
        if reg.get(&store.spec.name).and_then(Weak::upgrade).is_some() {
            return Err(Error::InvalidArgument(format!("a feature store named '{}' is already open: close it first, or give this one another name", store.spec.name)));
        }
        reg.insert(store.spec.name.clone(), Arc::downgrade(&store));
        Ok(store)
    }

    /// Unregisters the name (pipelines holding the store keep using it).
    pub fn close(self: &Arc<Self>) {
        let mut reg = registry().lock().unwrap_or_else(|e| e.into_inner());
        if reg.get(&self.spec.name).is_some_and(|w| w.as_ptr() == Arc::as_ptr(self)) {
            reg.remove(&self.spec.name);
        }
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn spec(&self) -> &StoreSpec {
        &self.spec
    }

    /// View `name`, or an error listing the views.
    pub fn view(&self, name: &str) -> Result<&View> {
        self.view_index(name).map(|i| &self.views[i])
    }

    fn view_index(&self, name: &str) -> Result<usize> {
        self.views.iter().position(|v| v.spec.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.views.iter().map(|v| v.spec.name.as_str()).collect();
            Error::InvalidArgument(format!("feature store '{}' has no view '{name}' (views: {})", self.spec.name, names.join(", ")))
        })
    }

    fn check_key(key: &str) -> Result<()> {
        if key.is_empty() || key.len() > 1024 {
            return Err(Error::InvalidArgument(format!("an entity key must be 1 to 1,024 bytes, not {} bytes", key.len())));
        }
        Ok(())
    }

    /// Writes rows of view `view`: (key, values as JSON by feature name).
    /// Unknown features and values of the wrong type are refused before
    /// anything is written; features not given are stored missing.
    pub fn put_json(&self, view: &str, rows: &[(String, serde_json::Map<String, serde_json::Value>)]) -> Result<()> {
        let v = self.view(view)?;
        let now = now_ms();
        let mut typed_rows = Vec::with_capacity(rows.len());
        for (key, values) in rows {
            Self::check_key(key)?;
            if let Some(unknown) = values.keys().find(|k| v.feature(k).is_none()) {
                let names: Vec<&str> = v.spec.features.iter().map(|f| f.name.as_str()).collect();
                return Err(Error::InvalidArgument(format!("view '{view}' has no feature '{unknown}' (features: {})", names.join(", "))));
            }
            let mut out = Vec::with_capacity(v.spec.features.len());
            for f in &v.spec.features {
                out.push(match values.get(&f.name) {
                    Some(x) => typed(f, x).map_err(|m| Error::InvalidArgument(format!("key '{key}': {m}")))?,
                    None => None,
                });
            }
            typed_rows.push((key.as_str(), Row { values: out, written_ms: now }));
        }
        let refs: Vec<(&str, &Row)> = typed_rows.iter().map(|(k, r)| (*k, r)).collect();
        self.put_rows(v, &refs)
    }

    /// Writes typed rows (ingestion and `put_json`).
    fn put_rows(&self, v: &View, rows: &[(&str, &Row)]) -> Result<()> {
        self.backend.put_many(v, rows)?;
        v.stats.writes.fetch_add(rows.len() as u64, Relaxed);
        Ok(())
    }

    /// The rows of `keys` in view `view` (None: not stored), in one round
    /// trip, with hits, misses, staleness and latency counted.
    pub fn get_many(&self, view: &str, keys: &[&str]) -> Result<Vec<Option<Row>>> {
        let v = self.view(view)?;
        self.read(v, keys)
    }

    /// `get_many` on a view already found.
    pub fn read(&self, v: &View, keys: &[&str]) -> Result<Vec<Option<Row>>> {
        for k in keys {
            Self::check_key(k)?;
        }
        let started = Instant::now();
        let r = self.backend.get_many(v, keys);
        let us = started.elapsed().as_micros() as u64;
        let s = &v.stats;
        s.lookups.fetch_add(1, Relaxed);
        s.keys.fetch_add(keys.len() as u64, Relaxed);
        s.latency_us_sum.fetch_add(us, Relaxed);
        s.latency_us_max.fetch_max(us, Relaxed);
        match &r {
            Ok(rows) => {
                let now = now_ms();
                let hits = rows.iter().flatten().count() as u64;
                s.hits.fetch_add(hits, Relaxed);
                s.misses.fetch_add(rows.len() as u64 - hits, Relaxed);
                s.stale.fetch_add(rows.iter().flatten().filter(|r| v.is_stale(r.written_ms, now)).count() as u64, Relaxed);
            }
            Err(_) => {
                s.failures.fetch_add(1, Relaxed);
            }
        }
        r
    }

    /// Hits, misses, staleness, failures, latency and writes per view.
    pub fn stats(&self) -> StoreStats {
        let usage = self.backend.usage();
        StoreStats {
            name: self.spec.name.clone(),
            backend: self.backend.kind(),
            entities: usage.map(|u| u.0),
            bytes: usage.map(|u| u.1),
            views: self
                .views
                .iter()
                .map(|v| {
                    let s = &v.stats;
                    let lookups = s.lookups.load(Relaxed);
                    ViewStatsSnapshot {
                        view: v.spec.name.clone(),
                        lookups,
                        keys: s.keys.load(Relaxed),
                        hits: s.hits.load(Relaxed),
                        misses: s.misses.load(Relaxed),
                        stale: s.stale.load(Relaxed),
                        failures: s.failures.load(Relaxed),
                        mean_latency_us: if lookups == 0 { 0.0 } else { s.latency_us_sum.load(Relaxed) as f64 / lookups as f64 },
                        max_latency_us: s.latency_us_max.load(Relaxed),
                        writes: s.writes.load(Relaxed),
                    }
                })
                .collect(),
        }
    }

    /// Reads a CSV or JSONL file of rows of view `view` (its entity column
    /// and any of its features) and writes them in chunks; `progress` gets
    /// (rows done, bytes read, bytes total) after each chunk.
    pub fn ingest(&self, view: &str, path: &std::path::Path, chunk_rows: usize, progress: &dyn Fn(u64, u64, u64)) -> Result<IngestSummary> {
        let v = self.view(view)?;
        ingest::run(self, v, path, chunk_rows, progress)
    }
}

impl Drop for FeatureStore {
    fn drop(&mut self) {
        let mut reg = registry().lock().unwrap_or_else(|e| e.into_inner());
        if reg.get(&self.spec.name).is_some_and(|w| w.strong_count() == 0) {
            reg.remove(&self.spec.name);
        }
    }
}
