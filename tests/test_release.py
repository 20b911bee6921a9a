"""What a release ships: scripts/release.py, the release workflow's tags and commit, and the image's hashed lock.

The workflow itself runs only on GitHub (it pushes to ghcr.io); here its git steps run against a local bare
repository standing in for origin, its pin step on this action.yml, and the image it would push is built from
the Dockerfile and checked for what the lock promises and what the version policy promises: the pinned days'
raccoons, byte for byte.
"""

import datetime
import hashlib
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import container
from fake_github import FakeCommit, FakeGitHub
from test_reproducibility import PINNED_DAYS

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "release.py"
RELEASE = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())
IMAGE = "ghcr.io/octo-org/raccoon-action"
DIGEST = "sha256:" + "0123456789abcdef" * 4
PINNED = f"docker://{IMAGE}@{DIGEST}"
# Packages the Dockerfile removes from the image's venv after installing the lock (it says why).
REMOVED_AFTER_INSTALL = {"cryptography", "tzdata"}


def load_script():
    spec = importlib.util.spec_from_file_location("release", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


release = load_script()


def run_script(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          timeout=60)


def changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    old, new = before.splitlines(keepends=True), after.splitlines(keepends=True)
    assert len(old) == len(new)
    return [(a, b) for a, b in zip(old, new) if a != b]


# ----------------------------------------------------------------------------------------- pin-image


def test_pins_only_runs_image_of_this_action():
    text = (ROOT / "action.yml").read_text()
    pinned = release.pin_image(text, IMAGE, DIGEST)
    assert changed_lines(text, pinned) == [("  image: Dockerfile\n", f"  image: {PINNED}\n")]
    before, after = yaml.safe_load(text), yaml.safe_load(pinned)
    assert after["runs"] == {"using": "docker", "image": PINNED}
    after["runs"]["image"] = before["runs"]["image"]
    assert after == before


def test_main_builds_from_the_dockerfile():
    """`main` and forks build the image (`uses: ./`); only a release commit names the prebuilt one."""
    assert yaml.safe_load((ROOT / "action.yml").read_text())["runs"] == {"using": "docker", "image": "Dockerfile"}


TRICKY = (
    "# image: Dockerfile  (a comment that looks like the key)\r\n"
    "name: 'Tricky'\r\n"
    "description: |\r\n"
    "  runs:\r\n"
    "    image: not-this-one\r\n"
    "inputs:\r\n"
    "  image:\r\n"
    "    description: an input named image\r\n"
    "    default: Dockerfile\r\n"
    "runs:   # the real one\r\n"
    "\r\n"
    "    # image: commented out\r\n"
    "    image: 'Dockerfile'   # built on every run\r\n"
    "    args:\r\n"
    "      - image: Dockerfile\r\n"
    "    using: \"docker\"\r\n"
    "    env:\r\n"
    "      image: Dockerfile\r\n"
    "branding:\r\n"
    "  color: gray-dark\r\n"
    "no final newline: true"
)


def test_keeps_every_other_byte(tmp_path):
    action = tmp_path / "action.yml"
    action.write_bytes(TRICKY.encode())
    action.chmod(0o640)
    result = run_script("pin-image", IMAGE, DIGEST, "--action", action)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"action.yml: runs.image is {PINNED}\n"
    after = action.read_bytes().decode()
    assert changed_lines(TRICKY, after) == [("    image: 'Dockerfile'   # built on every run\r\n",
                                             f"    image: '{PINNED}'   # built on every run\r\n")]
    assert action.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["action.yml"]  # no temporary file left behind
    parsed = yaml.safe_load(after)
    assert parsed["runs"]["image"] == PINNED and parsed["inputs"]["image"]["default"] == "Dockerfile"
    assert parsed["runs"]["args"] == [{"image": "Dockerfile"}] and parsed["runs"]["env"] == {"image": "Dockerfile"}


@pytest.mark.parametrize("digest", [
    "sha256:abc",
    "sha256:" + "0123456789ABCDEF" * 4,
    "sha512:" + "0" * 128,
    "0123456789abcdef" * 4,
    "sha256:" + "0" * 65,
    "sha256:" + "0" * 64 + "\n  using: node20",
    "",
], ids=["short", "uppercase", "sha512", "no-algorithm", "too-long", "newline", "empty"])
def test_refuses_a_malformed_digest_in_one_line(tmp_path, digest):
    action = tmp_path / "action.yml"
    action.write_bytes((ROOT / "action.yml").read_bytes())
    result = run_script("pin-image", IMAGE, digest, "--action", action)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("release.py: error: digest ") and "sha256: followed by 64" in result.stderr
    assert action.read_bytes() == (ROOT / "action.yml").read_bytes()


@pytest.mark.parametrize("runs, message", [
    ("runs:\n  using: node20\n  main: dist/index.js\n", "runs.using is 'node20', not 'docker': only a Docker action"),
    ("runs:\n  using: composite\n  steps: []\n", "runs.using is 'composite', not 'docker'"),
    ("runs:\n  image: Dockerfile\n", "runs.using is '', not 'docker'"),
    ("runs:\n  using: docker\n", "runs has no image: key"),
    ("runs: {using: docker, image: Dockerfile}\n", "runs: must be a block mapping"),
    ("runs:\n  using: docker\n  image: Dockerfile\nruns:\n  using: docker\n", "more than one top-level runs: key"),
    ("name: no runs\n", "no top-level runs: key"),
    ("runs:\n  using: docker\n  image: >\n    Dockerfile\n", "runs.image must be a one-line value"),
    ("runs:\n  using: docker\n  image: docker://ghcr.io/a/b@sha256:" + "1" * 64 + "\n", "runs.image is already"),
], ids=["node", "composite", "no-using", "no-image", "flow", "two-runs", "no-runs", "folded", "already-pinned"])
def test_refuses_what_it_cannot_pin_in_one_line(tmp_path, runs, message):
    action = tmp_path / "action.yml"
    text = f"name: x\ndescription: y\n{runs}"
    action.write_text(text)
    result = run_script("pin-image", IMAGE, DIGEST, "--action", action)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert action.read_text() == text


@pytest.mark.parametrize("image", ["ghcr.io/Octo-Org/raccoon-action", "ghcr.io", "ghcr.io/a b/c", "ghcr.io/a/b:v1",
                                   "ghcr.io/a/b@sha256:" + "0" * 64])
def test_refuses_an_image_name_a_registry_would_not_take(tmp_path, image):
    action = tmp_path / "action.yml"
    action.write_bytes((ROOT / "action.yml").read_bytes())
    result = run_script("pin-image", image, DIGEST, "--action", action)
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "is not a registry image name" in result.stderr


def test_a_missing_action_file_is_one_line(tmp_path):
    result = run_script("pin-image", IMAGE, DIGEST, "--action", tmp_path / "nope.yml")
    assert result.returncode == 1 and result.stderr.startswith("release.py: error: ") and result.stderr.count("\n") == 1


# -------------------------------------------------------------------------------------------- version


def test_version_names_the_tags(tmp_path):
    init = tmp_path / "__init__.py"
    init.write_text('"""A package."""\n\n__version__ = "1.12.0"\n')
    for given in ("1.12.0", "v1.12.0"):
        result = run_script("version", given, "--package", init)
        assert result.returncode == 0, result.stderr
        assert result.stdout == "version=1.12.0\ntag=v1.12.0\nminor=v1.12\nmajor=v1\n"


@pytest.mark.parametrize("given, message", [
    ("1.12.1", "version 1.12.1 is not the package's version 1.12.0"),
    ("v1.12", "is not X.Y.Z"), ("1.012.0", "is not X.Y.Z"), ("v1.12.0-rc1", "is not X.Y.Z"),
    ("refs/tags/v1.12.0", "is not X.Y.Z"), ("main", "is not X.Y.Z"),
])
def test_version_refuses_in_one_line(tmp_path, given, message):
    init = tmp_path / "__init__.py"
    init.write_text('__version__ = "1.12.0"\n')
    result = run_script("version", given, "--package", init)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def test_version_reads_the_package_by_default():
    text = (ROOT / "raccoon" / "__init__.py").read_text()
    version = re.search(r'^__version__ = "([^"]+)"', text, re.M)[1]
    assert release.package_version(ROOT / "raccoon" / "__init__.py") == version
    result = run_script("version", f"v{version}")
    assert result.returncode == 0 and f"tag=v{version}\n" in result.stdout


# -------------------------------------------------------------------------------------------- notes


CHANGELOG = """# Changes

## 1.13.0 (2027-01-02)

New weights: every day's raccoon changes.

## v1.12.0

- A fix.

## 1.1.0
"""


@pytest.mark.parametrize("given, section", [("1.13.0", "New weights: every day's raccoon changes."),
                                            ("v1.12.0", "- A fix.")])
def test_notes_print_the_releases_section(tmp_path, given, section):
    (tmp_path / "CHANGELOG.md").write_text(CHANGELOG)
    result = run_script("notes", given, "--changelog", tmp_path / "CHANGELOG.md")
    assert result.returncode == 0, result.stderr
    assert result.stdout == section + "\n"


@pytest.mark.parametrize("given, message", [("1.14.0", "CHANGELOG.md has no '## 1.14.0' section"),
                                            ("1.1.0", "'## 1.1.0' section is empty"),
                                            ("1.13", "no '## 1.13' section")])
def test_notes_refuse_a_release_the_changelog_does_not_describe(tmp_path, given, message):
    (tmp_path / "CHANGELOG.md").write_text(CHANGELOG)
    result = run_script("notes", given, "--changelog", tmp_path / "CHANGELOG.md")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def test_the_package_version_has_its_notes():
    version = release.package_version(ROOT / "raccoon" / "__init__.py")
    result = run_script("notes", version)
    assert result.returncode == 0 and result.stdout.strip(), result.stderr


# ----------------------------------------------------------------------------------- the release workflow


def step(name_start: str) -> dict:
    steps = RELEASE["jobs"]["release"]["steps"]
    found = [s for s in steps if s.get("name", "").startswith(name_start)]
    assert len(found) == 1, f"one step named {name_start!r}…"
    return found[0]


def test_release_workflow_triggers_and_permissions():
    triggers = RELEASE.get("on", RELEASE.get(True))
    assert triggers["push"] == {"tags": ["v[0-9]+.[0-9]+.[0-9]+"]}
    assert triggers["workflow_dispatch"]["inputs"]["version"]["required"] is True
    assert RELEASE["permissions"] == {}
    assert RELEASE["jobs"]["release"]["permissions"] == {"contents": "write", "packages": "write"}


def test_release_workflow_checks_the_image_before_it_tags():
    steps = RELEASE["jobs"]["release"]["steps"]
    order = [s.get("name") or s.get("uses") for s in steps]
    pin = order.index("Point action.yml at the image by digest")
    uses_itself = next(n for n, s in enumerate(steps) if s.get("uses") == "./")
    tag = next(n for n, s in enumerate(steps) if "git push" in s.get("run", ""))
    assert pin < order.index("Pull the image anonymously") < uses_itself < tag
    assert "docker logout ghcr.io" in step("Pull the image anonymously")["run"]
    build = next(s for s in steps if s.get("id") == "build")
    assert build["with"]["push"] is True and build["with"]["platforms"] == "linux/amd64"
    assert build["with"]["no-cache"] is True
    assert "scripts/release.py pin-image" in step("Point action.yml")["run"]
    assert "${{ steps.build.outputs.digest }}" == step("Point action.yml")["env"]["DIGEST"]


def git(*args, cwd, env=None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}).stdout.strip()


