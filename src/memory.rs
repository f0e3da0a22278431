//! Memory the allocator holds but no longer uses, handed back to the OS.
//!
//! The Kafka aggregator frees as much as it allocates (librdkafka's fetch buffers, decoded
//! batches, Parquet pages), but on different threads and at different times. glibc keeps the
//! freed chunks in its per-thread arenas, only trimming an arena from its top: measured on an
//! 8M-trade run, 344 MB of arenas held 71 MB in use, so the process's RSS grew with the run's
//! length though its live data did not. [`release_free`] returns those free pages.

/// Give free memory in the allocator's arenas back to the OS (glibc's `malloc_trim`; elsewhere
/// a no-op). Costs a walk of the free lists, so call it every so often, not per batch.
pub fn release_free() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: these take no pointers; they only read and madvise glibc's own bookkeeping.
    unsafe {
        libc::malloc_trim(0);
        let info = libc::mallinfo2();
        tracing::debug!(
            "allocator: {} MiB in use; free pages of its {} MiB of arenas returned to the OS",
            (info.uordblks + info.hblkhd) >> 20,
            (info.arena + info.hblkhd) >> 20,
        );
    }
}
