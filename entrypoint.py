"""The Docker action's entrypoint: GitHub's INPUT_* variables in; the PNG, step outputs and a job summary out.

GitHub's runner starts the container as root with the repository mounted at /github/workspace, every input
as INPUT_<NAME> (upper case), and the paths of its command files in GITHUB_OUTPUT and GITHUB_STEP_SUMMARY.
Painting is `raccoon.painting.paint_day` (and `paint_month` for the calendar), as for `raccoon paint` and
`raccoon calendar`; this file only turns inputs into their requests and their reports into outputs. It masks
the token before printing anything, writes nothing outside the workspace, and reports problems as annotations.
"""

import argparse
import datetime
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from raccoon import commits, mosaic, options, painting

DEFAULT_WORKSPACE = "/github/workspace"
IN_ACTIONS = os.environ.get("GITHUB_ACTIONS") == "true"


class ActionError(Exception):
    """A problem with the action's inputs or workspace; str() is the one line the user sees."""


def escape_command_data(text: str) -> str:
    """Workflow-command data may not hold raw newlines; the runner decodes these escapes."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


class Log:
    """Messages for the job log, with the token (if any) cut out of every one of them."""

    def __init__(self, secret: str = ""):
        self.secret = secret

    def redact(self, text: str) -> str:
        """The text without the token, as written or as Python quotes it in an error (escaped characters)."""
        if not self.secret:
            return text
        for form in (self.secret, repr(self.secret)[1:-1]):
            text = text.replace(form, "***")
        return text

    def annotate(self, level: str, message: str) -> None:
        message = self.redact(message)
        if IN_ACTIONS:
            print(f"::{level}::{escape_command_data(message)}", flush=True)
        else:
            print(f"raccoon: {level}: {message}", file=sys.stderr, flush=True)

    def info(self, message: str) -> None:
        print(self.redact(message), flush=True)


def read_input(name: str, default: str = "") -> str:
    """An input as the runner passes it (INPUT_ + upper-cased name), trimmed as @actions/core trims it."""
    return os.environ.get(f"INPUT_{name.upper()}", "").strip() or default


def workspace_dir() -> Path:
    workspace = Path(os.environ.get("GITHUB_WORKSPACE") or DEFAULT_WORKSPACE)
    if not workspace.is_dir():
        raise ActionError(f"workspace {workspace} does not exist: mount your directory there "
                          f"(docker run -v \"$PWD:{DEFAULT_WORKSPACE}\" ...)")
    return workspace.resolve()


def inside_workspace(workspace: Path, value: str, input_name: str) -> Path:
    """`value` resolved against the workspace (symlinks followed); refused if it leads anywhere else."""
    path = (workspace / value).resolve()
    if path == workspace or not path.is_relative_to(workspace):
        raise ActionError(f"{input_name}: {value!r} is outside the workspace {workspace}; "
                          "give a path inside the repository")
    return path


def make_directories(directory: Path, workspace: Path, created: list[Path]) -> None:
    """Create `directory` and whichever of its parents in the workspace are missing, adding each to `created` (so a
    failure halfway still knows what to remove), outermost first."""
    for path in (*reversed(directory.parents), directory):
        if path.is_relative_to(workspace) and not path.exists():
            try:
                path.mkdir()
            except OSError as error:  # a file where a folder should be, say
                raise ActionError(f"cannot create the folder {path.relative_to(workspace)}: {error.strerror}") \
                    from None
            created.append(path)


def month_files(month: painting.MonthRequest | None) -> list[Path]:
    """What painting the month may have written: the calendar, its variants, the archive's folders and days."""
    if month is None:
        return []
    kept = sorted(month.archive.rglob("*")) if month.archive is not None else []
    return [path for path in (month.out, *mosaic.theme_variants(month.out), *kept) if path.exists()]


def hand_to_workspace_owner(paths: list[Path], workspace: Path) -> None:
    """The container runs as root; later steps run as the runner's user, who should own what we wrote."""
    if os.geteuid() != 0:
        return
    owner = workspace.stat()
    for path in paths:
        os.chown(path, owner.st_uid, owner.st_gid, follow_symlinks=False)  # a link's target is not ours to give


def write_outputs(path: str, outputs: dict[str, str]) -> None:
    """Step outputs in the runner's heredoc form, so any value (newlines included) arrives intact."""
    with open(path, "a", encoding="utf-8") as file:
        for name, value in outputs.items():
            delimiter = f"ghadelimiter_{uuid.uuid4()}"  # drawn after the value exists: it cannot occur in it
            file.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


def summary_markdown(report: painting.DayReport, outputs: dict[str, str]) -> str:
    rows = [("Date", f"{report.date} ({report.zone})"), ("Seed", f"`{report.seed}`"),
            ("Commits", f"{report.commits} (source: {report.source})"), ("Path", f"`{outputs['path']}`")]
    if outputs.get("calendar_path"):
        rows.append(("Calendar", f"`{outputs['calendar_path']}`"))
    if report.readme:
        rows.append(("README", f"`{outputs['readme']}`"))
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    return f"### Raccoon of {report.date}\n\n| | |\n| --- | --- |\n{table}\n\n"


def parsed_input(name: str, parse, default: str = ""):
    """An input read with the CLI's own parser for that value (None when empty), its complaint in the input's name."""
    text = read_input(name, default)
    try:
        return parse(text) if text else None
    except argparse.ArgumentTypeError as error:
        raise ActionError(f"input {name}: {error}") from None


