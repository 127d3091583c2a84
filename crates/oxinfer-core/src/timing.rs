//! Where a request's time went. A leaf module: the scheduler, batching and
//! pipelines all fill it in, and none of them needs the others to do so.

/// Where a request's time went, in microseconds, and the batch it ran in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timing {
    /// From submission until its batch started (including any hold for more requests).
    pub queue_us: u64,
    /// Merging a batch's inputs, or a pipeline's pre-processing and feature assembly.
    pub pre_us: u64,
    /// The engine's run of the whole batch.
    pub infer_us: u64,
    /// Splitting a batch's outputs, or a pipeline's post-processing.
    pub post_us: u64,
    /// Rows along the batch axis in the batch the request ran in.
    pub batch_rows: u32,
    /// Requests merged into that batch.
    pub batch_requests: u32,
}

impl Timing {
    /// How many numbers `as_array` gives: what a binding packs per request.
    pub const LEN: usize = 6;

    /// The timing as numbers, in a fixed order: queue, pre, inference and
    /// post µs, batch rows, batch requests.
    pub fn as_array(&self) -> [f64; Self::LEN] {
        [self.queue_us as f64, self.pre_us as f64, self.infer_us as f64, self.post_us as f64, self.batch_rows as f64, self.batch_requests as f64]
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it): the one
/// wall-clock reading that decisions, stored rows and log entries carry.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
