//! The `lookup` stage: each record's entity features read from a feature
//! store by its key field, for the whole batch in one round trip (distinct
//! keys once), and added to the frame as number or category columns that
//! later stages read like any field. Missing and stale entities follow the
//! stage's policies; a store failure fails the batch or gives every row the
//! defaults, as configured.

use std::collections::HashMap;
use std::sync::Arc;

use super::columns::Col;
use super::spec::{FailurePolicy, LookupPolicy};
use crate::error::{Error, Result};
use crate::store::{find, now_ms, FValue, FeatureStore};

/// The stage's parameters, borrowed from its spec.
pub struct Lookup<'a> {
    pub store: &'a str,
    pub view: &'a str,
    pub key: &'a str,
    pub features: &'a [String],
    pub prefix: &'a str,
    pub missing: LookupPolicy,
    pub stale: LookupPolicy,
    pub on_error: FailurePolicy,
}

/// A key value as the store holds keys: categories as they are, integers
/// without a fraction; None for a missing key.
fn keys(col: &Col, rows: usize) -> Vec<Option<String>> {
    match col {
        Col::Cat { codes, vocab } => codes.iter().map(|&c| usize::try_from(c).ok().and_then(|c| vocab.get(c)).cloned()).collect(),
        Col::Num(v) => v
            .iter()
            .map(|&x| {
                if x.is_nan() {
                    None
                } else if x.fract() == 0.0 && x.abs() < 9.0e15 {
                    Some(format!("{}", x as i64))
                } else {
                    Some(x.to_string())
                }
            })
            .collect(),
        _ => vec![None; rows],
    }
}

/// What one row gets from the store.
enum Got<'r> {
    Values(&'r [Option<FValue>]),
    Defaults,
    Nan,
}

/// Looked-up columns (named `<prefix><feature>`), and the rows that fail.
pub type Looked = (Vec<(String, Col)>, Vec<(usize, Error)>);

/// Looks up the `rows` records whose keys are in `key_col`. `store` is the
/// one resolved when the pipeline compiled (None: found by name now, as
/// when fitting).
pub fn apply(l: &Lookup, label: &str, store: Option<&Arc<FeatureStore>>, key_col: &Col, rows: usize) -> Result<Looked> {
    let found;
    let store = match store {
        Some(s) => s,
        None => {
            found = find(l.store).ok_or_else(|| Error::invalid_spec(label, format!("no feature store named '{}' is open", l.store)))?;
            &found
        }
    };
    let view = store.view(l.view).map_err(|e| Error::invalid_spec(label, e.to_string()))?;
    let wanted: Vec<usize> = if l.features.is_empty() {
        (0..view.spec.features.len()).collect()
    } else {
        l.features.iter().map(|f| view.feature(f).ok_or_else(|| Error::invalid_spec(label, format!("view '{}' has no feature '{f}'", l.view)))).collect::<Result<_>>()?
    };
    let row_keys = keys(key_col, rows);
    // Each distinct key once, in one round trip.
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut distinct: Vec<&str> = Vec::new();
    let slot: Vec<Option<usize>> = row_keys
        .iter()
        .map(|k| {
            // A key no store could hold (empty, or over 1,024 bytes) is a missing entity, not a failed batch.
            k.as_deref().filter(|k| !k.is_empty() && k.len() <= 1024).map(|k| {
                *index.entry(k).or_insert_with(|| {
                    distinct.push(k);
                    distinct.len() - 1
                })
            })
        })
        .collect();
    let fetched = if distinct.is_empty() {
        Ok(Vec::new())
    } else {
        store.read(view, &distinct)
    };
    let fetched = match (fetched, l.on_error) {
        (Ok(r), _) => Some(r),
        (Err(_), FailurePolicy::Default) => None,
        (Err(e), FailurePolicy::Error) => return Err(e),
    };
    let now = now_ms();
    let mut per_row: Vec<Got> = Vec::with_capacity(rows);
    let mut rejects: Vec<(usize, Error)> = Vec::new();
    for r in 0..rows {
        let hit = match (&fetched, slot[r]) {
            (None, _) => {
                per_row.push(Got::Defaults);
                continue;
            }
            (Some(f), Some(i)) => f[i].as_ref(),
            (Some(_), None) => None,
        };
        let (policy, why) = match hit {
            None => (l.missing, format!("view '{}' holds no entity '{}'", l.view, row_keys[r].as_deref().unwrap_or(""))),
            Some(row) if view.is_stale(row.written_ms, now) => {
                (l.stale, format!("entity '{}' of view '{}' is stale: written {} ms ago, past its TTL of {} ms", row_keys[r].as_deref().unwrap_or(""), l.view, now.saturating_sub(row.written_ms), view.spec.ttl_ms))
            }
            Some(row) => {
                per_row.push(Got::Values(&row.values));
                continue;
            }
        };
        per_row.push(match policy {
            LookupPolicy::Use => match hit {
                Some(row) => Got::Values(&row.values),
                // 'use' for a missing entity (refused when compiling; fitting skips that check): the defaults.
                None => Got::Defaults,
            },
            LookupPolicy::Default => Got::Defaults,
            LookupPolicy::Nan => Got::Nan,
            LookupPolicy::Error => {
                let key = row_keys[r].is_none().then(|| format!("record has no key '{}'", l.key)).unwrap_or(why);
                rejects.push((r, Error::InvalidInput { message: format!("row {r}: {label}: {key}"), input: None, row: Some(r), field: Some(l.key.to_string()) }));
                Got::Nan
            }
        });
    }
    let mut columns: Vec<(String, Col)> = Vec::with_capacity(wanted.len());
    for &fi in &wanted {
        let f = &view.spec.features[fi];
        let value = |g: &Got| -> Option<FValue> {
            match g {
                Got::Values(v) => v[fi].clone().or_else(|| view.defaults[fi].clone()),
                Got::Defaults => view.defaults[fi].clone(),
                Got::Nan => None,
            }
        };
        let col = if f.kind.is_category() {
            let mut vocab: Vec<String> = Vec::new();
            let mut seen: HashMap<String, i32> = HashMap::new();
            let codes = per_row
                .iter()
                .map(|g| match value(g) {
                    Some(FValue::Cat(s)) => *seen.entry(s.clone()).or_insert_with(|| {
                        vocab.push(s);
                        vocab.len() as i32 - 1
                    }),
                    _ => -1,
                })
                .collect();
            Col::Cat { codes, vocab }
        } else {
            Col::Num(per_row.iter().map(|g| if let Some(FValue::Num(x)) = value(g) { x } else { f64::NAN }).collect())
        };
        columns.push((format!("{}{}", l.prefix, f.name), col));
    }
    drop(per_row);
    Ok((columns, rejects))
}
