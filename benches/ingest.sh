#!/usr/bin/env bash
# Ingest benchmark: darkpool (decode -> Parquet lake -> 5-minute windows) against DuckDB's
# aggregation alone over the same NDJSON. Prints trades/s, MB/s, peak RSS and the ratio.
#
#   benches/ingest.sh              # 1M and 10M trades
#   BENCH_SIZES="1000000" benches/ingest.sh
#
# Needs: cargo, python3 (a venv with duckdb is created under $BENCH_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/darkpool-target}"
BENCH_DIR="${BENCH_DIR:-$HOME/.cache/darkpool-bench}"
mkdir -p "$BENCH_DIR"
cargo build --release --quiet
if [ ! -x "$BENCH_DIR/venv/bin/python" ]; then
  python3 -m venv "$BENCH_DIR/venv"
  "$BENCH_DIR/venv/bin/pip" install --quiet duckdb
fi
exec "$BENCH_DIR/venv/bin/python" benches/ingest_bench.py \
  --darkpool "$CARGO_TARGET_DIR/release/darkpool" --dir "$BENCH_DIR" \
  --sizes "${BENCH_SIZES:-1000000 10000000}"
