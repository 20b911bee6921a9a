"""Train the U-Net on a folder of raccoon photos, on the CPU.

    raccoon train --data ../shared/data/raccoons --run runs/main --minutes 90

bf16 autocast puts the CPU's matrix units to work (2x fp32 here; channels_last measured slower, so it
is off by default). The run folder (git-ignored) gets a resumable checkpoint, the EMA weights as a
weights folder, sample grids, a log and a training curve. A run resumes from its checkpoint; with
none, it starts from the weights in --init (the committed weights/ by default), so training carries
on even when the run folder is gone. Either way the run keeps its recipe (schedule, prediction, learning
rate, loss weighting, augmentation) unless a flag changes it. `--cooldown N` ends a run with N steps in
which the learning rate falls linearly to zero, the usual last phase of a warm-up, stable, decay schedule.
"""

import argparse
import datetime
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from raccoon.data import load_crops
from raccoon.day import DayRecord
from raccoon.diffusion import Schedule
from raccoon.model import UNet, UNetConfig
from raccoon.runtime import (
    TorchDenoiser,
    WeightsError,
    default_weights_dir,
    load_weights,
    sample,
    save_pretrained,
)

# The recipe the ablations chose (weights/README.md); a resumed run keeps its own unless a flag says otherwise.
RECIPE = {"batch": 32, "lr": 2e-4, "warmup": 200, "ema": 0.999, "min_snr": 5.0, "jitter": 0.1}
JITTER_CONTEXT = 1.25  # with jitter, sources show this much more than a crop, at twice its resolution


def grid_seeds(n: int) -> list[bytes]:
    """The seeds of the model card's grid: the date-only records of the first n days of 2026."""
    start = datetime.date(2026, 1, 1)
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


def diffusion_loss(net, x0, schedule: Schedule, alphas_cumprod: torch.Tensor, min_snr: float,
                   bf16: bool = True) -> torch.Tensor:
    """DDPM's objective: noise x0 to a random step, ask the net for the noise (or v), mean squared error.

    With min_snr > 0 each step's loss is weighted by min(SNR, gamma) / SNR (Hang et al., 2023), so the
    easy low-noise steps stop dominating.
    """
    t = torch.randint(0, schedule.train_steps, (x0.shape[0],))
    noise = torch.randn_like(x0)
    a = alphas_cumprod[t].sqrt()[:, None, None, None]
    s = (1 - alphas_cumprod[t]).sqrt()[:, None, None, None]
    x_t = a * x0 + s * noise
    target = noise if schedule.prediction == "epsilon" else a * noise - s * x0
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        output = net(x_t, t.float())  # x_t keeps x0's memory format
    per_image = F.mse_loss(output.float(), target, reduction="none").mean(dim=(1, 2, 3))
    if min_snr > 0:
        snr = alphas_cumprod[t] / (1 - alphas_cumprod[t])
        weight = snr.clamp(max=min_snr) / (snr if schedule.prediction == "epsilon" else snr + 1)
        per_image = per_image * weight
    return per_image.mean()


def optimizer_step(net, optimizer, x0, schedule: Schedule, alphas_cumprod: torch.Tensor, min_snr: float,
                   bf16: bool = True) -> torch.Tensor:
    """One update on a batch: the loss, its gradients clipped to norm 1, an optimizer step. Returns the loss."""
    loss = diffusion_loss(net, x0, schedule, alphas_cumprod, min_snr, bf16=bf16)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    optimizer.step()
    return loss


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


def plot_curve(log: list[dict], path: Path) -> None:
    """Loss (moving average, log scale) against CPU hours, drawn with PIL so training needs no plotting library."""
    from PIL import ImageDraw

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
    image.save(path)


def plot_trajectory(samples: Path, path: Path, rows: int = 8) -> None:
    """The first row of up to `rows` progress grids, evenly spread over the run, labelled by step."""
    from PIL import ImageDraw

    grids = sorted(samples.glob("step-*.png"))
    if not grids:
        return
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
    canvas.save(path)


