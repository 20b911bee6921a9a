"""Does a seed paint the same PNG everywhere a runner might run it?

Measured on the weights given, for the ONNX path (the default) unless said otherwise:

* CPUs: painted in fresh processes allowed 1, 2 and 4 CPUs (as many as this machine has), twice
  over: the same PNG bytes? And in-process with 1, 2 and 4 ONNX Runtime threads.
* instruction sets: GitHub's runners are AVX2-only or AVX-512 machines. Each library is capped to AVX2
  where it offers a switch: PyTorch (ATEN_CPU_CAPABILITY, oneDNN's ONEDNN_MAX_CPU_ISA) and NumPy
  (NPY_DISABLE_CPU_FEATURES). ONNX Runtime has none (MLAS picks its kernels from CPUID), so the
  ONNX path runs whole under QEMU's user-mode emulator as an AMD EPYC Milan (Zen 3, AVX2 and FMA, no
  AVX-512), when `qemu-x86_64` is installed (Debian: qemu-user). Emulation is some 400x slower, so
  there it computes the network's output at a few points of a real trajectory, not whole paintings.
* growth: how far a last-bit difference in the network's output travels. Every output of a 50-step
  painting is scaled by (1 + r * N(0, 1)) and the result compared with the unperturbed painting.
* cost: a 50-step painting with ONNX Runtime's fastest settings (ORT_ENABLE_ALL, the machine's
  threads), whose bits follow the CPU's vector width, against the painter's exact ones.

    python -m benchmarks.reproducibility outputs|paint ...   (the child processes of the above)
"""

import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from raccoon.render import png_bytes
from raccoon.backends import BACKENDS, OnnxDenoiser
from raccoon.painting import IMAGE_SHAPE, Painter, sample, starting_noise

REPO_ROOT = Path(__file__).resolve().parent.parent
COUNTS = (1, 2, 4)  # CPUs a process may use, and ONNX Runtime threads
QEMU_CPU = "EPYC-Milan"  # Zen 3: AVX2 + FMA, no AVX-512, as GitHub's AVX2 runners
AVX2_CAPS = {
    "torch": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "numpy": {"NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR"},
}
PERTURBATIONS = (1e-7, 1e-6)
REPORTED_STEPS = (1, 10, 25, 40, 50)


def png_digest(image: np.ndarray) -> str:
    return hashlib.sha256(png_bytes(image)).hexdigest()


def cpus_and_repeats(weights: Path, seeds: list[bytes], steps: int) -> dict:
    """Each seed painted twice in fresh processes allowed each number of CPUs: one PNG per seed?"""
    available = sorted(os.sched_getaffinity(0))
    counts = [n for n in COUNTS if n <= len(available)]
    identical = True
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "image.npy"
        for seed in seeds:
            digests = set()
            for n in counts * 2:
                child(["paint", "onnx", str(weights), seed.hex(), str(steps), str(out)], cpus=available[:n])
                digests.add(png_digest(np.load(out)))
            identical &= len(digests) == 1
    return {"cpus": counts, "seeds": len(seeds), "identical": identical}


def thread_counts(weights: Path, seeds: list[bytes], steps: int) -> dict:
    """Each seed painted with each number of ONNX Runtime threads: which counts paint what 1 thread paints?"""
    same = {n: True for n in COUNTS}
    for seed in seeds:
        one = png_digest(Painter.load(weights, threads=1).paint([seed], steps).images[0])
        for n in COUNTS:
            same[n] &= png_digest(Painter.load(weights, threads=n).paint([seed], steps).images[0]) == one
    return {"seeds": len(seeds), "same_as_1_thread": {str(n): same[n] for n in COUNTS}}


def trajectory_points(weights: Path, seed: bytes, steps: int, count: int) -> dict[str, np.ndarray]:
    """`count` (x_t, t) pairs from the ONNX path's own painting of a seed, spread over its steps."""
    denoiser = BACKENDS["onnx"](weights)
    visited = []

    def record(x, t):
        visited.append((x.copy(), t))
        return denoiser(x, t)

    record.schedule = denoiser.schedule
    sample(record, starting_noise([seed]), steps)
    chosen = np.linspace(0, len(visited) - 1, count).round().astype(int)
    return {"x": np.stack([visited[i][0] for i in chosen]), "t": np.array([visited[i][1] for i in chosen])}


def child(command: list[str], env: dict | None = None, prefix: tuple[str, ...] = (), cpus: list[int] | None = None):
    """This module's `main` in a fresh process: with `env` added, under `prefix` (the emulator), on `cpus`."""
    argv = [*prefix, sys.executable, "-m", "benchmarks.reproducibility", *command]
    done = subprocess.run(argv, cwd=REPO_ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stderr[-2000:]}")


