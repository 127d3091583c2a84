//! A compiled pipeline (see `compile` for how a spec is checked against its
//! model) and the execution of a batch through it, and `fit`.

use std::time::Instant;


use super::columns::{Batch, Col};
use super::outcome::{tensor, Outcome, StageTimings};
use super::post;
use super::spec::{Missing, Spec, Stage};
use super::stages::{self, Frame};
use crate::backend::{Backend, RunControl};
use crate::error::{Error, Result};
use crate::monitor::{Role, Values};
use crate::tensor::{AlignedBytes, DType, InputTensor, OutputTensor};
use crate::timing::Timing;

#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// Fail the whole batch on the first bad row (else bad rows get errors beside good results).
    pub fail_fast: bool,
    /// Return a `timings` column (ns per stage).
    pub timings: bool,
}

/// Where a feature's value comes from after the stages ran.
#[derive(Clone, Debug)]
pub(super) enum Source {
    Num(String),
    Elem(String, usize),
}

pub(super) struct Planned {
    pub(super) input: String,
    pub(super) dtype: DType,
    pub(super) sources: Vec<Source>,
    /// The field each feature derives from (for error messages).
    pub(super) origins: Vec<String>,
    pub(super) missing: Missing,
    /// A stage-made tensor passed through as is (rows of good records kept).
    pub(super) tensor: Option<String>,
}

/// A compiled pipeline. Cheap to share; runs need a backend slot.
pub struct Pipeline {
    pub(super) spec: Spec,
    pub(super) assemblies: Vec<Planned>,
    pub(super) output: usize,
    pub(super) output_dtype: DType,
    pub(super) k: Option<usize>,
    /// The first stage that still needs `fit`, if any.
    /// Why the spec cannot run before `fit`: a spec error naming the first unfitted stage.
    pub(super) unfitted: Option<Error>,
    /// Per stage: its label for errors, and its prepared lookups.
    pub(super) stage_labels: Vec<String>,
    pub(super) prepared: Vec<stages::Prepared>,
    /// Every column name a run produces, with its frame slot.
    pub(super) slots: stages::Slots,
    /// Whether runs may be merged (see `mergeable`).
    pub(super) mergeable: bool,
    /// Drift monitoring (the spec's `monitor`).
    pub(super) monitor: Option<std::sync::Arc<crate::monitor::Monitor>>,
    /// Predictions kept for their outcomes (`monitor.feedback`).
    pub(super) feedback: Option<std::sync::Arc<crate::monitor::feedback::Feedback>>,
    /// The durable prediction log (`monitor.log`).
    pub(super) log: Option<std::sync::Arc<crate::monitor::log::PredictionLog>>,
    /// Business metrics (`monitor.metrics`).
    pub(super) business: Option<std::sync::Arc<crate::monitor::business::Business>>,
    /// Ids of logged predictions without an id field: the compile time (ms) and a counter.
    pub(super) ids: (u64, std::sync::atomic::AtomicU64),
}

impl Pipeline {
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// Whether a run waits on a network service (a `lookup` stage's store):
    /// such runs never go on the caller's thread (the JS thread).
    pub fn waits_on_io(&self) -> bool {
        self.spec.preprocess.iter().any(|s| matches!(s, super::spec::Stage::Lookup { .. }))
    }

    /// Whether the dynamic batcher may merge runs of this pipeline: each
    /// run's rows then come out as they would alone (up to float rounding).
    pub fn mergeable(&self) -> bool {
        self.mergeable
    }

    /// The drift monitor, when the spec has one.
    pub fn monitor(&self) -> Option<&std::sync::Arc<crate::monitor::Monitor>> {
        self.monitor.as_ref()
    }

    /// The feedback store, when the spec's monitor has one.
    pub fn feedback(&self) -> Option<&std::sync::Arc<crate::monitor::feedback::Feedback>> {
        self.feedback.as_ref()
    }

