//! Memory the allocator holds but no longer uses, handed back to the OS.
//!
//! The Kafka aggregator frees as much as it allocates (librdkafka's fetch buffers, decoded
//! batches, Parquet pages), but on different threads and at different times. glibc keeps the
//! freed chunks in its per-thread arenas, only trimming an arena from its top: through an
//! 8M-trade run, 100-185 MiB were in use (climbing slowly, by heaptrack, as librdkafka's
//! prefetch queue fills) while the arenas grew to about 340 MiB (71 MiB in use in 344 MiB at the
//! end), so RSS grew with the run's length much faster than live data did. [`release_free`]
//! returns the free pages (whole pages only: it cannot undo fragmentation inside partly used
//! ones).

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
