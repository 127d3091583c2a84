//! The columnar batch format in which pipeline records cross from JS, and
//! its parser into the core's `Batch`.
//!
//! Format (fields in spec order, grouped by kind, all numbers in one
//! Float64Array so that a batch costs JS one typed array whatever its width):
//! `[rows, rejectedRows, rejectedFields, rejectedMessages, data, uniques]`,
//! where `data` holds, one after the other:
//! - the number/integer/boolean fields, `rows` values each (NaN = missing);
//! - the category fields, `rows` codes each, as indices into that field's
//!   batch-local dictionary (-1 = missing);
//! - one dictionary length per category field;
//! - the array fields, `rows * size` values each, row-major;
//! - the list fields' lengths, `rows` each;
//! - the list fields' values, one field after the other.
//!
//! `uniques` (string[]) holds the dictionaries one after the other; the
//! rejected* entries (or nulls) list rows that JS already found bad. Then
//! `texts`: per text field, a `(string | null)[]`; and `images`: per image
//! field, an array of `Uint8Array | [pixels, width, height, channels] | null`.

use oxinfer_core::pipeline::{self, spec::FieldType, Batch, InColumn};
use oxinfer_core::tensor::BorrowedBytes;
use oxinfer_core::{Error as CoreError, Result as CoreResult};

use crate::js::{self, Env as RawEnv, Val};

fn bad(msg: impl Into<String>) -> CoreError {
    CoreError::InvalidArgument(msg.into())
}

fn strings(env: RawEnv, v: Val, what: &str) -> CoreResult<Vec<String>> {
    if !js::is_array(env, v)? {
        return Err(bad(format!("{what} must be an array of strings")));
    }
    (0..js::array_len(env, v)?)
        .map(|i| js::string(env, js::element(env, v, i)?)?.ok_or_else(|| bad(format!("{what} must hold strings"))))
        .collect()
}

/// A typed array of `kind`, as (data, element count).
fn typed(env: RawEnv, v: Val, kind: i32, what: &str) -> CoreResult<(*const u8, usize)> {
    let view = js::typed_array(env, v)?.ok_or_else(|| bad(format!("{what} must be a typed array")))?;
    if view.kind != kind {
        return Err(bad(format!("{what} has the wrong typed array kind")));
    }
    Ok((view.data, view.len))
}

fn is_nullish(env: RawEnv, v: Val) -> CoreResult<bool> {
    let t = js::type_of(env, v)?;
    Ok(t == napi::sys::ValueType::napi_null || t == napi::sys::ValueType::napi_undefined)
}

/// Reads one value per row from a JS array (`null`/`undefined` = missing).
fn per_row<T>(env: RawEnv, list: Val, rows: usize, field: &str, read: impl Fn(Val, u32) -> CoreResult<T>) -> CoreResult<Vec<Option<T>>> {
    let n = js::array_len(env, list)?;
    if n as usize != rows {
        return Err(bad(format!("field '{field}' has {n} rows, expected {rows}")));
    }
    (0..n)
        .map(|r| {
            let item = js::element(env, list, r)?;
            if is_nullish(env, item)? {
                Ok(None)
            } else {
                read(item, r).map(Some)
            }
        })
        .collect()
}

