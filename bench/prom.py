"""A real Prometheus server for the run (`--prometheus`): scrape config, start, query, stop.

The server scrapes every node's /metrics once a second, keeps its data under the run
directory (--storage.tsdb.path), listens on 127.0.0.1 on a free port, and is stopped at
teardown (SIGTERM, then SIGKILL after a grace period) unless --keep-prometheus. Only the
PID this module started is ever signalled. scripts/install-prometheus.sh installs the
server (Debian's package) when `prometheus` or `promtool` is missing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import ports

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 30.0
STOP_GRACE_S = 10.0
QUERY_TIMEOUT_S = 5.0
ANSWER_BYTES_MAX = 4 * 1024 * 1024
SCRAPE_INTERVAL = "1s"
INSTALL_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "install-prometheus.sh"

# PromQL the report shows, evaluated at the end of each run (window: the run's duration).
REPORT_QUERIES = {
    "commit_rate_blocks_per_s": "max(rate(seoulchain_consensus_height[{window}]))",
    "view_changes": "sum(increase(seoulchain_consensus_view_changes_total[{window}]))",
    "p2p_bytes_sent_per_s": "sum(rate(seoulchain_p2p_bytes_sent_total[{window}]))",
    "mempool_size_max": "max(max_over_time(seoulchain_mempool_size[{window}]))",
    "commit_seconds_p99": "histogram_quantile(0.99, sum by (le) "
    "(rate(seoulchain_consensus_commit_seconds_bucket[{window}])))",
}


class PrometheusError(Exception):
    """The server could not be installed, started or queried."""


def tools_available() -> bool:
    return shutil.which("prometheus") is not None and shutil.which("promtool") is not None


def ensure_installed() -> None:
    """Run the install script if the tools are missing; PrometheusError if still missing."""
    if tools_available():
        return
    if not INSTALL_SCRIPT.exists():
        raise PrometheusError(f"prometheus is not installed and {INSTALL_SCRIPT} is missing")
    log.info("prometheus not found; running %s", INSTALL_SCRIPT)
    done = subprocess.run(
        ["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=900, check=False
    )
    if done.returncode != 0 or not tools_available():
        raise PrometheusError(f"install failed: {(done.stderr or done.stdout).strip()[-500:]}")


def scrape_config(targets: list[str], *, job: str = "seoulchain") -> str:
    """prometheus.yml for `targets` (host:port of each node's metrics listener)."""
    lines = [
        "global:",
        f"  scrape_interval: {SCRAPE_INTERVAL}",
        f"  evaluation_interval: {SCRAPE_INTERVAL}",
        "scrape_configs:",
        f"  - job_name: {json.dumps(job)}",
        "    metrics_path: /metrics",
        "    static_configs:",
        "      - targets: [" + ", ".join(json.dumps(t) for t in targets) + "]",
    ]
    return "\n".join(lines) + "\n"


@dataclass(slots=True)
class PrometheusServer:
    directory: Path
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result vector (HTTP API /api/v1/query)."""
        address = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        try:
            with urllib.request.urlopen(address, timeout=QUERY_TIMEOUT_S) as response:
                document = json.loads(response.read(ANSWER_BYTES_MAX))
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise PrometheusError(f"query {promql!r}: {error}") from None
        if document.get("status") != "success":
            raise PrometheusError(f"query {promql!r}: {document.get('error', document)}")
        result = document.get("data", {}).get("result", [])
        return result if isinstance(result, list) else []

    def scalar(self, promql: str) -> float | None:
        """The first sample's value, or None when the vector is empty or not a number."""
        result = self.query(promql)
        if not result:
            return None
        try:
            value = float(result[0]["value"][1])
        except (KeyError, IndexError, TypeError, ValueError):
            return None
        return value if value == value else None  # NaN (e.g. no rate yet) is "no value"

    def report_figures(self, window_s: float) -> dict[str, float | None]:
        window = f"{max(2, round(window_s))}s"
        figures: dict[str, float | None] = {}
        for name, template in REPORT_QUERIES.items():
            try:
                figures[name] = self.scalar(template.format(window=window))
            except PrometheusError as error:
                log.warning("prometheus query %s failed: %s", name, error)
                figures[name] = None
        return figures

    def wait_for_target_up(self, *, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Until every scrape target reports up == 1 (the first scrapes have happened)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(PrometheusError):
                result = self.query("up")
                if result and all(item.get("value", [0, "0"])[1] == "1" for item in result):
                    return
            time.sleep(0.5)
        raise PrometheusError(f"targets not up after {timeout_s:g} s")

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STOP_GRACE_S)
        log.info("prometheus (pid %d) stopped", self.process.pid)


def start(directory: Path, targets: list[str]) -> PrometheusServer:
    """Write DIR/prometheus.yml and start a server on a free loopback port."""
    ensure_installed()
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "prometheus.yml"
    config.write_text(scrape_config(targets), encoding="utf-8")
    port = ports.free_listen_port()  # outside the ephemeral range, not a node's port
    log_file = (directory / "prometheus.log").open("ab")
    with log_file:
        process = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1d",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server = PrometheusServer(directory, port, process)
    try:
        _wait_ready(server)
    except PrometheusError:
        server.stop()
        raise
    log.info("prometheus (pid %d) on %s", process.pid, server.url)
    return server


def _wait_ready(server: PrometheusServer) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise PrometheusError(
                f"prometheus exited ({server.process.returncode}); see "
                f"{server.directory / 'prometheus.log'}"
            )
        try:
            with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2.0) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    raise PrometheusError(f"prometheus not ready after {READY_TIMEOUT_S:g} s")


def check_metrics(exposition: str) -> tuple[bool, str]:
    """`promtool check metrics` on an exposition text: (passed, promtool's output)."""
    done = subprocess.run(
        ["promtool", "check", "metrics"],
        input=exposition,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done.returncode == 0, (done.stdout + done.stderr).strip()
