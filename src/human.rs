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
