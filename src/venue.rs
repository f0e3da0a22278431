//! The venue registry: venue code -> name, kind (dark / lit / otc) and matching-engine location.
//!
//! "Dark vs lit" everywhere in darkpool comes from this registry, never from the code's spelling.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray};

use crate::model;
use crate::source::csv::split_line;

/// The registry shipped in `data/venues.csv`, compiled in so a fresh binary needs no files.
pub const DEFAULT_REGISTRY_CSV: &str = include_str!("../data/venues.csv");

/// What kind of place a venue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VenueKind {
    /// An ATS / dark pool.
    Dark,
    /// A registered exchange.
    Lit,
    /// Other off-exchange (TRF-reported, ADF).
    Otc,
    /// Not in the registry: accepted and counted, never dropped.
    Unknown,
}

impl VenueKind {
    pub fn as_str(self) -> &'static str {
        match self {
            VenueKind::Dark => "dark",
            VenueKind::Lit => "lit",
            VenueKind::Otc => "otc",
            VenueKind::Unknown => "unknown",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "dark" => Some(VenueKind::Dark),
            "lit" => Some(VenueKind::Lit),
            "otc" => Some(VenueKind::Otc),
            _ => None,
        }
    }
}

/// One venue of the registry.
#[derive(Debug, Clone, PartialEq)]
pub struct Venue {
    pub code: String,
    pub name: String,
    pub kind: VenueKind,
    pub latitude: f64,
    pub longitude: f64,
    pub site: String,
    pub notes: String,
}

/// Why a registry file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum VenueError {
    #[error("cannot read venue registry {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("venue registry {origin}: header must start with code,name,kind,latitude,longitude (found '{found}')")]
    Header { origin: String, found: String },
    #[error("venue registry {origin} line {line}: {reason}")]
    Row {
        origin: String,
        line: usize,
        reason: String,
    },
}

/// Venue code -> venue.
#[derive(Debug, Clone)]
pub struct Registry {
    venues: Vec<Venue>,
    by_code: HashMap<String, usize>,
}

impl Registry {
    /// The registry compiled into the binary.
    pub fn embedded() -> Registry {
        Registry::parse(DEFAULT_REGISTRY_CSV, "data/venues.csv (embedded)").unwrap_or_else(|e| {
            unreachable!("the embedded venue registry is checked by tests: {e}")
        })
    }

