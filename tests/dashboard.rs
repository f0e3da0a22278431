//! The dashboard in a real browser: `darkpool serve` (the in-process pipeline over a lake of
//! the sample trades, a second server over an empty lake, and a third whose pipeline stopped
//! on a full disk), driven by
//! `web/tests/dashboard.mjs` — playwright-core and Debian's headless Chromium. Screenshots go
//! to `web/screenshots/` (or `$DARKPOOL_SCREENSHOTS`).
//!
//! Needs node, Chromium (`/usr/bin/chromium` or `$CHROMIUM`) and `npm ci` in `web/`; `.ci/run`
//! installs them. Without them the test says so and passes, unless `CI` or
//! `DARKPOOL_REQUIRE_BROWSER` is set: then it fails.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{interrupt, interrupt_and_wait, start_serve, SmallDisk};

/// What the browser test needs, or why it cannot run here.
fn browser() -> Result<PathBuf, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if !chromium.exists() {
        return Err(format!(
            "no Chromium at {} (apt-get install chromium, or set CHROMIUM)",
            chromium.display()
        ));
    }
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        _ => return Err("no node on PATH".into()),
    }
    if !root.join("web/node_modules/playwright-core").exists() {
        return Err("web/node_modules has no playwright-core (run npm ci in web/)".into());
    }
    Ok(chromium)
}

#[test]
fn dashboard_works_in_headless_chromium() {
    let chromium = match browser() {
        Ok(path) => path,
        Err(why) => {
            let required = std::env::var_os("CI").is_some()
                || std::env::var_os("DARKPOOL_REQUIRE_BROWSER").is_some();
            assert!(!required, "the browser test cannot run: {why}");
            eprintln!("SKIPPED the browser test: {why}");
            return;
        }
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    // The sample trades, and the FINRA tables for the FINRA tab (tests/data/finra, worked out
    // in tests/real_data.rs).
    let finra = root.join("tests/data/finra");
    let ingest = Command::new(env!("CARGO_BIN_EXE_darkpool"))
        .args(["ingest", "--lake", "lake", "--no-progress"])
        .arg(root.join("data/sample_trades.ndjson"))
        .args(
            [
                "ats_weekly_2024-01-08.txt",
                "ats_weekly_api.json",
                "CNMSshvol20240102.txt",
                "CNMSshvol20240103.txt",
            ]
            .map(|f| finra.join(f)),
        )
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        ingest.status.success(),
        "{}",
        String::from_utf8_lossy(&ingest.stderr)
    );
    let empty = tempfile::tempdir().unwrap();
    let (mut live, address) = start_serve(dir.path(), &["--rate", "200", "--commit-every", "2s"]);
    let (mut idle, empty_address) = start_serve(empty.path(), &["--no-ingest"]);
    // A fifth with no pipeline over the live one's lake: it follows what that one commits.
    let (mut follower, follower_address) = start_serve(dir.path(), &["--no-ingest"]);
    // A third whose pipeline stops: its lake on a filesystem the live trades fill in a second
    // (and told not to wait for room); a fourth that waits for room on one likewise.
    let full = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(&full.path().join("lake"), "1m");
    let filling = ["--rate", "4000", "--commit-every", "500ms"];
    let mut failing = disk.as_ref().map(|_| {
        start_serve(
            full.path(),
            &[&filling[..], &["--retry-for", "0s"]].concat(),
        )
    });
    let waiting_dir = tempfile::tempdir().unwrap();
    let waiting_disk = SmallDisk::mount(&waiting_dir.path().join("lake"), "1m");
    let mut waiting = waiting_disk
        .as_ref()
        .map(|_| start_serve(waiting_dir.path(), &filling));
    let shots = std::env::var_os("DARKPOOL_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("web/screenshots"));
    let run = Command::new("node")
        .arg("tests/dashboard.mjs")
        .current_dir(root.join("web"))
        .env("DARKPOOL_URL", format!("http://{address}"))
        .env("DARKPOOL_EMPTY_URL", format!("http://{empty_address}"))
        .env(
            "DARKPOOL_FOLLOWER_URL",
            format!("http://{follower_address}"),
        )
        .envs(
            failing
                .as_ref()
                .map(|(_, address)| ("DARKPOOL_FAILED_URL", format!("http://{address}"))),
        )
        .envs(
            waiting
                .as_ref()
                .map(|(_, address)| ("DARKPOOL_RESTARTING_URL", format!("http://{address}"))),
        )
        .env("DARKPOOL_SCREENSHOTS", &shots)
        .env("CHROMIUM", &chromium)
        .status()
        .unwrap();
    interrupt(&mut live);
    interrupt(&mut idle);
    interrupt(&mut follower);
    if let Some((child, _)) = &mut failing {
        // Its exit says the pipeline failed.
        assert!(!interrupt_and_wait(child).success());
    }
    if let Some((child, _)) = &mut waiting {
        // Stopped while it waits, or in a try the full disk fails: either way it ends.
        interrupt_and_wait(child);
    }
    drop(disk);
    drop(waiting_disk);
    assert!(run.success(), "the browser test failed ({run})");
    for shot in [
        "overview",
        "timeseries",
        "darklit",
        "map",
        "finra",
        "sql",
        "live",
        "phone",
        "empty",
    ] {
        let path = shots.join(format!("{shot}.png"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
            "{}",
            path.display()
        );
    }
}