def compare(a: np.ndarray, b: np.ndarray) -> dict:
    difference = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return {"identical": bool(np.array_equal(a, b)), "differing_fraction": float((a != b).mean()),
            "max_difference": float(difference.max()),
            "max_relative_difference": float(difference.max() / max(np.abs(a).max(), 1e-30))}


def instruction_sets(weights: Path, seed: bytes, steps: int, points: int) -> dict:
    """Each backend as this machine runs it against the same capped to AVX2, where there is a way to cap it."""
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        inputs = tmp / "inputs.npz"
        np.savez(inputs, **trajectory_points(weights, seed, steps, points))

        def outputs(name, backend, env=None, prefix=()):
            child(["outputs", backend, str(weights), str(inputs), str(tmp / f"{name}.npy")], env, prefix)
            return np.load(tmp / f"{name}.npy")

        def painting(name, backend, env=None):
            child(["paint", backend, str(weights), seed.hex(), str(steps), str(tmp / f"{name}.npy")], env)
            return np.load(tmp / f"{name}.npy")

        result["numpy capped to AVX2 (onnx painting)"] = compare(
            painting("onnx", "onnx"), painting("onnx-numpy-avx2", "onnx", AVX2_CAPS["numpy"]))
        result["torch capped to AVX2 (network output)"] = compare(
            outputs("torch", "torch"), outputs("torch-avx2", "torch", AVX2_CAPS["torch"]))
        result["torch capped to AVX2 (painting)"] = compare(
            painting("torch-painting", "torch"), painting("torch-painting-avx2", "torch", AVX2_CAPS["torch"]))
        qemu = shutil.which("qemu-x86_64")
        if qemu:
            result[f"onnx under QEMU as {QEMU_CPU} (network output)"] = compare(
                outputs("onnx", "onnx"), outputs("onnx-qemu", "onnx", prefix=(qemu, "-cpu", QEMU_CPU)))
        else:
            result[f"onnx under QEMU as {QEMU_CPU} (network output)"] = "not measured: qemu-x86_64 is not installed"
    return {"points": points, "comparisons": result}


class Perturbed:
    """A denoiser whose every output is scaled by (1 + relative * N(0, 1)): a CPU that rounds a little differently."""

    def __init__(self, denoiser, relative: float, seed: int):
        self.denoiser, self.schedule, self.relative = denoiser, denoiser.schedule, relative
        self.rng = np.random.default_rng(seed)

    def __call__(self, x, t):
        output = self.denoiser(x, t)
        return (output * (1 + self.relative * self.rng.standard_normal(output.shape))).astype(np.float32)


def growth(weights: Path, seeds: list[bytes], steps: int, draws: int) -> dict:
    """For each perturbation size: the predicted image's drift (in 0..255 levels) at some steps, and the final PNG's."""
    denoiser = BACKENDS["onnx"](weights)

    def painted(d):
        predictions = []
        images = sample(d, starting_noise(seeds), steps, on_step=lambda i, x0: predictions.append(x0.copy()))
        return images, np.stack(predictions)

    images, predictions = painted(denoiser)
    result = {"seeds": len(seeds), "draws": draws, "steps": steps}
    for relative in PERTURBATIONS:
        drift, differing, levels = np.zeros(steps), [], 0
        for draw in range(draws):
            other_images, other_predictions = painted(Perturbed(denoiser, relative, draw))
            drift = np.maximum(drift, np.abs(other_predictions - predictions).max(axis=(1, 2, 3, 4)) * 127.5)
            level_difference = np.abs(other_images.astype(int) - images)
            differing += [int(n) for n in (level_difference > 0).sum(axis=(1, 2, 3))]
            levels = max(levels, int(level_difference.max()))
        result[f"{relative:g}"] = {
            "drift_levels_at_step": {str(s): float(drift[s - 1]) for s in REPORTED_STEPS if s <= steps},
            "differing_values_per_image": {"median": float(np.median(differing)), "max": max(differing),
                                           "of": int(np.prod(IMAGE_SHAPE))},
            "images_with_any_difference": f"{sum(n > 0 for n in differing)}/{len(differing)}",
            "max_level_difference": levels,
        }
    return result


def exactness_cost(weights: Path, steps: int, rounds: int) -> dict:
    """Seconds per painting (in-process, network loaded) with the painter's settings and the fastest ones."""
    from raccoon.train import grid_seeds

    denoisers = {"painter (exact)": OnnxDenoiser(weights), "fastest (ORT_ENABLE_ALL)": OnnxDenoiser(weights, exact=False)}
    seconds = {name: [] for name in denoisers}
    seed = grid_seeds(1)
    for _ in range(rounds):
        for name, denoiser in denoisers.items():
            start = time.perf_counter()
            sample(denoiser, starting_noise(seed), steps)
            seconds[name].append(time.perf_counter() - start)
    result = {name: {"median": statistics.median(v), "min": min(v), "max": max(v)} for name, v in seconds.items()}
    result["cost"] = result["painter (exact)"]["median"] / result["fastest (ORT_ENABLE_ALL)"]["median"] - 1
    return result


