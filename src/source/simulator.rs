//! A deterministic trade generator in the original producer's message shape.
//!
//! Same seed and flags => byte-identical output. The stream has an intraday volume curve
//! (U-shaped over a 6.5 h session, weekdays only), a per-symbol price random walk, lit venues
//! printing many small trades and dark pools fewer, larger ones (with block prints), TRF/OTC
//! prints, buy/sell, a small share of spoof flags, algo fingerprints and order types, and a few
//! percent of trades arriving out of order (bounded delay; a few beyond the default lateness).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Write};
use std::time::{Duration, Instant};

use crate::source::csv::ORIGINAL_HEADER;
use crate::time::{self, MICROS_PER_DAY, MICROS_PER_SECOND};
use crate::venue::{Registry, VenueKind};

/// Output shape of `simulate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SimFormat {
    /// One JSON object per line, as the original Kafka producer sent.
    Ndjson,
    /// The original CSV columns.
    Csv,
}

/// Where event time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// A synthetic market clock starting at this instant (µs); the session opens at its time
    /// of day each weekday.
    Market(i64),
    /// Wall-clock time at emission (for live runs).
    Now,
}

/// Everything that determines the generated stream.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    pub clock: Clock,
    pub symbols: Vec<String>,
    /// Average trades per second of market time (synthetic clock only).
    pub market_rate: f64,
}

/// The default symbols, with a starting price and a relative activity.
pub const DEFAULT_SYMBOLS: [(&str, f64, f64); 8] = [
    ("SYNTH_SPY", 475.0, 3.0),
    ("SYNTH_AMZN", 152.0, 1.5),
    ("SYNTH_TSLA", 248.0, 2.0),
    ("SYNTH_AAPL", 192.0, 1.8),
    ("SYNTH_NVDA", 495.0, 1.6),
    ("SYNTH_MSFT", 376.0, 1.2),
    ("SYNTH_META", 353.0, 0.8),
    ("SYNTH_QQQ", 409.0, 1.0),
];

/// SplitMix64: small, fast, and stable forever (the output must not change with a crate bump).
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(1e-300);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    fn exponential(&mut self) -> f64 {
        -(1.0 - self.unit()).ln()
    }

    fn pick(&mut self, cumulative: &[f64]) -> usize {
        let total = cumulative.last().copied().unwrap_or(0.0);
        let x = self.unit() * total;
        cumulative
            .partition_point(|&c| c <= x)
            .min(cumulative.len().saturating_sub(1))
    }
}

fn cumulative(weights: impl Iterator<Item = f64>) -> Vec<f64> {
    weights
        .scan(0.0, |acc, w| {
            *acc += w;
            Some(*acc)
        })
        .collect()
}

#[derive(Debug, Clone)]
struct SimVenue {
    code: String,
    kind: VenueKind,
    latitude: f64,
    longitude: f64,
}

/// Relative share of prints by venue; codes not listed get 1.0 within their kind.
fn venue_weight(code: &str, kind: VenueKind) -> f64 {
    let kind_share = match kind {
        VenueKind::Lit => 0.60,
        VenueKind::Dark => 0.11,
        VenueKind::Otc => 0.29,
        VenueKind::Unknown => 0.0,
    };
    let emphasis = match code {
        "LIT" | "DARK1" | "DARK2" | "FINN" => 4.0,
        "XNAS" | "XNYS" => 3.0,
        "ARCX" | "BATS" | "EDGX" | "MEMX" | "UBSA" | "INCR" | "FINY" => 2.0,
        _ => 1.0,
    };
    kind_share * emphasis
}

/// One generated trade.
#[derive(Debug, Clone, PartialEq)]
pub struct SimTrade {
    pub timestamp: i64,
    pub symbol: usize,
    pub price: f64,
    pub quantity: i64,
    pub venue: usize,
    pub is_spoof: bool,
    pub algo: u8,
    pub order_type: &'static str,
    pub order_id: u64,
    pub buy: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct Delayed {
    release: i64,
    seq: u64,
    trade: SimTrade,
}

impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Delayed {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.release, self.seq).cmp(&(other.release, other.seq))
    }
}

