"""The Docker action's entrypoint: GitHub's INPUT_* variables in; the PNG, step outputs and a job summary out.

GitHub's runner starts the container as root with the repository mounted at /github/workspace, every input
as INPUT_<NAME> (upper case), and the paths of its command files in GITHUB_OUTPUT and GITHUB_STEP_SUMMARY.
Painting is `raccoon paint`; this file only translates between it and the runner. It masks the token
before printing anything, writes nothing outside the workspace, and reports problems as annotations.
"""

import contextlib
import io
import json
import os
import re
import sys
import uuid
from pathlib import Path

from raccoon import cli, render

DEFAULT_WORKSPACE = "/github/workspace"
IN_ACTIONS = os.environ.get("GITHUB_ACTIONS") == "true"
# Inputs handed to `raccoon paint` as they are, when set; left empty, the CLI's default applies.
OPTION_OF_INPUT = {"date": "--date", "timezone": "--tz", "size": "--size", "steps": "--steps", "on_error": "--on-error"}


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
        return text.replace(self.secret, "***") if self.secret else text

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


def make_parents(path: Path, workspace: Path) -> list[Path]:
    """Create the missing directories above `path`; return them, outermost first."""
    missing = [parent for parent in reversed(path.parents) if parent.is_relative_to(workspace) and not parent.exists()]
    for directory in missing:
        directory.mkdir()
    return missing


def hand_to_workspace_owner(paths: list[Path], workspace: Path) -> None:
    """The container runs as root; later steps run as the runner's user, who should own what we wrote."""
    if os.geteuid() != 0:
        return
    owner = workspace.stat()
    for path in paths:
        os.chown(path, owner.st_uid, owner.st_gid)


def for_action_users(message: str) -> str:
    """A CLI message in the action's words: `input size:` for `argument --size:`, no pointer to --help."""
    input_of_option = {option: name for name, option in OPTION_OF_INPUT.items()} | {"--user": "username"}
    message = re.sub(r"^argument (--[a-z-]+):", lambda m: f"input {input_of_option.get(m[1], m[1])}:", message)
    message = message.replace("(--on-error date-only)", "(on_error: date-only)")
    return message.removesuffix(" (see raccoon paint --help)")


def paint(argv: list[str], log: Log) -> dict | None:
    """Run `raccoon paint --json`, its warnings and errors turned into annotations; its report, None if it failed."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = cli.main(argv)
    for line in stderr.getvalue().splitlines():
        level, _, message = line.removeprefix("raccoon: ").partition(": ")
        if line.startswith("raccoon: ") and level in ("error", "warning"):
            log.annotate(level, for_action_users(message))
        else:
            print(log.redact(line), file=sys.stderr)
    return json.loads(stdout.getvalue()) if status == 0 else None


def alt_text(report: dict) -> str:
    commits = report["commits"]
    found = "the date alone" if report["fallback"] or commits == 0 else f"{commits} commit{'s' * (commits != 1)}"
    return f"The raccoon of {report['date']}, painted by a tiny diffusion model from {found}"


def write_outputs(path: str, outputs: dict[str, str]) -> None:
    """Step outputs in the runner's heredoc form, so any value (newlines included) arrives intact."""
    with open(path, "a", encoding="utf-8") as file:
        for name, value in outputs.items():
            delimiter = f"ghadelimiter_{uuid.uuid4()}"  # drawn after the value exists: it cannot occur in it
            file.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


def summary_markdown(report: dict, outputs: dict[str, str], readme: str) -> str:
    rows = [("Date", f"{outputs['date']} ({report['zone']})"), ("Seed", f"`{outputs['seed']}`"),
            ("Commits", f"{outputs['commits']} (source: {report['source']})"), ("Path", f"`{outputs['path']}`")]
    if readme:
        rows.append(("README", f"`{readme}`"))
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    return f"### Raccoon of {outputs['date']}\n\n| | |\n| --- | --- |\n{table}\n\n"


def run(log: Log) -> int:
    workspace = workspace_dir()
    output = inside_workspace(workspace, read_input("output", "raccoon.png"), "output")
    readme_input = read_input("readme")
    readme = inside_workspace(workspace, readme_input, "readme") if readme_input else None
    if readme is not None:
        if not readme.is_file():
            raise ActionError(f"readme: {readme_input!r} is not a file in the workspace")
        try:
            render.read_readme(readme)
        except render.ReadmeError as error:
            raise ActionError(f"readme: {error}") from None
    username = read_input("username", os.environ.get("GITHUB_REPOSITORY_OWNER", ""))
    if not username:
        raise ActionError("username: give the GitHub login whose commits to paint")

    argv = ["paint", "--json", "--source", "github", "--user", username, "--out", str(output)]
    for name, option in OPTION_OF_INPUT.items():
        if read_input(name):
            argv += [option, read_input(name)]
    created = make_parents(output, workspace)
    try:
        report = paint(argv, log)
    finally:
        for directory in reversed(created):  # a failed paint leaves the workspace as it found it
            if not any(directory.iterdir()):
                directory.rmdir()
    if report is None:
        return 2
    written = [*created, output]

    alt = alt_text(report)
    if readme is not None:
        image_src = Path(os.path.relpath(output, readme.parent)).as_posix()
        try:
            if render.update_readme(readme, image_src, alt):
                written.append(readme)
        except render.ReadmeError as error:
            raise ActionError(f"readme: {error}") from None
    hand_to_workspace_owner(written, workspace)

    outputs = {"path": output.relative_to(workspace).as_posix(), "seed": report["seed"],
               "commits": str(report["commits"]), "date": report["date"], "alt": alt}
    if os.environ.get("GITHUB_OUTPUT"):
        write_outputs(os.environ["GITHUB_OUTPUT"], outputs)
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as summary:
            summary.write(summary_markdown(report, outputs, readme_input))
    log.info(f"Painted {outputs['path']}: the raccoon of {outputs['date']}, {outputs['commits']} commits, "
             f"seed {outputs['seed']}")
    return 0


def main() -> int:
    token = read_input("github_token")
    if token:
        os.environ["GITHUB_TOKEN"] = token  # where `raccoon paint` reads it
    token = os.environ.get("GITHUB_TOKEN", "")
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
