"""The painting API: seeds in, raccoons out; or a whole day's (or month's) request in, its files and a report out.

`raccoon paint`, `raccoon calendar`, `raccoon morph`, the Action's entrypoint, `raccoon eval` and the benchmarks
all paint through here. A `Painter` holds a loaded network and turns seeds into 64x64 images, any number at
once, each the same as painted alone. `paint_day` does a whole day: its commits, its seed, the painting, the
PNG, the GIF and the README block; `paint_month` does every day of a month from one read of the commits,
painted as one batch, for the calendar. Every problem a user can fix is a `PaintError` whose text is one line,
raised before any file is written.
"""

import contextlib
import datetime
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
from PIL import Image

from raccoon import commits, mosaic, render
from raccoon.backends import BACKENDS, load_denoiser
from raccoon.day import HEAD_RULE, MAX_CANDIDATES, DayRecord, candidate_seed, gaussian_noise
from raccoon.diffusion import Schedule, ddim_sample, ddim_steps, ddim_timesteps
from raccoon.files import write_atomically
from raccoon.pretrained import WeightsError, default_weights_dir, read_config, shipped_candidates, shipped_guidance
from raccoon.scorer import COPY_COSINE, Scorer

IMAGE_SHAPE = (1, 3, 64, 64)
ON_ERROR = ("fail", "date-only")  # when commits cannot be read: stop, or paint the raccoon of the date alone


class PaintError(Exception):
    """A request that cannot be painted; str() is the one-line message for the user."""