@pytest.fixture
def origin(tmp_path, monkeypatch):
    """A bare repository standing in for GitHub, whose main holds this action.yml, and a checkout of it."""
    for name, value in {"GIT_CONFIG_GLOBAL": str(tmp_path / "gitconfig"), "GIT_CONFIG_NOSYSTEM": "1",
                        "GIT_AUTHOR_NAME": "dev", "GIT_AUTHOR_EMAIL": "dev@example.com",
                        "GIT_COMMITTER_NAME": "dev", "GIT_COMMITTER_EMAIL": "dev@example.com"}.items():
        monkeypatch.setenv(name, value)
    bare = tmp_path / "origin.git"
    git("init", "--quiet", "--bare", "--initial-branch=main", str(bare), cwd=tmp_path)
    work = tmp_path / "dev"
    git("clone", "--quiet", str(bare), str(work), cwd=tmp_path)
    (work / "action.yml").write_bytes((ROOT / "action.yml").read_bytes())
    (work / "scripts").mkdir()
    (work / "scripts" / "release.py").write_bytes(SCRIPT.read_bytes())
    git("add", ".", cwd=work)
    git("commit", "--quiet", "-m", "main", cwd=work)
    git("push", "--quiet", "origin", "main", cwd=work)
    return bare, work


def run_release_steps(origin_repo: Path, source: Path, tmp_path: Path, version: str, digest: str,
                      pushed_tag: bool) -> None:
    """The release job's pin and tag steps, as the runner runs them, in a fresh checkout of `source`'s HEAD."""
    checkout = tmp_path / f"runner-{version}"
    git("clone", "--quiet", str(origin_repo), str(checkout), cwd=tmp_path)
    sha = git("rev-parse", "HEAD", cwd=source)
    if pushed_tag:  # actions/checkout of a tag push: the tag's commit, detached
        git("fetch", "--quiet", "origin", f"refs/tags/v{version}:refs/tags/v{version}", cwd=checkout)
        git("checkout", "--quiet", "--detach", f"v{version}", cwd=checkout)
    major, minor, _ = version.split(".")
    env = {**os.environ, "GITHUB_SHA": sha, "TAG": f"v{version}", "MINOR": f"v{major}.{minor}",
           "MAJOR": f"v{major}", "IMAGE": IMAGE, "DIGEST": digest}
    for name in ("Point action.yml at the image by digest", "Commit action.yml beside main"):
        subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step(name)["run"]],
                       cwd=checkout, env=env, check=True, capture_output=True, text=True)


