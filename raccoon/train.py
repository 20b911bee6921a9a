"""Train the U-Net on a folder of raccoon photos: on the CPU, on a CUDA GPU, or data-parallel under torchrun.

    raccoon train --data ../shared/data/raccoons --run runs/main --minutes 90
    torchrun --nproc-per-node 4 -m raccoon train --data ../shared/data/raccoons --run-dir runs/main --minutes 90

bf16 autocast puts the CPU's matrix units to work (2x fp32 here; channels_last measured slower, so it
is off by default). The run folder (git-ignored) gets a resumable checkpoint, the EMA weights as a
weights folder, sample grids, a log and a training curve, each file written atomically. A run resumes from
its checkpoint; with none, it starts from the weights in --init (by default the shipped weights:
$RACCOON_WEIGHTS, the installed ones, or the checkout's weights/), so training carries on even when the run
folder is gone. Either way the run keeps its recipe (schedule,
prediction, learning rate, loss weighting, augmentation) unless a flag changes it. `--cooldown N` ends a run
with N steps in which the learning rate falls linearly to zero, the usual last phase of a warm-up, stable,
decay schedule.

Under torchrun every process trains a copy of the network on its share of each batch (`--batch` is the
whole batch, split evenly) and DistributedDataParallel averages their gradients, so every copy, and every
EMA, takes the same step; rank 0 alone writes files, logs and samples.
"""

import argparse
import copy
import datetime
import io
import json
import math
import os
import pickle
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from raccoon import options
from raccoon.backends import TorchDenoiser
from raccoon.data import load_crops, read_curation
from raccoon.day import DayRecord
from raccoon.diffusion import Schedule
from raccoon.files import write_atomically
from raccoon.model import UNet, UNetConfig
from raccoon.options import number_between as number
from raccoon.painting import Painter
from raccoon.pretrained import CONFIG_FILE, WeightsError, default_weights_dir, load_weights, save_pretrained
from raccoon.render import picture_png

# The recipe the ablations chose (weights/README.md); a resumed run keeps its own unless a flag says otherwise.
RECIPE = {"batch": 32, "lr": 2e-4, "warmup": 200, "ema": 0.999, "min_snr": 5.0, "jitter": 0.1}
JITTER_CONTEXT = 1.25  # with jitter, sources show this much more than a crop, at twice its resolution


class TrainError(Exception):
    """Input a user can fix (a missing folder, a folder without photos, a batch that does not split): one line."""