def to_uint8(image: np.ndarray) -> np.ndarray:
    """A (3, H, W) image in [-1, 1] as (H, W, 3) bytes."""
    return np.clip((image.transpose(1, 2, 0) + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8)


def to_uint8_batch(images: np.ndarray) -> np.ndarray:
    return np.stack([to_uint8(x) for x in images])


def starting_noise(seeds: list[bytes]) -> np.ndarray:
    """The (N, 3, 64, 64) noise the painting of each seed starts from."""
    return np.concatenate([gaussian_noise(seed, IMAGE_SHAPE) for seed in seeds])


def sample(denoiser, noise: np.ndarray, steps: int = 50, on_step=None) -> np.ndarray:
    """The images painted from a batch of starting noise through `denoiser`, as (N, 64, 64, 3) uint8."""
    return to_uint8_batch(ddim_sample(denoiser, noise, denoiser.schedule, steps, on_step=on_step))


def choice_step(schedule: Schedule, steps: int, noise_level: float) -> int:
    """The step after which best of K chooses: the first whose noise level is at most `noise_level` (the choice is
    set by how far the painting has come, whatever the number of steps), else the last."""
    levels = [schedule.noise_level(t) for t in ddim_timesteps(schedule.train_steps, steps)]
    return next((i for i, level in enumerate(levels) if level <= noise_level), steps - 1)


def sample_best_of(denoiser, scorer: Scorer, noise: np.ndarray, steps: int, noise_level: float, on_step=None,
                   progress=None) -> tuple[np.ndarray, np.ndarray]:
    """Paint the best of K candidates for each of N paintings: `noise` is (K, N, 3, 64, 64), candidate 0 first.

    Every candidate is painted up to the choice step (`choice_step`); the scorer scores each one's predicted
    image there, and only each painting's best is painted to the end: K times the first steps, once the rest.
    A finished painting that is a near-copy of a training crop is not kept: the next best candidate is finished
    instead, and so on (if all K are, the least close is kept). Each painting is the same bits as its candidate's
    noise painted alone. Returns the (N, 64, 64, 3) images and the candidate each came from.
    `on_step(i, x0)` sees the kept paintings' predicted images at every step, once they are chosen;
    `progress()` is called once a step.
    """
    k, n = noise.shape[:2]
    choose_at = choice_step(denoiser.schedule, steps, noise_level)
    early = []  # every candidate's predictions up to the choice, kept for on_step
    for i, x0, x in ddim_steps(denoiser, noise.reshape(k * n, *noise.shape[2:]), denoiser.schedule, steps):
        if on_step is not None:
            early.append(x0.reshape(k, n, *x0.shape[1:]))
        if progress is not None:
            progress()
        if i == choose_at:
            break
    x0 = x0.reshape(k, n, *x0.shape[1:])
    x = None if x is None else x.reshape(k, n, *x.shape[1:])
    scores = scorer.rank(to_uint8_batch(x0.reshape(k * n, *x0.shape[2:]))).reshape(k, n)
    ranked = np.argsort(-scores, axis=0, kind="stable")
    images, chosen, closeness = [None] * n, np.zeros(n, int), np.full(n, np.inf)
    late = [[] for _ in range(n)]  # the kept paintings' predictions after the choice, kept for on_step
    todo = list(range(n))
    for rank in range(k):
        picks = ranked[rank, todo]
        final, predictions = x0[picks, todo], []
        if x is not None:  # the choice came before the last step: finish the picks
            for _, final, _ in ddim_steps(denoiser, x[picks, todo], denoiser.schedule, steps, start=choose_at + 1):
                if on_step is not None:
                    predictions.append(final)
                if progress is not None and rank == 0:
                    progress()
        painted = to_uint8_batch(final.astype(np.float32))  # as ddim_sample ends
        for row, (j, pick, value) in enumerate(zip(todo, picks, scorer.closeness(painted))):
            if value < closeness[j]:
                images[j], chosen[j], closeness[j] = painted[row], pick, value
                late[j] = [prediction[row] for prediction in predictions]
        todo = [j for j in todo if closeness[j] >= COPY_COSINE]
        if not todo:
            break
    if on_step is not None:
        for i, step in enumerate(early):
            on_step(i, step[chosen, np.arange(n)])
        for i in range(len(late[0])):
            on_step(choose_at + 1 + i, np.stack([kept[i] for kept in late]))
    return np.stack(images), chosen


@dataclass(frozen=True)
class Choice:
    """Best of K, as a weights folder ships it: how many candidates, the noise level at which the scorer picks."""

    scorer: Scorer
    candidates: int
    noise_level: float


@dataclass(frozen=True)
class Paintings:
    images: np.ndarray  # (N, 64, 64, 3) uint8
    candidates: np.ndarray  # (N,) the candidate each painting started from (0: the day's own noise)
    noise: np.ndarray  # (N, 3, 64, 64) the noise each started from


class Painter:
    """A weights folder's network (and its choice among candidates, if it ships one), loaded once, painting any
    number of seeds."""

    def __init__(self, denoiser, choice: Choice | None = None):
        self.denoiser, self.choice = denoiser, choice
        self._painted = {}  # (seed, steps): (image, candidate, noise), so a day asked for twice is painted once

    @classmethod
    def load(cls, weights: Path | None = None, backend: str = "onnx", threads: int | None = None,
             guidance: float | None = None, candidates: int | None = None) -> "Painter":
        """The folder's network (default: the shipped weights), autoguided as its config says unless `guidance`
        is given (1: the network alone), choosing among as many candidates as its config says unless `candidates`
        is given (1: the day's own noise, and the scorer is not even read)."""
        if backend not in BACKENDS:
            raise PaintError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
        directory = weights or default_weights_dir()
        try:
            return cls(load_denoiser(directory, backend, threads, guidance), load_choice(directory, candidates))
        except WeightsError as error:
            raise PaintError(str(error)) from None
        except ModuleNotFoundError as error:
            if backend != "torch" or (error.name or "").partition(".")[0] != "torch":
                raise
            raise PaintError("--backend torch needs PyTorch: pip install 'raccoon-action[train]'") from None

    @property
    def guidance(self) -> float:
        return self.denoiser.guidance

    @property
    def candidates(self) -> int:
        return self.choice.candidates if self.choice else 1

    def paint(self, seeds: list[bytes], steps: int = 50, on_step=None, progress=None) -> Paintings:
        """The raccoons of `seeds`, painted as one batch: each the same as painted alone. `on_step(i, x0)` sees each
        step's predicted images, `progress()` is called once a step. When this painter has painted every one of the
        seeds before, they are not painted again, unless `on_step` wants to see their steps (the Action paints a
        month, then its day)."""
        self.check_steps(steps)
        if on_step is None and seeds and all((seed, steps) in self._painted for seed in seeds):
            return Paintings(*(np.stack(parts) for parts in zip(*(self._painted[seed, steps] for seed in seeds))))
        if self.choice is None:
            noise = starting_noise(seeds)
            painted = Paintings(self.paint_noise(noise, steps, on_step, progress), np.zeros(len(seeds), int), noise)
        else:
            noise = np.stack([starting_noise([candidate_seed(seed, k) for seed in seeds])
                              for k in range(self.choice.candidates)])
            images, chosen = sample_best_of(self.denoiser, self.choice.scorer, noise, steps, self.choice.noise_level,
                                            on_step, progress)
            painted = Paintings(images, chosen, noise[chosen, np.arange(len(seeds))])
        for seed, *parts in zip(seeds, painted.images, painted.candidates, painted.noise):
            self._painted[seed, steps] = tuple(np.copy(part) for part in parts)
        return painted

    def paint_noise(self, noise: np.ndarray, steps: int = 50, on_step=None, progress=None) -> np.ndarray:
        """The raccoons painted from a batch of starting noise (N, 3, 64, 64), with no choice: (N, 64, 64, 3)."""

        def each_step(i, x0):
            if on_step is not None:
                on_step(i, x0)
            if progress is not None:
                progress()

        self.check_steps(steps)
        return sample(self.denoiser, noise, steps, each_step)

    def check_steps(self, steps: int) -> None:
        """Fail in one line, before any work, when the network's schedule cannot be sampled in `steps` steps."""
        try:
            ddim_timesteps(self.denoiser.schedule.train_steps, steps)
        except ValueError as error:
            raise PaintError(str(error)) from None


def load_choice(directory: Path, candidates: int | None = None) -> Choice | None:
    """The folder's best of K (None: it ships none, or `candidates` is 1), with `candidates` instead of its K if
    given."""
    config = read_config(directory)
    if candidates is not None and not 1 <= candidates <= MAX_CANDIDATES:
        raise PaintError(f"candidates must be between 1 and {MAX_CANDIDATES}, got {candidates}")
    candidates = candidates or shipped_candidates(config)
    if candidates == 1:
        return None
    if "choice" not in config:
        raise WeightsError(f"the weights at {directory} ship no scorer to choose among candidates, so candidates "
                           "must be 1")
    return Choice(Scorer.load(directory, head=config["choice"]["rule"] == HEAD_RULE), candidates,
                  config["choice"]["noise_level"])


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
class CommitSource:
    """Where the commits come from (see commits.resolve_source), and what to do when they cannot be read."""

    source: str = "auto"
    user: str | None = None  # GitHub login, for the github source
    author: str | None = None  # author email, for the git source
    commits_file: str | None = None  # one SHA a line, "-" for stdin, for the list source
    api_url: str = commits.PUBLIC_API_URL
    on_error: str = "fail"  # one of ON_ERROR

    def read(self, first: datetime.date, last: datetime.date, zone: ZoneInfo) -> "Commits":
        """The commits of the days first..last, or with on_error date-only, none and why."""
        if self.on_error not in ON_ERROR:
            raise PaintError(f"on_error must be one of {', '.join(ON_ERROR)}, got {self.on_error!r}")
        if self.commits_file is not None and self.source not in ("auto", "list"):
            raise PaintError(f"--commits goes with --source list, not --source {self.source}")
        source = self.source
        try:
            source = commits.resolve_source(source, user=self.user, commits_file=self.commits_file, author=self.author)
            found = commits.collect_range(source, first, last, zone, commits_file=self.commits_file,
                                          author=self.author, user=self.user, api_url=self.api_url)
        except commits.SourceError as error:
            if self.on_error == "fail":
                raise PaintError(str(error)) from None
            days = "the date-only raccoon" if first == last else f"the date-only raccoons of {first} to {last}"
            empty = commits.RangeCommits.without_commits(source, first, last)
            return Commits(empty, str(error), (f"{error}; painted {days} instead",))
        warnings = found.warnings
        if found.incomplete:
            warnings += (f"{found.incomplete}; these raccoons use the commits found",)
        return Commits(found, None, warnings)


@dataclass(frozen=True)
class Commits:
    found: commits.RangeCommits
    fallback: str | None  # why the commits could not be read, when the date-only raccoons are painted
    warnings: tuple[str, ...]

    def seed(self, day: datetime.date) -> bytes:
        try:
            return DayRecord.of(day, self.found.days[day]).seed()
        except ValueError as error:
            raise PaintError(str(error)) from None


@dataclass(frozen=True)
class Request:
    """What every painting request holds: where the day is, where its commits come from, and how to paint.
    Left as None, the zone is this machine's, the guidance the weights' own and the weights the shipped ones."""

    zone: ZoneInfo | None = None
    commits: CommitSource = CommitSource()
    steps: int = 50
    backend: str = "onnx"
    guidance: float | None = None
    weights: Path | None = None
    candidates: int | None = None  # best of K: None for the weights' own K, 1 for the day's own noise alone

    def the_zone(self) -> ZoneInfo:
        return self.zone or ZoneInfo(local_zone_name())

    def painter(self) -> Painter:
        return Painter.load(self.weights, self.backend, guidance=self.guidance, candidates=self.candidates)

    def painting_key(self) -> str:
        """What sets a raccoon besides its seed, as a short digest: the weights' parameters and settings, and the
        request's steps, backend, guidance and candidates. An archived raccoon is reused only under the same key."""
        try:
            config = read_config(self.weights or default_weights_dir())
        except WeightsError as error:
            raise PaintError(str(error)) from None
        # The parameters and what the config says of them; not the ONNX graphs, which are exported from the config's
        # network and can be exported anew without changing a painting.
        settings = {name: config.get(name) for name in ("model", "schedule", "guide", "choice")}
        settings["parameters"] = {name: digest for name, digest in config["files"].items()
                                  if not name.endswith(".onnx")}
        settings.update(steps=self.steps, backend=self.backend,
                        guidance=shipped_guidance(config) if self.guidance is None else self.guidance,
                        candidates=shipped_candidates(config) if self.candidates is None else self.candidates)
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class DayRequest(Request):
    """A day's raccoon and where to put it. Left as None, the date is today in the zone."""

    date: datetime.date | None = None
    out: Path = Path("raccoon.png")
    size: int = 256
    gif: Path | None = None  # also write the denoising, step by step
    readme: Path | None = None  # put the image tag between this README's raccoon markers
    calendar: Path | None = None  # the README block shows this month's calendar too: its light and dark variants


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
    candidates: int  # best of how many
    candidate: int  # the one painted (0: the day's own noise)
    alt: str  # alt text for the picture
    warnings: tuple[str, ...]  # one line each
    seconds: dict[str, float] = field(default_factory=dict)  # commits, load, paint, write

    def to_dict(self) -> dict:
        return asdict(self)


def _check_output(path: Path, what: str) -> Path:
    """Fail before painting, not after, when `path` could not or should not be written."""
    with writing(path):  # a name too long, a loop of links: one line, as a failed write gets
        if ".git" in path.resolve().parts:
            raise PaintError(f"{what} {path} is inside a .git folder: choose a path in the work tree")
        if path.is_dir():
            raise PaintError(f"{what} {path} is a directory, not a file")
        directory = path.parent
        if not directory.is_dir():
            if directory.exists():
                raise PaintError(f"cannot write {path}: {directory} is a file, not a directory")
            raise PaintError(f"cannot write {path}: directory {directory} does not exist")
        if not os.access(directory, os.W_OK | os.X_OK):
            raise PaintError(f"cannot write {path}: directory {directory} is not writable")
        return path.resolve()


def check_outputs(outputs: dict[str, Path | None], readme: Path | None = None) -> None:
    """Every file a request would write (`outputs`, named for the user) is writable, no two are the same file,
    and the README, if any, has its block."""
    outputs = {what: path for what, path in {**outputs, "the README": readme}.items() if path is not None}
    resolved = {what: _check_output(path, what) for what, path in outputs.items()}
    if len(set(resolved.values())) < len(resolved):
        raise PaintError(f"{' and '.join(f'{what} {path}' for what, path in outputs.items())} must be different files")
    if readme is not None:
        try:
            render.read_readme(readme)
        except render.ReadmeError as error:
            raise PaintError(str(error)) from None


def check_size(size: int) -> None:
    """Fail before painting, not when writing, on a size the PNG cannot have."""
    try:
        render.check_size(size)
    except ValueError as error:
        raise PaintError(str(error)) from None


def alt_text(date: datetime.date, commit_count: int) -> str:
    found = "the date alone" if commit_count == 0 else f"{commit_count} commit{'s' * (commit_count != 1)}"
    return f"The raccoon of {date.isoformat()}, painted by a tiny diffusion model from {found}"


def png_metadata(date: datetime.date, seed: bytes, key: str) -> dict[str, str]:
    """The text chunks of every raccoon PNG: which day, which seed, painted how (`Request.painting_key`); the
    archive reads the seed and the key back."""
    return {"raccoon:date": date.isoformat(), "raccoon:seed": seed.hex(), "raccoon:painting": key}


def _relative_src(path: Path, readme: Path) -> str:
    return Path(os.path.relpath(path.resolve(), readme.resolve().parent)).as_posix()


@contextlib.contextmanager
def writing(path: Path):
    """Report a failed write (disk full, permissions) as the one-line PaintError it is for the user."""
    try:
        yield
    except OSError as error:
        raise PaintError(f"cannot write {path}: {error.strerror or error}") from None  # not the temporary file's name


def readme_html(request: DayRequest, date: datetime.date, alt: str) -> str:
    """The README block: the day's raccoon, and the month's calendar in the reader's colour scheme if asked for."""
    block = render.readme_block(_relative_src(request.out, request.readme), alt)
    if request.calendar is not None:
        light, dark = (_relative_src(variant, request.readme) for variant in mosaic.theme_variants(request.calendar))
        month = f"{mosaic.MONTHS[date.month - 1]} {date.year}"
        block += "\n" + render.picture_block(light, dark, f"The raccoons of {month}, a calendar")
    return block


def write_files(request: DayRequest, image: np.ndarray, frames: list[np.ndarray], date: datetime.date, seed: bytes,
                alt: str) -> bool:
    """The PNG, the GIF and the README block, each written atomically; whether the README changed."""
    with writing(request.out):
        metadata = png_metadata(date, seed, request.painting_key())
        render.save_png(image, request.out, size=request.size, metadata=metadata)
    if request.gif is not None:
        with writing(request.gif):
            write_atomically(request.gif, render.gif_bytes(frames, size=request.size))
    if request.readme is None:
        return False
    with writing(request.readme):
        try:
            return render.update_readme(request.readme, readme_html(request, date, alt))
        except render.ReadmeError as error:
            raise PaintError(str(error)) from None


class Stopwatch:
    """Seconds spent in each named phase, in order."""

    def __init__(self):
        self.seconds, self._last = {}, time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name], self._last = round(now - self._last, 3), now