pub fn parse_batch(env: RawEnv, spec: &pipeline::Spec, v: Val) -> CoreResult<Batch> {
    if !js::is_array(env, v)? || js::array_len(env, v)? != 8 {
        return Err(bad("malformed batch"));
    }
    let at = |i| js::element(env, v, i);
    let rows = js::number(env, at(0)?)?.filter(|r| r.fract() == 0.0 && *r >= 0.0).ok_or_else(|| bad("malformed batch"))? as usize;
    let mut rejected = Vec::new();
    if !is_nullish(env, at(1)?)? {
        let (p, n) = typed(env, at(1)?, js::INT32, "rejected rows")?;
        // SAFETY: an Int32Array of n elements at p.
        let rows_bad = if n == 0 { &[][..] } else { unsafe { std::slice::from_raw_parts(p as *const i32, n) } };
        let fields = strings(env, at(2)?, "rejected fields")?;
        let messages = strings(env, at(3)?, "rejected messages")?;
        if fields.len() != n || messages.len() != n {
            return Err(bad("malformed batch"));
        }
        for ((&r, f), m) in rows_bad.iter().zip(fields).zip(messages) {
            rejected.push((r as usize, CoreError::bad_record(r as usize, f, m)));
        }
    }
    let (data, n_data) = typed(env, at(4)?, js::FLOAT64, "data")?;
    let uniques = strings(env, at(5)?, "uniques")?;
    let n_nums = spec.fields.iter().filter(|f| matches!(f.kind, FieldType::Number | FieldType::Integer | FieldType::Boolean)).count();
    let n_cats = spec.fields.iter().filter(|f| f.kind == FieldType::Category).count();
    let n_arr: usize = spec.fields.iter().filter(|f| f.kind == FieldType::Array).map(|f| f.size.unwrap_or(1)).sum();
    let n_lists = spec.fields.iter().filter(|f| f.kind == FieldType::List).count();
    let fixed = rows * (n_nums + n_cats + n_arr + n_lists) + n_cats;
    if n_data < fixed {
        return Err(bad(format!("the batch holds {n_data} numbers, expected at least {fixed}")));
    }
    // SAFETY: a Float64Array of n_data elements, kept alive by JS until the run settles.
    let all = if n_data == 0 { &[][..] } else { unsafe { std::slice::from_raw_parts(data as *const f64, n_data) } };
    let codes_at = rows * n_nums;
    let counts_at = codes_at + rows * n_cats;
    let mut arr_at = counts_at + n_cats;
    let mut len_at = arr_at + rows * n_arr;
    let mut list_at = len_at + rows * n_lists;
    let listed: usize = all[len_at..list_at].iter().map(|&l| l as usize).sum();
    if n_data != list_at + listed {
        return Err(bad(format!("the batch holds {n_data} numbers, expected {}", list_at + listed)));
    }
    let (mut num_i, mut cat_i, mut uniq_at, mut text_i, mut image_i) = (0usize, 0usize, 0usize, 0u32, 0u32);
    let texts = at(6)?;
    let images = at(7)?;
    let mut columns = Vec::with_capacity(spec.fields.len());
    for f in &spec.fields {
        let col = match f.kind {
            FieldType::Text => {
                let list = js::element(env, texts, text_i)?;
                text_i += 1;
                let bad_text = |r: u32| CoreError::bad_record(r as usize, &f.name, format!("row {r}: field '{}' expects a string", f.name));
                InColumn::Text(per_row(env, list, rows, &f.name, |item, r| js::string(env, item)?.ok_or_else(|| bad_text(r)))?)
            }
            FieldType::Image => {
                let list = js::element(env, images, image_i)?;
                image_i += 1;
                InColumn::Images(per_row(env, list, rows, &f.name, |item, r| crate::image::input(env, item, r, &f.name))?)
            }
            FieldType::Category => {
                let count = all[counts_at + cat_i] as usize;
                let codes: Vec<i32> = all[codes_at + cat_i * rows..codes_at + (cat_i + 1) * rows].iter().map(|&c| c as i32).collect();
                cat_i += 1;
                let u = uniques.get(uniq_at..uniq_at + count).ok_or_else(|| bad(format!("the batch is short of categories for '{}'", f.name)))?.to_vec();
                uniq_at += count;
                InColumn::OwnedCat { codes, uniques: u }
            }
            FieldType::List => {
                let lengths: Vec<usize> = all[len_at..len_at + rows].iter().map(|&l| l as usize).collect();
                len_at += rows;
                let total: usize = lengths.iter().sum();
                // SAFETY: in bounds (checked against the total above).
                let b = unsafe { BorrowedBytes::new((data as *const f64).add(list_at) as *const u8, total * 8) };
                list_at += total;
                InColumn::List { lengths, values: b }
            }
            FieldType::Array => {
                let n = rows * f.size.unwrap_or(1);
                // SAFETY: in bounds (checked against `need` above).
                let b = unsafe { BorrowedBytes::new((data as *const f64).add(arr_at) as *const u8, n * 8) };
                arr_at += n;
                InColumn::Arr(b)
            }
            _ => {
                // SAFETY: as above.
                let b = unsafe { BorrowedBytes::new((data as *const f64).add(num_i * rows) as *const u8, rows * 8) };
                num_i += 1;
                InColumn::Num(b)
            }
        };
        columns.push((f.name.clone(), col));
    }
    Ok(Batch { rows, columns, rejected })
}

