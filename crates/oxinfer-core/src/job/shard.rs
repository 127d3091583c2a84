//! Sharded jobs: N processes (a Kubernetes Indexed Job's pods) each score one
//! byte range of the same input file, and a merge step joins their outputs.
//!
//! Shard i of n reads the rows whose lines start in `shard_range(len, i, n)`
//! (see `read.rs`: no pre-pass, at most one line read past the range) and
//! writes `<output>.shard-<i>-of-<n>`, its rows numbered from 0 within the
//! shard, since no shard knows how many rows come before it. Once the part is
//! flushed it writes `<part>.json`, a manifest that names the input (size and
//! modification time), the range and the span of bytes its rows actually
//! covered, and its row count: the part is complete exactly when that file
//! exists, and a rerun of the shard deletes it first.
//!
//! `merge` checks that the n manifests agree on the input and formats, that
//! shard 0's span starts at the first row (where the input is still there)
//! and shard n-1's ends the file, and that each
//! span ends where the next begins, so every line of the file was read by
//! exactly one shard. It then copies the parts in order into the output,
//! checking each part's row numbers and count against its manifest and
//! numbering rows (and the `row N` of error messages) in the whole input: the
//! result is what one unsharded run writes (byte for byte, but for the last
//! bit of a float32 score where ONNX Runtime rounds a batch of another size
//! differently).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::read::{shard_range, InputFormat, Reader};
use super::write::OutputFormat;
use crate::error::{renumber_row, Error, Result};
use crate::pipeline::spec::UnknownFields;

/// Shard `index` (0-based) of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    pub fn new(index: u64, count: u64) -> Result<Self> {
        if count == 0 || index >= count {
            return Err(Error::InvalidArgument(format!("shard {index} of {count}: the count must be at least 1 and the index (0-based) below it")));
        }
        Ok(Shard { index, count })
    }

    /// This shard's byte range in a file of `len` bytes.
    pub fn range(&self, len: u64) -> (u64, u64) {
        shard_range(len, self.index, self.count)
    }

    /// Where this shard writes its part of `output`.
    pub fn part_path(&self, output: &Path) -> PathBuf {
        suffixed(output, &format!(".shard-{}-of-{}", self.index, self.count))
    }
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// A name of this attempt's own beside `path` (process id and a counter),
/// for a file that is renamed into place once complete.
pub fn attempt_path(path: &Path) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    suffixed(path, &format!(".{}-{n}.tmp", std::process::id()))
}

/// The manifest beside a part.
pub fn manifest_path(part: &Path) -> PathBuf {
    suffixed(part, ".json")
}

fn format_name(f: OutputFormat) -> &'static str {
    match f {
        OutputFormat::Jsonl => "jsonl",
        OutputFormat::Csv => "csv",
    }
}

/// What a finished shard wrote about itself.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub version: u32,
    pub input: String,
    pub input_bytes: u64,
    /// The input's modification time (ms since the epoch), 0 where unknown.
    pub input_modified_ms: u64,
    pub input_format: String,
    pub output_format: String,
    pub shard: u64,
    pub shards: u64,
    /// The byte range the shard was given.
    pub range: [u64; 2],
    /// The bytes its rows came from: the first line starting in the range,
    /// up to the first line starting at or past its end (or the file's end).
    pub span: [u64; 2],
    pub rows: u64,
    pub errors: u64,
}

/// The input file's size and modification time.
pub fn input_identity(path: &Path) -> Result<(u64, u64)> {
    let m = std::fs::metadata(path).map_err(|e| Error::file("the job's input file", path, e))?;
    let modified = m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_millis() as u64);
    Ok((m.len(), modified))
}

impl Manifest {
    #[allow(clippy::too_many_arguments)]
    pub fn new(input: &Path, input_format: InputFormat, output_format: OutputFormat, shard: Shard, identity: (u64, u64), span: [u64; 2], rows: u64, errors: u64) -> Self {
        let (start, end) = shard.range(identity.0);
        Manifest {
            version: 1,
            input: input.display().to_string(),
            input_bytes: identity.0,
            input_modified_ms: identity.1,
            input_format: match input_format {
                InputFormat::Csv => "csv",
                InputFormat::Jsonl => "jsonl",
            }
            .into(),
            output_format: format_name(output_format).into(),
            shard: shard.index,
            shards: shard.count,
            range: [start, end],
            span,
            rows,
            errors,
        }
    }

