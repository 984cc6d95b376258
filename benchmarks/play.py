"""Benchmark ``mdnworld play``: dream steps/s served to 1 and 4 clients, and key-to-frame latency.

    python benchmarks/play.py [--run RUN_DIR] [--seconds 10]

The server runs as the real command (``mdnworld play RUN --port P``) in its own process; the
clients are threads here posting ``/api/step`` as fast as answers come back (each step = M's
step + V's decode + the JSON frame). The latency is measured in headless Chromium on the real
page: from a key going down (page time) to the first drawn frame that the key moved, at the
page's 25 steps/s. Default run: the shipped paper-scale models (``from-shipped`` into
~/.cache/mdnworld-bench/play_run). Target: >= 25 steps/s for one client on 2 CPU cores.
Prints a table, writes benchmarks/results/play.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

from mdnworld.shipped import init_from_shipped

RESULTS = Path(__file__).parent / "results" / "play.json"
CACHE = Path.home() / ".cache" / "mdnworld-bench" / "play_run"


def post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def clients(base: str, n: int, seconds: float) -> dict:
    """n clients stepping their own dream for ``seconds``: total and per-client steps/s and
    the median / p95 round trip of a step."""
    sids = [post(base + "/api/new", {})["session"] for _ in range(n)]
    for sid in sids:
        post(base + "/api/set", {"session": sid, "deaths": False})  # no restarts mid-run
    counts, rtts = [0] * n, [[] for _ in range(n)]
    stop = time.perf_counter() + seconds

    def run(i: int) -> None:
        keys = ("left", "right", "none")
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            post(base + "/api/step", {"session": sids[i], "key": keys[counts[i] // 20 % 3]})
            rtts[i].append(time.perf_counter() - t0)
            counts[i] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.perf_counter() - t0
    for sid in sids:
        post(base + "/api/close", {"session": sid})
    all_rtt = np.concatenate([np.array(r) for r in rtts]) * 1000
    return {
        "clients": n,
        "steps_per_s_total": sum(counts) / dt,
        "steps_per_s_per_client": sum(counts) / dt / n,
        "rtt_ms_median": float(np.median(all_rtt)),
        "rtt_ms_p95": float(np.percentile(all_rtt, 95)),
    }


def browser_latency(base: str, presses: int) -> dict | None:
    """Key-down to first moved frame, in the real page (None without Playwright/Chromium)."""
    chromium = Path("/usr/bin/chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not chromium.exists():
        return None
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(base + "/")
        page.wait_for_function("document.body.dataset.ready === '1'")
        page.uncheck("#deaths")
        rng = np.random.default_rng(0)
        for i in range(presses):
            key = "ArrowLeft" if i % 2 else "ArrowRight"
            page.keyboard.down(key)
            page.wait_for_function(f"playState.latencies.length === {i + 1}", timeout=10_000)
            page.keyboard.up(key)
            page.wait_for_timeout(int(rng.integers(80, 200)))  # land anywhere in the tick
        lat = page.evaluate("playState.latencies")
        fps = page.evaluate("Number(document.getElementById('fps').value)")
        browser.close()
    return {
        "presses": presses,
        "page_steps_per_s": fps,
        "latency_ms_median": float(np.median(lat)),
        "latency_ms_p95": float(np.percentile(lat, 95)),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=None, help="run dir (default: shipped models)")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--presses", type=int, default=30)
    args = ap.parse_args()
    run = args.run
    if run is None:
        run = CACHE
        if not (run / "vae").exists():
            init_from_shipped(run, log=lambda m: None)
    port = free_port()
    cmd = [sys.executable, "-m", "mdnworld", "play", str(run), "--port", str(port)]
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        print(server.stdout.readline().strip())  # the address line: it is serving
        load0 = os.getloadavg()
        rows = [clients(base, n, args.seconds) for n in (1, 4)]
        latency = browser_latency(base, args.presses)
    finally:
        server.terminate()
        server.wait(10)
    print(f"\n{'clients':>7} {'steps/s':>8} {'per client':>11} {'rtt median':>11} {'p95':>7}")
    for r in rows:
        print(f"{r['clients']:7d} {r['steps_per_s_total']:8.1f} {r['steps_per_s_per_client']:11.1f}"
              f" {r['rtt_ms_median']:8.1f} ms {r['rtt_ms_p95']:4.1f} ms")  # fmt: skip
    if latency:
        print(f"key down -> first moved frame in Chromium at {latency['page_steps_per_s']} "
              f"steps/s: median {latency['latency_ms_median']:.0f} ms, p95 "
              f"{latency['latency_ms_p95']:.0f} ms ({latency['presses']} presses)")  # fmt: skip
    print(f"target: >= 25 steps/s for one client: {rows[0]['steps_per_s_total']:.0f}")
    result = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "loadavg_at_start": load0, "loadavg_at_end": os.getloadavg()},
        "run": str(run),
        "rows": rows,
        "browser_latency": latency,
        "target_steps_per_s_one_client": 25,
    }  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
