"""The original system's API, for benches/serve.sh: Flask returning the latest windows it holds
in memory with jsonify, on Flask's own server as the original ran it (threaded)."""
import argparse
import json

from flask import Flask, jsonify

parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True, help="a JSON array of windows (/api/heatmap_data)")
parser.add_argument("--port", type=int, default=5078)
args = parser.parse_args()

with open(args.data) as f:
    windows = json.load(f)

app = Flask(__name__)


@app.route("/api/heatmap_data")
def heatmap_data():
    return jsonify(windows)


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=args.port, threaded=True)
