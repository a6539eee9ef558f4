"""What a user sees after `make run`, captured with headless Chromium from a real `dagster dev`.

Starts `dagster dev` on 127.0.0.1:3412 with a fresh DAGSTER_HOME and DATA_DIR in a temp dir, the
default partitions start (it follows the data) and alerts sent to a local recorder. Waits for the
history seed to judge the week, reports how long the first verdicts took, then saves PNGs to
/tmp/anomaly_ui_screenshots/ (asset overview, each plot as the UI shows it, the Plots view, the
newest flagged partition's own metadata, the Partitions view) and prints the alert payloads
received. With `--url` it only captures an already running UI (e.g. `make run`'s, with `--data-dir
.data`).

    .venv/bin/python bench/ui_screenshots.py [--port 3412] [--seed-hours 168]
    .venv/bin/python bench/ui_screenshots.py --url http://127.0.0.1:3000 --data-dir .data

Exits 0 with a note when Chromium is not installed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import polars as pl
import requests

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
from anomaly_pipeline.alerts import partition_url  # noqa: E402
from anomaly_pipeline_tests.dagster_dev import running_dagster_dev  # noqa: E402
from anomaly_pipeline_tests.ui_capture import Browser, find_chromium  # noqa: E402

OUT = Path("/tmp/anomaly_ui_screenshots")
TALL = 2400  # px: the metadata tables and plot grids are long
PARTITIONS = '{ assetNodes(assetKeys: [{path: ["tweet_anomalies"]}]) { partitionStats { numMaterialized numPartitions } } }'


def alert_recorder() -> tuple[str, list[dict]]:
    """A local webhook that keeps every JSON body it receives."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/alerts", received


def partition_stats(url: str) -> dict:
    response = requests.post(f"{url}/graphql", json={"query": PARTITIONS}, timeout=30)
    nodes = response.json()["data"]["assetNodes"]
    return nodes[0]["partitionStats"] if nodes else {}


def capture(url: str, data_dir: Path) -> int:
    """Screenshots of the pages that show the verdicts; the number of plot images the UI rendered."""
    requests.post(f"{url}/graphql", json={"query": "mutation { setNuxSeen }"}, timeout=30)  # no welcome dialog
    verdicts = pl.read_delta(str(data_dir / "delta" / "tweet_anomalies"))
    flagged = verdicts.filter(pl.col("is_anomaly")).sort("hour")["hour"]
    asset = f"{url}/assets/tweet_anomalies"
    rendered = 0
    with Browser() as page:
        page.open(asset, ready=page.has_text("[Show Markdown]"))
        page.screenshot(OUT / "overview.png", height=TALL)
        for nth, name in enumerate(("plot_avg_likes", "plot_tweet_count")):  # the UI's key order
            page.click_text("[Show Markdown]", nth)
            rendered += bool(page.wait_for_inline_png())
            time.sleep(1)  # the dialog fades in
            page.screenshot(OUT / f"overview_{name}.png")
            page.click_text("Close")
            time.sleep(1)  # and out
        page.click_text("Plots")
        time.sleep(5)
        page.screenshot(OUT / "plots.png", height=TALL)
        page.open(f"{asset}?view=partitions", ready=page.shows("Partitions Selected"))
        page.screenshot(OUT / "partitions.png")
        if len(flagged):
            key = flagged[-1].strftime("%Y-%m-%d-%H:%M")
            page.open(partition_url(url, key), ready=page.has_text("tweet_count_verdict"))  # an alert's link
            page.screenshot(OUT / "flagged_partition.png", height=TALL)
        page.open(f"{url}/assets/hourly_tweet_metrics", ready=page.has_text("Plots"))
        page.click_text("Plots")
        time.sleep(5)
        page.screenshot(OUT / "metrics_plots.png", height=TALL)
    for shot in sorted(OUT.glob("*.png")):
        print(f"  {shot}")
    print(f"plot images rendered by the UI: {rendered}; flagged hours: {len(flagged)}")
    return rendered


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=3412)
    parser.add_argument("--seed-hours", type=int, default=168)
    parser.add_argument("--url", help="capture this running UI instead of starting one")
    parser.add_argument("--data-dir", type=Path, default=Path(".data"), help="its DATA_DIR (with --url)")
    args = parser.parse_args()
    if find_chromium() is None:
        print("Chromium is not installed (apt-get install -y chromium): nothing captured.")
        return 0
    OUT.mkdir(exist_ok=True)
    if args.url:
        return 0 if capture(args.url.rstrip("/"), args.data_dir) else 1
    work = Path(tempfile.mkdtemp(prefix="anomaly_ui_"))
    url = f"http://127.0.0.1:{args.port}"
    webhook, alerts = alert_recorder()
    env = {"DATA_DIR": str(work / "data"), "SEED_HISTORY_HOURS": str(args.seed_hours),
           "ALERT_WEBHOOK_URL": webhook, "UI_BASE_URL": url}  # fmt: skip
    os.environ.pop("PARTITIONS_START", None)  # the default start: it follows the data
    began = time.monotonic()
    with running_dagster_dev(work, args.port, env) as process:
        print(f"dagster dev answers {time.monotonic() - began:.0f} s after start (log: {work / 'dagster_dev.log'})")
        stats: dict = {}
        while stats.get("numMaterialized", 0) < args.seed_hours:
            assert process.poll() is None, (work / "dagster_dev.log").read_text()[-3000:]
            assert time.monotonic() - began < 900, f"the seed did not finish in 15 min: {stats}"
            time.sleep(5)
            try:
                stats = partition_stats(url)
            except (requests.ConnectionError, KeyError, ValueError):
                continue
        print(f"{args.seed_hours} hours judged {time.monotonic() - began:.0f} s after start; partitions: {stats}")
        rendered = capture(url, work / "data")
        print(f"plots shown {time.monotonic() - began:.0f} s after start")
        time.sleep(max(0.0, 75 - (time.monotonic() - began)))  # at least one alert sensor tick
    print(f"alerts received ({len(alerts)}):")
    for alert in alerts:
        print("  " + json.dumps(alert))
    return 0 if rendered else 1


if __name__ == "__main__":
    sys.exit(main())