def test_release_steps_tag_a_commit_beside_main(origin, tmp_path):
    bare, work = origin
    main_before = git("rev-parse", "main", cwd=bare)
    # v1.0.0 pushed as a tag on main, as docs/releasing.md says; v1.0.1 dispatched by hand from main.
    git("tag", "v1.0.0", cwd=work)
    git("push", "--quiet", "origin", "v1.0.0", cwd=work)
    run_release_steps(bare, work, tmp_path, "1.0.0", DIGEST, pushed_tag=True)
    digest2 = "sha256:" + "f" * 64
    run_release_steps(bare, work, tmp_path, "1.0.1", digest2, pushed_tag=False)

    assert git("rev-parse", "main", cwd=bare) == main_before
    assert git("show", "main:action.yml", cwd=bare) == (ROOT / "action.yml").read_text().rstrip("\n")
    for version, digest in (("1.0.0", DIGEST), ("1.0.1", digest2)):
        commit = git("rev-parse", f"v{version}^{{commit}}", cwd=bare)
        assert git("rev-parse", f"{commit}^", cwd=bare) == main_before  # a child of main, not on it
        assert git("cat-file", "-t", f"v{version}", cwd=bare) == "tag"  # annotated
        diff = git("diff", main_before, commit, cwd=bare)
        assert [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")] == [
            "-  image: Dockerfile", f"+  image: docker://{IMAGE}@{digest}"]
    latest = git("rev-parse", "v1.0.1^{commit}", cwd=bare)
    assert git("rev-parse", "v1^{commit}", cwd=bare) == latest
    assert git("rev-parse", "v1.0^{commit}", cwd=bare) == latest
    assert git("for-each-ref", "--format=%(refname)", "refs/heads", cwd=bare) == "refs/heads/main"


