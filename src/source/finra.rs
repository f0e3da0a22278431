//! FINRA's public files: OTC Transparency ATS weekly volumes (the API's JSON array, or the
//! pipe-delimited download) into `ats_weekly`, and Reg SHO daily short-sale volume into
//! `short_volume`.
//!
//! Both tables keep every row loaded (`*_history`); the views `ats_weekly` and `short_volume`
//! show one row per natural key, the latest publication, so overlapping downloads and
//! re-published weeks never double count (see `crate::engine`).

use std::path::Path;
use std::sync::Arc;

use arrow::array::RecordBatch;

use super::decode::check_code;
use super::{emit, DecodeOptions, DecodeStats, FormatOptions, Line, Records, Sink, SourceError};
use crate::lake::Table;
use crate::model::{
    AtsWeek, AtsWeekBuilder, Reject, RejectBuilder, RejectReason, ShortDay, ShortDayBuilder,
    SourcePos,
};
use crate::time::{self, parse_date};

/// The Reg SHO facility files, by file-name prefix.
pub const FACILITIES: [(&str, &str); 6] = [
    ("CNMS", "consolidated NMS (all facilities together)"),
    ("FNSQ", "FINRA/Nasdaq TRF Carteret"),
    ("FNQC", "FINRA/Nasdaq TRF Chicago"),
    ("FNYX", "FINRA/NYSE TRF"),
    ("FNRA", "FINRA ADF"),
    ("FORF", "FINRA ORF (OTC equities)"),
];

/// The facility a Reg SHO file name starts with (`CNMSshvol20240102.txt` -> `CNMS`).
pub fn facility_of(path: &Path) -> Option<&'static str> {
    let name = path.file_name()?.to_str()?;
    let lower = name.to_ascii_lowercase();
    FACILITIES
        .iter()
        .map(|(code, _)| *code)
        .find(|code| lower.starts_with(&format!("{}shvol", code.to_ascii_lowercase())))
}

/// Is this FINRA ATS input the API's JSON (a `[` first) rather than a pipe file?
pub fn is_json(path: &Path) -> bool {
    let head = super::read_head(path).unwrap_or_default();
    head.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[')
}

/// The first date in a file name: `YYYY-MM-DD`, `YYYY_MM_DD` or `YYYYMMDD`.
pub fn date_in_name(path: &Path) -> Option<i32> {
    let name = path.file_name()?.to_str()?;
    let b = name.as_bytes();
    for start in 0..b.len() {
        if start > 0 && b[start - 1].is_ascii_digit() {
            continue;
        }
        for len in [10, 8] {
            let Some(candidate) = name.get(start..start + len) else {
                continue;
            };
            let next_is_digit = b.get(start + len).is_some_and(u8::is_ascii_digit);
            if next_is_digit {
                continue;
            }
            if let Ok(days) = parse_date(&candidate.replace('_', "-")) {
                return i32::try_from(days).ok();
            }
        }
    }
    None
}

const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

fn day_text(days: i64) -> String {
    time::date_of(days * time::MICROS_PER_DAY)
}

/// Why a week start is not one: FINRA weeks start on Monday.
pub fn check_week(days: i64) -> Result<(), String> {
    let weekday = time::weekday_of(days);
    if weekday == 1 {
        Ok(())
    } else {
        Err(format!(
            "week start {} is a {}; FINRA weeks start on Monday",
            day_text(days),
            WEEKDAYS[weekday as usize]
        ))
    }
}

/// The fields of an ATS row, named as in FINRA's API and download files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AtsField {
    WeekStart,
    Symbol,
    IssueName,
    Mpid,
    AtsName,
    Shares,
    Trades,
    Notional,
    Tier,
    TierId,
    SummaryType,
    LastUpdate,
}

const ATS_FIELDS: [(AtsField, &str); 12] = [
    (AtsField::WeekStart, "weekStartDate"),
    (AtsField::Symbol, "issueSymbolIdentifier"),
    (AtsField::IssueName, "issueName"),
    (AtsField::Mpid, "MPID"),
    (AtsField::AtsName, "marketParticipantName"),
    (AtsField::Shares, "totalWeeklyShareQuantity"),
    (AtsField::Trades, "totalWeeklyTradeCount"),
    (AtsField::Notional, "totalNotionalSum"),
    (AtsField::Tier, "tierDescription"),
    (AtsField::TierId, "tierIdentifier"),
    (AtsField::SummaryType, "summaryTypeCode"),
    (AtsField::LastUpdate, "lastUpdateDate"),
];

