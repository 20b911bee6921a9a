"""The Docker action, built from the Dockerfile and run the way GitHub's runner runs it.

The runner's side is played here: every input declared in action.yml becomes INPUT_<NAME> (its default
evaluated when the test leaves it out), the workspace is mounted at /github/workspace and is the working
directory, GITHUB_OUTPUT and GITHUB_STEP_SUMMARY are files under /github/file_commands, and the GitHub API is
the fake server of tests/fake_github.py on 127.0.0.1, reached through the host's network.
"""

import datetime
import importlib.util
import os
import shlex
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from PIL import Image

import container
from fake_github import FakeCommit, FakeGitHub
from raccoon import render
from raccoon.day import DayRecord

ROOT = Path(__file__).resolve().parent.parent
ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
OWNER = "octocat"
TOKEN = "ghs_" + "T0kenThatMustNeverBeLogged" * 2
DAY = datetime.date(2026, 3, 10)
ZONE = "Asia/Tokyo"
RUNNER_UID = 1001  # the runner's user, who owns the workspace on GitHub's hosted runners
README = ("# Hi there\r\n\r\nText before, kept byte for byte: caf\u00e9 \u2615\r\n"
          "<!-- raccoon:start -->\r\nyesterday's picture\r\n<!-- raccoon:end -->\r\n"
          "Text after, trailing spaces   \r\nno final newline").encode()


def sha(n: int) -> str:
    return f"{n:040x}"


def tokyo(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text)


# The day in Tokyo is [2026-03-10T00:00+09:00, 2026-03-11T00:00+09:00).
COMMITS = [
    FakeCommit(sha(1), OWNER, tokyo("2026-03-10T00:00:00+09:00")),  # the day's first second
    FakeCommit(sha(2), OWNER, tokyo("2026-03-10T14:59:59+00:00")),  # 23:59:59 in Tokyo
    FakeCommit(sha(3), OWNER, tokyo("2026-03-10T15:00:00+00:00")),  # already the 11th in Tokyo
    FakeCommit(sha(4), OWNER, tokyo("2026-03-09T23:59:59+09:00")),  # still the 9th
    FakeCommit(sha(5), "someone-else", tokyo("2026-03-10T12:00:00+09:00")),
]
DAY_SHAS = [sha(1), sha(2)]


