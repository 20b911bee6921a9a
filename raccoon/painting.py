"""The painting API: seeds in, raccoons out; or a whole day's request in, its files and a report out.

`raccoon paint`, the Action's entrypoint, `raccoon eval` and the benchmarks all paint through here. A
`Painter` holds a loaded network and turns seeds into 64x64 images. `paint_day` does a whole day: its
commits, its seed, the painting, the PNG, the GIF and the README block. Every problem a user can fix is a
`PaintError` whose text is one line, raised before any file is written.
"""

import datetime
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from raccoon import commits, render
from raccoon.backends import BACKENDS, load_denoiser
from raccoon.day import DayRecord, gaussian_noise
from raccoon.diffusion import ddim_sample
from raccoon.files import write_atomically
from raccoon.pretrained import WeightsError, default_weights_dir

IMAGE_SHAPE = (1, 3, 64, 64)
ON_ERROR = ("fail", "date-only")  # when commits cannot be read: stop, or paint the raccoon of the date alone


class PaintError(Exception):
    """A request that cannot be painted; str() is the one-line message for the user."""


def to_uint8(image: np.ndarray) -> np.ndarray:
    """A (3, H, W) image in [-1, 1] as (H, W, 3) bytes."""
    return np.clip((image.transpose(1, 2, 0) + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8)


def sample(denoiser, seeds: list[bytes], steps: int = 50, on_step=None) -> np.ndarray:
    """The images of several seeds, drawn as one batch through `denoiser`, as (N, 64, 64, 3) uint8."""
    noise = np.concatenate([gaussian_noise(seed, IMAGE_SHAPE) for seed in seeds])
    return np.stack([to_uint8(x) for x in ddim_sample(denoiser, noise, denoiser.schedule, steps, on_step=on_step)])


class Painter:
    """A weights folder's network, loaded once, painting any number of seeds."""

    def __init__(self, denoiser):
        self.denoiser = denoiser

    @classmethod
    def load(cls, weights: Path | None = None, backend: str = "onnx", threads: int | None = None,
             guidance: float | None = None) -> "Painter":
        """The folder's network (default: the shipped weights), autoguided as its config says unless `guidance`
        is given (1: the network alone)."""
        if backend not in BACKENDS:
            raise PaintError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
        try:
            return cls(load_denoiser(weights or default_weights_dir(), backend, threads, guidance))
        except WeightsError as error:
            raise PaintError(str(error)) from None

    @property
    def guidance(self) -> float:
        return self.denoiser.guidance

    def paint(self, seeds: list[bytes], steps: int = 50, on_step=None) -> np.ndarray:
        """The raccoons of `seeds`, as (N, 64, 64, 3) uint8; `on_step(i, x0)` sees each step's predicted images."""
        try:
            return sample(self.denoiser, seeds, steps, on_step)
        except ValueError as error:  # steps out of range
            raise PaintError(str(error)) from None


def local_zone_name() -> str:
    """This machine's IANA zone: $TZ, else where /etc/localtime points, else UTC."""
    candidates = [os.environ.get("TZ", "").removeprefix(":")]
    try:
        candidates.append(os.readlink("/etc/localtime").partition("zoneinfo/")[2])
    except OSError:
        pass
    for name in candidates:
        try:
            if name:
                return ZoneInfo(name).key
        except (ZoneInfoNotFoundError, ValueError, OSError):
            continue
    return "UTC"


@dataclass(frozen=True)
class DayRequest:
    """What to paint and where to put it. Left as None, the date is today in the zone, and the zone this machine's."""

    date: datetime.date | None = None
    zone: ZoneInfo | None = None
    source: str = "auto"  # see commits.resolve_source
    user: str | None = None  # GitHub login, for the github source
    author: str | None = None  # author email, for the git source
    commits_file: str | None = None  # one SHA a line, "-" for stdin, for the list source
    api_url: str = commits.PUBLIC_API_URL
    on_error: str = "fail"  # one of ON_ERROR
    out: Path = Path("raccoon.png")
    size: int = 256
    gif: Path | None = None  # also write the denoising, step by step
    readme: Path | None = None  # put the image tag between this README's raccoon markers
    steps: int = 50
    backend: str = "onnx"
    guidance: float | None = None  # None: the weights' own
    weights: Path | None = None  # None: the shipped weights


@dataclass(frozen=True)
class DayReport:
    date: str
    zone: str
    seed: str  # SHA-256 of the day record, hex
    commits: int
    source: str  # the source that answered
    incomplete: bool  # GitHub's answer may miss commits
    on_error: str
    fallback: str | None  # why the commits could not be read, when the date-only raccoon was painted
    output: str
    gif: str | None
    readme: str | None
    readme_changed: bool
    size: int
    steps: int
    backend: str
    guidance: float
    alt: str  # alt text for the picture
    warnings: tuple[str, ...]  # one line each
    seconds: dict[str, float] = field(default_factory=dict)  # commits, load, paint, write

    def to_dict(self) -> dict:
        return asdict(self)


def _check_output(path: Path, what: str) -> Path:
    """Fail before painting, not after, when `path` could not or should not be written."""
    if ".git" in path.resolve().parts:
        raise PaintError(f"{what} {path} is inside a .git folder: choose a path in the work tree")
    if path.is_dir():
        raise PaintError(f"{what} {path} is a directory, not a file")
    directory = path.parent
    if not directory.is_dir():
        raise PaintError(f"cannot write {path}: directory {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PaintError(f"cannot write {path}: directory {directory} is not writable")
    return path.resolve()


def check_outputs(request: DayRequest) -> None:
    """Every file the request would write is writable, no two are the same file, and the README has its block."""
    outputs = {"the PNG": request.out, "the GIF": request.gif, "the README": request.readme}
    resolved = {what: _check_output(path, what) for what, path in outputs.items() if path is not None}
    if len(set(resolved.values())) < len(resolved):
        raise PaintError(f"{' and '.join(f'{what} {outputs[what]}' for what in resolved)} must be different files")
    if request.readme is not None:
        try:
            render.read_readme(request.readme)
        except render.ReadmeError as error:
            raise PaintError(str(error)) from None


def read_commits(request: DayRequest, date: datetime.date, zone: ZoneInfo) -> tuple[commits.DayCommits, str | None, list[str]]:
    """The day's commits, why they could not be read (when the request falls back to the date alone), and warnings."""
    if request.on_error not in ON_ERROR:
        raise PaintError(f"on_error must be one of {', '.join(ON_ERROR)}, got {request.on_error!r}")
    if request.commits_file is not None and request.source not in ("auto", "list"):
        raise PaintError(f"--commits goes with --source list, not --source {request.source}")
    source = request.source
    try:
        source = commits.resolve_source(source, user=request.user, commits_file=request.commits_file,
                                        author=request.author)
        day = commits.collect(source, date, zone, commits_file=request.commits_file, author=request.author,
                              user=request.user, api_url=request.api_url)
    except commits.SourceError as error:
        if request.on_error == "fail":
            raise PaintError(str(error)) from None
        return commits.DayCommits(source, ()), str(error), [f"{error}; painted the date-only raccoon instead"]
    warnings = list(day.warnings)
    if day.incomplete:
        warnings.append(f"{day.incomplete}; this raccoon uses the {len(day.shas)} commits found")
    return day, None, warnings


def alt_text(date: datetime.date, commit_count: int) -> str:
    found = "the date alone" if commit_count == 0 else f"{commit_count} commit{'s' * (commit_count != 1)}"
    return f"The raccoon of {date.isoformat()}, painted by a tiny diffusion model from {found}"


def write_files(request: DayRequest, image: np.ndarray, frames: list[np.ndarray], metadata: dict, alt: str) -> bool:
    """The PNG, the GIF and the README block, each written atomically; whether the README changed."""
    try:
        render.save_png(image, request.out, size=request.size, metadata=metadata)
        if request.gif is not None:
            write_atomically(request.gif, render.gif_bytes(frames, size=request.size))
        if request.readme is None:
            return False
        image_src = Path(os.path.relpath(request.out.resolve(), request.readme.resolve().parent)).as_posix()
        return render.update_readme(request.readme, image_src, alt)
    except OSError as error:
        raise PaintError(f"cannot write {error.filename or request.out}: {error.strerror or error}") from None
    except render.ReadmeError as error:
        raise PaintError(str(error)) from None


def paint_day(request: DayRequest, painter: Painter | None = None) -> DayReport:
    """Paint the raccoon of a day and write its files; `painter` defaults to one loaded for the request."""
    if not render.MIN_SIZE <= request.size <= render.MAX_SIZE:
        raise PaintError(f"size must be between {render.MIN_SIZE} and {render.MAX_SIZE}, got {request.size}")
    check_outputs(request)
    zone = request.zone or ZoneInfo(local_zone_name())
    date = request.date or datetime.datetime.now(zone).date()
    seconds, clock = {}, time.perf_counter()

    def lap(name):
        nonlocal clock
        now = time.perf_counter()
        seconds[name], clock = round(now - clock, 3), now

    day, fallback, warnings = read_commits(request, date, zone)
    try:
        seed = DayRecord.of(date, day.shas).seed()
    except ValueError as error:
        raise PaintError(str(error)) from None
    lap("commits")
    painter = painter or Painter.load(request.weights, request.backend, guidance=request.guidance)
    lap("load")
    frames = []
    keep_frame = (lambda i, x0: frames.append(to_uint8(x0[0]))) if request.gif is not None else None
    image = painter.paint([seed], request.steps, on_step=keep_frame)[0]
    lap("paint")
    alt = alt_text(date, len(day.shas))
    readme_changed = write_files(request, image, frames, {"raccoon:date": date.isoformat(), "raccoon:seed": seed.hex()},
                                 alt)
    lap("write")
    return DayReport(
        date=date.isoformat(), zone=zone.key, seed=seed.hex(), commits=len(day.shas), source=day.source,
        incomplete=bool(day.incomplete), on_error=request.on_error, fallback=fallback, output=str(request.out),
        gif=None if request.gif is None else str(request.gif), readme=None if request.readme is None else str(request.readme),
        readme_changed=readme_changed, size=request.size, steps=request.steps, backend=request.backend,
        guidance=painter.guidance, alt=alt, warnings=tuple(warnings), seconds=seconds)
