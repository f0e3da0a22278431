//! The process's allocator: jemalloc on Linux, configured to hand freed memory back to the OS.
//!
//! The Kafka aggregator frees as much as it allocates (librdkafka's fetch buffers, decoded
//! batches, Parquet pages), but on different threads and at different times. With glibc's
//! malloc the freed chunks stayed in per-thread arenas, fragmented: through long backfills the
//! live heap stayed at 140-190 MiB (heaptrack) while RSS kept growing with the run's length,
//! and a `malloc_trim` every second only slowed that. jemalloc with background purging keeps
//! RSS flat once the pipeline is full, and measured no slower (README, "Kafka").
//!
//! `unprefixed` (the crate feature) makes it the C `malloc` too, so librdkafka's and zstd's
//! allocations, the largest part, are covered. Its options are compiled in through the
//! `malloc_conf` symbol below; `MALLOC_CONF` in the environment still overrides them.

#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A C string pointer jemalloc reads before `main` (`Option<&c_char>`: a nullable pointer).
#[cfg(target_os = "linux")]
#[repr(transparent)]
pub struct Conf(Option<&'static std::ffi::c_char>);

/// Dirty pages are purged a second after they are freed, by jemalloc's background thread
/// rather than by whichever thread frees; muzzy pages go at once.
#[cfg(target_os = "linux")]
#[allow(non_upper_case_globals)]
#[no_mangle]
pub static malloc_conf: Conf = Conf(Some(
    // SAFETY: a pointer to the first byte of a static C string (jemalloc reads it as one).
    unsafe { &*c"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0".as_ptr() },
));
