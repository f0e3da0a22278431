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

// SAFETY: a message may be read and destroyed on any thread (its buffer and partition are
// reference-counted with atomics); every message is dropped before its consumer (the decode
// workers are joined first).
unsafe impl Send for Fetched {}

impl Fetched {
    fn raw(&self) -> &rd::rd_kafka_message_t {
        // SAFETY: a live message, owned by this value.
        unsafe { self.0.as_ref() }
    }

    /// The message, or what librdkafka reported in its place (an end of partition, an error).
    pub(super) fn into_data(self) -> Result<Data, Reported> {
        let m = self.raw();
        match RDKafkaErrorCode::from(m.err) {
            RDKafkaErrorCode::NoError => Ok(Data(self)),
            RDKafkaErrorCode::PartitionEOF => Err(Reported::End {
                partition: m.partition,
                next: Some(m.offset),
            }),
            other => Err(Reported::Error(RdError::MessageConsumption(other))),
        }
    }
}

/// What librdkafka put in a message's place.
#[derive(Debug)]
pub(super) enum Reported {
    /// The partition's end was reached. `next` is the offset reading goes on from, when known:
    /// past the last message, and past any transaction markers and aborted transactions'
    /// records after it, which take offsets but are never delivered.
    End {
        partition: i32,
        next: Option<i64>,
    },
    Error(RdError),
}

impl From<&RdError> for Reported {
    /// As rdkafka reports it for a message polled from the consumer's own queue (which keeps
    /// an end's offset to itself).
    fn from(error: &RdError) -> Reported {
        match error {
            RdError::PartitionEOF(partition) => Reported::End {
                partition: *partition,
                next: None,
            },
            other => Reported::Error(other.clone()),
        }
    }
}

/// A fetched message that carries data (not an event in its place). It is handed to a decode
/// worker as it is and read there in place: librdkafka's bytes are not copied (a copy cost
/// about 3 % of a Kafka backfill's CPU time).
pub(super) struct Data(Fetched);

/// A message's headers, copied: name and value (`None`: a null value), in order.
pub(super) type HeaderList = Vec<(String, Option<Vec<u8>>)>;

impl Data {
    /// The message's headers, copied (for its dead letter: Kafka Connect's keep the original
    /// headers too).
    pub(super) fn headers(&self) -> HeaderList {
        let message = self.0 .0.as_ptr();
        let mut list = std::ptr::null_mut();
        // SAFETY: a live message; librdkafka hands out its own header list, alive with it.
        let err = unsafe { rd::rd_kafka_message_headers(message, &mut list) };
        if RDKafkaErrorCode::from(err) != RDKafkaErrorCode::NoError || list.is_null() {
            return HeaderList::new(); // none (NoEnt), or none readable
        }
        let mut headers = HeaderList::new();
        for idx in 0.. {
            let (mut name, mut value, mut size) = (std::ptr::null(), std::ptr::null(), 0usize);
            // SAFETY: the live list above; out-pointers to locals.
            let err =
                unsafe { rd::rd_kafka_header_get_all(list, idx, &mut name, &mut value, &mut size) };
            if RDKafkaErrorCode::from(err) != RDKafkaErrorCode::NoError || name.is_null() {
                break; // past the last (NoEnt)
            }
            // SAFETY: librdkafka's NUL-terminated name and `size` value bytes, alive with the
            // message.
            let name = unsafe { CStr::from_ptr(name) }
                .to_string_lossy()
                .into_owned();
            let value = unsafe { bytes(value as *mut c_void, size) }.map(<[u8]>::to_vec);
            headers.push((name, value));
        }
        headers
    }

