//! The engine-neutral thread rule: how many intra-op threads each execution
//! slot gets and how many slots a model has, when the user sets neither.
//! ONNX Runtime and the torch plugin follow it alike.

/// The thread rule when the user sets neither `intraOpThreads` nor
/// `poolSize`. One slot with one intra-op thread runs the model on zero
/// inputs (dynamic dims as 1). A model measured under `LIGHT` per run pays
/// more for waking intra-op threads than they save (9 µs against 34 µs per
/// run on the penguins model with 2 threads): it gets one intra-op thread
/// per slot and a pool of `min(cores, MAX_LIGHT_POOL)` slots, so requests run
/// in parallel instead. A model measured heavier keeps one slot with an
/// intra-op thread per core. A model that cannot run on zeros (Silero VAD
/// wants a real sample rate) is treated as light unless it is larger than
/// `LARGE_MODEL` bytes, whose slots would each hold a copy of its weights.
pub struct Threads;

impl Threads {
    pub const LIGHT: std::time::Duration = std::time::Duration::from_millis(1);
    /// A probe run past this is heavy at once (no further runs).
    pub const CLEARLY_HEAVY: std::time::Duration = std::time::Duration::from_millis(10);
    pub const MAX_LIGHT_POOL: usize = 4;
    pub const LARGE_MODEL: u64 = 64 << 20;
    /// Zero inputs larger than this are not allocated for a probe.
    pub const MAX_PROBE_BYTES: usize = 16 << 20;

    pub fn cores() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    /// `(intra-op threads per slot, slots)` for a model whose probe run took
    /// `probe` (None: it could not run on zeros) and whose size is `size` bytes.
    pub fn choose(probe: Option<std::time::Duration>, size: u64, cores: usize) -> (usize, usize) {
        let light = match probe {
            Some(t) => t < Threads::LIGHT,
            None => size <= Threads::LARGE_MODEL,
        };
        if light {
            (1, cores.clamp(1, Threads::MAX_LIGHT_POOL))
        } else {
            (cores.max(1), 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Threads;
    use std::time::Duration;

    #[test]
    fn the_thread_rule() {
        let ms = Duration::from_millis;
        assert_eq!(Threads::choose(Some(Duration::from_micros(9)), 1 << 10, 2), (1, 2));
        assert_eq!(Threads::choose(Some(Duration::from_micros(9)), 1 << 10, 16), (1, 4));
        assert_eq!(Threads::choose(Some(ms(3)), 1 << 10, 8), (8, 1));
        assert_eq!(Threads::choose(None, 2 << 20, 2), (1, 2));
        assert_eq!(Threads::choose(None, 200 << 20, 2), (2, 1));
        assert_eq!(Threads::choose(Some(ms(3)), 1 << 10, 1), (1, 1));
    }
}

