//! Records as columns: the form in which a batch crosses from JS and moves
//! through the stages. Missing numbers are NaN; missing categories are code -1.

use super::spec::{Field, FieldType};
use crate::error::{Error, Result};
use crate::tensor::BorrowedBytes;

/// One input column as it arrives (numeric data borrowed from JS).
pub enum InColumn {
    /// number, integer and boolean fields, as f64.
    Num(BorrowedBytes),
    /// Category codes into `uniques` (-1 = missing).
    Cat { codes: BorrowedBytes, uniques: Vec<String> },
    /// A fixed-size numeric array per row, row-major.
    Arr(BorrowedBytes),
    /// A variable-length list per row: its length per row and all values.
    List { lengths: Vec<usize>, values: BorrowedBytes },
    /// Owned f64 data (Rust callers and tests).
    OwnedNum(Vec<f64>),
    /// Owned fixed-size arrays, row-major.
    OwnedArr(Vec<f64>),
    OwnedList { lengths: Vec<usize>, values: Vec<f64> },
    OwnedCat { codes: Vec<i32>, uniques: Vec<String> },
    /// One string per row (None = missing).
    Text(Vec<Option<String>>),
    /// One image per row (None = missing).
    Images(Vec<Option<crate::image::ImageInput>>),
}

/// A batch of records as named columns, with rows already known to be bad.
pub struct Batch {
    pub rows: usize,
    pub columns: Vec<(String, InColumn)>,
    /// Rows to skip, with the error found while reading them (JS-side checks).
    pub rejected: Vec<(usize, Error)>,
}

impl Batch {
    /// Field `f` read into working memory: its column, checked, or all
    /// missing when the batch has none.
    pub fn column(&self, f: &Field) -> Result<Col> {
        let rows = self.rows;
        Ok(match self.columns.iter().find(|(n, _)| *n == f.name) {
            Some((_, c)) => c.to_col(&f.name, rows, f.size)?,
            None => match f.kind {
                FieldType::Category => Col::Cat { codes: vec![-1; rows], vocab: vec![] },
                FieldType::Array => Col::Arr { data: vec![f64::NAN; rows * f.size.unwrap_or(1)], size: f.size.unwrap_or(1) },
                FieldType::List => Col::List { offsets: vec![0; rows + 1], values: vec![] },
                FieldType::Text => Col::Text(vec![None; rows]),
                FieldType::Image => Col::Images(std::sync::Arc::new((0..rows).map(|_| None).collect())),
                _ => Col::Num(vec![f64::NAN; rows]),
            },
        })
    }
}

fn f64s(b: &BorrowedBytes) -> Vec<f64> {
    let bytes = b.as_slice();
    let mut out = vec![0f64; bytes.len() / 8];
    // SAFETY: `out` has exactly `bytes.len()` bytes; f64 accepts any bit pattern.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.as_mut_ptr() as *mut u8, out.len() * 8) };
    out
}

fn i32s(b: &BorrowedBytes) -> Vec<i32> {
    let bytes = b.as_slice();
    let mut out = vec![0i32; bytes.len() / 4];
    // SAFETY: as above.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.as_mut_ptr() as *mut u8, out.len() * 4) };
    out
}

/// A column while the stages work on it.
#[derive(Clone, Debug)]
pub enum Col {
    Num(Vec<f64>),
    /// Codes into `vocab`; -1 = missing.
    Cat { codes: Vec<i32>, vocab: Vec<String> },
    Arr { data: Vec<f64>, size: usize },
    /// Row i holds values[offsets[i]..offsets[i + 1]].
    List { offsets: Vec<usize>, values: Vec<f64> },
    Text(Vec<Option<String>>),
    /// Images stay borrowed until the image stage decodes them.
    Images(std::sync::Arc<Vec<Option<crate::image::ImageInput>>>),
    /// A tensor made by a stage, [rows, ...] row-major.
    Tensor(crate::tensor::InputTensor),
}

impl InColumn {
    /// Copies the column into working memory (on a worker thread), checking its length.
    pub fn to_col(&self, name: &str, rows: usize, size: Option<usize>) -> Result<Col> {
        let bad = |what: String| Error::InvalidArgument(format!("column '{name}': {what}"));
        let col = match self {
            InColumn::Num(b) => Col::Num(f64s(b)),
            InColumn::OwnedNum(v) => Col::Num(v.clone()),
            InColumn::Cat { codes, uniques } => Col::Cat { codes: i32s(codes), vocab: uniques.clone() },
            InColumn::OwnedCat { codes, uniques } => Col::Cat { codes: codes.clone(), vocab: uniques.clone() },
            InColumn::Arr(b) => Col::Arr { data: f64s(b), size: size.unwrap_or(1) },
            InColumn::OwnedArr(v) => Col::Arr { data: v.clone(), size: size.unwrap_or(1) },
            InColumn::List { lengths, values } => list(lengths, f64s(values))?,
            InColumn::OwnedList { lengths, values } => list(lengths, values.clone())?,
            InColumn::Text(t) => Col::Text(t.clone()),
            InColumn::Images(i) => Col::Images(std::sync::Arc::new(i.iter().map(|x| x.as_ref().map(|x| x.shallow())).collect())),
        };
        let len = match &col {
            Col::Num(v) => v.len(),
            Col::Cat { codes, vocab } => {
                if let Some(c) = codes.iter().find(|&&c| c < -1 || c >= vocab.len() as i32) {
                    return Err(bad(format!("category code {c} is out of range")));
                }
                codes.len()
            }
            Col::Arr { data, size } => {
                if data.len() % size != 0 {
                    return Err(bad(format!("{} values do not split into rows of {size}", data.len())));
                }
                data.len() / size
            }
            Col::List { offsets, .. } => offsets.len() - 1,
            Col::Text(t) => t.len(),
            Col::Images(i) => i.len(),
            Col::Tensor(t) => t.dims.first().copied().unwrap_or(0) as usize,
        };
        if len != rows {
            return Err(bad(format!("has {len} rows, expected {rows}")));
        }
        Ok(col)
    }
}

fn list(lengths: &[usize], values: Vec<f64>) -> Result<Col> {
    let mut offsets = Vec::with_capacity(lengths.len() + 1);
    offsets.push(0);
    for l in lengths {
        offsets.push(offsets.last().copied().unwrap_or(0) + l);
    }
    if offsets.last().copied().unwrap_or(0) != values.len() {
        return Err(Error::InvalidArgument(format!("list lengths add up to {} but {} values came", offsets.last().unwrap_or(&0), values.len())));
    }
    Ok(Col::List { offsets, values })
}
