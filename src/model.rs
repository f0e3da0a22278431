//! Trades, rejects and late trades: the only place their schemas are spelled out, and the Arrow
//! builders that fill them. (The window schema is whatever `sql/window_aggregate.sql` returns,
//! plus `is_final` and `version`; see [`crate::window`].)

use std::sync::{Arc, LazyLock};

use arrow::array::{
    Array, ArrayBuilder, ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Float64Builder,
    Int32Builder, Int64Builder, PrimitiveBuilder, RecordBatch, StringArray, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::buffer::{Buffer, OffsetBuffer};
use arrow::datatypes::{ArrowPrimitiveType, DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::venue::Registry;

/// UTC microsecond timestamps: the one time type of darkpool.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn source_fields() -> [Field; 5] {
    [
        Field::new("source_file", DataType::Utf8, true),
        Field::new("source_line", DataType::Int64, true),
        Field::new("source_topic", DataType::Utf8, true),
        Field::new("source_partition", DataType::Int32, true),
        Field::new("source_offset", DataType::Int64, true),
    ]
}

fn trade_fields() -> Vec<Field> {
    let mut fields = vec![
        Field::new("timestamp", timestamp_type(), false),
        Field::new("symbol", DataType::Utf8, false),
        Field::new("price", DataType::Float64, false),
        Field::new("quantity", DataType::Int64, false),
        Field::new("venue", DataType::Utf8, false),
        Field::new("venue_kind", DataType::Utf8, false),
        Field::new("side", DataType::Utf8, true),
        Field::new("order_type", DataType::Utf8, true),
        Field::new("order_id", DataType::Utf8, true),
        Field::new("algo_fingerprint", DataType::Utf8, true),
        Field::new("is_spoof", DataType::Boolean, false),
        Field::new("trade_value", DataType::Float64, false),
        Field::new("latitude", DataType::Float64, true),
        Field::new("longitude", DataType::Float64, true),
        Field::new("sale_condition", DataType::Utf8, true),
        Field::new("extended_hours", DataType::Boolean, true),
    ];
    fields.extend(source_fields());
    fields
}

static TRADES: LazyLock<SchemaRef> = LazyLock::new(|| Arc::new(Schema::new(trade_fields())));

static LATE: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = trade_fields();
    fields.push(Field::new("watermark", timestamp_type(), false));
    Arc::new(Schema::new(fields))
});

static REJECTS: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = vec![
        Field::new("rejected_at", timestamp_type(), false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("detail", DataType::Utf8, false),
        Field::new("raw", DataType::Binary, false),
        Field::new("raw_text", DataType::Utf8, false),
        Field::new("raw_bytes", DataType::Int64, false),
    ];
    fields.extend(source_fields());
    Arc::new(Schema::new(fields))
});

static ATS_WEEKLY: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = vec![
        Field::new("week_start", DataType::Date32, false),
        Field::new("symbol", DataType::Utf8, false),
        Field::new("issue_name", DataType::Utf8, true),
        Field::new("mpid", DataType::Utf8, false),
        Field::new("ats_name", DataType::Utf8, true),
        Field::new("shares", DataType::Int64, false),
        Field::new("trades", DataType::Int64, false),
        Field::new("notional", DataType::Float64, true),
        Field::new("tier", DataType::Utf8, true),
        Field::new("tier_id", DataType::Utf8, true),
        Field::new("summary_type", DataType::Utf8, true),
        Field::new("last_update", DataType::Date32, true),
        Field::new("loaded_at", timestamp_type(), false),
    ];
    fields.extend(source_fields());
    Arc::new(Schema::new(fields))
});

static SHORT_VOLUME: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = vec![
        Field::new("date", DataType::Date32, false),
        Field::new("symbol", DataType::Utf8, false),
        Field::new("facility", DataType::Utf8, false),
        Field::new("short_volume", DataType::Float64, false),
        Field::new("short_exempt_volume", DataType::Float64, false),
        Field::new("total_volume", DataType::Float64, false),
        Field::new("market", DataType::Utf8, true),
        Field::new("loaded_at", timestamp_type(), false),
    ];
    fields.extend(source_fields());
    Arc::new(Schema::new(fields))
});

