"""Does a seed paint the same PNG everywhere a runner might run it?

Three questions, each measured on the weights given:

* threads: the ONNX path painted with 1, 2 and 4 threads, twice over: the same PNG bytes?
* instruction sets: GitHub's runners are AVX2-only or AVX-512 machines. Each library is capped to AVX2
  where it offers a switch: PyTorch (ATEN_CPU_CAPABILITY, oneDNN's ONEDNN_MAX_CPU_ISA) and NumPy
  (NPY_DISABLE_CPU_FEATURES). ONNX Runtime has none (MLAS picks its kernels from CPUID), so the
  ONNX path runs whole under QEMU's user-mode emulator as an AMD EPYC Milan (Zen 3, AVX2 and FMA, no
  AVX-512), when `qemu-x86_64` is installed (Debian: qemu-user). Emulation is some 400x slower, so
  there it computes the network's output at a few points of a real trajectory, not whole paintings.
* growth: how far a last-bit difference in the network's output travels. Every output of a 50-step
  painting is scaled by (1 + r * N(0, 1)) and the result compared with the unperturbed painting.

    python -m benchmarks.reproducibility outputs|paint ...   (the child processes of the above)
"""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from raccoon.render import png_bytes
from raccoon.runtime import BACKENDS, IMAGE_SHAPE, paint, sample

REPO_ROOT = Path(__file__).resolve().parent.parent
THREADS = (1, 2, 4)
QEMU_CPU = "EPYC-Milan"  # Zen 3: AVX2 + FMA, no AVX-512, as GitHub's AVX2 runners
AVX2_CAPS = {
    "torch": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "numpy": {"NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR"},
}
PERTURBATIONS = (1e-7, 1e-6)
REPORTED_STEPS = (1, 10, 25, 40, 50)


def png_digest(image: np.ndarray) -> str:
    return hashlib.sha256(png_bytes(image)).hexdigest()


def threads_and_repeats(weights: Path, seeds: list[bytes], steps: int) -> dict:
    """The PNG digest of each seed at each thread count, painted twice: all one digest per seed?"""
    per_seed = []
    for seed in seeds:
        digests = {png_digest(paint(seed, steps=steps, weights=weights, threads=n)) for _ in range(2) for n in THREADS}
        per_seed.append(len(digests) == 1)
    return {"threads": list(THREADS), "seeds": len(seeds), "identical": all(per_seed)}


def trajectory_points(weights: Path, seed: bytes, steps: int, count: int) -> dict[str, np.ndarray]:
    """`count` (x_t, t) pairs from the ONNX path's own painting of a seed, spread over its steps."""
    denoiser = BACKENDS["onnx"](weights, threads=1)
    visited = []

    def record(x, t):
        visited.append((x.copy(), t))
        return denoiser(x, t)

    record.schedule = denoiser.schedule
    sample(record, [seed], steps)
    chosen = np.linspace(0, len(visited) - 1, count).round().astype(int)
    return {"x": np.stack([visited[i][0] for i in chosen]), "t": np.array([visited[i][1] for i in chosen])}


def child(command: list[str], env: dict | None = None, prefix: tuple[str, ...] = ()) -> None:
    argv = [*prefix, sys.executable, "-m", "benchmarks.reproducibility", *command]
    done = subprocess.run(argv, cwd=REPO_ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True)
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
        torch_native = outputs("torch", "torch")
        result["torch capped to AVX2 (network output)"] = compare(
            torch_native, outputs("torch-avx2", "torch", AVX2_CAPS["torch"]))
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
        images = sample(d, seeds, steps, on_step=lambda i, x0: predictions.append(x0.copy()))
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


def run(weights: Path, steps: int = 50, seeds: int = 3, points: int = 5, growth_seeds: int = 8, draws: int = 2) -> dict:
    from raccoon.train import grid_seeds  # here, not above: the ONNX child processes must not load PyTorch

    return {
        "threads_and_repeats": threads_and_repeats(weights, grid_seeds(seeds), steps),
        "instruction_sets": instruction_sets(weights, grid_seeds(1)[0], steps, points),
        "growth": growth(weights, grid_seeds(growth_seeds), steps, draws),
    }


def table(result: dict) -> str:
    t = result["threads_and_repeats"]
    rows = [f"Threads: {t['seeds']} seeds painted with {', '.join(map(str, t['threads']))} threads, twice each: "
            + ("the same PNG bytes every time." if t["identical"] else "**the PNG bytes differ**."), "",
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
             + " | PNG values differing per image (median, max) | images differing | max level difference |",
             "|---|" + "---|" * (len(REPORTED_STEPS) + 3)]
    for relative in PERTURBATIONS:
        r = g[f"{relative:g}"]
        drift = " | ".join(f"{v:.2g}" for v in r["drift_levels_at_step"].values())
        d = r["differing_values_per_image"]
        rows.append(f"| 1 + {relative:g} N(0,1) | {drift} | {d['median']:g}, {d['max']} of {d['of']} | "
                    f"{r['images_with_any_difference']} | {r['max_level_difference']} |")
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    """Child processes: `outputs BACKEND WEIGHTS INPUTS OUT` or `paint BACKEND WEIGHTS SEED_HEX STEPS OUT`."""
    command, backend, weights, *rest = argv
    if command == "outputs":
        inputs, out = np.load(rest[0]), rest[1]
        denoiser = BACKENDS[backend](Path(weights), threads=1)
        np.save(out, np.stack([denoiser(x, int(t)) for x, t in zip(inputs["x"], inputs["t"])]))
    else:
        seed, steps, out = bytes.fromhex(rest[0]), int(rest[1]), rest[2]
        np.save(out, paint(seed, steps=steps, backend=backend, weights=Path(weights), threads=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
