//! Decode and validate one trade record (DESIGN §1). Every format fills a [`RawTrade`] of
//! loosely typed fields; [`validate`] is the one place that decides what a valid trade is.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

use crate::model::{Reject, RejectReason, Side, Trade};
use crate::time;

/// The fields of a trade message, in the original producer's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Timestamp,
    Symbol,
    Price,
    Quantity,
    Venue,
    IsSpoof,
    AlgoFingerprint,
    OrderType,
    OrderId,
    Side,
    TradeValue,
    Latitude,
    Longitude,
}

pub const FIELD_COUNT: usize = 13;

impl Field {
    pub const ALL: [Field; FIELD_COUNT] = [
        Field::Timestamp,
        Field::Symbol,
        Field::Price,
        Field::Quantity,
        Field::Venue,
        Field::IsSpoof,
        Field::AlgoFingerprint,
        Field::OrderType,
        Field::OrderId,
        Field::Side,
        Field::TradeValue,
        Field::Latitude,
        Field::Longitude,
    ];

    /// The fields a record must have.
    pub const REQUIRED: [Field; 5] = [
        Field::Timestamp,
        Field::Symbol,
        Field::Price,
        Field::Quantity,
        Field::Venue,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Field::Timestamp => "timestamp",
            Field::Symbol => "symbol",
            Field::Price => "price",
            Field::Quantity => "quantity",
            Field::Venue => "venue",
            Field::IsSpoof => "is_spoof",
            Field::AlgoFingerprint => "algo_fingerprint",
            Field::OrderType => "order_type",
            Field::OrderId => "order_id",
            Field::Side => "side",
            Field::TradeValue => "trade_value",
            Field::Latitude => "latitude",
            Field::Longitude => "longitude",
        }
    }

    pub fn from_name(name: &str) -> Option<Field> {
        Some(match name {
            "timestamp" => Field::Timestamp,
            "symbol" => Field::Symbol,
            "price" => Field::Price,
            "quantity" => Field::Quantity,
            "venue" => Field::Venue,
            "is_spoof" => Field::IsSpoof,
            "algo_fingerprint" => Field::AlgoFingerprint,
            "order_type" => Field::OrderType,
            "order_id" => Field::OrderId,
            "side" => Field::Side,
            "trade_value" => Field::TradeValue,
            "latitude" => Field::Latitude,
            "longitude" => Field::Longitude,
            _ => return None,
        })
    }
}

/// One field value as it arrived.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<'a> {
    /// A JSON string.
    Str(Cow<'a, str>),
    /// Untyped text (a CSV cell): numbers are parsed from it.
    Text(Cow<'a, str>),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Microseconds since the epoch, from a typed timestamp column.
    Micros(i64),
    Null,
    /// A JSON array or object.
    Composite,
}

impl Scalar<'_> {
    fn type_name(&self) -> &'static str {
        match self {
            Scalar::Str(_) => "a string",
            Scalar::Text(_) => "text",
            Scalar::Int(_) | Scalar::Float(_) => "a number",
            Scalar::Bool(_) => "a boolean",
            Scalar::Micros(_) => "a timestamp",
            Scalar::Null => "null",
            Scalar::Composite => "an array or object",
        }
    }
}

/// A record's fields before validation, indexed by [`Field`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawTrade<'a> {
    fields: [Option<Scalar<'a>>; FIELD_COUNT],
}

impl<'a> RawTrade<'a> {
    pub fn set(&mut self, field: Field, value: Scalar<'a>) {
        self.fields[field as usize] = Some(value);
    }

    /// A field's value; `None` when absent or null.
    pub fn field(&self, field: Field) -> Option<&Scalar<'a>> {
        self.get(field)
    }

    fn get(&self, field: Field) -> Option<&Scalar<'a>> {
        match &self.fields[field as usize] {
            None | Some(Scalar::Null) => None,
            Some(value) => Some(value),
        }
    }
}

/// Decode one NDJSON line (already checked to be UTF-8) into raw fields.
///
/// Flat objects of plain strings, numbers, booleans and nulls (what producers send) take a
/// hand-written scanner; anything else (escapes, nested values, malformed JSON) goes through
/// serde_json, which also produces the reject reasons. Both accept exactly valid JSON.
pub fn parse_json(line: &str) -> Result<RawTrade<'_>, Reject> {
    let mut raw = RawTrade::default();
    parse_json_into(line, &mut KeyOrder::default(), &mut raw)?;
    Ok(raw)
}

/// The key order of the last record the scanner read. Producers send every record's keys in
/// the same order and without spaces, so at each position the scanner first compares the
/// bytes from the separator through the colon (`,"symbol":`) with the ones the last record had
/// there, a few word comparisons, before reading separator, key and colon one by one and
/// looking the name up. Any order and spacing is still read.
#[derive(Debug, Default, Clone)]
pub struct KeyOrder(Vec<(Option<Field>, Lead)>);

/// What leads to a known field's value when written without spaces: `{"timestamp":` at the
/// first position, `,"symbol":` after it. Empty for a key that is no [`Field`].
#[derive(Debug, Default, Clone, Copy)]
struct Lead {
    bytes: [u8; LEAD_BYTES],
    len: u8,
}

/// The longest lead: a separator, the longest field name in quotes, a colon.
const LEAD_BYTES: usize = 24;

// Every field's lead fits (checked when compiling).
const _: () = {
    let mut i = 0;
    while i < FIELD_COUNT {
        assert!(Field::ALL[i].name().len() + 4 <= LEAD_BYTES);
        i += 1;
    }
};

impl Lead {
    fn new(position: usize, field: Option<Field>) -> Lead {
        let mut lead = Lead::default();
        if let Some(field) = field {
            let name = field.name().as_bytes();
            let separator = if position == 0 { b'{' } else { b',' };
            let parts = [&[separator, b'"'][..], name, b"\":"];
            for part in parts {
                let at = usize::from(lead.len);
                lead.bytes[at..at + part.len()].copy_from_slice(part);
                lead.len += part.len() as u8;
            }
        }
        lead
    }

    fn bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl KeyOrder {
    /// The field at `position` and its lead, when the last record had a known field there.
    #[inline]
    fn expected(&self, position: usize) -> Option<(Field, &Lead)> {
        match self.0.get(position)? {
            (Some(field), lead) => Some((*field, lead)),
            (None, _) => None,
        }
    }

    /// This record has `field` at `position`: what the next one is expected to have there.
    fn record(&mut self, position: usize, field: Option<Field>) {
        // A key that is no field, where the last record had one too: the order after it holds.
        if position < KEY_ORDER_LIMIT && self.0.get(position).map(|(f, _)| *f) != Some(field) {
            self.0.truncate(position);
            self.0.push((field, Lead::new(position, field)));
        }
    }
}

/// Keys per record that [`KeyOrder`] remembers.
const KEY_ORDER_LIMIT: usize = 64;

/// [`parse_json`] for a stream of records, into a record the caller holds (what it held is
/// replaced); `order` carries the key order from one record to the next. A record is some 400
/// bytes: returned by value, it was copied twice (`examples/decode_bench`, runs alternating:
/// 423-434 ns a simulated trade with those copies, 375-388 ns without; a by-value wrapper over
/// this function still cost 382-393 ns against 357-372).
pub fn parse_json_into<'a>(
    line: &'a str,
    order: &mut KeyOrder,
    raw: &mut RawTrade<'a>,
) -> Result<(), Reject> {
    raw.fields = Default::default();
    if FlatScanner::new(line).object(order, raw).is_some() {
        return Ok(());
    }
    *raw = serde_json::from_str::<RawTrade<'_>>(line).map_err(|e| {
        if e.classify() == serde_json::error::Category::Data {
            Reject::new(
                RejectReason::NotAnObject,
                format!("expected a JSON object: {e}"),
            )
        } else {
            Reject::new(RejectReason::InvalidJson, explain_syntax(line, &e))
        }
    })?;
    Ok(())
}

