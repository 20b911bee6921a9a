"""The noise schedule and the DDIM sampler, in NumPy so that painting needs no PyTorch.

The schedule is saved in the weights' config (see runtime.py), so a model is always sampled with
the schedule it was trained with. The sampler is a plain function: the network comes in as a
`denoise(x, t)` callable and the starting noise is handed in, so it never draws randomness itself.
"""

from dataclasses import asdict, dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class Schedule:
    kind: str = "linear"  # "linear" (DDPM's betas 1e-4..0.02) or "cosine" (improved DDPM)
    prediction: str = "epsilon"  # what the network predicts: "epsilon" (the noise) or "v"
    train_steps: int = 1000

    def __post_init__(self):
        if self.kind not in ("linear", "cosine") or self.prediction not in ("epsilon", "v"):
            raise ValueError(f"unknown schedule {self.kind!r} / prediction {self.prediction!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @cached_property
    def alphas_cumprod(self) -> np.ndarray:
        """Signal fraction alpha-bar of x_t = sqrt(alpha-bar) x_0 + sqrt(1 - alpha-bar) noise, for t = 0..T-1."""
        n = self.train_steps
        if self.kind == "linear":
            betas = np.linspace(1e-4, 0.02, n, dtype=np.float64)
        else:
            f = np.cos((np.arange(n + 1, dtype=np.float64) / n + 0.008) / 1.008 * np.pi / 2) ** 2
            betas = np.clip(1 - f[1:] / f[:-1], 0, 0.999)
        return np.cumprod(1 - betas)

    def noise_level(self, t: int) -> float:
        """sigma = noise / signal at step t (EDM's noise level): the schedule-free scale of how noisy x_t is."""
        return float(np.sqrt((1 - self.alphas_cumprod[t]) / self.alphas_cumprod[t]))

    def predict_x0(self, output: np.ndarray, x: np.ndarray, t: int) -> np.ndarray:
        """The clean image implied by the network's output at step t."""
        a = np.sqrt(self.alphas_cumprod[t])
        s = np.sqrt(1 - self.alphas_cumprod[t])
        return (x - s * output) / a if self.prediction == "epsilon" else a * x - s * output


def ddim_timesteps(train_steps: int, steps: int) -> list[int]:
    """The `steps` timesteps DDIM visits, evenly spaced from T-1 down to 0."""
    if not 1 <= steps <= train_steps:
        raise ValueError(f"steps must be between 1 and {train_steps}")
    return [int(t) for t in np.linspace(train_steps - 1, 0, steps).round()]


def ddim_sample(denoise, noise: np.ndarray, schedule: Schedule, steps: int = 50, on_step=None) -> np.ndarray:
    """Deterministic DDIM (eta = 0) from `noise` to an image in [-1, 1].

    The predicted clean image is clipped to [-1, 1] at each step, which keeps a small model's
    early mistakes from blowing up. `on_step(i, x0)` sees each step's predicted image (for the GIF).
    """
    x = noise.astype(np.float32)
    timesteps = ddim_timesteps(schedule.train_steps, steps)
    for i, t in enumerate(timesteps):
        x0 = np.clip(schedule.predict_x0(denoise(x, t), x, t), -1, 1)
        if on_step is not None:
            on_step(i, x0)
        if i + 1 == len(timesteps):
            return x0.astype(np.float32)
        a_next = schedule.alphas_cumprod[timesteps[i + 1]]
        eps = (x - np.sqrt(schedule.alphas_cumprod[t]) * x0) / np.sqrt(1 - schedule.alphas_cumprod[t])
        x = (np.sqrt(a_next) * x0 + np.sqrt(1 - a_next) * eps).astype(np.float32)