/// Session length: 09:30-16:00.
const SESSION_MICROS: i64 = 23_400 * MICROS_PER_SECOND;

/// The generator. An endless iterator of trades in arrival order.
pub struct Simulator {
    rng: Rng,
    clock: Clock,
    symbols: Vec<String>,
    prices: Vec<f64>,
    symbol_cdf: Vec<f64>,
    venues: Vec<SimVenue>,
    venue_cdf: Vec<f64>,
    market_rate: f64,
    /// Market clock (µs) of the last generated trade.
    now: i64,
    session_open: i64,
    next_order: u64,
    delayed: BinaryHeap<Reverse<Delayed>>,
    seq: u64,
}

fn is_weekend(micros: i64) -> bool {
    // 1970-01-01 was a Thursday.
    let weekday = (micros.div_euclid(MICROS_PER_DAY) + 3).rem_euclid(7); // 0 = Monday
    weekday >= 5
}

impl Simulator {
    pub fn new(config: &SimConfig, registry: &Registry) -> Simulator {
        let venues: Vec<SimVenue> = registry
            .venues()
            .iter()
            .map(|v| SimVenue {
                code: v.code.clone(),
                kind: v.kind,
                latitude: v.latitude,
                longitude: v.longitude,
            })
            .collect();
        let venue_cdf = cumulative(venues.iter().map(|v| venue_weight(&v.code, v.kind)));
        let known = |name: &str| DEFAULT_SYMBOLS.iter().find(|(s, _, _)| *s == name);
        let prices = config
            .symbols
            .iter()
            .map(|s| known(s).map_or(100.0, |k| k.1))
            .collect();
        let symbol_cdf = cumulative(config.symbols.iter().map(|s| known(s).map_or(1.0, |k| k.2)));
        let start = match config.clock {
            Clock::Market(t) => t,
            Clock::Now => 0,
        };
        Simulator {
            rng: Rng(config.seed ^ 0xDA2C_9001),
            clock: config.clock,
            symbols: config.symbols.clone(),
            prices,
            symbol_cdf,
            venues,
            venue_cdf,
            market_rate: config.market_rate.max(1e-6),
            now: start,
            session_open: start,
            next_order: 1,
            delayed: BinaryHeap::new(),
            seq: 0,
        }
    }

    pub fn symbol(&self, index: usize) -> &str {
        &self.symbols[index]
    }

    fn venue(&self, index: usize) -> &SimVenue {
        &self.venues[index]
    }

    /// Advance the market clock by one inter-arrival time, following the intraday curve and
    /// skipping nights and weekends.
    fn advance_market_clock(&mut self) -> i64 {
        let into_session = (self.now - self.session_open) as f64 / SESSION_MICROS as f64;
        let u = into_session.clamp(0.0, 1.0);
        // U-shaped: busy at the open and the close, quiet at lunch (mean 1).
        let curve = (0.6 + 1.8 * (2.0 * u - 1.0).powi(2)) / 1.2;
        let gap = self.rng.exponential() / (self.market_rate * curve);
        self.now += (gap * MICROS_PER_SECOND as f64).max(1.0) as i64;
        if self.now >= self.session_open + SESSION_MICROS {
            loop {
                self.session_open += MICROS_PER_DAY;
                if !is_weekend(self.session_open) {
                    break;
                }
            }
            self.now = self.session_open;
        }
        self.now
    }

