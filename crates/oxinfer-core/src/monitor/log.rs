//! The prediction log: an append-only SQLite file (WAL) of each prediction
//! (its id, time, inputs or their digest, label and scores) and, joined by
//! id, its outcome when feedback arrives. A writer thread inserts in
//! batched transactions, every `flushMs` or `batchRows` rows, whichever
//! comes first; so a kill -9 loses at most the rows of the unflushed batch
//! (at most `flushMs` of traffic, or `batchRows` rows). Retention keeps the
//! newest `maxRows`. `export` writes it as JSONL or CSV training data.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
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

/// What waits for the writer. Callers append under the lock and wake the
/// writer only when a batch is full or a flush is asked, not per
/// prediction: a wake-up per request cost the server more than the insert.
#[derive(Default)]
struct Pending {
    rows: Vec<(Entry, i64)>,
    outcomes: Vec<(String, String, i64)>,
    flushes: Vec<Sender<()>>,
    /// The writer was woken for what is pending (one wake-up per batch).
    woken: bool,
    closed: bool,
}

impl Pending {
    /// Rows and outcomes waiting.
    fn items(&self) -> usize {
        self.rows.len() + self.outcomes.len()
    }
}

struct Queue {
    pending: Mutex<Pending>,
    ready: Condvar,
    /// Items that wake the writer: a batch (at most `bound`).
    batch: usize,
    /// Items waiting at most: past them, more are dropped (and counted)
    /// rather than held in memory or the caller blocked. An append to an
    /// empty queue is always taken, however large.
    bound: usize,
}

