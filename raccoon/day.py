"""The day record, its SHA-256 seed, and the noise stream drawn from that seed.

Record format, version 1 (UTF-8, each line ends with "\\n"):

    raccoon-day-record v1
    date YYYY-MM-DD
    <commit SHA, lowercase hex>      one line per commit, sorted, unique

A commit SHA is written in full: 40 hex digits (SHA-1, git's default object format) or 64 (a repository in
git's SHA-256 object format). One record may hold both kinds, sorted as strings. Accepting 64 digits added
records without changing any: a record of 40-digit SHAs is the same bytes, and has the same seed, as ever.

The seed is SHA-256 of those bytes. The noise stream is SHA-256 in counter mode
(block i = SHA-256(seed || i as 8 big-endian bytes)), cut into 64-bit words whose
top 53 bits make uniform floats in (0, 1), turned into standard normals by Box-Muller
in float64 with Python's `math` and rounded to float32. Every step is defined by a
standard or by this file, not by a library's RNG whose stream may change between
versions or platforms.

Weights that choose among candidate paintings (best of K) start candidate k from the noise of
`candidate_seed(seed, k)`: the day's own seed for k = 0, else SHA-256(seed || "candidate" || k as one byte).
Candidate rules 1 and 2 draw them so (they differ in how the candidates are ranked); the weights' config names
its rule.
"""

import datetime
import hashlib
import math
import re
import struct
from dataclasses import dataclass

import numpy as np

RECORD_HEADER = "raccoon-day-record v1"
SHA_PATTERN = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")  # SHA-1 or SHA-256 object names, lowercase
NOT_A_SHA = "not a full commit SHA (40 or 64 hex digits)"


@dataclass(frozen=True)
class DayRecord:
    date: datetime.date
    commits: tuple[str, ...]

    @classmethod
    def of(cls, date: datetime.date, shas) -> "DayRecord":
        """Normalise SHAs (strip, lowercase, de-duplicate, sort); reject anything not a full SHA-1 or SHA-256."""
        clean = set()
        for sha in shas:
            sha = sha.strip().lower()
            if not SHA_PATTERN.fullmatch(sha):
                raise ValueError(f"{NOT_A_SHA}: {sha[:70]!r}")
            clean.add(sha)
        return cls(date, tuple(sorted(clean)))

    def encode(self) -> bytes:
        lines = [RECORD_HEADER, f"date {self.date.isoformat()}", *self.commits]
        return "".join(line + "\n" for line in lines).encode()

    def seed(self) -> bytes:
        return hashlib.sha256(self.encode()).digest()


# How a day's candidates are drawn and ranked. 1: candidate_seed's noises, ranked by the scorer's closeness to the
# training crops; 2: the same noises, ranked by the head learned from blind answers (scorer.fit_head).
CLOSENESS_RULE, HEAD_RULE = 1, 2
CANDIDATE_RULES = (CLOSENESS_RULE, HEAD_RULE)
MAX_CANDIDATES = 16


def candidate_seed(seed: bytes, k: int) -> bytes:
    """The seed of a day's k-th candidate painting under candidate rules 1 and 2 (k = 0 is the day's own)."""
    if not 0 <= k < MAX_CANDIDATES:
        raise ValueError(f"candidate must be between 0 and {MAX_CANDIDATES - 1}, got {k}")
    return seed if k == 0 else hashlib.sha256(seed + b"candidate" + bytes([k])).digest()


def gaussian_noise(seed: bytes, shape) -> np.ndarray:
    """Standard normal float32 noise of `shape`, a pure function of `seed`."""
    count = math.prod(shape)
    words_needed = count + (count % 2)
    blocks = (words_needed + 3) // 4
    stream = b"".join(hashlib.sha256(seed + i.to_bytes(8, "big")).digest() for i in range(blocks))
    words = struct.unpack(f">{words_needed}Q", stream[: 8 * words_needed])
    uniforms = [((w >> 11) + 0.5) / 2.0**53 for w in words]  # strictly inside (0, 1)
    normals = []
    for u1, u2 in zip(uniforms[0::2], uniforms[1::2]):
        radius = math.sqrt(-2.0 * math.log(u1))
        normals += (radius * math.cos(2.0 * math.pi * u2), radius * math.sin(2.0 * math.pi * u2))
    return np.array(normals[:count], dtype=np.float64).astype(np.float32).reshape(shape)
