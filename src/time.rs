//! Event time: parsing the timestamp forms trades arrive in, formatting them back, and durations.
//!
//! All time inside darkpool is UTC with microsecond precision, held as `i64` microseconds since
//! the Unix epoch.

use std::fmt::Write as _;

pub const MICROS_PER_SECOND: i64 = 1_000_000;
pub const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;

/// Earliest and latest accepted event times (years 1900..=2199): anything outside is a typo or a
/// unit mistake (seconds vs milliseconds), not a trade.
const MIN_MICROS: i64 = -2_208_988_800 * MICROS_PER_SECOND;
const MAX_MICROS: i64 = 7_258_118_400 * MICROS_PER_SECOND;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of a day number since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Why a timestamp text was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error("expected ISO-8601 like 2024-01-01T11:50:03.120000[Z|+HH:MM] or epoch milliseconds")]
    Syntax,
    #[error("date or time out of range")]
    Range,
    #[error("outside the accepted years 1900..=2199")]
    Era,
    #[error("as epoch milliseconds this is before 1973-03-03: epoch seconds? (send milliseconds)")]
    Seconds,
    #[error(
        "as epoch milliseconds this is past 2199: epoch micro- or nanoseconds? (send milliseconds)"
    )]
    FinerUnit,
}

/// Epoch milliseconds below this (1973-03-03T09:46:40Z) are taken for a unit mistake: epoch
/// seconds of any date since 1970 fall below it, while no electronic trade print does.
const MIN_EPOCH_MILLIS: i64 = 100_000_000_000;

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn digits(&mut self, n: usize) -> Result<u32, TimestampError> {
        let end = self.pos + n;
        let slice = self
            .bytes
            .get(self.pos..end)
            .ok_or(TimestampError::Syntax)?;
        let mut value = 0u32;
        for &b in slice {
            if !b.is_ascii_digit() {
                return Err(TimestampError::Syntax);
            }
            value = value * 10 + u32::from(b - b'0');
        }
        self.pos = end;
        Ok(value)
    }

    fn eat(&mut self, expected: u8) -> bool {
        if self.bytes.get(self.pos) == Some(&expected) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }
}

/// Parse an ISO-8601 timestamp (`T` or space separator, optional seconds and fraction, optional
/// `Z` or `±HH:MM` offset; no offset means UTC) or an all-digit epoch-milliseconds text into
/// microseconds since the epoch.
pub fn parse_timestamp(text: &str) -> Result<i64, TimestampError> {
    match producer_form(text.as_bytes()) {
        Some(parts) => parts.micros(),
        None => parse_any_form(text),
    }
}

/// [`parse_timestamp`] for every accepted form.
fn parse_any_form(text: &str) -> Result<i64, TimestampError> {
    let text = text.trim();
    let bytes = text.as_bytes();
    if !bytes.is_empty() && bytes.iter().all(u8::is_ascii_digit) {
        let millis: i64 = text.parse().map_err(|_| TimestampError::FinerUnit)?;
        return epoch_millis_to_micros(millis);
    }
    let mut c = Cursor { bytes, pos: 0 };
    let year = i64::from(c.digits(4)?);
    if !c.eat(b'-') {
        return Err(TimestampError::Syntax);
    }
    let month = c.digits(2)?;
    if !c.eat(b'-') {
        return Err(TimestampError::Syntax);
    }
    let day = c.digits(2)?;
    if !(c.eat(b'T') || c.eat(b't') || c.eat(b' ')) {
        return Err(TimestampError::Syntax);
    }
    let hour = c.digits(2)?;
    if !c.eat(b':') {
        return Err(TimestampError::Syntax);
    }
    let minute = c.digits(2)?;
    let mut second = 0;
    let mut micros = 0i64;
    if c.eat(b':') {
        second = c.digits(2)?;
        if c.eat(b'.') || c.eat(b',') {
            let mut scale = 100_000i64;
            let mut count = 0;
            while let Some(b) = c.peek().filter(u8::is_ascii_digit) {
                micros += i64::from(b - b'0') * scale;
                scale /= 10;
                c.pos += 1;
                count += 1;
            }
            if count == 0 || count > 9 {
                return Err(TimestampError::Syntax);
            }
        }
    }
    let offset_seconds: i64 = match c.peek() {
        None => 0,
        Some(b'Z' | b'z') => {
            c.pos += 1;
            0
        }
        Some(sign @ (b'+' | b'-')) => {
            c.pos += 1;
            let oh = i64::from(c.digits(2)?);
            c.eat(b':');
            let om = if c.peek().is_some() {
                i64::from(c.digits(2)?)
            } else {
                0
            };
            if oh > 23 || om > 59 {
                return Err(TimestampError::Range);
            }
            let magnitude = oh * 3600 + om * 60;
            if sign == b'+' {
                magnitude
            } else {
                -magnitude
            }
        }
        Some(_) => return Err(TimestampError::Syntax),
    };
    if c.pos != bytes.len() {
        return Err(TimestampError::Syntax);
    }
    Parts {
        year,
        month,
        day,
        hour,
        minute,
        second,
        micros,
        offset_seconds,
    }
    .micros()
}