def paint_day(request: DayRequest, painter: Painter | None = None, found: Commits | None = None) -> DayReport:
    """Paint the raccoon of a day and write its files; `painter` defaults to one loaded for the request, `found`
    (commits already read for a range holding the day, such as its month's) to a read of the day's commits."""
    check_size(request.size)
    check_outputs({"the PNG": request.out, "the GIF": request.gif}, request.readme)
    zone = request.the_zone()
    date = request.date or datetime.datetime.now(zone).date()
    watch = Stopwatch()
    found = found or request.commits.read(date, date, zone)
    seed, shas = found.seed(date), found.found.days[date]
    watch.lap("commits")
    painter = painter or request.painter()
    watch.lap("load")
    frames = []
    keep_frame = (lambda i, x0: frames.append(to_uint8(x0[0]))) if request.gif is not None else None
    painted = painter.paint([seed], request.steps, on_step=keep_frame)
    image = painted.images[0]
    watch.lap("paint")
    alt = alt_text(date, len(shas))
    readme_changed = write_files(request, image, frames, date, seed, alt)
    watch.lap("write")
    return DayReport(
        date=date.isoformat(), zone=zone.key, seed=seed.hex(), commits=len(shas), source=found.found.source,
        incomplete=bool(found.found.incomplete), on_error=request.commits.on_error, fallback=found.fallback,
        output=str(request.out), gif=None if request.gif is None else str(request.gif),
        readme=None if request.readme is None else str(request.readme), readme_changed=readme_changed,
        size=request.size, steps=request.steps, backend=request.backend, guidance=painter.guidance,
        candidates=painter.candidates, candidate=int(painted.candidates[0]), alt=alt,
        warnings=found.warnings, seconds=watch.seconds)