/// The summary type of per-symbol, per-ATS rows; FINRA's other types are totals.
const ATS_SYMBOL_FIRM: &str = "ATS_W_SMBL_FIRM";

fn ats_field(name: &str) -> Option<AtsField> {
    ATS_FIELDS
        .iter()
        .find(|(_, n)| n.eq_ignore_ascii_case(name.trim()))
        .map(|(f, _)| *f)
}

fn ats_name(field: AtsField) -> &'static str {
    ATS_FIELDS
        .iter()
        .find(|(f, _)| *f == field)
        .map_or("?", |(_, n)| n)
}

/// One row's values by field (absent or empty = `None`).
type AtsValues<'a> = [Option<&'a str>; 12];

/// A non-negative whole number (thousands separators allowed).
fn count(name: &str, text: &str) -> Result<i64, Reject> {
    let clean = text.trim().replace(',', "");
    let value = clean
        .parse::<i64>()
        .ok()
        .or_else(|| {
            clean
                .parse::<f64>()
                .ok()
                .filter(|v| v.fract() == 0.0 && v.abs() < 9e15)
                .map(|v| v as i64)
        })
        .ok_or_else(|| {
            Reject::new(
                RejectReason::BadVolume,
                format!("'{name}' must be a whole number, got '{text}'"),
            )
        })?;
    if value < 0 {
        return Err(Reject::new(
            RejectReason::BadVolume,
            format!("'{name}' must be >= 0, got {value}"),
        ));
    }
    Ok(value)
}

/// A non-negative finite number (thousands separators allowed).
fn amount(name: &str, text: &str) -> Result<f64, Reject> {
    let value: f64 = text.trim().replace(',', "").parse().map_err(|_| {
        Reject::new(
            RejectReason::BadVolume,
            format!("'{name}' must be a number, got '{text}'"),
        )
    })?;
    if !value.is_finite() || value < 0.0 {
        return Err(Reject::new(
            RejectReason::BadVolume,
            format!("'{name}' must be a finite number >= 0, got {text}"),
        ));
    }
    Ok(value)
}

fn date(name: &str, text: &str) -> Result<i32, Reject> {
    parse_date(text)
        .ok()
        .and_then(|d| i32::try_from(d).ok())
        .ok_or_else(|| {
            Reject::new(
                RejectReason::BadDate,
                format!("'{name}' must be a date like 2024-01-08 or 20240108, got '{text}'"),
            )
        })
}

/// A symbol or MPID, required.
fn code<'a>(name: &str, text: Option<&'a str>, reason: RejectReason) -> Result<&'a str, Reject> {
    check_code(name, text.ok_or_else(|| Reject::missing(name))?, reason)
}

/// FINRA ATS weekly rows (JSON elements or pipe lines) into `ats_weekly_history` rows.
pub struct AtsRows {
    builder: AtsWeekBuilder,
    /// The week of a file without a `weekStartDate` column.
    file_week: Option<i32>,
    /// Pipe files: the field of each column.
    columns: Vec<Option<AtsField>>,
    loaded_at: i64,
}

impl AtsRows {
    pub fn new(
        path: &Path,
        label: &Path,
        formats: &FormatOptions,
        loaded_at: i64,
    ) -> Result<AtsRows, SourceError> {
        let file_week = formats
            .week
            .or_else(|| date_in_name(label).or_else(|| date_in_name(path)));
        if let Some(week) = file_week {
            check_week(i64::from(week)).map_err(|message| SourceError::Header {
                path: label.to_path_buf(),
                format: "FINRA ATS",
                message: format!("{message} (from --week or the file name)"),
            })?;
        }
        Ok(AtsRows {
            builder: AtsWeekBuilder::default(),
            file_week,
            columns: Vec::new(),
            loaded_at,
        })
    }

