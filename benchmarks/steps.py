"""Fewer DDIM steps: how far the 25- and 10-step raccoons are from the 50-step ones, and from real raccoons.

PSNR of each seed's image against its own 50-step image, and KID (raccoon eval's metric) of each
setting's images against the real crops. A setting counts as indistinguishable from 50 steps when its
KID lies within the 50-step KID's spread and every image is within 40 dB of its 50-step twin.
"""

from pathlib import Path

import numpy as np

from raccoon.data import load_crops
from raccoon.evaluate import draw_samples, features, kid
from raccoon.painting import Painter
from raccoon.train import grid_seeds

STEPS = (50, 25, 10)
DEFAULT = 50
INDISTINGUISHABLE_PSNR = 40.0


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 images, in dB (infinite when equal)."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255**2 / mse))


def run(weights: Path, data: Path | None, samples: int = 128, batch: int = 16) -> dict:
    """PSNR of every seed against its 50-step image; KID against the real crops when `data` is given."""
    painter = Painter.load(weights)  # as `raccoon paint` paints: with the weights' own guidance
    seeds = grid_seeds(samples)
    images = {steps: draw_samples(painter, seeds, steps, batch)[0] for steps in STEPS}
    real = features(load_crops(data)) if data else None
    result = {"samples": samples, "data": str(data) if data else None}
    for steps in STEPS:
        entry = result[str(steps)] = {}
        if real is not None:
            mean, std = kid(real, features(images[steps]))
            entry["kid"] = {"mean": mean, "std": std}
    base = result[str(DEFAULT)]
    for steps in STEPS:
        if steps == DEFAULT:
            continue
        entry = result[str(steps)]
        values = [psnr(a, b) for a, b in zip(images[steps], images[DEFAULT])]
        entry["psnr_db"] = {"median": float(np.median(values)), "min": float(np.min(values))}
        close_kid = real is None or abs(entry["kid"]["mean"] - base["kid"]["mean"]) <= base["kid"]["std"]
        entry["indistinguishable"] = bool(close_kid and entry["psnr_db"]["min"] >= INDISTINGUISHABLE_PSNR)
    return result


def table(result: dict) -> str:
    kid_note = "" if result["data"] else " KID not measured: no --data folder of real photos."
    rows = [f"DDIM steps, {result['samples']} seeds: PSNR against the same seed's 50-step image, "
            f"KID against the real crops (mean ± spread over subsets).{kid_note}", "",
            "| steps | PSNR median (dB) | PSNR worst (dB) | KID | indistinguishable from 50 |", "|---|---|---|---|---|"]
    for steps in STEPS:
        r = result[str(steps)]
        kid = f"{r['kid']['mean']:.4f} ± {r['kid']['std']:.4f}" if "kid" in r else "n/a"
        if "psnr_db" not in r:
            rows.append(f"| {steps} (default) | reference | reference | {kid} | |")
        else:
            rows.append(f"| {steps} | {r['psnr_db']['median']:.1f} | {r['psnr_db']['min']:.1f} | {kid} | "
                        f"{'yes' if r['indistinguishable'] else 'no'} |")
    return "\n".join(rows)