/// The `ats_weekly_history` table: every FINRA OTC Transparency ATS row loaded (per week,
/// symbol and ATS), with when it was loaded; `ats_weekly` keeps the latest publication per key.
pub fn ats_weekly_schema() -> SchemaRef {
    ATS_WEEKLY.clone()
}

/// The `short_volume_history` table: every FINRA Reg SHO daily short-sale volume row loaded;
/// `short_volume` keeps the latest load per (date, symbol, facility).
pub fn short_volume_schema() -> SchemaRef {
    SHORT_VOLUME.clone()
}

/// The `trades` table: the original message fields, `venue_kind`, and where each row came from.
pub fn trades_schema() -> SchemaRef {
    TRADES.clone()
}

/// The `late` table: trades that arrived after their window was final, with the watermark then.
pub fn late_schema() -> SchemaRef {
    LATE.clone()
}

/// The `rejects` table: raw input that was not a valid trade, with the reason and its position.
pub fn rejects_schema() -> SchemaRef {
    REJECTS.clone()
}

/// The `venues` table (the registry).
pub fn venues_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("code", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("latitude", DataType::Float64, false),
        Field::new("longitude", DataType::Float64, false),
        Field::new("site", DataType::Utf8, false),
        Field::new("notes", DataType::Utf8, false),
    ]))
}

/// Where a row came from: a file and line, or a topic, partition and offset.
#[derive(Debug, Clone, Default)]
pub struct SourcePos {
    pub file: Option<Arc<str>>,
    pub line: Option<i64>,
    pub topic: Option<Arc<str>>,
    pub partition: Option<i32>,
    pub offset: Option<i64>,
}

/// Buy or sell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "BUY",
            Side::Sell => "SELL",
        }
    }
}

/// A validated trade, borrowing its text from the input line.
#[derive(Debug, Clone, PartialEq)]
pub struct Trade<'a> {
    pub timestamp: i64,
    pub symbol: &'a str,
    pub price: f64,
    pub quantity: i64,
    pub venue: &'a str,
    pub side: Option<Side>,
    pub order_type: Option<&'a str>,
    pub order_id: Option<&'a str>,
    pub algo_fingerprint: Option<&'a str>,
    pub is_spoof: bool,
    pub trade_value: f64,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    /// Tape sale-condition codes as printed (TAQ `COND`), when the source has them.
    pub sale_condition: Option<&'a str>,
    /// Printed outside regular trading hours by its sale condition (TAQ `T`/`U`), when known.
    pub extended_hours: Option<bool>,
}

#[cfg(test)]
impl<'a> Trade<'a> {
    /// A trade with only the required fields (and its value), for unit tests.
    pub(crate) fn bare(
        timestamp: i64,
        symbol: &'a str,
        price: f64,
        quantity: i64,
        venue: &'a str,
    ) -> Trade<'a> {
        Trade {
            timestamp,
            symbol,
            price,
            quantity,
            venue,
            side: None,
            order_type: None,
            order_id: None,
            algo_fingerprint: None,
            is_spoof: false,
            trade_value: price * quantity as f64,
            latitude: None,
            longitude: None,
            sale_condition: None,
            extended_hours: None,
        }
    }
}

#[derive(Default)]
struct SourceBuilders {
    file: RepeatedStrings,
    line: Int64Builder,
    topic: RepeatedStrings,
    partition: Int32Builder,
    offset: Int64Builder,
}

impl SourceBuilders {
    fn append(&mut self, pos: &SourcePos) {
        self.file.append(pos.file.as_ref());
        self.line.append_option(pos.line);
        self.topic.append(pos.topic.as_ref());
        self.partition.append_option(pos.partition);
        self.offset.append_option(pos.offset);
    }