def workspace_input(workspace: Path, name: str, default: str = "") -> Path | None:
    value = read_input(name, default)
    return inside_workspace(workspace, value, name) if value else None


@dataclass(frozen=True)
class Plan:
    """What one run paints: the day, and its month's calendar if asked for."""

    day: painting.DayRequest
    month: painting.MonthRequest | None


def read_plan(workspace: Path) -> Plan:
    """The Action's inputs as painting requests: always GitHub's commit search, paths inside the workspace."""
    output = workspace_input(workspace, "output", "raccoon.png")
    readme = workspace_input(workspace, "readme")
    if readme is not None and not readme.is_file():
        raise ActionError(f"readme: {read_input('readme')!r} is not a file in the workspace")
    calendar, archive = workspace_input(workspace, "calendar"), workspace_input(workspace, "archive")
    if archive is not None and calendar is None:
        raise ActionError("archive: the archive keeps the calendar's days; give a calendar path too")
    username = parsed_input("username", options.login, os.environ.get("GITHUB_REPOSITORY_OWNER", ""))
    if not username:
        raise ActionError("username: give the GitHub login whose commits to paint")
    source = painting.CommitSource(
        source="github", user=username, api_url=os.environ.get("GITHUB_API_URL") or commits.PUBLIC_API_URL,
        on_error=parsed_input("on_error", options.one_of(painting.ON_ERROR), "fail"))
    shared = painting.Request(zone=parsed_input("timezone", options.zone, "UTC"), commits=source,
                              steps=parsed_input("steps", options.steps, "50"))
    date = parsed_input("date", options.day) or datetime.datetime.now(shared.zone).date()
    day = painting.DayRequest(**vars(shared), date=date, out=output, size=parsed_input("size", options.size, "256"),
                              readme=readme, calendar=calendar)
    theme = parsed_input("theme", options.one_of(tuple(mosaic.THEMES)), "light")
    month = None if calendar is None else painting.MonthRequest(
        **vars(shared), month=date, today=date, out=calendar, variants=True, archive=archive, theme=theme)
    return Plan(day, month)


def run(log: Log) -> int:
    workspace = workspace_dir()
    plan = read_plan(workspace)
    day, month = plan.day, plan.month
    created: list[Path] = []
    try:
        make_directories(day.out.parent, workspace, created)
        if month is not None:
            make_directories(month.out.parent, workspace, created)
            if month.archive is not None:
                make_directories(month.archive, workspace, created)
        if month is not None:  # the day's files and the month's must not be one another, before either is written
            painting.check_outputs({"output": day.out, "calendar": month.out,
                                    **dict(zip(("the light calendar", "the dark calendar"),
                                               mosaic.theme_variants(month.out)))}, day.readme)
        painter = day.painter()
        # With a calendar, the month's one commit search serves the day too: the tile is the day's PNG.
        found = None if month is None else month.commits.read(*painting.month_span(month)[:2], month.the_zone())
        month_report = None if month is None else painting.paint_month(month, painter, found=found)
        report = painting.paint_day(day, painter, found=found)
    except BaseException as error:
        # A failed run leaves no empty folder of its own behind, and gives what it did write (a month painted
        # before the day failed) to the workspace's owner.
        hand_to_workspace_owner(month_files(month), workspace)
        for directory in reversed(created):
            if directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()
        hand_to_workspace_owner([directory for directory in created if directory.exists()], workspace)
        if isinstance(error, painting.PaintError):
            raise ActionError(str(error)) from None
        raise
    for warning in dict.fromkeys((month_report.warnings if month_report else ()) + report.warnings):
        log.annotate("warning", warning)  # once, where the day and its month share a commit search
    hand_to_workspace_owner([*created, day.out, *([day.readme] if report.readme_changed else []), *month_files(month)],
                            workspace)

    outputs = {"path": day.out.relative_to(workspace).as_posix(), "seed": report.seed,
               "commits": str(report.commits), "date": report.date, "alt": report.alt,
               "calendar_path": month.out.relative_to(workspace).as_posix() if month else ""}
    if os.environ.get("GITHUB_OUTPUT"):
        write_outputs(os.environ["GITHUB_OUTPUT"], outputs)
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        readme = {"readme": day.readme.relative_to(workspace).as_posix()} if day.readme else {}
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as summary:
            summary.write(summary_markdown(report, outputs | readme))
    log.info(f"Painted {outputs['path']}: the raccoon of {report.date}, {report.commits} commits, seed {report.seed}"
             + (f"; and the calendar {outputs['calendar_path']}, {sum(day.archived for day in month_report.days)} "
                f"days from the archive" if month else ""))
    return 0


def main() -> int:
    token = read_input("github_token")
    if token:
        os.environ["GITHUB_TOKEN"] = token  # where `raccoon paint` reads it
    token = os.environ.get("GITHUB_TOKEN", "").strip()  # as the search uses it
    if token and IN_ACTIONS:
        print(f"::add-mask::{escape_command_data(token)}", flush=True)  # before any other line of output
    log = Log(token)
    try:
        return run(log)
    except ActionError as error:
        log.annotate("error", str(error))
        return 2
    except Exception as error:  # a bug, not bad input: still one clean line, never the token
        log.annotate("error", f"raccoon-action failed unexpectedly: {type(error).__name__}: {error}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
