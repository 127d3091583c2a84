//! Writes a job's results to a JSONL or CSV file, one line per input row, in
//! input order.
//!
//! JSONL lines carry what `Pipeline.runBatch` returns as objects, plus `row`
//! (the 0-based data row of the input): `{"row":0,"label":"Adelie",
//! "labelIndex":0,"score":0.98,"scores":[…]}`, or `{"row":3,"error":{"code",
//! "field","message"}}`. CSV has the flat part: `row,label,labelIndex,score,
//! value,scores.<label>…,bucket,error_code,error_field,error_message`, with the
//! columns the spec's post-processing produces. Non-finite numbers are null
//! (JSONL) or empty (CSV).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::pipeline::spec::{Post, Spec};
use crate::tensor::{DType, OutputTensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Jsonl,
    Csv,
}

/// One chunk's result columns, as plain vectors.
struct Results {
    rows: usize,
    k: usize,
    scores: Vec<f64>,
    /// The model's scores are float32: print them as such (shortest round trip).
    single: bool,
    label: Option<Vec<i32>>,
    score: Option<Vec<f32>>,
    top: Option<(usize, Vec<i32>, Vec<f32>)>,
    above: Option<Vec<u8>>,
    bucket: Option<Vec<i32>>,
    /// Per row: its error as (code, field, message).
    errors: Vec<Option<(String, String, String)>>,
}

impl Results {
    fn read(tensors: &[OutputTensor]) -> Result<Self> {
        let get = |n: &str| tensors.iter().find(|t| t.name == n);
        let scores_t = get("scores").ok_or_else(|| Error::Backend("a pipeline result has no scores".into()))?;
        let rows = scores_t.dims.first().copied().unwrap_or(0) as usize;
        let k = scores_t.dims.get(1).copied().unwrap_or(1) as usize;
        let scores = match scores_t.dtype {
            DType::Float64 => scores_t.to_vec::<f64>().unwrap_or_default(),
            _ => scores_t.to_vec::<f32>().unwrap_or_default().into_iter().map(f64::from).collect(),
        };
        let top = match (get("top_index"), get("top_score")) {
            (Some(i), Some(s)) => Some((i.dims.get(1).copied().unwrap_or(1) as usize, i.to_vec::<i32>().unwrap_or_default(), s.to_vec::<f32>().unwrap_or_default())),
            _ => None,
        };
        let mut errors = vec![None; rows];
        if let Some(er) = get("error_row") {
            let strings = |n: &str| get(n).and_then(|t| t.strings()).map(<[String]>::to_vec).unwrap_or_default();
            let (fields, codes, messages) = (strings("error_field"), strings("error_code"), strings("error_message"));
            for (i, r) in er.to_vec::<i32>().unwrap_or_default().into_iter().enumerate() {
                if let Some(slot) = errors.get_mut(r as usize) {
                    *slot = Some((codes.get(i).cloned().unwrap_or_default(), fields.get(i).cloned().unwrap_or_default(), messages.get(i).cloned().unwrap_or_default()));
                }
            }
        }
        Ok(Results {
            rows,
            k,
            scores,
            single: scores_t.dtype != DType::Float64,
            label: get("label").and_then(|t| t.to_vec::<i32>()),
            score: get("score").and_then(|t| t.to_vec::<f32>()),
            top,
            above: get("above").and_then(|t| t.to_vec::<u8>()),
            bucket: get("bucket").and_then(|t| t.to_vec::<i32>()),
            errors,
        })
    }
}

pub struct Writer {
    path: PathBuf,
    format: OutputFormat,
    out: BufWriter<File>,
    labels: Option<Vec<String>>,
    bucket_names: Option<Vec<String>>,
    header_written: bool,
    line: Vec<u8>,
}

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::file_op("write", "the job's output file", path, e)
}

