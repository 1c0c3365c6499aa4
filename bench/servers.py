"""Starting one pinned uvicorn worker, talking to it with the standard library, and stopping it."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parent.parent
LOG_DIR = ROOT / "bench" / "results"
SERVER_CORE = "0"
START_TIMEOUT_S = 600  # seeding 100k tasks through the API's models takes a while


@dataclass
class Server:
    """A running `uvicorn <app> --workers 1`; its pid is the worker's (taskset execs it)."""

    process: subprocess.Popen[bytes]
    base_url: str
    log: TextIO

    @property
    def pid(self) -> int:
        return self.process.pid


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def uvicorn_command(app: str, port: int, app_dir: Path) -> list[str]:
    script = Path(sys.executable).with_name("uvicorn")
    launcher = [str(script)] if script.exists() else [sys.executable, "-m", "uvicorn"]
    options = ["--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--loop", "asyncio", "--no-access-log"]
    return [*launcher, app, "--app-dir", str(app_dir), *options, "--log-level", "warning"]


def start_server(app: str, name: str, env: dict[str, str], cwd: Path, pin: bool = True) -> Server:
    """Start the app from the tree at `cwd` (its directory and the first entry of sys.path)
    on a free port, and wait until it answers /health (after any seeding)."""
    port = free_port()
    command = uvicorn_command(app, port, cwd)
    if pin:
        command = ["taskset", "-c", SERVER_CORE, *command]
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = (LOG_DIR / f"server-{name}.log").open("w")
    process = subprocess.Popen(command, cwd=cwd, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    server = Server(process, f"http://127.0.0.1:{port}", log)
    wait_until_ready(server)
    return server


def wait_until_ready(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            sys.exit(f"bench: the server exited early; see {server.log.name}")
        try:
            if request(server.base_url + "/health")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    stop_server(server)
    sys.exit(f"bench: the server did not answer within {START_TIMEOUT_S} s; see {server.log.name}")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
    server.log.close()


def rss_mb(pid: int) -> float:
    """The process's resident set (VmRSS), in MB (10^6 bytes, as the target is stated)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no VmRSS for pid {pid}")


def request(
    url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    """One HTTP exchange: status, headers, and the JSON body (or None)."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"the benchmark only talks to its own servers, not {url}")
    prepared = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310 - checked
    try:
        with urllib.request.urlopen(prepared, timeout=60) as response:  # noqa: S310 - checked above
            status, answer_headers, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, answer_headers, raw = error.code, dict(error.headers), error.read()
    return status, answer_headers, json.loads(raw) if raw else None


def login(base_url: str, email: str, password: str) -> str:
    form = urllib.parse.urlencode({"username": email, "password": password}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    status, _, body = request(f"{base_url}/auth/token", "POST", form, headers)
    if status != 200:
        raise RuntimeError(f"login failed with {status}: {body}")
    token: str = body["access_token"]
    return token


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds used so far by the server process and by everything on its core, and when."""

    process_s: float
    core_busy_s: float
    at: float


@dataclass(frozen=True)
class CpuUse:
    """What a run cost the server in CPU, and how much of its core other processes took meanwhile.

    Other engineers' test runs share this machine; req/s drops when they land on core 0,
    but the server's CPU time per request does not, so it is the steadier figure.
    """

    server_s: float
    others_s: float
    wall_s: float

    def per_request_us(self, requests: int) -> float:
        return 1e6 * self.server_s / max(requests, 1)

    @property
    def others_share(self) -> float:
        return self.others_s / self.wall_s


TICK = os.sysconf("SC_CLK_TCK")


def cpu_sample(pid: int) -> CpuSample:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    process_ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat(5))
    core = next(line for line in Path("/proc/stat").read_text().splitlines() if line.startswith(f"cpu{SERVER_CORE} "))
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(value) for value in core.split()[1:9])
    busy = user + nice + system + irq + softirq + steal
    return CpuSample(process_ticks / TICK, busy / TICK, time.monotonic())


def cpu_use(before: CpuSample, after: CpuSample) -> CpuUse:
    server = after.process_s - before.process_s
    others = max(0.0, after.core_busy_s - before.core_busy_s - server)
    return CpuUse(server, others, after.at - before.at)


def wait_until_idle(pid: int, window_s: float = 0.3, timeout_s: float = 60) -> None:
    """Wait until the server has finished what a wrk run left behind (requests of connections wrk
    already closed still run to completion), so one run's backlog never lands in the next run."""
    deadline = time.monotonic() + timeout_s
    last = cpu_sample(pid)
    while time.monotonic() < deadline:
        time.sleep(window_s)
        current = cpu_sample(pid)
        if current.process_s - last.process_s <= 2 / TICK:  # at most two clock ticks of CPU: idle
            return
        last = current


def wait_for_quiet_core(pid: int, patience_s: float, window_s: float = 0.5, quiet_share: float = 0.1) -> float:
    """Wait (at most `patience_s`) until other processes leave the server's core nearly idle.

    Returns the share of the core they took in the last window. Other people's test runs on
    this machine come in bursts; starting timed runs between them keeps req/s comparable.
    """
    deadline = time.monotonic() + patience_s
    while True:
        before = cpu_sample(pid)
        time.sleep(window_s)
        others = cpu_use(before, cpu_sample(pid)).others_share
        if others <= quiet_share or time.monotonic() >= deadline:
            return others
