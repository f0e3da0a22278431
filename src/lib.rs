//! darkpool: where equity liquidity trades — lit exchanges vs dark pools / ATSs and OTC prints.
//!
//! The chain (see `README.md` and DESIGN): trade input -> decode + validate ([`source`]) ->
//! Arrow batches ([`model`]) -> Parquet lake ([`lake`]) and event-time windows defined in SQL
//! ([`window`]) -> DataFusion SQL over the lake ([`engine`]) -> `query` output ([`output`]).

/// `eprintln!` that never panics: with stderr closed (a pipe whose reader went, `2>&-`) the
/// line is lost, not the process (`eprintln!` panics, which mid-run would drop a member's run).
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// [`say!`] without the newline (`eprint!`).
#[macro_export]
macro_rules! say_part {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
    }};
}

pub mod api;
pub mod cli;
pub mod engine;
pub mod export;
pub mod human;
pub mod ingest;
pub mod lake;
pub mod live;
pub mod memory;
pub mod model;
pub mod output;
pub mod report;
pub mod source;
pub mod time;
pub mod venue;
pub mod window;