impl Writer {
    /// Creates (or truncates) the output file.
    pub fn create(path: &Path, format: OutputFormat, spec: &Spec) -> Result<Self> {
        let file = File::create(path).map_err(|e| Error::file("the job's output file", path, e))?;
        let bucket_names = spec.output.postprocess.iter().find_map(|p| match p {
            Post::Bucket { names, .. } => Some(names.clone()),
            _ => None,
        });
        Ok(Writer {
            path: path.to_path_buf(),
            format,
            out: BufWriter::with_capacity(1 << 16, file),
            labels: spec.output.labels.clone(),
            bucket_names,
            header_written: false,
            line: Vec::with_capacity(256),
        })
    }

    fn label(&self, i: i32) -> Option<String> {
        if i < 0 {
            return None;
        }
        Some(self.labels.as_ref().and_then(|l| l.get(i as usize).cloned()).unwrap_or_else(|| i.to_string()))
    }

    /// Writes one chunk's results; `first_row` numbers its rows in the
    /// input. Error messages that name a row within the chunk (`row 3: …`, as
    /// a chunk run on its own does) name the input's row in the file.
    pub fn write(&mut self, first_row: usize, tensors: &[OutputTensor]) -> Result<()> {
        let mut r = Results::read(tensors)?;
        for (i, e) in r.errors.iter_mut().enumerate() {
            if let Some((_, _, message)) = e {
                *message = crate::error::renumber_row(message, i, first_row + i);
            }
        }
        self.write_results(first_row, r)
    }

    fn write_results(&mut self, first_row: usize, r: Results) -> Result<()> {
        match self.format {
            OutputFormat::Jsonl => self.jsonl(first_row, &r),
            OutputFormat::Csv => self.csv(first_row, &r),
        }
        .map_err(|e| io(&self.path, e))
    }

    fn jsonl(&mut self, first_row: usize, r: &Results) -> std::io::Result<()> {
        let mut f = ryu::Buffer::new();
        let mut num = |line: &mut Vec<u8>, x: f64, single: bool| {
            if !x.is_finite() {
                line.extend_from_slice(b"null")
            } else if single {
                line.extend_from_slice(f.format_finite(x as f32).as_bytes())
            } else {
                line.extend_from_slice(f.format_finite(x).as_bytes())
            }
        };
        let single = r.single;
        let k = r.k;
        for i in 0..r.rows {
            let mut line = std::mem::take(&mut self.line);
            line.clear();
            write!(line, "{{\"row\":{}", first_row + i)?;
            if let Some((code, field, message)) = &r.errors[i] {
                line.extend_from_slice(b",\"error\":{\"code\":");
                serde_json::to_writer(&mut line, code)?;
                if !field.is_empty() {
                    line.extend_from_slice(b",\"field\":");
                    serde_json::to_writer(&mut line, field)?;
                }
                line.extend_from_slice(b",\"message\":");
                serde_json::to_writer(&mut line, message)?;
                line.extend_from_slice(b"}}\n");
            } else {
                if let Some(l) = &r.label {
                    line.extend_from_slice(b",\"label\":");
                    serde_json::to_writer(&mut line, &self.label(l[i]))?;
                    write!(line, ",\"labelIndex\":{}", l[i])?;
                }
                if let Some(s) = &r.score {
                    line.extend_from_slice(b",\"score\":");
                    num(&mut line, f64::from(s[i]), true);
                }
                if k == 1 {
                    line.extend_from_slice(b",\"value\":");
                    num(&mut line, r.scores[i], single);
                }
                if let Some((tk, idx, val)) = &r.top {
                    line.extend_from_slice(b",\"top\":[");
                    for j in 0..*tk {
                        if j > 0 {
                            line.push(b',');
                        }
                        line.extend_from_slice(b"{\"label\":");
                        serde_json::to_writer(&mut line, &self.label(idx[i * tk + j]).unwrap_or_default())?;
                        line.extend_from_slice(b",\"score\":");
                        num(&mut line, f64::from(val[i * tk + j]), true);
                        line.push(b'}');
                    }
                    line.push(b']');
                }
                if let Some(a) = &r.above {
                    let names: Vec<String> = (0..k).filter(|&j| a[i * k + j] != 0).filter_map(|j| self.label(j as i32)).collect();
                    line.extend_from_slice(b",\"labels\":");
                    serde_json::to_writer(&mut line, &names)?;
                }
                if let (Some(b), Some(names)) = (&r.bucket, &self.bucket_names) {
                    line.extend_from_slice(b",\"bucket\":");
                    serde_json::to_writer(&mut line, &usize::try_from(b[i]).ok().and_then(|j| names.get(j)))?;
                }
                line.extend_from_slice(b",\"scores\":[");
                for j in 0..k {
                    if j > 0 {
                        line.push(b',');
                    }
                    num(&mut line, r.scores[i * k + j], single);
                }
                line.extend_from_slice(b"]}\n");
            }
            self.out.write_all(&line)?;
            self.line = line;
        }
        Ok(())
    }