    fn wall_clock() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64)
    }

    fn generate(&mut self) -> SimTrade {
        let timestamp = match self.clock {
            Clock::Market(_) => self.advance_market_clock(),
            Clock::Now => Self::wall_clock(),
        };
        let symbol = self.rng.pick(&self.symbol_cdf);
        let venue = self.rng.pick(&self.venue_cdf);
        let kind = self.venues[venue].kind;
        let step = self.rng.normal() * 0.00003;
        let mid = (self.prices[symbol] * (1.0 + step)).max(0.05);
        self.prices[symbol] = mid;
        let (price, quantity) = match kind {
            VenueKind::Dark => {
                // Midpoint prints at half-cents; fewer, larger orders, and rare blocks.
                let price = (mid * 200.0).round() / 200.0;
                let qty = if self.rng.unit() < 0.002 {
                    10_000 + (self.rng.unit() * 40_000.0) as i64
                } else {
                    (((5.3 + 0.8 * self.rng.normal()).exp() / 100.0).round() as i64).max(1) * 100
                };
                (price, qty)
            }
            VenueKind::Otc => {
                let price = ((mid + if self.rng.unit() < 0.5 { -0.01 } else { 0.01 }) * 100.0)
                    .round()
                    / 100.0;
                let qty = ((4.3 + 1.1 * self.rng.normal()).exp().round() as i64).max(1);
                (price, qty)
            }
            VenueKind::Lit | VenueKind::Unknown => {
                let price = ((mid + if self.rng.unit() < 0.5 { -0.005 } else { 0.005 }) * 100.0)
                    .round()
                    / 100.0;
                let qty = if self.rng.unit() < 0.3 {
                    1 + (self.rng.unit() * 99.0) as i64
                } else {
                    ((0.5 * self.rng.normal()).exp().round() as i64).max(1) * 100
                };
                (price, qty)
            }
        };
        let order_type = match (kind, self.rng.unit()) {
            (VenueKind::Dark, x) if x < 0.5 => "MIDPOINT_PEG",
            (VenueKind::Dark, x) if x < 0.9 => "LIMIT",
            (VenueKind::Dark, _) => "IOC",
            (VenueKind::Otc, x) if x < 0.6 => "MARKET",
            (VenueKind::Otc, _) => "LIMIT",
            (_, x) if x < 0.7 => "LIMIT",
            (_, x) if x < 0.9 => "MARKET",
            _ => "IOC",
        };
        let spoof_rate = if kind == VenueKind::Lit { 0.008 } else { 0.001 };
        let order_id = self.next_order;
        self.next_order += 1;
        SimTrade {
            timestamp,
            symbol,
            price: price.max(0.01),
            quantity,
            venue,
            is_spoof: self.rng.unit() < spoof_rate,
            algo: 1 + (self.rng.unit().powi(2) * 9.0) as u8,
            order_type,
            order_id,
            buy: self.rng.unit() < 0.5 + step.signum() * 0.05,
        }
    }

    /// Delay a few percent of trades (bounded): most by under 20 s, a few by minutes so that
    /// they arrive after their window closed.
    fn delay_for(&mut self) -> Option<i64> {
        let x = self.rng.unit();
        if x < 0.003 {
            Some(((30.0 + self.rng.unit() * 450.0) * MICROS_PER_SECOND as f64) as i64)
        } else if x < 0.03 {
            Some(((0.5 + self.rng.unit() * 19.5) * MICROS_PER_SECOND as f64) as i64)
        } else {
            None
        }
    }
}

impl Iterator for Simulator {
    type Item = SimTrade;

    fn next(&mut self) -> Option<SimTrade> {
        loop {
            if let Some(Reverse(first)) = self.delayed.peek() {
                if first.release <= self.now {
                    return self.delayed.pop().map(|Reverse(d)| d.trade);
                }
            }
            let trade = self.generate();
            if self.clock == Clock::Now {
                return Some(trade);
            }
            match self.delay_for() {
                None => return Some(trade),
                Some(delay) => {
                    self.seq += 1;
                    self.delayed.push(Reverse(Delayed {
                        release: trade.timestamp + delay,
                        seq: self.seq,
                        trade,
                    }));
                }
            }
        }
    }
}

/// Writes trades in the original shapes.
pub struct TradeWriter {
    format: SimFormat,
    line: String,
}