# --------------------------------------------------------------------------------------------------- month


@dataclass(frozen=True)
class MonthRequest(Request):
    """A month of raccoons as a calendar. Left as None, the month is this one and today is today in the zone;
    days after today stay empty."""

    month: datetime.date | None = None  # any day of the month
    out: Path = Path("calendar.png")
    theme: str = "light"  # one of mosaic.THEMES
    week_start: str = "monday"  # one of mosaic.WEEK_STARTS
    variants: bool = False  # also write OUT-light.png and OUT-dark.png, for a README's <picture>
    archive: Path | None = None  # keep each finished day as ARCHIVE/YYYY/MM/DD.png, and reuse it
    today: datetime.date | None = None


@dataclass(frozen=True)
class MonthDay:
    date: str
    seed: str
    commits: int
    archived: bool  # read back from the archive instead of painted


@dataclass(frozen=True)
class MonthReport:
    month: str  # YYYY-MM
    zone: str
    source: str
    on_error: str
    fallback: str | None
    days: tuple[MonthDay, ...]  # the days up to today, in order
    outputs: tuple[str, ...]  # the calendar, then its variants
    guidance: float | None  # None when every day came from the archive
    warnings: tuple[str, ...]
    seconds: dict[str, float] = field(default_factory=dict)  # commits, archive, load, paint, write

    def to_dict(self) -> dict:
        return asdict(self)


