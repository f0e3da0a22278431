"""Run darkpool ingest and DuckDB over the same simulated NDJSON; print figures and ratios.

Called by benches/ingest.sh (which builds darkpool and provides a venv with duckdb).
"""
import argparse
import os
import re
import shutil
import subprocess
import time

import duckdb

WINDOW_SQL = """
SELECT time_bucket(INTERVAL 5 MINUTES, CAST("timestamp" AS TIMESTAMP)) AS window_start,
       symbol, venue,
       SUM(trade_value) AS total_trade_value, SUM(quantity) AS total_quantity,
       COUNT(*) AS num_trades, AVG(price) AS avg_price,
       SUM(trade_value) / SUM(quantity) AS vwap, MIN(price) AS min_price, MAX(price) AS max_price,
       SUM(CASE WHEN quantity >= 10000 OR trade_value >= 200000 THEN 1 ELSE 0 END) AS block_trades
FROM read_json('{path}', format = 'newline_delimited',
               columns = {{timestamp: 'VARCHAR', symbol: 'VARCHAR', price: 'DOUBLE', quantity: 'BIGINT',
                           venue: 'VARCHAR', trade_value: 'DOUBLE'}})
GROUP BY ALL
"""


def run_measured(cmd):
    """Run a command; return (seconds, its own peak RSS in MiB, stderr)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd} failed: {stderr}")
    return seconds, usage.ru_maxrss / 1024.0, stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--darkpool", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--sizes", default="1000000 10000000")
    args = ap.parse_args()
    rows = []
    for n in [int(s) for s in args.sizes.split()]:
        path = os.path.join(args.dir, f"trades-{n}.ndjson")
        if not os.path.exists(path):
            subprocess.run([args.darkpool, "simulate", "--count", str(n), "--seed", "1", "--output", path], check=True)
        mb = os.path.getsize(path) / 1e6
        lake = os.path.join(args.dir, f"lake-{n}")
        shutil.rmtree(lake, ignore_errors=True)
        # Warm the page cache so both tools read from memory.
        with open(path, "rb") as f:
            while f.read(1 << 24):
                pass
        seconds, rss, log = run_measured([args.darkpool, "ingest", "--no-progress", "--lake", lake, path])
        accepted = int(re.search(r"accepted\s+([\d,]+)", log).group(1).replace(",", ""))
        assert accepted == n, log
        con = duckdb.connect()
        start = time.perf_counter()
        groups = con.execute(f"SELECT COUNT(*) FROM ({WINDOW_SQL.format(path=path)})").fetchone()[0]
        duck = time.perf_counter() - start
        rows.append((n, mb, seconds, rss, duck, groups))
        shutil.rmtree(lake, ignore_errors=True)
    print()
    print(f"{'trades':>11} {'MB':>8} | {'darkpool s':>10} {'trades/s':>11} {'MB/s':>7} {'peak RSS':>9} | "
          f"{'DuckDB agg s':>12} {'trades/s':>11} | ratio")
    for n, mb, s, rss, duck, groups in rows:
        print(f"{n:>11,} {mb:>8.0f} | {s:>10.2f} {n / s:>11,.0f} {mb / s:>7.1f} {rss:>7.0f}MiB | "
              f"{duck:>12.2f} {n / duck:>11,.0f} | {duck / s:.2f}x")
    print("\nratio = DuckDB seconds / darkpool seconds (darkpool also writes the Parquet lake; DuckDB only aggregates)")
    if len(rows) > 1:
        print(f"peak RSS {rows[-1][0]:,} vs {rows[0][0]:,}: {rows[-1][3] / rows[0][3]:.2f}x")


if __name__ == "__main__":
    main()