    fn finish_into(&mut self, columns: &mut Vec<ArrayRef>) {
        columns.push(self.file.finish());
        columns.push(finish_values(&mut self.line));
        columns.push(self.topic.finish());
        columns.push(finish_values(&mut self.partition));
        columns.push(finish_values(&mut self.offset));
    }
}

/// A text column of long runs of one value (the source file or topic of a batch): a run of the
/// same `Arc` is counted, not copied row by row, and a column that is one run is built whole.
#[derive(Default)]
struct RepeatedStrings {
    rows: StringBuilder,
    /// The run at the end, not yet in `rows`.
    run: Option<(Arc<str>, usize)>,
}

impl RepeatedStrings {
    fn append(&mut self, value: Option<&Arc<str>>) {
        match (value, &mut self.run) {
            (Some(value), Some((run, n))) if Arc::ptr_eq(value, run) => *n += 1,
            (value, _) => {
                self.end_run();
                match value {
                    Some(value) => self.run = Some((value.clone(), 1)),
                    None => self.rows.append_null(),
                }
            }
        }
    }

    fn end_run(&mut self) {
        if let Some((value, n)) = self.run.take() {
            for _ in 0..n {
                self.rows.append_value(&*value);
            }
        }
    }

    fn finish(&mut self) -> ArrayRef {
        if self.rows.is_empty() {
            // (i32 offsets: a longer column goes row by row, and fails there as any would)
            let fits = |(value, n): &&(Arc<str>, usize)| {
                value
                    .len()
                    .checked_mul(*n)
                    .is_some_and(|b| b <= i32::MAX as usize)
            };
            if let Some((value, n)) = self.run.as_ref().filter(fits) {
                let offsets = OffsetBuffer::from_lengths(std::iter::repeat_n(value.len(), *n));
                let bytes = Buffer::from(value.as_bytes().repeat(*n));
                if let Ok(array) = StringArray::try_new(offsets, bytes, None) {
                    self.run = None;
                    return Arc::new(array);
                }
            }
        }
        self.end_run();
        finish_strings(&mut self.rows)
    }
}

/// Finish a column builder, leaving it empty with room for as many values.
fn finish_strings(builder: &mut StringBuilder) -> ArrayRef {
    let array = builder.finish();
    *builder = StringBuilder::with_capacity(array.len(), array.value_data().len());
    Arc::new(array)
}

fn finish_values<T: ArrowPrimitiveType>(builder: &mut PrimitiveBuilder<T>) -> ArrayRef {
    let array = builder.finish();
    *builder =
        PrimitiveBuilder::<T>::with_capacity(array.len()).with_data_type(array.data_type().clone());
    Arc::new(array)
}

fn finish_bools(builder: &mut BooleanBuilder) -> ArrayRef {
    let array = builder.finish();
    *builder = BooleanBuilder::with_capacity(array.len());
    Arc::new(array)
}

/// Counts of trades whose venue is not in the registry.
pub type UnknownVenues = std::collections::BTreeMap<String, u64>;

/// Appends validated trades to Arrow columns of [`trades_schema`], filling `venue_kind` and
/// missing coordinates from the registry.
pub struct TradeBuilder {
    registry: Arc<Registry>,
    timestamp: TimestampMicrosecondBuilder,
    symbol: StringBuilder,
    price: Float64Builder,
    quantity: Int64Builder,
    venue: StringBuilder,
    venue_kind: StringBuilder,
    side: StringBuilder,
    order_type: StringBuilder,
    order_id: StringBuilder,
    algo_fingerprint: StringBuilder,
    is_spoof: BooleanBuilder,
    trade_value: Float64Builder,
    latitude: Float64Builder,
    longitude: Float64Builder,
    sale_condition: StringBuilder,
    extended_hours: BooleanBuilder,
    source: SourceBuilders,
    rows: usize,
    /// Trades per venue code the registry does not know.
    pub unknown_venues: UnknownVenues,
}

