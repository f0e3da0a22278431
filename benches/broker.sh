# Sourced by the Kafka scripts (benches/kafka.sh, benches/kafka_live.sh, tests/chaos.sh), from
# the repository's root.
#
# `bench_build NAME [--example E ...]`: CARGO_TARGET_DIR (default ~/.cache/darkpool-target),
# BENCH_DIR (~/.cache/darkpool-bench/NAME, made), a release build of darkpool and of the bare
# consumer (examples/kafka_consume) plus any other examples named; DP and BARE name the two.
bench_build() {
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/darkpool-target}"
  BENCH_DIR="${BENCH_DIR:-$HOME/.cache/darkpool-bench}/$1"
  shift
  mkdir -p "$BENCH_DIR"
  cargo build --release --quiet --bin darkpool --example kafka_consume "$@"
  DP="$CARGO_TARGET_DIR/release/darkpool"
  BARE="$CARGO_TARGET_DIR/release/examples/kafka_consume"
}

# `bench_broker PORT [ADVERTISED]`: the brokers in BENCH_BROKERS, or else a
# tansu of our own (.ci/tansu; in memory) on 127.0.0.1:PORT, logging to $BENCH_DIR/tansu.log and
# stopped when the script exits; BENCH_BROKERS then names it. With ADVERTISED it tells clients
# to connect to that port instead (a proxy in front of it); BENCH_BROKERS names that port.
bench_broker() {
  if [ -n "${BENCH_BROKERS:-}" ]; then
    return
  fi
  local tansu advertised="${2:-$1}"
  tansu="$(.ci/tansu)"
  "$tansu" broker --listener-url "tcp://127.0.0.1:$1" --advertised-listener-url "tcp://127.0.0.1:$advertised" \
    --storage-engine memory://tansu/ >"$BENCH_DIR/tansu.log" 2>&1 &
  TANSU_PID=$!
  trap 'kill "$TANSU_PID" 2>/dev/null || true' EXIT
  sleep 1
  BENCH_BROKERS="127.0.0.1:$advertised"
}
