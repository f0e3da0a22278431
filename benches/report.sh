#!/usr/bin/env bash
# Report benchmark: `darkpool report` (all plots + index.html from the Parquet lake) on a lake
# of N simulated trades, against the original system's way — pandas + seaborn drawing its seven
# PNGs from a JSON dump of the windows. Prints seconds, peak RSS and the ratio.
#
#   benches/report.sh                       # 10M trades
#   BENCH_TRADES=1000000 benches/report.sh
#
# Needs: cargo, python3 (a venv with pandas, seaborn and matplotlib is created under $BENCH_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/darkpool-target}"
BENCH_DIR="${BENCH_DIR:-$HOME/.cache/darkpool-bench}"
mkdir -p "$BENCH_DIR"
cargo build --release --quiet
if ! "$BENCH_DIR/venv/bin/python" -c "import pandas, seaborn, matplotlib" 2>/dev/null; then
  python3 -m venv "$BENCH_DIR/venv"
  "$BENCH_DIR/venv/bin/pip" install --quiet pandas seaborn matplotlib
fi
exec "$BENCH_DIR/venv/bin/python" benches/report_bench.py \
  --darkpool "$CARGO_TARGET_DIR/release/darkpool" --dir "$BENCH_DIR" \
  --trades "${BENCH_TRADES:-10000000}" --runs "${BENCH_RUNS:-3}"
