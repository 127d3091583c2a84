//! The prediction log: an append-only SQLite file (WAL) of each prediction
//! (its id, time, inputs or their digest, label and scores) and, joined by
//! id, its outcome when feedback arrives. A writer thread inserts in
//! batched transactions, every `flushMs` or `batchRows` rows, whichever
//! comes first; so a kill -9 loses at most the rows of the unflushed batch
//! (at most `flushMs` of traffic, or `batchRows` rows). Retention keeps the
//! newest `maxRows`. `export` writes it as JSONL or CSV training data.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, sync_channel, RecvTimeoutError, Sender, SyncSender, TrySendError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

fn default_flush() -> u64 {
    1000
}
fn default_batch() -> usize {
    1000
}
fn default_max() -> u64 {
    1_000_000
}
fn default_inputs() -> InputsMode {
    InputsMode::Digest
}
fn default_sample() -> f64 {
    1.0
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum InputsMode {
    /// The record's field values, as JSON.
    Values,
    /// A 64-bit FNV-1a digest of that JSON (hex): joins without keeping the data.
    Digest,
    None,
}

/// The spec's `monitor.log` section.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogSpec {
    /// The SQLite file, relative to the spec's folder.
    pub path: String,
    #[serde(default = "default_inputs")]
    pub inputs: InputsMode,
    /// Share of predictions logged (0 to 1), chosen by a hash of the row's id or position.
    #[serde(default = "default_sample")]
    pub sample: f64,
    #[serde(default = "default_flush")]
    pub flush_ms: u64,
    #[serde(default = "default_batch")]
    pub batch_rows: usize,
    #[serde(default = "default_max")]
    pub max_rows: u64,
}

/// One logged prediction.
pub struct Entry {
    pub id: String,
    pub inputs: Option<String>,
    pub label: Option<String>,
    pub scores: Vec<f64>,
}

enum Msg {
    Rows(Vec<Entry>, i64),
    Outcome(String, String, i64),
    Flush(Sender<()>),
}

/// Messages queued for the writer at most: past them, predictions are
/// dropped (and counted) rather than held in memory or the caller blocked.
const QUEUE: usize = 1024;
/// Rows a failed batch keeps for its retry at most.
const RETRY_ROWS: usize = 1_000_000;

pub struct PredictionLog {
    spec: LogSpec,
    path: PathBuf,
    tx: Mutex<Option<SyncSender<Msg>>>,
    last_error: std::sync::Arc<Mutex<Option<String>>>,
    dropped: std::sync::atomic::AtomicU64,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Drop for PredictionLog {
    /// Closes the queue and waits for the writer's last batch (a graceful
    /// stop loses nothing).
    fn drop(&mut self) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = h.join();
        }
    }
}

fn now_ms() -> i64 {
    crate::timing::unix_ms() as i64
}

fn db_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::file_op("write", "the prediction log", path, e)
}

fn open(path: &Path) -> std::result::Result<Connection, rusqlite::Error> {
    let c = Connection::open(path)?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    // NORMAL under WAL: a committed transaction survives a process crash
    // (kill -9); only an OS crash or power loss can take the last ones.
    c.pragma_update(None, "synchronous", "NORMAL")?;
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS predictions (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL,
            ts INTEGER NOT NULL,
            inputs TEXT,
            label TEXT,
            scores TEXT NOT NULL,
            outcome TEXT,
            outcome_ts INTEGER
        );
        CREATE INDEX IF NOT EXISTS predictions_id ON predictions (id);",
    )?;
    Ok(c)
}

