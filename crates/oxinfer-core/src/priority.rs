//! Thread priority: inference threads run below the JS thread, so a busy
//! model cannot starve the event loop (or V8's GC threads) on a small machine.

/// The nice value given to inference threads (Linux; higher is lower priority).
pub const INFERENCE_NICE: i32 = 10;

/// Lowers the calling thread's priority; threads it creates afterwards
/// (ONNX Runtime's intra-op pool, for one) inherit it. Best effort.
pub fn lower_current_thread() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls on the calling thread's own id.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        let now = libc::getpriority(libc::PRIO_PROCESS, tid);
        if now < INFERENCE_NICE {
            libc::setpriority(libc::PRIO_PROCESS, tid, INFERENCE_NICE);
        }
    }
}

/// Runs `f` on a short-lived thread of lowered priority, so that any threads
/// `f` creates inherit that priority; returns its result.
pub fn on_low_priority_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match std::thread::Builder::new().name("oxinfer-load".into()).spawn(move || {
        lower_current_thread();
        f()
    }) {
        Ok(h) => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
        Err(_) => panic!("cannot start a thread to build the session"),
    }
}
