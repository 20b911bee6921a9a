"""The `raccoon` command.

`raccoon paint` reads the day's commits, seeds the model with them and writes the PNG. `raccoon train`,
`raccoon export` and `raccoon eval` hand their arguments to the modules that make the model; those import
PyTorch, so they are imported only when asked for and `raccoon paint` never loads it.

Bad input gets one line on stderr, `raccoon: error: ...`, and exit code 2: no traceback, no partial file.
"""

import argparse
import datetime
import importlib
import json
import os
import re
import sys
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from raccoon import __version__, commits, render
from raccoon.day import DayRecord

DELEGATED = {"train": "raccoon.train", "export": "raccoon.export", "eval": "raccoon.evaluate"}
MIN_STEPS, MAX_STEPS = 1, 1000
MAX_GUIDANCE = 10.0
GITHUB_LOGIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})")


class CliError(Exception):
    """Bad input; str() is the one-line message for the user."""


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise CliError(f"{message} (see {self.prog} --help)")


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


def _date(text: str) -> datetime.date:
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return datetime.date.fromisoformat(text)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"not a real date in YYYY-MM-DD form: {text!r}")


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise argparse.ArgumentTypeError(f"unknown time zone {name!r}: use an IANA name such as Europe/Paris") from None


def _whole_number_between(low: int, high: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {value}")
        return value

    return parse


def guidance_weight(text: str) -> float:
    """An autoguidance weight from the command line: 1 (none) to MAX_GUIDANCE."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 1 <= value <= MAX_GUIDANCE:
        raise argparse.ArgumentTypeError(f"must be between 1 (no guidance) and {MAX_GUIDANCE:g}, got {text}")
    return value


def _login(text: str) -> str:
    if not GITHUB_LOGIN.fullmatch(text):
        raise argparse.ArgumentTypeError(f"not a GitHub login: {text[:60]!r}")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="raccoon",
                     description="One raccoon a day, painted by a tiny diffusion model seeded by your commits.")
    parser.add_argument("--version", action="version", version=f"raccoon {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    paint = commands.add_parser("paint", help="paint the raccoon of a day", description="Paint the raccoon of a day.")
    paint.add_argument("--date", type=_date, help="the day, YYYY-MM-DD (default: today in --tz)")
    paint.add_argument("--tz", type=_zone, help="IANA time zone the day is in (default: this machine's, else UTC)")
    paint.add_argument("--source", choices=commits.SOURCES, default="auto",
                       help="where commits come from (default auto: list with --commits, github with --user or in "
                            "GitHub Actions, git inside a repository with user.email set, else none)")
    paint.add_argument("--commits", metavar="FILE", help="for --source list: one SHA per line, - for stdin")
    paint.add_argument("--author", metavar="EMAIL",
                       help="for --source git: author email (default: git config user.email)")
    paint.add_argument("--user", metavar="LOGIN", type=_login, help="for --source github: whose commits to search")
    paint.add_argument("--api-url", default=os.environ.get("GITHUB_API_URL") or commits.PUBLIC_API_URL,
                       help="GitHub API for --source github (default: $GITHUB_API_URL, else %(default)s)")
    paint.add_argument("--on-error", choices=("fail", "date-only"), default="fail",
                       help="when commits cannot be read: fail (exit 2) or paint the date-only raccoon")
    paint.add_argument("--out", type=Path, default=Path("raccoon.png"), help="PNG to write (default: %(default)s)")
    paint.add_argument("--size", type=_whole_number_between(render.MIN_SIZE, render.MAX_SIZE), default=256,
                       help=f"PNG width and height in pixels, {render.MIN_SIZE}..{render.MAX_SIZE}; multiples of 64 "
                            "scale exactly (default: %(default)s)")
    paint.add_argument("--steps", type=_whole_number_between(MIN_STEPS, MAX_STEPS), default=50,
                       help=f"denoising steps, {MIN_STEPS}..{MAX_STEPS} (default: %(default)s)")
    paint.add_argument("--backend", choices=("onnx", "torch"), default="onnx", help="model runtime (default: onnx)")
    paint.add_argument("--guidance", type=guidance_weight, metavar="W",
                       help="autoguidance by the weights' guide network, 1 for none (1.7x faster, plainer "
                            "raccoons) to 10 (default: the weights' own)")
    paint.add_argument("--weights", type=Path, metavar="DIR", help="trained weights (default: the packaged ones)")
    paint.add_argument("--gif", type=Path, metavar="PATH", help="also write the denoising, step by step, as a GIF")
    paint.add_argument("--json", action="store_true", help="print one JSON object instead of a sentence")
    paint.set_defaults(run=run_paint)
    for command, text in (("train", "train the model (needs PyTorch)"), ("export", "export weights to ONNX"),
                          ("eval", "evaluate a trained model")):
        commands.add_parser(command, help=f"{text}; arguments go to {DELEGATED[command]}", add_help=False)
    return parser


def _check_output(path: Path) -> None:
    """Fail before painting, not after, when the PNG could not be written."""
    directory = path.parent
    if path.is_dir():
        raise CliError(f"--out {path} is a directory, not a file")
    if not directory.is_dir():
        raise CliError(f"cannot write {path}: directory {directory} does not exist")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise CliError(f"cannot write {path}: directory {directory} is not writable")


def _warn(message: str) -> None:
    print(f"raccoon: warning: {message}", file=sys.stderr)


def run_paint(args) -> int:
    from raccoon import runtime  # loads the model runtime only when painting

    zone = args.tz or ZoneInfo(local_zone_name())
    date = args.date or datetime.datetime.now(zone).date()
    for path in (args.out, args.gif):
        if path is not None:
            _check_output(path)
    if args.commits is not None and args.source not in ("auto", "list"):
        raise CliError(f"--commits goes with --source list, not --source {args.source}")
    source = commits.resolve_source(args.source, user=args.user, commits_file=args.commits, author=args.author)
    fallback = None
    try:
        day = commits.collect(source, date, zone, commits_file=args.commits, author=args.author, user=args.user,
                              api_url=args.api_url)
    except commits.SourceError as error:
        if args.on_error == "fail":
            raise
        fallback = str(error)
        day = commits.DayCommits(source, ())
        _warn(f"{error}; painting the date-only raccoon (--on-error date-only)")
    if day.incomplete:
        _warn(f"{day.incomplete}; this raccoon uses the {len(day.shas)} commits found")
    try:
        seed = DayRecord.of(date, day.shas).seed()
    except ValueError as error:
        raise CliError(str(error)) from None
    frames = []
    try:
        denoiser = runtime.load_denoiser(args.weights or runtime.default_weights_dir(), args.backend,
                                         guidance=args.guidance)
        image = runtime.sample(denoiser, [seed], args.steps,
                               on_step=lambda i, x0: frames.append(runtime.to_uint8(x0[0])) if args.gif else None)[0]
    except runtime.WeightsError as error:
        raise CliError(str(error)) from None
    try:
        render.save_png(image, args.out, size=args.size,
                        metadata={"raccoon:date": date.isoformat(), "raccoon:seed": seed.hex()})
        if args.gif:
            render.write_atomically(args.gif, render.gif_bytes(frames, size=args.size))
    except OSError as error:
        raise CliError(f"cannot write {error.filename or args.out}: {error.strerror or error}") from None
    report = {
        "date": date.isoformat(), "zone": zone.key, "seed": seed.hex(), "commits": len(day.shas),
        "source": day.source, "incomplete": bool(day.incomplete), "on_error": args.on_error, "fallback": fallback,
        "output": str(args.out), "gif": str(args.gif) if args.gif else None, "size": args.size, "steps": args.steps, "backend": args.backend,
        "guidance": denoiser.guidance,
    }
    if args.json:
        print(json.dumps(report))
    else:
        found = "date only" if fallback else f"{len(day.shas)} commit{'s' * (len(day.shas) != 1)} from {day.source}"
        print(f"Painted {args.out}: the raccoon of {date} ({zone.key}), {found}, seed {seed.hex()[:12]}")
    return 0


def _delegate(command: str, args: list[str]) -> int:
    try:
        module = importlib.import_module(DELEGATED[command])
    except ModuleNotFoundError as error:
        if (error.name or "").partition(".")[0] != "torch":
            raise
        print(f"raccoon: error: raccoon {command} needs PyTorch: pip install 'raccoon-action[train]'", file=sys.stderr)
        return 2
    return module.main(args) or 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else [str(arg) for arg in argv]
    if argv and argv[0] in DELEGATED:
        return _delegate(argv[0], argv[1:])
    try:
        args = build_parser().parse_args(argv)
        return args.run(args)
    except (CliError, commits.SourceError) as error:
        print(f"raccoon: error: {error}", file=sys.stderr)
        return 2