/// serde_json's syntax error, and what it met when that is Python's NaN or Infinity (its
/// `json.dumps` writes them for such floats; JSON has no such numbers).
fn explain_syntax(line: &str, e: &serde_json::Error) -> String {
    let at = e.column().saturating_sub(1);
    let word = ["-Infinity", "Infinity", "NaN"].into_iter().find(|word| {
        // The error points at the value, or just past a leading minus.
        [at, at.saturating_sub(1)]
            .iter()
            .any(|&i| line.get(i..).is_some_and(|rest| rest.starts_with(word)))
    });
    match word {
        Some(word) if e.line() == 1 => format!(
            "{e}: {word} is not a JSON number (Python's json.dumps writes it for a float {word})"
        ),
        _ => e.to_string(),
    }
}

/// Decode and validate one JSON record (already checked to be UTF-8) and hand the trade to
/// `accept`. A flat object of the producer's types and forms is read straight into the trade;
/// anything else (other types, text to trim, escapes, invalid values) goes through
/// [`parse_json_into`] and [`validate`], which also give the reject reasons. Both paths give
/// the same trade for what the first accepts (`the_typed_path_gives_what_validate_gives`).
/// The first skips [`RawTrade`]'s loosely typed values and their second reading: about 5 %
/// of a simulated trade's decode time when it was added (`examples/decode_bench`; figures in
/// `benches/HISTORY.md`, fifth session).
pub fn decode_json<T>(
    line: &str,
    order: &mut KeyOrder,
    accept: impl FnOnce(&Trade<'_>) -> T,
) -> Result<T, Reject> {
    if let Some(trade) = typed_trade(line, order) {
        return Ok(accept(&trade));
    }
    let mut raw = RawTrade::default();
    parse_json_into(line, order, &mut raw)?;
    if raw.fields.iter().all(Option::is_none) {
        if let Some(payload) = connect_payload(line) {
            let mut inner = RawTrade::default();
            parse_json_into(&payload, order, &mut inner)?;
            return Ok(accept(&validate(&inner)?));
        }
    }
    Ok(accept(&validate(&raw)?))
}

/// The trade inside a Kafka Connect envelope, as JSON text: Connect's JsonConverter with
/// `schemas.enable=true` (its default) writes each record as `{"schema": {...}, "payload":
/// {...}}`. Only asked of objects holding none of the trade's fields.
fn connect_payload(line: &str) -> Option<String> {
    let serde_json::Value::Object(map) = serde_json::from_str(line).ok()? else {
        return None;
    };
    match (map.len(), map.get("schema"), map.get("payload")) {
        (2, Some(_), Some(payload @ serde_json::Value::Object(_))) => Some(payload.to_string()),
        _ => None,
    }
}

/// A trade's fields as the typed path reads them: each one already valid on its own.
#[derive(Default)]
struct Typed<'a> {
    timestamp: Option<i64>,
    symbol: Option<&'a str>,
    venue: Option<&'a str>,
    price: Option<f64>,
    quantity: Option<i64>,
    side: Option<Side>,
    order_type: Option<&'a str>,
    order_id: Option<&'a str>,
    algo_fingerprint: Option<&'a str>,
    is_spoof: bool,
    trade_value: Option<f64>,
    latitude: Option<f64>,
    longitude: Option<f64>,
}

/// The typed path of [`decode_json`]: `None` when the record is not all in the producer's
/// types and forms, or a check across fields fails (a price not above zero, a trade value
/// that does not match).
pub(crate) fn typed_trade<'a>(line: &'a str, order: &mut KeyOrder) -> Option<Trade<'a>> {
    let mut typed = Typed::default();
    FlatScanner::new(line).fields(order, |scanner, field| match field {
        Some(field) => scanner.typed_value(field, &mut typed),
        None => scanner.value(&mut None),
    })?;
    let price = typed.price.filter(|&p| p > 0.0)?;
    let quantity = typed.quantity?;
    let trade_value = round_cents(price * quantity as f64);
    if let Some(supplied) = typed.trade_value {
        if !value_matches(supplied, trade_value) {
            return None;
        }
    }
    Some(Trade {
        timestamp: typed.timestamp?,
        symbol: typed.symbol?,
        price,
        quantity,
        venue: typed.venue?,
        side: typed.side,
        order_type: typed.order_type,
        order_id: typed.order_id,
        algo_fingerprint: typed.algo_fingerprint,
        is_spoof: typed.is_spoof,
        trade_value,
        latitude: typed.latitude,
        longitude: typed.longitude,
        sale_condition: None,
        extended_hours: None,
    })
}

/// Powers of ten that are exact in an f64.
const EXACT_POWERS_OF_TEN: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// The value of a number of at most 15 digits, read as the integer `mantissa` with
/// `frac_digits` of them after the dot: the mantissa is then below 2^53, the power of ten is
/// exact, and one division rounds correctly, so the result equals `str::parse` (Clinger's fast
/// path). `negative`: a minus sign came before the digits.
fn short_decimal(mantissa: u64, frac_digits: Option<usize>, negative: bool) -> Scalar<'static> {
    let mantissa = mantissa as i64; // below 10^15
    let sign = if negative { -1.0 } else { 1.0 };
    match frac_digits {
        // serde_json reads -0 as the float -0.0
        None if negative && mantissa == 0 => Scalar::Float(-0.0),
        None if negative => Scalar::Int(-mantissa),
        None => Scalar::Int(mantissa),
        Some(n) => Scalar::Float(sign * (mantissa as f64 / EXACT_POWERS_OF_TEN[n])),
    }
}

/// Each byte 0x01, each byte 0x80: for the word-at-a-time (SWAR) checks below.
const ONES: u64 = u64::from_le_bytes([0x01; 8]);
const HIGH: u64 = u64::from_le_bytes([0x80; 8]);

/// The eight bytes from `at` as one little-endian word.
#[inline]
pub(crate) fn word_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// The high bits of the bytes of `v` below `n` (at most 0x80). A borrow can mark a byte after
/// a marked one falsely, never before: any mark means a byte below `n`, and the lowest is one.
#[inline]
fn bytes_below(v: u64, n: u8) -> u64 {
    v.wrapping_sub(ONES * u64::from(n)) & !v & HIGH
}