def archive_path(archive: Path, day: datetime.date) -> Path:
    return archive / f"{day.year:04d}" / f"{day.month:02d}" / f"{day.day:02d}.png"


def archived_raccoon(archive: Path, day: datetime.date, seed: bytes, key: str) -> np.ndarray | None:
    """The day's raccoon from the archive if it holds it for this very seed (the day's commits may have changed
    since it was archived) painted the same way (new weights paint every day anew), else None."""
    path = archive_path(archive, day)
    try:
        with Image.open(path) as picture:
            if (picture.text.get("raccoon:seed"), picture.text.get("raccoon:painting")) != (seed.hex(), key) \
                    or picture.size != (64, 64) or picture.mode != "RGB":
                return None
            return np.asarray(picture)
    except (OSError, ValueError, Image.DecompressionBombError):  # missing, not a PNG, or not ours: paint it again
        return None


def archive_raccoon(archive: Path, day: datetime.date, seed: bytes, key: str, image: np.ndarray) -> None:
    """Keep a finished day's raccoon: the very PNG `raccoon paint --size 64` writes for it."""
    path = archive_path(archive, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    render.save_png(image, path, size=64, metadata=png_metadata(day, seed, key))


def month_span(request: MonthRequest) -> tuple[datetime.date, datetime.date, datetime.date]:
    """The month's first day, its last day to paint (today, if the month is not over) and today, in its zone."""
    zone = request.the_zone()
    today = request.today or datetime.datetime.now(zone).date()
    first = (request.month or today).replace(day=1)
    if first > today:
        raise PaintError(f"{first.isoformat()[:7]} has not begun in {zone.key}: nothing to paint yet")
    return first, min(mosaic.last_day(first), today), today


def paint_month(request: MonthRequest, painter: Painter | None = None, progress=None,
                found: Commits | None = None) -> MonthReport:
    """Paint every day of a month up to today from one read of its commits (`found`, if already read), as one
    batch (the archive's days read back instead), and write the calendar. `progress()` is called once a
    denoising step."""
    zone = request.the_zone()
    first, last, today = month_span(request)
    if request.theme not in mosaic.THEMES:
        raise PaintError(f"theme must be one of {', '.join(mosaic.THEMES)}, got {request.theme!r}")
    if request.week_start not in mosaic.WEEK_STARTS:
        raise PaintError(f"week start must be one of {', '.join(mosaic.WEEK_STARTS)}, got {request.week_start!r}")
    variants = mosaic.theme_variants(request.out) if request.variants else ()
    check_outputs({"the calendar": request.out, **{f"the {variant.stem} calendar": variant for variant in variants}})
    if request.archive is not None:
        if not request.archive.is_dir():
            raise PaintError(f"archive {request.archive} is not a directory")
        if not os.access(request.archive, os.W_OK | os.X_OK):  # found now, not after a month of painting
            raise PaintError(f"archive {request.archive} is not writable")
        folder = archive_path(request.archive, first).parent  # the month's days are kept here
        if not folder.resolve().is_relative_to(request.archive.resolve()):
            raise PaintError(f"archive: {folder} is a link leading out of {request.archive}; the archive does not "
                             "write through links")
    watch = Stopwatch()
    found = found or request.commits.read(first, last, zone)
    days = commits.days_between(first, last)
    seeds = {day: found.seed(day) for day in days}
    watch.lap("commits")
    images, key = {}, request.painting_key()
    if request.archive is not None:
        for day in days[:-1] if last == today else days:  # today is not over: always painted afresh
            image = archived_raccoon(request.archive, day, seeds[day], key)
            if image is not None:
                images[day] = image
    archived = set(images)
    watch.lap("archive")
    to_paint = [day for day in days if day not in images]
    painter = painter or (request.painter() if to_paint else None)
    watch.lap("load")
    if to_paint:
        painted = painter.paint([seeds[day] for day in to_paint], request.steps, progress=progress)
        images.update(zip(to_paint, painted.images))
    watch.lap("paint")
    if request.archive is not None:
        for day in to_paint:
            if day < today:
                with writing(archive_path(request.archive, day)):
                    archive_raccoon(request.archive, day, seeds[day], key, images[day])
    counts = {day: len(found.found.days[day]) for day in days}
    for path, theme in ((request.out, request.theme), *zip(variants, ("light", "dark"))):
        with writing(path):
            write_atomically(path, mosaic.png(first, images, counts, theme=theme, week_start=request.week_start))
    watch.lap("write")
    return MonthReport(
        month=first.isoformat()[:7], zone=zone.key, source=found.found.source, on_error=request.commits.on_error,
        fallback=found.fallback,
        days=tuple(MonthDay(day.isoformat(), seeds[day].hex(), counts[day], day in archived) for day in days),
        outputs=tuple(str(path) for path in (request.out, *variants)),
        guidance=painter.guidance if painter else None, warnings=found.warnings, seconds=watch.seconds)


# --------------------------------------------------------------------------------------------------- morph


def slerp(start: np.ndarray, end: np.ndarray, fraction: float) -> np.ndarray:
    """The point `fraction` of the way along the great circle from `start` to `end` (Shoemake's slerp), in
    float64 and back to float32. Gaussian noise lives near a sphere: a straight line between two noises passes
    through weaker noise than either, which the network paints as grey mush; the arc keeps its strength."""
    a, b = start.astype(np.float64), end.astype(np.float64)
    cosine = np.dot(a.ravel(), b.ravel()) / (np.linalg.norm(a) * np.linalg.norm(b))
    angle = np.arccos(np.clip(cosine, -1.0, 1.0))
    if angle < 1e-6:  # the same noise: nothing to walk
        return start.copy()
    mixed = (np.sin((1 - fraction) * angle) * a + np.sin(fraction * angle) * b) / np.sin(angle)
    return mixed.astype(np.float32)


@dataclass(frozen=True)
class MorphRequest(Request):
    """The walk from one day's raccoon to another's, as a looping GIF."""

    start: datetime.date | None = None  # None: yesterday in the zone
    end: datetime.date | None = None  # None: today in the zone
    frames: int = 16  # paintings from one day to the other, both included
    out: Path = Path("morph.gif")
    size: int = 256


@dataclass(frozen=True)
class MorphReport:
    start: str
    end: str
    zone: str
    seeds: tuple[str, str]
    frames: int
    output: str
    warnings: tuple[str, ...]
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


MORPH_FRAME_MS, MORPH_HOLD_MS = 120, 1500


def paint_morph(request: MorphRequest, painter: Painter | None = None, progress=None) -> MorphReport:
    """Paint the frames between two days' starting noises (the first and last are those days' raccoons, byte for
    byte: with best of K, the chosen candidates' noises), there and back again so the GIF loops without a jump,
    each day held a moment. `progress()` is called once a denoising step."""
    check_size(request.size)
    if not 2 <= request.frames <= 64:
        raise PaintError(f"frames must be between 2 and 64, got {request.frames}")
    check_outputs({"the GIF": request.out})
    zone = request.the_zone()
    today = datetime.datetime.now(zone).date()
    start, end = request.start or today - datetime.timedelta(days=1), request.end or today
    watch = Stopwatch()
    found = [request.commits.read(day, day, zone) for day in (start, end)]
    seeds = (found[0].seed(start), found[1].seed(end))
    watch.lap("commits")
    painter = painter or request.painter()
    watch.lap("load")
    ends = painter.paint(list(seeds), request.steps, progress=progress)
    first, last = ends.noise
    walk = [slerp(first, last, i / (request.frames - 1))[None] for i in range(1, request.frames - 1)]
    inside = painter.paint_noise(np.concatenate(walk), request.steps, progress=progress) if walk else []
    there = [ends.images[0], *inside, ends.images[1]]
    watch.lap("paint")
    loop = there + there[-2:0:-1]
    between = [MORPH_FRAME_MS] * (len(there) - 2)
    durations = [MORPH_HOLD_MS, *between, MORPH_HOLD_MS, *between]
    with writing(request.out):
        write_atomically(request.out, render.gif_bytes(loop, size=request.size, durations=durations))
    watch.lap("write")
    return MorphReport(start.isoformat(), end.isoformat(), zone.key, (seeds[0].hex(), seeds[1].hex()), request.frames,
                       str(request.out), found[0].warnings + found[1].warnings, watch.seconds)
