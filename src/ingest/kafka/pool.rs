//! Decoding off the aggregator's loop.
//!
//! The loop hands each step's messages to a worker thread: those from the fetch queue as
//! librdkafka's messages themselves (read in place and destroyed by the worker), those polled
//! from the consumer's queue (which it only lends) copied into one buffer. Workers each own a
//! [`MessageDecoder`] and decode while the loop polls the next step. A flush collects every
//! worker's rows, the partitions' newest event times and the dead letters. Commands to a worker
//! run in order, so a take or a clear covers everything sent before it.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use tokio::sync::oneshot;

use super::fetch::{Data, HeaderList, Polled};
use crate::ingest::IngestError;
use crate::model::{rejects_schema, Reject, SourcePos};
use crate::source::kafka::{MessageDecoder, Outcome};
use crate::source::DecodeStats;
use crate::venue::Registry;

/// From this many messages on, a step is split across the workers.
const SPLIT_FROM: usize = 256;

/// A bad message to copy to the dead-letter topic: key, value, why, and where it was.
pub struct DeadLetter {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    /// The message's own headers.
    pub headers: HeaderList,
    pub reject: Reject,
    pub pos: SourcePos,
}

/// What the workers decoded since the last take.
pub struct Decoded {
    /// A batch per worker that decoded any, as it is: copying them into one took about 1 % of
    /// a Kafka ingest's CPU samples, all of it on the loop's thread.
    pub trades: Vec<RecordBatch>,
    pub rejects: RecordBatch,
    pub stats: DecodeStats,
    /// partition -> newest event time of its trades.
    pub max_ts: BTreeMap<i32, i64>,
    pub dead_letters: Vec<DeadLetter>,
}

impl Decoded {
    fn empty() -> Decoded {
        Decoded {
            trades: Vec::new(),
            rejects: RecordBatch::new_empty(rejects_schema()),
            stats: DecodeStats::default(),
            max_ts: BTreeMap::new(),
            dead_letters: Vec::new(),
        }
    }

    fn absorb(&mut self, other: Decoded) -> Result<(), IngestError> {
        fn join(mine: &mut RecordBatch, more: RecordBatch) -> Result<(), IngestError> {
            if more.num_rows() == 0 {
                return Ok(());
            }
            *mine = if mine.num_rows() == 0 {
                more
            } else {
                concat_batches(&mine.schema(), [&*mine, &more])
                    .map_err(|e| IngestError::Internal(format!("joining decoded rows: {e}")))?
            };
            Ok(())
        }
        self.trades.extend(other.trades);
        join(&mut self.rejects, other.rejects)?;
        self.stats.absorb(&other.stats);
        for (partition, ts) in other.max_ts {
            let max = self.max_ts.entry(partition).or_insert(ts);
            *max = (*max).max(ts);
        }
        self.dead_letters.extend(other.dead_letters);
        Ok(())
    }
}

/// A copied message: where its key and value are in the step's buffer.
struct Copied {
    key: Option<Range<usize>>,
    value: Option<Range<usize>>,
    headers: HeaderList,
    partition: i32,
    offset: i64,
}

/// One message of a step.
enum Held {
    /// librdkafka's message, read in place.
    Fetched(Data),
    Copied(Copied),
}

impl Held {
    /// The message's headers, copied.
    fn headers(&self) -> HeaderList {
        match self {
            Held::Fetched(data) => data.headers(),
            Held::Copied(c) => c.headers.clone(),
        }
    }

    fn view<'a>(&'a self, bytes: &'a [u8]) -> Polled<'a> {
        match self {
            Held::Fetched(data) => data.view(),
            Held::Copied(c) => {
                let slice = |range: &Option<Range<usize>>| {
                    range.as_ref().and_then(|r| bytes.get(r.clone()))
                };
                Polled {
                    partition: c.partition,
                    offset: c.offset,
                    payload: slice(&c.value),
                    key: slice(&c.key),
                }
            }
        }
    }
}