def load_entrypoint():
    spec = importlib.util.spec_from_file_location("entrypoint", ROOT / "entrypoint.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_file_command(text: str) -> dict[str, str]:
    """Read GITHUB_OUTPUT as the runner does: `name=value` lines, or `name<<DELIMITER` ... `DELIMITER`."""
    values, lines = {}, iter(text.split("\n"))
    for line in lines:
        if not line:
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            body = []
            for body_line in lines:
                if body_line == delimiter:
                    break
                body.append(body_line)
            else:
                raise AssertionError(f"output {name!r}: delimiter {delimiter!r} never closes")
            values[name] = "\n".join(body)
        else:
            name, value = line.split("=", 1)
            values[name] = value
    return values


# ------------------------------------------------------------------ the entrypoint's pieces, no container


def test_outputs_arrive_intact_whatever_they_hold(tmp_path):
    entrypoint = load_entrypoint()
    tricky = {"alt": "two\nlines", "seed": "EOF", "path": "a=b<<c", "commits": "ghadelimiter_x\n", "date": ""}
    file = tmp_path / "output"
    entrypoint.write_outputs(str(file), tricky)
    assert parse_file_command(file.read_text()) == tricky


def test_paths_must_stay_in_the_workspace(tmp_path):
    entrypoint = load_entrypoint()
    workspace = (tmp_path / "workspace").resolve()
    workspace.mkdir()
    (workspace / "elsewhere").symlink_to(tmp_path)
    for value in ("../raccoon.png", "a/../../raccoon.png", str(tmp_path / "raccoon.png"), "elsewhere/raccoon.png",
                  ".", str(workspace)):
        with pytest.raises(entrypoint.ActionError, match="outside the workspace"):
            entrypoint.inside_workspace(workspace, value, "output")
    assert entrypoint.inside_workspace(workspace, "a/../b.png", "output") == workspace / "b.png"
    assert entrypoint.inside_workspace(workspace, str(workspace / "img/r.png"), "output") == workspace / "img/r.png"


def test_the_token_is_cut_out_as_written_and_as_python_quotes_it():
    token = "ghp_Secret\rInside"
    log = load_entrypoint().Log(token)
    assert log.redact(f"header {token!r}; raw {token}") == "header '***'; raw ***"


def test_annotations_stay_on_one_line():
    entrypoint = load_entrypoint()
    assert entrypoint.escape_command_data("50%\r\nmore") == "50%25%0D%0Amore"


# ---------------------------------------------------------------------------------------- the container


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    summary: str
    seconds: float

    def lines(self, prefix: str) -> list[str]:
        return [line for line in self.stdout.splitlines() if line.startswith(prefix)]

    def assert_secret_hidden(self, secret: str) -> None:
        """The runner hides a secret only after `::add-mask::`, so that must come first and be its only trace."""
        first, *rest = self.stdout.splitlines() or [""]
        assert first == f"::add-mask::{secret}"
        for text in ("\n".join(rest), self.stderr, str(self.outputs), self.summary):
            assert secret not in text


@pytest.fixture(scope="module")
def image():
    missing = container.missing_tools()
    if missing:
        pytest.skip(f"the container tests need {', '.join(missing)}: run .ci/setup-podman")
    assert (ROOT / "weights" / "config.json").is_file(), "the image ships weights/: train and export them first"
    container.build_action_image()
    return container.ACTION_IMAGE


@pytest.fixture(scope="module")
def github():
    fake = FakeGitHub(COMMITS, token=TOKEN).start()
    yield fake
    fake.stop()


def make_workspace(path: Path) -> Path:
    path.mkdir()
    (path / "README.md").write_bytes(README)
    os.chown(path, RUNNER_UID, RUNNER_UID)
    os.chown(path / "README.md", RUNNER_UID, RUNNER_UID)
    return path


def run_action(image: str, workspace: Path, api_url: str, token: str = TOKEN, **inputs) -> Run:
    """Run the container as GitHub's runner would for `uses: owner/raccoon-action@v3` with `inputs`."""
    unknown = set(inputs) - set(ACTION["inputs"])
    assert not unknown, f"not inputs of action.yml: {unknown}"
    file_commands = workspace.parent / f"{workspace.name}-file-commands"
    file_commands.mkdir(exist_ok=True)  # a workspace may be run twice: each run starts with empty command files
    (file_commands / "set_output").write_text("")
    (file_commands / "step_summary").write_text("")
    contexts = {"${{ github.token }}": token, "${{ github.repository_owner }}": OWNER}
    env = {
        "GITHUB_ACTIONS": "true", "CI": "true", "HOME": "/github/home", "RUNNER_OS": "Linux",
        "GITHUB_WORKSPACE": "/github/workspace", "GITHUB_REPOSITORY": f"{OWNER}/{OWNER}",
        "GITHUB_REPOSITORY_OWNER": OWNER, "GITHUB_API_URL": api_url, "GITHUB_EVENT_NAME": "schedule",
        "GITHUB_OUTPUT": "/github/file_commands/set_output",
        "GITHUB_STEP_SUMMARY": "/github/file_commands/step_summary",
        "RACCOON_GITHUB_RETRIES": "0",  # fail fast when the test points the API somewhere dead
    }
    for name, spec in ACTION["inputs"].items():
        default = str(spec.get("default", ""))
        env[f"INPUT_{name.upper()}"] = str(inputs.get(name, contexts.get(default, default)))
        assert "${{" not in env[f"INPUT_{name.upper()}"], f"evaluate {default} here as the runner would"
    start = time.monotonic()
    result = container.run_action(workspace, file_commands, env, tag=image)
    seconds = time.monotonic() - start
    return Run(result.returncode, result.stdout, result.stderr,
               parse_file_command((file_commands / "set_output").read_text()),
               (file_commands / "step_summary").read_text(), seconds)


@pytest.fixture(scope="module")
def painted(image, github, tmp_path_factory):
    """One paint with most inputs set, shared by the tests that read its results."""
    workspace = make_workspace(tmp_path_factory.mktemp("paint") / "workspace")
    run = run_action(image, workspace, github.url, date=DAY.isoformat(), timezone=ZONE,
                     output="images/raccoon.png", size="128", steps="8", readme="README.md")
    print(f"\ncontainer run: {run.seconds:.1f} s (8 steps)")
    assert run.returncode == 0, run.stdout + run.stderr
    return workspace, run


def test_paints_the_days_commits(painted):
    workspace, run = painted
    expected_seed = DayRecord.of(DAY, DAY_SHAS).seed().hex()
    assert run.outputs == {
        "path": "images/raccoon.png", "seed": expected_seed, "commits": "2", "date": "2026-03-10",
        "alt": run.outputs["alt"], "calendar_path": "",
    }
    assert "2026-03-10" in run.outputs["alt"] and "2 commits" in run.outputs["alt"]
    with Image.open(workspace / "images" / "raccoon.png") as png:
        assert png.format == "PNG" and png.size == (128, 128) and png.mode == "RGB"
        assert png.text["raccoon:seed"] == expected_seed
        assert png.text["raccoon:date"] == "2026-03-10"
        assert len(png.getcolors(128 * 128)) > 1


def test_uses_the_token_and_hides_it(painted, github):
    _, run = painted
    assert any(authorization and TOKEN in authorization for _, authorization in github.requests)
    run.assert_secret_hidden(TOKEN)


def test_replaces_only_the_readme_block(painted):
    workspace, run = painted
    start = README.index(render.README_START.encode()) + len(render.README_START)
    end = README.index(render.README_END.encode())
    block = f"\r\n{render.readme_block('images/raccoon.png', run.outputs['alt'])}\r\n".encode()
    assert (workspace / "README.md").read_bytes() == README[:start] + block + README[end:]


def test_writes_a_job_summary(painted):
    _, run = painted
    for fact in ("2026-03-10", run.outputs["seed"], "| Commits | 2", "images/raccoon.png"):
        assert fact in run.summary


def test_leaves_files_to_the_workspace_owner(painted):
    workspace, _ = painted
    for path in (workspace / "images", workspace / "images" / "raccoon.png", workspace / "README.md"):
        assert path.stat().st_uid == RUNNER_UID, path
    assert sorted(p.name for p in workspace.rglob("*")) == ["README.md", "images", "raccoon.png"]


def test_paints_the_month_with_an_archive_and_a_picture_in_the_readme(image, github, tmp_path):
    workspace = make_workspace(tmp_path / "workspace")
    inputs = dict(date=DAY.isoformat(), timezone=ZONE, steps="2", size="64", readme="README.md",
                  calendar="images/calendar.png", archive="archive", theme="dark")
    searches = len(github.requests)
    run = run_action(image, workspace, github.url, **inputs)
    assert run.returncode == 0, run.stdout + run.stderr
    assert len(github.requests) == searches + 1  # the month's one search serves the day too
    assert run.outputs["calendar_path"] == "images/calendar.png"
    assert sorted(p.name for p in (workspace / "images").iterdir()) == [
        "calendar-dark.png", "calendar-light.png", "calendar.png"]
    assert sorted(p.name for p in (workspace / "archive/2026/03").iterdir()) == [f"{d:02d}.png" for d in range(1, 10)]
    assert all(path.stat().st_uid == RUNNER_UID for path in workspace.rglob("*"))
    # The painted day is the calendar's last, and its tile is the PNG of the day (size 64): the same raccoon.
    from raccoon import mosaic

    with Image.open(workspace / "images/calendar.png") as calendar, Image.open(workspace / "raccoon.png") as day:
        x, y = mosaic.tile_origin(DAY.replace(day=1), DAY)
        assert calendar.crop((x, y, x + 64, y + 64)).tobytes() == day.tobytes()
        assert calendar.getpixel((0, 0)) == (13, 17, 23)  # the dark theme
    readme = (workspace / "README.md").read_text()
    assert '<source media="(prefers-color-scheme: dark)" srcset="images/calendar-dark.png">' in readme
    assert '<img src="images/calendar-light.png"' in readme and '<img src="raccoon.png"' in readme
    # A second run reads the finished days back from the archive instead of painting them again.
    first = (workspace / "images/calendar.png").read_bytes()
    assert "0 days from the archive" in run.stdout
    again = run_action(image, workspace, github.url, **inputs)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "9 days from the archive" in again.stdout
    assert (workspace / "images/calendar.png").read_bytes() == first
    run.assert_secret_hidden(TOKEN)


def test_falls_back_to_the_date_with_a_warning(image, tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead_api = f"http://127.0.0.1:{probe.getsockname()[1]}/api/v3"
    workspace = make_workspace(tmp_path / "workspace")
    run = run_action(image, workspace, dead_api, date=DAY.isoformat(), steps="2", on_error="date-only")
    assert run.returncode == 0, run.stdout + run.stderr
    assert len(run.lines("::warning::")) == 1 and "cannot reach the GitHub API" in run.stdout
    assert "painted the date-only raccoon instead" in run.stdout
    assert run.outputs["commits"] == "0" and run.outputs["seed"] == DayRecord.of(DAY, []).seed().hex()
    assert (workspace / "raccoon.png").is_file()
    run.assert_secret_hidden(TOKEN)


@pytest.mark.parametrize("inputs, message", [
    ({"date": "2026-02-30"}, "input date: not a real date"),
    ({"timezone": "Mars/Olympus_Mons"}, "input timezone: unknown time zone"),
    ({"size": "7"}, "input size: must be between"),
    ({"output": "../escape.png"}, "output: '../escape.png' is outside the workspace"),
    ({"output": "/etc/raccoon.png"}, "output: '/etc/raccoon.png' is outside the workspace"),
    ({"output": "tmp-link/raccoon.png"}, "is outside the workspace"),
    ({"readme": "../README.md"}, "readme: '../README.md' is outside the workspace"),
    ({"readme": "NOPE.md"}, "readme: 'NOPE.md' is not a file"),
    ({"github_token": "ghp_" + "WrongTokenAlsoSecret" * 2}, "was rejected by"),
    ({"github_token": "ghp_Secret\tInside" * 2}, "GITHUB_TOKEN holds a space, a control character"),
    ({"output": "README.md", "readme": "README.md"}, "must be different files"),
    ({"output": ".git/raccoon.png"}, "inside a .git folder"),
    ({"username": "-not-a-login"}, "input username: not a GitHub login"),
    ({"on_error": "ignore"}, "input on_error: must be one of fail, date-only"),
    ({"calendar": "raccoon.png"}, "must be different files"),
    ({"calendar": "README.md", "readme": "README.md"}, "must be different files"),
    ({"theme": "sepia"}, "input theme: must be one of light, dark"),
    ({"archive": "archive"}, "give a calendar path too"),
], ids=["bad-date", "bad-zone", "bad-size", "dot-dot", "absolute", "symlink-out", "readme-out", "no-readme",
        "bad-token", "unsendable-token", "output-is-readme", "output-in-git", "bad-login", "bad-on-error",
        "calendar-is-output", "calendar-is-readme", "bad-theme", "archive-without-calendar"])
def test_bad_input_fails_cleanly(image, github, tmp_path, inputs, message):
    workspace = make_workspace(tmp_path / "workspace")
    (workspace / "tmp-link").symlink_to("/tmp")
    run = run_action(image, workspace, github.url, **inputs)
    assert run.returncode == 2, run.stdout + run.stderr
    errors = run.lines("::error::")
    assert len(errors) == 1 and message in errors[0], run.stdout + run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    assert run.outputs == {} and run.summary == ""
    assert sorted(p.name for p in workspace.iterdir()) == ["README.md", "tmp-link"]
    assert (workspace / "README.md").read_bytes() == README
    run.assert_secret_hidden(inputs.get("github_token", TOKEN))


def test_readme_without_markers_is_left_alone(image, github, tmp_path):
    workspace = make_workspace(tmp_path / "workspace")
    plain = b"# Hi there\n\nNo markers here.\n"
    (workspace / "README.md").write_bytes(plain)
    run = run_action(image, workspace, github.url, readme="README.md", steps="2")
    assert run.returncode == 2, run.stdout + run.stderr
    errors = run.lines("::error::")
    assert len(errors) == 1 and "needs one <!-- raccoon:start --> line" in errors[0]
    assert (workspace / "README.md").read_bytes() == plain
    assert not (workspace / "raccoon.png").exists()  # refused before painting, not after
    assert run.outputs == {} and run.summary == ""
    run.assert_secret_hidden(TOKEN)


def test_documented_docker_run_line_works(image, github, tmp_path):
    """The `docker run` line of examples/docker-run.md, run with podman: no runner, no GITHUB_* files."""
    doc = (ROOT / "examples" / "docker-run.md").read_text()
    line = next(line for line in doc.splitlines() if line.startswith("docker run "))
    workspace = tmp_path / "here"
    workspace.mkdir()
    args = shlex.split(line.replace("$PWD", str(workspace)))[2:]
    assert args[-1] == "raccoon-action"
    args = ["--network", "host", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
            "-e", "GITHUB_API_URL", "-e", "INPUT_STEPS", *args[:-1], image]
    env = {**os.environ, "GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": github.url, "INPUT_STEPS": "2"}
    result = container.podman("run", *args, check=False, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("Painted raccoon.png: the raccoon of ")
    assert TOKEN not in result.stdout + result.stderr
    with Image.open(workspace / "raccoon.png") as png:
        assert png.size == (256, 256)


def test_image_is_under_300_mb(image):
    size = container.image_size_bytes(image)
    print(f"\nimage size: {size / 1e6:.0f} MB")
    assert size < 300e6
