"""Optional py-spy sampling of the server while wrk runs (`--profile`): where the time goes."""

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

LINE_NUMBER = re.compile(r":\d+\)")
# Worker threads parked between jobs still show up in samples; they cost no CPU.
IDLE_LEAVES = ("Condition.wait (threading.py)", "Event.wait (threading.py)")


def py_spy() -> str:
    found = Path(sys.executable).with_name("py-spy")
    if found.exists():
        return str(found)
    on_path = shutil.which("py-spy")
    if on_path is None:
        sys.exit("bench: --profile needs py-spy: .venv/bin/pip install py-spy")
    return on_path


def start_recording(pid: int, seconds: int, output: Path) -> subprocess.Popen[bytes]:
    """Sample the worker for `seconds` into collapsed stacks.

    Only the thread holding the GIL is sampled (--gil): on one core that is where Python's CPU
    goes, while threads queued for the GIL or for SQLite's write lock would otherwise show up as
    busy. SQLite's own C work runs without the GIL and is not seen; EXPLAIN timings cover it.
    """
    command = [py_spy(), "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "100", "--gil"]
    command += ["--format", "raw", "--output", str(output)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def read_stacks(path: Path) -> Counter[tuple[str, ...]]:
    """Collapsed stacks (`frame;frame;... count`), with line numbers dropped so a function is one name."""
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in path.read_text().splitlines():
        frames, _, count = line.rpartition(" ")
        stack = tuple(LINE_NUMBER.sub(")", frame) for frame in frames.split(";"))
        if frames and count.isdigit() and stack[-1] not in IDLE_LEAVES:
            stacks[stack] += int(count)
    return stacks


LAYERS = (
    "solve_dependencies (fastapi/dependencies/utils.py)",
    "serialize_response (fastapi/routing.py)",
    "PyJWT.decode (jwt/api_jwt.py)",
    "run_in_threadpool (starlette/concurrency.py)",
    "Session.execute (sqlalchemy/orm/session.py)",
    "Session.flush (sqlalchemy/orm/session.py)",
    "_SelectInLoader._load_for_path (sqlalchemy/orm/strategies.py)",
    "BaseModel.model_validate (pydantic/main.py)",
)


PROJECT_FILES = {path.name for path in Path(__file__).resolve().parent.parent.glob("*.py")}


def _is_project(frame: str) -> bool:
    """The app's own modules are flat files at the repository root: `read_task (main.py)`."""
    return frame.rpartition("(")[2].rstrip(")") in PROJECT_FILES


def summary(path: Path, top: int = 15) -> str:
    """Where the samples fall: own time per function, then time inside the app's code and a few library layers."""
    stacks = read_stacks(path)
    total = sum(stacks.values()) or 1
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, count in stacks.items():
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    project = [(name, n) for name, n in inclusive.most_common() if _is_project(name)]
    layers = [(name, inclusive[name]) for name in LAYERS if inclusive[name]]
    sections = [
        ("self%  function (own time)", own.most_common(top)),
        ("incl%  the app's own functions (time inside, callees included)", project[:top]),
        ("incl%  library layers", layers),
    ]
    lines = [f"{total} samples with the GIL held ({path.name})"]
    for title, rows in sections:
        lines.append("  " + title)
        lines += [f"  {100 * n / total:5.1f}  {name}" for name, n in rows]
    return "\n".join(lines)