impl TradeWriter {
    pub fn new(format: SimFormat) -> Self {
        TradeWriter {
            format,
            line: String::with_capacity(512),
        }
    }

    pub fn header(&self) -> Option<&'static str> {
        match self.format {
            SimFormat::Csv => Some(ORIGINAL_HEADER),
            SimFormat::Ndjson => None,
        }
    }

    /// The trade as one line (with `\n`).
    pub fn format(&mut self, sim: &Simulator, t: &SimTrade) -> &str {
        use std::fmt::Write as _;
        let line = &mut self.line;
        line.clear();
        let venue = sim.venue(t.venue);
        let side = if t.buy { "BUY" } else { "SELL" };
        let spoof = u8::from(t.is_spoof);
        match self.format {
            SimFormat::Ndjson => {
                line.push_str("{\"timestamp\":\"");
                time::format_iso_micros(t.timestamp, line);
                let _ = write!(
                    line,
                    "\",\"symbol\":\"{}\",\"price\":{},\"quantity\":{},\"venue\":\"{}\",\"is_spoof\":{spoof},\"algo_fingerprint\":\"A{}\",\"order_type\":\"{}\",\"order_id\":\"o{}\",\"side\":\"{side}\",\"trade_value\":{},\"latitude\":{},\"longitude\":{}}}",
                    sim.symbol(t.symbol),
                    t.price,
                    t.quantity,
                    venue.code,
                    t.algo,
                    t.order_type,
                    t.order_id,
                    crate::source::decode::round_cents(t.price * t.quantity as f64),
                    venue.latitude,
                    venue.longitude,
                );
            }
            SimFormat::Csv => {
                time::format_iso_micros(t.timestamp, line);
                let _ = write!(
                    line,
                    ",{},{},{},{},{spoof},A{},{},o{},{side}",
                    sim.symbol(t.symbol),
                    t.price,
                    t.quantity,
                    venue.code,
                    t.algo,
                    t.order_type,
                    t.order_id,
                );
            }
        }
        line.push('\n');
        line
    }
}

/// Write `count` trades (or forever when `None`) to `out`, paced at `rate` trades per second
/// of wall-clock time (0 = as fast as possible). Returns the number written.
pub fn write_trades(
    config: &SimConfig,
    registry: &Registry,
    format: SimFormat,
    count: Option<u64>,
    rate: f64,
    out: &mut dyn Write,
) -> io::Result<u64> {
    if let Some(header) = TradeWriter::new(format).header() {
        writeln!(out, "{header}")?;
    }
    let written = each_trade(
        config,
        registry,
        format,
        count,
        rate,
        &mut |step| match step {
            Step::Trade { line, .. } => out.write_all(line.as_bytes()),
            Step::Pause => out.flush(),
        },
    )?;
    out.flush()?;
    Ok(written)
}

/// What [`each_trade`] hands on.
pub enum Step<'a> {
    /// One trade: its symbol and its line (with `\n`).
    Trade { symbol: &'a str, line: &'a str },
    /// The pacing is about to sleep: a chance to flush.
    Pause,
}

