#!/usr/bin/env bash
# Chaos rounds for the Kafka aggregator, longer and more random than `cargo test`'s kill -9
# tests: while `simulate` writes N trades at a rate to a 6-partition topic, members of one
# group (each also compacting the lake every 2 s, one at a time) are killed (-9), stopped (SIGTERM), frozen past their session (SIGSTOP, then SIGCONT)
# and started at random (one to three alive; the group's assignor eager `range` or
# `cooperative-sticky` by round), and the broker is cut off now and then (every connection
# frozen for 2-5 s, or dropped and refused for 1-2 s). Then they are stopped, one run reads on to the end, and the
# round checks: every trade in the lake exactly once, and the windows' counts and volumes, in
# the lake and in each window's newest version on the window topic, equal to the trades binned
# in batch. Exits non-zero on the first round that fails, leaving its folder (logs, actions,
# lake; CHAOS_KEEP=1 keeps every round's).
#
#   tests/chaos.sh                                    # 5 rounds, its own tansu (.ci/tansu)
#   CHAOS_ROUNDS=20 CHAOS_TRADES=50000 BENCH_BROKERS=host:9092 tests/chaos.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/broker.sh
bench_build chaos
# Broker trouble too, unless BENCH_BROKERS names a broker or CHAOS_BROKER_FAULTS=0: the clients
# reach our own tansu through tests/chaos_proxy.py, which rounds freeze (SIGSTOP: every
# connection stalls, as in a network partition) and kill and start again (every connection
# dropped, and refused meanwhile, as a broker restart does).
FAULTS=0
if [ -z "${BENCH_BROKERS:-}" ] && [ "${CHAOS_BROKER_FAULTS:-1}" != 0 ]; then
  FAULTS=1
  PROXY="$PWD/tests/chaos_proxy.py"
  PROXY_PID_FILE="$BENCH_DIR/proxy.pid"
  proxy_start() {
    rm -f "$PROXY_PID_FILE"
    python3 "$PROXY" 29099 29094 "$PROXY_PID_FILE" >/dev/null 2>&1 &
    for _ in $(seq 50); do
      [ -s "$PROXY_PID_FILE" ] && return
      sleep 0.1
    done
    echo "the proxy did not start" >&2
    return 1
  }
  bench_broker 29094 29099
  proxy_start
  trap 'kill "$TANSU_PID" 2>/dev/null; kill -9 "$(cat "$PROXY_PID_FILE" 2>/dev/null)" 2>/dev/null; true' EXIT
else
  bench_broker 29094
fi
ROUNDS="${CHAOS_ROUNDS:-5}" TRADES="${CHAOS_TRADES:-30000}" RATE="${CHAOS_RATE:-4000}"
GROUP_SETTINGS=(-X session.timeout.ms=2000 -X heartbeat.interval.ms=500)

