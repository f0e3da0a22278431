//! Numbers and spans as the status lines and summaries print them.

use std::time::Duration;

/// `n` over `span`, a second's worth (0 over no time).
pub fn per_second(n: u64, span: Duration) -> u64 {
    let seconds = span.as_secs_f64();
    if seconds > 0.0 {
        (n as f64 / seconds).round() as u64
    } else {
        0
    }
}

/// A span of a status line: `60s`, or `0.5s` under ten seconds.
pub fn seconds(span: Duration) -> String {
    let s = span.as_secs_f64();
    if s < 10.0 {
        format!("{s:.1}s")
    } else {
        format!("{s:.0}s")
    }
}

/// Thousands separators: 1234567 -> 1,234,567.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// An event time to the whole second, UTC: `2024-01-01T09:30:15Z` (enough to see a watermark
/// move).
pub fn utc_second(micros: i64) -> String {
    let mut at = String::new();
    crate::time::format_iso_micros(micros, &mut at);
    at.truncate(19);
    at + "Z"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_and_spans_and_rates_rounded() {
        let cases = [
            (0, "0"),
            (999, "999"),
            (1_000, "1,000"),
            (1_234_567, "1,234,567"),
        ];
        for (n, text) in cases {
            assert_eq!(grouped(n), text);
        }
        assert_eq!(grouped(u64::MAX), "18,446,744,073,709,551,615");
        assert_eq!(seconds(Duration::from_millis(500)), "0.5s");
        assert_eq!(seconds(Duration::from_millis(9_960)), "10.0s");
        assert_eq!(seconds(Duration::from_millis(59_600)), "60s");
        assert_eq!(per_second(1_000, Duration::from_secs(2)), 500);
        assert_eq!(per_second(1_000, Duration::ZERO), 0);
        assert_eq!(utc_second(1_704_101_415_250_000), "2024-01-01T09:30:15Z");
        assert_eq!(utc_second(-1), "1969-12-31T23:59:59Z");
    }
}