/// A timestamp's fields as written, before their ranges are checked.
struct Parts {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    micros: i64,
    offset_seconds: i64,
}

impl Parts {
    /// Microseconds since the epoch, when every field is in its range.
    fn micros(&self) -> Result<i64, TimestampError> {
        let (year, month, day) = (self.year, self.month, self.day);
        if !(1..=12).contains(&month)
            || day == 0
            || day > days_in_month(year, month)
            || self.hour > 23
            || self.minute > 59
            || self.second > 60
        {
            return Err(TimestampError::Range);
        }
        let days = days_from_civil(year, month, day);
        let seconds = days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
            - self.offset_seconds;
        check_era(seconds * MICROS_PER_SECOND + self.micros)
    }
}

/// The form the original producer writes (Python's `datetime.isoformat()` with microseconds,
/// `2024-01-01T09:30:00.010597`), read in a few word operations: the general parser's fields
/// for exactly that form, `None` for any other.
fn producer_form(bytes: &[u8]) -> Option<Parts> {
    const FORM: &[u8; 26] = b"0000-00-00T00:00:00.000000";
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_le_bytes([0x80; 8]);
    let bytes: &[u8; 26] = bytes.try_into().ok()?;
    // Each byte XOR the form's: a digit's value where the form has a digit, zero where the
    // form's separator is matched. Both are at most 9; anything else is not this form.
    let mut d = [0u8; 32];
    for (i, (b, f)) in bytes.iter().zip(FORM).enumerate() {
        d[i] = b ^ f;
    }
    // The separators' bytes of each word of `d`.
    const SEPARATORS: [u64; 4] = {
        let mut masks = [0u64; 4];
        let mut i = 0;
        while i < FORM.len() {
            if !FORM[i].is_ascii_digit() {
                masks[i / 8] |= 0xFF << (8 * (i % 8));
            }
            i += 1;
        }
        masks
    };
    let mut over_nine = 0u64;
    let mut separators = 0u64;
    for (word, mask) in d.chunks_exact(8).zip(SEPARATORS) {
        let word = u64::from_le_bytes(word.try_into().ok()?);
        over_nine |= (word | word.wrapping_add(0x76 * ONES)) & HIGH;
        separators |= word & mask;
    }
    if over_nine | separators != 0 {
        return None;
    }
    let number = |range: std::ops::Range<usize>| {
        d[range]
            .iter()
            .fold(0u32, |v, &digit| v * 10 + u32::from(digit))
    };
    Some(Parts {
        year: i64::from(number(0..4)),
        month: number(5..7),
        day: number(8..10),
        hour: number(11..13),
        minute: number(14..16),
        second: number(17..19),
        micros: i64::from(number(20..26)),
        offset_seconds: 0,
    })
}