@dataclass(frozen=True)
class Ranks:
    """This process's place in the run: rank `rank` of `world_size` data-parallel processes (1 without torchrun)."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def main(self) -> bool:
        """Rank 0 alone writes files, logs and samples."""
        return self.rank == 0

    def print(self, *text) -> None:
        """print, on rank 0 only."""
        if self.main:
            print(*text)


@dataclass
class State:
    """What a run carries from session to session; its checkpoint holds all of it."""

    model_cfg: UNetConfig
    schedule: Schedule
    net: UNet
    ema: UNet  # the exponential moving average of net's weights: what is saved as weights and painted
    record: dict  # the recipe and the progress (steps, CPU hours, images seen): the weights' training record
    optimizer_state: dict | None = None  # AdamW's moments, when resuming


TUNING_START = datetime.date(2026, 1, 1)  # the model card's grid: every choice so far was made on these days


def grid_seeds(n: int, start: datetime.date = TUNING_START) -> list[bytes]:
    """The date-only records' seeds of the n days from `start`: by default the model card's grid (the tuning set)."""
    return [DayRecord.of(start + datetime.timedelta(days=i), []).seed() for i in range(n)]


def image_grid(images: np.ndarray, columns: int = 8, scale: int = 2) -> Image.Image:
    n, h, w, _ = images.shape
    rows = math.ceil(n / columns)
    canvas = np.full((rows * h, columns * w, 3), 255, dtype=np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        canvas[r * h : (r + 1) * h, c * w : (c + 1) * w] = image
    grid = Image.fromarray(canvas)
    return grid.resize((grid.width * scale, grid.height * scale), Image.Resampling.NEAREST)


def diffusion_loss(model, schedule: Schedule, x0, t, noise, min_snr: float, bf16: bool = True) -> torch.Tensor:
    """DDPM's objective: x0 noised to steps t, the network asked for the noise (or v), the mean squared error.

    The loss is a mean over the images, so data-parallel processes averaging their gradients get the whole
    batch's. With min_snr > 0 each step's loss is weighted by min(SNR, gamma) / SNR (Hang et al., 2023), so the
    easy low-noise steps stop dominating.
    """
    x_t = schedule.add_noise(x0, noise, t)  # keeps x0's memory format
    with torch.autocast(x0.device.type, dtype=torch.bfloat16, enabled=bf16):
        output = model(x_t, t.float())
    per_image = F.mse_loss(output.float(), schedule.target(x0, noise, t), reduction="none").mean(dim=(1, 2, 3))
    if min_snr > 0:
        a, s = schedule.scales(t, per_image)
        snr = (a / s) ** 2
        per_image = per_image * snr.clamp(max=min_snr) / (snr if schedule.prediction == "epsilon" else snr + 1)
    return per_image.mean()


def optimizer_step(model, optimizer, schedule: Schedule, x0, t, noise, min_snr: float,
                   bf16: bool = True) -> torch.Tensor:
    """One update on a batch: the loss, its gradients clipped to norm 1, an optimizer step. Returns the loss."""
    loss = diffusion_loss(model, schedule, x0, t, noise, min_snr, bf16=bf16)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return loss


@torch.no_grad()
def update_ema(ema, net, step: int, decay: float) -> None:
    """Move the EMA towards the network, its decay warmed up (0.1 at the first step) so it does not linger on the
    first weights."""
    decay = min(decay, (1 + step) / (10 + step))
    for e, p in zip(ema.parameters(), net.parameters()):
        e.lerp_(p, 1 - decay)


def jittered_crop(source: torch.Tensor, size: int, jitter: float) -> torch.Tensor:
    """A crop zoomed by up to ±jitter and shifted by up to ±jitter/2 of its side from the plain crop at the
    centre of a (3, S, S) source, downsampled to size x size with antialiasing (never upsampled: no blur)."""
    full = source.shape[-1]
    side = full / JITTER_CONTEXT * (1 + jitter * (2 * torch.rand(()).item() - 1))
    shift = side * jitter / 2 * (2 * torch.rand(2) - 1)
    left, top = ((full - side) / 2 + shift).clamp(0, full - side).round().int().tolist()
    side = round(side)
    window = source[None, :, top : top + side, left : left + side]
    return F.interpolate(window, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]


def augment(sources: torch.Tensor, size: int, jitter: float) -> torch.Tensor:
    """Random horizontal flips, and with jitter > 0 a random zoom and shift (see jittered_crop)."""
    batch = torch.stack([jittered_crop(s, size, jitter) for s in sources]) if jitter > 0 else sources
    flip = torch.rand(batch.shape[0]) < 0.5
    return torch.where(flip[:, None, None, None], batch.flip(3), batch)


def learning_rate(record: dict, step: int) -> float:
    """The recipe's rate, warmed up linearly, and during a cooldown (start, end) falling linearly towards zero."""
    rate = record["lr"] * min(1.0, (step + 1) / record["warmup"])
    if "cooldown" in record:
        start, end = record["cooldown"]
        rate *= (end - step) / (end - start)
    return rate


