//! Compiles the SQL files into the binary (file stem = name), so an installed `darkpool` needs
//! no files beside it: the named queries of `sql/*.sql` and the report's `analysis/*.sql`.

use std::fmt::Write as _;
use std::path::Path;

/// `pub const NAME: &[(&str, &str)]` holding (stem, text) of every `*.sql` in `dir`, sorted.
fn embed(code: &mut String, dir: &str, name: &str) {
    println!("cargo:rerun-if-changed={dir}");
    // The run's manifest folder, not the one the script was compiled in: a target folder
    // shared between clones must not embed another clone's files.
    let root = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let dir = Path::new(&root).join(dir);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    entries.retain(|p| p.extension().is_some_and(|e| e == "sql"));
    entries.sort();
    let _ = writeln!(
        code,
        "/// SQL files compiled from `{}`: (name, text).\npub const {name}: &[(&str, &str)] = &[",
        dir.display()
    );
    for path in entries {
        println!("cargo:rerun-if-changed={}", path.display());
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let _ = writeln!(
            code,
            "    ({stem:?}, include_str!({:?})),",
            path.display().to_string()
        );
    }
    code.push_str("];\n");
}

fn write(file: &str, code: &str) {
    let out = Path::new(&std::env::var("OUT_DIR").unwrap_or_default()).join(file);
    if let Err(e) = std::fs::write(&out, code) {
        panic!("cannot write {}: {e}", out.display());
    }
}

fn main() {
    let mut named = String::new();
    embed(&mut named, "sql", "EMBEDDED");
    write("named_sql.rs", &named);
    let mut analysis = String::new();
    embed(&mut analysis, "analysis", "ANALYSIS");
    write("analysis_sql.rs", &analysis);
}
