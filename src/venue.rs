//! The venue registry: venue code -> name, kind (dark / lit / otc) and matching-engine location.
//!
//! "Dark vs lit" everywhere in darkpool comes from this registry, never from the code's spelling.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray};

use crate::model;
use crate::source::csv::split_line;
use crate::source::decode::{same_bytes, word_at};

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
    index: CodeIndex,
}

/// Venue code -> position in the registry, for the lookup every trade makes: open addressing
/// (linear probing) over a power-of-two table at least twice the codes, a code hashed and
/// compared a word at a time. A `HashMap<String, usize>` lookup (SipHash, then `memcmp`) was
/// ~6 % of a Kafka message's decode time (`examples/decode_bench`).
#[derive(Debug, Clone)]
struct CodeIndex {
    /// Position + 1 of the venue whose code hashes here (or probed on to here); 0: empty.
    slots: Vec<u32>,
}

impl CodeIndex {
    fn new(venues: &[Venue]) -> CodeIndex {
        let size = (venues.len() * 2).max(8).next_power_of_two();
        let mut slots = vec![0u32; size];
        for (position, venue) in venues.iter().enumerate() {
            let mut at = CodeIndex::hash(venue.code.as_bytes()) & (size - 1);
            while slots[at] != 0 {
                at = (at + 1) & (size - 1);
            }
            slots[at] = position as u32 + 1;
        }
        CodeIndex { slots }
    }

    /// An Fx-style hash (rotate, xor a word, multiply), its high bits folded down.
    fn hash(code: &[u8]) -> usize {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mix = |h: u64, word: u64| (h.rotate_left(5) ^ word).wrapping_mul(K);
        let mut words = code.chunks_exact(8);
        let mut h = code.len() as u64;
        for chunk in &mut words {
            h = mix(h, word_at(chunk, 0));
        }
        let tail = words
            .remainder()
            .iter()
            .enumerate()
            .fold(0u64, |w, (i, &b)| w | u64::from(b) << (8 * i));
        let h = mix(h, tail);
        (h ^ (h >> 32)) as usize
    }

    /// The position of `code` among `venues` (those the index was made from).
    fn find(&self, venues: &[Venue], code: &str) -> Option<usize> {
        let mask = self.slots.len() - 1;
        let mut at = CodeIndex::hash(code.as_bytes()) & mask;
        loop {
            let position = (self.slots[at] as usize).checked_sub(1)?;
            if same_bytes(venues[position].code.as_bytes(), code.as_bytes()) {
                return Some(position);
            }
            at = (at + 1) & mask;
        }
    }
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
        let mut seen = HashSet::new();
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
            if !seen.insert(code.clone()) {
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
        let index = CodeIndex::new(&venues);
        Ok(Registry { venues, index })
    }

    pub fn lookup(&self, code: &str) -> Option<&Venue> {
        let position = self.index.find(&self.venues, code)?;
        Some(&self.venues[position])
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

    /// The index finds exactly what a `HashMap` of the codes finds: every code of a registry
    /// of thousands (lengths 1 to 20, many sharing prefixes and lengths), and nothing for
    /// prefixes, extensions, other cases, one byte changed, or the empty code.
    #[test]
    fn lookup_finds_what_a_hash_map_finds() {
        let mut csv = String::from("code,name,kind,latitude,longitude\n");
        let mut codes = Vec::new();
        for i in 0..3000u32 {
            let code = format!("{}{i}", &"XABCDEFGHIJKLMNOPQRSTU"[..(i % 17) as usize]);
            csv.push_str(&format!("{code},Venue {i},dark,40.0,-74.0\n"));
            codes.push(code);
        }
        let registry = Registry::parse(&csv, "test").unwrap();
        let oracle: std::collections::HashMap<&str, usize> = codes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), i))
            .collect();
        let embedded = Registry::embedded();
        let mut probes: Vec<String> = vec![String::new()];
        for code in codes
            .iter()
            .chain(embedded.venues().iter().map(|v| &v.code))
        {
            probes.push(code.clone());
            probes.push(code[..code.len() - 1].to_string());
            probes.push(format!("{code}0"));
            probes.push(code.to_lowercase());
            let mut changed = code.clone().into_bytes();
            changed[0] ^= 1;
            probes.push(String::from_utf8(changed).unwrap());
        }
        for probe in &probes {
            let found = registry.lookup(probe).map(|v| v.code.as_str());
            let expected = oracle.get(probe.as_str()).map(|&i| codes[i].as_str());
            assert_eq!(found, expected, "{probe:?}");
            let found = embedded.lookup(probe).map(|v| v.code.as_str());
            let expected = embedded.venues().iter().find(|v| &v.code == probe);
            assert_eq!(found, expected.map(|v| v.code.as_str()), "{probe:?}");
        }
    }

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