/// Where a JSON string's body ends: the first quote, backslash or control character, eight
/// bytes at a time (SWAR: a branch per word instead of a hard-to-predict one per byte).
fn string_end(bytes: &[u8]) -> Option<usize> {
    let mut at = 0;
    for chunk in bytes.chunks_exact(8) {
        let v = word_at(chunk, 0);
        let marks = bytes_below(v ^ (ONES * u64::from(b'"')), 1)
            | bytes_below(v ^ (ONES * u64::from(b'\\')), 1)
            | bytes_below(v, 0x20);
        if marks != 0 {
            return Some(at + (marks.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    bytes[at..]
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|n| at + n)
}

/// Where a string's body that [`is_plain`] ends at a quote: one pass of [`string_end`]'s
/// kind, eight bytes at a time; `None` when a byte before the quote is not plain (a
/// backslash included), or the body is empty or has no end.
fn plain_end(bytes: &[u8]) -> Option<usize> {
    let mut at = 0;
    for chunk in bytes.chunks_exact(8) {
        let v = word_at(chunk, 0);
        let quotes = bytes_below(v ^ (ONES * u64::from(b'"')), 1);
        let others = not_plain(v) | bytes_below(v ^ (ONES * u64::from(b'\\')), 1);
        let marks = quotes | others;
        if marks != 0 {
            // The lowest mark is a true one (false marks only follow true ones).
            let first = marks.trailing_zeros();
            let end = at + (first / 8) as usize;
            return (quotes >> first & 1 == 1 && end > 0).then_some(end);
        }
        at += 8;
    }
    let n = bytes[at..]
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || !(b > b' ' && b < 0x7F))?;
    let end = at + n;
    (bytes[end] == b'"' && end > 0).then_some(end)
}

/// `a == b` for short slices, a word at a time: a slice comparison calls `memcmp`, whose call
/// costs more than comparing a key of a few bytes (it was 2 % of a Kafka ingest's CPU time).
#[inline]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    // Whole words, then the last eight bytes (overlapping the words before when n is not a
    // multiple of eight).
    (0..n - 8)
        .step_by(8)
        .all(|at| word_at(a, at) == word_at(b, at))
        && word_at(a, n - 8) == word_at(b, n - 8)
}

/// A strict scanner for flat JSON objects; `None` means "not handled here" (not "invalid").
struct FlatScanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> FlatScanner<'a> {
    fn new(text: &'a str) -> Self {
        FlatScanner {
            text,
            bytes: text.as_bytes(),
            pos: 0,
        }
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        self.skip_ws();
        (self.bytes.get(self.pos) == Some(&byte)).then(|| self.pos += 1)
    }

    /// A string without escapes or control characters (found by [`string_end`]).
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.pos;
        let end = start + string_end(self.bytes.get(start..)?)?;
        if self.bytes[end] != b'"' {
            return None; // an escape or a control character
        }
        self.pos = end + 1;
        self.text.get(start..end)
    }

    /// Digits from here on, accumulated into `mantissa` (it wraps past 19 digits, where
    /// [`short_decimal`] is not used); how many there were.
    fn digits(&mut self, mantissa: &mut u64) -> usize {
        let start = self.pos;
        while let Some(&b) = self.bytes.get(self.pos) {
            let digit = b.wrapping_sub(b'0');
            if digit > 9 {
                break;
            }
            *mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(digit));
            self.pos += 1;
        }
        self.pos - start
    }

    /// A number in exact JSON grammar: integers as i64 (when they fit), others as f64. One
    /// pass reads the digits and their value.
    fn number(&mut self) -> Option<Scalar<'a>> {
        let start = self.pos;
        let negative = self.bytes.get(self.pos) == Some(&b'-');
        if negative {
            self.pos += 1;
        }
        let int_start = self.pos;
        let mut mantissa = 0u64;
        let int_digits = self.digits(&mut mantissa);
        if int_digits == 0 || (int_digits > 1 && self.bytes[int_start] == b'0') {
            return None;
        }
        let mut frac_digits = None;
        if self.bytes.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            let n = self.digits(&mut mantissa);
            if n == 0 {
                return None;
            }
            frac_digits = Some(n);
        }
        let mut exponent = false;
        if let Some(b'e' | b'E') = self.bytes.get(self.pos) {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.pos) {
                self.pos += 1;
            }
            if self.digits(&mut 0) == 0 {
                return None;
            }
            exponent = true;
        }
        if !exponent && int_digits + frac_digits.unwrap_or(0) <= 15 {
            return Some(short_decimal(mantissa, frac_digits, negative));
        }
        let text = &self.text[start..self.pos];
        // Longer integers (-0 and other short ones took the fast path above).
        if frac_digits.is_none() && !exponent {
            if let Ok(v) = text.parse::<i64>() {
                return Some(Scalar::Int(v));
            }
        }
        let v: f64 = text.parse().ok()?;
        v.is_finite().then_some(Scalar::Float(v))
    }

    fn literal<T>(&mut self, word: &str, value: T) -> Option<T> {
        let end = self.pos + word.len();
        (self.bytes.get(self.pos..end)? == word.as_bytes()).then(|| {
            self.pos = end;
            value
        })
    }

    /// A value, written into `slot`: in place, as a returned value read back at once would
    /// be an (expensive) store-to-load round trip of a wider read than the writes.
    fn value(&mut self, slot: &mut Option<Scalar<'a>>) -> Option<()> {
        self.skip_ws();
        *slot = Some(match *self.bytes.get(self.pos)? {
            b'"' => Scalar::Str(Cow::Borrowed(self.string()?)),
            b'-' | b'0'..=b'9' => self.number()?,
            b't' => self.literal("true", Scalar::Bool(true))?,
            b'f' => self.literal("false", Scalar::Bool(false))?,
            b'n' => self.literal("null", Scalar::Null)?,
            _ => return None,
        });
        Some(())
    }

    /// The quoted key `field` (its name exactly, no escapes), if it comes next.
    fn key_is(&mut self, field: Field) -> bool {
        self.skip_ws();
        let name = field.name().as_bytes();
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        let found = rest.len() > name.len() + 1
            && rest[0] == b'"'
            && same_bytes(&rest[1..=name.len()], name)
            && rest[name.len() + 1] == b'"';
        if found {
            self.pos += name.len() + 2;
        }
        found
    }

    /// The object's fields, into `raw` (empty on entry).
    fn object(self, order: &mut KeyOrder, raw: &mut RawTrade<'a>) -> Option<()> {
        self.fields(order, |scanner, field| match field {
            Some(field) => scanner.value(&mut raw.fields[field as usize]),
            None => scanner.value(&mut None),
        })
    }

    /// The object's keys in turn, each followed by `read`, which reads the key's value
    /// (`None`: a key that is no [`Field`]); then nothing but whitespace may follow.
    fn fields(
        mut self,
        order: &mut KeyOrder,
        mut read: impl FnMut(&mut Self, Option<Field>) -> Option<()>,
    ) -> Option<()> {
        let mut n = 0;
        loop {
            let expected = order.expected(n);
            let field = match expected {
                Some((field, lead)) if self.lead_is(lead) => Some(field),
                _ => {
                    // Before the first key, a `{` (or the `}` of an empty object); after a
                    // value, a `,` or the closing `}`.
                    if n == 0 {
                        self.eat(b'{')?;
                        if self.eat(b'}').is_some() {
                            break;
                        }
                    } else if self.eat(b',').is_none() {
                        self.eat(b'}')?;
                        break;
                    }
                    let field = match expected.filter(|&(f, _)| self.key_is(f)) {
                        Some((field, _)) => Some(field),
                        None => {
                            let field = Field::from_name(self.string()?);
                            order.record(n, field);
                            field
                        }
                    };
                    self.eat(b':')?;
                    field
                }
            };
            n += 1;
            read(&mut self, field)?;
        }
        self.skip_ws();
        (self.pos == self.bytes.len()).then_some(())
    }

    /// The bytes of `lead`, if they come next (no whitespace before them).
    #[inline]
    fn lead_is(&mut self, lead: &Lead) -> bool {
        let lead = lead.bytes();
        let found = match self.bytes.get(self.pos..self.pos + lead.len()) {
            Some(next) => same_bytes(next, lead),
            None => false,
        };
        if found {
            self.pos += lead.len();
        }
        found
    }

    /// `null`, if it comes next.
    fn null(&mut self) -> bool {
        self.skip_ws();
        self.literal("null", ()).is_some()
    }

    /// A string that [`is_plain`], or null (`Some(None)`); `None` for anything else.
    fn plain_string(&mut self) -> Option<Option<&'a str>> {
        self.skip_ws();
        match *self.bytes.get(self.pos)? {
            b'n' => self.literal("null", None),
            b'"' => {
                let start = self.pos + 1;
                let end = start + plain_end(self.bytes.get(start..)?)?;
                self.pos = end + 1;
                Some(Some(self.text.get(start..end)?))
            }
            _ => None,
        }
    }

    /// A number as f64 (integers converted as [`validate`] does), or null (`Some(None)`).
    fn float(&mut self) -> Option<Option<f64>> {
        self.skip_ws();
        match *self.bytes.get(self.pos)? {
            b'n' => self.literal("null", None),
            b'-' | b'0'..=b'9' => match self.number()? {
                Scalar::Int(v) => Some(Some(v as f64)),
                Scalar::Float(v) => Some(Some(v)),
                _ => None,
            },
            _ => None,
        }
    }

    /// A field's value straight into `trade`, when it is the type and form the producer
    /// sends and valid; `None` otherwise (not "invalid": [`validate`] decides that).
    fn typed_value(&mut self, field: Field, trade: &mut Typed<'a>) -> Option<()> {
        match field {
            Field::Timestamp => {
                trade.timestamp = match self.plain_string()? {
                    Some(s) => Some(time::parse_timestamp(s).ok()?),
                    None => None,
                }
            }
            Field::Symbol => trade.symbol = self.code()?,
            Field::Venue => trade.venue = self.code()?,
            Field::Price => trade.price = self.float()?,
            Field::Quantity => {
                trade.quantity = if self.null() {
                    None
                } else {
                    match self.number()? {
                        Scalar::Int(v) if v > 0 => Some(v),
                        _ => return None,
                    }
                }
            }
            Field::IsSpoof => {
                trade.is_spoof = if self.null() {
                    false
                } else {
                    match *self.bytes.get(self.pos)? {
                        b't' => self.literal("true", true)?,
                        b'f' => self.literal("false", false)?,
                        b'0' | b'1' => match self.number()? {
                            Scalar::Int(v @ (0 | 1)) => v == 1,
                            _ => return None,
                        },
                        _ => return None,
                    }
                }
            }
            Field::Side => {
                trade.side = match self.plain_string()? {
                    None => None,
                    Some("BUY") => Some(Side::Buy),
                    Some("SELL") => Some(Side::Sell),
                    Some(_) => return None,
                }
            }
            Field::OrderType => trade.order_type = self.plain_string()?,
            Field::OrderId => trade.order_id = self.plain_string()?,
            Field::AlgoFingerprint => trade.algo_fingerprint = self.plain_string()?,
            Field::TradeValue => trade.trade_value = self.float()?,
            Field::Latitude => trade.latitude = self.coordinate(LATITUDE_LIMIT)?,
            Field::Longitude => trade.longitude = self.coordinate(LONGITUDE_LIMIT)?,
        }
        Some(())
    }

    /// A code [`check_code`] passes as it is, or null.
    fn code(&mut self) -> Option<Option<&'a str>> {
        match self.plain_string()? {
            Some(s) if s.len() > MAX_CODE_CHARS => None,
            code => Some(code),
        }
    }

    /// A number within ±`limit`, or null.
    fn coordinate(&mut self, limit: f64) -> Option<Option<f64>> {
        match self.float()? {
            Some(v) if v.abs() > limit => None,
            v => Some(v),
        }
    }
}