/// Generate `count` trades (or forever) paced at `rate` per wall-clock second (0 = as fast as
/// possible), handing each to `each`. Returns the number generated.
pub fn each_trade(
    config: &SimConfig,
    registry: &Registry,
    format: SimFormat,
    count: Option<u64>,
    rate: f64,
    each: &mut dyn FnMut(Step<'_>) -> io::Result<()>,
) -> io::Result<u64> {
    let mut sim = Simulator::new(config, registry);
    let mut writer = TradeWriter::new(format);
    let mut pacer = Pacer::new(rate);
    let mut written = 0u64;
    let limit = count.unwrap_or(u64::MAX);
    while written < limit {
        let Some(trade) = sim.next() else { break };
        let line = writer.format(&sim, &trade);
        each(Step::Trade {
            symbol: sim.symbol(trade.symbol),
            line,
        })?;
        written += 1;
        if let Some(wait) = pacer.sent_one() {
            each(Step::Pause)?;
            std::thread::sleep(wait);
        }
    }
    Ok(written)
}

/// Paces a stream at `rate` items per wall-clock second from its creation (0: as fast as
/// possible), on the whole count rather than item by item, so sleeps too long or too short
/// even out.
pub struct Pacer {
    rate: f64,
    started: Instant,
    sent: u64,
}

impl Pacer {
    pub fn new(rate: f64) -> Pacer {
        Pacer {
            rate,
            started: Instant::now(),
            sent: 0,
        }
    }

    /// One more item went out: how long to wait before the next one (`None`: no wait).
    pub fn sent_one(&mut self) -> Option<Duration> {
        self.sent += 1;
        if self.rate <= 0.0 {
            return None;
        }
        let due = Duration::from_secs_f64(self.sent as f64 / self.rate);
        due.checked_sub(self.started.elapsed())
            .filter(|wait| !wait.is_zero())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(seed: u64) -> SimConfig {
        SimConfig {
            seed,
            clock: Clock::Market(time::parse_timestamp("2024-01-01T09:30:00Z").unwrap()),
            symbols: DEFAULT_SYMBOLS.iter().map(|s| s.0.to_string()).collect(),
            market_rate: 50.0,
        }
    }

    fn generate(seed: u64, n: u64, format: SimFormat) -> Vec<u8> {
        let mut out = Vec::new();
        write_trades(
            &config(seed),
            &Registry::embedded(),
            format,
            Some(n),
            0.0,
            &mut out,
        )
        .unwrap();
        out
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        assert_eq!(
            generate(7, 2000, SimFormat::Ndjson),
            generate(7, 2000, SimFormat::Ndjson)
        );
        assert_ne!(
            generate(7, 2000, SimFormat::Ndjson),
            generate(8, 2000, SimFormat::Ndjson)
        );
    }

    /// Every simulated message takes the decoder's typed path (the one `decode_bench` and
    /// the Kafka benchmark time), not the general one.
    #[test]
    fn simulated_messages_take_the_typed_path() {
        let out = generate(3, 5000, SimFormat::Ndjson);
        let mut order = crate::source::decode::KeyOrder::default();
        for line in std::str::from_utf8(&out).unwrap().lines() {
            assert!(
                crate::source::decode::typed_trade(line, &mut order).is_some(),
                "{line}"
            );
        }
    }

    #[test]
    fn writes_exactly_count_trades_some_out_of_order() {
        let out = generate(1, 5000, SimFormat::Ndjson);
        let lines: Vec<&str> = std::str::from_utf8(&out).unwrap().lines().collect();
        assert_eq!(lines.len(), 5000);
        let times: Vec<i64> = lines
            .iter()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                time::parse_timestamp(v["timestamp"].as_str().unwrap()).unwrap()
            })
            .collect();
        let out_of_order = times.windows(2).filter(|w| w[1] < w[0]).count();
        assert!(
            (25..=400).contains(&out_of_order),
            "{out_of_order} out of order"
        );
        let csv = generate(1, 10, SimFormat::Csv);
        let text = String::from_utf8(csv).unwrap();
        assert!(text.starts_with(ORIGINAL_HEADER));
        assert_eq!(text.lines().count(), 11);
    }

    #[test]
    fn dark_prints_are_larger_than_lit_prints() {
        let registry = Registry::embedded();
        let mut sim = Simulator::new(&config(3), &registry);
        let (mut dark, mut lit) = ((0i64, 0i64), (0i64, 0i64));
        for t in sim.by_ref().take(20_000) {
            let acc = match registry.venues()[t.venue].kind {
                VenueKind::Dark => &mut dark,
                VenueKind::Lit => &mut lit,
                _ => continue,
            };
            acc.0 += t.quantity;
            acc.1 += 1;
        }
        assert!(
            dark.0 / dark.1 > 2 * (lit.0 / lit.1),
            "dark {dark:?} lit {lit:?}"
        );
    }
}