    /// Check one row and add it.
    fn row(&mut self, values: &AtsValues<'_>, pos: &SourcePos) -> Result<(), Reject> {
        let get = |field: AtsField| values[field as usize];
        if let Some(kind) = get(AtsField::SummaryType) {
            if !kind.eq_ignore_ascii_case(ATS_SYMBOL_FIRM) {
                return Err(Reject::new(
                    RejectReason::OtherSummaryType,
                    format!("summaryTypeCode {kind} is not per-symbol, per-ATS volume ({ATS_SYMBOL_FIRM}); ats_weekly holds only those, so totals are never counted twice"),
                ));
            }
        }
        let week_start = match get(AtsField::WeekStart) {
            Some(text) => date("weekStartDate", text)?,
            None => self
                .file_week
                .ok_or_else(|| Reject::missing("weekStartDate"))?,
        };
        check_week(i64::from(week_start))
            .map_err(|message| Reject::new(RejectReason::BadDate, message))?;
        let symbol = code(
            "issueSymbolIdentifier",
            get(AtsField::Symbol),
            RejectReason::BadSymbol,
        )?;
        let mpid = code("MPID", get(AtsField::Mpid), RejectReason::BadVenue)?;
        let number = |field: AtsField| {
            let name = ats_name(field);
            get(field)
                .ok_or_else(|| Reject::missing(name))
                .and_then(|t| count(name, t))
        };
        let shares = number(AtsField::Shares)?;
        let trades = number(AtsField::Trades)?;
        let notional = get(AtsField::Notional)
            .map(|t| amount("totalNotionalSum", t))
            .transpose()?;
        let last_update = get(AtsField::LastUpdate)
            .map(|t| date("lastUpdateDate", t))
            .transpose()?;
        self.builder.append(
            &AtsWeek {
                week_start,
                symbol,
                issue_name: get(AtsField::IssueName),
                mpid,
                ats_name: get(AtsField::AtsName),
                shares,
                trades,
                notional,
                tier: get(AtsField::Tier),
                tier_id: get(AtsField::TierId),
                summary_type: get(AtsField::SummaryType),
                last_update,
            },
            self.loaded_at,
            pos,
        );
        Ok(())
    }
}

fn non_empty(text: &str) -> Option<&str> {
    let t = text.trim();
    (!t.is_empty()).then_some(t)
}

impl Records for AtsRows {
    fn header(&mut self, text: &str, label: &Path) -> Result<(), SourceError> {
        self.columns = text
            .trim_start_matches('\u{feff}')
            .split('|')
            .map(ats_field)
            .collect();
        let mut required = vec![
            AtsField::Symbol,
            AtsField::Mpid,
            AtsField::Shares,
            AtsField::Trades,
        ];
        if self.file_week.is_none() {
            required.push(AtsField::WeekStart);
        }
        let lacking: Vec<&str> = required
            .into_iter()
            .filter(|f| !self.columns.contains(&Some(*f)))
            .map(ats_name)
            .collect();
        if lacking.is_empty() {
            return Ok(());
        }
        let hint = if lacking.contains(&"weekStartDate") {
            "; the week comes from a weekStartDate column, a date in the file name, or --week YYYY-MM-DD"
        } else {
            ""
        };
        Err(SourceError::Header {
            path: label.to_path_buf(),
            format: "FINRA ATS pipe-delimited",
            message: format!(
                "the header lacks {}{hint}; expected tierDescription|issueSymbolIdentifier|issueName|marketParticipantName|MPID|totalWeeklyShareQuantity|totalWeeklyTradeCount|lastUpdateDate",
                lacking.join(", ")
            ),
        })
    }

    fn record(
        &mut self,
        text: &str,
        pos: &SourcePos,
        _stats: &mut DecodeStats,
    ) -> Result<Line, Reject> {
        let cells: Vec<&str> = text.split('|').collect();
        if cells.len() != self.columns.len() {
            return Err(Reject::field_count(self.columns.len(), cells.len()));
        }
        let mut values: AtsValues<'_> = [None; 12];
        for (field, cell) in self.columns.iter().zip(cells) {
            if let Some(field) = field {
                values[*field as usize] = non_empty(cell);
            }
        }
        self.row(&values, pos).map(|()| Line::Row)
    }

