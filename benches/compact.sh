#!/usr/bin/env bash
# Compaction benchmark: a lake of many small commits as a long-running Kafka member leaves it
# (`ingest --brokers --commit-every 100ms` reading a topic `simulate --brokers --rate` fills,
# without --compact-every), the queries over it and a small `ingest` into it, `darkpool
# compact`, the same after; and DuckDB rewriting the same small files into one file per table
# (the same work: read N files, write one) as the peer. Starts its own tansu (.ci/tansu) unless
# BENCH_BROKERS names a broker.
#
#   benches/compact.sh                                  # 120 s at 10,000 trades/s
#   BENCH_SECONDS=60 BENCH_RATE=20000 benches/compact.sh
#
# Needs: cargo, python3 (a venv with duckdb is created under $BENCH_DIR, as benches/ingest.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/broker.sh
bench_build compact
PY_DIR="$(dirname "$BENCH_DIR")"
if [ ! -x "$PY_DIR/venv/bin/python" ]; then
  python3 -m venv "$PY_DIR/venv"
  "$PY_DIR/venv/bin/pip" install --quiet duckdb
fi
PY="$PY_DIR/venv/bin/python"
bench_broker 29094
seconds=${BENCH_SECONDS:-120}
rate=${BENCH_RATE:-10000}
work="$BENCH_DIR/run"
rm -rf "$work" && mkdir -p "$work"
topic="compact-$$"
echo "a Kafka member committing every 100 ms while ${rate} trades/s arrive for ${seconds} s ..."
"$DP" ingest --brokers "$BENCH_BROKERS" --topic "$topic" --lake "$work/lake" --start earliest \
  --commit-every 100ms --compact-every off --output-topic "" --status-every off \
  -X session.timeout.ms=2000 -X heartbeat.interval.ms=500 2>"$work/ingest.txt" &
member=$!
"$DP" simulate --brokers "$BENCH_BROKERS" --topic "$topic" --count $((rate * seconds)) \
  --rate "$rate" 2>&1 | tail -1
sleep 3
kill -INT "$member"
wait "$member"
grep -E "accepted|windows" "$work/ingest.txt" || true
"$DP" simulate --count 1000 --seed 7 >"$work/small.ndjson" 2>/dev/null
files() { find "$1" -name '*.parquet' | wc -l; }
echo "lake: $(files "$work/lake/trades") trades files, $(files "$work/lake/windows") windows files, $(du -sh "$work/lake" | cut -f1)"
cp -r "$work/lake" "$work/lake-peer"

queries=(
  "SELECT COUNT(*), SUM(quantity) FROM trades"
  "SELECT venue_kind, SUM(total_quantity) FROM windows GROUP BY 1 ORDER BY 1"
  "venue_summary"
)
# Best and median of 5 wall-clock runs of a darkpool query, in seconds.
time_query() {
  for _ in 1 2 3 4 5; do
    /usr/bin/time -f %e "$DP" query --lake "$work/lake" --format csv "$1" 2>&1 >/dev/null | tail -1
  done | sort -n | awk '{t[NR] = $1} END {printf "best %.3f s, median %.3f s", t[1], t[3]}'
}
declare -A before
for q in "${queries[@]}"; do
  before[$q]=$(time_query "$q")
done
# A 1,000-trade ingest into a copy of the lake (its start reads each key's last window).
time_ingest() {
  rm -rf "$work/lake-copy" && cp -r "$work/lake" "$work/lake-copy"
  /usr/bin/time -f %e "$DP" ingest --lake "$work/lake-copy" --no-progress "$work/small.ndjson" 2>&1 | tail -1
}
ingest_before=$(time_ingest)
# A query's answer, its decimals to 12 significant digits (sums of doubles differ in the last
# digits with the order files are read in), hashed.
answer() {
  "$DP" query --lake "$work/lake" --format csv "$1" 2>/dev/null |
    awk -F, -v OFS=, '{for (i = 1; i <= NF; i++) if ($i ~ /^-?[0-9]+\.[0-9]+$/) $i = sprintf("%.12g", $i); print}' |
    md5sum | cut -c1-12
}
answers_before=$(for q in "${queries[@]}"; do answer "$q"; done | tr '\n' ' ')

/usr/bin/time -f "%e %M" -o "$work/compact-time.txt" "$DP" compact --lake "$work/lake" 2>"$work/compact.txt"
cat "$work/compact.txt"
read -r compact_s compact_kb <"$work/compact-time.txt"
echo "darkpool compact: ${compact_s} s, peak RSS $((compact_kb / 1024)) MiB"
answers_after=$(for q in "${queries[@]}"; do answer "$q"; done | tr '\n' ' ')
if [ "$answers_before" != "$answers_after" ]; then
  echo "ANSWERS DIFFER after compaction: $answers_before / $answers_after" >&2
  exit 1
fi
echo "answers identical before and after ($answers_after)"
for q in "${queries[@]}"; do
  echo "query '$q': before ${before[$q]}; after $(time_query "$q")"
done
echo "ingest of 1,000 trades into it: before ${ingest_before} s; after $(time_ingest) s"
rm -rf "$work/lake-copy"

peer=$("$PY" - "$work/lake-peer" <<'EOF'
import sys, time, duckdb
lake = sys.argv[1]
con = duckdb.connect()
start = time.perf_counter()
for table in ("trades", "windows", "late"):
    con.execute(f"""COPY (SELECT * FROM read_parquet('{lake}/{table}/*/*.parquet'))
                    TO '{lake}/{table}-one.parquet' (FORMAT parquet, COMPRESSION zstd)""")
print(f"{time.perf_counter() - start:.2f}")
EOF
)
ratio=$(awk "BEGIN {printf \"%.2f\", $compact_s / $peer}")
echo "DuckDB rewriting the same files (trades, windows, late) into one per table: ${peer} s; darkpool compact / DuckDB: ${ratio}x the time"