# ------------------------------------------------------------------------------------ the image's lock


def lock_entries() -> dict[str, str]:
    """requirements.txt: {canonical name: version}, after checking each entry is pinned and hashed."""
    text = (ROOT / "requirements.txt").read_text()
    entries = {}
    for block in re.split(r"\n(?=[A-Za-z])", text.split("\n\n", 1)[-1] if text.startswith("#") else text):
        lines = [line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith("#")]
        if not lines:
            continue
        head = lines[0].rstrip("\\").strip()
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;]+)", head)
        assert match, f"requirements.txt: {head!r} is not name==version"
        hashes = [line for line in lines[1:] if line.startswith("--hash=sha256:")]
        assert hashes and len(hashes) == len(lines) - 1, f"requirements.txt: {head} has no hashes"
        entries[canonicalize_name(match[1])] = match[2]
    return entries


def test_lock_is_generated_hashed_and_complete():
    text = (ROOT / "requirements.txt").read_text()
    assert "#    pip-compile --generate-hashes --output-file=requirements.txt --strip-extras requirements.in" in text
    entries = lock_entries()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(line) for line in project["dependencies"]]
    for requirement in wanted:
        name = canonicalize_name(requirement.name)
        assert name in entries, f"{requirement.name} is not in requirements.txt"
        assert requirement.specifier.contains(entries[name]), f"the lock's {name} {entries[name]} is not {requirement}"
    in_file = [Requirement(line) for line in (ROOT / "requirements.in").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    assert {(canonicalize_name(r.name), str(r.specifier)) for r in in_file} == \
           {(canonicalize_name(r.name), str(r.specifier)) for r in wanted}, "requirements.in is not pyproject's list"


def test_dockerfile_installs_the_lock_with_hashes_only():
    dockerfile = (ROOT / "Dockerfile").read_text()
    installs = [line for line in dockerfile.replace("\\\n", " ").splitlines() if "pip install" in line]
    assert len(installs) == 1
    assert "--require-hashes" in installs[0] and "--only-binary :all:" in installs[0]
    assert "-r /tmp/requirements.txt" in installs[0]
    assert "COPY requirements.txt /tmp/" in dockerfile
    assert "constraints.txt" not in dockerfile and not (ROOT / "constraints.txt").exists()
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert "!requirements.txt" in ignored


# ---------------------------------------------------------------------------------- the image itself


@pytest.fixture(scope="module")
def image():
    missing = container.missing_tools()
    if missing:
        pytest.skip(f"the container tests need {', '.join(missing)}: run .ci/setup-podman")
    container.build_action_image()  # cached layers when tests/test_action.py built it already
    return container.ACTION_IMAGE


def in_image(image: str, code: str) -> subprocess.CompletedProcess:
    """`python -c code` in the image, offline."""
    return container.podman("run", "--rm", "--network", "none", "--ulimit", "nofile=1024:1024",
                            "--ulimit", "nproc=1024:1024", "--entrypoint", "/opt/venv/bin/python", image, "-c", code,
                            check=False, capture_output=True, text=True, timeout=300)


def test_image_venv_holds_the_lock_and_nothing_else(image):
    listed = in_image(image, "import importlib.metadata as m\n"
                             "for d in m.distributions(): print(d.metadata['Name'], d.version)")
    assert listed.returncode == 0, listed.stderr
    installed = {canonicalize_name(name): version for name, version in
                 (line.split() for line in listed.stdout.splitlines())}
    expected = {name: version for name, version in lock_entries().items() if name not in REMOVED_AFTER_INSTALL}
    assert installed == expected


def test_image_paints_the_pinned_raccoons(image, tmp_path):
    """The version policy's contract: the action in the image a release would push paints the days that
    tests/test_reproducibility.py pins, byte for byte (64 px, the default steps, commits from GitHub's search)."""
    commits = [FakeCommit(sha, "octocat", datetime.datetime.fromisoformat(f"{day}T12:00:00+00:00"))
               for day, shas in PINNED_DAYS for sha in shas]
    fake = FakeGitHub(commits, users={"octocat"}).start()
    try:
        for (day, shas), digest in PINNED_DAYS.items():
            workspace, commands = tmp_path / f"workspace-{day}", tmp_path / f"commands-{day}"
            workspace.mkdir()
            commands.mkdir()
            env = {"GITHUB_API_URL": fake.url, "GITHUB_REPOSITORY_OWNER": "octocat", "RACCOON_GITHUB_RETRIES": "0",
                   "INPUT_USERNAME": "octocat", "INPUT_DATE": day, "INPUT_TIMEZONE": "UTC", "INPUT_SIZE": "64",
                   "INPUT_OUTPUT": "raccoon.png"}
            run = container.run_action(workspace, commands, env)
            assert run.returncode == 0, run.stdout + run.stderr
            assert f"{len(shas)} commits" in run.stdout, run.stdout
            assert hashlib.sha256((workspace / "raccoon.png").read_bytes()).hexdigest() == digest, day
    finally:
        fake.stop()
