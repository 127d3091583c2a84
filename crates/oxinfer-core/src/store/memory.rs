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
