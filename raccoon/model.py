"""The denoising U-Net: a noisy 64x64 image and a timestep in, the model's prediction out.

The network knows nothing of the noise schedule; diffusion.py and train.py hand it timesteps.
"""

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class UNetConfig:
    image_size: int = 64
    channels: tuple[int, ...] = (64, 128, 256, 256)  # one entry per level: 64, 32, 16, 8 px
    attention_levels: tuple[int, ...] = (2, 3)  # self-attention at 16x16 and 8x8
    blocks_per_level: int = 1
    head_channels: int = 64
    groups: int = 32
    dropout: float = 0.1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "UNetConfig":
        d = dict(d)
        for key in ("channels", "attention_levels"):
            d[key] = tuple(d[key])
        return cls(**d)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of (float) timesteps, as in the Transformer's positions."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, time_dim: int, cfg: UNetConfig):
        super().__init__()
        self.norm1 = nn.GroupNorm(cfg.groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time = nn.Linear(time_dim, cout)
        self.norm2 = nn.GroupNorm(cfg.groups, cout)
        self.dropout = nn.Dropout(cfg.dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as its skip path (the identity where cin == cout)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


def softmax(x: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis, written out. Exported, it becomes Exp, ReduceSum and Div, which ONNX Runtime
    computes alike on every x86 CPU; its fused Softmax kernel sums in an order set by the vector width, so AVX2
    and AVX-512 machines would paint slightly different raccoons."""
    e = torch.exp(x - x.amax(dim=-1, keepdim=True))
    return e / e.sum(dim=-1, keepdim=True)


class SelfAttention(nn.Module):
    def __init__(self, channels: int, cfg: UNetConfig):
        super().__init__()
        self.heads = channels // cfg.head_channels
        self.norm = nn.GroupNorm(cfg.groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        weights = softmax(q.transpose(-1, -2) @ k * (c // self.heads) ** -0.5)
        out = (v @ weights.transpose(-1, -2)).reshape(b, c, h, w)
        return x + self.proj(out)


class Level(nn.Module):
    """A ResBlock, optionally followed by self-attention."""

    def __init__(self, cin: int, cout: int, time_dim: int, attention: bool, cfg: UNetConfig):
        super().__init__()
        self.res = ResBlock(cin, cout, time_dim, cfg)
        self.attn = SelfAttention(cout, cfg) if attention else nn.Identity()

    def forward(self, x, temb):
        return self.attn(self.res(x, temb))


class UNet(nn.Module):
    """Encoder levels at 64, 32, 16 and 8 px; the decoder mirrors them, each decoder block also fed what
    entered its encoder twin. Average pooling goes down and nearest upsampling goes up, so changing
    resolution adds no parameters."""

    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.cfg = cfg
        base, time_dim = cfg.channels[0], 4 * cfg.channels[0]
        self.time_mlp = nn.Sequential(nn.Linear(base, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
        self.stem = nn.Conv2d(3, base, 3, padding=1)

        self.down = nn.ModuleList()
        skip_channels, ch = [], base
        for level, cout in enumerate(cfg.channels):
            attention = level in cfg.attention_levels
            for _ in range(cfg.blocks_per_level):
                skip_channels.append(ch)
                self.down.append(Level(ch, cout, time_dim, attention, cfg))
                ch = cout

        self.up = nn.ModuleList()
        for level, cout in reversed(list(enumerate(cfg.channels))):
            attention = level in cfg.attention_levels
            for _ in range(cfg.blocks_per_level):
                self.up.append(Level(ch + skip_channels.pop(), cout, time_dim, attention, cfg))
                ch = cout

        self.head = nn.Sequential(nn.GroupNorm(cfg.groups, ch), nn.SiLU(), nn.Conv2d(ch, 3, 3, padding=1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        temb = self.time_mlp(timestep_embedding(t, self.cfg.channels[0]))
        per_level = self.cfg.blocks_per_level
        h = self.stem(x)
        skips = []
        for i, block in enumerate(self.down):
            if i and i % per_level == 0:
                h = F.avg_pool2d(h, 2)
            skips.append(h)
            h = block(h, temb)
        for i, block in enumerate(self.up):
            if i and i % per_level == 0:
                h = F.interpolate(h, scale_factor=2.0, mode="nearest")
            h = block(torch.cat([h, skips.pop()], dim=1), temb)
        return self.head(h)