/// Epoch milliseconds (the other accepted timestamp form) to microseconds. A number far below
/// or above the accepted span is refused as the unit mistake it most likely is (seconds read as
/// milliseconds would land in January 1970, and be accepted).
pub fn epoch_millis_to_micros(millis: i64) -> Result<i64, TimestampError> {
    // Exact: every accepted count of microseconds is below 2^53.
    epoch_millis_f64_to_micros(millis as f64)
}

/// Epoch milliseconds as a JSON float (Python's `time.time() * 1000`): the fraction is kept to
/// the microsecond.
pub fn epoch_millis_f64_to_micros(millis: f64) -> Result<i64, TimestampError> {
    if millis.is_nan() {
        return Err(TimestampError::Syntax);
    }
    if millis < MIN_EPOCH_MILLIS as f64 {
        return Err(TimestampError::Seconds);
    }
    if millis >= MAX_MICROS as f64 / 1000.0 {
        return Err(TimestampError::FinerUnit);
    }
    check_era((millis * 1000.0).round() as i64)
}

fn check_era(micros: i64) -> Result<i64, TimestampError> {
    if (MIN_MICROS..MAX_MICROS).contains(&micros) {
        Ok(micros)
    } else {
        Err(TimestampError::Era)
    }
}

/// `YYYY-MM-DDTHH:MM:SS.ffffff` (the original producer's form: UTC, no offset).
pub fn format_iso_micros(micros: i64, out: &mut String) {
    let days = micros.div_euclid(MICROS_PER_DAY);
    let in_day = micros.rem_euclid(MICROS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let secs = in_day / MICROS_PER_SECOND;
    let frac = in_day % MICROS_PER_SECOND;
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
}

/// `YYYY-MM-DD` of an event time: the lake's date partition.
pub fn date_of(micros: i64) -> String {
    let (y, m, d) = civil_from_days(micros.div_euclid(MICROS_PER_DAY));
    format!("{y:04}-{m:02}-{d:02}")
}

/// A SQL literal of the event time `micros`, of the lake's time columns' type.
pub fn sql_timestamp(micros: i64) -> String {
    format!("arrow_cast({micros}, 'Timestamp(Microsecond, Some(\"UTC\"))')")
}

/// Parse a calendar date, `YYYY-MM-DD`, `YYYYMMDD` or `MM/DD/YYYY`, into days since 1970-01-01.
pub fn parse_date(text: &str) -> Result<i64, TimestampError> {
    let t = text.trim();
    let b = t.as_bytes();
    let num = |s: &str| s.parse::<u32>().map_err(|_| TimestampError::Syntax);
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    let (year, month, day) = if b.len() == 8 && all_digits(t) {
        (num(&t[..4])?, num(&t[4..6])?, num(&t[6..])?)
    } else if b.len() == 10 && b[4] == b'-' && b[7] == b'-' {
        (num(&t[..4])?, num(&t[5..7])?, num(&t[8..])?)
    } else if b.len() == 10 && b[2] == b'/' && b[5] == b'/' {
        (num(&t[6..])?, num(&t[..2])?, num(&t[3..5])?)
    } else {
        return Err(TimestampError::Syntax);
    };
    let year = i64::from(year);
    if !(1900..=2199).contains(&year) {
        return Err(TimestampError::Era);
    }
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return Err(TimestampError::Range);
    }
    Ok(days_from_civil(year, month, day))
}