impl TradeBuilder {
    pub fn new(registry: Arc<Registry>) -> Self {
        TradeBuilder {
            registry,
            timestamp: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            symbol: StringBuilder::new(),
            price: Float64Builder::new(),
            quantity: Int64Builder::new(),
            venue: StringBuilder::new(),
            venue_kind: StringBuilder::new(),
            side: StringBuilder::new(),
            order_type: StringBuilder::new(),
            order_id: StringBuilder::new(),
            algo_fingerprint: StringBuilder::new(),
            is_spoof: BooleanBuilder::new(),
            trade_value: Float64Builder::new(),
            latitude: Float64Builder::new(),
            longitude: Float64Builder::new(),
            sale_condition: StringBuilder::new(),
            extended_hours: BooleanBuilder::new(),
            source: SourceBuilders::default(),
            rows: 0,
            unknown_venues: UnknownVenues::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn append(&mut self, trade: &Trade<'_>, pos: &SourcePos) {
        // A code in other case (`xnys`) is its registry venue under the registry's spelling:
        // MICs and MPIDs are upper case, and `xnys` must not become an unknown venue.
        let mut canonical: Option<String> = None;
        let venue = self.registry.lookup(trade.venue).or_else(|| {
            if !trade.venue.bytes().any(|b| b.is_ascii_lowercase()) {
                return None;
            }
            let upper = trade.venue.to_ascii_uppercase();
            let found = self.registry.lookup(&upper)?;
            canonical = Some(upper);
            Some(found)
        });
        let (kind, lat, lon) = match venue {
            Some(v) => (v.kind.as_str(), Some(v.latitude), Some(v.longitude)),
            None => {
                match self.unknown_venues.get_mut(trade.venue) {
                    Some(n) => *n += 1,
                    None => {
                        self.unknown_venues.insert(trade.venue.to_string(), 1);
                    }
                }
                ("unknown", None, None)
            }
        };
        self.timestamp.append_value(trade.timestamp);
        self.symbol.append_value(trade.symbol);
        self.price.append_value(trade.price);
        self.quantity.append_value(trade.quantity);
        self.venue
            .append_value(canonical.as_deref().unwrap_or(trade.venue));
        self.venue_kind.append_value(kind);
        self.side.append_option(trade.side.map(Side::as_str));
        self.order_type.append_option(trade.order_type);
        self.order_id.append_option(trade.order_id);
        self.algo_fingerprint.append_option(trade.algo_fingerprint);
        self.is_spoof.append_value(trade.is_spoof);
        self.trade_value.append_value(trade.trade_value);
        self.latitude.append_option(trade.latitude.or(lat));
        self.longitude.append_option(trade.longitude.or(lon));
        self.sale_condition.append_option(trade.sale_condition);
        self.extended_hours.append_option(trade.extended_hours);
        self.source.append(pos);
        self.rows += 1;
    }

    /// The rows appended so far as one batch; the builder starts empty again, with room for
    /// as many rows (batches repeat in size, and growing columns row by row costs copies).
    pub fn finish(&mut self) -> RecordBatch {
        let mut columns: Vec<ArrayRef> = vec![
            finish_values(&mut self.timestamp),
            finish_strings(&mut self.symbol),
            finish_values(&mut self.price),
            finish_values(&mut self.quantity),
            finish_strings(&mut self.venue),
            finish_strings(&mut self.venue_kind),
            finish_strings(&mut self.side),
            finish_strings(&mut self.order_type),
            finish_strings(&mut self.order_id),
            finish_strings(&mut self.algo_fingerprint),
            finish_bools(&mut self.is_spoof),
            finish_values(&mut self.trade_value),
            finish_values(&mut self.latitude),
            finish_values(&mut self.longitude),
            finish_strings(&mut self.sale_condition),
            finish_bools(&mut self.extended_hours),
        ];
        self.source.finish_into(&mut columns);
        self.rows = 0;
        RecordBatch::try_new(trades_schema(), columns)
            .unwrap_or_else(|e| unreachable!("trade columns follow trades_schema: {e}"))
    }
}

/// One ATS's weekly volume in one symbol, as FINRA publishes it (days since the epoch for dates).
#[derive(Debug, Clone, PartialEq)]
pub struct AtsWeek<'a> {
    pub week_start: i32,
    pub symbol: &'a str,
    pub issue_name: Option<&'a str>,
    pub mpid: &'a str,
    pub ats_name: Option<&'a str>,
    pub shares: i64,
    pub trades: i64,
    pub notional: Option<f64>,
    pub tier: Option<&'a str>,
    pub tier_id: Option<&'a str>,
    pub summary_type: Option<&'a str>,
    pub last_update: Option<i32>,
}

/// Appends rows to Arrow columns of [`ats_weekly_schema`].
#[derive(Default)]
pub struct AtsWeekBuilder {
    week_start: Date32Builder,
    symbol: StringBuilder,
    issue_name: StringBuilder,
    mpid: StringBuilder,
    ats_name: StringBuilder,
    shares: Int64Builder,
    trades: Int64Builder,
    notional: Float64Builder,
    tier: StringBuilder,
    tier_id: StringBuilder,
    summary_type: StringBuilder,
    last_update: Date32Builder,
    loaded_at: TimestampMicrosecondBuilder,
    source: SourceBuilders,
    rows: usize,
}

impl AtsWeekBuilder {
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn append(&mut self, row: &AtsWeek<'_>, loaded_at: i64, pos: &SourcePos) {
        self.week_start.append_value(row.week_start);
        self.symbol.append_value(row.symbol);
        self.issue_name.append_option(row.issue_name);
        self.mpid.append_value(row.mpid);
        self.ats_name.append_option(row.ats_name);
        self.shares.append_value(row.shares);
        self.trades.append_value(row.trades);
        self.notional.append_option(row.notional);
        self.tier.append_option(row.tier);
        self.tier_id.append_option(row.tier_id);
        self.summary_type.append_option(row.summary_type);
        self.last_update.append_option(row.last_update);
        self.loaded_at.append_value(loaded_at);
        self.source.append(pos);
        self.rows += 1;
    }