round() {
  local strategy=$1 id="$RANDOM$RANDOM"
  local topic="chaos-$id" group="chaos-$id" out="chaos-$id-windows" dir
  dir="$(mktemp -d "$BENCH_DIR/round-XXXX")"
  cd "$dir"
  "$DP" simulate --brokers "$BENCH_BROKERS" --topic "$topic" --count 0 --partitions 6 >/dev/null 2>&1
  local member=(ingest --brokers "$BENCH_BROKERS" --topic "$topic" --group "$group" --lake lake
    --commit-every 300ms --compact-every 2s --idle-timeout 60s --window-memory-rows 16
    "${GROUP_SETTINGS[@]}"
    --output-topic "$out"
    -X "partition.assignment.strategy=$strategy")
  local pids=() started=0
  touch actions
  start() {
    started=$((started + 1))
    DARKPOOL_LOG=darkpool=info "$DP" "${member[@]}" 2>"m$started.log" &
    pids+=($!)
    echo "start m$started ($!)" >>actions
  }
  alive() {
    local live=()
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && live+=("$p"); done
    pids=("${live[@]}")
  }
  start
  start
  sleep 3
  "$DP" simulate --brokers "$BENCH_BROKERS" --topic "$topic" --count "$TRADES" --rate "$RATE" \
    --seed "$id" >/dev/null 2>&1 &
  local producer=$!
  while kill -0 "$producer" 2>/dev/null; do
    sleep "0.$((RANDOM % 9 + 1))"
    alive
    local victim=${pids[$((RANDOM % (${#pids[@]} + 1)))]:-}
    case $((RANDOM % 11)) in
      0|1) [ -n "$victim" ] && kill -9 "$victim" && echo "kill -9 $victim" >>actions ;;
      2|3) [ -n "$victim" ] && [ ${#pids[@]} -gt 1 ] && kill -TERM "$victim" && echo "term $victim" >>actions ;;
      10) # The broker out of reach for a few seconds, one such fault at a time.
         if [ "$FAULTS" = 1 ] && ! [ -e broker-fault ]; then
           touch broker-fault
           if [ $((RANDOM % 2)) = 0 ]; then
             echo "partition" >>actions
             { p=$(cat "$PROXY_PID_FILE"); kill -STOP "$p"; sleep "$((RANDOM % 4 + 2))"; kill -CONT "$p"
               rm -f broker-fault; } &
           else
             echo "broker restart" >>actions
             { kill -9 "$(cat "$PROXY_PID_FILE")"; sleep "1.$((RANDOM % 9))"; proxy_start
               rm -f broker-fault; } &
           fi
         fi ;;
      4|5) # Frozen past its session (a long GC pause, a suspended VM): the group moves on
         # without it, and it wakes up still holding a run of partitions now another's.
         [ -n "$victim" ] && kill -STOP "$victim" && echo "stop $victim" >>actions &&
           { sleep "$((RANDOM % 3 + 3))"; kill -CONT "$victim" 2>/dev/null; } & ;;
      *) [ ${#pids[@]} -lt 3 ] && start ;;
    esac
  done
  while [ -e broker-fault ]; do sleep 0.2; done
  alive
  [ ${#pids[@]} -gt 0 ] || start
  sleep 6
  for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  "$DP" ingest --brokers "$BENCH_BROKERS" --topic "$topic" --group "$group-end" --lake lake \
    --until-end "${GROUP_SETTINGS[@]}" --output-topic "$out" 2>end.log
  local landed windows
  landed=$("$DP" query --lake lake --format csv "SELECT COUNT(*) AS n, COUNT(DISTINCT source_partition * 1000000000000 + source_offset) AS distinct_positions FROM trades" | tail -1)
  windows=$("$DP" query --lake lake --format csv "
    WITH batch AS (
      SELECT arrow_cast(date_bin(INTERVAL '5 minutes', \"timestamp\"), 'Timestamp(Microsecond, Some(\"UTC\"))') AS window_start,
             symbol, venue, COUNT(*) AS num_trades, SUM(quantity) AS total_quantity
      FROM trades GROUP BY 1, 2, 3),
    streamed AS (SELECT window_start, symbol, venue, num_trades, total_quantity FROM windows)
    SELECT (SELECT COUNT(*) FROM (SELECT * FROM batch EXCEPT SELECT * FROM streamed))
         + (SELECT COUNT(*) FROM (SELECT * FROM streamed EXCEPT SELECT * FROM batch)) AS differing" | tail -1)
  # The window topic: each window's newest version (corrections come later in its partition)
  # against the trades binned in batch; copies of one version must agree.
  "$BARE" "$BENCH_BROKERS" "$out" --print >windows.ndjson 2>/dev/null
  "$DP" query --lake lake --format csv "SELECT window_start, symbol, venue, COUNT(*) AS num_trades, SUM(quantity) AS total_quantity FROM (SELECT date_bin(INTERVAL '5 minutes', \"timestamp\") AS window_start, * FROM trades) GROUP BY 1, 2, 3" >batch.csv
  local published
  published=$(python3 - <<'PY'
import csv, json
newest, clashes = {}, 0
for line in open("windows.ndjson"):
    w = json.loads(line)
    key = (w["window_start"], w["symbol"], w["venue"])
    value = (w["num_trades"], w["total_quantity"])
    seen = newest.get(key)
    if seen is None or w["version"] > seen[0]:
        newest[key] = (w["version"], value)
    elif w["version"] == seen[0] and value != seen[1]:
        clashes += 1
batch = {(r["window_start"][:19], r["symbol"], r["venue"]): (int(r["num_trades"]), int(r["total_quantity"]))
         for r in csv.DictReader(open("batch.csv"))}
wrong = sum(1 for k, v in batch.items() if newest.get(k, (0, None))[1] != v)
extra = sum(1 for k in newest if k not in batch)
print(wrong + extra + clashes)
PY
)
  echo "$strategy: $started members, $(grep -c '^kill' actions) killed, $(grep -c '^stop' actions) frozen, $(grep -c '^partition\|^broker restart' actions) broker faults; trades $landed (want $TRADES,$TRADES); windows differing $windows, on the topic $published"
  cd - >/dev/null
  if [ "$landed" != "$TRADES,$TRADES" ] || [ "$windows" != 0 ] || [ "$published" != 0 ]; then
    echo "FAILED: $dir" >&2
    return 1
  fi
  [ -n "${CHAOS_KEEP:-}" ] || rm -rf "$dir"
}

for n in $(seq "$ROUNDS"); do
  if [ $((n % 2)) = 1 ]; then round cooperative-sticky; else round range; fi
done