struct KeyVisitor;

/// A JSON object key: a known field, or one to skip.
struct Key(Option<Field>);

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
        Ok(Key(Field::from_name(v)))
    }
}

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        d.deserialize_identifier(KeyVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_string())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar<'de>, E> {
        Ok(i64::try_from(v).map_or(Scalar::Float(v as f64), Scalar::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Float(v))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Null)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Composite)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Composite)
    }
}

impl<'de> de::Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Scalar<'de>, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct TradeVisitor;

impl<'de> Visitor<'de> for TradeVisitor {
    type Value = RawTrade<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a trade object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawTrade<'de>, A::Error> {
        let mut raw = RawTrade::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key.0 {
                Some(field) => raw.set(field, map.next_value::<Scalar<'de>>()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(raw)
    }
}

impl<'de> de::Deserialize<'de> for RawTrade<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RawTrade<'de>, D::Error> {
        d.deserialize_map(TradeVisitor)
    }
}

fn missing(field: Field) -> Reject {
    Reject::missing(field.name())
}

fn wrong_type(field: Field, expected: &str, got: &Scalar<'_>) -> Reject {
    Reject::new(
        RejectReason::WrongType,
        format!(
            "'{}' must be {expected}, got {}",
            field.name(),
            got.type_name()
        ),
    )
}

fn number(raw: &RawTrade<'_>, field: Field) -> Result<Option<f64>, Reject> {
    match raw.get(field) {
        None => Ok(None),
        Some(Scalar::Int(v)) => Ok(Some(*v as f64)),
        Some(Scalar::Float(v)) => Ok(Some(*v)),
        // A number in a string, as producers that keep decimals exact send prices
        // (`"price":"262.39"`): read like a CSV cell, as Flink's and arrow-json's JSON readers do.
        Some(Scalar::Text(t) | Scalar::Str(t)) if t.trim().is_empty() => Ok(None),
        Some(Scalar::Text(t) | Scalar::Str(t)) => t.trim().parse::<f64>().map(Some).map_err(|_| {
            Reject::new(
                RejectReason::WrongType,
                format!("'{}' must be a number, got '{t}'", field.name()),
            )
        }),
        Some(other) => Err(wrong_type(field, "a number", other)),
    }
}

fn text<'r>(raw: &'r RawTrade<'_>, field: Field) -> Result<Option<&'r str>, Reject> {
    match raw.get(field) {
        None => Ok(None),
        Some(Scalar::Str(s) | Scalar::Text(s)) if is_plain(s) => Ok(Some(s)),
        Some(Scalar::Str(s) | Scalar::Text(s)) => {
            let s = s.trim();
            let control = if s.is_ascii() {
                s.bytes().any(|b| b.is_ascii_control())
            } else {
                s.chars().any(char::is_control)
            };
            if control {
                return Err(Reject::new(
                    RejectReason::BadField,
                    format!("'{}' contains control characters", field.name()),
                ));
            }
            Ok(if s.is_empty() { None } else { Some(s) })
        }
        Some(other) => Err(wrong_type(field, "a string", other)),
    }
}

/// Non-empty printable ASCII without spaces: nothing to trim, no control characters, a code as
/// it is (the common case, checked in one pass).
fn is_plain(s: &str) -> bool {
    is_plain_bytes(s.as_bytes())
}