def plot_curve(log: list[dict]) -> Image.Image:
    """Loss (moving average, log scale) against CPU hours, drawn with PIL so training needs no plotting library."""
    hours = np.array([r["cpu_hours"] for r in log])
    loss = np.array([r["loss"] for r in log])
    window = min(50, len(loss))
    smooth = np.log10(np.convolve(loss, np.ones(window) / window, mode="valid"))
    hours = hours[len(hours) - len(smooth) :]
    width, height, pad = 640, 360, 48
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    lo, hi = float(smooth.min()), float(smooth.max())
    h0, h1 = float(hours.min()), float(hours.max())

    def xy(h, v):
        return (pad + (h - h0) / max(h1 - h0, 1e-9) * (width - 2 * pad),
                height - pad - (v - lo) / max(hi - lo, 1e-9) * (height - 2 * pad))

    draw.line([xy(h, v) for h, v in zip(hours, smooth)], fill=(200, 60, 20), width=2)
    draw.rectangle([pad, pad, width - pad, height - pad], outline="black")
    draw.text((pad, 8), f"training loss, moving average of {window} steps, log scale: {10**lo:.4f} to {10**hi:.4f}",
              fill="black")
    draw.text((pad, height - pad + 8), f"CPU hours {h0:.2f} to {h1:.2f} ({log[-1]['step']} steps)", fill="black")
    return image


