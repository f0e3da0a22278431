//! CSV in the original's columns (`timestamp,symbol,price,quantity,venue,is_spoof,
//! algo_fingerprint,order_type,order_id,side`, any order, extra known columns allowed).

use std::borrow::Cow;

use crate::model::Reject;
use crate::source::decode::{Field, RawTrade, Scalar};

/// A line with another number of fields than its header; when the line leaves a quote open,
/// the detail says so: no later line closed it into a record of the header's fields.
pub fn field_count_reject(line: &str, expected: usize, found: usize) -> Reject {
    let mut reject = Reject::field_count(expected, found);
    if open_quote(line.as_bytes()) {
        reject.detail.push_str(&format!(
            "; a quote is left open on this line, and no line after it closes it into a record \
             of {expected} fields (within --max-line-bytes)"
        ));
    }
    reject
}

/// Whether `line` leaves a quote open: a quoted field that goes on past a line break.
pub fn open_quote(line: &[u8]) -> bool {
    // Asked of every CSV line: most have no quote, which memchr finds out fastest.
    memchr::memchr_iter(b'"', line).count() % 2 == 1
}

/// Split one CSV line into fields (RFC 4180 quoting within the line: `"a,b"`, `"say ""hi"""`).
pub fn split_line(line: &str) -> Vec<Cow<'_, str>> {
    split_line_by(line, ',')
}

/// [`split_line`] with another delimiter (tab, semicolon).
pub fn split_line_by(line: &str, delimiter: char) -> Vec<Cow<'_, str>> {
    let mut fields = Vec::with_capacity(16);
    let bytes = line.as_bytes();
    let mut start = 0;
    while start <= bytes.len() {
        if bytes.get(start) == Some(&b'"') {
            let mut value = String::new();
            let mut i = start + 1;
            let mut segment = i;
            loop {
                match line[i..].find('"') {
                    None => {
                        // Unterminated quote: keep the rest as the field.
                        value.push_str(&line[segment..]);
                        i = bytes.len();
                        break;
                    }
                    Some(q) => {
                        let q = i + q;
                        value.push_str(&line[segment..q]);
                        if bytes.get(q + 1) == Some(&b'"') {
                            value.push('"');
                            i = q + 2;
                            segment = i;
                        } else {
                            i = q + 1;
                            break;
                        }
                    }
                }
            }
            fields.push(Cow::Owned(value));
            match line[i..].find(delimiter) {
                Some(c) => start = i + c + 1,
                None => break,
            }
        } else {
            match line[start..].find(delimiter) {
                Some(c) => {
                    fields.push(Cow::Borrowed(&line[start..start + c]));
                    start += c + 1;
                }
                None => {
                    fields.push(Cow::Borrowed(&line[start..]));
                    break;
                }
            }
        }
    }
    fields
}

/// The column layout read from a CSV header, and its delimiter.
#[derive(Debug, Clone)]
pub struct Header {
    columns: Vec<Option<Field>>,
    delimiter: char,
}

/// Delimiters a header is tried with, in order: comma, then tab (`.tsv`, WRDS and database
/// exports) and semicolon (Excel in locales whose decimal mark is a comma).
const DELIMITERS: [char; 3] = [',', '\t', ';'];

impl Header {
    /// Map a header line to fields, with the first delimiter that names every required
    /// column; `Err` lists the required columns a comma-separated header lacks.
    pub fn parse(line: &str) -> Result<Header, Vec<&'static str>> {
        let line = line.trim_start_matches('\u{feff}');
        let mut comma_missing = Vec::new();
        for delimiter in DELIMITERS {
            let columns: Vec<Option<Field>> = split_line_by(line, delimiter)
                .iter()
                .map(|name| Field::from_name(&name.trim().to_ascii_lowercase()))
                .collect();
            let missing: Vec<&'static str> = Field::REQUIRED
                .iter()
                .filter(|f| !columns.contains(&Some(**f)))
                .map(|f| f.name())
                .collect();
            if missing.is_empty() {
                return Ok(Header { columns, delimiter });
            }
            if delimiter == ',' {
                comma_missing = missing;
            }
        }
        Err(comma_missing)
    }

    /// Whether `record` splits into this header's number of fields.
    pub fn fits(&self, record: &[u8]) -> bool {
        std::str::from_utf8(record)
            .is_ok_and(|text| split_line_by(text, self.delimiter).len() == self.columns.len())
    }

    /// The raw fields of one data line.
    pub fn record<'a>(&self, line: &'a str) -> Result<RawTrade<'a>, Reject> {
        let cells = split_line_by(line, self.delimiter);
        if cells.len() != self.columns.len() {
            return Err(field_count_reject(line, self.columns.len(), cells.len()));
        }
        let mut raw = RawTrade::default();
        for (field, cell) in self.columns.iter().zip(cells) {
            if let Some(field) = field {
                raw.set(*field, Scalar::Text(cell));
            }
        }
        Ok(raw)
    }
}

/// The original CSV's header.
pub const ORIGINAL_HEADER: &str =
    "timestamp,symbol,price,quantity,venue,is_spoof,algo_fingerprint,order_type,order_id,side";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_quoted_fields() {
        assert_eq!(split_line("a,b,,c"), vec!["a", "b", "", "c"]);
        assert_eq!(split_line(r#""x,y",z"#), vec!["x,y", "z"]);
        assert_eq!(split_line(r#""say ""hi""",2"#), vec![r#"say "hi""#, "2"]);
        assert_eq!(split_line("a,"), vec!["a", ""]);
        assert_eq!(split_line(""), vec![""]);
    }

    #[test]
    fn a_record_cut_by_a_line_break_in_quotes_says_so() {
        let header = Header::parse(ORIGINAL_HEADER).unwrap();
        let first = r#"2024-01-01T09:30:00,SPY,1,1,XNYS,0,A1,LIMIT,"o"#;
        let second = r#"3",SELL"#;
        for line in [first, second] {
            let reject = header.record(line).unwrap_err();
            assert_eq!(reject.reason, crate::model::RejectReason::WrongFieldCount);
            assert!(
                reject.detail.contains("a quote is left open"),
                "{}",
                reject.detail
            );
        }
        let short = header.record(r#""o,1",SELL"#).unwrap_err();
        assert_eq!(short.detail, "expected 10 fields as in the header, found 2");
    }

    #[test]
    fn tab_and_semicolon_separated_files_are_read_by_their_header() {
        for delimiter in ['\t', ';'] {
            let header = Header::parse(&ORIGINAL_HEADER.replace(',', &delimiter.to_string()));
            let line = [
                "2024-01-01T09:30:00",
                "SPY",
                "1.5",
                "2",
                "XNYS",
                "0",
                "A1",
                "LIMIT",
            ];
            let line = [&line[..], &["o,1", "BUY"]]
                .concat()
                .join(&delimiter.to_string());
            let raw = header.unwrap().record(&line).unwrap();
            assert_eq!(raw.field(Field::OrderId), Some(&Scalar::Text("o,1".into())));
            assert_eq!(raw.field(Field::Price), Some(&Scalar::Text("1.5".into())));
        }
    }

    #[test]
    fn header_names_missing_columns() {
        assert!(Header::parse(ORIGINAL_HEADER).is_ok());
        assert_eq!(
            Header::parse("time,symbol,price").unwrap_err(),
            vec!["timestamp", "quantity", "venue"]
        );
    }
}