impl PredictionLog {
    /// Opens (or creates) the log at `path` and starts its writer thread.
    pub fn open(spec: LogSpec, path: PathBuf) -> Result<PredictionLog> {
        if !(spec.sample > 0.0 && spec.sample <= 1.0) || spec.batch_rows == 0 || spec.flush_ms == 0 || spec.max_rows == 0 || spec.max_rows > 1 << 50 {
            return Err(Error::invalid_spec("monitor", "log: sample must be in (0, 1], batchRows and flushMs at least 1, and maxRows from 1 to 2^50").at("monitor.log"));
        }
        let mut conn = open(&path).map_err(|e| db_err(&path, e))?;
        let (tx, rx) = sync_channel::<Msg>(QUEUE);
        let (flush, batch, max) = (Duration::from_millis(spec.flush_ms), spec.batch_rows, spec.max_rows);
        let p = path.clone();
        let last_error = std::sync::Arc::new(Mutex::new(None));
        let failure = std::sync::Arc::clone(&last_error);
        let writer = std::thread::Builder::new()
            .name("oxinfer-log".into())
            .spawn(move || {
                let mut rows: Vec<(Entry, i64)> = Vec::new();
                let mut outcomes: Vec<(String, String, i64)> = Vec::new();
                let mut since = Instant::now();
                loop {
                    let wait = flush.saturating_sub(since.elapsed());
                    let mut done = None;
                    let mut closed = false;
                    match rx.recv_timeout(wait) {
                        Ok(Msg::Rows(r, ts)) => rows.extend(r.into_iter().map(|e| (e, ts))),
                        Ok(Msg::Outcome(id, o, ts)) => outcomes.push((id, o, ts)),
                        Ok(Msg::Flush(ack)) => done = Some(ack),
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => closed = true,
                    }
                    let due = since.elapsed() >= flush || rows.len() >= batch || done.is_some() || closed;
                    if due && (!rows.is_empty() || !outcomes.is_empty()) {
                        match write(&mut conn, &rows, &outcomes, max) {
                            Ok(()) => {
                                rows.clear();
                                outcomes.clear();
                                *failure.lock().unwrap_or_else(|e| e.into_inner()) = None;
                            }
                            // Kept for the next try (a full disk may clear),
                            // up to a bound; the error is reported meanwhile.
                            Err(e) => {
                                *failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!("writing '{}': {e}", p.display()));
                                let over = rows.len().saturating_sub(RETRY_ROWS);
                                rows.drain(..over);
                            }
                        }
                    }
                    if due {
                        since = Instant::now();
                    }
                    if let Some(ack) = done {
                        let _ = ack.send(());
                    }
                    if closed {
                        return;
                    }
                }
            })
            .map_err(|e| Error::Backend(format!("cannot start the prediction log's writer: {e}")))?;
        Ok(PredictionLog {
            spec,
            path,
            tx: Mutex::new(Some(tx)),
            last_error,
            dropped: Default::default(),
            writer: Mutex::new(Some(writer)),
        })
    }

    fn send(&self, msg: Msg) -> bool {
        let rows = if let Msg::Rows(r, _) = &msg { r.len() as u64 } else { 0 };
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        let Some(tx) = tx.as_ref() else { return false };
        match tx.try_send(msg) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(rows.max(1), std::sync::atomic::Ordering::Relaxed);
                false
            }
        }
    }

    /// Predictions and outcomes dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The last batch's write failure, if it failed (a full disk, say).
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn spec(&self) -> &LogSpec {
        &self.spec
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the row at `key` (an id, or a position) is in the sample.
    pub fn sampled(&self, key: &str) -> bool {
        self.spec.sample >= 1.0 || (fnv(key.as_bytes()) as f64 / u64::MAX as f64) < self.spec.sample
    }

    /// Queues predictions for the next batch (dropped and counted when the
    /// writer is `QUEUE` messages behind).
    pub fn append(&self, entries: Vec<Entry>) {
        if !entries.is_empty() {
            self.send(Msg::Rows(entries, now_ms()));
        }
    }

    /// Queues an outcome, joined to its prediction by id.
    pub fn outcome(&self, id: &str, outcome: &str) {
        self.send(Msg::Outcome(id.to_string(), outcome.to_string(), now_ms()));
    }

    /// Writes what is queued now; returns once it is committed, or the
    /// write's failure (the rows stay queued for the next try), or how many
    /// were dropped since the log opened.
    pub fn flush(&self) -> Result<()> {
        let (ack, done) = channel();
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner()).clone();
        // Blocking here is the caller's choice: a flush waits its turn.
        if let Some(tx) = tx {
            if tx.send(Msg::Flush(ack)).is_ok() {
                let _ = done.recv_timeout(Duration::from_secs(30));
            }
        }
        if let Some(e) = self.last_error() {
            return Err(Error::file_op("write", "the prediction log", &self.path, e));
        }
        match self.dropped() {
            0 => Ok(()),
            n => Err(Error::Overloaded(format!("the prediction log '{}' fell behind and dropped {n} predictions or outcomes", self.path.display()))),
        }
    }

    /// Writes the log (flushed first) to `out` as JSONL or CSV; returns the rows written.
    pub fn export(&self, out: &Path, csv: bool) -> Result<u64> {
        // What is committed exports even when the flush reports a failure.
        let flushed = self.flush();
        let n = export(&self.path, out, csv)?;
        flushed.map(|()| n)
    }
}

