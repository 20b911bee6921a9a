"""The `raccoon` command.

`raccoon paint` turns its options into a `painting.DayRequest` and prints the report. `raccoon train`,
`raccoon export` and `raccoon eval` hand their arguments to the modules that make the model; those import
PyTorch, so they are imported only when asked for and `raccoon paint` never loads it.

Bad input gets one line on stderr, `raccoon: error: ...`, and exit code 2: no traceback, no partial file.
"""

import importlib
import json
import os
import sys
from pathlib import Path

from raccoon import __version__, commits, options, painting, render

DELEGATED = {"train": "raccoon.train", "export": "raccoon.export", "eval": "raccoon.evaluate"}


def build_parser() -> options.Parser:
    parser = options.Parser(prog="raccoon",
                    description="One raccoon a day, painted by a tiny diffusion model seeded by your commits.")
    parser.add_argument("--version", action="version", version=f"raccoon {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=options.Parser)
    paint = commands.add_parser("paint", help="paint the raccoon of a day", description="Paint the raccoon of a day.")
    paint.add_argument("--date", type=options.day, help="the day, YYYY-MM-DD (default: today in --tz)")
    paint.add_argument("--tz", type=options.zone, help="IANA time zone the day is in (default: this machine's, else UTC)")
    paint.add_argument("--source", choices=commits.SOURCES, default="auto",
                       help="where commits come from (default auto: list with --commits, github with --user, "
                            "git inside a repository with user.email set, else none)")
    paint.add_argument("--commits", metavar="FILE", help="for --source list: one SHA per line, - for stdin")
    paint.add_argument("--author", metavar="EMAIL",
                       help="for --source git: author email (default: git config user.email)")
    paint.add_argument("--user", metavar="LOGIN", type=options.login, help="for --source github: whose commits to search")
    paint.add_argument("--api-url", default=os.environ.get("GITHUB_API_URL") or commits.PUBLIC_API_URL,
                       help="GitHub API for --source github (default: $GITHUB_API_URL, else %(default)s)")
    paint.add_argument("--on-error", choices=painting.ON_ERROR, default="fail",
                       help="when commits cannot be read: fail (exit 2) or paint the date-only raccoon")
    paint.add_argument("--out", type=Path, default=Path("raccoon.png"), help="PNG to write (default: %(default)s)")
    paint.add_argument("--size", type=options.size, default=256,
                       help=f"PNG width and height in pixels, {render.MIN_SIZE}..{render.MAX_SIZE}; multiples of 64 "
                            "scale exactly (default: %(default)s)")
    paint.add_argument("--readme", type=Path, metavar="FILE",
                       help="put the image tag between this README's <!-- raccoon:start --> and "
                            "<!-- raccoon:end --> lines")
    paint.add_argument("--steps", type=options.steps, default=50,
                       help=f"denoising steps, {options.MIN_STEPS}..{options.MAX_STEPS} (default: %(default)s)")
    paint.add_argument("--backend", choices=("onnx", "torch"), default="onnx", help="model runtime (default: onnx)")
    paint.add_argument("--guidance", type=options.guidance, metavar="W",
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


def run_paint(args) -> int:
    request = painting.DayRequest(
        date=args.date, zone=args.tz, source=args.source, user=args.user, author=args.author,
        commits_file=args.commits, api_url=args.api_url, on_error=args.on_error, out=args.out, size=args.size,
        gif=args.gif, readme=args.readme, steps=args.steps, backend=args.backend, guidance=args.guidance,
        weights=args.weights)
    try:
        report = painting.paint_day(request)
    except painting.PaintError as error:
        raise options.UsageError(str(error)) from None
    for warning in report.warnings:
        print(f"raccoon: warning: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        found = ("date only" if report.fallback else
                 f"{report.commits} commit{'s' * (report.commits != 1)} from {report.source}")
        print(f"Painted {args.out}: the raccoon of {report.date} ({report.zone}), {found}, seed {report.seed[:12]}")
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
    except options.UsageError as error:
        print(f"raccoon: error: {error}", file=sys.stderr)
        return 2