impl Queue {
    fn new(batch_rows: usize) -> Queue {
        let bound = PENDING.max(batch_rows.saturating_mul(4));
        Queue { pending: Mutex::default(), ready: Condvar::new(), batch: batch_rows.min(bound), bound }
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Items (rows and outcomes) that may wait for the writer, at least.
const PENDING: usize = 65_536;
/// Rows a failed batch keeps for its retry at most.
const RETRY_ROWS: usize = 1_000_000;

pub struct PredictionLog {
    spec: LogSpec,
    path: PathBuf,
    queue: Arc<Queue>,
    last_error: Arc<Mutex<Option<String>>>,
    dropped: std::sync::atomic::AtomicU64,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Drop for PredictionLog {
    /// Closes the queue and waits for the writer's last batch (a graceful
    /// stop loses nothing).
    fn drop(&mut self) {
        self.queue.lock().closed = true;
        self.queue.ready.notify_one();
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
        let queue = Arc::new(Queue::new(spec.batch_rows));
        let (flush, max) = (Duration::from_millis(spec.flush_ms), spec.max_rows);
        let p = path.clone();
        let last_error = Arc::new(Mutex::new(None));
        let failure = Arc::clone(&last_error);
        let q = Arc::clone(&queue);
        let writer = std::thread::Builder::new()
            .name("oxinfer-log".into())
            .spawn(move || {
                // What this writer holds: taken from the queue, and kept across a failed write.
                let mut rows: Vec<(Entry, i64)> = Vec::new();
                let mut outcomes: Vec<(String, String, i64)> = Vec::new();
                let mut since = Instant::now();
                loop {
                    let (acks, closed) = {
                        let mut pending = q.lock();
                        loop {
                            let deadline = since + flush;
                            let now = Instant::now();
                            // `woken` as well as the count: a caller's wake-up is never slept through.
                            if pending.woken || pending.items() >= q.batch || !pending.flushes.is_empty() || pending.closed || now >= deadline {
                                break;
                            }
                            pending = q.ready.wait_timeout(pending, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
                        }
                        pending.woken = false;
                        // Swapped, not copied, when nothing is kept from a failed write.
                        if rows.is_empty() {
                            std::mem::swap(&mut rows, &mut pending.rows);
                        } else {
                            rows.append(&mut pending.rows);
                        }
                        if outcomes.is_empty() {
                            std::mem::swap(&mut outcomes, &mut pending.outcomes);
                        } else {
                            outcomes.append(&mut pending.outcomes);
                        }
                        (std::mem::take(&mut pending.flushes), pending.closed)
                    };
                    since = Instant::now();
                    if !rows.is_empty() || !outcomes.is_empty() {
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
                    for ack in acks {
                        let _ = ack.send(());
                    }
                    if closed {
                        return;
                    }
                }
            })
            .map_err(|e| Error::Backend(format!("cannot start the prediction log's writer: {e}")))?;
        Ok(PredictionLog { spec, path, queue, last_error, dropped: Default::default(), writer: Mutex::new(Some(writer)) })
    }

    /// Queues `n` items with `add`, unless the queue is closed or would hold
    /// more than its bound (then they are dropped and counted); wakes the
    /// writer once a batch is full.
    fn enqueue(&self, n: usize, add: impl FnOnce(&mut Pending)) {
        let mut pending = self.queue.lock();
        if pending.closed || (pending.items() > 0 && pending.items() + n > self.queue.bound) {
            drop(pending);
            self.dropped.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
            return;
        }
        add(&mut pending);
        if !pending.woken && pending.items() >= self.queue.batch {
            pending.woken = true;
            drop(pending);
            self.queue.ready.notify_one();
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
    /// writer is that far behind: see `Queue::bound`).
    pub fn append(&self, entries: Vec<Entry>) {
        if !entries.is_empty() {
            let ts = now_ms();
            self.enqueue(entries.len(), |p| p.rows.extend(entries.into_iter().map(|e| (e, ts))));
        }
    }

    /// Queues an outcome, joined to its prediction by id.
    pub fn outcome(&self, id: &str, outcome: &str) {
        let item = (id.to_string(), outcome.to_string(), now_ms());
        self.enqueue(1, |p| p.outcomes.push(item));
    }

    /// Writes what is queued now; returns once it is committed, or the
    /// write's failure (the rows stay queued for the next try), or how many
    /// were dropped since the log opened.
    pub fn flush(&self) -> Result<()> {
        let (ack, done) = channel();
        let open = {
            let mut pending = self.queue.lock();
            if !pending.closed {
                pending.flushes.push(ack);
            }
            !pending.closed
        };
        // Blocking here is the caller's choice: a flush waits its turn.
        if open {
            self.queue.ready.notify_one();
            let _ = done.recv_timeout(Duration::from_secs(30));
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
        // Rows go in INSERTs of CHUNK rows each, the rest one by one: 0.95 µs a row against 1.17
        // one by one (ids as the pipeline makes them, this machine).
        const CHUNK: usize = 64;
        static MANY: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(|| format!("INSERT INTO predictions (id, ts, inputs, label, scores) VALUES {}", vec!["(?, ?, ?, ?, ?)"; CHUNK].join(", ")));
        let mut many = tx.prepare_cached(&MANY)?;
        let mut one = tx.prepare_cached("INSERT INTO predictions (id, ts, inputs, label, scores) VALUES (?, ?, ?, ?, ?)")?;
        let scores: Vec<String> = rows.iter().map(|(e, _)| serde_json::to_string(&e.scores).unwrap_or_else(|_| "[]".into())).collect();
        let fields = |i: usize| -> [&dyn rusqlite::ToSql; 5] {
            let (e, ts) = &rows[i];
            [&e.id, ts, &e.inputs, &e.label, &scores[i]]
        };
        let full = rows.len() / CHUNK * CHUNK;
        for start in (0..full).step_by(CHUNK) {
            many.execute(rusqlite::params_from_iter((start..start + CHUNK).flat_map(fields)))?;
        }
        for i in full..rows.len() {
            one.execute(rusqlite::params_from_iter(fields(i)))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn log(name: &str, batch_rows: usize) -> (PredictionLog, PathBuf) {
        let dir = std::env::temp_dir().join(format!("oxinfer-log-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let spec = LogSpec { path: "log.db".into(), inputs: InputsMode::None, sample: 1.0, flush_ms: 600_000, batch_rows, max_rows: 1_000_000 };
        (PredictionLog::open(spec, dir.join("log.db")).unwrap(), dir)
    }

    fn entries(from: usize, n: usize) -> Vec<Entry> {
        (from..from + n).map(|i| Entry { id: format!("p{i}"), inputs: None, label: Some("a".into()), scores: vec![i as f64] }).collect()
    }

    /// Rows committed so far, read through a connection of its own.
    fn committed(dir: &Path) -> i64 {
        Connection::open(dir.join("log.db")).unwrap().query_row("SELECT COUNT(*) FROM predictions", [], |r| r.get(0)).unwrap()
    }

    /// Rows committed once `n` are, or after 10 s (the flush interval is 600 s: only a wake-up writes them).
    fn committed_soon(dir: &Path, n: i64) -> i64 {
        let t = Instant::now();
        while committed(dir) < n && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
        }
        committed(dir)
    }

    #[test]
    fn a_full_batch_wakes_the_writer_and_a_partial_one_waits_for_a_flush() {
        let (l, dir) = log("batch", 100);
        // 99 rows, one request at a time: under the batch, with the flush a long way off, nothing is written.
        for i in 0..99 {
            l.append(entries(i, 1));
        }
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(committed(&dir), 0);
        // The 100th fills the batch: the writer wakes without a flush.
        l.append(entries(99, 1));
        assert_eq!(committed_soon(&dir, 100), 100);
        // A partial batch and an outcome are written by a flush, in order (70 rows take the chunked INSERT and the rest).
        l.append(entries(100, 70));
        l.outcome("p5", "b");
        l.flush().unwrap();
        assert_eq!(committed(&dir), 170);
        let c = Connection::open(dir.join("log.db")).unwrap();
        let ids: Vec<String> = c.prepare("SELECT id FROM predictions ORDER BY seq").unwrap().query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(ids, (0..170).map(|i| format!("p{i}")).collect::<Vec<_>>());
        let outcome: Option<String> = c.query_row("SELECT outcome FROM predictions WHERE id = 'p5'", [], |r| r.get(0)).unwrap();
        assert_eq!(outcome.as_deref(), Some("b"));
        assert_eq!(l.dropped(), 0);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn outcomes_count_toward_a_batch_and_never_leave_the_writer_asleep() {
        let (l, dir) = log("outcomes", 10);
        l.append(entries(0, 5));
        for i in 0..5 {
            l.outcome(&format!("p{i}"), "b");
        }
        // The batch (5 rows + 5 outcomes) woke the writer; more rows wake it again, with no flush.
        l.append(entries(5, 10));
        assert_eq!(committed_soon(&dir, 15), 15);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn an_append_larger_than_the_bound_is_taken_when_the_queue_is_empty() {
        let (l, dir) = log("large", 1000);
        l.append(entries(0, PENDING + 10));
        l.flush().unwrap();
        assert_eq!(committed(&dir), (PENDING + 10) as i64);
        assert_eq!(l.dropped(), 0);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn closing_writes_what_is_queued() {
        let (l, dir) = log("close", 1000);
        l.append(entries(0, 300));
        drop(l);
        assert_eq!(committed(&dir), 300);
        let _ = std::fs::remove_dir_all(dir);
    }
}
