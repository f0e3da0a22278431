//! The assigned partitions' messages, taken from librdkafka a step at a time.
//!
//! rdkafka hands over one message per poll, and each poll takes the queue's lock and reads the
//! clock several times: about 0.2 µs a message, a tenth of the aggregator's CPU time on a
//! backfill. librdkafka's batch call (`rd_kafka_consume_batch_queue`) takes a whole step at
//! once. It cannot be used on the consumer's own queue, which also carries the rebalances:
//! there it would answer them with an empty assignment instead of calling rdkafka's rebalance
//! handling (which positions each partition at the lake's end). So each partition's fetch queue
//! is forwarded to a queue of our own, in the rebalance callback before the partition is
//! assigned: from its first fetch on, every message and end-of-partition of it comes through
//! this queue, in order. Rebalances, errors and commit results stay on the consumer's queue,
//! which the loop still polls.
//!
//! librdkafka keeps an application's forward when it starts fetching a partition and clears it
//! when it stops (an unassign), which completes before the next assignment is handed out; the
//! callback forwards again at every assignment. Messages fetched before a partition was
//! re-assigned or paused are dropped by librdkafka's version barrier here as on the consumer's
//! queue.

use std::ffi::{c_void, CStr};
use std::ptr::NonNull;

use rdkafka::bindings as rd;
use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};
use tokio::sync::Notify;

/// Our queue, and the wake-up librdkafka gives when it turns non-empty.
pub(super) struct FetchQueue {
    queue: NonNull<rd::rd_kafka_queue_t>,
    /// Boxed: librdkafka holds its address until the callback is disabled in `drop`.
    wake: Box<Notify>,
}

// SAFETY: librdkafka queues are thread-safe (every operation takes the queue's lock).
unsafe impl Send for FetchQueue {}
// SAFETY: as above; `Notify` is Sync.
unsafe impl Sync for FetchQueue {}

/// Called by librdkafka (on its own threads, with the queue locked) when the queue turns
/// non-empty.
unsafe extern "C" fn wake(_rk: *mut rd::rd_kafka_t, opaque: *mut c_void) {
    // SAFETY: `opaque` is the `Notify` of a live `FetchQueue`: `drop` disables this callback
    // (under the queue's lock, so no call is running) before the box goes.
    let notify = unsafe { &*(opaque as *const Notify) };
    // A permit is stored when nobody waits yet: no wake-up is lost.
    notify.notify_one();
}

impl FetchQueue {
    /// A queue of the client `rk` (a consumer's native handle, which must outlive it).
    pub(super) fn new(rk: *mut rd::rd_kafka_t) -> Option<FetchQueue> {
        // SAFETY: `rk` is a live client handle.
        let queue = NonNull::new(unsafe { rd::rd_kafka_queue_new(rk) })?;
        let wake_box = Box::new(Notify::new());
        let opaque = &*wake_box as *const Notify as *mut c_void;
        // SAFETY: a live queue; `opaque` stays valid until `drop` disables the callback.
        unsafe { rd::rd_kafka_queue_cb_event_enable(queue.as_ptr(), Some(wake), opaque) };
        Some(FetchQueue {
            queue,
            wake: wake_box,
        })
    }

    /// Send `partition` of `topic`'s messages here (before it is assigned: see the module).
    pub(super) fn route(&self, rk: *mut rd::rd_kafka_t, topic: &CStr, partition: i32) -> bool {
        // SAFETY: a live client and a C string; the partition's handle is ours to destroy
        // (the forward keeps our queue referenced on its own).
        unsafe {
            let Some(source) = NonNull::new(rd::rd_kafka_queue_get_partition(
                rk,
                topic.as_ptr(),
                partition,
            )) else {
                return false;
            };
            rd::rd_kafka_queue_forward(source.as_ptr(), self.queue.as_ptr());
            rd::rd_kafka_queue_destroy(source.as_ptr());
        }
        true
    }

