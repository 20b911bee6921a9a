"""`raccoon paint` end to end, as a runner meets it: a fresh process from start to PNG written.

Each run is its own `python -m raccoon ...`, timed from spawn to exit. Its peak resident memory is the
VmHWM of its own process image, which it reports as it exits: wait4's ru_maxrss would not do, as Linux
carries the parent's peak over a fork and exec into the child's, and the parent here holds PyTorch.
The paths take turns, so a change in machine load falls on all alike. Both backends paint as shipped
(autoguided: two networks per step, the best of the weights' candidates); the ONNX path with `--guidance 1`
shows what guidance costs, and with `--candidates 1` (the day's own noise alone, as before best of K) what the
choice costs.
"""

import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# Each path: the `raccoon paint` arguments that select it.
PATHS = {"onnx": ["--backend", "onnx"], "torch": ["--backend", "torch"],
         "onnx_unguided": ["--backend", "onnx", "--guidance", "1"],
         "onnx_own": ["--backend", "onnx", "--candidates", "1"]}
DATE = "2026-01-01"  # a date-only raccoon: no commit source to read
# `python -m raccoon ARGS`, which also prints its peak RSS (kB) as the last line of stderr as it exits.
RACCOON_REPORTING_PEAK = (
    "import atexit, runpy, sys\n"
    "def report():\n"
    "    with open('/proc/self/status') as status:\n"
    "        print(next(line.split()[1] for line in status if line.startswith('VmHWM:')), file=sys.stderr)\n"
    "atexit.register(report)\n"
    "runpy.run_module('raccoon', run_name='__main__', alter_sys=True)\n"
)


def run_raccoon(args: list[str]) -> dict:
    """Wall seconds, CPU seconds and peak RSS (MB) of one `raccoon ARGS` process, which must succeed."""
    command = [sys.executable, "-c", RACCOON_REPORTING_PEAK, *args]
    with tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        child = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        stderr.seek(0)
        lines = stderr.read().decode().splitlines()
    if child.returncode:
        raise RuntimeError(f"raccoon {' '.join(args)} failed:\n" + "\n".join(lines))
    return {"seconds": wall, "cpu_seconds": usage.ru_utime + usage.ru_stime, "peak_rss_mb": int(lines[-1]) * 1024 / 1e6}


def paint_args(path: str, weights: Path, out: Path, steps: int) -> list[str]:
    return ["paint", *PATHS[path], "--source", "none", "--date", DATE, "--tz", "UTC", "--steps", str(steps),
            "--weights", str(weights), "--out", str(out)]


def summarize(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def run(weights: Path, repeats: int, steps: int = 50) -> dict:
    """Each path `repeats` times (after one untimed warm-up each), plus the bare start-up of the CLI."""
    runs = {name: [] for name in (*PATHS, "startup")}
    digests = {path: set() for path in PATHS}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(-1, repeats):
            order = list(PATHS) if repeat % 2 == 0 else list(PATHS)[::-1]
            for path in order:
                out = Path(tmp) / f"{path}.png"
                measured = run_raccoon(paint_args(path, weights, out, steps))
                digests[path].add(hashlib.sha256(out.read_bytes()).hexdigest())
                if repeat >= 0:
                    runs[path].append(measured)
            measured = run_raccoon(["--version"])
            if repeat >= 0:
                runs["startup"].append(measured)
    result = {"steps": steps, "repeats": repeats}
    for name, measured in runs.items():
        result[name] = {key: summarize([m[key] for m in measured]) for key in ("seconds", "cpu_seconds", "peak_rss_mb")}
    for path in PATHS:
        result[path]["identical_png_every_run"] = len(digests[path]) == 1
    result["speedup"] = result["torch"]["seconds"]["median"] / result["onnx"]["seconds"]["median"]
    result["guidance_cost"] = result["onnx"]["seconds"]["median"] / result["onnx_unguided"]["seconds"]["median"]
    result["choice_cost"] = result["onnx"]["seconds"]["median"] / result["onnx_own"]["seconds"]["median"]
    return result


def table(result: dict) -> str:
    rows = [f"End-to-end `raccoon paint` ({result['steps']} DDIM steps), a fresh process each time, "
            f"{result['repeats']} runs: median (min to max).", "",
            "| path | wall time (s) | CPU time (s) | peak RSS (MB) | same PNG every run |", "|---|---|---|---|---|"]
    names = {"onnx": "ONNX Runtime (default)", "torch": "PyTorch fp32 (reference)",
             "onnx_unguided": "ONNX Runtime, `--guidance 1` (one network)",
             "onnx_own": "ONNX Runtime, `--candidates 1` (the day's own noise, no choice)",
             "startup": "`raccoon --version` (start-up alone)"}

    def cell(stats):
        return f"{stats['median']:.2f} ({stats['min']:.2f} to {stats['max']:.2f})"

    for name, label in names.items():
        r = result[name]
        same = {True: "yes", False: "**no**"}.get(r.get("identical_png_every_run"), "")
        rss = f"{r['peak_rss_mb']['median']:.0f} ({r['peak_rss_mb']['min']:.0f} to {r['peak_rss_mb']['max']:.0f})"
        rows.append(f"| {label} | {cell(r['seconds'])} | {cell(r['cpu_seconds'])} | {rss} | {same} |")
    rows += ["", f"ONNX Runtime is **{result['speedup']:.2f}x** faster end to end than the PyTorch reference.",
             "", f"Autoguidance costs {result['guidance_cost']:.2f}x the time of painting with the network alone.",
             "", f"Best of K costs {result['choice_cost']:.2f}x the time of painting the day's own noise alone."]
    return "\n".join(rows)