    fn buffered(&self) -> usize {
        self.builder.len()
    }

    fn take(&mut self) -> (RecordBatch, Option<(Table, RecordBatch)>) {
        (
            RecordBatch::new_empty(crate::model::trades_schema()),
            Some((Table::AtsWeekly, self.builder.finish())),
        )
    }
}

/// Decode the FINRA API's JSON (an array of row objects). A file that is not a JSON array at
/// all is an error; an element that is not a valid row is a reject (`source_line` = its index,
/// from 1).
pub fn decode_ats_json(
    path: &Path,
    label: &Path,
    rows: &mut AtsRows,
    options: &DecodeOptions,
    sink: &mut Sink<'_>,
) -> Result<DecodeStats, SourceError> {
    let bytes = std::fs::read(path).map_err(|source| SourceError::Io {
        path: label.to_path_buf(),
        source,
    })?;
    let elements: Vec<serde_json::Value> =
        serde_json::from_slice(&bytes).map_err(|e| SourceError::Header {
            path: label.to_path_buf(),
            format: "FINRA ATS JSON",
            message: format!("expected a JSON array of row objects: {e}"),
        })?;
    let mut stats = DecodeStats {
        bytes: bytes.len() as u64,
        ..DecodeStats::default()
    };
    let mut rejects = RejectBuilder::default();
    let mut pos = SourcePos {
        file: Some(Arc::from(label.display().to_string())),
        ..SourcePos::default()
    };
    let total = elements.len();
    for (index, element) in elements.iter().enumerate() {
        pos.line = Some(index as i64 + 1);
        stats.records += 1;
        let outcome = match element {
            serde_json::Value::Object(map) => json_values(map).and_then(|values| {
                let values: AtsValues<'_> = std::array::from_fn(|i| values[i].as_deref());
                rows.row(&values, &pos)
            }),
            other => Err(Reject::new(
                RejectReason::NotAnObject,
                format!("array element {} is not an object", json_kind(other)),
            )),
        };
        let raw = if outcome.is_err() {
            element.to_string()
        } else {
            String::new()
        };
        let at = options.rejected_at;
        stats.settle(outcome, &mut rejects, at, raw.as_bytes(), raw.len(), &pos);
        if index + 1 == total || rows.buffered() + rejects.len() >= options.batch_rows {
            let read = stats.bytes * (index as u64 + 1) / total.max(1) as u64;
            emit(rows, &mut rejects, read, sink)?;
        }
    }
    Ok(stats)
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// The known fields of one JSON row object as text (numbers as written; null = absent).
fn json_values(
    map: &serde_json::Map<String, serde_json::Value>,
) -> Result<[Option<String>; 12], Reject> {
    let mut values: [Option<String>; 12] = Default::default();
    for (key, value) in map {
        let Some(field) = ats_field(key) else {
            continue;
        };
        values[field as usize] = match value {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => non_empty(s).map(str::to_string),
            serde_json::Value::Number(n) => Some(n.to_string()),
            other => {
                return Err(Reject::new(
                    RejectReason::WrongType,
                    format!(
                        "'{key}' must be a string or number, got {}",
                        json_kind(other)
                    ),
                ))
            }
        };
    }
    Ok(values)
}

/// The columns of a Reg SHO file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ShortField {
    Date,
    Symbol,
    Short,
    ShortExempt,
    Total,
    Market,
}

const SHORT_FIELDS: [(ShortField, &str); 6] = [
    (ShortField::Date, "Date"),
    (ShortField::Symbol, "Symbol"),
    (ShortField::Short, "ShortVolume"),
    (ShortField::ShortExempt, "ShortExemptVolume"),
    (ShortField::Total, "TotalVolume"),
    (ShortField::Market, "Market"),
];

/// Reg SHO daily short-sale volume lines into `short_volume_history` rows.
pub struct ShortRows {
    builder: ShortDayBuilder,
    facility: String,
    columns: Vec<Option<ShortField>>,
    loaded_at: i64,
}

