//! Decode throughput of one Kafka decode worker, without a broker: the message values of an
//! NDJSON file (one per line, e.g. `darkpool simulate --count 200000 > trades.ndjson`) pushed
//! through `MessageDecoder` (UTF-8 check, JSON scan, validation, Arrow builders) in batches of
//! 65,536, `ROUNDS` times. Prints ns per message. A profiling aid for the decode path that
//! `benches/kafka.sh` measures end to end.
//!
//! cargo run --release --example decode_bench -- FILE [ROUNDS]

use std::sync::Arc;
use std::time::Instant;

use darkpool::model::SourcePos;
use darkpool::source::kafka::{MessageDecoder, Outcome};
use darkpool::venue::Registry;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        return Err("usage: decode_bench FILE [ROUNDS]".into());
    };
    let rounds: usize = args.get(2).map_or(Ok(5), |r| r.parse())?;
    let text = std::fs::read_to_string(path)?;
    let lines: Vec<&[u8]> = text.lines().map(str::as_bytes).collect();
    let mut decoder = MessageDecoder::new(Arc::new(Registry::embedded()), 1 << 20);
    let topic: Arc<str> = Arc::from("bench");
    let (mut trades, mut rejects) = (0usize, 0usize);
    let started = Instant::now();
    for _ in 0..rounds {
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
                trades += decoder.take().0.num_rows();
            }
        }
        trades += decoder.take().0.num_rows();
    }
    let elapsed = started.elapsed();
    let messages = rounds * lines.len();
    println!(
        "{messages} messages ({trades} trades, {rejects} rejects) in {:.3} s = {:.0} ns/message",
        elapsed.as_secs_f64(),
        elapsed.as_nanos() as f64 / messages as f64
    );
    Ok(())
}
