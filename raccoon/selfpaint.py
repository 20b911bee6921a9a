"""Paint the network's own raccoons of tuning days, keep the best by its choice's head, and write them as a folder
of training photos: curated self-training (weights v0.8).

    raccoon self-paint --weights W --start 2027-03-25 --days 256 --keep 128 --out runs/self-paint
    raccoon train --data ../shared/data/raccoons --data runs/self-paint --init W --max-steps N   # W's steps + 1,000

(v0.8: W is v0.7, N 8,912; docs/training.md.)

Retraining a model on its own samples, filtered by a reward, moves it towards what the reward prefers (Ferbach et
al. 2024, "Self-consuming generative models with curated data provably optimize human preferences"). Here the
reward is the head that picks each day's raccoon among its candidates, fitted to blind reviewers' strict answers.
Each kept painting is padded by reflection so that training's zoom and shift see it at a real crop's scale, and
gets a Pascal VOC box where `load_crops` would have boxed a raccoon, so `raccoon train` reads the folder as it
reads the photos. Only tuning days may be painted: a held-out day in training would spend that held-out set.
"""

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from raccoon import options
from raccoon.data import BOX_MARGIN
from raccoon.evaluate import FIRST_HELD_OUT, within_tuning_days
from raccoon.files import cannot_write, write_atomically
from raccoon.painting import PaintError, Painter
from raccoon.pretrained import default_weights_dir
from raccoon.render import picture_png
from raccoon.train import JITTER_CONTEXT, TUNING_START, grid_seeds

BATCH = 16
RECORD_FILE = "self-paint.json"


def voc_box(low: float, high: float) -> bytes:
    """A square Pascal VOC box from `low` to `high` on both axes, as `read_boxes` reads them."""
    return (f"<annotation><object><bndbox><xmin>{low:.0f}</xmin><ymin>{low:.0f}</ymin><xmax>{high:.0f}</xmax>"
            f"<ymax>{high:.0f}</ymax></bndbox></object></annotation>").encode()


def best_paintings(painter: Painter, seeds: list[bytes], keep: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The days' raccoons as `painter` paints them, the head's score of each, and the `keep` best (best first)."""
    images = np.concatenate([painter.paint(seeds[i:i + BATCH]).images
                             for i in tqdm(range(0, len(seeds), BATCH), desc="painting", unit="batch")])
    scores = painter.choice.scorer.rank(images)
    return images, scores, np.argsort(-scores, kind="stable")[:keep]


def padding(size: int) -> int:
    """Room around a painting of `size` px for train's zoom and shift, as a photo has around its crop (8 px at 64)."""
    return round(size * (JITTER_CONTEXT - 1) / 2)


def write_training_folder(images: np.ndarray, out: Path) -> None:
    """Each painting, reflection-padded, as painting-NNN.png with its box in painting-NNN.xml: the box that
    load_crops grows by BOX_MARGIN into the painting's own square."""
    size = images.shape[1]
    pad, box = padding(size), size / (1 + BOX_MARGIN)
    low, high = pad + (size - box) / 2, pad + (size + box) / 2
    for rank, image in enumerate(images):
        padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
        write_atomically(out / f"painting-{rank:03d}.png", picture_png(Image.fromarray(padded, "RGB")))
        write_atomically(out / f"painting-{rank:03d}.xml", voc_box(low, high))


def parse_args(argv):
    p = options.Parser(prog="raccoon self-paint", description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", type=Path, default=None, metavar="DIR",
                   help="weights folder whose raccoons are painted and ranked (default: $RACCOON_WEIGHTS, else the "
                        "shipped weights)")
    p.add_argument("--start", type=options.day, required=True, metavar="YYYY-MM-DD",
                   help=f"the first day painted; every day painted must be a tuning day, from {TUNING_START} until "
                        f"the held-out sets begin on {FIRST_HELD_OUT} (each day's date-only raccoon is painted)")
    p.add_argument("--days", type=options.number_between(int, 1), required=True, help="how many days to paint")
    p.add_argument("--keep", type=options.number_between(int, 1), default=None,
                   help="how many of the best to write (default: half of --days)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="new or empty folder for the paintings")
    args = p.parse_args(argv)
    args.keep = args.keep or max(1, args.days // 2)
    if args.keep > args.days:
        p.error(f"--keep {args.keep} is more than the {args.days} days painted")
    if not within_tuning_days(args.start, args.days):
        p.error(f"--start {args.start} and --days {args.days} leave the tuning days ({TUNING_START} until "
                f"{FIRST_HELD_OUT}, where the held-out sets begin)")
    return args


def main(argv=None) -> int:
    try:
        args = parse_args(argv)
    except options.UsageError as error:
        return _fail(str(error))
    if args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
        return _fail(f"{args.out} is not an empty folder: give a new one, so that no earlier painting is trained on")
    weights = args.weights or default_weights_dir()
    try:
        painter = Painter.load(weights)
    except PaintError as error:
        return _fail(str(error))
    if painter.choice is None:
        return _fail(f"{weights} ships no choice among candidates, so no head to rank its paintings")
    seeds = grid_seeds(args.days, args.start)
    images, scores, kept = best_paintings(painter, seeds, args.keep)
    record = {"weights": str(weights), "start": args.start.isoformat(), "days": args.days, "keep": args.keep,
              "head_scores": [round(float(s), 6) for s in scores], "kept": kept.tolist()}
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        write_training_folder(images[kept], args.out)
        write_atomically(args.out / RECORD_FILE, (json.dumps(record, indent=1) + "\n").encode())
    except OSError as error:
        return _fail(cannot_write(error, args.out))
    print(f"kept {args.keep} of {args.days} paintings (head score {scores[kept[-1]]:.3f} and up); "
          f"wrote {args.out}")
    return 0


def _fail(message: str) -> int:
    print(f"raccoon self-paint: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