    /// Move up to `max` queued messages (and end-of-partition events) into `into`, without
    /// waiting. Returns how many came.
    pub(super) fn drain(&self, into: &mut Vec<Fetched>, max: usize) -> usize {
        into.reserve(max);
        // `Fetched` is a transparent non-null message pointer: librdkafka writes the pointers
        // straight into the vector's free room.
        let room = into.spare_capacity_mut().as_mut_ptr() as *mut *mut rd::rd_kafka_message_t;
        // SAFETY: a live queue and room for `max` pointers; each message returned is non-null
        // and ours to destroy (`Fetched` does).
        let n = unsafe { rd::rd_kafka_consume_batch_queue(self.queue.as_ptr(), 0, room, max) };
        let n = usize::try_from(n).unwrap_or(0).min(max);
        // SAFETY: librdkafka wrote `n` message pointers into the reserved room.
        unsafe { into.set_len(into.len() + n) };
        n
    }

    /// Wait until the queue has turned non-empty since the last drain that emptied it.
    pub(super) async fn ready(&self) {
        self.wake.notified().await
    }
}

impl Drop for FetchQueue {
    fn drop(&mut self) {
        // SAFETY: a live queue; disabling takes its lock, so no callback runs after this.
        unsafe {
            rd::rd_kafka_queue_cb_event_enable(self.queue.as_ptr(), None, std::ptr::null_mut());
            rd::rd_kafka_queue_destroy(self.queue.as_ptr());
        }
    }
}

/// A message (or end-of-partition event) taken from the queue; destroyed when dropped.
#[repr(transparent)]
pub(super) struct Fetched(NonNull<rd::rd_kafka_message_t>);

// SAFETY: a message may be read and destroyed on any thread.
unsafe impl Send for Fetched {}

impl Fetched {
    fn raw(&self) -> &rd::rd_kafka_message_t {
        // SAFETY: a live message, owned by this value.
        unsafe { self.0.as_ref() }
    }

    /// The message, or what librdkafka reported in its place (an end of partition, an error).
    pub(super) fn result(&self) -> Result<Polled<'_>, RdError> {
        let m = self.raw();
        let code = RDKafkaErrorCode::from(m.err);
        match code {
            RDKafkaErrorCode::NoError => Ok(Polled {
                partition: m.partition,
                offset: m.offset,
                // SAFETY: librdkafka's pointer and length of the message's bytes, alive
                // with the message.
                payload: unsafe { bytes(m.payload, m.len) },
                key: unsafe { bytes(m.key, m.key_len) },
            }),
            RDKafkaErrorCode::PartitionEOF => Err(RdError::PartitionEOF(m.partition)),
            other => Err(RdError::MessageConsumption(other)),
        }
    }
}

/// # Safety
/// `ptr` is null or points to `len` readable bytes that outlive `'a`.
unsafe fn bytes<'a>(ptr: *mut c_void, len: usize) -> Option<&'a [u8]> {
    // SAFETY: per the function's contract.
    (!ptr.is_null()).then(|| unsafe { std::slice::from_raw_parts(ptr as *const u8, len) })
}

impl Drop for Fetched {
    fn drop(&mut self) {
        // SAFETY: a message from `rd_kafka_consume_batch_queue`, destroyed once.
        unsafe { rd::rd_kafka_message_destroy(self.0.as_ptr()) }
    }
}

/// A message's place and bytes, wherever it was polled from.
#[derive(Debug, Clone, Copy)]
pub(super) struct Polled<'a> {
    pub partition: i32,
    pub offset: i64,
    pub payload: Option<&'a [u8]>,
    pub key: Option<&'a [u8]>,
}

impl<'a> Polled<'a> {
    /// The same view of a message polled from the consumer's queue.
    pub(super) fn of(message: &'a rdkafka::message::BorrowedMessage<'_>) -> Polled<'a> {
        use rdkafka::message::Message;
        Polled {
            partition: message.partition(),
            offset: message.offset(),
            payload: message.payload(),
            key: message.key(),
        }
    }
}