    /// Writes the manifest beside `part` (through a temporary file and a
    /// rename, so a manifest is never seen half written).
    pub fn write(&self, part: &Path) -> Result<()> {
        let path = manifest_path(part);
        let tmp = attempt_path(&path);
        let body = serde_json::to_vec_pretty(self).map_err(|e| Error::Backend(format!("cannot encode a shard manifest: {e}")))?;
        std::fs::write(&tmp, body).map_err(|e| Error::file_op("write", "the shard manifest", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::file_op("write", "the shard manifest", &path, e))
    }
}

/// Removes a previous run's manifest of this part (the part is incomplete
/// again until this run writes a new one).
pub fn invalidate(part: &Path) -> Result<()> {
    match std::fs::remove_file(manifest_path(part)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::file_op("remove", "the shard manifest", &manifest_path(part), e)),
    }
}

/// What `merge` did.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MergeReport {
    pub shards: u64,
    pub rows: u64,
    pub errors: u64,
    pub output: String,
    pub input: String,
}

/// The shard count of the parts of `output`, from the manifests present.
fn find_count(output: &Path) -> Result<u64> {
    let dir = output.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let base = output.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let prefix = format!("{base}.shard-");
    let mut counts: Vec<u64> = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::file("the output's folder", dir, e))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(rest) = name.strip_prefix(&prefix).and_then(|r| r.strip_suffix(".json")) else { continue };
        if let Some((_, n)) = rest.split_once("-of-") {
            if let Ok(n) = n.parse::<u64>() {
                if !counts.contains(&n) {
                    counts.push(n);
                }
            }
        }
    }
    counts.sort_unstable();
    match counts.as_slice() {
        [] => Err(Error::file("the shard manifests of", output, "none found (shards write <output>.shard-<i>-of-<n>.json when they finish)")),
        [n] => Ok(*n),
        _ => Err(Error::InvalidArgument(format!(
            "parts of '{}' for different shard counts ({}) are present; pass the count, or remove the stale parts",
            output.display(),
            counts.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
        ))),
    }
}

fn bad(part: &Path, message: String) -> Error {
    Error::InvalidInput { message, input: Some(part.display().to_string()), row: None, field: None }
}

/// Reads and cross-checks the n manifests of `output`.
fn manifests(output: &Path, count: u64) -> Result<Vec<(PathBuf, Manifest)>> {
    let mut all: Vec<(PathBuf, Manifest)> = Vec::with_capacity(count as usize);
    for i in 0..count {
        let part = Shard::new(i, count)?.part_path(output);
        let mpath = manifest_path(&part);
        let text = match std::fs::read(&mpath) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let why = if part.exists() { "its part exists but has no manifest: it did not finish" } else { "it wrote nothing" };
                return Err(Error::file("the manifest of", &mpath, format!("shard {i} of {count} has not finished ({why})")));
            }
            Err(e) => return Err(Error::file("the shard manifest", &mpath, e)),
        };
        let m: Manifest = serde_json::from_slice(&text).map_err(|e| bad(&mpath, format!("the manifest of shard {i} of {count} cannot be read: {e}")))?;
        if m.version != 1 || m.shard != i || m.shards != count {
            return Err(bad(&mpath, format!("the manifest says shard {} of {} (version {}), expected shard {i} of {count}", m.shard, m.shards, m.version)));
        }
        if let Some((_, first)) = all.first() {
            let same = (&m.input, m.input_bytes, m.input_modified_ms, &m.input_format, &m.output_format)
                == (&first.input, first.input_bytes, first.input_modified_ms, &first.input_format, &first.output_format);
            if !same {
                return Err(bad(&mpath, format!(
                    "shard {i} scored '{}' ({} bytes, modified {}, {} to {}), shard 0 '{}' ({} bytes, modified {}, {} to {}): the parts come from different runs",
                    m.input, m.input_bytes, m.input_modified_ms, m.input_format, m.output_format,
                    first.input, first.input_bytes, first.input_modified_ms, first.input_format, first.output_format
                )));
            }
        }
        let (start, end) = shard_range(m.input_bytes, i, count);
        if m.range != [start, end] {
            return Err(bad(&mpath, format!("shard {i} of {count} of {} bytes should cover [{start}, {end}), its manifest says {:?}", m.input_bytes, m.range)));
        }
        all.push((part, m));
    }
    // Every line read exactly once: the spans tile the data, in order.
    for w in all.windows(2) {
        let (a, b) = (&w[0].1, &w[1].1);
        if a.span[1] != b.span[0] {
            return Err(bad(&w[1].0, format!(
                "shard {} read bytes [{}, {}) and shard {} [{}, {}): rows between or in both would be lost or scored twice",
                a.shard, a.span[0], a.span[1], b.shard, b.span[0], b.span[1]
            )));
        }
    }
    let last = &all.last().expect("count >= 1").1;
    if last.span[1] != last.input_bytes {
        return Err(bad(&all.last().expect("count >= 1").0, format!("the last shard stopped at byte {} of {}", last.span[1], last.input_bytes)));
    }
    // Where the input is still there: unchanged, and shard 0 started at its first row.
    let first = &all[0].1;
    let input = Path::new(&first.input);
    if let Ok(identity) = input_identity(input) {
        if identity != (first.input_bytes, first.input_modified_ms) {
            return Err(bad(input, format!("the input '{}' changed after the shards read it ({} bytes now, {} then)", input.display(), identity.0, first.input_bytes)));
        }
        let format = if first.input_format == "csv" { InputFormat::Csv } else { InputFormat::Jsonl };
        let start = Reader::open_range(input, format, &[], UnknownFields::Ignore, Some((0, 0)))?.offset();
        if first.span[0] != start {
            return Err(bad(&all[0].0, format!("shard 0 read from byte {}, but the rows of '{}' start at byte {start}", first.span[0], input.display())));
        }
    }
    Ok(all)
}

