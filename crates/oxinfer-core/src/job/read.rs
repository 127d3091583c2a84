//! Reads a CSV or JSONL file into pipeline batches, a chunk of rows at a time,
//! so a job never holds more of its input than the chunks in flight.
//!
//! Values are checked against the spec's field types as they are parsed: a
//! value that does not fit (an unparsable number, a bad JSON line, a CSV row of
//! the wrong width) makes its row a rejected row of the batch, with the field
//! named, and the pipeline reports or fails on it like any other bad record.
//! Rows are numbered from 0 within the chunk here; the job adds the chunk's
//! first row.
//!
//! A reader may cover one byte range of the file (a shard): the rows whose
//! line starts in `[start, end)`. It seeks to `start`, skips the rest of the
//! line it lands in (the previous shard's), and stops before a line that
//! starts at or past `end`, so it reads past its range by at most the one
//! line that crosses `end`, with no pre-pass over the file. Shards assume
//! one record per line: a CSV field with a newline inside quotes would be
//! cut.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::pipeline::spec::{Field, FieldType, UnknownFields};
use crate::pipeline::{Batch, InColumn};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputFormat {
    /// A header row naming the fields; extra columns are ignored.
    Csv,
    /// One JSON object per line; blank lines are skipped.
    Jsonl,
}

/// A chunk of rows parsed into a batch.
pub struct Chunk {
    /// Index of the chunk's first data row in the file.
    pub first_row: usize,
    pub batch: Batch,
    /// File offset just past the chunk (for progress estimates).
    pub end_byte: u64,
}

/// One field's values while a chunk is read.
enum Column {
    Num { kind: FieldType, values: Vec<f64> },
    Cat { codes: Vec<i32>, dict: HashMap<String, i32>, uniques: Vec<String> },
    Arr { size: usize, values: Vec<f64> },
    List { lengths: Vec<usize>, values: Vec<f64> },
    Text(Vec<Option<String>>),
}

