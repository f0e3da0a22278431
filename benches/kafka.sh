#!/usr/bin/env bash
# Kafka benchmark: produce N simulated trades to a broker, then time
#   darkpool ingest --brokers --until-end   (consume -> decode -> lake -> windows -> window topic)
# against a bare rdkafka consume of the same topic (examples/kafka_consume.rs), and print
# trades/s, peak RSS and the ratio. Each size gets its own topic; peak RSS is compared across
# sizes. Starts its own tansu (.ci/tansu) unless BENCH_BROKERS names a broker.
#
#   benches/kafka.sh                            # 500k and 2M trades
#   BENCH_SIZES="2000000" BENCH_BROKERS=host:9092 benches/kafka.sh
#   BENCH_SIZES="2000000" BENCH_PAIRS=20 benches/kafka.sh
# BENCH_PAIRS=N runs N pairs (bare, then darkpool with a fresh lake and group) on each topic and
# ends with the ratio's min / median / max: on a shared 2-core VM one pair varies by ±5 %.
# It starts with the host's single-core speed at darkpool's decode (examples/decode_bench): the
# ratio follows it, since darkpool is CPU-bound on two cores while the bare consumer mostly
# waits on the broker; quote the two together (BENCH_HOST_CHECK=0 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/broker.sh
bench_build kafka --example decode_bench
if [ "${BENCH_HOST_CHECK:-1}" != 0 ]; then
  "$DP" simulate --count 200000 >"$BENCH_DIR/decode.ndjson"
  runs=$(for _ in 1 2 3; do
    "$CARGO_TARGET_DIR/release/examples/decode_bench" "$BENCH_DIR/decode.ndjson" 10 |
      sed -E 's/.* = ([0-9]+) ns.*/\1/'
  done | sort -n | tr '\n' ' ')
  echo "host check: decode_bench ${runs}ns a trade (best first; see README, Performance, Kafka ingest)"
fi
bench_broker 29092
FAST=(-X session.timeout.ms=2000 -X heartbeat.interval.ms=500)
peak() { grep 'Maximum resident' "$1" | awk '{printf "%.0f MiB", $6/1024}'; }
# CPU time (user + system, all threads) of a run.
cpu() { awk -F': ' '/User time|System time/ {s += $2} END {printf "%.2f CPU-s", s}' "$1"; }
for n in ${BENCH_SIZES:-500000 2000000}; do
  topic="bench-$n-$$"
  "$DP" simulate --brokers "$BENCH_BROKERS" --topic "$topic" --count "$n" --partitions 3 2>&1 | tail -1
  ratios=()
  reading_ratios=()
  for pair in $(seq "${BENCH_PAIRS:-1}"); do
    bare=$(/usr/bin/time -v -o "$BENCH_DIR/bare-time.txt" "$BARE" "$BENCH_BROKERS" "$topic")
    echo "$bare"
    rm -rf "$BENCH_DIR/lake"
    /usr/bin/time -v -o "$BENCH_DIR/time.txt" "$DP" ingest --brokers "$BENCH_BROKERS" --topic "$topic" \
      --group "bench-$n-$$-$pair" --lake "$BENCH_DIR/lake" --until-end --start earliest --batch-rows 65536 \
      --output-topic "windows-$n-$$-$pair" "${FAST[@]}" 2>"$BENCH_DIR/ingest.txt" || { cat "$BENCH_DIR/ingest.txt"; exit 1; }
    ingest_rate=$(awk '/speed/ {gsub(",", "", $2); print $2}' "$BENCH_DIR/ingest.txt")
    bare_rate=$(echo "$bare" | sed -E 's/.* = ([0-9]+) msg\/s.*/\1/')
    ratio=$(awk "BEGIN {printf \"%.3f\", $ingest_rate/$bare_rate}")
    ratios+=("$ratio")
    # The same from each side's first message: the group join (~1 s on both) left out.
    ingest_reading=$(awk '/reading/ {gsub(",", "", $2); print $2}' "$BENCH_DIR/ingest.txt")
    bare_reading=$(echo "$bare" | sed -E 's/.*, ([0-9]+) msg\/s from it.*/\1/')
    reading_ratio=$(awk "BEGIN {printf \"%.3f\", $ingest_reading/$bare_reading}")
    reading_ratios+=("$reading_ratio")
    grep -E 'consumed|accepted|windows|reading' "$BENCH_DIR/ingest.txt"
    echo "  darkpool ingest: $ingest_rate trades/s, $(cpu "$BENCH_DIR/time.txt"), peak RSS $(peak "$BENCH_DIR/time.txt"); bare consume: $bare_rate msg/s, $(cpu "$BENCH_DIR/bare-time.txt"); ratio $ratio ($reading_ratio from the first message)"
  done
  if [ "${#ratios[@]}" -gt 1 ]; then
    printf '%s\n' "${ratios[@]}" | sort -n | awk -v n="$n" '{r[NR] = $1; if ($1 >= 0.8) over++}
      END {printf "%s trades, %d pairs: ratio min %.3f, median %.3f, max %.3f; %d at or above 0.80\n",
           n, NR, r[1], (NR % 2 ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2), r[NR], over}'
    printf '%s\n' "${reading_ratios[@]}" | sort -n | awk '{r[NR] = $1}
      END {printf "  from the first message (group join left out): min %.3f, median %.3f, max %.3f\n",
           r[1], (NR % 2 ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2), r[NR]}'
  fi
done
