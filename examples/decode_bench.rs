//! Decode throughput of one Kafka decode worker, without a broker: the message values of an
//! NDJSON file (one per line, e.g. `darkpool simulate --count 200000 > trades.ndjson`) pushed
//! through `MessageDecoder` (UTF-8 check, JSON scan, validation, Arrow builders) in batches of
//! 65,536, `ROUNDS` times. Prints ns per message. A profiling aid for the decode path that
//! `benches/kafka.sh` measures end to end.
//!
//! With `--write`, the first round's batches are then written `ROUNDS` times to the `trades`
//! table of a fresh lake in a temporary folder (Parquet encoding, compression, statistics, file
//! sync), and it prints the writer's ns per trade and bytes on disk: the lake writer's share.
//!
//! cargo run --release --example decode_bench -- FILE [ROUNDS] [--write]

use std::sync::Arc;
use std::time::Instant;

use darkpool::lake::{Lake, Table, Transaction, WriterOptions};
use darkpool::model::SourcePos;
use darkpool::source::kafka::{MessageDecoder, Outcome};
use darkpool::venue::Registry;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        return Err("usage: decode_bench FILE [ROUNDS] [--write]".into());
    };
    let rounds: usize = args.get(2).map_or(Ok(5), |r| r.parse())?;
    let write = args.get(3).is_some_and(|a| a == "--write");
    let text = std::fs::read_to_string(path)?;
    let lines: Vec<&[u8]> = text.lines().map(str::as_bytes).collect();
    let mut decoder = MessageDecoder::new(Arc::new(Registry::embedded()), 1 << 20);
    let topic: Arc<str> = Arc::from("bench");
    let (mut trades, mut rejects) = (0usize, 0usize);
    // The first round's batches, kept for `--write`.
    let mut batches = Vec::new();
    let mut take = |decoder: &mut MessageDecoder, round: usize| {
        let batch = decoder.take().0;
        trades += batch.num_rows();
        if write && round == 0 {
            batches.push(batch);
        }
    };
    let started = Instant::now();
    for round in 0..rounds {
        for (n, line) in lines.iter().enumerate() {
            let pos = SourcePos {
                topic: Some(topic.clone()),
                partition: Some(0),
                offset: Some(n as i64),
                ..SourcePos::default()
            };
            match decoder.push(Some(line), &pos, 0) {
                Outcome::Trade(_) => {}
                Outcome::Rejected(_) => rejects += 1,
            }
            if decoder.len() >= 65_536 {
                take(&mut decoder, round);
            }
        }
        take(&mut decoder, round);
    }
    let elapsed = started.elapsed();
    let messages = rounds * lines.len();
    println!(
        "{messages} messages ({trades} trades, {rejects} rejects) in {:.3} s = {:.0} ns/message",
        elapsed.as_secs_f64(),
        elapsed.as_nanos() as f64 / messages as f64
    );
    if write {
        write_rounds(&batches, rounds)?;
    }
    Ok(())
}

/// `batches` written `rounds` times to a fresh lake's `trades` table; prints ns a trade.
fn write_rounds(
    batches: &[arrow::array::RecordBatch],
    rounds: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let trades: usize = batches.iter().map(|b| b.num_rows()).sum::<usize>() * rounds;
    let dir = std::env::temp_dir().join(format!("darkpool-decode-bench-{}", std::process::id()));
    let lake = Lake::new(&dir);
    lake.ensure_tables()?;
    let started = Instant::now();
    for _ in 0..rounds {
        let mut tx = Transaction::begin(&lake, WriterOptions::default())?;
        for batch in batches {
            tx.write(Table::Trades, batch)?;
        }
        tx.commit()?;
    }
    let elapsed = started.elapsed();
    let bytes: u64 = files(&dir.join("trades"))
        .iter()
        .map(|f| f.metadata().map_or(0, |m| m.len()))
        .sum();
    std::fs::remove_dir_all(&dir)?;
    println!(
        "{trades} trades written in {:.3} s = {:.0} ns/trade, {:.1} bytes/trade on disk",
        elapsed.as_secs_f64(),
        elapsed.as_nanos() as f64 / trades as f64,
        bytes as f64 / trades as f64
    );
    Ok(())
}

/// The files under `dir`, recursively.
fn files(dir: &std::path::Path) -> Vec<std::fs::DirEntry> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.path().is_dir() {
            found.extend(files(&entry.path()));
        } else {
            found.push(entry);
        }
    }
    found
}