/// The high bits of the bytes of `v` that are not printable ASCII: bytes up to ' ', and
/// (with no byte at 0x80 or above, adding one carries nowhere) those at 0x7F or above. As
/// with [`bytes_below`], the lowest mark is exact.
#[inline]
fn not_plain(v: u64) -> u64 {
    bytes_below(v, 0x21) | ((v | v.wrapping_add(ONES)) & HIGH)
}

fn is_plain_bytes(bytes: &[u8]) -> bool {
    // Eight bytes at a time, then the tail byte by byte.
    let words = bytes.chunks_exact(8);
    let tail = words.remainder();
    !bytes.is_empty()
        && words
            .into_iter()
            .all(|chunk| not_plain(word_at(chunk, 0)) == 0)
        && tail.iter().all(|&b| b > b' ' && b < 0x7F)
}

/// Longest symbol / venue code accepted.
const MAX_CODE_CHARS: usize = 32;

fn code<'r>(raw: &'r RawTrade<'_>, field: Field, reason: RejectReason) -> Result<&'r str, Reject> {
    let value = text(raw, field)?.ok_or_else(|| missing(field))?;
    check_code(field.name(), value, reason)
}

/// A symbol, venue or MPID code: at most [`MAX_CODE_CHARS`] characters, no spaces.
pub fn check_code<'a>(name: &str, value: &'a str, reason: RejectReason) -> Result<&'a str, Reject> {
    if value.len() <= MAX_CODE_CHARS && is_plain(value) {
        return Ok(value);
    }
    let too_long = value.len() > MAX_CODE_CHARS && value.chars().count() > MAX_CODE_CHARS;
    if too_long || value.contains(char::is_whitespace) {
        return Err(Reject::new(
            reason,
            format!("'{name}' must be a code of at most {MAX_CODE_CHARS} characters without spaces, got '{value}'"),
        ));
    }
    Ok(value)
}

fn timestamp(raw: &RawTrade<'_>) -> Result<i64, Reject> {
    let bad = |value: &dyn fmt::Display, e: time::TimestampError| {
        Reject::new(
            RejectReason::BadTimestamp,
            format!("timestamp '{value}': {e}"),
        )
    };
    match raw.get(Field::Timestamp) {
        None => Err(missing(Field::Timestamp)),
        Some(Scalar::Str(s) | Scalar::Text(s)) => time::parse_timestamp(s).map_err(|e| bad(s, e)),
        Some(Scalar::Int(ms)) => time::epoch_millis_to_micros(*ms).map_err(|e| bad(ms, e)),
        Some(Scalar::Float(ms)) => time::epoch_millis_f64_to_micros(*ms).map_err(|e| bad(ms, e)),
        Some(Scalar::Micros(us)) => Ok(*us),
        Some(other) => Err(wrong_type(
            Field::Timestamp,
            "an ISO-8601 text or epoch milliseconds",
            other,
        )),
    }
}

fn quantity(raw: &RawTrade<'_>) -> Result<i64, Reject> {
    let bad = |detail: String| Reject::new(RejectReason::BadQuantity, detail);
    let value = match raw.get(Field::Quantity) {
        None => return Err(missing(Field::Quantity)),
        Some(Scalar::Int(v)) => *v,
        Some(Scalar::Text(t) | Scalar::Str(t)) if t.trim().is_empty() => {
            return Err(missing(Field::Quantity))
        }
        Some(Scalar::Float(_) | Scalar::Text(_) | Scalar::Str(_)) => {
            let v = number(raw, Field::Quantity)?.unwrap_or(f64::NAN);
            if !(v.is_finite() && v.fract() == 0.0) {
                return Err(bad(format!("quantity {v} is not a whole number of shares")));
            }
            if v.abs() >= 9e15 {
                return Err(bad(format!(
                    "quantity {v} is too large to be a number of shares"
                )));
            }
            v as i64
        }
        Some(other) => return Err(wrong_type(Field::Quantity, "a whole number", other)),
    };
    if value <= 0 {
        return Err(bad(format!("quantity {value} must be > 0")));
    }
    Ok(value)
}

