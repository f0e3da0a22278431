//! A producer whose delivery reports are served by a thread that sleeps until librdkafka has
//! one.
//!
//! rdkafka's `ThreadedProducer` serves them by polling 100 ms at a time. A poll that takes a
//! report goes on polling until its 100 ms are over, asking librdkafka for the time left in
//! whole milliseconds, rounded down: in the last millisecond it asks for no wait at all, again
//! and again (the same rounding librdkafka fixed in its own main loop, librdkafka#4671). That
//! is about 1 % of a core for each producer of a live stream: a fifth of a live aggregator's
//! CPU at 2,000 trades/s. Here librdkafka calls back when its report queue turns non-empty,
//! and the thread takes what is queued without waiting, then sleeps again.

use std::ffi::c_void;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};

/// A missed wake-up (none is expected) delays reports by at most this long.
const IDLE_CHECK: Duration = Duration::from_millis(100);

/// Called by librdkafka (on any of its threads, with the queue locked) when the report queue
/// turns non-empty.
unsafe extern "C" fn wake(_rk: *mut rd::rd_kafka_t, opaque: *mut c_void) {
    // SAFETY: `opaque` is the `Thread` boxed in a live `ReportedProducer`: its `drop` disables
    // this callback (under the queue's lock, so no call is running) before the box goes.
    let thread = unsafe { &*(opaque as *const Thread) };
    // An unpark before the park is kept: the wake-up is not lost.
    thread.unpark();
}

/// A `BaseProducer` and the thread that serves its delivery reports.
pub struct ReportedProducer<C: ProducerContext + 'static> {
    producer: Arc<BaseProducer<C>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// The report queue (librdkafka's main queue), a handle of our own.
    queue: NonNull<rd::rd_kafka_queue_t>,
    /// Boxed: librdkafka holds its address until the callback is disabled in `drop`.
    waker: Box<Thread>,
}

// SAFETY: librdkafka queues are thread-safe (every operation takes the queue's lock); the
// producer is Send + Sync, as are `Thread` and the rest.
unsafe impl<C: ProducerContext + 'static> Send for ReportedProducer<C> {}
// SAFETY: as above.
unsafe impl<C: ProducerContext + 'static> Sync for ReportedProducer<C> {}

/// The queue's length.
fn queued(queue: NonNull<rd::rd_kafka_queue_t>) -> usize {
    // SAFETY: a live queue handle (the thread is joined before `drop` destroys it).
    unsafe { rd::rd_kafka_queue_length(queue.as_ptr()) }
}

/// A queue handle that may cross to the serving thread.
struct QueuePtr(NonNull<rd::rd_kafka_queue_t>);
// SAFETY: librdkafka queues are thread-safe.
unsafe impl Send for QueuePtr {}

impl<C: ProducerContext + 'static> ReportedProducer<C> {
    pub fn new(producer: BaseProducer<C>) -> Result<ReportedProducer<C>, String> {
        let producer = Arc::new(producer);
        // SAFETY: a live client handle; the queue handle is ours to destroy.
        let queue =
            NonNull::new(unsafe { rd::rd_kafka_queue_get_main(producer.client().native_ptr()) })
                .ok_or("librdkafka gave no main queue")?;
        let stop = Arc::new(AtomicBool::new(false));
        let serving = (producer.clone(), stop.clone(), QueuePtr(queue));
        let thread = std::thread::Builder::new()
            .name("darkpool-reports".into())
            .spawn(move || {
                let (producer, stop, queue) = serving;
                let queue = queue.0;
                loop {
                    // Whatever is queued, taken without waiting: each poll takes one event.
                    loop {
                        let n = queued(queue);
                        if n == 0 {
                            break;
                        }
                        for _ in 0..n {
                            producer.poll(Duration::ZERO);
                        }
                    }
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    std::thread::park_timeout(IDLE_CHECK);
                }
            });
        let thread = match thread {
            Ok(thread) => thread,
            Err(e) => {
                // SAFETY: the handle taken above, not used since.
                unsafe { rd::rd_kafka_queue_destroy(queue.as_ptr()) };
                return Err(format!("starting the delivery report thread: {e}"));
            }
        };
        let waker = Box::new(thread.thread().clone());
        let opaque = &*waker as *const Thread as *mut c_void;
        // SAFETY: a live queue; `opaque` stays valid until `drop` disables the callback.
        unsafe { rd::rd_kafka_queue_cb_event_enable(queue.as_ptr(), Some(wake), opaque) };
        // A report queued before the callback was set is taken at the first loop.
        waker.unpark();
        Ok(ReportedProducer {
            producer,
            stop,
            thread: Some(thread),
            queue,
            waker,
        })
    }

    pub fn producer(&self) -> &BaseProducer<C> {
        &self.producer
    }
}

impl<C: ProducerContext + 'static> Drop for ReportedProducer<C> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.waker.unpark();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        // SAFETY: a live queue; disabling takes its lock, so no callback runs after this.
        unsafe {
            rd::rd_kafka_queue_cb_event_enable(self.queue.as_ptr(), None, std::ptr::null_mut());
            rd::rd_kafka_queue_destroy(self.queue.as_ptr());
        }
        // The producer goes last (this held its only other reference): rdkafka's drop purges
        // what was not sent and serves the last reports.
    }
}
