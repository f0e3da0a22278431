//! TAQ-style tick prints: `SYMBOL,DATE,TIME,PRICE,SIZE,G127,CORR,COND,EX` with the time in
//! US/Eastern, into `trades` like any other source.
//!
//! - `EX`, the tape's exchange code, maps to a venue of the registry by [`TAPE_CODES`]; `D` is
//!   FINRA's ADF/TRF, i.e. off-exchange (a `TRF`/`TR_RF` column names the facility).
//! - `CORR != 0` (cancelled, corrected or error prints) are excluded and counted, and kept in
//!   the rejects table with reason `correction`.
//! - Odd lots (under 100 shares) are kept and counted. Sale conditions `T` and `U` mark prints
//!   outside regular hours: kept, with `extended_hours = true`.
//! - Other vendors' column names map with `--taq-columns field=HEADER,...`; the defaults also
//!   know WRDS's names (`SYM_ROOT`, `TIME_M`, `TR_CORR`, `TR_SCOND`, `TR_RF`).

use std::path::Path;
use std::sync::Arc;

use arrow::array::RecordBatch;

use super::csv::{field_count_reject, split_line};
use super::decode::{check_code, round_cents};
use super::{DecodeStats, Line, Records, SourceError};
use crate::lake::Table;
use crate::model::{Reject, RejectReason, SourcePos, Trade, TradeBuilder};
use crate::time::{eastern_to_utc, parse_date, parse_time_of_day};
use crate::venue::Registry;

/// Tape exchange (participant) codes and the registry venue each maps to.
pub const TAPE_CODES: [(&str, &str, &str); 19] = [
    ("A", "XASE", "NYSE American"),
    ("B", "XBOS", "Nasdaq BX"),
    ("C", "XCIS", "NYSE National"),
    ("D", "FINR", "FINRA ADF/TRF (off-exchange)"),
    ("H", "EPRL", "MIAX Pearl"),
    ("J", "EDGA", "Cboe EDGA"),
    ("K", "EDGX", "Cboe EDGX"),
    ("L", "LTSE", "Long-Term Stock Exchange"),
    ("M", "XCHI", "NYSE Chicago"),
    ("N", "XNYS", "New York Stock Exchange"),
    ("P", "ARCX", "NYSE Arca"),
    ("Q", "XNAS", "Nasdaq"),
    ("T", "XNAS", "Nasdaq (older UTP files)"),
    ("U", "MEMX", "Members Exchange"),
    ("V", "IEXG", "Investors Exchange"),
    ("X", "XPHL", "Nasdaq PSX"),
    ("Y", "BATY", "Cboe BYX"),
    ("Z", "BATS", "Cboe BZX"),
    (
        "W",
        "CBSX",
        "CBOE Stock Exchange (closed 2014; not in the registry: kind unknown)",
    ),
];

/// For `EX = D`, the TRF column's facility code and the registry venue.
const TRF_CODES: [(&str, &str); 4] = [("N", "FINY"), ("Q", "FINN"), ("T", "FINN"), ("B", "FINC")];

/// The fields of a print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaqField {
    Symbol,
    Date,
    Time,
    Price,
    Size,
    Corr,
    Cond,
    Ex,
    Trf,
    Suffix,
}

const FIELDS: [(TaqField, &str, &[&str]); 10] = [
    (TaqField::Symbol, "symbol", &["symbol", "sym_root", "sym"]),
    (TaqField::Date, "date", &["date"]),
    (TaqField::Time, "time", &["time", "time_m"]),
    (TaqField::Price, "price", &["price"]),
    (TaqField::Size, "size", &["size"]),
    (TaqField::Corr, "corr", &["corr", "tr_corr"]),
    (TaqField::Cond, "cond", &["cond", "tr_scond"]),
    (TaqField::Ex, "ex", &["ex"]),
    (TaqField::Trf, "trf", &["trf", "tr_rf"]),
    // WRDS splits a class-share symbol: SYM_ROOT BRK, SYM_SUFFIX B.
    (TaqField::Suffix, "suffix", &["sym_suffix", "suffix"]),
];

const REQUIRED: [TaqField; 6] = [
    TaqField::Symbol,
    TaqField::Date,
    TaqField::Time,
    TaqField::Price,
    TaqField::Size,
    TaqField::Ex,
];

/// Does a (lower-cased) header line look like TAQ prints?
pub fn looks_like_header(line: &str) -> bool {
    let names: Vec<String> = split_line(line)
        .iter()
        .map(|n| n.trim().to_ascii_lowercase())
        .collect();
    REQUIRED.iter().all(|field| {
        FIELDS
            .iter()
            .find(|(f, _, _)| f == field)
            .is_some_and(|(_, _, aliases)| names.iter().any(|n| aliases.contains(&n.as_str())))
    })
}

/// Column names that differ from the defaults: `field=HEADER` pairs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ColumnNames(Vec<(TaqField, String)>);

