"""The package as `pip install raccoon-action` gets it: built with `python -m build` (the source archive, then the
wheel from it), installed into a fresh virtual environment, and painting a day from GitHub's commit search,
served by tests/fake_github.py, from a folder outside this checkout.

The environment has no pip of its own (this one's pip installs into it: `pip --python`) and skips bytecode, so
the test costs about the install's unpacking; the wheels come from pip's cache when .ci/run filled it.
"""

import datetime
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import pytest
from packaging.requirements import Requirement

from fake_github import FakeCommit, FakeGitHub
from raccoon import __version__
from raccoon.day import DayRecord

ROOT = Path(__file__).resolve().parent.parent
# Every file the weights' config records (the networks, the graphs, the scorer), and the config itself.
WEIGHTS = ("config.json", *json.loads((ROOT / "weights" / "config.json").read_text())["files"])
TOKEN = "ghp_" + "PackageTestToken" * 2
DAY = datetime.date(2026, 3, 10)
SHAS = [f"{n:040x}" for n in (7, 8, 9)]
COMMITS = [  # the day in Tokyo is [2026-03-10T00:00+09:00, 2026-03-11T00:00+09:00)
    FakeCommit(SHAS[0], "octocat", datetime.datetime.fromisoformat("2026-03-10T00:00:00+09:00")),
    FakeCommit(SHAS[1], "octocat", datetime.datetime.fromisoformat("2026-03-10T14:59:59+00:00")),
    FakeCommit(SHAS[2], "octocat", datetime.datetime.fromisoformat("2026-03-10T15:00:00+00:00")),  # the 11th there
]


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    pytest.importorskip("build", reason="python -m build is in the test extra: pip install -e '.[test]'")
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return out


@pytest.fixture(scope="module")
def wheel(dist) -> Path:
    (found,) = dist.glob("raccoon_action-*.whl")
    return found


def test_wheel_carries_the_weights_the_license_and_the_dependencies(dist, wheel):
    (sdist,) = dist.glob("raccoon_action-*.tar.gz")
    print(f"\nwheel {wheel.stat().st_size / 1e6:.1f} MB, source archive {sdist.stat().st_size / 1e6:.1f} MB")
    assert wheel.name == f"raccoon_action-{__version__}-py3-none-any.whl"
    assert wheel.stat().st_size < 100e6  # PyPI's limit for one file, unless raised on request
    with zipfile.ZipFile(wheel) as archive:
        for name in WEIGHTS:
            shipped = archive.read(f"raccoon/weights/{name}")
            assert hashlib.sha256(shipped).digest() == hashlib.sha256((ROOT / "weights" / name).read_bytes()).digest()
        info = f"raccoon_action-{__version__}.dist-info"
        assert archive.read(f"{info}/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
        metadata = Parser().parsestr(archive.read(f"{info}/METADATA").decode())
    assert metadata["License-Expression"] == "MIT"
    required = {Requirement(line).name.lower() for line in metadata.get_all("Requires-Dist")
                if "extra ==" not in line}
    assert {"pygithub", "requests", "tzdata", "onnxruntime", "numpy", "pillow", "safetensors"} <= required
    assert "torch" not in required
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert {Requirement(line).name.lower() for line in project["dependencies"]} == required


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh virtual environment holding the wheel and what it depends on, and nothing from this checkout."""
    folder = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120)
    python = folder / "bin" / "python"
    result = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-compile",
                             "--disable-pip-version-check", "--quiet", str(wheel)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return folder


def clean_env(**extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("GITHUB_", "RACCOON_", "PYTHON", "VIRTUAL_ENV")) and name not in ("TZ",)}
    return {**env, "RACCOON_GITHUB_RETRIES": "0", **extra}


def test_installed_package_is_the_wheel_not_this_checkout(venv, tmp_path):
    code = "import raccoon, raccoon.pretrained, github, tzdata; print(raccoon.__file__); print(raccoon.__version__)"
    result = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True,
                            cwd=tmp_path, env=clean_env(), timeout=120)
    assert result.returncode == 0, result.stderr
    where, version = result.stdout.split()
    assert Path(where).is_relative_to(venv) and version == __version__


def test_pip_installed_raccoon_paints_from_github(venv, tmp_path):
    """`pip install raccoon-action` then `raccoon paint --source github --user LOGIN`: no extra, no checkout."""
    fake = FakeGitHub(COMMITS, token=TOKEN).start()
    try:
        result = subprocess.run(
            [str(venv / "bin" / "raccoon"), "paint", "--source", "github", "--user", "octocat",
             "--date", DAY.isoformat(), "--tz", "Asia/Tokyo", "--size", "64", "--steps", "2",
             "--out", "raccoon.png", "--json"],
            capture_output=True, text=True, cwd=tmp_path, timeout=300,
            env=clean_env(GITHUB_API_URL=fake.url, GITHUB_TOKEN=TOKEN))
    finally:
        fake.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["source"] == "github" and report["commits"] == 2 and report["date"] == DAY.isoformat()
    assert report["seed"] == DayRecord.of(DAY, SHAS[:2]).seed().hex()
    assert any(TOKEN in (authorization or "") for _, authorization in fake.requests)
    assert (tmp_path / "raccoon.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert TOKEN not in result.stdout + result.stderr
