"""Running Debian's wrk on core 1 with `bench.lua`, and reading back its one-line summary."""

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

LUA_SCRIPT = Path(__file__).with_name("bench.lua")
WRK_CORE = "1"
TIMEOUT_S = 2  # wrk's default, stated: a slower answer counts as an error


@dataclass(frozen=True)
class Load:
    """One wrk invocation: what to send (as bench.lua's environment) and how hard."""

    url: str
    connections: int
    seconds: int
    env: dict[str, str]


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non2xx: int
    socket_errors: int  # connect, read and write errors, and answers later than the timeout
    unanswered: int  # still waiting past the timeout when the run ended

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def errors(self) -> int:
        return self.non2xx + self.socket_errors + self.unanswered


def ensure_wrk() -> None:
    """Install wrk from Debian's packages when running as root; otherwise say how."""
    if shutil.which("wrk"):
        return
    if os.geteuid() != 0:
        sys.exit("bench: wrk is not installed; run `sudo apt-get install -y wrk` and try again")
    print("bench: installing wrk (apt-get install -y wrk) ...", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)


def run_wrk(load: Load, pin: bool = True) -> WrkResult:
    command = ["wrk", "-t1", f"-c{load.connections}", f"-d{load.seconds}s", "--timeout", f"{TIMEOUT_S}s"]
    command += ["-s", str(LUA_SCRIPT), load.url]
    if pin:
        command = ["taskset", "-c", WRK_CORE, *command]
    finished = subprocess.run(
        command,
        env={**os.environ, **load.env, "BENCH_TIMEOUT_S": str(TIMEOUT_S)},
        capture_output=True,
        text=True,
        check=False,
    )
    return parse_summary(finished.stdout, finished.stderr)


def parse_summary(stdout: str, stderr: str) -> WrkResult:
    line = next((line for line in stdout.splitlines() if line.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{stdout}\n{stderr}")
    raw = json.loads(line.removeprefix("BENCH "))
    return WrkResult(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        non2xx=raw["non2xx"],
        socket_errors=raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
        unanswered=raw["unanswered"],
    )