impl ColumnNames {
    /// Parse `symbol=TICKER,time=TRADE_TIME,...` (fields: symbol, date, time, price, size,
    /// corr, cond, ex, trf, suffix).
    pub fn parse(text: &str) -> Result<ColumnNames, String> {
        let mut out = Vec::new();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, header) = pair
                .split_once('=')
                .ok_or_else(|| format!("'{pair}' is not field=HEADER"))?;
            let field = FIELDS
                .iter()
                .find(|(_, name, _)| name.eq_ignore_ascii_case(field.trim()))
                .map(|(f, _, _)| *f)
                .ok_or_else(|| {
                    format!("unknown TAQ field '{field}'; fields are symbol, date, time, price, size, corr, cond, ex, trf, suffix")
                })?;
            if header.trim().is_empty() {
                return Err(format!("'{pair}' names no header"));
            }
            out.push((field, header.trim().to_string()));
        }
        Ok(ColumnNames(out))
    }

    /// The header names that mean `field`.
    fn names(&self, field: TaqField) -> Vec<String> {
        let given: Vec<String> = self
            .0
            .iter()
            .filter(|(f, _)| *f == field)
            .map(|(_, h)| h.to_ascii_lowercase())
            .collect();
        if !given.is_empty() {
            return given;
        }
        FIELDS
            .iter()
            .find(|(f, _, _)| *f == field)
            .map(|(_, _, aliases)| aliases.iter().map(|a| a.to_string()).collect())
            .unwrap_or_default()
    }
}

/// TAQ lines into trades.
pub struct TaqRows {
    trades: TradeBuilder,
    names: ColumnNames,
    /// Column index of each field.
    index: [Option<usize>; FIELDS.len()],
    width: usize,
}

impl TaqRows {
    pub fn new(registry: Arc<Registry>, names: &ColumnNames) -> TaqRows {
        TaqRows {
            trades: TradeBuilder::new(registry),
            names: names.clone(),
            index: [None; FIELDS.len()],
            width: 0,
        }
    }
}

/// The registry venue of a tape code (and TRF facility, for `D`); an unknown code stays as it
/// is (kind `unknown`, counted).
pub fn venue_of<'a>(ex: &'a str, trf: Option<&str>) -> &'a str {
    if ex == "D" {
        if let Some(venue) = trf.and_then(|t| TRF_CODES.iter().find(|(c, _)| *c == t)) {
            return venue.1;
        }
    }
    TAPE_CODES
        .iter()
        .find(|(code, _, _)| *code == ex)
        .map_or(ex, |(_, venue, _)| venue)
}

/// A share class's symbol in one form, `BRK.B`: from WRDS's root and suffix columns, or from
/// the CTA form with a space (`BRK B`). Without it, Berkshire's A and B shares (and every other
/// class pair) would land as one symbol.
fn class_symbol<'a>(root: &'a str, suffix: Option<&str>) -> std::borrow::Cow<'a, str> {
    match (suffix, root.split_once(' ')) {
        (Some(suffix), _) => format!("{root}.{suffix}").into(),
        (None, Some((root, class)))
            if !root.is_empty() && !class.is_empty() && !class.contains(' ') =>
        {
            format!("{root}.{class}").into()
        }
        _ => root.into(),
    }
}

impl Records for TaqRows {
    fn header(&mut self, text: &str, label: &Path) -> Result<(), SourceError> {
        let columns: Vec<String> = split_line(text.trim_start_matches('\u{feff}'))
            .iter()
            .map(|n| n.trim().to_ascii_lowercase())
            .collect();
        self.width = columns.len();
        for (field, name, _) in FIELDS {
            let names = self.names.names(field);
            self.index[field as usize] = columns.iter().position(|c| names.contains(c));
            if self.index[field as usize].is_none() && REQUIRED.contains(&field) {
                return Err(SourceError::Header {
                    path: label.to_path_buf(),
                    format: "TAQ",
                    message: format!(
                        "no column for '{name}' (looked for {}); expected SYMBOL,DATE,TIME,PRICE,SIZE,G127,CORR,COND,EX or map columns with --taq-columns {name}=HEADER",
                        names.join(", ")
                    ),
                });
            }
        }
        Ok(())
    }

