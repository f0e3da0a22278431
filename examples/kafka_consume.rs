//! The benchmark's peer: a bare rdkafka consumer that reads a topic from the start to the end
//! offsets seen when it starts, touching every payload, and prints messages/s. What
//! `darkpool ingest --brokers --until-end` adds on top (decode, windows, Parquet, the output
//! topic, commits) is measured against this.
//!
//! cargo run --release --example kafka_consume -- BROKERS TOPIC
//!
//! With `--follow` it reads from the topic's end on, until it is killed: the peer of a live
//! aggregator in `benches/kafka_live.sh`, which measures its CPU from outside. With `--print`
//! it also writes every message's value as a line to stdout (the summary then goes to stderr):
//! `tests/chaos.sh` reads the window topic with it.

// The same allocator as darkpool (src/memory.rs), also behind librdkafka's malloc: like with
// like, as for the fetch settings below. It makes this consumer about 20 % faster than with
// glibc's malloc (librdkafka allocates per message).
#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::io::Write;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(brokers), Some(topic)) = (args.get(1), args.get(2)) else {
        return Err("usage: kafka_consume BROKERS TOPIC [--follow | --print]".into());
    };
    let follow = args.get(3).is_some_and(|a| a == "--follow");
    let print = args.get(3).is_some_and(|a| a == "--print");
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let group = format!("bare-{}", std::process::id());
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", &group)
        .set(
            "auto.offset.reset",
            if follow { "latest" } else { "earliest" },
        )
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("session.timeout.ms", "2000")
        .set("heartbeat.interval.ms", "500")
        // The same fetch back-off and long-poll wait as darkpool's consumer, so the ratio
        // compares like with like.
        .set("fetch.queue.backoff.ms", "50")
        .set("fetch.wait.max.ms", "100")
        .create()?;
    let started = Instant::now();
    consumer.subscribe(&[topic.as_str()])?;
    let partitions = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))?
        .topics()
        .first()
        .map_or(0, |t| t.partitions().len());
    let (mut messages, mut bytes, mut checksum) = (0u64, 0u64, 0u64);
    let mut at_end = std::collections::BTreeSet::new();
    let mut first_message = None;
    while follow || at_end.len() < partitions {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                let payload = m.payload().unwrap_or_default();
                first_message.get_or_insert_with(|| started.elapsed());
                messages += 1;
                bytes += payload.len() as u64;
                checksum = checksum.wrapping_add(payload.iter().map(|b| *b as u64).sum::<u64>());
                at_end.remove(&m.partition());
                if print {
                    out.write_all(payload)?;
                    out.write_all(b"\n")?;
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => eprintln!("kafka: {e}"),
            None => {}
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let first = first_message.unwrap_or_default().as_secs_f64();
    // As darkpool's summary: the rate from the first message, the start (group join) left out.
    out.flush()?;
    let summary = format!(
        "bare rdkafka consume: {messages} messages, {:.1} MB in {secs:.2} s = {:.0} msg/s \
         (first message after {first:.2} s, {:.0} msg/s from it; checksum {checksum})",
        bytes as f64 / 1e6,
        messages as f64 / secs,
        messages as f64 / (secs - first).max(1e-9)
    );
    if print {
        eprintln!("{summary}");
    } else {
        println!("{summary}");
    }
    Ok(())
}
