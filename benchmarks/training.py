"""Training throughput: full optimizer steps of train.py's loss, in fp32 eager and in its faster settings.

Each setting gets its own network and optimizer; they take turns, one timed stretch each per round, so
a change in machine load falls on all alike. The batch is random: speed does not depend on the pixels.
"""

import statistics
import time

import torch

from raccoon.diffusion import Schedule
from raccoon.model import UNet, UNetConfig
from raccoon.train import optimizer_step

# name -> (bf16 autocast, channels_last memory format)
SETTINGS = {"fp32 eager": (False, False), "bf16 + channels_last": (True, True), "bf16": (True, False)}
BASELINE = "fp32 eager"


class Trainer:
    """One optimizer step at a time, as train.py takes it."""

    def __init__(self, config: UNetConfig, batch: int, bf16: bool, channels_last: bool):
        torch.manual_seed(0)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.net = UNet(config).to(memory_format=memory_format).train()
        self.optimizer = torch.optim.AdamW(self.net.parameters(), lr=2e-4)
        self.batch = (torch.rand(batch, 3, config.image_size, config.image_size) * 2 - 1).contiguous(
            memory_format=memory_format)
        self.schedule = Schedule()
        self.bf16 = bf16

    def step(self) -> None:
        t = torch.randint(0, self.schedule.train_steps, (len(self.batch),))
        noise = torch.randn_like(self.batch)
        optimizer_step(self.net, self.optimizer, self.schedule, self.batch, t, noise, 0.0, bf16=self.bf16)


def run(config: UNetConfig, batch: int = 32, rounds: int = 3, steps_per_round: int = 3, warmup: int = 2) -> dict:
    trainers = {name: Trainer(config, batch, *flags) for name, flags in SETTINGS.items()}
    for trainer in trainers.values():
        for _ in range(warmup):
            trainer.step()
    rates = {name: [] for name in trainers}
    for _ in range(rounds):
        for name, trainer in trainers.items():
            start = time.perf_counter()
            for _ in range(steps_per_round):
                trainer.step()
            rates[name].append(batch * steps_per_round / (time.perf_counter() - start))
    result = {"batch": batch, "threads": torch.get_num_threads(), "rounds": rounds, "steps_per_round": steps_per_round}
    for name, values in rates.items():
        result[name] = {"images_per_second": {"median": statistics.median(values), "min": min(values), "max": max(values)}}
    baseline = result[BASELINE]["images_per_second"]["median"]
    for name in rates:
        result[name]["speedup"] = result[name]["images_per_second"]["median"] / baseline
    return result


def table(result: dict) -> str:
    rows = [f"Training throughput, batch {result['batch']} of 64x64 images, {result['threads']} threads, "
            f"{result['rounds']} rounds of {result['steps_per_round']} optimizer steps: median (min to max).", "",
            "| setting | images per second | vs fp32 eager |", "|---|---|---|"]
    for name in SETTINGS:
        r = result[name]["images_per_second"]
        rows.append(f"| {name} | {r['median']:.1f} ({r['min']:.1f} to {r['max']:.1f}) | {result[name]['speedup']:.2f}x |")
    return "\n".join(rows)