    /// Business metrics, when the spec's monitor declares some.
    pub fn business(&self) -> Option<&std::sync::Arc<crate::monitor::business::Business>> {
        self.business.as_ref()
    }

    /// The prediction log, when the spec's monitor has one.
    pub fn log(&self) -> Option<&std::sync::Arc<crate::monitor::log::PredictionLog>> {
        self.log.as_ref()
    }

    /// Records the outcome of prediction `id` (quality, and the log's row).
    pub fn answer(&self, id: &str, truth: crate::monitor::feedback::Truth) -> std::result::Result<(), crate::monitor::feedback::Refusal> {
        let f = self.feedback.as_ref().ok_or_else(|| {
            crate::monitor::feedback::Refusal::WrongTruth("this pipeline takes no feedback: its spec's monitor.feedback section (naming the records' id field) adds it".into())
        })?;
        let text = match &truth {
            crate::monitor::feedback::Truth::Label(l) => l.clone(),
            crate::monitor::feedback::Truth::Value(v) => v.to_string(),
        };
        f.answer(id, truth)?;
        if let Some(log) = &self.log {
            log.outcome(id, &text);
        }
        Ok(())
    }

    /// Why the pipeline cannot run yet, if it needs `fit`.
    pub fn unfitted(&self) -> Option<&Error> {
        self.unfitted.as_ref()
    }

