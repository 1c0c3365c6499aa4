"""Entry point of `make bench`: `.venv/bin/python bench/run.py [--base COMMIT] [--quick] [...]`.

Run from anywhere; it puts the repository root on the path so `bench` and the app's modules import.
"""

import runpy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
runpy.run_module("bench.harness", run_name="__main__")