impl ShortRows {
    pub fn new(
        path: &Path,
        label: &Path,
        formats: &FormatOptions,
        loaded_at: i64,
    ) -> Result<ShortRows, SourceError> {
        let facility = match &formats.facility {
            Some(f) => f.trim().to_ascii_uppercase(),
            None => facility_of(label)
                .or_else(|| facility_of(path))
                .map(str::to_string)
                .ok_or_else(|| SourceError::Header {
                    path: label.to_path_buf(),
                    format: "Reg SHO",
                    message: "cannot tell the facility: name the file as FINRA does (CNMSshvol20240102.txt; prefixes CNMS, FNSQ, FNQC, FNYX, FNRA, FORF) or pass --facility".into(),
                })?,
        };
        if facility.is_empty()
            || facility.len() > 8
            || !facility.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(SourceError::Header {
                path: label.to_path_buf(),
                format: "Reg SHO",
                message: format!("facility '{facility}' must be 1 to 8 letters or digits"),
            });
        }
        Ok(ShortRows {
            builder: ShortDayBuilder::default(),
            facility,
            columns: Vec::new(),
            loaded_at,
        })
    }
}

impl Records for ShortRows {
    fn header(&mut self, text: &str, label: &Path) -> Result<(), SourceError> {
        self.columns = text
            .trim_start_matches('\u{feff}')
            .split('|')
            .map(|name| {
                SHORT_FIELDS
                    .iter()
                    .find(|(_, n)| n.eq_ignore_ascii_case(name.trim()))
                    .map(|(f, _)| *f)
            })
            .collect();
        let lacking: Vec<&str> = SHORT_FIELDS
            .iter()
            .filter(|(f, _)| !matches!(f, ShortField::ShortExempt | ShortField::Market))
            .filter(|(f, _)| !self.columns.contains(&Some(*f)))
            .map(|(_, n)| *n)
            .collect();
        if lacking.is_empty() {
            return Ok(());
        }
        Err(SourceError::Header {
            path: label.to_path_buf(),
            format: "Reg SHO short-sale volume",
            message: format!(
                "the header lacks {}; expected Date|Symbol|ShortVolume|ShortExemptVolume|TotalVolume|Market",
                lacking.join(", ")
            ),
        })
    }