def parse_args(argv):
    p = argparse.ArgumentParser(prog="raccoon train", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="folder of photos with optional Pascal VOC boxes")
    p.add_argument("--run", type=Path, default=Path("runs/main"), help="checkpoints, samples and logs (git-ignored)")
    p.add_argument("--init", default=None, help="weights folder to start from when the run has no checkpoint "
                   "(default: the shipped weights if present; 'none' for a fresh network)")
    p.add_argument("--minutes", type=float, default=60.0, help="wall-clock budget of this session")
    p.add_argument("--max-steps", type=int, default=None, help="stop at this total step count")
    recipe = "(default: the run's or --init's own, else {})"
    p.add_argument("--batch", type=int, help=recipe.format(RECIPE["batch"]))
    p.add_argument("--lr", type=float, help=recipe.format(RECIPE["lr"]))
    p.add_argument("--warmup", type=int, help="learning-rate warm-up steps " + recipe.format(RECIPE["warmup"]))
    p.add_argument("--ema", type=float, help="EMA decay, warmed up from 0.9 " + recipe.format(RECIPE["ema"]))
    p.add_argument("--jitter", type=float, help="random zoom of up to ±jitter and shift of up to ±jitter/2 of "
                   "the crop, 0 for flips only " + recipe.format(RECIPE["jitter"]))
    p.add_argument("--min-snr", type=float, help="min-SNR-gamma loss weighting, 0 for off "
                   + recipe.format(RECIPE["min_snr"]))
    p.add_argument("--cooldown", type=int, help="end this run with this many steps in which the learning rate "
                   "falls linearly to zero (once finished, a resumed run trains at the recipe's rate again)")
    p.add_argument("--schedule", choices=["linear", "cosine"], default="cosine",
                   help="noise schedule of a fresh network (one from a checkpoint or weights keeps its own)")
    p.add_argument("--prediction", choices=["epsilon", "v"], default="v",
                   help="what a fresh network predicts (one from a checkpoint or weights keeps its own)")
    p.add_argument("--checkpoint-minutes", type=float, default=10.0)
    p.add_argument("--sample-minutes", type=float, default=20.0)
    p.add_argument("--sample-steps", type=int, default=25, help="DDIM steps of the progress grids")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=False,
                   help="NHWC memory format; off by default: GroupNorm's backward is slow in it (see benchmarks/)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    run = args.run
    (run / "samples").mkdir(parents=True, exist_ok=True)

    checkpoint_path = run / "checkpoint.pt"
    if checkpoint_path.exists():
        checkpoint = torch.load(checkpoint_path, weights_only=True)
        model_cfg = UNetConfig.from_dict(checkpoint["model_config"])
        schedule = Schedule(**checkpoint["schedule"])
        net, ema = UNet(model_cfg), UNet(model_cfg)
        net.load_state_dict(checkpoint["net"])
        ema.load_state_dict(checkpoint["ema"])
        record = checkpoint["record"]
        print(f"resuming {checkpoint_path} at step {record['steps']}")
    else:
        schedule = Schedule(args.schedule, args.prediction)
        init = None if args.init == "none" else Path(args.init) if args.init else default_weights_dir()
        try:
            config, state = load_weights(init) if init else (None, None)
        except WeightsError:
            if args.init:
                raise
            config, state = None, None
        if config:
            model_cfg, schedule = UNetConfig.from_dict(config["model"]), Schedule(**config["schedule"])
            record = config["training"]
            print(f"starting from {init} at step {record['steps']}")
        else:
            model_cfg, record = UNetConfig(), {"steps": 0, "cpu_hours": 0.0, "images_seen": 0}
        net, ema = UNet(model_cfg), UNet(model_cfg)
        if state:
            net.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()})
        ema.load_state_dict(net.state_dict())
    for key, default in RECIPE.items():
        record[key] = value if (value := getattr(args, key)) is not None else record.get(key, default)
    if args.cooldown:
        record["cooldown"] = [record["steps"], record["steps"] + args.cooldown]
    elif record.get("cooldown", [0, 0])[1] <= record["steps"]:
        record.pop("cooldown", None)  # finished: the weights record it, a new run does not inherit it
    stop_at = min(args.max_steps or math.inf, record["cooldown"][1] if "cooldown" in record else math.inf)
    torch.manual_seed(args.seed + record["steps"])  # a resumed run draws new batches, not its first ones again
    size = model_cfg.image_size
    jitter = record["jitter"]
    source_size, context = (round(2 * size * JITTER_CONTEXT), JITTER_CONTEXT) if jitter > 0 else (size, 1.0)
    crops = load_crops(args.data, source_size, context,
                       progress=lambda xs: tqdm(xs, desc="reading photos", unit="photo"))
    images = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 127.5 - 1
    print(f"{len(images)} crops from {args.data}")

    record.update(data=str(args.data), crops=len(images), parameters=sum(p.numel() for p in net.parameters()))

    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    net = net.to(memory_format=memory_format).train()
    ema.eval().requires_grad_(False)
    optimizer = torch.optim.AdamW(net.parameters(), lr=record["lr"], weight_decay=0.0)
    if checkpoint_path.exists():
        optimizer.load_state_dict(checkpoint["optimizer"])
    alphas_cumprod = torch.tensor(schedule.alphas_cumprod, dtype=torch.float32)
    log_path = run / "log.jsonl"
    log = [json.loads(line) for line in log_path.read_text().splitlines()] if log_path.exists() else []

    def save():
        state = {k: v.detach().float().numpy() for k, v in ema.state_dict().items()}
        save_pretrained(run / "weights", state, model_cfg.to_dict(), schedule, record)
        torch.save({"net": net.state_dict(), "ema": ema.state_dict(), "optimizer": optimizer.state_dict(),
                    "model_config": model_cfg.to_dict(), "schedule": schedule.to_dict(), "record": record},
                   checkpoint_path)
        log_path.write_text("".join(json.dumps(r) + "\n" for r in log))
        if len(log) > 1:
            plot_curve(log, run / "curve.png")

    def write_samples():
        images = sample(TorchDenoiser(ema, schedule), grid_seeds(16), steps=args.sample_steps)
        image_grid(images).save(run / "samples" / f"step-{record['steps']:06d}.png")
        plot_trajectory(run / "samples", run / "trajectory.png")

    start_wall, start_cpu, cpu_before = time.time(), time.process_time(), record["cpu_hours"]
    last_checkpoint = last_sample = start_wall
    bar = tqdm(desc="training", unit="step", initial=record["steps"], total=None if stop_at == math.inf else stop_at)
    while time.time() - start_wall < args.minutes * 60 and record["steps"] < stop_at:
        step = record["steps"]
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(record, step)
        batch = augment(images[torch.randint(0, len(images), (record["batch"],))], size, jitter)
        batch = batch.contiguous(memory_format=memory_format)
        loss = optimizer_step(net, optimizer, batch, schedule, alphas_cumprod, record["min_snr"])
        decay = min(record["ema"], (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema.parameters(), net.parameters()):
                e.lerp_(p, 1 - decay)
        record["steps"] = step + 1
        record["images_seen"] += record["batch"]
        record["cpu_hours"] = cpu_before + (time.process_time() - start_cpu) / 3600
        log.append({"step": step + 1, "loss": loss.item(), "cpu_hours": record["cpu_hours"]})
        bar.update()
        bar.set_postfix(loss=f"{loss.item():.4f}", cpu_h=f"{record['cpu_hours']:.2f}")
        now = time.time()
        if now - last_checkpoint > args.checkpoint_minutes * 60:
            save()
            last_checkpoint = now
        if now - last_sample > args.sample_minutes * 60:
            write_samples()
            last_sample = now
    bar.close()
    save()
    write_samples()
    print(f"step {record['steps']}, {record['cpu_hours']:.2f} CPU hours; weights in {run / 'weights'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