    /// `path` if given, else the embedded registry.
    pub fn load(path: Option<&Path>) -> Result<Registry, VenueError> {
        match path {
            None => Ok(Registry::embedded()),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| VenueError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                Registry::parse(&text, &path.display().to_string())
            }
        }
    }

    /// Parse registry CSV text: `code,name,kind,latitude,longitude[,site[,notes]]`.
    pub fn parse(text: &str, origin: &str) -> Result<Registry, VenueError> {
        let mut lines = text.lines().enumerate();
        let header = lines.next().map(|(_, l)| l).unwrap_or_default();
        let columns: Vec<String> = split_line(header.trim_start_matches('\u{feff}'))
            .into_iter()
            .map(|c| c.trim().to_ascii_lowercase())
            .collect();
        if columns.len() < 5 || columns[..5] != ["code", "name", "kind", "latitude", "longitude"] {
            return Err(VenueError::Header {
                origin: origin.into(),
                found: header.into(),
            });
        }
        let mut venues = Vec::new();
        let mut by_code = HashMap::new();
        for (index, line) in lines {
            if line.trim().is_empty() {
                continue;
            }
            let row_error = |reason: String| VenueError::Row {
                origin: origin.into(),
                line: index + 1,
                reason,
            };
            let fields = split_line(line);
            if fields.len() < 5 {
                return Err(row_error(format!(
                    "expected at least 5 fields, found {}",
                    fields.len()
                )));
            }
            let code = fields[0].trim().to_string();
            if code.is_empty() {
                return Err(row_error("empty venue code".into()));
            }
            let kind = VenueKind::parse(&fields[2]).ok_or_else(|| {
                row_error(format!("kind '{}' is not dark, lit or otc", fields[2]))
            })?;
            let coordinate = |text: &str, limit: f64, what: &str| {
                text.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.abs() <= limit)
                    .ok_or_else(|| {
                        row_error(format!("{what} '{text}' is not a number within ±{limit}"))
                    })
            };
            let latitude = coordinate(&fields[3], 90.0, "latitude")?;
            let longitude = coordinate(&fields[4], 180.0, "longitude")?;
            if by_code.insert(code.clone(), venues.len()).is_some() {
                return Err(row_error(format!("venue code '{code}' appears twice")));
            }
            venues.push(Venue {
                code,
                name: fields[1].trim().to_string(),
                kind,
                latitude,
                longitude,
                site: fields
                    .get(5)
                    .map(|s| s.trim().to_string())
                    .unwrap_or_default(),
                notes: fields
                    .get(6)
                    .map(|s| s.trim().to_string())
                    .unwrap_or_default(),
            });
        }
        Ok(Registry { venues, by_code })
    }

    pub fn lookup(&self, code: &str) -> Option<&Venue> {
        self.by_code.get(code).map(|&i| &self.venues[i])
    }

    pub fn venues(&self) -> &[Venue] {
        &self.venues
    }

    /// The registry as the `venues` table.
    pub fn to_record_batch(&self) -> RecordBatch {
        let text = |f: fn(&Venue) -> &str| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(self.venues.iter().map(f)))
        };
        let number = |f: fn(&Venue) -> f64| -> ArrayRef {
            Arc::new(Float64Array::from_iter_values(self.venues.iter().map(f)))
        };
        let columns = vec![
            text(|v| &v.code),
            text(|v| &v.name),
            text(|v| v.kind.as_str()),
            number(|v| v.latitude),
            number(|v| v.longitude),
            text(|v| &v.site),
            text(|v| &v.notes),
        ];
        RecordBatch::try_new(model::venues_schema(), columns)
            .unwrap_or_else(|e| unreachable!("venues columns follow venues_schema: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_registry_has_the_original_three_and_real_venues() {
        let r = Registry::embedded();
        let dark1 = r.lookup("DARK1").unwrap();
        assert_eq!(
            (dark1.kind, dark1.latitude, dark1.longitude),
            (VenueKind::Dark, 34.0522, -118.2437)
        );
        let dark2 = r.lookup("DARK2").unwrap();
        assert_eq!(
            (dark2.kind, dark2.latitude, dark2.longitude),
            (VenueKind::Dark, 40.7128, -74.0060)
        );
        let lit = r.lookup("LIT").unwrap();
        assert_eq!(
            (lit.kind, lit.latitude, lit.longitude),
            (VenueKind::Lit, 41.8781, -87.6298)
        );
        assert_eq!(r.lookup("XNAS").unwrap().kind, VenueKind::Lit);
        assert_eq!(r.lookup("UBSA").unwrap().kind, VenueKind::Dark);
        assert_eq!(r.lookup("FINN").unwrap().kind, VenueKind::Otc);
        assert!(r.lookup("NOPE").is_none());
        assert_eq!(r.to_record_batch().num_rows(), r.venues().len());
    }

    #[test]
    fn registry_errors_name_the_line() {
        let bad = "code,name,kind,latitude,longitude\nX,Y,grey,1,2\n";
        let err = Registry::parse(bad, "t.csv").unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("grey"), "{err}");
        let err = Registry::parse("a,b\n", "t.csv").unwrap_err().to_string();
        assert!(err.contains("header"), "{err}");
        let dup = "code,name,kind,latitude,longitude\nX,Y,dark,1,2\nX,Z,lit,1,2\n";
        assert!(Registry::parse(dup, "t.csv")
            .unwrap_err()
            .to_string()
            .contains("twice"));
    }
}