    /// Reads the batch into a frame, checking required fields.
    fn frame(&self, batch: &Batch) -> Result<Frame<'_>> {
        let mut frame = Frame::new(batch.rows, &self.slots);
        for (row, e) in &batch.rejected {
            if *row < batch.rows {
                frame.reject(*row, e.clone());
            }
        }
        for f in &self.spec.fields {
            let col = batch.column(f)?;
            if f.required {
                for row in 0..batch.rows {
                    let missing = match &col {
                        Col::Num(v) => v[row].is_nan(),
                        Col::Cat { codes, .. } => codes[row] < 0,
                        Col::Arr { data, size } => data[row * size..(row + 1) * size].iter().any(|x| x.is_nan()),
                        Col::Text(t) => t[row].is_none(),
                        Col::Images(i) => i[row].is_none(),
                        Col::List { .. } | Col::Tensor(_) => false,
                    };
                    if missing {
                        frame.reject(row, Error::bad_record(row, &f.name, format!("field '{}' is required but missing", f.name)));
                    }
                }
            }
            frame.insert(&f.name, col);
        }
        Ok(frame)
    }

    /// Runs a batch through every stage on `slot` of `backend`, recording its
    /// phases in `timing`. Returns named result columns (see the binding's
    /// `columns` for how they reach JS).
    pub fn run(&self, batch: &Batch, opts: RunOptions, backend: &dyn Backend, slot: usize, ctl: &RunControl, timing: &mut Timing) -> Result<Vec<OutputTensor>> {
        Ok(self.evaluate(batch, opts.fail_fast, backend, slot, ctl, timing)?.finish(opts.timings))
    }

    /// Runs a batch through every stage, keeping bad rows apart from the
    /// results (`fail_fast`: stop at the first bad row, before the model).
    pub fn evaluate(&self, batch: &Batch, fail_fast: bool, backend: &dyn Backend, slot: usize, ctl: &RunControl, timing: &mut Timing) -> Result<Outcome> {
        self.evaluate_with(batch, fail_fast, backend, slot, ctl, timing, self.monitor.as_ref())
    }

    /// `evaluate`, its records observed by `monitor` (none when profiling).
    #[allow(clippy::too_many_arguments)]
    fn evaluate_with(&self, batch: &Batch, fail_fast: bool, backend: &dyn Backend, slot: usize, ctl: &RunControl, timing: &mut Timing, monitor: Option<&std::sync::Arc<crate::monitor::Monitor>>) -> Result<Outcome> {
        if let Some(why) = &self.unfitted {
            return Err(why.clone());
        }
        let mut t = StageTimings::default();
        let clock = Instant::now();
        let mut frame = self.frame(batch)?;
        // Drift windows and business metrics read the inputs as they arrived
        // (the stages may rewrite them), and only once the batch has
        // succeeded: a failed batch leaves the windows as they were.
        // Only the fields they watch are kept.
        let arrived: Vec<(&str, Col)> = match monitor {
            Some(m) => {
                let business = self.business.as_ref().map(|b| b.fields()).unwrap_or_default();
                let watched = |name: &str| business.contains(&name) || m.spec().reference.features.iter().any(|f| f.name == name);
                self.spec
                    .fields
                    .iter()
                    .filter(|f| watched(&f.name))
                    .filter_map(|f| frame.get(&f.name).filter(|c| col_values(c).is_some()).map(|c| (f.name.as_str(), c.clone())))
                    .collect()
            }
            None => Vec::new(),
        };
        // The log's rows: their ids and sampling decided now, and the inputs
        // of the sampled ones kept as they arrived, before any stage.
        let logged = match (&self.log, monitor) {
            (Some(log), Some(_)) => {
                let ids = self.log_ids(&frame, log);
                let inputs = (log.spec().inputs != crate::monitor::log::InputsMode::None).then(|| self.row_inputs(&frame, log.spec().inputs, &ids));
                Some((ids, inputs))
            }
            _ => None,
        };
        for (i, stage) in self.spec.preprocess.iter().enumerate() {
            stages::apply(stage, &self.stage_labels[i], &self.prepared[i], &mut frame)?;
        }
        t.preprocess = clock.elapsed().as_nanos() as u64;

        let clock = Instant::now();
        let rows = frame.rows;
        let (inputs, good) = self.assemble(&mut frame, fail_fast)?;
        t.assemble = clock.elapsed().as_nanos() as u64;

        let clock = Instant::now();
        let (mut scores, k) = if good.is_empty() {
            (Vec::new(), self.k.unwrap_or(1))
        } else {
            let out = backend.run(slot, &inputs, &[self.output], ctl)?;
            drop(inputs);
            let o = &out[0];
            let (scores, k) = match o.non_tensor() {
                // A ZipMap: one map of class probabilities per row.
                Some(json) => {
                    let labels = self.spec.output.labels.as_deref().unwrap_or_default();
                    (super::zipmap::scores(&o.name, json, labels)?, labels.len())
                }
                None => {
                    let k = if o.dims.len() == 2 { o.dims[1] as usize } else { 1 };
                    let scores: Vec<f64> = match o.dtype {
                        DType::Float32 => o.to_vec::<f32>().unwrap_or_default().into_iter().map(f64::from).collect(),
                        _ => o.to_vec::<f64>().unwrap_or_default(),
                    };
                    (scores, k)
                }
            };
            if scores.len() != good.len() * k {
                return Err(Error::Backend(format!("the model returned {} scores for {} rows", scores.len(), good.len())));
            }
            (scores, k)
        };
        if let Some(labels) = &self.spec.output.labels {
            if labels.len() != k {
                return Err(Error::invalid_spec("output", format!("{} labels for {k} scores", labels.len())).at("labels"));
            }
        }
        t.inference = clock.elapsed().as_nanos() as u64;

        let clock = Instant::now();
        let d = post::run(&self.spec.output.postprocess, &mut scores, good.len(), k);
        // Monitoring reads the scores as the caller gets them (post-processed),
        // as `profile` does. The log goes first, so that an outcome sent as
        // soon as a prediction is known finds its row already queued.
        if let (Some(log), Some((ids, inputs))) = (&self.log, logged) {
            self.log_rows(log, ids, inputs, &good, &scores, k);
        }
        if let (Some(f), Some(_)) = (&self.feedback, monitor) {
            if let Some(Col::Cat { codes, vocab }) = frame.get(&f.spec().id_field) {
                let ids: Vec<Option<&str>> = good.iter().map(|&r| usize::try_from(codes[r]).ok().and_then(|c| vocab.get(c)).map(String::as_str)).collect();
                f.record(&ids, &scores, k);
            }
        }
        if let Some(m) = monitor {
            let inputs: Vec<(&str, Values)> = arrived.iter().filter_map(|(name, c)| Some((*name, col_values(c)?))).collect();
            m.push(rows, &inputs);
            let (codes, top, vocab) = predictions(&scores, k, self.spec.output.labels.as_deref());
            if let Some(b) = &self.business {
                use crate::monitor::business::Column;
                let fields = b.fields();
                let mut cols: Vec<Column> =
                    inputs.iter().filter(|(name, _)| fields.contains(name)).map(|(name, values)| Column { name, values: *values, rows: Some(&good) }).collect();
                cols.push(Column { name: "label", values: Values::Cat { codes: &codes, vocab: &vocab }, rows: None });
                cols.push(Column { name: "score", values: Values::Num(&top), rows: None });
                b.observe(good.len(), &cols);
            }
            m.push(good.len(), &[("label", Values::Cat { codes: &codes, vocab: &vocab }), ("score", Values::Num(&top))]);
            m.advance(rows);
        }
        let columns = self.results(&frame, &good, &scores, k, d);
        t.postprocess = clock.elapsed().as_nanos() as u64;
        timing.pre_us = (t.preprocess + t.assemble) / 1000;
        timing.infer_us = t.inference / 1000;
        timing.post_us = t.postprocess / 1000;
        timing.batch_rows = rows as u32;
        timing.batch_requests = 1;
        let errors = frame.row_errors.iter().enumerate().filter_map(|(r, e)| e.clone().map(|e| (r, e))).collect();
        Ok(Outcome { rows, columns, errors, stages: t })
    }

    /// Each row's log id (the feedback id field's value, else one made
    /// here), or None when the row is not in the log's sample.
    fn log_ids(&self, frame: &Frame, log: &crate::monitor::log::PredictionLog) -> Vec<Option<String>> {
        let id_col = self.feedback.as_ref().and_then(|f| match frame.get(&f.spec().id_field) {
            Some(Col::Cat { codes, vocab }) => Some((codes, vocab)),
            _ => None,
        });
        (0..frame.rows)
            .map(|r| {
                let given = id_col.and_then(|(codes, vocab)| usize::try_from(codes[r]).ok().and_then(|c| vocab.get(c)).cloned());
                let id = given.unwrap_or_else(|| format!("{:x}-{}", self.ids.0, self.ids.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
                log.sampled(&id).then_some(id)
            })
            .collect()
    }

    /// The sampled rows' field values as JSON, or its digest (the log's `inputs`).
    fn row_inputs(&self, frame: &Frame, mode: crate::monitor::log::InputsMode, ids: &[Option<String>]) -> Vec<Option<String>> {
        let fields = self.input_values(frame);
        (0..frame.rows)
            .map(|r| {
                ids[r].as_ref()?;
                let mut o = serde_json::Map::new();
                for (name, v) in &fields {
                    let value = match v {
                        Values::Num(x) => serde_json::Number::from_f64(x[r]).map_or(serde_json::Value::Null, serde_json::Value::Number),
                        Values::Cat { codes, vocab } => usize::try_from(codes[r]).ok().and_then(|c| vocab.get(c)).map_or(serde_json::Value::Null, |s| serde_json::Value::String(s.clone())),
                    };
                    o.insert(name.to_string(), value);
                }
                let text = serde_json::Value::Object(o).to_string();
                Some(if mode == crate::monitor::log::InputsMode::Digest { format!("{:016x}", crate::monitor::log::fnv(text.as_bytes())) } else { text })
            })
            .collect()
    }

    /// Queues the good, sampled rows' predictions for the log: the id, the
    /// inputs, the predicted label and the scores.
    fn log_rows(&self, log: &crate::monitor::log::PredictionLog, mut ids: Vec<Option<String>>, mut inputs: Option<Vec<Option<String>>>, good: &[usize], scores: &[f64], k: usize) {
        let mut entries = Vec::new();
        for (i, &r) in good.iter().enumerate() {
            let Some(id) = ids[r].take() else { continue };
            let row = scores[i * k..(i + 1) * k].to_vec();
            let (codes, _, vocab) = predictions(&row, k, self.spec.output.labels.as_deref());
            let label = codes.first().and_then(|&c| usize::try_from(c).ok()).and_then(|c| vocab.get(c)).cloned();
            let inputs = inputs.as_mut().and_then(|v| v[r].take());
            entries.push(crate::monitor::log::Entry { id, inputs, label, scores: row });
        }
        log.append(entries);
    }

    /// The raw number and category fields, as the monitor and profiles read them.
    fn input_values<'a>(&'a self, frame: &'a Frame) -> Vec<(&'a str, Values<'a>)> {
        self.spec.fields.iter().filter_map(|f| Some((f.name.as_str(), col_values(frame.get(&f.name)?)?))).collect()
    }

    /// A profile of `batch` as the reference for drift monitoring: its
    /// number and category fields as they arrive (but the feedback id
    /// field), and the predicted label and its score (post-processed, as
    /// callers get them and as the monitor reads them).
    pub fn profile(&self, batch: &Batch, backend: &dyn Backend, slot: usize, ctl: &RunControl) -> Result<crate::monitor::Profile> {
        if let Some(why) = &self.unfitted {
            return Err(why.clone());
        }
        let frame = self.frame(batch)?;
        let id_field = self.spec.monitor.as_ref().and_then(|m| m.feedback.as_ref()).map(|f| f.id_field.as_str());
        let mut columns: Vec<(&str, Role, Values)> = self.input_values(&frame).into_iter().filter(|(n, _)| Some(*n) != id_field).map(|(n, v)| (n, Role::Input, v)).collect();
        let mut timing = Timing::default();
        // The scores column is post-processed, for every row (NaN where bad).
        let outcome = self.evaluate_with(batch, false, backend, slot, ctl, &mut timing, None)?;
        let scores_col = outcome.columns.iter().find(|c| c.name == "scores").ok_or_else(|| Error::Backend("the pipeline returned no scores".into()))?;
        let k = scores_col.dims.get(1).copied().unwrap_or(1).max(1) as usize;
        let all: Vec<f64> = match scores_col.dtype {
            DType::Float64 => scores_col.to_vec::<f64>().unwrap_or_default(),
            _ => scores_col.to_vec::<f32>().unwrap_or_default().into_iter().map(f64::from).collect(),
        };
        let bad: std::collections::HashSet<usize> = outcome.errors.iter().map(|(r, _)| *r).collect();
        let raw: Vec<f64> = (0..outcome.rows).filter(|r| !bad.contains(r)).flat_map(|r| all[r * k..(r + 1) * k].to_vec()).collect();
        let (codes, top, vocab) = predictions(&raw, k, self.spec.output.labels.as_deref());
        columns.push(("label", Role::Output, Values::Cat { codes: &codes, vocab: &vocab }));
        columns.push(("score", Role::Output, Values::Num(&top)));
        Ok(crate::monitor::Profile::build(batch.rows, &columns))
    }

    /// The model's inputs from the frame, and the rows that reach the model.
    /// Features are filled for every row straight into each tensor's own
    /// buffer; a feature still NaN there is a row error unless its assembly
    /// passes NaN, and only when some row failed are the good rows compacted
    /// (the common all-good batch is written once).
    fn assemble(&self, frame: &mut Frame, fail_fast: bool) -> Result<(Vec<InputTensor>, Vec<usize>)> {
        let rows = frame.rows;
        let mut filled: Vec<Option<(InputTensor, usize)>> = Vec::with_capacity(self.assemblies.len());
        for a in &self.assemblies {
            if a.tensor.is_some() {
                filled.push(None);
                continue;
            }
            let width = a.sources.len();
            // Each source as (values, stride, offset): the kind is matched
            // once per column, not once per value.
            let cols: Vec<Option<(&[f64], usize, usize)>> = a
                .sources
                .iter()
                .map(|s| match s {
                    Source::Num(name) => frame.get(name).map(|c| match c {
                        Col::Num(v) => Some((v.as_slice(), 1, 0)),
                        _ => None,
                    }),
                    Source::Elem(name, j) => frame.get(name).map(|c| match c {
                        Col::Arr { data, size } => Some((data.as_slice(), *size, *j)),
                        _ => None,
                    }),
                })
                .collect::<Option<_>>()
                .ok_or_else(|| Error::invalid_spec("features", "a feature is not produced by any stage"))?;
            let t = match a.dtype {
                DType::Float64 => fill_tensor(&a.input, DType::Float64, rows, width, &cols, |x| x),
                _ => fill_tensor(&a.input, DType::Float32, rows, width, &cols, |x| x as f32),
            };
            filled.push(Some((t, width)));
        }
        // Missing features, in assembly and source order (a row keeps its first error).
        for (a, f) in self.assemblies.iter().zip(&filled) {
            let Some((t, width)) = f else { continue };
            if a.missing == Missing::Nan {
                continue;
            }
            let nan: Vec<bool> = match t.dtype {
                DType::Float64 => nan_mask::<f64>(t, |x| x.is_nan()),
                _ => nan_mask::<f32>(t, |x| x.is_nan()),
            };
            if nan.is_empty() {
                continue;
            }
            for (j, origin) in a.origins.iter().enumerate() {
                for r in 0..rows {
                    if nan[r * width + j] {
                        frame.reject(r, Error::bad_record(r, origin, format!("field '{origin}' is missing, and no stage imputes it")));
                    }
                }
            }
        }
        if fail_fast {
            if let Some(e) = frame.row_errors.iter().flatten().next() {
                return Err(e.clone());
            }
        }
        let good: Vec<usize> = (0..rows).filter(|&r| frame.row_errors[r].is_none()).collect();
        let n = good.len();
        let mut tensors = Vec::with_capacity(self.assemblies.len());
        for (a, f) in self.assemblies.iter().zip(filled) {
            if let Some((mut t, width)) = f {
                if n < rows {
                    compact_rows(&mut t, &good, width);
                }
                tensors.push(t);
                continue;
            }
            let Some(name) = &a.tensor else { continue };
            let Some(Col::Tensor(full)) = frame.get(name) else {
                return Err(Error::invalid_spec("features", format!("no stage made the tensor '{name}'")));
            };
            let full_rows = full.dims.first().copied().unwrap_or(0) as usize;
            let bytes = full.bytes();
            let per = if full_rows == 0 { 0 } else { bytes.len() / full_rows };
            let mut data = Vec::with_capacity(n * per);
            for &r in &good {
                data.extend_from_slice(&bytes[r * per..(r + 1) * per]);
            }
            let mut dims = full.dims.clone();
            dims[0] = n as i64;
            tensors.push(InputTensor {
                name: a.input.clone(),
                dtype: full.dtype,
                dims,
                data: crate::tensor::InputData::Owned(AlignedBytes::from_slice(&data)),
            });
        }
        Ok((tensors, good))
    }

    /// The row-aligned result columns (dim 0 is the batch's rows); rows
    /// that failed hold NaN, -1 or 0.
    fn results(&self, frame: &Frame, good: &[usize], scores: &[f64], k: usize, d: post::Decisions) -> Vec<OutputTensor> {
        let rows = frame.rows;
        let mut out = Vec::new();
        // Scores for every row; rows that failed stay NaN.
        let mut full = vec![f64::NAN; rows * k];
        for (i, &r) in good.iter().enumerate() {
            full[r * k..(r + 1) * k].copy_from_slice(&scores[i * k..(i + 1) * k]);
        }
        let dims2 = vec![rows as i64, k as i64];
        match self.output_dtype {
            DType::Float64 => out.push(tensor("scores", DType::Float64, dims2.clone(), full)),
            _ => out.push(tensor("scores", DType::Float32, dims2.clone(), full.iter().map(|&x| x as f32).collect::<Vec<f32>>())),
        }
        let scatter_i32 = |v: &[i32], width: usize, fill: i32| {
            let mut o = vec![fill; rows * width];
            for (i, &r) in good.iter().enumerate() {
                o[r * width..(r + 1) * width].copy_from_slice(&v[i * width..(i + 1) * width]);
            }
            o
        };
        let scatter_f32 = |v: &[f32], width: usize| {
            let mut o = vec![f32::NAN; rows * width];
            for (i, &r) in good.iter().enumerate() {
                o[r * width..(r + 1) * width].copy_from_slice(&v[i * width..(i + 1) * width]);
            }
            o
        };
        if let Some(l) = &d.label {
            out.push(tensor("label", DType::Int32, vec![rows as i64], scatter_i32(l, 1, -1)));
        }
        if let Some(s) = &d.score {
            out.push(tensor("score", DType::Float32, vec![rows as i64], scatter_f32(s, 1)));
        }
        if let Some((tk, idx, val)) = &d.top {
            out.push(tensor("top_index", DType::Int32, vec![rows as i64, *tk as i64], scatter_i32(idx, *tk, -1)));
            out.push(tensor("top_score", DType::Float32, vec![rows as i64, *tk as i64], scatter_f32(val, *tk)));
        }
        if let Some(a) = &d.above {
            let mut o = vec![0u8; rows * k];
            for (i, &r) in good.iter().enumerate() {
                o[r * k..(r + 1) * k].copy_from_slice(&a[i * k..(i + 1) * k]);
            }
            out.push(tensor("above", DType::Uint8, dims2, o));
        }
        if let Some(b) = &d.bucket {
            out.push(tensor("bucket", DType::Int32, vec![rows as i64], scatter_i32(b, 1, -1)));
        }
        out
    }

    /// Learns every stage's parameters from `batch`, in order: each stage is
    /// fitted on the output of the stages before it, as scikit-learn's
    /// Pipeline does. Returns the fitted spec.
    pub fn fit(spec: &Spec, batch: &Batch) -> Result<Spec> {
        let mut fitted = spec.clone();
        // Only the input schema matters for reading the batch.
        let reader = Pipeline {
            spec: spec.clone(),
            assemblies: vec![],
            output: 0,
            output_dtype: DType::Float32,
            k: None,
            unfitted: None,
            stage_labels: vec![],
            prepared: vec![],
            slots: stages::Slots::new(),
            mergeable: false,
            monitor: None,
            feedback: None,
            log: None,
            business: None,
            ids: (0, Default::default()),
        };
        let mut frame = reader.frame(batch)?;
        for (i, stage) in fitted.preprocess.iter_mut().enumerate() {
            let label = stage.label(i);
            stages::fit(stage, &label, &frame)?;
            // Text and image stages learn nothing and feed no later stage.
            if !matches!(stage, Stage::Tokenize { .. } | Stage::Image { .. }) {
                stages::apply(stage, &label, &stages::Prepared::new(stage), &mut frame)?;
            }
        }
        Ok(fitted)
    }
}

