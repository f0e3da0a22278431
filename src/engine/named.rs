//! Named queries: `sql/<name>.sql`, compiled in, and overridable from a folder at run time.

use std::path::Path;

include!(concat!(env!("OUT_DIR"), "/named_sql.rs"));

/// One named query.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedQuery {
    pub name: String,
    /// The first comment line: what the query answers.
    pub description: String,
    pub sql: String,
}

impl NamedQuery {
    fn new(name: &str, sql: &str) -> NamedQuery {
        let description = sql
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("--"))
            .map(|l| l.trim_start_matches('-').trim().to_string())
            .unwrap_or_default();
        NamedQuery {
            name: name.to_string(),
            description,
            sql: sql.to_string(),
        }
    }
}

/// The embedded named queries, with same-named files of `dir` (when it exists) taking
/// precedence and new files added.
pub fn load(dir: Option<&Path>) -> std::io::Result<Vec<NamedQuery>> {
    load_set(EMBEDDED, dir)
}

/// A set of embedded SQL files (name, text), with same-named files of `dir` (when it exists)
/// taking precedence and new files added; sorted by name.
pub fn load_set(embedded: &[(&str, &str)], dir: Option<&Path>) -> std::io::Result<Vec<NamedQuery>> {
    let mut queries: Vec<NamedQuery> = embedded
        .iter()
        .map(|(n, s)| NamedQuery::new(n, s))
        .collect();
    if let Some(dir) = dir.filter(|d| d.is_dir()) {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_none_or(|e| e != "sql") {
                continue;
            }
            let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            let text = std::fs::read_to_string(&path)?;
            let query = NamedQuery::new(name, &text);
            match queries.iter_mut().find(|q| q.name == name) {
                Some(existing) => *existing = query,
                None => queries.push(query),
            }
        }
    }
    queries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(queries)
}

/// Is `text` a query name rather than SQL?
pub fn looks_like_name(text: &str) -> bool {
    let t = text.trim();
    !t.is_empty()
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}
