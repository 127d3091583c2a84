//! The request queue: one FIFO per priority level (0 is the most urgent).
//! A worker takes from the most urgent level, unless the oldest request of a
//! lower level has waited longer than the aging limit, so that no level
//! starves while the others stay busy.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::request::Request;

/// A request of a lower level that has waited this long goes next.
pub const AGING: Duration = Duration::from_millis(200);

pub struct Queue {
    levels: Vec<VecDeque<(Instant, Request)>>,
    len: usize,
}

impl Queue {
    pub fn new(levels: usize) -> Self {
        Queue { levels: (0..levels.max(1)).map(|_| VecDeque::new()).collect(), len: 0 }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn levels(&self) -> usize {
        self.levels.len()
    }

    /// Queues `req` at `level` (clamped to the lowest level).
    pub fn push(&mut self, level: usize, req: Request) {
        let l = level.min(self.levels.len() - 1);
        self.levels[l].push_back((Instant::now(), req));
        self.len += 1;
    }

    /// The next request to run, with the time it was queued.
    pub fn pop(&mut self) -> Option<(Instant, Request)> {
        let now = Instant::now();
        let urgent = self.levels.iter().position(|q| !q.is_empty())?;
        // A lower level's oldest request that has waited past the limit goes first.
        let starving = self.levels[urgent + 1..]
            .iter()
            .enumerate()
            .filter_map(|(i, q)| q.front().map(|(t, _)| (urgent + 1 + i, *t)))
            .filter(|(_, t)| now.duration_since(*t) >= AGING)
            .min_by_key(|(_, t)| *t)
            .map(|(l, _)| l);
        let l = starving.unwrap_or(urgent);
        self.len -= 1;
        self.levels[l].pop_front()
    }

    /// Removes the queued request `id`.
    pub fn remove(&mut self, id: u64) -> Option<Request> {
        for q in &mut self.levels {
            if let Some(pos) = q.iter().position(|(_, j)| j.id == id) {
                self.len -= 1;
                return q.remove(pos).map(|(_, j)| j);
            }
        }
        None
    }

    pub fn drain(&mut self) -> Vec<Request> {
        self.len = 0;
        self.levels.iter_mut().flat_map(|q| q.drain(..).map(|(_, j)| j)).collect()
    }

    /// Puts a request taken earlier back at the head of its level, keeping
    /// the instant it was first queued.
    pub fn unshift(&mut self, level: usize, at: Instant, req: Request) {
        let l = level.min(self.levels.len() - 1);
        self.levels[l].push_front((at, req));
        self.len += 1;
    }

    /// Removes, in priority then arrival order, the requests that `take`
    /// accepts, until it says stop (`None`); each comes with its level and
    /// the instant it was queued.
    pub fn take_while_some(&mut self, mut take: impl FnMut(&Request) -> Option<bool>) -> Vec<(usize, Instant, Request)> {
        let mut out = Vec::new();
        for (level, q) in self.levels.iter_mut().enumerate() {
            let mut i = 0;
            while i < q.len() {
                match take(&q[i].1) {
                    None => return self.finish(out),
                    Some(true) => {
                        let (at, req) = q.remove(i).expect("index is in range");
                        out.push((level, at, req));
                    }
                    Some(false) => i += 1,
                }
            }
        }
        self.finish(out)
    }

    fn finish<T>(&mut self, out: Vec<T>) -> Vec<T> {
        self.len -= out.len();
        out
    }
}