    pub(super) fn view(&self) -> Polled<'_> {
        let m = self.0.raw();
        Polled {
            partition: m.partition,
            offset: m.offset,
            // SAFETY: librdkafka's pointers and lengths of the message's bytes, alive with the
            // message.
            payload: unsafe { bytes(m.payload, m.len) },
            key: unsafe { bytes(m.key, m.key_len) },
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

/// The start and the end (the next offset) of `partition` of `topic`'s log as librdkafka last
/// heard them (each fetch answer carries both), without asking the broker; each `None` while
/// it has not heard it.
pub(super) fn cached_log_bounds(
    rk: *mut rd::rd_kafka_t,
    topic: &str,
    partition: i32,
) -> (Option<i64>, Option<i64>) {
    let Ok(topic) = std::ffi::CString::new(topic) else {
        return (None, None);
    };
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: a live client handle, a C string and out-pointers to locals.
    let err = unsafe {
        rd::rd_kafka_get_watermark_offsets(rk, topic.as_ptr(), partition, &mut low, &mut high)
    };
    if RDKafkaErrorCode::from(err) != RDKafkaErrorCode::NoError {
        return (None, None);
    }
    ((low >= 0).then_some(low), (high >= 0).then_some(high))
}

#[cfg(test)]
mod tests {
    use std::ffi::CString;
    use std::time::{Duration, Instant};

    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
    use rdkafka::ClientConfig;

    use super::*;

    type Seen = Vec<(i64, Option<Vec<u8>>, Option<Vec<u8>>)>;

    fn produce(producer: &BaseProducer, range: std::ops::Range<usize>) {
        for i in range {
            let (key, value) = (format!("k{i}"), format!("v{i}"));
            let record = BaseRecord::to("t").partition(0).key(&key);
            // Every tenth message has no value (a tombstone).
            let sent = if i % 10 == 9 {
                producer.send(record)
            } else {
                producer.send(record.payload(&value))
            };
            sent.map_err(|(e, _)| e).expect("queued");
        }
        producer.flush(Duration::from_secs(10)).expect("delivered");
    }

    /// Drain until the partition's end is reported (or 30 s pass), which must carry the offset
    /// after the last message; serve the consumer's own queue meanwhile and check it carries
    /// no message of the routed partition.
    fn drain_to_end(fetch: &FetchQueue, consumer: &BaseConsumer, seen: &mut Seen) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut fetched = Vec::new();
        loop {
            assert!(Instant::now() < deadline, "no end of partition within 30 s");
            if let Some(Ok(message)) = consumer.poll(Duration::ZERO) {
                panic!("the consumer's queue got {:?}", Polled::of(&message));
            }
            if fetch.drain(&mut fetched, 7) == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
            let mut end = false;
            for message in fetched.drain(..) {
                match message.into_data() {
                    Ok(data) => {
                        let m = data.view();
                        seen.push((
                            m.offset,
                            m.key.map(<[u8]>::to_vec),
                            m.payload.map(<[u8]>::to_vec),
                        ))
                    }
                    Err(Reported::End { partition: 0, next }) => {
                        // Where reading goes on: after the last message.
                        assert_eq!(next, seen.last().map(|(offset, ..)| offset + 1));
                        end = true;
                    }
                    Err(e) => panic!("unexpected: {e:?}"),
                }
            }
            if end {
                return;
            }
        }
    }

    fn expected(range: std::ops::Range<usize>) -> Seen {
        range
            .map(|i| {
                let payload = (i % 10 != 9).then(|| format!("v{i}").into_bytes());
                (i as i64, Some(format!("k{i}").into_bytes()), payload)
            })
            .collect()
    }

    /// A partition routed before it is assigned: its messages (keys, values, tombstones) and
    /// its end come through the fetch queue in order, in steps of any size, none through the
    /// consumer's queue; once drained empty, the queue wakes its waiter when more arrive.
    #[test]
    fn a_routed_partition_comes_through_the_fetch_queue_in_order_and_wakes_its_waiter() {
        let cluster = MockCluster::new(1).expect("mock cluster");
        cluster.create_topic("t", 1, 1).expect("topic");
        let servers = cluster.bootstrap_servers();
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &servers)
            .create()
            .expect("producer");
        produce(&producer, 0..500);

        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &servers)
            .set("group.id", "fetch-test")
            .set("enable.partition.eof", "true")
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let rk = consumer.client().native_ptr();
        let fetch = FetchQueue::new(rk).expect("queue");
        let topic = CString::new("t").expect("topic name");
        assert!(fetch.route(rk, &topic, 0));
        let mut list = TopicPartitionList::new();
        list.add_partition_offset("t", 0, Offset::Beginning)
            .expect("offset");
        consumer.assign(&list).expect("assign");

        let mut seen = Seen::new();
        drain_to_end(&fetch, &consumer, &mut seen);
        assert_eq!(seen, expected(0..500));

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let wait = |ms| {
            let waited =
                async { tokio::time::timeout(Duration::from_millis(ms), fetch.ready()).await };
            runtime.block_on(waited).is_ok()
        };
        // A wake-up stored while the queue filled is used up; then, empty, it stays quiet.
        wait(50);
        assert!(!wait(300), "woken with nothing new queued");
        produce(&producer, 500..520);
        assert!(wait(10_000), "not woken when messages arrived");
        seen.clear();
        drain_to_end(&fetch, &consumer, &mut seen);
        assert_eq!(seen, expected(500..520));
        drop(fetch);
    }
}