    pub fn finish(&mut self) -> RecordBatch {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.week_start.finish()),
            Arc::new(self.symbol.finish()),
            Arc::new(self.issue_name.finish()),
            Arc::new(self.mpid.finish()),
            Arc::new(self.ats_name.finish()),
            Arc::new(self.shares.finish()),
            Arc::new(self.trades.finish()),
            Arc::new(self.notional.finish()),
            Arc::new(self.tier.finish()),
            Arc::new(self.tier_id.finish()),
            Arc::new(self.summary_type.finish()),
            Arc::new(self.last_update.finish()),
            Arc::new(self.loaded_at.finish().with_timezone("UTC")),
        ];
        self.source.finish_into(&mut columns);
        self.rows = 0;
        RecordBatch::try_new(ats_weekly_schema(), columns)
            .unwrap_or_else(|e| unreachable!("ATS columns follow ats_weekly_schema: {e}"))
    }
}

/// One facility's short-sale volume in one symbol on one day (FINRA Reg SHO).
#[derive(Debug, Clone, PartialEq)]
pub struct ShortDay<'a> {
    pub date: i32,
    pub symbol: &'a str,
    pub facility: &'a str,
    pub short_volume: f64,
    pub short_exempt_volume: f64,
    pub total_volume: f64,
    pub market: Option<&'a str>,
}

/// Appends rows to Arrow columns of [`short_volume_schema`].
#[derive(Default)]
pub struct ShortDayBuilder {
    date: Date32Builder,
    symbol: StringBuilder,
    facility: StringBuilder,
    short_volume: Float64Builder,
    short_exempt_volume: Float64Builder,
    total_volume: Float64Builder,
    market: StringBuilder,
    loaded_at: TimestampMicrosecondBuilder,
    source: SourceBuilders,
    rows: usize,
}

impl ShortDayBuilder {
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn append(&mut self, row: &ShortDay<'_>, loaded_at: i64, pos: &SourcePos) {
        self.date.append_value(row.date);
        self.symbol.append_value(row.symbol);
        self.facility.append_value(row.facility);
        self.short_volume.append_value(row.short_volume);
        self.short_exempt_volume
            .append_value(row.short_exempt_volume);
        self.total_volume.append_value(row.total_volume);
        self.market.append_option(row.market);
        self.loaded_at.append_value(loaded_at);
        self.source.append(pos);
        self.rows += 1;
    }

