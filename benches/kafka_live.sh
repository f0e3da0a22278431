#!/usr/bin/env bash
# Live Kafka benchmark: a paced producer (`darkpool simulate --brokers --rate R` over S symbols,
# market time as fast as the wall clock), followed by
#   darkpool ingest --brokers --start latest   (live: decode -> lake -> windows -> window topic)
# and by a bare rdkafka consumer (examples/kafka_consume.rs --follow: poll, touch every payload).
# After a warm-up, each side's CPU (user + system, all threads, from /proc) is taken over the
# same span: µs a trade, % of a core, and darkpool's CPU as a multiple of the bare consumer's.
# A backfill (benches/kafka.sh) measures throughput; this measures what an always-on
# aggregator costs, which depends on its open windows (symbols x venues) as much as its rate.
# Starts its own tansu (.ci/tansu) unless BENCH_BROKERS names a broker.
#
#   benches/kafka_live.sh                                  # 2,000 trades/s, 400 symbols, 30 s
#   BENCH_RATE=500 BENCH_SYMBOLS=50 BENCH_SECS=60 benches/kafka_live.sh
#   BENCH_BASE=/path/to/another/darkpool benches/kafka_live.sh   # that build too, alternating
#   BENCH_PAIRS=3 benches/kafka_live.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/broker.sh
bench_build kafka-live
RATE="${BENCH_RATE:-2000}"
SECS="${BENCH_SECS:-30}"
WARM="${BENCH_WARMUP:-5}"
SYMBOLS=$(seq -f "S%03g" 0 $(("${BENCH_SYMBOLS:-400}" - 1)) | paste -sd,)
TICKS=$(getconf CLK_TCK)
bench_broker 29094
FAST=(-X session.timeout.ms=2000 -X heartbeat.interval.ms=500)
# CPU ticks (user + system) of a process so far.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# One live run of darkpool binary $1 beside the bare consumer; prints one line.
run() {
  local dp="$1" topic="live-$$-$RANDOM"
  "$dp" simulate --brokers "$BENCH_BROKERS" --topic "$topic" --count 1 --partitions 3 >/dev/null 2>&1
  rm -rf "$BENCH_DIR/lake"
  "$dp" ingest --brokers "$BENCH_BROKERS" --topic "$topic" --group "g-$topic" --lake "$BENCH_DIR/lake" \
    --start latest --output-topic "w-$topic" "${FAST[@]}" 2>"$BENCH_DIR/ingest.txt" &
  local ingest=$!
  "$BARE" "$BENCH_BROKERS" "$topic" --follow >/dev/null &
  local bare=$!
  sleep 2
  "$dp" simulate --brokers "$BENCH_BROKERS" --topic "$topic" --rate "$RATE" --market-rate "$RATE" \
    --symbols "$SYMBOLS" --count $((RATE * (WARM + SECS + 30))) >/dev/null 2>&1 &
  local producer=$!
  sleep "$WARM"
  local i0 b0 i1 b1
  i0=$(ticks $ingest); b0=$(ticks $bare)
  sleep "$SECS"
  i1=$(ticks $ingest); b1=$(ticks $bare)
  kill -INT $ingest; wait $ingest || { cat "$BENCH_DIR/ingest.txt"; exit 1; }
  kill $bare $producer 2>/dev/null || true
  wait $bare $producer 2>/dev/null || true
  awk -v i=$((i1 - i0)) -v b=$((b1 - b0)) -v t="$TICKS" -v s="$SECS" -v r="$RATE" -v dp="$dp" 'BEGIN {
    printf "%s: ingest %.1f µs a trade (%.1f %% of a core), bare consume %.1f µs (%.1f %%), ratio %.1fx\n",
      dp, i / t / (s * r) * 1e6, 100 * i / t / s, b / t / (s * r) * 1e6, 100 * b / t / s, (b > 0 ? i / b : 0) }'
}
echo "$RATE trades/s over ${BENCH_SYMBOLS:-400} symbols, CPU over ${SECS} s after ${WARM} s"
for _ in $(seq "${BENCH_PAIRS:-1}"); do
  run "$DP"
  if [ -n "${BENCH_BASE:-}" ]; then run "$BENCH_BASE"; fi
done
grep -E 'accepted|windows' "$BENCH_DIR/ingest.txt" || true