/// Parse a time of day, `H:MM:SS` or `HH:MM:SS` with an optional fraction of up to nine digits
/// (cut to microseconds), into microseconds since midnight.
pub fn parse_time_of_day(text: &str) -> Result<i64, TimestampError> {
    let t = text.trim();
    let (clock, fraction) = match t.split_once('.') {
        Some((c, f)) => (c, Some(f)),
        None => (t, None),
    };
    let mut parts = clock.split(':');
    let mut field = |max: i64| -> Result<i64, TimestampError> {
        let p = parts.next().ok_or(TimestampError::Syntax)?;
        if p.is_empty() || p.len() > 2 || !p.bytes().all(|c| c.is_ascii_digit()) {
            return Err(TimestampError::Syntax);
        }
        let v: i64 = p.parse().map_err(|_| TimestampError::Syntax)?;
        if v > max {
            return Err(TimestampError::Range);
        }
        Ok(v)
    };
    let (h, m, s) = (field(23)?, field(59)?, field(59)?);
    if parts.next().is_some() {
        return Err(TimestampError::Syntax);
    }
    let mut micros = 0i64;
    if let Some(f) = fraction {
        if f.is_empty() || f.len() > 9 || !f.bytes().all(|c| c.is_ascii_digit()) {
            return Err(TimestampError::Syntax);
        }
        let mut scale = 100_000i64;
        for c in f.bytes().take(6) {
            micros += i64::from(c - b'0') * scale;
            scale /= 10;
        }
    }
    Ok((h * 3600 + m * 60 + s) * MICROS_PER_SECOND + micros)
}

/// Day number of the `nth` (1-based) `weekday` (0 = Sunday) of a month; `nth = 0` is the last.
fn nth_weekday(year: i64, month: u32, weekday: i64, nth: u32) -> i64 {
    if nth == 0 {
        let last = days_from_civil(year, month, days_in_month(year, month));
        return last - (weekday_of(last) - weekday).rem_euclid(7);
    }
    let first = days_from_civil(year, month, 1);
    first + (weekday - weekday_of(first)).rem_euclid(7) + 7 * i64::from(nth - 1)
}

/// 0 = Sunday … 6 = Saturday.
pub fn weekday_of(days: i64) -> i64 {
    (days + 4).rem_euclid(7)
}

/// UTC microseconds of a US/Eastern wall-clock time: EST (UTC-5), or EDT (UTC-4) from 02:00 of
/// the second Sunday of March to 02:00 of the first Sunday of November (from 2007; before, the
/// first Sunday of April to the last Sunday of October, as set by the Energy Policy Act of 2005
/// and the 1986 rules). In the repeated hour of November the earlier (EDT) reading is taken.
pub fn eastern_to_utc(days: i64, micros_of_day: i64) -> i64 {
    let (year, _, _) = civil_from_days(days);
    let (start, end) = if year >= 2007 {
        (nth_weekday(year, 3, 0, 2), nth_weekday(year, 11, 0, 1))
    } else {
        (nth_weekday(year, 4, 0, 1), nth_weekday(year, 10, 0, 0))
    };
    let two_am = 2 * 3600 * MICROS_PER_SECOND;
    let local = days * MICROS_PER_DAY + micros_of_day;
    let dst = local >= start * MICROS_PER_DAY + two_am && local < end * MICROS_PER_DAY + two_am;
    let offset_hours = if dst { 4 } else { 5 };
    local + offset_hours * 3600 * MICROS_PER_SECOND
}

/// Why a duration text was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a duration: use a number with a unit, like 500ms, 5s, 5m, 1h")]
pub struct DurationError(pub String);

/// Parse `500ms`, `5s`, `5m`, `1h`, `1d` (or a bare number of seconds) into microseconds.
pub fn parse_duration_micros(text: &str) -> Result<i64, DurationError> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number.parse().map_err(|_| DurationError(text.into()))?;
    let scale = match unit.trim() {
        "us" => 1.0,
        "ms" => 1e3,
        "" | "s" | "sec" => 1e6,
        "m" | "min" => 60e6,
        "h" => 3600e6,
        "d" => 86_400e6,
        _ => return Err(DurationError(text.into())),
    };
    let micros = value * scale;
    if !(0.0..=3.65e13).contains(&micros) {
        return Err(DurationError(text.into()));
    }
    Ok(micros.round() as i64)
}

