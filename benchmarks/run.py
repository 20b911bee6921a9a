"""Speed, memory and reproducibility of painting and training, in one run.

    python -m benchmarks.run [--weights DIR] [--data ../shared/data/raccoons] [--only paint ...] [--quick]

Run it from the repository's root on a quiet machine: it writes benchmarks/results/results.json and
results.md (the tables the README quotes) and checks the targets: the default paint at least 2x faster
end to end than the PyTorch fp32 reference with peak RSS under 250 MB, best of K within 2x the day's own
paint, a month's calendar in 30 s and 2x faster than one paint a day, training at least 2x fp32 eager.
Benchmarks are run by hand, never by the test suite.
"""

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

from benchmarks import month, paint, reproducibility, steps, training

RESULTS = Path(__file__).resolve().parent / "results"
BENCHMARKS = ("paint", "month", "training", "reproducibility", "steps")
PAINT_SPEEDUP, TRAINING_SPEEDUP = 2.0, 2.0
PAINT_RSS_MB, CHOICE_COST = 250.0, 2.0  # issue 14: best of K within twice the day's own paint, under 250 MB
MONTH_SECONDS, MONTH_SPEEDUP = 30.0, 2.0


def machine() -> dict:
    """What the numbers were measured on, including how busy the machine was."""
    import numpy
    import onnxruntime
    import torch

    flags = next((line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("flags")), [])
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"cpu": model, "cores": os.cpu_count(), "avx2": "avx2" in flags, "avx512f": "avx512f" in flags,
            "python": platform.python_version(), "onnxruntime": onnxruntime.__version__, "torch": torch.__version__,
            "numpy": numpy.__version__, "load_average_1min": os.getloadavg()[0]}


def targets(results: dict) -> list[str]:
    """One line per target measured: met or missed."""
    lines = []
    if "paint" in results:
        p = results["paint"]
        rss = p["onnx"]["peak_rss_mb"]["max"]
        lines.append(f"{'met' if p['speedup'] >= PAINT_SPEEDUP else 'MISSED'}: paint {p['speedup']:.2f}x faster than "
                     f"the PyTorch reference (target {PAINT_SPEEDUP:g}x)")
        lines.append(f"{'met' if rss < PAINT_RSS_MB else 'MISSED'}: paint peak RSS {rss:.0f} MB at most "
                     f"(target under {PAINT_RSS_MB:g} MB)")
        lines.append(f"{'met' if p['choice_cost'] <= CHOICE_COST else 'MISSED'}: best of K costs {p['choice_cost']:.2f}x "
                     f"the day's own paint (target at most {CHOICE_COST:g}x)")
    if "month" in results:
        m = results["month"]
        lines.append(f"{'met' if m['calendar']['seconds'] <= MONTH_SECONDS else 'MISSED'}: a {m['days']}-day month in "
                     f"{m['calendar']['seconds']:.1f} s (target {MONTH_SECONDS:g} s)")
        lines.append(f"{'met' if m['speedup'] >= MONTH_SPEEDUP else 'MISSED'}: the month {m['speedup']:.2f}x faster "
                     f"than one paint a day (target {MONTH_SPEEDUP:g}x)")
    if "training" in results:
        best = max((name for name in training.SETTINGS if name != training.BASELINE),
                   key=lambda name: results["training"][name]["speedup"])
        speedup = results["training"][best]["speedup"]
        lines.append(f"{'met' if speedup >= TRAINING_SPEEDUP else 'MISSED'}: training {speedup:.2f}x fp32 eager "
                     f"with {best} (target {TRAINING_SPEEDUP:g}x)")
    return lines


def main(argv=None) -> int:
    from raccoon.pretrained import default_weights_dir, load_weights

    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", type=Path, default=None, help="weights folder (default: the shipped weights)")
    p.add_argument("--data", type=Path, default=Path("../shared/data/raccoons"), help="real photos, for KID")
    p.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS))
    p.add_argument("--repeats", type=int, default=7, help="end-to-end paints per backend")
    p.add_argument("--samples", type=int, default=128, help="seeds of the steps benchmark")
    p.add_argument("--quick", action="store_true", help="a smoke run: few repeats, small samples (numbers are rough)")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for results.json and results.md")
    args = p.parse_args(argv)
    weights = args.weights or default_weights_dir()
    config, _ = load_weights(weights)
    from raccoon.model import UNetConfig

    quick = args.quick
    started = time.time()
    results = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "weights": str(weights), "training_steps": config["training"].get("steps"), "machine": machine()}
    tables = []
    for name in args.only:
        print(f"running {name}...", file=sys.stderr, flush=True)
        if name == "paint":
            results[name] = paint.run(weights, repeats=2 if quick else args.repeats)
            tables.append(("End-to-end paint", paint.table(results[name])))
        elif name == "month":
            results[name] = month.run(weights, repeats=1 if quick else 3)
            tables.append(("A month", month.table(results[name])))
        elif name == "training":
            results[name] = training.run(UNetConfig.from_dict(config["model"]), rounds=1 if quick else 3,
                                         steps_per_round=1 if quick else 3, warmup=1 if quick else 2)
            tables.append(("Training", training.table(results[name])))
        elif name == "reproducibility":
            results[name] = reproducibility.run(weights, seeds=1 if quick else 3, points=1 if quick else 5,
                                                growth_seeds=2 if quick else 8, draws=1 if quick else 2,
                                                rounds=1 if quick else 5)
            tables.append(("Reproducibility", reproducibility.table(results[name])))
        else:
            results[name] = steps.run(weights, args.data if args.data.is_dir() else None,
                                      samples=8 if quick else args.samples)
            tables.append(("Fewer steps", steps.table(results[name])))
    results["machine"]["load_average_1min_at_end"] = os.getloadavg()[0]
    results["seconds"] = time.time() - started
    results["targets"] = targets(results)
    m = results["machine"]
    header = (f"Measured {results['date']} on {m['cpu']} ({m['cores']} cores, "
              f"{'AVX-512' if m['avx512f'] else 'AVX2' if m['avx2'] else 'no AVX2'}), load average "
              f"{m['load_average_1min']:.1f} at start and {m['load_average_1min_at_end']:.1f} at end; Python {m['python']}, "
              f"ONNX Runtime {m['onnxruntime']}, PyTorch {m['torch']}, NumPy {m['numpy']}; weights {results['weights']} "
              f"({results['training_steps']} training steps).")
    markdown = "\n\n".join([header, *(f"### {title}\n\n{text}" for title, text in tables),
                            "### Targets\n\n" + ("\n".join(f"- {line}" for line in results["targets"])
                                                   or "No target measured in this run.")]) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "results.md").write_text(markdown)
    print(markdown)
    return 0 if all(line.startswith("met") for line in results["targets"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