    pub fn finish(&mut self) -> RecordBatch {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.date.finish()),
            Arc::new(self.symbol.finish()),
            Arc::new(self.facility.finish()),
            Arc::new(self.short_volume.finish()),
            Arc::new(self.short_exempt_volume.finish()),
            Arc::new(self.total_volume.finish()),
            Arc::new(self.market.finish()),
            Arc::new(self.loaded_at.finish().with_timezone("UTC")),
        ];
        self.source.finish_into(&mut columns);
        self.rows = 0;
        RecordBatch::try_new(short_volume_schema(), columns).unwrap_or_else(|e| {
            unreachable!("short volume columns follow short_volume_schema: {e}")
        })
    }
}

/// Why an input record was rejected: a stable code (the `reason` column) for grouping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RejectReason {
    InvalidUtf8,
    InvalidJson,
    NotAnObject,
    LineTooLong,
    MissingField,
    WrongType,
    BadTimestamp,
    BadPrice,
    BadQuantity,
    BadSymbol,
    BadVenue,
    BadSide,
    BadCoordinates,
    TradeValueMismatch,
    BadField,
    WrongFieldCount,
    BadDate,
    BadVolume,
    OtherSummaryType,
    RecordCountMismatch,
    Correction,
    NullValue,
}

impl RejectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::InvalidUtf8 => "invalid_utf8",
            RejectReason::InvalidJson => "invalid_json",
            RejectReason::NotAnObject => "not_an_object",
            RejectReason::LineTooLong => "line_too_long",
            RejectReason::MissingField => "missing_field",
            RejectReason::WrongType => "wrong_type",
            RejectReason::BadTimestamp => "bad_timestamp",
            RejectReason::BadPrice => "bad_price",
            RejectReason::BadQuantity => "bad_quantity",
            RejectReason::BadSymbol => "bad_symbol",
            RejectReason::BadVenue => "bad_venue",
            RejectReason::BadSide => "bad_side",
            RejectReason::BadCoordinates => "bad_coordinates",
            RejectReason::TradeValueMismatch => "trade_value_mismatch",
            RejectReason::BadField => "bad_field",
            RejectReason::WrongFieldCount => "wrong_field_count",
            RejectReason::BadDate => "bad_date",
            RejectReason::BadVolume => "bad_volume",
            RejectReason::OtherSummaryType => "other_summary_type",
            RejectReason::RecordCountMismatch => "record_count_mismatch",
            RejectReason::Correction => "correction",
            RejectReason::NullValue => "null_value",
        }
    }
}

/// A record that is not a valid trade.
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    pub reason: RejectReason,
    pub detail: String,
}

impl Reject {
    pub fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Reject {
            reason,
            detail: detail.into(),
        }
    }

    /// A required field absent or null.
    pub fn missing(name: &str) -> Self {
        Reject::new(
            RejectReason::MissingField,
            format!("required field '{name}' is missing or null"),
        )
    }

    /// A line with another number of fields than its header.
    pub fn field_count(expected: usize, found: usize) -> Self {
        Reject::new(
            RejectReason::WrongFieldCount,
            format!("expected {expected} fields as in the header, found {found}"),
        )
    }
}

/// Appends rejected records to Arrow columns of [`rejects_schema`].
pub struct RejectBuilder {
    rejected_at: TimestampMicrosecondBuilder,
    reason: StringBuilder,
    detail: StringBuilder,
    raw: BinaryBuilder,
    raw_text: StringBuilder,
    raw_bytes: Int64Builder,
    source: SourceBuilders,
    rows: usize,
}

impl Default for RejectBuilder {
    fn default() -> Self {
        RejectBuilder {
            rejected_at: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            reason: StringBuilder::new(),
            detail: StringBuilder::new(),
            raw: BinaryBuilder::new(),
            raw_text: StringBuilder::new(),
            raw_bytes: Int64Builder::new(),
            source: SourceBuilders::default(),
            rows: 0,
        }
    }
}

