# Sourced by the Kafka benchmarks. `bench_broker PORT`: the brokers in BENCH_BROKERS, or else a
# tansu of our own (.ci/tansu; in memory) on 127.0.0.1:PORT, logging to $BENCH_DIR/tansu.log and
# stopped when the script exits; BENCH_BROKERS then names it.
bench_broker() {
  if [ -n "${BENCH_BROKERS:-}" ]; then
    return
  fi
  local tansu
  tansu="$(.ci/tansu)"
  "$tansu" broker --listener-url "tcp://127.0.0.1:$1" --advertised-listener-url "tcp://127.0.0.1:$1" \
    --storage-engine memory://tansu/ >"$BENCH_DIR/tansu.log" 2>&1 &
  TANSU_PID=$!
  trap 'kill "$TANSU_PID" 2>/dev/null || true' EXIT
  sleep 1
  BENCH_BROKERS="127.0.0.1:$1"
}
