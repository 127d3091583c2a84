//! The embedded backend: entities in process memory, bounded by an
//! approximate byte count (keys, values and a fixed overhead per entry);
//! past it, the least recently used entities of any view are evicted.

use std::sync::Mutex;

use lru::LruCache;

use super::{Backend, FValue, Row, View};
use crate::error::Result;

/// Bytes counted per entry beyond its key and values (map and list overhead).
const OVERHEAD: u64 = 96;

struct State {
    /// (view name, key) → row; the most recently used last out.
    entries: LruCache<(String, String), Row>,
    bytes: u64,
}

pub(super) struct Memory {
    max_bytes: u64,
    state: Mutex<State>,
}

fn size(view: &str, key: &str, row: &Row) -> u64 {
    let values: u64 = row
        .values
        .iter()
        .map(|v| match v {
            Some(FValue::Cat(s)) => 24 + s.len() as u64,
            _ => 16,
        })
        .sum();
    OVERHEAD + view.len() as u64 + key.len() as u64 + values
}

impl Memory {
    pub fn new(max_bytes: u64, _views: usize) -> Memory {
        Memory { max_bytes, state: Mutex::new(State { entries: LruCache::unbounded(), bytes: 0 }) }
    }
}

impl Backend for Memory {
    fn get_many(&self, view: &View, keys: &[&str]) -> Result<Vec<Option<Row>>> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let name = view.spec.name.clone();
        Ok(keys.iter().map(|k| st.entries.get(&(name.clone(), (*k).to_string())).cloned()).collect())
    }

    fn put_many(&self, view: &View, rows: &[(&str, &Row)]) -> Result<()> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let name = &view.spec.name;
        for (key, row) in rows {
            let add = size(name, key, row);
            if let Some(old) = st.entries.put((name.clone(), (*key).to_string()), (*row).clone()) {
                st.bytes -= size(name, key, &old);
            }
            st.bytes += add;
            while st.bytes > self.max_bytes {
                let Some(((v, k), old)) = st.entries.pop_lru() else { break };
                st.bytes -= size(&v, &k, &old);
            }
        }
        Ok(())
    }

    fn usage(&self) -> Option<(u64, u64)> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        Some((st.entries.len() as u64, st.bytes))
    }

    fn kind(&self) -> &'static str {
        "embedded"
    }
}

#[cfg(test)]
mod tests {
    use super::super::{BackendSpec, FeatureStore, StoreSpec};

    fn store(name: &str, max_bytes: u64) -> std::sync::Arc<FeatureStore> {
        let views = serde_json::from_str(r#"[{"name": "v", "entity": "id", "features": [{"name": "x", "type": "number"}, {"name": "c", "type": "category"}]}]"#).unwrap();
        FeatureStore::open(StoreSpec { name: name.into(), backend: BackendSpec::Embedded { max_bytes }, views }).unwrap()
    }

    fn row(x: f64) -> (String, serde_json::Map<String, serde_json::Value>) {
        let mut m = serde_json::Map::new();
        m.insert("x".into(), serde_json::json!(x));
        m.insert("c".into(), serde_json::json!("abc"));
        (format!("k{x}"), m)
    }

    #[test]
    fn evicts_the_least_recently_used_within_the_bound() {
        let s = store("memory-lru", 1000);
        s.put_json("v", &[row(1.0), row(2.0), row(3.0)]).unwrap();
        // Reading k1 makes k2 the least recently used.
        assert!(s.get_many("v", &["k1"]).unwrap()[0].is_some());
        let per = s.stats().bytes.unwrap() / 3;
        let fit = (1000 / per) as usize;
        let more: Vec<_> = (4..4 + (fit - 2)).map(|i| row(i as f64)).collect();
        s.put_json("v", &more).unwrap();
        let st = s.stats();
        assert!(st.bytes.unwrap() <= 1000, "{st:?}");
        let got = s.get_many("v", &["k1", "k2", "k3"]).unwrap();
        assert!(got[0].is_some(), "recently read: kept");
        assert!(got[1].is_none(), "least recently used: evicted");
        // Replacing a key does not count it twice.
        let before = (s.stats().bytes.unwrap(), s.stats().entities.unwrap());
        s.put_json("v", &[row(1.0)]).unwrap();
        assert_eq!((s.stats().bytes.unwrap(), s.stats().entities.unwrap()), before);
        assert!(s.get_many("v", &["k1"]).unwrap()[0].is_some());
    }

    #[test]
    fn names_are_unique_while_open_and_free_once_dropped() {
        let a = store("memory-names", 1 << 20);
        let views = a.spec().views.clone();
        let again = || FeatureStore::open(StoreSpec { name: "memory-names".into(), backend: BackendSpec::Embedded { max_bytes: 1 }, views: views.clone() });
        assert_eq!(again().err().unwrap().code(), "ERR_INVALID_ARGUMENT");
        drop(a);
        assert!(again().is_ok());
    }
}
