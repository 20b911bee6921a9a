"""Shared fixtures: a clean environment, a CLI runner, a tiny real model (and one that chooses among candidates), a
fake GitHub, a throwaway git repository."""

import datetime
import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))  # lets tests import fake_github

from fake_github import FakeGitHub  # noqa: E402

from raccoon.cli import main  # noqa: E402
from raccoon.model import UNetConfig  # noqa: E402

TINY_UNET = UNetConfig(channels=(32, 32, 64, 64), head_channels=32, groups=8, dropout=0.0)


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """Tests see neither the CI they run in, nor the developer's zone, git config or token; GitHub waits are short."""
    for name in ("GITHUB_ACTIONS", "GITHUB_TOKEN", "GITHUB_API_URL", "TZ", "RACCOON_WEIGHTS",
                 "RACCOON_GITHUB_RETRIES", "RACCOON_GITHUB_TIMEOUT", "GIT_DIR", "GIT_WORK_TREE", "GIT_AUTHOR_EMAIL",
                 "EMAIL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-global-gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("RACCOON_GITHUB_BACKOFF", "0.01")
    monkeypatch.setenv("RACCOON_GITHUB_MAX_WAIT", "3")


def save_tiny_network(folder: Path, seed: int) -> Path:
    """A small random network of the shipped architecture, saved as shipped weights are."""
    import torch

    from raccoon.diffusion import Schedule
    from raccoon.model import UNet
    from raccoon.pretrained import save_pretrained

    torch.manual_seed(seed)
    net = UNet(TINY_UNET)
    for p in net.parameters():  # random everywhere, so every layer shapes the picture
        torch.nn.init.normal_(p, std=0.05)
    state = {k: v.numpy() for k, v in net.state_dict().items()}
    save_pretrained(folder, state, TINY_UNET.to_dict(), Schedule("cosine", "v"), {"steps": 0})
    return folder


def copy_weights(source: Path, destination: Path) -> Path:
    destination.mkdir(exist_ok=True)
    for f in source.iterdir():
        (destination / f.name).write_bytes(f.read_bytes())
    return destination


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """The tiny network, exported as shipped weights are."""
    from raccoon.export import export

    folder = save_tiny_network(tmp_path_factory.mktemp("tiny-weights"), seed=0)
    export(folder)
    return folder


@pytest.fixture(scope="session")
def guided_weights(tmp_path_factory, tiny_weights) -> Path:
    """The tiny network shipping another one as its autoguidance network, at guidance 2."""
    from raccoon.pretrained import attach_guide

    folder = copy_weights(tiny_weights, tmp_path_factory.mktemp("tiny-guided"))
    attach_guide(folder, save_tiny_network(tmp_path_factory.mktemp("tiny-guide"), seed=1), guidance=2.0)
    return folder


def photos(folder, count=6):
    """Smooth coloured scenes, as photos the data loader crops."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(small).resize((96, 80), Image.Resampling.BICUBIC).save(folder / f"p{i}.png")
    return folder


@pytest.fixture(scope="session")
def chooser_weights(tmp_path_factory, guided_weights):
    """The tiny guided network with the real scorer (EfficientNet-Lite0) and a few fixture photos' features, best of
    3 chosen at noise level 2.3 (the shipped level)."""
    from raccoon.export import export_scorer

    folder = copy_weights(guided_weights, tmp_path_factory.mktemp("tiny-chooser"))
    export_scorer(folder, photos(tmp_path_factory.mktemp("photos") / "photos"), candidates=3, noise_level=2.3)
    return folder


@pytest.fixture
def tiny_model(monkeypatch, clean_env, tiny_weights):
    """Paint with the tiny network instead of the shipped one: the real runtime, a fraction of the time."""
    monkeypatch.setenv("RACCOON_WEIGHTS", str(tiny_weights))


@dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def raccoon(capsys, monkeypatch, clean_env):
    """Run `raccoon ARGS...` in-process; `stdin=` feeds text to `--commits -`."""

    def run(*argv, stdin: str = "") -> Run:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = main([str(arg) for arg in argv])
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run


@pytest.fixture
def fake_github():
    server = FakeGitHub(users={"octocat"}).start()
    yield server
    server.stop()


class GitRepo:
    """A repository whose commits get the author dates and emails a test asks for."""

    def __init__(self, path: Path, email: str = "me@example.com"):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")
        self.git("config", "user.email", email)
        self.git("config", "user.name", "Me")

    def git(self, *args, env=None) -> str:
        return subprocess.run(["git", *args], cwd=self.path, check=True, capture_output=True, text=True,
                              env={**os.environ, **(env or {})}).stdout.strip()

    def commit(self, when: datetime.datetime, email: str | None = None, message: str = "work") -> str:
        stamp = f"{int(when.timestamp())} +0000"
        env = {"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}
        if email:
            env["GIT_AUTHOR_EMAIL"] = email
        self.git("commit", "-q", "--allow-empty", "-m", message, env=env)
        return self.git("rev-parse", "HEAD")


@pytest.fixture
def git_repo(tmp_path, clean_env) -> GitRepo:
    return GitRepo(tmp_path / "repo")