/// The rows of the log at `db` as JSONL or CSV: id, ts, inputs, label,
/// scores (JSON), outcome, outcome_ts, in insertion order.
pub fn export(db: &Path, out: &Path, csv: bool) -> Result<u64> {
    let c = Connection::open(db).map_err(|e| Error::file("the prediction log", db, e))?;
    let mut stmt = c.prepare("SELECT id, ts, inputs, label, scores, outcome, outcome_ts FROM predictions ORDER BY seq").map_err(|e| Error::file("the prediction log", db, e))?;
    let file = std::fs::File::create(out).map_err(|e| Error::file_op("write", "the export", out, e))?;
    let werr = |e: &dyn std::fmt::Display| Error::file_op("write", "the export", out, e);
    let mut jsonl = (!csv).then(|| std::io::BufWriter::new(file.try_clone().expect("a file handle")));
    let mut table = csv.then(|| csv::Writer::from_writer(std::io::BufWriter::new(file)));
    if let Some(t) = &mut table {
        t.write_record(["id", "ts", "inputs", "label", "scores", "outcome", "outcome_ts"]).map_err(|e| werr(&e))?;
    }
    let mut n = 0u64;
    let mut rows = stmt.query([]).map_err(|e| Error::file("the prediction log", db, e))?;
    use std::io::Write;
    while let Some(r) = rows.next().map_err(|e| Error::file("the prediction log", db, e))? {
        let id: String = r.get(0).unwrap_or_default();
        let ts: i64 = r.get(1).unwrap_or_default();
        let inputs: Option<String> = r.get(2).unwrap_or_default();
        let label: Option<String> = r.get(3).unwrap_or_default();
        let scores: String = r.get(4).unwrap_or_default();
        let outcome: Option<String> = r.get(5).unwrap_or_default();
        let outcome_ts: Option<i64> = r.get(6).unwrap_or_default();
        if let Some(t) = &mut table {
            let cells = [id, ts.to_string(), inputs.unwrap_or_default(), label.unwrap_or_default(), scores, outcome.unwrap_or_default(), outcome_ts.map(|t| t.to_string()).unwrap_or_default()];
            t.write_record(&cells).map_err(|e| werr(&e))?;
        } else if let Some(w) = &mut jsonl {
            // Values are a JSON object; a digest stays a string (an all-digit one included).
            let inputs_json = inputs.as_deref().filter(|s| s.starts_with('{')).and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok()).or(inputs.map(serde_json::Value::String));
            let line = serde_json::json!({
                "id": id, "ts": ts, "inputs": inputs_json, "label": label,
                "scores": serde_json::from_str::<serde_json::Value>(&scores).unwrap_or(serde_json::Value::Null),
                "outcome": outcome, "outcome_ts": outcome_ts,
            });
            writeln!(w, "{line}").map_err(|e| werr(&e))?;
        }
        n += 1;
    }
    if let Some(mut t) = table {
        t.flush().map_err(|e| werr(&e))?;
    }
    if let Some(mut w) = jsonl {
        w.flush().map_err(|e| werr(&e))?;
    }
    Ok(n)
}

fn write(conn: &mut Connection, rows: &[(Entry, i64)], outcomes: &[(String, String, i64)], max: u64) -> std::result::Result<(), rusqlite::Error> {
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare_cached("INSERT INTO predictions (id, ts, inputs, label, scores) VALUES (?1, ?2, ?3, ?4, ?5)")?;
        for (e, ts) in rows {
            let scores = serde_json::to_string(&e.scores).unwrap_or_else(|_| "[]".into());
            insert.execute(params![e.id, ts, e.inputs, e.label, scores])?;
        }
        // The latest prediction with that id (an id seen again replaced its prediction).
        let mut update = tx.prepare_cached("UPDATE predictions SET outcome = ?2, outcome_ts = ?3 WHERE seq = (SELECT MAX(seq) FROM predictions WHERE id = ?1) AND outcome IS NULL")?;
        for (id, o, ts) in outcomes {
            update.execute(params![id, o, ts])?;
        }
        // Retention: the newest `max` rows stay.
        tx.execute("DELETE FROM predictions WHERE seq <= (SELECT MAX(seq) FROM predictions) - ?1", params![max as i64])?;
    }
    tx.commit()
}

/// 64-bit FNV-1a.
pub fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
