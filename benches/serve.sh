#!/usr/bin/env bash
# API benchmark: wrk against `darkpool serve` while its in-process pipeline ingests, and the
# same load against the original system's API (Flask serving the same windows from memory).
#
#   benches/serve.sh                         # 10,000 windows in /api/heatmap_data
#   BENCH_WINDOWS=500 BENCH_DURATION=10s benches/serve.sh
#
# Prints requests/s, p50/p99 latency, response size and the ratios. Needs: cargo, wrk
# (apt-get install wrk), python3 (a venv with Flask is created under $BENCH_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/darkpool-target}"
BENCH_DIR="${BENCH_DIR:-$HOME/.cache/darkpool-bench}"
WINDOWS="${BENCH_WINDOWS:-10000}"
DURATION="${BENCH_DURATION:-15s}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
THREADS="${BENCH_THREADS:-2}"
command -v wrk >/dev/null || { echo "benches/serve.sh needs wrk (apt-get install wrk)" >&2; exit 1; }
cargo build --release --quiet
DARKPOOL="$CARGO_TARGET_DIR/release/darkpool"
mkdir -p "$BENCH_DIR"
if ! "$BENCH_DIR/venv/bin/python" -c "import flask" 2>/dev/null; then
  python3 -m venv "$BENCH_DIR/venv"
  "$BENCH_DIR/venv/bin/pip" install --quiet flask
fi
WORK="$BENCH_DIR/serve"
rm -rf "$WORK" && mkdir -p "$WORK"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  sleep 2
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

# A lake with more than $WINDOWS windows: 8 symbols x 33 venues give about 260 windows per
# 5 minutes of market time; 50 trades/s of market time fill them.
TRADES=$(( (WINDOWS / 200 + 2) * 300 * 50 ))
"$DARKPOOL" simulate --count "$TRADES" --seed 7 > "$WORK/trades.ndjson"
"$DARKPOOL" ingest --lake "$WORK/lake" --no-progress "$WORK/trades.ndjson" >/dev/null
echo "lake: $TRADES trades, $("$DARKPOOL" query --lake "$WORK/lake" --format csv "SELECT COUNT(*) FROM windows" | tail -1) windows"

# darkpool serve with its pipeline ingesting 1,000 simulated trades/s during the load.
"$DARKPOOL" serve --lake "$WORK/lake" --bind 127.0.0.1:5077 --heatmap-rows "$WINDOWS" \
  --rate 1000 --commit-every 2s 2>"$WORK/serve.log" &
pids+=($!)
for _ in $(seq 100); do curl -sf http://127.0.0.1:5077/readyz >/dev/null && break; sleep 0.1; done
curl -sf http://127.0.0.1:5077/api/heatmap_data -o "$WORK/heatmap_data.json"

# The original API: Flask's own server (as the original ran it) returning the windows it holds
# in memory with jsonify.
"$BENCH_DIR/venv/bin/python" benches/serve_peer.py --data "$WORK/heatmap_data.json" --port 5078 \
  2>"$WORK/flask.log" &
pids+=($!)
for _ in $(seq 100); do curl -sf http://127.0.0.1:5078/api/heatmap_data -o /dev/null && break; sleep 0.2; done

load() { # name url -> "req/s p50 p99 bytes"
  local out bytes
  bytes=$(curl -sf "$2" | wc -c)
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$2")
  python3 - "$1" "$bytes" <<PY
import re, sys
out = """$out"""
def ms(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
p50 = ms(re.search(r"50%\s+(\S+)", out).group(1))
p99 = ms(re.search(r"99%\s+(\S+)", out).group(1))
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
bad = f"  NON-2xx: {errors.group(1)}" if errors else ""
print(f"{sys.argv[1]:<44} {rps:>10,.0f} req/s  p50 {p50:>8.2f} ms  p99 {p99:>8.2f} ms  {int(sys.argv[2]):>10,} B{bad}")
PY
}
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, server and wrk on one machine ($(nproc) cores)"
load "darkpool /api/heatmap_data ($WINDOWS windows)" http://127.0.0.1:5077/api/heatmap_data | tee "$WORK/a"
load "flask    /api/heatmap_data ($WINDOWS windows)" http://127.0.0.1:5078/api/heatmap_data | tee "$WORK/b"
load "darkpool /api/heatmap_data.csv (kepler)" http://127.0.0.1:5077/api/heatmap_data.csv
load "darkpool /api/dashboard" http://127.0.0.1:5077/api/dashboard
load "darkpool /api/queries/venue_summary (no cache)" http://127.0.0.1:5077/api/queries/venue_summary
python3 - "$WORK/a" "$WORK/b" <<'PY'
import re, sys
a, b = (float(re.search(r"([\d,]+) req/s", open(p).read()).group(1).replace(",", "")) for p in sys.argv[1:])
print(f"darkpool / flask on /api/heatmap_data: {a / b:.1f}x requests/s")
PY
echo "trades ingested during the run: $(curl -sf http://127.0.0.1:5077/metrics | awk '/^darkpool_live_trades_total/ {print $2}')"
