//! The Redis backend: one hash per entity, `<prefix><view>:<key>`, holding
//! each present feature as text and `__ts` (ms since the epoch, when
//! written). A batch read is one pipelined round trip of HMGETs; a write
//! is one MULTI/EXEC of DEL + HSET per entity. Connections come from an
//! r2d2 pool whose connections carry connect, read and write timeouts, so a
//! Redis that is down or stalled fails a call within its timeout
//! (`ERR_UNAVAILABLE`) and never hangs it; broken connections are dropped
//! and new ones made when Redis is back.

use std::time::Duration;

use redis::{ConnectionLike, Value};


use super::{Backend, FValue, FeatureType, Row, View};
use crate::error::{Error, Result};

/// A pooled connection, and whether a failure left it unusable (a timed-out
/// reply may still arrive on it): the pool then drops it.
pub(super) struct Conn {
    inner: redis::Connection,
    broken: bool,
}

/// Opens connections with timeouts (the redis crate's own r2d2 manager sets none).
struct Manager {
    client: redis::Client,
    timeout: Duration,
}

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = redis::RedisError;

    fn connect(&self) -> std::result::Result<Conn, redis::RedisError> {
        let c = self.client.get_connection_with_timeout(self.timeout)?;
        c.set_read_timeout(Some(self.timeout))?;
        c.set_write_timeout(Some(self.timeout))?;
        Ok(Conn { inner: c, broken: false })
    }

    fn is_valid(&self, conn: &mut Conn) -> std::result::Result<(), redis::RedisError> {
        redis::cmd("PING").query::<String>(&mut conn.inner).map(|_| ())
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.broken || !conn.inner.is_open()
    }
}

pub(super) struct Redis {
    pool: r2d2::Pool<Manager>,
    prefix: String,
    url: String,
    timeout_ms: u64,
}

impl Redis {
    pub fn new(url: &str, prefix: &str, timeout_ms: u64, pool_size: u32) -> std::result::Result<Redis, String> {
        let client = redis::Client::open(url).map_err(|e| format!("'{url}' is not a Redis URL: {e}"))?;
        let timeout = Duration::from_millis(timeout_ms);
        let pool = r2d2::Pool::builder()
            .max_size(pool_size)
            .min_idle(Some(0))
            .connection_timeout(timeout)
            .test_on_check_out(false)
            // A connection idle past a minute is closed; Redis may have dropped it.
            .idle_timeout(Some(Duration::from_secs(60)))
            .build_unchecked(Manager { client, timeout });
        Ok(Redis { pool, prefix: prefix.to_string(), url: url.to_string(), timeout_ms })
    }

    fn key(&self, view: &View, key: &str) -> String {
        format!("{}{}:{key}", self.prefix, view.spec.name)
    }

    fn conn(&self) -> Result<r2d2::PooledConnection<Manager>> {
        self.pool.get().map_err(|e| Error::Unavailable(format!("feature store: Redis at {} gave no connection within {} ms: {e}", self.url, self.timeout_ms)))
    }

    /// A failed round trip: I/O (down, slow, dropped) is `ERR_UNAVAILABLE`,
    /// anything else Redis said is `ERR_BACKEND`. Either way the connection
    /// is not reused.
    fn failed(&self, conn: &mut Conn, e: redis::RedisError) -> Error {
        conn.broken = true;
        if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() {
            Error::Unavailable(format!("feature store: Redis at {} failed or did not answer within {} ms: {e}", self.url, self.timeout_ms))
        } else {
            Error::Backend(format!("feature store: Redis at {}: {e}", self.url))
        }
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn encode(v: &FValue) -> String {
    match v {
        // Display gives the shortest text that reads back to the same f64.
        FValue::Num(x) => x.to_string(),
        FValue::Cat(s) => s.clone(),
    }
}

impl Backend for Redis {
    fn get_many(&self, view: &View, keys: &[&str]) -> Result<Vec<Option<Row>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for k in keys {
            let cmd = pipe.cmd("HMGET").arg(self.key(view, k));
            for f in &view.spec.features {
                cmd.arg(&f.name);
            }
            cmd.arg("__ts");
        }
        let mut conn = self.conn()?;
        let replies: Vec<Value> = match pipe.query(&mut conn.inner) {
            Ok(r) => r,
            Err(e) => return Err(self.failed(&mut conn, e)),
        };
        if replies.len() != keys.len() {
            return Err(Error::Backend(format!("feature store: Redis answered {} replies for {} keys", replies.len(), keys.len())));
        }
        let n = view.spec.features.len();
        let mut out = Vec::with_capacity(keys.len());
        for (k, reply) in keys.iter().zip(replies) {
            let Value::Array(fields) = reply else {
                return Err(Error::Backend(format!("feature store: Redis answered HMGET for '{k}' with {reply:?}")));
            };
            let Some(ts) = fields.get(n).and_then(text) else {
                out.push(None);
                continue;
            };
            // Something else wrote this hash: an entity without a readable
            // time is missing, and a value that is not a number is a missing
            // value, rather than a failed batch for every record in it.
            let Ok(written_ms) = ts.parse::<u64>() else {
                out.push(None);
                continue;
            };
            let mut values = Vec::with_capacity(n);
            for (f, v) in view.spec.features.iter().zip(&fields) {
                values.push(match (text(v), f.kind) {
                    (None, _) => None,
                    (Some(s), FeatureType::Category) => Some(FValue::Cat(s)),
                    (Some(s), _) => s.parse::<f64>().ok().filter(|x| x.is_finite()).map(FValue::Num),
                });
            }
            out.push(Some(Row { values, written_ms }));
        }
        Ok(out)
    }

    fn put_many(&self, view: &View, rows: &[(&str, &Row)]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (k, row) in rows {
            let key = self.key(view, k);
            pipe.cmd("DEL").arg(&key).ignore();
            let cmd = pipe.cmd("HSET").arg(&key).arg("__ts").arg(row.written_ms);
            for (f, v) in view.spec.features.iter().zip(&row.values) {
                if let Some(v) = v {
                    cmd.arg(&f.name).arg(encode(v));
                }
            }
            cmd.ignore();
        }
        let mut conn = self.conn()?;
        match pipe.query::<()>(&mut conn.inner) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.failed(&mut conn, e)),
        }
    }

    fn usage(&self) -> Option<(u64, u64)> {
        None
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}
