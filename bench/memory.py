"""Figure 4: a 1,000,000-row CSV campaign, streamed: peak RSS and recipients/s enqueued.

``formosms campaign send`` reads the file row by row and posts batches of 1,000 to a
gateway running without workers (so the figure is acceptance, not sending). Peak RSS of
both processes comes from ``/proc/<pid>/status`` (VmHWM).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import free_port, save, wait_until_up


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        csv_path = work / "campaign.csv"
        with csv_path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["phone", "name"])
            for i in range(args.rows):
                writer.writerow([f"09{10_000_000 + i % 90_000_000:08d}", f"客戶{i}"])
        port = free_port()
        config = work / "formosms.toml"
        config.write_text(
            f'[gateway]\ndatabase = "sqlite:///{work / "memory.db"}"\n\n'
            '[providers.e8d]\ndsn = "every8d://u:p@127.0.0.1:9/x?scheme=http"\n',
            encoding="utf-8",
        )
        env = {**os.environ, "FORMOSMS_CONFIG": str(config)}
        py = [sys.executable, "-m", "formosms.cli"]
        token = (
            subprocess.run([*py, "keys", "create", "memory"], env=env, check=True, capture_output=True, text=True)
            .stdout.strip()
            .split()[-1]
        )
        server = subprocess.Popen(
            [*py, "serve", "--port", str(port), "--no-workers"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(url + "/healthz", "gateway", server)
            started = time.perf_counter()
            campaign = subprocess.Popen(
                [
                    *py,
                    "campaign",
                    "send",
                    str(csv_path),
                    "--text",
                    "{name} 您好，您的優惠碼已送達",
                    "--url",
                    url,
                    "--key",
                    token,
                ],
                env={**env, "COLUMNS": "100"},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            client_peak = 0.0
            while campaign.poll() is None:
                client_peak = max(client_peak, peak_rss_mb(campaign.pid))
                time.sleep(0.2)
            elapsed = time.perf_counter() - started
            server_peak = peak_rss_mb(server.pid)
            if campaign.returncode != 0:
                print(campaign.stderr.read().decode() if campaign.stderr else "", file=sys.stderr)
        finally:
            server.terminate()
            server.wait(timeout=20)
    rate = args.rows / elapsed
    print(
        f"{args.rows} rows in {elapsed:.1f} s = {rate:.0f} recipients/s (target 20000); peak RSS: campaign "
        f"{client_peak:.0f} MB, gateway {server_peak:.0f} MB (target < 200 MB each)"
    )
    save(
        "memory",
        {
            "rows": args.rows,
            "seconds": round(elapsed, 1),
            "recipients_per_s": round(rate),
            "campaign_peak_rss_mb": round(client_peak),
            "gateway_peak_rss_mb": round(server_peak),
            "targets": {"recipients_per_s": 20000, "peak_rss_mb": 200},
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