/// Human form of a duration in microseconds, e.g. `5m`, `30s`, `1500ms`.
pub fn format_duration(micros: i64) -> String {
    for (unit, scale) in [("h", 3600e6 as i64), ("m", 60_000_000), ("s", 1_000_000)] {
        if micros != 0 && micros % scale == 0 {
            return format!("{}{unit}", micros / scale);
        }
    }
    if micros % 1000 == 0 {
        format!("{}ms", micros / 1000)
    } else {
        format!("{micros}us")
    }
}

#[cfg(test)]
mod tests {
    /// The producer's form read word-wise gives what the general parser gives, for that form
    /// and for every one-byte change of it (digits out of range, other separators, any byte).
    #[test]
    fn the_producer_form_reads_as_the_general_parser_does() {
        let bases = [
            "2024-01-01T09:30:00.010597",
            "2024-02-29T23:59:60.999999",
            "2023-02-29T00:00:00.000000",
            "1969-12-31T24:00:00.000000",
            "9999-12-31T23:59:59.999999",
        ];
        let mut checked = 0;
        for base in bases {
            for at in 0..base.len() {
                for b in 0..=255u8 {
                    let mut bytes = base.as_bytes().to_vec();
                    bytes[at] = b;
                    let Ok(text) = std::str::from_utf8(&bytes) else {
                        continue;
                    };
                    assert_eq!(parse_timestamp(text), parse_any_form(text), "{text:?}");
                    checked += usize::from(producer_form(&bytes).is_some());
                }
            }
            assert_eq!(parse_timestamp(base), parse_any_form(base), "{base}");
        }
        assert!(checked > 5 * 20 * 10, "the word-wise path took {checked}");
        assert!(producer_form(b"2024-01-01T09:30:00.010597").is_some());
    }

    #[test]
    fn eastern_wall_clock_converts_across_daylight_saving() {
        let at = |date: &str, time: &str| {
            let micros =
                eastern_to_utc(parse_date(date).unwrap(), parse_time_of_day(time).unwrap());
            let mut out = String::new();
            format_iso_micros(micros, &mut out);
            out
        };
        // Winter: UTC-5; summer: UTC-4.
        assert_eq!(at("20240102", "9:30:00"), "2024-01-02T14:30:00.000000");
        assert_eq!(
            at("2024-07-01", "09:30:00.123456789"),
            "2024-07-01T13:30:00.123456"
        );
        // 2024 switches: 10 March and 3 November, at 02:00 local.
        assert_eq!(at("2024-03-10", "01:59:59"), "2024-03-10T06:59:59.000000");
        assert_eq!(at("2024-03-10", "03:00:00"), "2024-03-10T07:00:00.000000");
        assert_eq!(at("2024-11-03", "00:30:00"), "2024-11-03T04:30:00.000000");
        assert_eq!(at("2024-11-03", "02:00:00"), "2024-11-03T07:00:00.000000");
        assert_eq!(at("2024-11-04", "16:00:00"), "2024-11-04T21:00:00.000000");
        // Before 2007: first Sunday of April to last Sunday of October.
        assert_eq!(at("2006-03-20", "12:00:00"), "2006-03-20T17:00:00.000000");
        assert_eq!(at("2006-04-03", "12:00:00"), "2006-04-03T16:00:00.000000");
        assert_eq!(at("2006-10-30", "12:00:00"), "2006-10-30T17:00:00.000000");
    }