/// A `[n, width]` tensor filled column by column straight into its own
/// buffer, converted once (no f64 staging copy).
/// The class names of `k` scores: the spec's labels, or the class indices
/// (none for a single score: a regression or a binary probability).
fn class_names(k: usize, labels: Option<&[String]>) -> std::borrow::Cow<'_, [String]> {
    match labels {
        Some(l) if l.len() == k => std::borrow::Cow::Borrowed(l),
        _ if k == 1 => std::borrow::Cow::Owned(Vec::new()),
        _ => std::borrow::Cow::Owned((0..k).map(|i| i.to_string()).collect()),
    }
}

/// Per row of `scores` (k per row): the arg-max class as a code into the
/// returned vocabulary (see `class_names`), and the top score. A row of NaN
/// scores is missing.
fn predictions<'l>(scores: &[f64], k: usize, labels: Option<&'l [String]>) -> (Vec<i32>, Vec<f64>, std::borrow::Cow<'l, [String]>) {
    let vocab = class_names(k, labels);
    let rows = scores.len() / k.max(1);
    let mut codes = Vec::with_capacity(rows);
    let mut top = Vec::with_capacity(rows);
    for row in scores.chunks_exact(k.max(1)) {
        let (mut best, mut at) = (f64::NAN, -1i32);
        for (i, &s) in row.iter().enumerate() {
            if !s.is_nan() && (best.is_nan() || s > best) {
                best = s;
                at = i as i32;
            }
        }
        codes.push(if vocab.is_empty() { -1 } else { at });
        top.push(best);
    }
    (codes, top, vocab)
}

