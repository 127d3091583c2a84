//! Bulk ingestion: a CSV or JSONL file of a view's rows (its entity column
//! and any of its features) read with the batch jobs' reader, a chunk at a
//! time, and written to the store a chunk per round trip. Rows that do not
//! parse (a number that is not one, a missing entity key) are skipped and
//! counted, the first one's error kept.

use std::path::Path;

use serde::Serialize;

use super::{now_ms, FValue, FeatureStore, FeatureType, Row, View};
use crate::error::{Error, Result};
use crate::job::{InputFormat, Reader};
use crate::pipeline::spec::{Field, FieldType, UnknownFields};
use crate::pipeline::Col;

/// What an ingestion did.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IngestSummary {
    /// Rows written, and rows skipped.
    pub rows: u64,
    pub skipped: u64,
    /// The first skipped row's error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    pub seconds: f64,
}

fn field(name: &str, kind: FieldType) -> Field {
    Field { name: name.to_string(), kind, size: None, required: false }
}

pub(super) fn run(store: &FeatureStore, view: &View, path: &Path, chunk_rows: usize, progress: &dyn Fn(u64, u64, u64)) -> Result<IngestSummary> {
    let started = std::time::Instant::now();
    let name = path.to_string_lossy();
    let format = if name.ends_with(".csv") {
        InputFormat::Csv
    } else if name.ends_with(".jsonl") || name.ends_with(".ndjson") {
        InputFormat::Jsonl
    } else {
        return Err(Error::InvalidArgument(format!("'{name}': ingestion reads .csv, .jsonl or .ndjson files")));
    };
    let mut fields = vec![field(&view.spec.entity, FieldType::Category)];
    for f in &view.spec.features {
        fields.push(field(
            &f.name,
            match f.kind {
                FeatureType::Number => FieldType::Number,
                FeatureType::Integer => FieldType::Integer,
                FeatureType::Boolean => FieldType::Boolean,
                FeatureType::Category => FieldType::Category,
            },
        ));
    }
    let mut reader = Reader::open(path, format, &fields, UnknownFields::Ignore)?;
    let total = reader.bytes_total();
    if chunk_rows == 0 || chunk_rows > 1 << 20 {
        return Err(Error::InvalidArgument(format!("ingest: chunkRows must be from 1 to 1,048,576, not {chunk_rows}")));
    }
    let (mut rows, mut skipped, mut first_error) = (0u64, 0u64, None::<String>);
    let mut no_key = 0u64;
    while let Some(chunk) = reader.next_chunk(chunk_rows)? {
        let batch = &chunk.batch;
        let cols: Vec<Col> = fields.iter().map(|f| batch.column(f)).collect::<Result<_>>()?;
        let mut bad = vec![false; batch.rows];
        for (r, e) in &batch.rejected {
            if *r < batch.rows && !bad[*r] {
                bad[*r] = true;
                skipped += 1;
                first_error.get_or_insert_with(|| format!("row {}: {e}", chunk.first_row + r));
            }
        }
        let now = now_ms();
        let mut out: Vec<(String, Row)> = Vec::with_capacity(batch.rows);
        for r in 0..batch.rows {
            if bad[r] {
                continue;
            }
            let key = match &cols[0] {
                Col::Cat { codes, vocab } => usize::try_from(codes[r]).ok().and_then(|c| vocab.get(c)).cloned(),
                _ => None,
            };
            let Some(key) = key.filter(|k| !k.is_empty() && k.len() <= 1024) else {
                skipped += 1;
                no_key += 1;
                first_error.get_or_insert_with(|| format!("row {}: no entity key '{}' (1 to 1,024 bytes)", chunk.first_row + r, view.spec.entity));
                continue;
            };
            let values = cols[1..]
                .iter()
                .map(|c| match c {
                    Col::Num(v) => Some(v[r]).filter(|x| !x.is_nan()).map(FValue::Num),
                    Col::Cat { codes, vocab } => usize::try_from(codes[r]).ok().and_then(|i| vocab.get(i)).map(|s| FValue::Cat(s.clone())),
                    _ => None,
                })
                .collect();
            out.push((key, Row { values, written_ms: now }));
        }
        let refs: Vec<(&str, &Row)> = out.iter().map(|(k, r)| (k.as_str(), r)).collect();
        let written = refs.len() as u64;
        store.put_rows(view, &refs)?;
        rows += written;
        progress(rows, chunk.end_byte, total);
    }
    if rows == 0 && no_key > 0 && no_key == skipped {
        return Err(Error::InvalidArgument(format!(
            "'{name}': no row has the entity key '{}' (the view's entity column); nothing was written",
            view.spec.entity
        )));
    }
    Ok(IngestSummary { rows, skipped, first_error, seconds: started.elapsed().as_secs_f64() })
}