/// A step's messages, being gathered.
#[derive(Default)]
struct Step {
    bytes: Vec<u8>,
    messages: Vec<Held>,
}

/// A step, or part of one, handed to a worker.
struct Sent {
    bytes: Arc<Vec<u8>>,
    messages: Vec<Held>,
    rejected_at: i64,
}

enum Command {
    Decode(Sent),
    Take(oneshot::Sender<Decoded>),
    Clear,
}

struct Worker {
    commands: mpsc::Sender<Command>,
    thread: Option<JoinHandle<()>>,
}

/// The workers, and the step being copied.
pub struct DecodePool {
    workers: Vec<Worker>,
    next: usize,
    /// Messages handed out since the last take.
    pending: usize,
    step: Step,
    keep_keys: bool,
}

impl DecodePool {
    /// `keep_keys`: bad messages keep their key and value (for the dead-letter topic).
    pub fn new(
        topic: Arc<str>,
        venues: Arc<Registry>,
        max_bytes: usize,
        keep_keys: bool,
    ) -> Result<DecodePool, IngestError> {
        let count = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 4));
        let mut workers = Vec::with_capacity(count);
        for n in 0..count {
            let (commands, queue) = mpsc::channel();
            let decoder = MessageDecoder::new(venues.clone(), max_bytes);
            let topic = topic.clone();
            let thread = std::thread::Builder::new()
                .name(format!("darkpool-decode-{n}"))
                .spawn(move || work(decoder, topic, keep_keys, queue))
                .map_err(|e| IngestError::Internal(format!("starting a decode thread: {e}")))?;
            workers.push(Worker {
                commands,
                thread: Some(thread),
            });
        }
        Ok(DecodePool {
            workers,
            next: 0,
            pending: 0,
            step: Step::default(),
            keep_keys,
        })
    }

    /// Messages handed out (or copied) since the last take.
    pub fn len(&self) -> usize {
        self.pending + self.step.messages.len()
    }

    /// Add a fetched message to the current step, as it is.
    pub fn hand(&mut self, message: Data) {
        self.step.messages.push(Held::Fetched(message));
    }

    /// Copy a message into the current step (its headers too, for a dead letter, with
    /// `keep_keys`).
    pub fn copy(&mut self, message: Polled<'_>, headers: impl FnOnce() -> HeaderList) {
        let mut copy = |bytes: Option<&[u8]>| {
            bytes.map(|b| {
                let start = self.step.bytes.len();
                self.step.bytes.extend_from_slice(b);
                start..self.step.bytes.len()
            })
        };
        let value = copy(message.payload);
        let key = if self.keep_keys {
            copy(message.key)
        } else {
            None
        };
        let headers = if self.keep_keys {
            headers()
        } else {
            HeaderList::new()
        };
        self.step.messages.push(Held::Copied(Copied {
            key,
            value,
            headers,
            partition: message.partition,
            offset: message.offset,
        }));
    }

    /// Hand the current step to the workers (split across them when large).
    pub fn send(&mut self, rejected_at: i64) -> Result<(), IngestError> {
        if self.step.messages.is_empty() {
            return Ok(());
        }
        // The next step starts with this one's room: steady streams reuse it without growing,
        // a trickle of single messages stays small.
        let next = Step {
            bytes: Vec::with_capacity(self.step.bytes.len()),
            messages: Vec::with_capacity(self.step.messages.len()),
        };
        let Step {
            bytes,
            mut messages,
        } = std::mem::replace(&mut self.step, next);
        self.pending += messages.len();
        let bytes = Arc::new(bytes);
        let parts = if messages.len() < SPLIT_FROM {
            1
        } else {
            self.workers.len()
        };
        let size = messages.len().div_ceil(parts);
        while !messages.is_empty() {
            let rest = messages.split_off(size.min(messages.len()));
            let part = std::mem::replace(&mut messages, rest);
            self.next = (self.next + 1) % self.workers.len();
            self.command(
                self.next,
                Command::Decode(Sent {
                    bytes: bytes.clone(),
                    messages: part,
                    rejected_at,
                }),
            )?;
        }
        Ok(())
    }

    /// Everything decoded since the last take (the current step is sent first).
    pub async fn take(&mut self, rejected_at: i64) -> Result<Decoded, IngestError> {
        self.send(rejected_at)?;
        let mut replies = Vec::with_capacity(self.workers.len());
        for n in 0..self.workers.len() {
            let (reply, answer) = oneshot::channel();
            self.command(n, Command::Take(reply))?;
            replies.push(answer);
        }
        let mut decoded = Decoded::empty();
        for answer in replies {
            let part = answer
                .await
                .map_err(|_| IngestError::Internal("a decode thread stopped".into()))?;
            decoded.absorb(part)?;
        }
        self.pending = 0;
        Ok(decoded)
    }

    /// Forget everything not yet taken (a dropped run).
    pub fn clear(&mut self) -> Result<(), IngestError> {
        self.step = Step::default();
        self.pending = 0;
        for n in 0..self.workers.len() {
            self.command(n, Command::Clear)?;
        }
        Ok(())
    }

    fn command(&self, worker: usize, command: Command) -> Result<(), IngestError> {
        self.workers[worker]
            .commands
            .send(command)
            .map_err(|_| IngestError::Internal("a decode thread stopped".into()))
    }
}

