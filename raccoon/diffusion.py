"""The noise schedule and the DDIM sampler, in NumPy so that painting needs no PyTorch.

The schedule is saved in the weights' config (see pretrained.py), so a model is always sampled with
the schedule it was trained with. It owns the forward process (`add_noise`), the network's training
target, and their inverse (`predict_x0`); the network never sees it. The sampler is a plain function:
the network comes in as a `denoise(x, t)` callable and the starting noise is handed in, so it never
draws randomness itself.
"""

from dataclasses import asdict, dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class Schedule:
    """A DDPM noise schedule: x_t = sqrt(alpha-bar_t) x0 + sqrt(1 - alpha-bar_t) noise, for t = 0..T-1.

    Its methods take NumPy arrays (painting) or PyTorch tensors (training; this module never imports torch)
    and compute in their dtype, whatever NumPy's promotion rules: t is one step, or one step per image (an
    integer array of the images' library, on their device).
    """

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
        """alpha-bar_t, the fraction of x_t's variance that is signal, for t = 0..T-1."""
        n = self.train_steps
        if self.kind == "linear":
            betas = np.linspace(1e-4, 0.02, n, dtype=np.float64)
        else:
            f = np.cos((np.arange(n + 1, dtype=np.float64) / n + 0.008) / 1.008 * np.pi / 2) ** 2
            betas = np.clip(1 - f[1:] / f[:-1], 0, 0.999)
        return np.cumprod(1 - betas)

    @cached_property
    def _scale_table(self) -> np.ndarray:
        """sqrt(alpha-bar) and sqrt(1 - alpha-bar) as two rows, taken in float64 before any cast."""
        return np.stack([np.sqrt(self.alphas_cumprod), np.sqrt(1 - self.alphas_cumprod)])

    def noise_level(self, t: int) -> float:
        """sigma = noise / signal at step t (EDM's noise level): the schedule-free scale of how noisy x_t is."""
        return float(np.sqrt((1 - self.alphas_cumprod[t]) / self.alphas_cumprod[t]))

    def scales(self, t, x):
        """sqrt(alpha-bar_t) and sqrt(1 - alpha-bar_t), x_t's shares of x0 and of the noise, in x's library,
        dtype and device, shaped to broadcast against x."""
        table = self._scale_table.astype(x.dtype) if isinstance(x, np.ndarray) else x.new_tensor(self._scale_table)
        signal, noise = table[:, t].reshape(2, -1, *(1,) * (x.ndim - 1))
        return signal, noise

    def add_noise(self, x0, noise, t):
        """x_t: x0 taken to step t by the forward process q(x_t | x0)."""
        a, s = self.scales(t, x0)
        return a * x0 + s * noise

    def target(self, x0, noise, t):
        """What the network learns to output at step t: the noise, or v = sqrt(alpha-bar) noise - sqrt(1 - alpha-bar)
        x0 (Salimans & Ho, 2022), which stays a well-scaled target at the noisiest steps."""
        if self.prediction == "epsilon":
            return noise
        a, s = self.scales(t, x0)
        return a * noise - s * x0

    def predict_x0(self, output, x, t):
        """The clean image implied by the network's output at x_t: the inverse of `add_noise` and `target`."""
        a, s = self.scales(t, x)
        return (x - s * output) / a if self.prediction == "epsilon" else a * x - s * output

    def predict_noise(self, x0, x, t):
        """The noise that takes x0 to x_t."""
        a, s = self.scales(t, x)
        return (x - a * x0) / s


def ddim_timesteps(train_steps: int, steps: int) -> list[int]:
    """The `steps` timesteps DDIM visits, evenly spaced from T-1 down to 0."""
    if not 1 <= steps <= train_steps:
        raise ValueError(f"steps must be between 1 and {train_steps}")
    return [int(t) for t in np.linspace(train_steps - 1, 0, steps).round()]


def ddim_steps(denoise, x: np.ndarray, schedule: Schedule, steps: int = 50, start: int = 0):
    """Deterministic DDIM (eta = 0), one step at a time: yields (i, x0, x) for step i = start, start + 1, ...: the
    predicted clean image and x at the next step (None after the last).

    Each step predicts the clean image, then noises it to the next step with the noise that the current x
    implies. The network sees x in float32; the steps are computed in float64, cast explicitly, so the
    bytes are the same under NumPy 1 and 2 (whose promotion rules differ for a float32 array times a
    float64 scalar). The predicted clean image is clipped to [-1, 1] at each step, which keeps a small
    model's early mistakes from blowing up. A painting paused after step i and started again from its x with
    `start` = i + 1 goes on to the same bits, so a few of many started paintings can be finished (best of K).
    """
    timesteps = ddim_timesteps(schedule.train_steps, steps)
    x = x.astype(np.float32)
    for i in range(start, len(timesteps)):
        t = timesteps[i]
        output = denoise(x, t).astype(np.float64)
        x = x.astype(np.float64)
        x0 = np.clip(schedule.predict_x0(output, x, t), -1, 1)
        if i + 1 == len(timesteps):
            yield i, x0, None
            return
        x = schedule.add_noise(x0, schedule.predict_noise(x0, x, t), timesteps[i + 1]).astype(np.float32)
        yield i, x0, x


def ddim_sample(denoise, noise: np.ndarray, schedule: Schedule, steps: int = 50, on_step=None) -> np.ndarray:
    """The image in [-1, 1] that DDIM paints from `noise` (see `ddim_steps`). `on_step(i, x0)` sees each step's
    predicted image (for the GIF)."""
    for i, x0, _ in ddim_steps(denoise, noise, schedule, steps):
        if on_step is not None:
            on_step(i, x0)
    return x0.astype(np.float32)