fn fill_tensor<T: Copy>(name: &str, dtype: DType, n: usize, width: usize, cols: &[Option<(&[f64], usize, usize)>], conv: impl Fn(f64) -> T) -> InputTensor {
    let mut bytes = AlignedBytes::zeroed(n * width * std::mem::size_of::<T>());
    if n > 0 {
        // SAFETY: the buffer is 8-byte aligned and holds n * width values of T (4 or 8 bytes).
        let out = unsafe { std::slice::from_raw_parts_mut(bytes.as_mut_slice().as_mut_ptr() as *mut T, n * width) };
        for (j, col) in cols.iter().enumerate() {
            let column = out[j..].iter_mut().step_by(width);
            match *col {
                Some((v, 1, 0)) => column.zip(&v[..n]).for_each(|(o, &x)| *o = conv(x)),
                Some((v, stride, at)) => column.zip(v[at..].iter().step_by(stride)).for_each(|(o, &x)| *o = conv(x)),
                None => column.for_each(|o| *o = conv(f64::NAN)),
            }
        }
    }
    InputTensor { name: name.to_string(), dtype, dims: vec![n as i64, width as i64], data: crate::tensor::InputData::Owned(bytes) }
}

/// Which values of a filled tensor are NaN; empty when none is (the common
/// case, found by one branch-free pass).
fn nan_mask<T: Copy>(t: &InputTensor, is_nan: impl Fn(T) -> bool) -> Vec<bool> {
    let bytes = t.bytes();
    // SAFETY: filled tensors own 8-byte aligned buffers of T.
    let v = unsafe { std::slice::from_raw_parts(bytes.as_ptr() as *const T, bytes.len() / std::mem::size_of::<T>()) };
    if !v.iter().fold(false, |any, &x| any | is_nan(x)) {
        return Vec::new();
    }
    v.iter().map(|&x| is_nan(x)).collect()
}

/// Keeps only the `good` rows of a filled `[rows, width]` tensor, in place.
fn compact_rows(t: &mut InputTensor, good: &[usize], width: usize) {
    let per = width * t.dtype.size();
    if let crate::tensor::InputData::Owned(bytes) = &mut t.data {
        let buf = bytes.as_mut_slice();
        for (i, &r) in good.iter().enumerate() {
            if i != r {
                buf.copy_within(r * per..(r + 1) * per, i * per);
            }
        }
        bytes.truncate(good.len() * per);
    }
    t.dims[0] = good.len() as i64;
}

/// A number or category column as the monitor reads it; None for other kinds.
fn col_values(c: &Col) -> Option<Values<'_>> {
    match c {
        Col::Num(v) => Some(Values::Num(v)),
        Col::Cat { codes, vocab } => Some(Values::Cat { codes, vocab }),
        _ => None,
    }
}