def plot_trajectory(samples: Path, rows: int = 8) -> Image.Image:
    """The first row of up to `rows` progress grids, evenly spread over the run, labelled by step."""
    grids = sorted(samples.glob("step-*.png"))
    picked = sorted({grids[round(i * (len(grids) - 1) / max(rows - 1, 1))] for i in range(rows)})
    strips = []
    for grid in picked:
        with Image.open(grid) as image:
            strips.append(image.crop((0, 0, image.width, image.width // 8)).convert("RGB"))  # 8 square tiles a row
    label = 120
    height = strips[0].height
    canvas = Image.new("RGB", (label + strips[0].width, height * len(strips)), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (grid, strip) in enumerate(zip(picked, strips)):
        canvas.paste(strip, (label, i * height))
        draw.text((8, i * height + height // 2), f"step {int(grid.stem.split('-')[1]):,}", fill="black")
    return canvas


def parse_args(argv):
    p = options.Parser(prog="raccoon train", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, action="append", required=True,
                   help="folder of photos with optional Pascal VOC boxes; give it again to add another folder "
                   "(such as `raccoon self-paint`'s)")
    p.add_argument("--curation", type=Path, help="train without the crops this file's flags rule out "
                   "(docs/data-audit.json; default: every crop)")
    p.add_argument("--run", "--run-dir", type=Path, default=Path("runs/main"),
                   help="checkpoints, samples and logs (git-ignored); --run-dir under torchrun, whose own parser "
                   "takes --run for an abbreviation of its options")
    p.add_argument("--init", default=None, help="weights folder to start from when the run has no checkpoint "
                   "(default: the shipped weights if present; 'none' for a fresh network)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="where to train (default auto: CUDA if PyTorch sees a GPU, else the CPU)")
    p.add_argument("--minutes", type=number(float, 0), default=60.0, help="wall-clock budget of this session")
    p.add_argument("--max-steps", type=number(int, 0), default=None, help="stop at this total step count")
    recipe = "(default: the run's or --init's own, else {})"
    p.add_argument("--batch", type=number(int, 1), help="images a step, over all processes "
                   + recipe.format(RECIPE["batch"]))
    p.add_argument("--lr", type=number(float, 0), help=recipe.format(RECIPE["lr"]))
    p.add_argument("--warmup", type=number(int, 1), help="learning-rate warm-up steps "
                   + recipe.format(RECIPE["warmup"]))
    p.add_argument("--ema", type=number(float, 0, 1),
                   help="EMA decay, warmed up as min(decay, (1 + step) / (10 + step)) " + recipe.format(RECIPE["ema"]))
    p.add_argument("--jitter", type=number(float, 0, JITTER_CONTEXT - 1), help="random zoom of up to ±jitter and "
                   "shift of up to ±jitter/2 of the crop, 0 for flips only " + recipe.format(RECIPE["jitter"]))
    p.add_argument("--min-snr", type=number(float, 0), help="min-SNR-gamma loss weighting, 0 for off "
                   + recipe.format(RECIPE["min_snr"]))
    p.add_argument("--cooldown", type=number(int, 1), help="end this run with this many steps in which the learning "
                   "rate falls linearly to zero (once finished, a resumed run trains at the recipe's rate again)")
    p.add_argument("--schedule", choices=["linear", "cosine"], default="cosine",
                   help="noise schedule of a fresh network (one from a checkpoint or weights keeps its own)")
    p.add_argument("--prediction", choices=["epsilon", "v"], default="v",
                   help="what a fresh network predicts (one from a checkpoint or weights keeps its own)")
    p.add_argument("--checkpoint-minutes", type=number(float, 0), default=10.0)
    p.add_argument("--sample-minutes", type=number(float, 0), default=20.0)
    p.add_argument("--sample-steps", type=options.steps, default=25, help="DDIM steps of the progress grids")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=False,
                   help="NHWC memory format; off by default: GroupNorm's backward is slow in it (see benchmarks/)")
    p.add_argument("--threads", type=number(int, 1), default=None)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def join(device: str) -> Ranks:
    """The device to train on and, under torchrun (which sets RANK, WORLD_SIZE and LOCAL_RANK), the process group:
    gloo on the CPU, NCCL on GPUs, one GPU a process."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device == "cuda" and not torch.cuda.is_available():
        raise TrainError("--device cuda, but PyTorch sees no CUDA device")
    rank, world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if device == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        device = f"cuda:{torch.cuda.current_device()}"
    if world_size > 1:
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo", rank=rank, world_size=world_size)
    return Ranks(rank, world_size, torch.device(device))


def sum_over_ranks(values: list[float], ranks: Ranks) -> list[float]:
    """Each value summed over the processes (itself without torchrun): one collective for a step's numbers."""
    if ranks.world_size == 1:
        return values
    total = torch.tensor(values, dtype=torch.float64, device=ranks.device)
    dist.all_reduce(total)
    return total.tolist()


def start(args, ranks: Ranks) -> State:
    """The run's checkpoint if it has one; else the weights in --init (default: the shipped ones, if there are
    any); else a fresh network with --schedule and --prediction."""
    path = args.run / "checkpoint.pt"
    if path.exists():
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except (RuntimeError, pickle.UnpicklingError, EOFError):
            raise TrainError(f"{path} is not a readable checkpoint: move it away to start from --init") from None
        model_cfg = UNetConfig.from_dict(checkpoint["model_config"])
        state = State(model_cfg, Schedule(**checkpoint["schedule"]), UNet(model_cfg), UNet(model_cfg),
                      checkpoint["record"], checkpoint["optimizer"])
        state.net.load_state_dict(checkpoint["net"])
        state.ema.load_state_dict(checkpoint["ema"])
        ranks.print(f"resuming {path} at step {state.record['steps']}")
        return state
    init = None if args.init == "none" else Path(args.init) if args.init else default_weights_dir()
    try:
        config, parameters = load_weights(init) if init else (None, None)
    except WeightsError as error:
        if args.init or (init / CONFIG_FILE).exists():  # damaged weights are an error; missing ones are not
            raise TrainError(f"--init: {error}" if args.init else str(error)) from None
        config, parameters = None, None  # no shipped weights (yet): a fresh network
    if config:
        model_cfg, schedule, record = (UNetConfig.from_dict(config["model"]), Schedule(**config["schedule"]),
                                       config["training"])
        ranks.print(f"starting from {init} at step {record['steps']}")
    else:
        model_cfg, schedule = UNetConfig(), Schedule(args.schedule, args.prediction)
        record = {"steps": 0, "cpu_hours": 0.0, "images_seen": 0}
    state = State(model_cfg, schedule, UNet(model_cfg), UNet(model_cfg), record)
    if parameters:
        state.net.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in parameters.items()})
    state.ema.load_state_dict(state.net.state_dict())
    return state


def adopt_recipe(record: dict, args, world_size: int) -> float:
    """The recipe's flags written into the record (a run keeps its own where none is given), and the step to stop at."""
    for key, default in RECIPE.items():
        record[key] = value if (value := getattr(args, key)) is not None else record.get(key, default)
    if record["batch"] % world_size:
        raise TrainError(f"a batch of {record['batch']} does not split evenly over {world_size} processes")
    if args.cooldown:
        record["cooldown"] = [record["steps"], record["steps"] + args.cooldown]
    elif record.get("cooldown", [0, 0])[1] <= record["steps"]:
        record.pop("cooldown", None)  # finished: the weights record it, a new run does not inherit it
    return min(math.inf if args.max_steps is None else args.max_steps,
               record["cooldown"][1] if "cooldown" in record else math.inf)


def load_images(folders: list[Path], size: int, jitter: float, progress: bool,
                leave_out: frozenset[tuple[str, int]] = frozenset()) -> torch.Tensor:
    """The folders' crops, in order, as (N, 3, S, S) in [-1, 1]: S = size, or with jitter the wider, sharper sources
    that jittered_crop cuts crops from."""
    source_size, context = (round(2 * size * JITTER_CONTEXT), JITTER_CONTEXT) if jitter > 0 else (size, 1.0)
    try:
        crops = np.concatenate([
            load_crops(folder, source_size, context, leave_out=leave_out,
                       progress=lambda xs: tqdm(xs, desc="reading photos", unit="photo", disable=not progress))
            for folder in folders])
    except OSError as error:  # no folder, no photos, or one that is not an image
        raise TrainError(f"--data: {error}") from None
    return torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 127.5 - 1


def curate(args, record: dict) -> frozenset[tuple[str, int]]:
    """The crops --curation leaves out; the record names the file, its flags, and the step its curated training
    began (kept while a run resumes with the same file)."""
    if not args.curation:
        record.pop("curation", None)
        return frozenset()
    try:
        left_out, drop, digest = read_curation(args.curation)
    except ValueError as error:
        raise TrainError(f"--curation: {error}") from None
    earlier = record.get("curation", {})
    since = earlier["since_step"] if earlier.get("sha256") == digest else record["steps"]
    record["curation"] = {"file": args.curation.name, "sha256": digest, "drop": drop, "left_out": len(left_out),
                          "since_step": since}
    return left_out


def save(run: Path, state: State, optimizer, log: list[dict]) -> None:
    """The EMA weights, the resumable checkpoint, the log and the curve."""
    ema = {k: v.detach().float().cpu().numpy() for k, v in state.ema.state_dict().items()}
    save_pretrained(run / "weights", ema, state.model_cfg.to_dict(), state.schedule, state.record)
    checkpoint = io.BytesIO()
    torch.save({"net": state.net.state_dict(), "ema": state.ema.state_dict(), "optimizer": optimizer.state_dict(),
                "model_config": state.model_cfg.to_dict(), "schedule": state.schedule.to_dict(),
                "record": state.record}, checkpoint)
    write_atomically(run / "checkpoint.pt", checkpoint.getvalue())
    write_atomically(run / "log.jsonl", "".join(json.dumps(r) + "\n" for r in log).encode())
    if len(log) > 1:
        write_atomically(run / "curve.png", picture_png(plot_curve(log)))


def write_samples(run: Path, state: State, steps: int) -> None:
    """The EMA network's grid of the first 16 days of 2026, and the trajectory of such grids over the run."""
    painter = Painter(TorchDenoiser(copy.deepcopy(state.ema).cpu(), state.schedule))  # it feeds the network NumPy
    grid = image_grid(painter.paint(grid_seeds(16), steps=steps).images)
    write_atomically(run / "samples" / f"step-{state.record['steps']:06d}.png", picture_png(grid))
    write_atomically(run / "trajectory.png", picture_png(plot_trajectory(run / "samples")))


def place(state: State, ranks: Ranks, memory_format: torch.memory_format):
    """The network and its EMA on the device, the network wrapped for data parallelism under torchrun (the model
    that takes the steps), and its optimizer."""
    state.net.to(ranks.device, memory_format=memory_format).train()
    state.ema.to(ranks.device).eval().requires_grad_(False)
    model = DistributedDataParallel(state.net) if ranks.world_size > 1 else state.net
    optimizer = torch.optim.AdamW(state.net.parameters(), lr=state.record["lr"], weight_decay=0.0)
    if state.optimizer_state:
        optimizer.load_state_dict(state.optimizer_state)
    return model, optimizer


def fit(state: State, images: torch.Tensor, args, ranks: Ranks, stop_at: float) -> None:
    """Train until step `stop_at` or the end of the session's minutes, checkpointing and sampling along the way."""
    record = state.record
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model, optimizer = place(state, ranks, memory_format)
    log_path = args.run / "log.jsonl"
    log = [json.loads(line) for line in log_path.read_text().splitlines()] if log_path.exists() else []
    # Each process its own draws; a resumed run new ones, not its first batches again.
    torch.manual_seed((args.seed + record["steps"]) * ranks.world_size + ranks.rank)
    shard, size = record["batch"] // ranks.world_size, state.model_cfg.image_size

    start_cpu, cpu_before, deadline = time.process_time(), record["cpu_hours"], time.time() + args.minutes * 60
    last_checkpoint = last_sample = time.time()
    bar = tqdm(desc="training", unit="step", initial=record["steps"], total=None if stop_at == math.inf else stop_at,
               disable=not ranks.main)
    late = args.minutes == 0
    while record["steps"] < stop_at and not late:
        step = record["steps"]
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(record, step)
        x0 = augment(images[torch.randint(0, len(images), (shard,))], size, record["jitter"])
        x0 = x0.to(ranks.device, memory_format=memory_format)
        t = torch.randint(0, state.schedule.train_steps, (shard,), device=ranks.device)
        loss = optimizer_step(model, optimizer, state.schedule, x0, t, torch.randn_like(x0), record["min_snr"])
        update_ema(state.ema, state.net, step, record["ema"])
        # Every process stops when any one runs out of time: one that went on alone would wait for the others.
        loss, cpu_seconds, late = sum_over_ranks([loss.item(), time.process_time() - start_cpu,
                                                  time.time() > deadline], ranks)
        record["steps"] = step + 1
        record["images_seen"] += record["batch"]
        record["cpu_hours"] = cpu_before + cpu_seconds / 3600
        if ranks.main:
            log.append({"step": step + 1, "loss": loss / ranks.world_size, "cpu_hours": record["cpu_hours"]})
            bar.update()
            bar.set_postfix(loss=f"{log[-1]['loss']:.4f}", cpu_h=f"{record['cpu_hours']:.2f}")
            if time.time() - last_checkpoint > args.checkpoint_minutes * 60:
                save(args.run, state, optimizer, log)
                last_checkpoint = time.time()
            if time.time() - last_sample > args.sample_minutes * 60:
                write_samples(args.run, state, args.sample_steps)
                last_sample = time.time()
    bar.close()
    if ranks.main:
        save(args.run, state, optimizer, log)
        write_samples(args.run, state, args.sample_steps)
        print(f"step {record['steps']}, {record['cpu_hours']:.2f} CPU hours; weights in {args.run / 'weights'}")


def train(args, ranks: Ranks) -> None:
    """Set the run up, read the photos, train."""
    torch.manual_seed(args.seed)  # the same fresh network in every process
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        (args.run / "samples").mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise TrainError(f"--run: {error}") from None
    state = start(args, ranks)
    stop_at = adopt_recipe(state.record, args, ranks.world_size)
    leave_out = curate(args, state.record)
    images = load_images(args.data, state.model_cfg.image_size, state.record["jitter"], ranks.main, leave_out)
    data = " + ".join(map(str, args.data))
    ranks.print(f"{len(images)} crops from {data}" + (f", {len(leave_out)} left out by {args.curation}"
                                                       if leave_out else ""))
    state.record.update(data=data, crops=len(images),
                        parameters=sum(p.numel() for p in state.net.parameters()))
    fit(state, images, args, ranks, stop_at)


def main(argv=None) -> int:
    try:
        args = parse_args(argv)
        ranks = join(args.device)
        try:
            train(args, ranks)
        finally:
            if dist.is_initialized():
                dist.destroy_process_group()
    except (options.UsageError, TrainError) as error:
        print(f"raccoon train: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