/// Round to cents, as the original producer did for `trade_value`.
pub fn round_cents(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

fn flag(raw: &RawTrade<'_>, field: Field) -> Result<bool, Reject> {
    let bad = |got: &dyn fmt::Display| {
        Reject::new(
            RejectReason::BadField,
            format!("'{}' must be 0/1 or true/false, got '{got}'", field.name()),
        )
    };
    match raw.get(field) {
        None => Ok(false),
        Some(Scalar::Bool(b)) => Ok(*b),
        Some(Scalar::Int(0)) => Ok(false),
        Some(Scalar::Int(1)) => Ok(true),
        Some(Scalar::Int(v)) => Err(bad(v)),
        Some(Scalar::Float(v)) if *v == 0.0 || *v == 1.0 => Ok(*v == 1.0),
        Some(Scalar::Str(s) | Scalar::Text(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "" | "0" | "false" | "0.0" => Ok(false),
            "1" | "true" | "1.0" => Ok(true),
            _ => Err(bad(s)),
        },
        Some(other) => Err(wrong_type(field, "0/1 or a boolean", other)),
    }
}

fn coordinate(raw: &RawTrade<'_>, field: Field, limit: f64) -> Result<Option<f64>, Reject> {
    match number(raw, field)? {
        None => Ok(None),
        Some(v) if v.is_finite() && v.abs() <= limit => Ok(Some(v)),
        Some(v) => Err(Reject::new(
            RejectReason::BadCoordinates,
            format!("{} {v} is outside ±{limit}", field.name()),
        )),
    }
}

/// Whether a supplied trade value is price x quantity (`computed`): the original rounds to
/// cents; anything further off is a different trade.
fn value_matches(supplied: f64, computed: f64) -> bool {
    let off = (supplied - computed).abs();
    !off.is_nan() && off <= 0.011 + computed.abs() * 1e-12
}

/// Largest |latitude| and |longitude|.
const LATITUDE_LIMIT: f64 = 90.0;
const LONGITUDE_LIMIT: f64 = 180.0;

/// Check a record against DESIGN §1 and produce the trade, or the reason it is not one.
pub fn validate<'r>(raw: &'r RawTrade<'_>) -> Result<Trade<'r>, Reject> {
    for field in Field::REQUIRED {
        if raw.get(field).is_none() {
            return Err(missing(field));
        }
    }
    let timestamp = timestamp(raw)?;
    let symbol = code(raw, Field::Symbol, RejectReason::BadSymbol)?;
    let venue = code(raw, Field::Venue, RejectReason::BadVenue)?;
    let price = number(raw, Field::Price)?.ok_or_else(|| missing(Field::Price))?;
    if !(price.is_finite() && price > 0.0) {
        return Err(Reject::new(
            RejectReason::BadPrice,
            format!("price {price} must be a finite number > 0"),
        ));
    }
    let quantity = quantity(raw)?;
    let trade_value = round_cents(price * quantity as f64);
    if let Some(supplied) = number(raw, Field::TradeValue)? {
        if !value_matches(supplied, trade_value) {
            return Err(Reject::new(
                RejectReason::TradeValueMismatch,
                format!(
                    "trade_value {supplied} != price {price} x quantity {quantity} = {trade_value}"
                ),
            ));
        }
    }
    let side = match text(raw, Field::Side)? {
        None => None,
        Some(s) if s.eq_ignore_ascii_case("BUY") || s.eq_ignore_ascii_case("B") => Some(Side::Buy),
        Some(s) if s.eq_ignore_ascii_case("SELL") || s.eq_ignore_ascii_case("S") => {
            Some(Side::Sell)
        }
        Some(s) => {
            return Err(Reject::new(
                RejectReason::BadSide,
                format!("side '{s}' is not BUY or SELL"),
            ));
        }
    };
    Ok(Trade {
        timestamp,
        symbol,
        price,
        quantity,
        venue,
        side,
        order_type: text(raw, Field::OrderType)?,
        order_id: text(raw, Field::OrderId)?,
        algo_fingerprint: text(raw, Field::AlgoFingerprint)?,
        is_spoof: flag(raw, Field::IsSpoof)?,
        trade_value,
        latitude: coordinate(raw, Field::Latitude, LATITUDE_LIMIT)?,
        longitude: coordinate(raw, Field::Longitude, LONGITUDE_LIMIT)?,
        sale_condition: None,
        extended_hours: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator for the randomised tests below.
    fn xorshift(seed: u64) -> impl FnMut() -> u64 {
        let mut state = seed;
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    const GOOD: &str = r#"{"timestamp":"2024-01-01T11:50:03.120000","symbol":"SYNTH_AMZN","price":262.39,"quantity":3143,"venue":"DARK2","is_spoof":0,"algo_fingerprint":"A7","order_type":"LIMIT","order_id":"o123","side":"BUY","trade_value":824691.77,"latitude":40.7128,"longitude":-74.006}"#;

    fn reason(line: &str) -> RejectReason {
        match parse_json(line) {
            Err(r) => r.reason,
            Ok(raw) => validate(&raw).map(|_| ()).unwrap_err().reason,
        }
    }

    #[test]
    fn field_names_round_trip() {
        for f in Field::ALL {
            assert_eq!(Field::from_name(f.name()), Some(f));
        }
    }

    #[test]
    fn accepts_the_original_message() {
        let raw = parse_json(GOOD).unwrap();
        let t = validate(&raw).unwrap();
        assert_eq!(t.symbol, "SYNTH_AMZN");
        assert_eq!(t.quantity, 3143);
        assert_eq!(t.trade_value, 824691.77);
        assert_eq!(t.side, Some(Side::Buy));
        assert_eq!(t.latitude, Some(40.7128));
        assert_eq!(t.timestamp, 1_704_109_803_120_000);
    }

    /// Numbers sent as strings (exact decimals) give the trade the numbers give; a string
    /// that is no number is still the wrong type, and an empty one is a missing value.
    #[test]
    fn numbers_in_strings_are_read_as_numbers() {
        let good = parse_json(GOOD).unwrap();
        let as_numbers = validate(&good).unwrap();
        let quoted = ["262.39", "3143", "824691.77", "40.7128", "-74.006"]
            .iter()
            .fold(GOOD.to_string(), |line, n| {
                line.replacen(&format!(":{n}"), &format!(":\" {n} \""), 1)
            });
        assert_eq!(quoted.matches("\" ").count(), 5, "{quoted}");
        let raw = parse_json(&quoted).unwrap();
        assert_eq!(validate(&raw).unwrap(), as_numbers, "{quoted}");
        let mut order = KeyOrder::default();
        let typed = decode_json(&quoted, &mut order, |t| t.timestamp).unwrap();
        assert_eq!(typed, as_numbers.timestamp);

        let with = |from: &str, to: &str| GOOD.replace(from, to);
        let reject = validate(&parse_json(&with("262.39", r#""262,39""#)).unwrap()).unwrap_err();
        assert_eq!(reject.reason, RejectReason::WrongType);
        assert_eq!(reject.detail, "'price' must be a number, got '262,39'");
        assert_eq!(reason(&with("262.39", r#""NaN""#)), RejectReason::BadPrice);
        assert_eq!(reason(&with("262.39", r#""""#)), RejectReason::MissingField);
        assert_eq!(
            reason(&with("3143", r#""31.5""#)),
            RejectReason::BadQuantity
        );
        assert_eq!(reason(&with("3143", r#"" ""#)), RejectReason::MissingField);
        assert_eq!(
            reason(&with("40.7128", r#""north""#)),
            RejectReason::WrongType
        );
    }

    #[test]
    fn classifies_bad_records() {
        let with = |from: &str, to: &str| GOOD.replace(from, to);
        assert_eq!(reason("{not json"), RejectReason::InvalidJson);
        for (value, word) in [
            ("NaN", "NaN"),
            ("Infinity", "Infinity"),
            ("-Infinity", "-Infinity"),
        ] {
            let line = with("262.39", value);
            let reject = parse_json(&line).unwrap_err();
            assert_eq!(reject.reason, RejectReason::InvalidJson, "{line}");
            assert!(
                reject.detail.ends_with(&format!(
                    ": {word} is not a JSON number (Python's json.dumps writes it for a float {word})"
                )),
                "{}",
                reject.detail
            );
        }
        assert_eq!(reason("[1,2]"), RejectReason::NotAnObject);
        assert_eq!(
            reason(&with(r#""symbol":"SYNTH_AMZN","#, "")),
            RejectReason::MissingField
        );
        assert_eq!(
            reason(&with(r#""symbol":"SYNTH_AMZN""#, r#""symbol":null"#)),
            RejectReason::MissingField
        );
        assert_eq!(reason(&with("262.39", "-1")), RejectReason::BadPrice);
        assert_eq!(reason(&with("262.39", "0")), RejectReason::BadPrice);
        assert_eq!(reason(&with("3143", "31.5")), RejectReason::BadQuantity);
        assert_eq!(reason(&with("3143", "0")), RejectReason::BadQuantity);
        assert_eq!(
            reason(&with("2024-01-01T11:50", "yesterday")),
            RejectReason::BadTimestamp
        );
        assert_eq!(
            reason(&with("824691.77", "1.0")),
            RejectReason::TradeValueMismatch
        );
        assert_eq!(
            reason(&with(r#""BUY""#, r#""HOLD""#)),
            RejectReason::BadSide
        );
        assert_eq!(
            reason(&with("40.7128", "400")),
            RejectReason::BadCoordinates
        );
        assert_eq!(
            reason(&with(r#""is_spoof":0"#, r#""is_spoof":7"#)),
            RejectReason::BadField
        );
        assert_eq!(
            reason(&with(r#""venue":"DARK2""#, r#""venue":{"a":1}"#)),
            RejectReason::WrongType
        );
    }

    /// The fast scanner alone.
    fn scan<'a>(text: &'a str, order: &mut KeyOrder) -> Option<RawTrade<'a>> {
        let mut raw = RawTrade::default();
        FlatScanner::new(text).object(order, &mut raw).map(|()| raw)
    }

    /// A record parsed into one that held another is that record alone, whichever path (the
    /// scanner or serde_json) each took.
    #[test]
    fn parsing_into_a_used_record_replaces_what_it_held() {
        let cases = [
            GOOD,
            r#"{"symbol": "B"}"#,
            r#"{"price": 1.5, "symbol": "a\"b", "x": [1]}"#,
            r#"{"venue": "XNYS"}"#,
            r#"{"broken"#,
            r#"{"quantity": 3}"#,
        ];
        let mut order = KeyOrder::default();
        let mut raw = RawTrade::default();
        for case in cases {
            let result = parse_json_into(case, &mut order, &mut raw);
            match parse_json(case) {
                Ok(expected) => {
                    assert!(result.is_ok(), "{case}");
                    assert_eq!(raw, expected, "{case}");
                }
                Err(expected) => assert_eq!(result.err(), Some(expected), "{case}"),
            }
        }
    }

    #[test]
    fn the_fast_scanner_agrees_with_serde_json() {
        let cases = [
            GOOD,
            r#" { "symbol" : "A" , "price" : -1.5e2 , "x": null, "y": true } "#,
            // after the case above, the expected key "symbol" is only a prefix of this one
            r#"{"symbolic": "B", "price": 1}"#,
            r#"{}"#,
            r#"{"price": 01}"#,
            r#"{"price": 1.}"#,
            r#"{"price": .5}"#,
            r#"{"price": 1e}"#,
            r#"{"price": 1,}"#,
            r#"{"price": 1} x"#,
            r#"{"symbol": "a\"b"}"#,
            r#"{"symbol": "tab	here"}"#,
            r#"{"symbol": ["nested"]}"#,
            r#"{"quantity": 99999999999999999999}"#,
            r#"{"price": 1e999}"#,
            r#"{"price": -0}"#,
            r#"{"a": tru}"#,
            r#"{"symbol": "Ünïcode"}"#,
        ];
        let mut order = KeyOrder::default();
        for case in cases {
            let fast = scan(case, &mut KeyOrder::default());
            // Read again after the previous case: the carried key order misses and recovers.
            assert_eq!(scan(case, &mut order), fast, "{case}");
            let slow = serde_json::from_str::<RawTrade<'_>>(case).ok();
            if let Some(fast) = fast {
                assert_eq!(Some(fast), slow, "{case}");
            }
            assert_eq!(parse_json(case).ok(), slow, "{case}");
        }
        assert!(
            scan(GOOD, &mut KeyOrder::default()).is_some(),
            "the common shape takes the fast path"
        );
    }

    /// Mutated messages (byte flips, insertions, cuts) never panic, and the fast scanner never
    /// accepts what serde_json rejects or reads it differently.
    #[test]
    fn mutated_messages_never_panic_and_scanners_agree() {
        let mut next = xorshift(0x2545_F491_4F6C_DD1D);
        let alphabet = b"{}[]\":,.-+eE0123456789 \\tnulltruefalse\x01\xff";
        let mut order = KeyOrder::default();
        assert!(scan(GOOD, &mut order).is_some());
        for _ in 0..20_000 {
            let mut bytes = GOOD.as_bytes().to_vec();
            for _ in 0..(1 + next() % 4) {
                let at = (next() as usize) % bytes.len();
                let b = alphabet[(next() as usize) % alphabet.len()];
                match next() % 3 {
                    0 => bytes[at] = b,
                    1 => bytes.insert(at, b),
                    _ => bytes.truncate(at.max(1)),
                }
            }
            let Ok(text) = std::str::from_utf8(&bytes) else {
                continue;
            };
            let slow = serde_json::from_str::<RawTrade<'_>>(text).ok();
            // The key order carries over, as in a stream: mutated keys must miss it cleanly.
            if let Some(fast) = scan(text, &mut order) {
                assert_eq!(Some(&fast), slow.as_ref(), "{text}");
            }
            if let Ok(raw) = parse_json(text) {
                let _ = validate(&raw);
            }
        }
    }

    /// The typed path accepts nothing `validate` rejects and gives the same trade, to the bit
    /// (compared through `Debug`, which tells -0.0 from 0.0); `decode_json` gives what
    /// `parse_json` + `validate` give, reject reasons included. The producer's message gets
    /// values of other types and forms, dropped, repeated and unknown keys, reordered keys
    /// and spaces; the key order carries over from one message to the next, as in a stream.
    #[test]
    fn the_typed_path_gives_what_validate_gives() {
        let good: Vec<(&str, &str)> = vec![
            ("timestamp", r#""2024-01-01T11:50:03.120000""#),
            ("symbol", r#""SYNTH_AMZN""#),
            ("price", "262.39"),
            ("quantity", "3143"),
            ("venue", r#""DARK2""#),
            ("is_spoof", "0"),
            ("algo_fingerprint", r#""A7""#),
            ("order_type", r#""LIMIT""#),
            ("order_id", r#""o123""#),
            ("side", r#""BUY""#),
            ("trade_value", "824691.77"),
            ("latitude", "40.7128"),
            ("longitude", "-74.006"),
        ];
        let values = [
            "null",
            r#""""#,
            r#"" x ""#,
            r#""x""#,
            r#""BUY""#,
            r#""SELL""#,
            r#""buy""#,
            r#""S""#,
            "0",
            "1",
            "-1",
            "2",
            "1.0",
            "0.5",
            "-0",
            "-0.0",
            "1e2",
            "262.39",
            "3143",
            "824691.77",
            "824691.78",
            "824691.79",
            "824691.7",
            "90",
            "-90.0001",
            "180",
            "-180.5",
            "true",
            "false",
            "[1]",
            "{}",
            r#""2024-01-01T11:50:03Z""#,
            r#""2024-01-01 11:50:03""#,
            r#""2024-13-01T00:00:00""#,
            "1704109803120",
            r#""a\"b""#,
            r#""Ünï""#,
            r#""ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456""#,
            r#""ABCDEFGHIJKLMNOPQRSTUVWXYZ012345""#,
            "12345678901234567890",
            r#""nan""#,
            "1e400",
            "0.000001",
            "262.390",
            "tru",
        ];
        let mut next = xorshift(0x8F1B_BCDC_BF6A_2E11);
        let (mut order, mut decode_order) = (KeyOrder::default(), KeyOrder::default());
        let (mut typed_count, mut cases) = (0, 0);
        for _ in 0..100_000 {
            let mut pairs: Vec<(&str, &str)> = good.clone();
            for _ in 0..(next() % 4) {
                let at = (next() as usize) % pairs.len();
                let value = values[(next() as usize) % values.len()];
                match next() % 6 {
                    0 | 1 => pairs[at].1 = value,
                    2 if pairs.len() > 1 => {
                        pairs.remove(at);
                    }
                    3 => pairs.push((pairs[at].0, value)),
                    4 => pairs.insert(at, ("extra", value)),
                    _ => {
                        let other = (next() as usize) % pairs.len();
                        pairs.swap(at, other);
                    }
                }
            }
            let spaced = next().is_multiple_of(8);
            let (comma, colon) = if spaced { (" , ", " : ") } else { (",", ":") };
            let body: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("\"{k}\"{colon}{v}"))
                .collect();
            let text = format!("{{{}}}", body.join(comma));
            cases += 1;
            let general =
                parse_json(&text).and_then(|raw| validate(&raw).map(|t| format!("{t:?}")));
            if let Some(trade) = typed_trade(&text, &mut order) {
                typed_count += 1;
                assert_eq!(Ok(format!("{trade:?}")), general, "{text}");
            }
            let decoded = decode_json(&text, &mut decode_order, |t| format!("{t:?}"));
            assert_eq!(decoded, general, "{text}");
        }
        // Most cases keep the producer's shape: the typed path must take those.
        assert!(
            typed_count > cases / 4,
            "typed path took {typed_count} of {cases}"
        );
        assert!(typed_trade(GOOD, &mut KeyOrder::default()).is_some());
    }

    /// The word-at-a-time string search finds what a byte loop finds, wherever the stop falls
    /// (first byte, a word boundary, the tail) and whatever the bytes around it (UTF-8 too).
    #[test]
    fn string_end_matches_a_byte_loop() {
        let mut next = xorshift(0x9E37_79B9_7F4A_7C15);
        let alphabet = b"aZ09 _-.:~\x7f\x80\xc3\xa9\xff\x00\x1f\x20\"\\!#";
        for _ in 0..50_000 {
            let len = (next() % 40) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    // mostly plain text, so stops land anywhere in longer runs
                    if next().is_multiple_of(6) {
                        alphabet[(next() as usize) % alphabet.len()]
                    } else {
                        b'a' + (next() % 26) as u8
                    }
                })
                .collect();
            let expected = bytes
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20);
            assert_eq!(string_end(&bytes), expected, "{bytes:?}");
        }
    }

    /// The one-pass plain string end agrees with [`string_end`] and [`is_plain`] for every
    /// byte value at every position of bodies up to 40 bytes, with more bytes after the quote
    /// or none.
    #[test]
    fn plain_end_matches_string_end_and_is_plain() {
        let two_passes = |bytes: &[u8]| {
            let end = string_end(bytes)?;
            (bytes[end] == b'"' && is_plain_bytes(&bytes[..end])).then_some(end)
        };
        for n in 0..=40usize {
            for after in [&b"\""[..], b"\",\"symbol\":1}"] {
                let mut base: Vec<u8> = (0..n).map(|i| b'!' + (i % 90) as u8).collect();
                base.retain(|&b| b != b'"' && b != b'\\');
                base.extend_from_slice(after);
                assert_eq!(plain_end(&base), two_passes(&base), "{base:?}");
                for at in 0..base.len() {
                    for b in 0..=255u8 {
                        let mut bytes = base.clone();
                        bytes[at] = b;
                        assert_eq!(plain_end(&bytes), two_passes(&bytes), "{bytes:?}");
                    }
                }
            }
        }
    }

    /// The word-at-a-time check agrees with a byte loop for every byte value at every
    /// position of strings up to 40 bytes (whole words, the tail, both).
    #[test]
    fn is_plain_matches_a_byte_loop() {
        let byte_loop = |s: &[u8]| !s.is_empty() && s.iter().all(|&b| b > b' ' && b < 0x7F);
        for n in 0..=40usize {
            let base: Vec<u8> = (0..n).map(|i| b'!' + (i % 90) as u8).collect();
            assert_eq!(is_plain_bytes(&base), byte_loop(&base), "{base:?}");
            for at in 0..n {
                for b in 0..=255u8 {
                    let mut bytes = base.clone();
                    bytes[at] = b;
                    assert_eq!(is_plain_bytes(&bytes), byte_loop(&bytes), "{bytes:?}");
                }
            }
        }
    }

    /// The word-at-a-time comparison agrees with slice equality for every length a key can
    /// have and a difference at every position (first byte, word boundaries, the tail).
    #[test]
    fn same_bytes_matches_slice_equality() {
        for n in 0..=40usize {
            let a: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
            assert!(same_bytes(&a, &a.clone()), "length {n}");
            for at in 0..n {
                let mut b = a.clone();
                b[at] ^= 0x20;
                assert!(!same_bytes(&a, &b), "length {n}, difference at {at}");
            }
            if n > 0 {
                assert!(!same_bytes(&a, &a[..n - 1]), "lengths {n} and {}", n - 1);
            }
        }
    }

    /// The short-decimal fast path gives exactly what `str::parse` gives.
    #[test]
    fn short_decimals_equal_the_standard_parse() {
        let mut next = xorshift(0xD1B5_4A32_D192_ED03);
        for _ in 0..200_000 {
            let int_digits = 1 + (next() % 15) as usize;
            let frac = (next() % (16 - int_digits as u64)) as usize;
            let mut text = String::new();
            if next().is_multiple_of(4) {
                text.push('-');
            }
            let first = if int_digits == 1 {
                next() % 10
            } else {
                1 + next() % 9
            };
            text.push(char::from(b'0' + first as u8));
            for _ in 1..int_digits {
                text.push(char::from(b'0' + (next() % 10) as u8));
            }
            if frac > 0 {
                text.push('.');
                for _ in 0..frac {
                    text.push(char::from(b'0' + (next() % 10) as u8));
                }
            }
            let got = FlatScanner::new(&text).number();
            let expected = if frac == 0 && text != "-0" {
                Scalar::Int(text.parse().unwrap())
            } else {
                Scalar::Float(text.parse().unwrap())
            };
            match (&got, &expected) {
                (Some(Scalar::Float(a)), Scalar::Float(b)) => {
                    assert_eq!(a.to_bits(), b.to_bits(), "{text}")
                }
                _ => assert_eq!(got.as_ref(), Some(&expected), "{text}"),
            }
        }
    }

    #[test]
    fn text_cells_are_parsed_as_numbers() {
        let mut raw = RawTrade::default();
        for (f, v) in [
            (Field::Timestamp, "1704109803120"),
            (Field::Symbol, "SPY"),
            (Field::Price, " 10.5 "),
            (Field::Quantity, "100"),
            (Field::Venue, "LIT"),
            (Field::IsSpoof, "1"),
            (Field::Side, "sell"),
        ] {
            raw.set(f, Scalar::Text(Cow::Borrowed(v)));
        }
        let t = validate(&raw).unwrap();
        assert_eq!(
            (t.price, t.quantity, t.is_spoof, t.side),
            (10.5, 100, true, Some(Side::Sell))
        );
        raw.set(Field::Price, Scalar::Text("NaN".into()));
        assert_eq!(validate(&raw).unwrap_err().reason, RejectReason::BadPrice);
        raw.set(Field::Price, Scalar::Text("inf".into()));
        assert_eq!(validate(&raw).unwrap_err().reason, RejectReason::BadPrice);
    }

    #[test]
    fn epoch_numbers_in_another_unit_are_refused_and_fractions_kept() {
        let mut raw = RawTrade::default();
        raw.set(Field::Symbol, Scalar::Str("SPY".into()));
        raw.set(Field::Price, Scalar::Float(10.0));
        raw.set(Field::Quantity, Scalar::Int(1));
        raw.set(Field::Venue, Scalar::Str("LIT".into()));
        // Epoch seconds read as milliseconds would be a trade in January 1970.
        raw.set(Field::Timestamp, Scalar::Int(1_704_109_803));
        let reject = validate(&raw).unwrap_err();
        assert_eq!(reject.reason, RejectReason::BadTimestamp);
        assert!(
            reject.detail.contains("epoch seconds?"),
            "{}",
            reject.detail
        );
        raw.set(Field::Timestamp, Scalar::Int(1_704_109_803_120_000));
        assert!(validate(&raw).unwrap_err().detail.contains("nanoseconds?"));
        raw.set(Field::Timestamp, Scalar::Float(1_704_109_803_120.25));
        assert_eq!(validate(&raw).unwrap().timestamp, 1_704_109_803_120_250);
        raw.set(Field::Quantity, Scalar::Float(2f64.powi(63)));
        assert!(validate(&raw).unwrap_err().detail.contains("too large"));
    }
}
