"""raccoon-action: one raccoon a day, painted by a tiny diffusion model seeded by your commits."""

__version__ = "0.1.0"