/// One cell as either format hands it over.
enum Cell<'a> {
    Missing,
    Str(&'a str),
    Json(&'a Value),
}

fn describe(v: &Value) -> String {
    match v {
        Value::String(s) if s.len() > 40 => format!("the string {:?}…", &s[..s.char_indices().nth(40).map_or(s.len(), |(i, _)| i)]),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(a) => format!("an array of {}", a.len()),
        Value::Object(_) => "an object".into(),
        Value::Bool(_) => "a boolean".into(),
        Value::Number(n) => format!("the number {n}"),
        Value::Null => "null".into(),
    }
}

fn numbers(v: &Value) -> Option<Vec<f64>> {
    v.as_array()?.iter().map(|x| if x.is_null() { Some(f64::NAN) } else { x.as_f64() }).collect()
}

impl Column {
    fn new(f: &Field, rows: usize) -> Self {
        match f.kind {
            FieldType::Category => Column::Cat { codes: Vec::with_capacity(rows), dict: HashMap::new(), uniques: Vec::new() },
            FieldType::Array => Column::Arr { size: f.size.unwrap_or(1), values: Vec::with_capacity(rows * f.size.unwrap_or(1)) },
            FieldType::List => Column::List { lengths: Vec::with_capacity(rows), values: Vec::new() },
            FieldType::Text => Column::Text(Vec::with_capacity(rows)),
            kind => Column::Num { kind, values: Vec::with_capacity(rows) },
        }
    }

    fn missing(&mut self) {
        match self {
            Column::Num { values, .. } => values.push(f64::NAN),
            Column::Cat { codes, .. } => codes.push(-1),
            Column::Arr { size, values } => values.extend(std::iter::repeat_n(f64::NAN, *size)),
            Column::List { lengths, .. } => lengths.push(0),
            Column::Text(t) => t.push(None),
        }
    }

    /// Appends one value; on a bad value appends a missing one and says why.
    fn push(&mut self, cell: Cell) -> std::result::Result<(), String> {
        let r = self.try_push(cell);
        if r.is_err() {
            self.missing();
        }
        r
    }

    fn try_push(&mut self, cell: Cell) -> std::result::Result<(), String> {
        let cell = match cell {
            Cell::Str("") | Cell::Json(Value::Null) | Cell::Missing => {
                self.missing();
                return Ok(());
            }
            c => c,
        };
        match self {
            Column::Num { kind, values } => {
                let x = match (&cell, *kind) {
                    (Cell::Str(s), FieldType::Boolean) => match s.trim() {
                        t if t.eq_ignore_ascii_case("true") || t == "1" => 1.0,
                        t if t.eq_ignore_ascii_case("false") || t == "0" => 0.0,
                        t => return Err(format!("expects a boolean (true, false, 1 or 0), got {t:?}")),
                    },
                    (Cell::Json(Value::Bool(b)), FieldType::Boolean) => f64::from(u8::from(*b)),
                    (Cell::Json(v), FieldType::Boolean) => return Err(format!("expects a boolean, got {}", describe(v))),
                    (Cell::Str(s), _) => s.trim().parse::<f64>().map_err(|_| format!("expects a number, got {s:?}"))?,
                    (Cell::Json(v), _) => v.as_f64().ok_or_else(|| format!("expects a number, got {}", describe(v)))?,
                    (Cell::Missing, _) => f64::NAN,
                };
                if *kind == FieldType::Integer && x.fract() != 0.0 && x.is_finite() {
                    return Err(format!("expects an integer, got {x}"));
                }
                values.push(x);
            }
            Column::Cat { codes, dict, uniques } => {
                let s = match &cell {
                    Cell::Str(s) => *s,
                    Cell::Json(Value::String(s)) => s.as_str(),
                    Cell::Json(v) => return Err(format!("expects a category string, got {}", describe(v))),
                    Cell::Missing => unreachable!(),
                };
                let code = match dict.get(s) {
                    Some(c) => *c,
                    None => {
                        let c = uniques.len() as i32;
                        dict.insert(s.to_string(), c);
                        uniques.push(s.to_string());
                        c
                    }
                };
                codes.push(code);
            }
            Column::Arr { size, values } => {
                let parsed;
                let v = match &cell {
                    Cell::Str(s) => {
                        parsed = serde_json::from_str::<Value>(s).map_err(|_| format!("expects a JSON array of {size} numbers, got {s:?}"))?;
                        &parsed
                    }
                    Cell::Json(v) => *v,
                    Cell::Missing => unreachable!(),
                };
                match numbers(v) {
                    Some(xs) if xs.len() == *size => values.extend(xs),
                    _ => return Err(format!("expects {size} numbers, got {}", describe(v))),
                }
            }
            Column::List { lengths, values } => {
                let parsed;
                let v = match &cell {
                    Cell::Str(s) => {
                        parsed = serde_json::from_str::<Value>(s).map_err(|_| format!("expects a JSON array of numbers, got {s:?}"))?;
                        &parsed
                    }
                    Cell::Json(v) => *v,
                    Cell::Missing => unreachable!(),
                };
                let xs = numbers(v).ok_or_else(|| format!("expects a list of numbers, got {}", describe(v)))?;
                lengths.push(xs.len());
                values.extend(xs);
            }
            Column::Text(t) => match &cell {
                Cell::Str(s) => t.push(Some(s.to_string())),
                Cell::Json(Value::String(s)) => t.push(Some(s.clone())),
                Cell::Json(v) => return Err(format!("expects a string, got {}", describe(v))),
                Cell::Missing => unreachable!(),
            },
        }
        Ok(())
    }

    fn into_input(self) -> InColumn {
        match self {
            Column::Num { values, .. } => InColumn::OwnedNum(values),
            Column::Arr { values, .. } => InColumn::OwnedArr(values),
            Column::Cat { codes, uniques, .. } => InColumn::OwnedCat { codes, uniques },
            Column::List { lengths, values } => InColumn::OwnedList { lengths, values },
            Column::Text(t) => InColumn::Text(t),
        }
    }
}

enum Source {
    /// `base`: the file offset of the CSV reader's first byte. `ends`: for
    /// a shard, the file again, to tell where a line starts (see `line_start`).
    Csv { reader: csv::Reader<BufReader<File>>, record: csv::ByteRecord, to_field: Vec<Option<usize>>, base: u64, ends: Option<File> },
    Jsonl { reader: BufReader<File>, line: Vec<u8>, at: u64 },
}

/// Shard `index` of `count` of a file of `len` bytes: its byte range.
pub fn shard_range(len: u64, index: u64, count: u64) -> (u64, u64) {
    let count = count.max(1);
    let at = |i: u64| ((len as u128 * i as u128) / count as u128) as u64;
    (at(index.min(count)), at((index + 1).min(count)))
}

/// Where the line after a CSV record that ended at `pos` starts. The csv
/// crate stops a CRLF record after its `\r`, so its position can be one
/// byte short of the next line: the `\n` there still belongs to the record.
fn line_start(file: &File, pos: u64) -> u64 {
    let mut byte = [0u8; 1];
    let mut f = file;
    match f.seek(SeekFrom::Start(pos)).and_then(|_| f.read(&mut byte)) {
        Ok(1) if byte[0] == b'\n' => pos + 1,
        _ => pos,
    }
}

/// A buffered reader at the first line that starts at or after `start`,
/// and that line's offset (`floor`: where rows may begin at all).
fn at_line(path: &Path, start: u64, floor: u64) -> Result<(BufReader<File>, u64)> {
    let mut file = File::open(path).map_err(|e| Error::file("the job's input file", path, e))?;
    let start = start.max(floor);
    if start == floor {
        file.seek(SeekFrom::Start(floor)).map_err(|e| Error::file("the job's input file", path, e))?;
        return Ok((BufReader::with_capacity(1 << 16, file), floor));
    }
    // Whether `start` begins a line is told by the byte before it.
    file.seek(SeekFrom::Start(start - 1)).map_err(|e| Error::file("the job's input file", path, e))?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut skipped = Vec::new();
    let n = reader.read_until(b'\n', &mut skipped).map_err(|e| Error::file("the job's input file", path, e))?;
    Ok((reader, start - 1 + n as u64))
}

/// Reads a file a chunk at a time.
pub struct Reader {
    fields: Vec<Field>,
    unknown: UnknownFields,
    source: Source,
    next_row: usize,
    bytes_total: u64,
    /// Rows end before a line that starts here (a shard's end).
    end: Option<u64>,
}

impl Reader {
    /// Opens `path` and, for CSV, reads its header. Images cannot come from files.
    pub fn open(path: &Path, format: InputFormat, fields: &[Field], unknown: UnknownFields) -> Result<Self> {
        Self::open_range(path, format, fields, unknown, None)
    }

    /// `open`, reading only the rows whose lines start in `range` (a shard;
    /// see the module's comment). The CSV header is read from the file's start.
    pub fn open_range(path: &Path, format: InputFormat, fields: &[Field], unknown: UnknownFields, range: Option<(u64, u64)>) -> Result<Self> {
        if let Some(f) = fields.iter().find(|f| f.kind == FieldType::Image) {
            return Err(Error::InvalidArgument(format!("field '{}' is an image; jobs read images only from async iterables, not from files", f.name)));
        }
        let file = File::open(path).map_err(|e| Error::file("the job's input file", path, e))?;
        let bytes_total = file.metadata().map(|m| m.len()).unwrap_or(0);
        let buffered = BufReader::with_capacity(1 << 16, file);
        let source = match format {
            InputFormat::Csv => {
                let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(buffered);
                let header = reader.byte_headers().map_err(|e| Error::InvalidArgument(format!("cannot read the CSV header of '{}': {e}", path.display())))?.clone();
                let to_field: Vec<Option<usize>> =
                    header.iter().map(|h| String::from_utf8_lossy(h).trim().to_string()).map(|h| fields.iter().position(|f| f.name == h)).collect();
                if !fields.is_empty() && to_field.iter().all(Option::is_none) {
                    let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
                    return Err(Error::InvalidArgument(format!("the CSV header of '{}' names none of the fields ({})", path.display(), names.join(", "))));
                }
                if unknown == UnknownFields::Error {
                    let extra: Vec<String> =
                        header.iter().zip(&to_field).filter(|(_, t)| t.is_none()).map(|(h, _)| String::from_utf8_lossy(h).trim().to_string()).collect();
                    if let Some(first) = extra.first() {
                        return Err(Error::InvalidInput {
                            message: format!(
                                "the CSV header of '{}' has columns the spec does not declare: {}; pass unknownFields: 'ignore' to skip them",
                                path.display(),
                                extra.join(", ")
                            ),
                            input: None,
                            row: None,
                            field: Some(first.clone()),
                        });
                    }
                }
                match range {
                    None => Source::Csv { reader, record: csv::ByteRecord::new(), to_field, base: 0, ends: None },
                    Some((start, _)) => {
                        let ends = File::open(path).map_err(|e| Error::file("the job's input file", path, e))?;
                        let floor = line_start(&ends, reader.position().byte());
                        let (buffered, base) = at_line(path, start, floor)?;
                        let reader = csv::ReaderBuilder::new().flexible(true).has_headers(false).from_reader(buffered);
                        Source::Csv { reader, record: csv::ByteRecord::new(), to_field, base, ends: Some(ends) }
                    }
                }
            }
            InputFormat::Jsonl => match range {
                None => Source::Jsonl { reader: buffered, line: Vec::new(), at: 0 },
                Some((start, _)) => {
                    let (reader, at) = at_line(path, start, 0)?;
                    Source::Jsonl { reader, line: Vec::new(), at }
                }
            },
        };
        Ok(Reader { fields: fields.to_vec(), unknown, source, next_row: 0, bytes_total, end: range.map(|r| r.1) })
    }

    /// The file's size in bytes.
    pub fn bytes_total(&self) -> u64 {
        self.bytes_total
    }

    /// The file offset of the next line to read (after the last, the end of
    /// the lines read: a shard's span).
    pub fn offset(&self) -> u64 {
        match &self.source {
            Source::Csv { reader, base, ends: Some(file), .. } => line_start(file, *base + reader.position().byte()),
            Source::Csv { reader, base, ends: None, .. } => *base + reader.position().byte(),
            Source::Jsonl { at, .. } => *at,
        }
    }

    /// Reads up to `max_rows` rows; None at the end of the file.
    pub fn next_chunk(&mut self, max_rows: usize) -> Result<Option<Chunk>> {
        let mut cols: Vec<Column> = self.fields.iter().map(|f| Column::new(f, max_rows)).collect();
        let mut rejected: Vec<(usize, Error)> = Vec::new();
        let mut rows = 0usize;
        let first_row = self.next_row;
        let fields = &self.fields;
        let end_byte;
        match &mut self.source {
            Source::Csv { reader, record, to_field, base, ends } => {
                let mut seen = vec![false; fields.len()];
                while rows < max_rows {
                    if let (Some(end), Some(file)) = (self.end, ends.as_ref()) {
                        // One byte short of the end may still be a line at the end (CRLF).
                        let at = *base + reader.position().byte();
                        if at >= end || (at + 1 == end && line_start(file, at) >= end) {
                            break;
                        }
                    }
                    match reader.read_byte_record(record) {
                        Ok(false) => break,
                        Ok(true) => {}
                        // Not a row the job can skip: the reader cannot continue past it.
                        Err(e) => return Err(row_error(first_row + rows, String::new(), format!("cannot read the CSV file: {e}"))),
                    }
                    let mut bad: Option<(String, String)> = None;
                    if record.len() != to_field.len() {
                        bad = Some((String::new(), format!("the row has {} values but the header has {}", record.len(), to_field.len())));
                    }
                    seen.iter_mut().for_each(|s| *s = false);
                    for (cell, f) in record.iter().zip(to_field.iter()) {
                        let Some(f) = *f else { continue };
                        if seen[f] {
                            continue;
                        }
                        seen[f] = true;
                        let r = match std::str::from_utf8(cell) {
                            Ok(s) => cols[f].push(Cell::Str(s)),
                            Err(_) => cols[f].push(Cell::Missing).and(Err("is not valid UTF-8".into())),
                        };
                        if let (Err(m), None) = (r, &bad) {
                            bad = Some((fields[f].name.clone(), format!("field '{}' {m}", fields[f].name)));
                        }
                    }
                    for (f, s) in seen.iter().enumerate() {
                        if !s {
                            cols[f].missing();
                        }
                    }
                    if let Some((field, message)) = bad {
                        rejected.push((rows, row_error(rows, field, message)));
                    }
                    rows += 1;
                }
                end_byte = *base + reader.position().byte();
            }
            Source::Jsonl { reader, line, at } => {
                while rows < max_rows {
                    if self.end.is_some_and(|end| *at >= end) {
                        break;
                    }
                    line.clear();
                    let n = reader.read_until(b'\n', line).map_err(|e| Error::InvalidArgument(format!("cannot read the input file: {e}")))?;
                    if n == 0 {
                        break;
                    }
                    *at += n as u64;
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    match serde_json::from_slice::<serde_json::Map<String, Value>>(line) {
                        Ok(obj) => {
                            let mut bad: Option<(String, String)> = None;
                            if self.unknown == UnknownFields::Error {
                                if let Some(k) = obj.keys().find(|k| !fields.iter().any(|f| &f.name == *k)) {
                                    bad = Some((k.clone(), format!("unknown field '{k}' (the spec's fields: {})", field_names(fields))));
                                }
                            }
                            for (f, col) in fields.iter().zip(cols.iter_mut()) {
                                let cell = obj.get(&f.name).map_or(Cell::Missing, Cell::Json);
                                if let (Err(m), None) = (col.push(cell), &bad) {
                                    bad = Some((f.name.clone(), format!("field '{}' {m}", f.name)));
                                }
                            }
                            if let Some((field, message)) = bad {
                                rejected.push((rows, row_error(rows, field, message)));
                            }
                        }
                        Err(e) => {
                            cols.iter_mut().for_each(Column::missing);
                            rejected.push((rows, row_error(rows, String::new(), format!("the line is not a JSON object: {e}"))));
                        }
                    }
                    rows += 1;
                }
                end_byte = *at;
            }
        }
        if rows == 0 {
            return Ok(None);
        }
        self.next_row += rows;
        let columns = fields.iter().zip(cols).map(|(f, c)| (f.name.clone(), c.into_input())).collect();
        Ok(Some(Chunk { first_row, batch: Batch { rows, columns, rejected }, end_byte }))
    }
}

/// The spec's field names, for messages.
fn field_names(fields: &[Field]) -> String {
    fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ")
}

/// A row error; an empty field means the row as a whole (bad JSON, wrong width).
fn row_error(row: usize, field: String, message: String) -> Error {
    Error::InvalidInput { message, input: None, row: Some(row), field: (!field.is_empty()).then_some(field) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> Vec<Field> {
        serde_json::from_str(r#"[{"name":"x","type":"number"},{"name":"n","type":"integer"},{"name":"c","type":"category"},{"name":"a","type":"array","size":2},{"name":"b","type":"boolean"}]"#).unwrap()
    }

    fn file(name: &str, text: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("oxinfer-read-{}-{name}", std::process::id()));
        std::fs::write(&p, text).unwrap();
        p
    }

    fn nums(c: &InColumn) -> Vec<f64> {
        match c {
            InColumn::OwnedNum(v) | InColumn::OwnedArr(v) => v.clone(),
            _ => panic!("not numeric"),
        }
    }

    #[test]
    fn csv_chunks_with_bad_rows() {
        let p = file("a.csv", "extra,x,n,c,a,b\n1,1.5,2,u,\"[1,2]\",true\n2,,3,v,,0\n3,abc,4,u,\"[1]\",1\n4,2,2.5,w,\"[3,4]\",yes\n5,1\n");
        let mut r = Reader::open(&p, InputFormat::Csv, &fields(), UnknownFields::Ignore).unwrap();
        let c = r.next_chunk(3).unwrap().unwrap();
        assert_eq!((c.first_row, c.batch.rows), (0, 3));
        assert_eq!(nums(&c.batch.columns[0].1)[0], 1.5);
        assert!(nums(&c.batch.columns[0].1)[1].is_nan());
        match &c.batch.columns[2].1 {
            InColumn::OwnedCat { codes, uniques } => assert_eq!((codes.clone(), uniques.clone()), (vec![0, 1, 0], vec!["u".to_string(), "v".to_string()])),
            _ => panic!(),
        }
        assert_eq!(nums(&c.batch.columns[3].1).len(), 6);
        // Row 2: the first bad field is named.
        assert_eq!(c.batch.rejected.len(), 1);
        assert_eq!((c.batch.rejected[0].0, c.batch.rejected[0].1.field()), (2, Some("x")));
        let c = r.next_chunk(3).unwrap().unwrap();
        assert_eq!((c.first_row, c.batch.rows), (3, 2));
        let bad: Vec<(usize, Option<&str>)> = c.batch.rejected.iter().map(|(r, e)| (*r, e.field())).collect();
        assert_eq!(bad, vec![(0, Some("n")), (1, None)]);
        assert!(r.next_chunk(3).unwrap().is_none());
        std::fs::remove_file(p).ok();
    }

    #[test]
    fn jsonl_lines_and_bad_json() {
        let p = file("b.jsonl", "{\"x\":1,\"c\":\"u\",\"a\":[1,null]}\n\n{\"x\":\"1\"}\nnot json\n{\"b\":false,\"n\":7}\n");
        let mut r = Reader::open(&p, InputFormat::Jsonl, &fields(), UnknownFields::Ignore).unwrap();
        let c = r.next_chunk(10).unwrap().unwrap();
        assert_eq!(c.batch.rows, 4);
        let bad: Vec<(usize, Option<&str>)> = c.batch.rejected.iter().map(|(r, e)| (*r, e.field())).collect();
        assert_eq!(bad, vec![(1, Some("x")), (2, None)]);
        assert_eq!(nums(&c.batch.columns[4].1)[3], 0.0);
        assert_eq!(c.end_byte, std::fs::metadata(&p).unwrap().len());
        std::fs::remove_file(p).ok();
    }

    #[test]
    fn refuses_missing_files_and_foreign_headers() {
        assert_eq!(Reader::open(Path::new("/nonexistent/x.csv"), InputFormat::Csv, &fields(), UnknownFields::Ignore).err().unwrap().code(), "ERR_FILE");
        let p = file("c.csv", "p,q\n1,2\n");
        assert_eq!(Reader::open(&p, InputFormat::Csv, &fields(), UnknownFields::Ignore).err().unwrap().code(), "ERR_INVALID_ARGUMENT");
        let images: Vec<Field> = serde_json::from_str(r#"[{"name":"p","type":"image"}]"#).unwrap();
        let e = Reader::open(&p, InputFormat::Csv, &images, UnknownFields::Ignore).err().unwrap();
        assert_eq!(e.code(), "ERR_INVALID_ARGUMENT");
        assert!(e.to_string().contains("image"));
        std::fs::remove_file(p).ok();
    }

    /// Every row's first value, shard by shard, for `count` shards, and
    /// each shard's span (its reader's offset before and after).
    fn sharded(p: &Path, format: InputFormat, count: u64) -> (Vec<Vec<f64>>, Vec<(u64, u64)>) {
        let len = std::fs::metadata(p).unwrap().len();
        let one: Vec<Field> = serde_json::from_str(r#"[{"name":"x","type":"number"}]"#).unwrap();
        (0..count)
            .map(|i| {
                let mut r = Reader::open_range(p, format, &one, UnknownFields::Ignore, Some(shard_range(len, i, count))).unwrap();
                let start = r.offset();
                let mut out = Vec::new();
                while let Some(c) = r.next_chunk(7).unwrap() {
                    out.extend(nums(&c.batch.columns[0].1));
                }
                (out, (start, r.offset()))
            })
            .unzip()
    }

    #[test]
    fn shards_cover_every_row_once_in_order() {
        // Lines of uneven length, so that range ends fall mid-line, at line starts and inside the header.
        let rows: Vec<f64> = (0..101).map(|i| (i * i % 977) as f64).collect();
        let csv = file("s.csv", &format!("x,pad\n{}", rows.iter().enumerate().map(|(i, x)| format!("{x},{}\n", "p".repeat(i % 13))).collect::<String>()));
        let jsonl = file("s.jsonl", &rows.iter().enumerate().map(|(i, x)| format!("{{\"x\":{x},\"pad\":\"{}\"}}\n", "p".repeat(i % 11))).collect::<String>());
        // Windows line ends: the csv crate stops a CRLF record before its \n.
        let crlf = file("s-crlf.csv", &std::fs::read_to_string(&csv).unwrap().replace('\n', "\r\n"));
        let crlf_jsonl = file("s-crlf.jsonl", &std::fs::read_to_string(&jsonl).unwrap().replace('\n', "\r\n"));
        for (p, format) in [(&csv, InputFormat::Csv), (&jsonl, InputFormat::Jsonl), (&crlf, InputFormat::Csv), (&crlf_jsonl, InputFormat::Jsonl)] {
            let len = std::fs::metadata(p).unwrap().len();
            for count in [1, 2, 3, 5, 17, 101, 300] {
                let (shards, spans) = sharded(p, format, count);
                assert_eq!(shards.concat(), rows, "{p:?} in {count} shards");
                // The spans tile the data: each ends where the next begins, the last at the end.
                for w in spans.windows(2) {
                    assert_eq!(w[0].1, w[1].0, "{p:?} in {count} shards: {spans:?}");
                }
                assert_eq!(spans.last().unwrap().1, len, "{p:?} in {count} shards");
            }
        }
        std::fs::remove_file(crlf).ok();
        std::fs::remove_file(crlf_jsonl).ok();
        // Each shard stops at the first line starting at or past its end: past it by at most one line.
        let len = std::fs::metadata(&jsonl).unwrap().len();
        let text = std::fs::read_to_string(&jsonl).unwrap();
        let starts: Vec<u64> = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i as u64 + 1)).filter(|&s| s < len).collect();
        for i in 0..3 {
            let (start, end) = shard_range(len, i, 3);
            let one: Vec<Field> = serde_json::from_str(r#"[{"name":"x","type":"number"}]"#).unwrap();
            let mut r = Reader::open_range(&jsonl, InputFormat::Jsonl, &one, UnknownFields::Ignore, Some((start, end))).unwrap();
            let mut last_end = 0;
            while let Some(c) = r.next_chunk(1000).unwrap() {
                last_end = c.end_byte;
            }
            let first_past = starts.iter().copied().find(|&s| s >= end).unwrap_or(len);
            assert_eq!(last_end, first_past, "shard {i} reads to the end of the line crossing {end}");
        }
        std::fs::remove_file(csv).ok();
        std::fs::remove_file(jsonl).ok();
    }
}