impl RejectBuilder {
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// `raw` is what was kept of the record (exact bytes; `raw_text` is the same as UTF-8 with
    /// invalid bytes replaced), `raw_bytes` its full length (longer when an oversize line was
    /// cut at the line limit).
    pub fn append(
        &mut self,
        at: i64,
        reject: &Reject,
        raw: &[u8],
        raw_bytes: usize,
        pos: &SourcePos,
    ) {
        self.rejected_at.append_value(at);
        self.reason.append_value(reject.reason.as_str());
        self.detail.append_value(&reject.detail);
        self.raw.append_value(raw);
        self.raw_text.append_value(String::from_utf8_lossy(raw));
        self.raw_bytes.append_value(raw_bytes as i64);
        self.source.append(pos);
        self.rows += 1;
    }

    pub fn finish(&mut self) -> RecordBatch {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.rejected_at.finish()),
            Arc::new(self.reason.finish()),
            Arc::new(self.detail.finish()),
            Arc::new(self.raw.finish()),
            Arc::new(self.raw_text.finish()),
            Arc::new(self.raw_bytes.finish()),
        ];
        self.source.finish_into(&mut columns);
        self.rows = 0;
        RecordBatch::try_new(rejects_schema(), columns)
            .unwrap_or_else(|e| unreachable!("reject columns follow rejects_schema: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(builder: &mut RepeatedStrings) -> Vec<Option<String>> {
        let array = builder.finish();
        let strings = array.as_any().downcast_ref::<StringArray>().unwrap();
        strings.iter().map(|v| v.map(str::to_string)).collect()
    }

    /// Runs, nulls and equal text in different `Arc`s all come out row for row, and the
    /// builder starts over empty after each finish.
    #[test]
    fn repeated_strings_keep_every_row() {
        let (a, b, a_again) = (Arc::from("topic-a"), Arc::from("b"), Arc::from("topic-a"));
        let mut builder = RepeatedStrings::default();
        for value in [
            Some(&a),
            Some(&a),
            None,
            Some(&b),
            Some(&a_again),
            Some(&a),
            None,
        ] {
            builder.append(value);
        }
        let expected = ["topic-a", "topic-a", "", "b", "topic-a", "topic-a", ""]
            .map(|v| (!v.is_empty()).then(|| v.to_string()));
        assert_eq!(column(&mut builder), expected);
        for _ in 0..3 {
            builder.append(Some(&b));
        }
        assert_eq!(column(&mut builder), vec![Some("b".to_string()); 3]);
        assert_eq!(column(&mut builder), Vec::<Option<String>>::new());
        builder.append(None);
        assert_eq!(column(&mut builder), vec![None]);
    }

    /// A registry code in other case is that venue, under the registry's spelling; a code the
    /// registry lacks in any case stays as sent, kind `unknown`, counted.
    #[test]
    fn venue_codes_match_the_registry_in_any_case() {
        let mut builder = TradeBuilder::new(Arc::new(Registry::embedded()));
        for venue in ["xnys", "XNYS", "Dark1", "nowhere"] {
            let trade = Trade::bare(0, "SPY", 1.0, 1, venue);
            builder.append(&trade, &SourcePos::default());
        }
        let unknown = builder.unknown_venues.clone();
        let batch = builder.finish();
        let text = |name: &str| -> Vec<String> {
            let column = batch.column_by_name(name).unwrap();
            let strings = column.as_any().downcast_ref::<StringArray>().unwrap();
            strings.iter().map(|v| v.unwrap().to_string()).collect()
        };
        assert_eq!(text("venue"), ["XNYS", "XNYS", "DARK1", "nowhere"]);
        assert_eq!(text("venue_kind"), ["lit", "lit", "dark", "unknown"]);
        assert_eq!(unknown.get("nowhere"), Some(&1));
        assert_eq!(unknown.len(), 1);
    }
}
