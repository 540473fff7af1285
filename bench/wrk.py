"""Running wrk against a local URL and reading its figures, with the server process's CPU and memory."""

from __future__ import annotations

import contextlib
import re
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import psutil

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass
class LoadResult:
    requests: int
    seconds: float
    non_2xx: int
    p50_ms: float
    p99_ms: float
    cpu_seconds: float  # the server process's CPU during the run
    rss_bytes: int  # at the end of the run
    peak_rss_bytes: int  # the highest seen during the run (sampled every 20 ms)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def cpu_us_per(self, count: int) -> float:
        return self.cpu_seconds / count * 1e6 if count else float("nan")


def _latency(output: str, percentile: str) -> float:
    match = re.search(rf"^\s*{percentile}%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.MULTILINE)
    return float(match.group(1)) * _UNITS[match.group(2)] if match else float("nan")


def lua_script(body: str, *, delay_ms: int = 0) -> Path:
    """A wrk script POSTing `body` as JSON; `delay_ms` paces each connection (wrk's delay() hook)."""
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)  # noqa: SIM115 - wrk reads it later
    with script:
        script.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n')
        script.write(f"wrk.body = [==[{body}]==]\n")
        if delay_ms > 0:
            script.write(f"function delay()\n  return {delay_ms}\nend\n")
    return Path(script.name)


def run_wrk(url: str, script: Path, *, pid: int, seconds: float, connections: int, threads: int = 1) -> LoadResult:
    process = psutil.Process(pid)
    before = process.cpu_times()
    with _PeakRss(process) as peak:
        output = _wrk(url, script, seconds=seconds, connections=connections, threads=threads)
    after = process.cpu_times()
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+)", output)
    if total is None:
        raise RuntimeError(f"cannot read wrk's output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    duration = float(total.group(2)) * _UNITS.get(total.group(3), 1000.0) / 1000.0
    return LoadResult(
        requests=int(total.group(1)),
        seconds=duration,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        p50_ms=_latency(output, "50"),
        p99_ms=_latency(output, "99"),
        cpu_seconds=(after.user + after.system) - (before.user + before.system),
        rss_bytes=process.memory_info().rss,
        peak_rss_bytes=peak.bytes,
    )


class _PeakRss:
    """Samples a process's resident size in a thread while a load runs; `bytes` is the highest seen."""

    def __init__(self, process: psutil.Process) -> None:
        self._process = process
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.bytes = process.memory_info().rss

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            with contextlib.suppress(psutil.Error):
                self.bytes = max(self.bytes, self._process.memory_info().rss)

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def _wrk(url: str, script: Path, *, seconds: float, connections: int, threads: int) -> str:
    return subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