/// Joins the parts of `output` into `output` (see the module's comment).
/// `count`: the shard count, found from the manifests when None. `keep`:
/// leave the parts and manifests in place (else they are removed).
pub fn merge(output: &Path, count: Option<u64>, keep: bool) -> Result<MergeReport> {
    let count = match count {
        Some(n) => Shard::new(0, n)?.count,
        None => find_count(output)?,
    };
    let parts = manifests(output, count)?;
    let format = if parts[0].1.output_format == "csv" { OutputFormat::Csv } else { OutputFormat::Jsonl };
    let tmp = attempt_path(output);
    let file = File::create(&tmp).map_err(|e| Error::file("the merged output", &tmp, e))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let copied = (|| -> Result<()> {
        let mut first_row = 0u64;
        let mut header: Option<Vec<u8>> = None;
        for (part, m) in &parts {
            let rows = match format {
                OutputFormat::Jsonl => copy_jsonl(part, first_row, &mut out)?,
                OutputFormat::Csv => copy_csv(part, first_row, &mut header, &mut out)?,
            };
            if rows != m.rows {
                return Err(bad(part, format!("the part of shard {} has {rows} rows, its manifest {}", m.shard, m.rows)));
            }
            first_row += rows;
        }
        out.flush().map_err(|e| Error::file_op("write", "the merged output", &tmp, e))
    })();
    drop(out);
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, output).map_err(|e| Error::file_op("write", "the merged output", output, e))?;
    if !keep {
        for (part, _) in &parts {
            let _ = std::fs::remove_file(manifest_path(part));
            let _ = std::fs::remove_file(part);
        }
    }
    Ok(MergeReport {
        shards: count,
        rows: parts.iter().map(|p| p.1.rows).sum(),
        errors: parts.iter().map(|p| p.1.errors).sum(),
        output: output.display().to_string(),
        input: parts[0].1.input.clone(),
    })
}

fn open_part(part: &Path) -> Result<BufReader<File>> {
    Ok(BufReader::with_capacity(1 << 20, File::open(part).map_err(|e| Error::file("the shard's part", part, e))?))
}

/// Copies a JSONL part, renumbering its rows from `first_row`; its row count.
fn copy_jsonl(part: &Path, first_row: u64, out: &mut impl Write) -> Result<u64> {
    let mut reader = open_part(part)?;
    let mut line = Vec::with_capacity(512);
    let mut fixed = Vec::with_capacity(512);
    let mut n = 0u64;
    loop {
        line.clear();
        let got = reader.read_until(b'\n', &mut line).map_err(|e| Error::file_op("read", "the shard's part", part, e))?;
        if got == 0 {
            return Ok(n);
        }
        fixed.clear();
        if !renumber_jsonl(&line, n, first_row + n, &mut fixed) {
            return Err(bad(part, format!("line {} of the part is not result {n} of the shard", n + 1)));
        }
        out.write_all(&fixed).map_err(|e| Error::file_op("write", "the merged output", part, e))?;
        n += 1;
    }
}