    fn record(
        &mut self,
        text: &str,
        pos: &SourcePos,
        stats: &mut DecodeStats,
    ) -> Result<Line, Reject> {
        let cells = split_line(text);
        if cells.len() != self.width {
            return Err(field_count_reject(text, self.width, cells.len()));
        }
        let get = |field: TaqField| {
            self.index[field as usize]
                .map(|i| cells[i].trim())
                .filter(|c| !c.is_empty())
        };
        let need =
            |field: TaqField| get(field).ok_or_else(|| Reject::missing(FIELDS[field as usize].1));
        if let Some(corr) = get(TaqField::Corr) {
            let code: i64 = corr.parse().map_err(|_| {
                Reject::new(
                    RejectReason::BadField,
                    format!("CORR '{corr}' is not a correction code (00 = regular)"),
                )
            })?;
            if code != 0 {
                return Err(Reject::new(
                    RejectReason::Correction,
                    format!(
                        "CORR {corr}: a cancelled, corrected or error print, excluded from trades"
                    ),
                ));
            }
        }
        let symbol = class_symbol(need(TaqField::Symbol)?, get(TaqField::Suffix));
        let symbol = check_code("SYMBOL", &symbol, RejectReason::BadSymbol)?;
        let date_text = need(TaqField::Date)?;
        let day = parse_date(date_text).map_err(|_| {
            Reject::new(
                RejectReason::BadDate,
                format!("DATE '{date_text}' is not a date like 20240102 or 2024-01-02"),
            )
        })?;
        let time_text = need(TaqField::Time)?;
        let in_day = parse_time_of_day(time_text).map_err(|_| {
            Reject::new(
                RejectReason::BadTimestamp,
                format!("TIME '{time_text}' is not a time of day H:MM:SS[.fraction] (US/Eastern)"),
            )
        })?;
        let price_text = need(TaqField::Price)?;
        let price: f64 = price_text
            .parse()
            .ok()
            .filter(|p: &f64| p.is_finite() && *p > 0.0)
            .ok_or_else(|| {
                Reject::new(
                    RejectReason::BadPrice,
                    format!("PRICE '{price_text}' must be a finite number > 0"),
                )
            })?;
        let size_text = need(TaqField::Size)?;
        let quantity: i64 = size_text.parse().ok().filter(|q| *q > 0).ok_or_else(|| {
            Reject::new(
                RejectReason::BadQuantity,
                format!("SIZE '{size_text}' must be a whole number of shares > 0"),
            )
        })?;
        let ex = need(TaqField::Ex)?;
        if ex.len() > 4 || !ex.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(Reject::new(
                RejectReason::BadVenue,
                format!("EX '{ex}' is not a tape exchange code"),
            ));
        }
        let sale_condition = get(TaqField::Cond);
        let extended_hours = sale_condition.is_some_and(|c| c.contains(['T', 'U']));
        if quantity < 100 {
            *stats.flagged.entry("odd_lot").or_default() += 1;
        }
        if extended_hours {
            *stats.flagged.entry("extended_hours").or_default() += 1;
        }
        self.trades.append(
            &Trade {
                timestamp: eastern_to_utc(day, in_day),
                symbol,
                price,
                quantity,
                venue: venue_of(ex, get(TaqField::Trf)),
                side: None,
                order_type: None,
                order_id: None,
                algo_fingerprint: None,
                is_spoof: false,
                trade_value: round_cents(price * quantity as f64),
                latitude: None,
                longitude: None,
                sale_condition,
                extended_hours: Some(extended_hours),
            },
            pos,
        );
        Ok(Line::Row)
    }

    fn buffered(&self) -> usize {
        self.trades.len()
    }

    fn take(&mut self) -> (RecordBatch, Option<(Table, RecordBatch)>) {
        (self.trades.finish(), None)
    }

    fn end(&mut self, stats: &mut DecodeStats) {
        stats.unknown_venues = std::mem::take(&mut self.trades.unknown_venues);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tape_codes_map_to_registry_venues() {
        let registry = Registry::embedded();
        for (code, venue, _) in TAPE_CODES {
            if code != "W" {
                assert!(registry.lookup(venue).is_some(), "{code} -> {venue}");
            }
        }
        assert_eq!(registry.lookup("FINR").unwrap().kind.as_str(), "otc");
        assert_eq!(venue_of("D", None), "FINR");
        assert_eq!(venue_of("D", Some("N")), "FINY");
        assert_eq!(venue_of("D", Some("Q")), "FINN");
        assert_eq!(venue_of("N", Some("Q")), "XNYS");
        assert_eq!(venue_of("9", None), "9");
    }

    #[test]
    fn column_names_parse_and_headers_are_recognised() {
        let names = ColumnNames::parse("symbol=TICKER, ex=EXCH").unwrap();
        assert_eq!(names.names(TaqField::Symbol), vec!["ticker"]);
        assert_eq!(names.names(TaqField::Time), vec!["time", "time_m"]);
        assert!(ColumnNames::parse("sym=X")
            .unwrap_err()
            .contains("unknown TAQ field"));
        assert!(ColumnNames::parse("symbol").is_err());
        assert!(looks_like_header(
            "symbol,date,time,price,size,g127,corr,cond,ex"
        ));
        assert!(looks_like_header("date,time_m,ex,sym_root,price,size"));
        assert_eq!(class_symbol("BRK", Some("B")), "BRK.B");
        assert_eq!(class_symbol("BRK B", None), "BRK.B");
        assert_eq!(class_symbol("SPY", None), "SPY");
        assert_eq!(class_symbol("A B C", None), "A B C");
        assert!(!looks_like_header("timestamp,symbol,price,quantity,venue"));
    }
}