    fn record(
        &mut self,
        text: &str,
        pos: &SourcePos,
        _stats: &mut DecodeStats,
    ) -> Result<Line, Reject> {
        let cells: Vec<&str> = text.split('|').collect();
        let trimmed = text.trim();
        if cells.len() == 1 && !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
            // The record-count trailer, if it is the last line (the driver checks).
            if let Ok(count) = trimmed.parse() {
                return Ok(Line::Count(count));
            }
        }
        if cells.len() != self.columns.len() {
            return Err(Reject::field_count(self.columns.len(), cells.len()));
        }
        let mut values: [Option<&str>; 6] = [None; 6];
        for (field, cell) in self.columns.iter().zip(cells) {
            if let Some(field) = field {
                values[*field as usize] = non_empty(cell);
            }
        }
        let get = |field: ShortField| values[field as usize];
        let name = |field: ShortField| SHORT_FIELDS[field as usize].1;
        let volume = |field: ShortField| {
            get(field)
                .ok_or_else(|| Reject::missing(name(field)))
                .and_then(|t| amount(name(field), t))
        };
        let date = date(
            "Date",
            get(ShortField::Date).ok_or_else(|| Reject::missing("Date"))?,
        )?;
        let symbol = code("Symbol", get(ShortField::Symbol), RejectReason::BadSymbol)?;
        let short_volume = volume(ShortField::Short)?;
        let short_exempt_volume = match get(ShortField::ShortExempt) {
            None => 0.0,
            Some(t) => amount("ShortExemptVolume", t)?,
        };
        let total_volume = volume(ShortField::Total)?;
        if short_volume > total_volume * (1.0 + 1e-9) {
            return Err(Reject::new(
                RejectReason::BadVolume,
                format!("ShortVolume {short_volume} exceeds TotalVolume {total_volume}"),
            ));
        }
        self.builder.append(
            &ShortDay {
                date,
                symbol,
                facility: &self.facility,
                short_volume,
                short_exempt_volume,
                total_volume,
                market: get(ShortField::Market),
            },
            self.loaded_at,
            pos,
        );
        Ok(Line::Row)
    }

    fn buffered(&self) -> usize {
        self.builder.len()
    }

    fn take(&mut self) -> (RecordBatch, Option<(Table, RecordBatch)>) {
        (
            RecordBatch::new_empty(crate::model::trades_schema()),
            Some((Table::ShortVolume, self.builder.finish())),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn facilities_and_weeks_come_from_file_names() {
        assert_eq!(
            facility_of(Path::new("/x/CNMSshvol20240102.txt")),
            Some("CNMS")
        );
        assert_eq!(
            facility_of(Path::new("fnyxshvol20240102.txt")),
            Some("FNYX")
        );
        assert_eq!(facility_of(Path::new("shvol.txt")), None);
        let monday = parse_date("2024-01-08").unwrap() as i32;
        assert_eq!(date_in_name(Path::new("ats_2024-01-08.txt")), Some(monday));
        assert_eq!(
            date_in_name(Path::new("otc-ats-20240108.psv")),
            Some(monday)
        );
        assert_eq!(date_in_name(Path::new("v120240108x.txt")), None);
        assert_eq!(date_in_name(Path::new("ats.txt")), None);
        assert!(check_week(i64::from(monday)).is_ok());
        assert_eq!(
            check_week(i64::from(monday) + 2).unwrap_err(),
            "week start 2024-01-10 is a Wednesday; FINRA weeks start on Monday"
        );
    }

    #[test]
    fn a_pipe_file_without_a_week_is_refused_up_front() {
        let mut rows = AtsRows::new(
            Path::new("ats.txt"),
            Path::new("ats.txt"),
            &FormatOptions::default(),
            0,
        )
        .unwrap();
        let err = rows
            .header(
                "tierDescription|issueSymbolIdentifier|issueName|marketParticipantName|MPID|totalWeeklyShareQuantity|totalWeeklyTradeCount|lastUpdateDate",
                &PathBuf::from("ats.txt"),
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("lacks weekStartDate") && err.contains("--week"),
            "{err}"
        );
        let tuesday = FormatOptions {
            week: Some(parse_date("2024-01-09").unwrap() as i32),
            ..FormatOptions::default()
        };
        let err = AtsRows::new(Path::new("a"), Path::new("a"), &tuesday, 0)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("is a Tuesday"), "{err}");
    }

    #[test]
    fn a_count_line_is_the_trailer_only_as_the_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let decode = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            let mut rows = ShortRows::new(&path, &path, &FormatOptions::default(), 0).unwrap();
            let mut rejects = Vec::new();
            let options = DecodeOptions {
                batch_rows: 100,
                max_line_bytes: 1 << 10,
                rejected_at: 0,
            };
            let stats = super::super::decode_records(&path, &path, &mut rows, &options, &mut |d| {
                rejects.push(d.rejects);
                Ok(())
            })
            .unwrap();
            let lines: Vec<i64> = rejects
                .iter()
                .flat_map(|b| {
                    let column = b.column_by_name("source_line").unwrap();
                    let ints = column
                        .as_any()
                        .downcast_ref::<arrow::array::Int64Array>()
                        .unwrap();
                    ints.iter().flatten().collect::<Vec<_>>()
                })
                .collect();
            (stats, lines)
        };
        let header = "Date|Symbol|ShortVolume|ShortExemptVolume|TotalVolume|Market\n";
        let row = "20240102|AAPL|1|0|2|Q\n";
        let (stats, rejected) = decode(
            "CNMSshvol20240102.txt",
            &format!("{header}{row}7\n{row}\n2\n"),
        );
        // Two rows, the stray count line, and a trailer that does not match the 3 records before it.
        assert_eq!((stats.records, stats.accepted, stats.trailer), (4, 2, None));
        assert_eq!(stats.rejected.get("wrong_field_count"), Some(&1));
        assert_eq!(stats.rejected.get("record_count_mismatch"), Some(&1));
        assert_eq!(rejected, [3, 6]);
        let (stats, rejected) = decode("FNSQshvol20240102.txt", &format!("{header}{row}{row}2\n"));
        assert_eq!(
            (stats.records, stats.accepted, stats.trailer),
            (2, 2, Some(2))
        );
        assert!(rejected.is_empty());
    }
}
