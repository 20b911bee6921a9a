"""raccoon-action: one raccoon a day, painted by a tiny diffusion model seeded by your commits."""

__version__ = "3.0.1"