/// `{"row":<old>…` as `{"row":<new>…`, and an error's `"message":"row <old>`
/// as `row <new>`; false when the line is not result `old`.
fn renumber_jsonl(line: &[u8], old: u64, new: u64, fixed: &mut Vec<u8>) -> bool {
    const HEAD: &[u8] = b"{\"row\":";
    let Some(rest) = line.strip_prefix(HEAD) else { return false };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if std::str::from_utf8(&rest[..digits]).ok().and_then(|d| d.parse::<u64>().ok()) != Some(old) {
        return false;
    }
    let rest = &rest[digits..];
    fixed.extend_from_slice(HEAD);
    fixed.extend_from_slice(new.to_string().as_bytes());
    const ERR: &[u8] = b",\"error\":{";
    if rest.starts_with(ERR) {
        const MSG: &[u8] = b",\"message\":\"";
        if let (Some(at), Ok(text)) = (rest.windows(MSG.len()).position(|w| w == MSG), std::str::from_utf8(rest)) {
            let from = at + MSG.len();
            let renamed = renumber_row(&text[from..], old as usize, new as usize);
            fixed.extend_from_slice(&rest[..from]);
            fixed.extend_from_slice(renamed.as_bytes());
            return true;
        }
    }
    fixed.extend_from_slice(rest);
    true
}

/// Copies a CSV part (its header once, checked equal across parts),
/// renumbering its rows from `first_row`; its row count.
fn copy_csv(part: &Path, first_row: u64, header: &mut Option<Vec<u8>>, out: &mut impl Write) -> Result<u64> {
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(open_part(part)?);
    let mut record = csv::ByteRecord::new();
    let read = |reader: &mut csv::Reader<BufReader<File>>, record: &mut csv::ByteRecord| reader.read_byte_record(record).map_err(|e| bad(part, format!("the part cannot be read as CSV: {e}")));
    // A shard with no rows wrote no header.
    if !read(&mut reader, &mut record)? {
        return Ok(0);
    }
    let head = record.clone();
    let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
    w.write_byte_record(&head).map_err(|e| Error::Backend(format!("cannot write CSV: {e}")))?;
    let head_bytes = w.into_inner().map_err(|e| Error::Backend(format!("cannot write CSV: {e}")))?;
    match header {
        Some(h) if *h != head_bytes => return Err(bad(part, "the part's CSV header differs from shard 0's".into())),
        Some(_) => {}
        None => {
            out.write_all(&head_bytes).map_err(|e| Error::file_op("write", "the merged output", part, e))?;
            *header = Some(head_bytes);
        }
    }
    let message_col = head.iter().position(|h| h == b"error_message");
    let mut w = csv::WriterBuilder::new().from_writer(out);
    let mut n = 0u64;
    let mut fixed = csv::ByteRecord::new();
    while read(&mut reader, &mut record)? {
        if record.get(0).and_then(|r| std::str::from_utf8(r).ok()).and_then(|r| r.parse::<u64>().ok()) != Some(n) {
            return Err(bad(part, format!("record {} of the part is not result {n} of the shard", n + 1)));
        }
        fixed.clear();
        fixed.push_field((first_row + n).to_string().as_bytes());
        for (j, f) in record.iter().enumerate().skip(1) {
            match (Some(j) == message_col, std::str::from_utf8(f)) {
                (true, Ok(m)) if !m.is_empty() => fixed.push_field(renumber_row(m, n as usize, (first_row + n) as usize).as_bytes()),
                _ => fixed.push_field(f),
            }
        }
        w.write_byte_record(&fixed).map_err(|e| Error::file_op("write", "the merged output", part, e))?;
        n += 1;
    }
    w.flush().map_err(|e| Error::file_op("write", "the merged output", part, e))?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_lines_are_renumbered_with_their_messages() {
        let mut out = Vec::new();
        assert!(renumber_jsonl(br#"{"row":3,"label":"a","scores":[1]}"#, 3, 1003, &mut out));
        assert_eq!(out, br#"{"row":1003,"label":"a","scores":[1]}"#);
        out.clear();
        assert!(renumber_jsonl(br#"{"row":0,"error":{"code":"ERR_INVALID_INPUT","field":"x","message":"row 0: field 'x' is bad"}}"#, 0, 7, &mut out));
        assert_eq!(out, br#"{"row":7,"error":{"code":"ERR_INVALID_INPUT","field":"x","message":"row 7: field 'x' is bad"}}"#);
        out.clear();
        assert!(!renumber_jsonl(br#"{"row":4}"#, 3, 5, &mut out), "a row out of place is refused");
        assert!(!renumber_jsonl(br#"{"label":"a"}"#, 0, 0, &mut Vec::new()));
    }

    #[test]
    fn shards_are_checked() {
        assert!(Shard::new(3, 3).is_err());
        assert!(Shard::new(0, 0).is_err());
        let s = Shard::new(1, 3).unwrap();
        assert_eq!(s.part_path(Path::new("/x/out.jsonl")), PathBuf::from("/x/out.jsonl.shard-1-of-3"));
        assert_eq!(s.range(9), (3, 6));
    }
}