def run(weights: Path, steps: int = 50, seeds: int = 3, points: int = 5, growth_seeds: int = 8, draws: int = 2,
        rounds: int = 5) -> dict:
    from raccoon.train import grid_seeds  # here, not above: the ONNX child processes must not load PyTorch

    return {
        "cpus_and_repeats": cpus_and_repeats(weights, grid_seeds(seeds), steps),
        "thread_counts": thread_counts(weights, grid_seeds(seeds), steps),
        "instruction_sets": instruction_sets(weights, grid_seeds(1)[0], steps, points),
        "growth": growth(weights, grid_seeds(growth_seeds), steps, draws),
        "exactness_cost": exactness_cost(weights, steps, rounds),
    }


def table(result: dict) -> str:
    c, t = result["cpus_and_repeats"], result["thread_counts"]
    same = [n for n, ok in t["same_as_1_thread"].items() if ok]
    other = [n for n, ok in t["same_as_1_thread"].items() if not ok]
    rows = [f"CPUs: {c['seeds']} seeds painted in fresh processes allowed {', '.join(map(str, c['cpus']))} CPUs, twice "
            "each: " + ("the same PNG bytes every time." if c["identical"] else "**the PNG bytes differ**."), "",
            f"ONNX Runtime threads (not a setting of the painter): {', '.join(same)} threads paint the PNG of 1 thread"
            + (f"; {', '.join(other)} threads do not." if other else "."), "",
            f"Instruction sets (AVX-512 machine against AVX2; network output at {result['instruction_sets']['points']} "
            "points of a 50-step painting, or the whole painting):", "",
            "| comparison | identical | values differing | max difference | max relative difference |",
            "|---|---|---|---|---|"]
    for name, c in result["instruction_sets"]["comparisons"].items():
        if isinstance(c, str):
            rows.append(f"| {name} | {c} | | | |")
        else:
            rows.append(f"| {name} | {'yes' if c['identical'] else 'no'} | {c['differing_fraction']:.1%} | "
                        f"{c['max_difference']:.2g} | {c['max_relative_difference']:.2g} |")
    g = result["growth"]
    rows += ["", f"Growth of a difference in the network's output over {g['steps']} steps ({g['seeds']} seeds x "
             f"{g['draws']} draws; drift of the predicted image in 0..255 levels):", "",
             "| output scaled by | " + " | ".join(f"drift at step {s}" for s in g[f"{PERTURBATIONS[0]:g}"]["drift_levels_at_step"])
             + " | 64x64x3 values differing per image (median, max) | images differing | max level difference |",
             "|---|" + "---|" * (len(REPORTED_STEPS) + 3)]
    for relative in PERTURBATIONS:
        r = g[f"{relative:g}"]
        drift = " | ".join(f"{v:.2g}" for v in r["drift_levels_at_step"].values())
        d = r["differing_values_per_image"]
        rows.append(f"| 1 + {relative:g} N(0,1) | {drift} | {d['median']:g}, {d['max']} of {d['of']} | "
                    f"{r['images_with_any_difference']} | {r['max_level_difference']} |")
    cost = result["exactness_cost"]
    rows += ["", "Cost of exactness: seconds per 50-step painting in-process, median (min to max):", "",
             "| ONNX Runtime settings | seconds |", "|---|---|"]
    for name in ("painter (exact)", "fastest (ORT_ENABLE_ALL)"):
        rows.append(f"| {name} | {cost[name]['median']:.2f} ({cost[name]['min']:.2f} to {cost[name]['max']:.2f}) |")
    rows += ["", f"The exact settings cost {cost['cost']:+.0%} of the painting time."]
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    """Child processes: `outputs BACKEND WEIGHTS INPUTS OUT` or `paint BACKEND WEIGHTS SEED_HEX STEPS OUT`."""
    command, backend, weights, *rest = argv
    if command == "outputs":
        inputs, out = np.load(rest[0]), rest[1]
        denoiser = BACKENDS[backend](Path(weights))
        np.save(out, np.stack([denoiser(x, int(t)) for x, t in zip(inputs["x"], inputs["t"])]))
    else:
        seed, steps, out = bytes.fromhex(rest[0]), int(rest[1]), rest[2]
        np.save(out, Painter.load(Path(weights), backend).paint([seed], steps).images[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
