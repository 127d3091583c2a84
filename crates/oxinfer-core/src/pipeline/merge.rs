//! Merging the batches of several pipeline requests into one, so that the
//! scheduler runs pre-processing, the model and post-processing once for all
//! of them (dynamic batching of pipelines). `Outcome::split` undoes it.

use std::collections::HashMap;
use std::sync::Arc;

use super::columns::{Batch, Col, InColumn};
use super::spec::Spec;
use crate::error::Result;

/// One request's batch, read and checked field by field, ready to merge.
pub struct Part {
    rows: usize,
    cols: Vec<Col>,
    rejected: Vec<(usize, crate::error::Error)>,
}

/// Reads `batch` for merging. An error here (a malformed column) belongs to
/// that request alone.
pub fn read(spec: &Spec, batch: &Batch) -> Result<Part> {
    let cols = spec.fields.iter().map(|f| batch.column(f)).collect::<Result<Vec<_>>>()?;
    let rejected = batch.rejected.iter().filter(|(r, _)| *r < batch.rows).map(|(r, e)| (*r, e.clone())).collect();
    Ok(Part { rows: batch.rows, cols, rejected })
}

impl Part {
    pub fn rows(&self) -> usize {
        self.rows
    }
}

/// Concatenates `parts` (in order) into one batch of owned columns; the
/// rows each part found bad keep their errors, renumbered.
pub fn merge(spec: &Spec, parts: Vec<Part>) -> Batch {
    let rows = parts.iter().map(|p| p.rows).sum();
    let mut rejected = Vec::new();
    let mut offset = 0;
    let mut per_field: Vec<Vec<Col>> = spec.fields.iter().map(|_| Vec::with_capacity(parts.len())).collect();
    for p in parts {
        rejected.extend(p.rejected.into_iter().map(|(r, e)| (r + offset, e.at_row(r + offset))));
        offset += p.rows;
        for (i, c) in p.cols.into_iter().enumerate() {
            per_field[i].push(c);
        }
    }
    let columns = spec.fields.iter().zip(per_field).map(|(f, cols)| (f.name.clone(), concat(cols))).collect();
    Batch { rows, columns, rejected }
}

/// One field's columns end to end, as an owned input column.
fn concat(cols: Vec<Col>) -> InColumn {
    match cols.first() {
        Some(Col::Cat { .. }) => {
            // Each part has its own dictionary: codes are remapped into their union.
            let mut uniques: Vec<String> = Vec::new();
            let mut index: HashMap<String, i32> = HashMap::new();
            let mut codes = Vec::new();
            for c in cols {
                if let Col::Cat { codes: part, vocab } = c {
                    let map: Vec<i32> = vocab
                        .into_iter()
                        .map(|v| {
                            *index.entry(v.clone()).or_insert_with(|| {
                                uniques.push(v);
                                uniques.len() as i32 - 1
                            })
                        })
                        .collect();
                    codes.extend(part.into_iter().map(|k| if k < 0 { -1 } else { map[k as usize] }));
                }
            }
            InColumn::OwnedCat { codes, uniques }
        }
        Some(Col::Arr { .. }) => InColumn::OwnedArr(cols.into_iter().flat_map(|c| if let Col::Arr { data, .. } = c { data } else { Vec::new() }).collect()),
        Some(Col::List { .. }) => {
            let (mut lengths, mut values) = (Vec::new(), Vec::new());
            for c in cols {
                if let Col::List { offsets, values: v } = c {
                    lengths.extend(offsets.windows(2).map(|w| w[1] - w[0]));
                    values.extend(v);
                }
            }
            InColumn::OwnedList { lengths, values }
        }
        Some(Col::Text(_)) => InColumn::Text(cols.into_iter().flat_map(|c| if let Col::Text(t) = c { t } else { Vec::new() }).collect()),
        Some(Col::Images(_)) => InColumn::Images(
            cols.iter()
                .flat_map(|c| match c {
                    Col::Images(i) => Arc::clone(i).iter().map(|x| x.as_ref().map(|x| x.shallow())).collect::<Vec<_>>(),
                    _ => Vec::new(),
                })
                .collect(),
        ),
        _ => InColumn::OwnedNum(cols.into_iter().flat_map(|c| if let Col::Num(v) = c { v } else { Vec::new() }).collect()),
    }
}