    #[test]
    fn dates_and_times_of_day_parse_or_say_why_not() {
        assert_eq!(parse_date("1970-01-02"), Ok(1));
        assert_eq!(parse_date("01/02/1970"), Ok(1));
        assert_eq!(parse_date("19700102"), Ok(1));
        assert_eq!(parse_date("2024-02-30"), Err(TimestampError::Range));
        assert_eq!(parse_date("2024/01/02"), Err(TimestampError::Syntax));
        assert_eq!(parse_time_of_day("9:30:00"), Ok(34_200_000_000));
        assert_eq!(parse_time_of_day("09:30:00.5"), Ok(34_200_500_000));
        assert!(parse_time_of_day("24:00:00").is_err());
        assert!(parse_time_of_day("9:30").is_err());
        assert!(parse_time_of_day("9:30:00.").is_err());
        assert!(parse_time_of_day("9:3x:00").is_err());
        assert_eq!(weekday_of(parse_date("2024-01-08").unwrap()), 1); // a Monday
    }
    use super::*;

    fn micros(text: &str) -> i64 {
        parse_timestamp(text).unwrap()
    }

    #[test]
    fn parses_the_original_producer_form_as_utc() {
        // 2024-01-01T11:50:03.12 UTC = 1704109803.12 s
        assert_eq!(micros("2024-01-01T11:50:03.120000"), 1_704_109_803_120_000);
        assert_eq!(micros("2024-01-01 11:50:03.12Z"), 1_704_109_803_120_000);
    }

    #[test]
    fn applies_offsets_and_epoch_millis() {
        assert_eq!(
            micros("2024-01-01T06:50:03.120-05:00"),
            micros("2024-01-01T11:50:03.12")
        );
        assert_eq!(
            micros("2024-01-01T13:50:03.12+0200"),
            micros("2024-01-01T11:50:03.12")
        );
        assert_eq!(micros("1704109803120"), 1_704_109_803_120_000);
        // Epoch seconds and microseconds given as milliseconds are refused, saying which.
        assert_eq!(parse_timestamp("1704109803"), Err(TimestampError::Seconds));
        assert_eq!(parse_timestamp("0"), Err(TimestampError::Seconds));
        assert_eq!(
            parse_timestamp("1704109803120000"),
            Err(TimestampError::FinerUnit)
        );
        assert_eq!(
            parse_timestamp("1704109803120000000"),
            Err(TimestampError::FinerUnit)
        );
        assert_eq!(
            epoch_millis_f64_to_micros(1_704_109_803_120.5),
            Ok(1_704_109_803_120_500)
        );
        assert_eq!(
            epoch_millis_f64_to_micros(1_704_109_803.5),
            Err(TimestampError::Seconds)
        );
        assert_eq!(
            epoch_millis_f64_to_micros(1.7e18),
            Err(TimestampError::FinerUnit)
        );
        assert_eq!(micros("2024-01-01T11:50"), 1_704_109_800_000_000);
    }

    #[test]
    fn rejects_bad_timestamps() {
        for bad in [
            "",
            "yesterday",
            "2024-13-01T00:00:00",
            "2024-02-30T00:00:00",
            "2024-01-01T24:00:00",
            "2024-01-01T00:00:00+25:00",
            "2024-01-01T00:00:00.",
            "2024-01-01T00:00:00 junk",
            "1800-01-01T00:00:00",
        ] {
            assert!(parse_timestamp(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn civil_round_trip_and_formatting() {
        for days in [-800_000, -1, 0, 1, 19_723, 60_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        let mut s = String::new();
        format_iso_micros(1_704_109_803_120_000, &mut s);
        assert_eq!(s, "2024-01-01T11:50:03.120000");
        assert_eq!(date_of(1_704_109_803_120_000), "2024-01-01");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_micros("5m").unwrap(), 300_000_000);
        assert_eq!(parse_duration_micros("500ms").unwrap(), 500_000);
        assert_eq!(parse_duration_micros("2").unwrap(), 2_000_000);
        assert!(parse_duration_micros("5 parsecs").is_err());
        assert!(parse_duration_micros("-5s").is_err());
        assert_eq!(format_duration(300_000_000), "5m");
        assert_eq!(format_duration(1_500_000), "1500ms");
    }
}
