//! Helpers the integration tests share: `darkpool serve` as a child process, and seeded
//! simulated trades.
#![allow(dead_code)]

pub mod oracle;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Start `darkpool serve` in `dir` on a free port; returns the child and its address.
pub fn start_serve(dir: &Path, extra: &[&str]) -> (std::process::Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_darkpool"))
        .args(["serve", "--lake", "lake", "--bind", "127.0.0.1:0"])
        .args(extra)
        .current_dir(dir)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let address = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address in: {line}"))
        .to_string();
    // Keep reading what it logs, so the pipe never fills or closes under it.
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            eprintln!("serve: {line}");
        }
    });
    (child, address)
}

/// Ctrl-C, then wait (at most 30 s) for a clean exit.
pub fn interrupt(child: &mut std::process::Child) {
    let exit = interrupt_and_wait(child);
    assert!(exit.success(), "{exit:?}");
}

/// Ctrl-C, then wait (at most 30 s) for the child to end; its exit status.
pub fn interrupt_and_wait(child: &mut std::process::Child) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = std::time::Instant::now();
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!(
                "serve did not stop within 30 s of Ctrl-C (an open event stream must not hold it)"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    exit
}

/// What the lake's staging folder holds besides runs whose commit is logged: the runs a
/// failure left half-written. (A run logged, then stopped while publishing on a full disk,
/// stays there for recovery to roll forward.)
pub fn unlogged_staging(lake: &Path) -> Vec<std::ffi::OsString> {
    std::fs::read_dir(lake.join("_staging"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|run| {
            let log = format!("{}.json", run.to_string_lossy());
            !lake.join("_commits").join(log).exists()
        })
        .collect()
}

/// A filesystem of its own, `size` big (tmpfs: `512k`, `1m`, ...), mounted at `at` (made if
/// missing) for the disk-full tests, and unmounted when dropped: a real `ENOSPC` from the
/// kernel. Mounting needs the right to (root, as CI runs); where that is missing the test
/// says so and gets `None`, except in CI (`CI` set, and not to `false`), where that fails it.
pub struct SmallDisk {
    at: std::path::PathBuf,
}

impl SmallDisk {
    pub fn mount(at: &Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(at).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output();
        match mounted {
            Ok(out) if out.status.success() => Some(SmallDisk {
                at: at.to_path_buf(),
            }),
            other => {
                let why = match other {
                    Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_string(),
                    Err(e) => e.to_string(),
                };
                assert!(
                    std::env::var_os("CI").is_none_or(|v| v == "false"),
                    "cannot mount a small tmpfs for the disk-full test: {why}"
                );
                eprintln!("SKIPPED: cannot mount a small tmpfs (run as root): {why}");
                None
            }
        }
    }

    /// Make room: the same filesystem, with what it holds, `size` big.
    pub fn grow(&self, size: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.at)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

/// `count` simulated trades (NDJSON, seeded) from 2024-01-02 09:30 UTC at `market_rate` trades
/// per market second.
pub fn simulate(path: &Path, count: u64, seed: u64, market_rate: f64) {
    use darkpool::source::simulator::{self, Clock, SimConfig, SimFormat, DEFAULT_SYMBOLS};
    let config = SimConfig {
        seed,
        clock: Clock::Market(darkpool::time::parse_timestamp("2024-01-02T09:30:00Z").unwrap()),
        symbols: DEFAULT_SYMBOLS.iter().map(|s| s.0.to_string()).collect(),
        market_rate,
    };
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    simulator::write_trades(
        &config,
        &darkpool::venue::Registry::embedded(),
        SimFormat::Ndjson,
        Some(count),
        0.0,
        &mut out,
    )
    .unwrap();
}

/// The Parquet files under `dir` (a lake table's folder, its date partitions included), in
/// path order; none if it does not exist.
pub fn parquet_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}