    fn csv(&mut self, first_row: usize, r: &Results) -> std::io::Result<()> {
        let k = r.k;
        if !self.header_written {
            let mut head: Vec<String> = vec!["row".into()];
            if r.label.is_some() {
                head.extend(["label".into(), "labelIndex".into()]);
            }
            if r.score.is_some() {
                head.push("score".into());
            }
            if k == 1 {
                head.push("value".into());
            }
            head.extend((0..k).map(|j| format!("scores.{}", self.label(j as i32).unwrap_or_default())));
            if r.bucket.is_some() {
                head.push("bucket".into());
            }
            head.extend(["error_code".into(), "error_field".into(), "error_message".into()]);
            let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
            w.write_record(&head)?;
            self.out.write_all(&w.into_inner().map_err(|e| e.into_error())?)?;
            self.header_written = true;
        }
        let mut w = csv::WriterBuilder::new().from_writer(std::mem::take(&mut self.line));
        let mut f = ryu::Buffer::new();
        let single = r.single;
        let mut num = |x: f64, single: bool| match (x.is_finite(), single) {
            (false, _) => String::new(),
            (true, true) => f.format_finite(x as f32).to_string(),
            (true, false) => f.format_finite(x).to_string(),
        };
        for i in 0..r.rows {
            let mut rec: Vec<String> = vec![(first_row + i).to_string()];
            let err = &r.errors[i];
            let ok = err.is_none();
            if let Some(l) = &r.label {
                rec.push(if ok { self.label(l[i]).unwrap_or_default() } else { String::new() });
                rec.push(if ok { l[i].to_string() } else { String::new() });
            }
            if let Some(s) = &r.score {
                rec.push(if ok { num(f64::from(s[i]), true) } else { String::new() });
            }
            if k == 1 {
                rec.push(num(r.scores[i], single));
            }
            rec.extend((0..k).map(|j| num(r.scores[i * k + j], single)));
            if let (Some(b), Some(names)) = (&r.bucket, &self.bucket_names) {
                rec.push(usize::try_from(b[i]).ok().and_then(|j| names.get(j)).cloned().unwrap_or_default());
            }
            match err {
                Some((c, fl, m)) => rec.extend([c.clone(), fl.clone(), m.clone()]),
                None => rec.extend([String::new(), String::new(), String::new()]),
            }
            w.write_record(&rec)?;
        }
        let mut buf = w.into_inner().map_err(|e| e.into_error())?;
        self.out.write_all(&buf)?;
        buf.clear();
        self.line = buf;
        Ok(())
    }

    /// Flushes the file to disk; a file that cannot be completed is removed.
    pub fn finish(mut self) -> Result<()> {
        if let Err(e) = self.out.flush() {
            let e = io(&self.path, e);
            self.discard();
            return Err(e);
        }
        Ok(())
    }

    /// Removes the partial file (the job failed or was aborted).
    pub fn discard(self) {
        let path = self.path.clone();
        drop(self);
        let _ = std::fs::remove_file(path);
    }
}
