"""A month of raccoons, as `raccoon calendar` paints it (one process, every day in one batch) against what it
replaces: one `raccoon paint --size 64` process per day. Each path is a fresh process timed from spawn to exit
(benchmarks/paint.py's run_raccoon); the two take turns, so a change in machine load falls on both alike. Both
paint the same 64x64 raccoons: checked, tile against PNG, on every run.
"""

import datetime
import statistics
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.paint import run_raccoon
from raccoon import mosaic

MONTH = datetime.date(2026, 1, 1)  # 31 days, all over: date-only raccoons, no commit source to read


def days() -> list[datetime.date]:
    return [MONTH + datetime.timedelta(days=i) for i in range(mosaic.last_day(MONTH).day)]


def calendar_run(weights: Path, out: Path) -> dict:
    return run_raccoon(["calendar", "--month", f"{MONTH:%Y-%m}", "--tz", "UTC", "--source", "none",
                        "--weights", str(weights), "--out", str(out)])


def separate_runs(weights: Path, folder: Path) -> dict:
    """Every day painted by its own process, as 31 runs of the Action or of `raccoon paint` would."""
    runs = [run_raccoon(["paint", "--date", day.isoformat(), "--tz", "UTC", "--source", "none", "--size", "64",
                         "--weights", str(weights), "--out", str(folder / f"{day.day:02d}.png")]) for day in days()]
    return {"seconds": sum(r["seconds"] for r in runs), "cpu_seconds": sum(r["cpu_seconds"] for r in runs),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs)}


def same_raccoons(calendar: Path, folder: Path) -> bool:
    with Image.open(calendar) as picture:
        grid = np.asarray(picture.convert("RGB"))
    for day in days():
        x, y = mosaic.tile_origin(MONTH, day)
        with Image.open(folder / f"{day.day:02d}.png") as alone:
            if grid[y : y + 64, x : x + 64].tobytes() != np.asarray(alone).tobytes():
                return False
    return True


def run(weights: Path, repeats: int) -> dict:
    measured = {"calendar": [], "separate": []}
    same = True
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for repeat in range(repeats):
            order = ("calendar", "separate") if repeat % 2 == 0 else ("separate", "calendar")
            for path in order:
                if path == "calendar":
                    measured[path].append(calendar_run(weights, folder / "calendar.png"))
                else:
                    measured[path].append(separate_runs(weights, folder))
            same &= same_raccoons(folder / "calendar.png", folder)
    result = {"days": len(days()), "repeats": repeats, "same_raccoons": same}
    for path, runs in measured.items():
        result[path] = {key: statistics.median(r[key] for r in runs) for key in ("seconds", "cpu_seconds", "peak_rss_mb")}
    result["speedup"] = result["separate"]["seconds"] / result["calendar"]["seconds"]
    return result


def table(result: dict) -> str:
    rows = [f"A {result['days']}-day month, fresh processes, median of {result['repeats']} runs each:", "",
            "| path | wall time (s) | CPU time (s) | peak RSS (MB) |", "|---|---|---|---|"]
    names = {"calendar": "`raccoon calendar` (one batch)", "separate": f"{result['days']} x `raccoon paint --size 64`"}
    for path, label in names.items():
        r = result[path]
        rows.append(f"| {label} | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} | {r['peak_rss_mb']:.0f} |")
    rows += ["", f"The calendar is **{result['speedup']:.2f}x** faster than painting each day alone; every tile is "
             f"{'the same raccoon as' if result['same_raccoons'] else '**not** the same raccoon as'} its day's PNG."]
    return "\n".join(rows)
