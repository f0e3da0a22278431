"""Time `darkpool report` on a lake of simulated trades against pandas + seaborn drawing the
original analysis_script.py's seven plots from a JSON dump of the same windows.

Called by benches/report.sh (which builds darkpool and provides the venv).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time


def run_measured(cmd, **kw):
    """Run a command; return (seconds, its own peak RSS in MiB, stderr)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **kw)
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd} failed: {stderr}")
    return seconds, usage.ru_maxrss / 1024.0, stderr


def ensure_lake(darkpool, bench_dir, n):
    lake = os.path.join(bench_dir, f"report-lake-{n}")
    marker = os.path.join(lake, ".complete")
    if os.path.exists(marker):
        return lake
    shutil.rmtree(lake, ignore_errors=True)
    path = os.path.join(bench_dir, f"trades-{n}.ndjson")
    if not os.path.exists(path):
        subprocess.run([darkpool, "simulate", "--count", str(n), "--seed", "1", "--output", path], check=True)
    subprocess.run([darkpool, "ingest", "--no-progress", "--lake", lake, path], check=True)
    open(marker, "w").close()
    return lake


def ensure_dump(darkpool, lake, bench_dir, n):
    """The windows in the original API's JSON shape (what analysis_script.py read)."""
    dump = os.path.join(bench_dir, f"heatmap_data-{n}.json")
    if os.path.exists(dump):
        return dump
    sql = ("SELECT to_char(window_start, '%Y-%m-%dT%H:%M:%S') AS window_start, "
           "to_char(window_end, '%Y-%m-%dT%H:%M:%S') AS window_end, symbol, venue, "
           "total_trade_value, total_quantity, num_trades, latitude, longitude FROM windows "
           "ORDER BY window_start, symbol, venue")
    with open(dump + ".tmp", "w") as out:
        subprocess.run([darkpool, "query", "--lake", lake, "--format", "json", "--row-limit", "100000000", sql],
                       check=True, stdout=out)
    os.replace(dump + ".tmp", dump)
    return dump


PEER = r'''
import sys, time
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

dump, out = sys.argv[1], sys.argv[2]
df = pd.read_json(dump)
df["window_start"] = pd.to_datetime(df["window_start"])
df["avg_trade_size"] = df["total_quantity"] / df["num_trades"]
dark = {"DARK1", "DARK2"}
kinds = pd.read_csv(sys.argv[3])
df = df.merge(kinds[["code", "kind"]], left_on="venue", right_on="code", how="left")

def save(name):
    plt.tight_layout()
    plt.savefig(f"{out}/{name}.png", dpi=100)
    plt.close("all")

plt.figure(figsize=(16, 8)); df.groupby("venue")["total_trade_value"].sum().sort_values().plot.barh(); plt.title("Overall trade value by venue"); save("1")
plt.figure(figsize=(16, 8)); df.groupby("venue")["total_quantity"].sum().sort_values().plot.barh(); plt.title("Overall quantity by venue"); save("2")
plt.figure(figsize=(16, 8)); df.groupby("symbol")["total_trade_value"].sum().plot.bar(); plt.title("Overall value by symbol"); save("3")
plt.figure(figsize=(16, 8)); sns.lineplot(data=df, x="window_start", y="total_trade_value", hue="venue", style="symbol", errorbar=None); plt.title("Value over time by venue and symbol"); save("4")
plt.figure(figsize=(16, 8)); ax = sns.boxplot(data=df, x="venue", y="avg_trade_size", hue="symbol"); ax.set_yscale("log"); plt.title("Average trade size"); save("5")
series = df.groupby(["window_start", "kind"])["total_trade_value"].sum().reset_index()
plt.figure(figsize=(16, 8)); sns.lineplot(data=series, x="window_start", y="total_trade_value", hue="kind", errorbar=None); plt.title("Dark vs lit"); save("6")
sites = df.groupby(["latitude", "longitude"])["total_trade_value"].sum().reset_index()
plt.figure(figsize=(16, 8)); plt.scatter(sites["longitude"], sites["latitude"], s=sites["total_trade_value"] / sites["total_trade_value"].max() * 2000, c=sites["total_trade_value"]); plt.title("Liquidity heatmap"); save("7")
'''


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--darkpool", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--trades", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    lake = ensure_lake(args.darkpool, args.dir, args.trades)
    dump = ensure_dump(args.darkpool, lake, args.dir, args.trades)
    windows = len(json.load(open(dump)))
    out = os.path.join(args.dir, "report-out")
    peer_out = os.path.join(args.dir, "report-peer-out")
    os.makedirs(peer_out, exist_ok=True)
    peer_script = os.path.join(args.dir, "report_peer.py")
    with open(peer_script, "w") as f:
        f.write(PEER)
    venues = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "venues.csv")
    ours, theirs = [], []
    for _ in range(args.runs):
        shutil.rmtree(out, ignore_errors=True)
        seconds, rss, log = run_measured([args.darkpool, "report", "--lake", lake, "--out", out])
        assert "wrote 11 plot(s)" in log, log
        ours.append((seconds, rss))
    for _ in range(args.runs):
        seconds, rss, _ = run_measured([sys.executable, peer_script, dump, peer_out, venues])
        theirs.append((seconds, rss))
    best = min(s for s, _ in ours)
    peer_best = min(s for s, _ in theirs)
    print()
    print(f"lake: {args.trades:,} trades, {windows:,} windows ({lake})")
    print(f"{'':34} {'best s':>8} {'median s':>9} {'peak RSS':>9}")
    print(f"{'darkpool report (11 plots+index)':34} {best:>8.2f} {statistics.median(s for s, _ in ours):>9.2f} "
          f"{max(r for _, r in ours):>6.0f}MiB")
    print(f"{'pandas+seaborn (original 7 plots)':34} {peer_best:>8.2f} {statistics.median(s for s, _ in theirs):>9.2f} "
          f"{max(r for _, r in theirs):>6.0f}MiB")
    print(f"\nratio = peer best / darkpool best: {peer_best / best:.1f}x "
          "(the peer reads a prepared JSON dump of the windows; darkpool reads the Parquet lake, "
          "including a pass over all trades for the percentile plot)")


if __name__ == "__main__":
    main()