impl Drop for DecodePool {
    fn drop(&mut self) {
        let threads: Vec<_> = self
            .workers
            .drain(..)
            .filter_map(|mut w| w.thread.take())
            .collect();
        for thread in threads {
            let _ = thread.join();
        }
    }
}

/// A worker: decode steps into its own builders until the pool goes.
fn work(
    mut decoder: MessageDecoder,
    topic: Arc<str>,
    keep_keys: bool,
    queue: mpsc::Receiver<Command>,
) {
    let mut max_ts: BTreeMap<i32, i64> = BTreeMap::new();
    let mut dead_letters = Vec::new();
    // One position per worker, its topic a copy of its own: cloning a shared `Arc` per message
    // would bounce its counter between the threads' caches.
    let mut pos = SourcePos {
        topic: Some(Arc::from(&*topic)),
        ..SourcePos::default()
    };
    while let Ok(command) = queue.recv() {
        match command {
            Command::Decode(step) => {
                for held in &step.messages {
                    let message = held.view(&step.bytes);
                    pos.partition = Some(message.partition);
                    pos.offset = Some(message.offset);
                    let value = message.payload;
                    match decoder.push(value, &pos, step.rejected_at) {
                        Outcome::Trade(ts) => {
                            let max = max_ts.entry(message.partition).or_insert(ts);
                            *max = (*max).max(ts);
                        }
                        Outcome::Rejected(reject) if keep_keys => dead_letters.push(DeadLetter {
                            key: message.key.map(<[u8]>::to_vec),
                            value: value.map(<[u8]>::to_vec),
                            headers: held.headers(),
                            reject,
                            pos: pos.clone(),
                        }),
                        Outcome::Rejected(_) => {}
                    }
                }
            }
            Command::Take(reply) => {
                let (trades, rejects) = decoder.take();
                let _ = reply.send(Decoded {
                    trades: (trades.num_rows() > 0)
                        .then_some(trades)
                        .into_iter()
                        .collect(),
                    rejects,
                    stats: decoder.take_stats(),
                    max_ts: std::mem::take(&mut max_ts),
                    dead_letters: std::mem::take(&mut dead_letters),
                });
            }
            Command::Clear => {
                let _ = decoder.take();
                let _ = decoder.take_stats();
                max_ts.clear();
                dead_letters.clear();
            }
        }
    }
}
