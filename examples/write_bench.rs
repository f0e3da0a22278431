//! Lake write throughput, without a broker: the trades of an NDJSON file (one message per line,
//! e.g. `darkpool simulate --count 200000 > trades.ndjson`) decoded as a Kafka decode worker
//! does, in batches of 65,536 (not timed), then written `ROUNDS` times to the `trades` table of
//! a fresh lake in a temporary folder (Parquet encoding, compression, statistics, file sync).
//! Prints ns per trade. A profiling aid for the lake writer's share of `benches/kafka.sh`.
//!
//! cargo run --release --example write_bench -- FILE [ROUNDS]

use std::sync::Arc;
use std::time::Instant;

use darkpool::lake::{Lake, Table, Transaction, WriterOptions};
use darkpool::model::SourcePos;
use darkpool::source::kafka::MessageDecoder;
use darkpool::venue::Registry;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        return Err("usage: write_bench FILE [ROUNDS]".into());
    };
    let rounds: usize = args.get(2).map_or(Ok(5), |r| r.parse())?;
    let text = std::fs::read_to_string(path)?;
    let mut decoder = MessageDecoder::new(Arc::new(Registry::embedded()), 1 << 20);
    let topic: Arc<str> = Arc::from("bench");
    let mut batches = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let pos = SourcePos {
            topic: Some(topic.clone()),
            partition: Some(0),
            offset: Some(n as i64),
            ..SourcePos::default()
        };
        decoder.push(Some(line.as_bytes()), &pos, 0);
        if decoder.len() >= 65_536 {
            batches.push(decoder.take().0);
        }
    }
    batches.push(decoder.take().0);
    let trades: usize = batches.iter().map(|b| b.num_rows()).sum();
    let dir = std::env::temp_dir().join(format!("darkpool-write-bench-{}", std::process::id()));
    let lake = Lake::new(&dir);
    lake.ensure_tables()?;
    let started = Instant::now();
    let mut bytes = 0u64;
    for _ in 0..rounds {
        let mut tx = Transaction::begin(&lake, WriterOptions::default())?;
        for batch in &batches {
            tx.write(Table::Trades, batch)?;
        }
        tx.commit()?;
    }
    let elapsed = started.elapsed();
    for entry in walk(&dir.join("trades")) {
        bytes += entry.metadata()?.len();
    }
    std::fs::remove_dir_all(&dir)?;
    println!(
        "{} trades written in {:.3} s = {:.0} ns/trade, {:.1} bytes/trade on disk",
        rounds * trades,
        elapsed.as_secs_f64(),
        elapsed.as_nanos() as f64 / (rounds * trades) as f64,
        bytes as f64 / (rounds * trades) as f64
    );
    Ok(())
}

/// The files under `dir`, recursively.
fn walk(dir: &std::path::Path) -> Vec<std::fs::DirEntry> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.path().is_dir() {
            files.extend(walk(&entry.path()));
        } else {
            files.push(entry);
        }
    }
    files
}
