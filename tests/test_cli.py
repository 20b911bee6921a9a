"""`raccoon paint` as a user meets it: its JSON, its PNG, and one clear line for every bad input."""

import datetime
import json
import os
import subprocess
import sys
import types
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from PIL import Image

from raccoon.cli import main
from raccoon.painting import local_zone_name
from raccoon.pretrained import default_weights_dir
from raccoon.day import DayRecord

REPO_ROOT = Path(__file__).resolve().parent.parent
SHA_A, SHA_B = "a" * 40, "b" * 40


@pytest.fixture
def workdir(tmp_path, monkeypatch, clean_env) -> Path:
    """An empty directory outside any git repository, as the current directory."""
    directory = tmp_path / "work"
    directory.mkdir()
    monkeypatch.chdir(directory)
    return directory


def paint_list(raccoon, out, *shas, date="2024-01-02", extra=()):
    return raccoon("paint", "--source", "list", "--commits", "-", "--date", date, "--tz", "UTC", "--out", out,
                   "--json", *extra, stdin="\n".join(shas))


@pytest.mark.usefixtures("tiny_model")
def test_json_report_and_png(raccoon, workdir):
    run = paint_list(raccoon, workdir / "r.png", SHA_B, SHA_A)
    assert run.code == 0 and run.err == ""
    report = json.loads(run.out)
    seconds = report.pop("seconds")
    assert report == {
        "date": "2024-01-02", "zone": "UTC",
        "seed": DayRecord.of(datetime.date(2024, 1, 2), [SHA_A, SHA_B]).seed().hex(),
        "commits": 2, "source": "list", "incomplete": False, "on_error": "fail", "fallback": None,
        "output": str(workdir / "r.png"), "gif": None, "readme": None, "readme_changed": False, "size": 256,
        "steps": 50, "backend": "onnx", "guidance": 1.0, "candidates": 1, "candidate": 0,
        "alt": "The raccoon of 2024-01-02, painted by a tiny diffusion model from 2 commits", "warnings": [],
    }
    assert set(seconds) == {"commits", "load", "paint", "write"} and seconds["paint"] > 0
    with Image.open(workdir / "r.png") as picture:
        assert picture.size == (256, 256) and picture.mode == "RGB"
        assert picture.text.keys() == {"raccoon:date", "raccoon:seed", "raccoon:painting"}
        assert (picture.text["raccoon:date"], picture.text["raccoon:seed"]) == ("2024-01-02", report["seed"])


def test_guidance_defaults_to_the_weights_own_and_can_be_turned_off(raccoon, workdir, guided_weights):
    reports, pictures = [], []
    for extra in ((), ("--guidance", "1"), ("--guidance", "2")):
        out = workdir / f"r{len(reports)}.png"
        run = paint_list(raccoon, out, SHA_A, extra=("--weights", guided_weights, "--steps", 5, *extra))
        assert run.code == 0, run.err
        reports.append(json.loads(run.out)["guidance"])
        pictures.append(out.read_bytes())
    assert reports == [2.0, 1.0, 2.0]
    assert pictures[0] == pictures[2] != pictures[1]


@pytest.mark.usefixtures("tiny_model")
def test_guidance_without_a_guide_is_one_line(raccoon, workdir):
    run = paint_list(raccoon, workdir / "r.png", SHA_A, extra=("--guidance", "2"))
    assert run.code == 2 and run.err.count("\n") == 1 and "ship no guide network" in run.err
    assert os.listdir(workdir) == []


@pytest.mark.usefixtures("tiny_model")
def test_gif_shows_every_step_and_ends_on_the_png(raccoon, workdir):
    run = paint_list(raccoon, workdir / "r.png", SHA_A, extra=("--steps", 12, "--size", 64, "--gif", workdir / "r.gif"))
    assert run.code == 0 and json.loads(run.out)["gif"] == str(workdir / "r.gif")
    with Image.open(workdir / "r.gif") as gif, Image.open(workdir / "r.png") as png:
        assert gif.n_frames == 12 and gif.info["loop"] == 0
        gif.seek(11)
        last = np.asarray(gif.convert("RGB"), dtype=int)
        gif.seek(0)
        first = np.asarray(gif.convert("RGB"), dtype=int)
        final = np.asarray(png, dtype=int)
    # GIF frames are palette images (256 colours): the last is the PNG up to that rounding, the first is not
    assert np.abs(last - final).mean() < 16 and np.abs(first - final).mean() > 3 * np.abs(last - final).mean()


@pytest.mark.usefixtures("tiny_model")
def test_friendly_line(raccoon, workdir):
    run = raccoon("paint", "--source", "list", "--commits", "-", "--date", "2024-01-02", "--tz", "Asia/Tokyo",
                  stdin=SHA_A)
    assert run.code == 0
    assert run.out.count("\n") == 1
    assert "raccoon.png" in run.out and "2024-01-02 (Asia/Tokyo)" in run.out and "1 commit from list" in run.out
    assert (workdir / "raccoon.png").is_file()


@pytest.mark.usefixtures("tiny_model")
def test_same_record_same_bytes(raccoon, workdir):
    assert paint_list(raccoon, workdir / "one.png", SHA_A, SHA_B).code == 0
    assert paint_list(raccoon, workdir / "two.png", SHA_B.upper(), SHA_A, SHA_A).code == 0
    assert paint_list(raccoon, workdir / "three.png", SHA_A, SHA_B, date="2024-01-03").code == 0
    one = (workdir / "one.png").read_bytes()
    assert one == (workdir / "two.png").read_bytes()
    assert one != (workdir / "three.png").read_bytes()


@pytest.mark.usefixtures("tiny_model")
@pytest.mark.parametrize("size", [64, 192, 2048])
def test_size_scales_each_pixel_to_a_square(raccoon, workdir, size):
    assert paint_list(raccoon, workdir / "big.png", SHA_A, extra=("--size", size)).code == 0
    assert paint_list(raccoon, workdir / "small.png", SHA_A, extra=("--size", 64)).code == 0
    with Image.open(workdir / "big.png") as big, Image.open(workdir / "small.png") as small:
        assert big.size == (size, size)
        assert big.resize((64, 64), Image.NEAREST).tobytes() == small.tobytes()


@pytest.mark.usefixtures("tiny_model")
def test_default_date_is_today_in_the_zone(raccoon, workdir):
    zone = ZoneInfo("Pacific/Kiritimati")
    before = datetime.datetime.now(zone).date()
    run = raccoon("paint", "--source", "none", "--tz", "Pacific/Kiritimati", "--json")
    after = datetime.datetime.now(zone).date()
    assert json.loads(run.out)["date"] in {before.isoformat(), after.isoformat()}


@pytest.mark.usefixtures("tiny_model")
def test_default_zone_comes_from_tz(raccoon, workdir, monkeypatch):
    monkeypatch.setenv("TZ", ":America/St_Johns")
    run = raccoon("paint", "--source", "none", "--date", "2024-01-02", "--json")
    assert json.loads(run.out)["zone"] == "America/St_Johns"


def test_local_zone_name_falls_back_without_a_usable_tz(monkeypatch):
    monkeypatch.delenv("TZ", raising=False)
    system = local_zone_name()
    ZoneInfo(system)  # always a real zone
    monkeypatch.setenv("TZ", "Not/A_Zone")
    assert local_zone_name() == system
    monkeypatch.setenv("TZ", "Europe/Paris")
    assert local_zone_name() == "Europe/Paris"


@pytest.mark.usefixtures("tiny_model")
def test_auto_source(raccoon, workdir, git_repo, monkeypatch):
    assert json.loads(raccoon("paint", "--date", "2024-01-02", "--json").out)["source"] == "none"
    git_repo.commit(datetime.datetime(2024, 1, 2, 12, tzinfo=datetime.timezone.utc))
    monkeypatch.chdir(git_repo.path)
    report = json.loads(raccoon("paint", "--date", "2024-01-02", "--tz", "UTC", "--out", workdir / "r.png",
                                "--json").out)
    assert report["source"] == "git" and report["commits"] == 1


@pytest.mark.usefixtures("tiny_model")
def test_on_error_date_only_for_a_local_source(raccoon, workdir):
    run = raccoon("paint", "--source", "git", "--on-error", "date-only", "--date", "2024-01-02", "--json")
    assert run.code == 0
    report = json.loads(run.out)
    assert report["fallback"].startswith("not a git repository") and report["commits"] == 0
    assert report["seed"] == DayRecord.of(datetime.date(2024, 1, 2), []).seed().hex()
    assert run.err.startswith("raccoon: warning: not a git repository") and len(run.err.splitlines()) == 1


def corrupt_weights(directory: Path) -> Path:
    directory.mkdir()
    (directory / "config.json").write_text("{ not json")
    return directory


BAD_INPUTS = {
    "impossible date": (["--date", "2024-02-30"], "not a real date"),
    "date in another form": (["--date", "02/01/2024"], "YYYY-MM-DD"),
    "date in other digits": (["--date", "２０２４-０２-０１"], "YYYY-MM-DD"),
    "the last date there is": (["--date", "9999-12-31"], "years 2 to 9998"),
    "the first date there is": (["--date", "0001-01-01"], "years 2 to 9998"),
    "unknown zone": (["--tz", "Mars/Olympus_Mons"], "unknown time zone"),
    "size too small": (["--size", "63"], "between 64 and 2048"),
    "size too big": (["--size", "2049"], "between 64 and 2048"),
    "size not a number": (["--size", "big"], "not a whole number"),
    "no steps": (["--steps", "0"], "between 1 and 1000"),
    "too many steps": (["--steps", "1001"], "between 1 and 1000"),
    "unknown backend": (["--backend", "tensorflow"], "invalid choice"),
    "guidance below 1": (["--guidance", "0.5"], "between 1 (no guidance) and 10"),
    "guidance not a number": (["--guidance", "strong"], "not a number"),
    "unknown flag": (["--colour", "red"], "unrecognized arguments"),
    "missing directory": (["--out", "{tmp}/missing/r.png"], "does not exist"),
    "directory is a file": (["--out", "{badlist}/r.png"], "is a file, not a directory"),
    "name too long": (["--out", "{tmp}/" + "a" * 300 + ".png"], "File name too long"),
    "out is a directory": (["--out", "{tmp}"], "is a directory"),
    "missing weights": (["--weights", "{tmp}/nothing-here"], "no weights"),
    "weights are a file": (["--weights", "{badlist}"], "cannot read weights at"),
    "corrupt weights": (["--weights", "{corrupt}"], "not a valid raccoon weights config"),
    "not a git repository": (["--source", "git"], "not a git repository"),
    "list without a file": (["--source", "list"], "needs --commits"),
    "commits with another source": (["--source", "none", "--commits", "-"], "--commits goes with --source list"),
    "bad line": (["--commits", "{badlist}"], "line 2"),
    "github without a login": (["--source", "github"], "needs --user"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_gets_one_line_and_exit_2(raccoon, workdir, tmp_path, case):
    args, fragment = BAD_INPUTS[case]
    bad_list = tmp_path / "shas.txt"
    bad_list.write_text(f"{SHA_A}\nnot-a-sha\n")
    places = {"tmp": tmp_path, "corrupt": tmp_path / "corrupt", "badlist": bad_list}
    if case == "corrupt weights":
        corrupt_weights(tmp_path / "corrupt")
    args = [arg.format(**places) for arg in args]
    run = raccoon("paint", "--date", "2024-01-02", "--out", workdir / "r.png", *args)
    assert run.code == 2
    assert run.out == ""
    lines = run.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("raccoon: error: "), run.err
    assert fragment in lines[0]
    assert os.listdir(workdir) == []  # no picture, no temporary file


def test_no_command(raccoon):
    run = raccoon()
    assert run.code == 2 and run.err.startswith("raccoon: error: ") and len(run.err.splitlines()) == 1


def test_delegated_commands_get_their_arguments_untouched(monkeypatch):
    calls = []

    def stand_in(name):
        module = types.ModuleType(name)

        def main(argv):
            calls.append((name, argv))
            return 3

        module.main = main
        return module

    for name in ("raccoon.train", "raccoon.export", "raccoon.evaluate"):
        monkeypatch.setitem(sys.modules, name, stand_in(name))
    assert main(["train", "--max-steps", "6", "--help"]) == 3
    assert main(["export", "run/x"]) == 3
    assert main(["eval", "--paint", "-q"]) == 3
    assert calls == [("raccoon.train", ["--max-steps", "6", "--help"]), ("raccoon.export", ["run/x"]),
                     ("raccoon.evaluate", ["--paint", "-q"])]


@pytest.mark.usefixtures("tiny_model")
def test_torch_backend_without_torch_is_one_line(raccoon, workdir, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # as on an install without the train extra
    run = raccoon("paint", "--source", "none", "--backend", "torch", "--out", workdir / "r.png")
    assert run.code == 2
    assert run.err == "raccoon: error: --backend torch needs PyTorch: pip install 'raccoon-action[train]'\n"
    assert os.listdir(workdir) == []


def test_delegated_command_without_torch(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # as on an install without PyTorch
    monkeypatch.delitem(sys.modules, "raccoon.train", raising=False)
    assert main(["train"]) == 2
    assert capsys.readouterr().err == ("raccoon: error: raccoon train needs the train extra (PyTorch, ONNX): "
                                       "pip install 'raccoon-action[train]'\n")


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_paint_never_imports_torch(workdir):
    """With the shipped weights, paint runs to the end; without them it stops at the weights. Neither loads torch."""
    trained = (default_weights_dir() / "config.json").is_file()
    result = run_python(
        "import sys\n"
        "from raccoon.cli import main\n"
        "code = main(['paint', '--source', 'none', '--date', '2024-01-02', '--steps', '2', '--out', 'r.png'])\n"
        "print('torch' in sys.modules)\n"
        "sys.exit(code)\n", workdir)
    assert result.stdout.splitlines()[-1] == "False", result.stdout + result.stderr
    if trained:
        assert result.returncode == 0 and (workdir / "r.png").is_file(), result.stderr
    else:
        assert result.returncode == 2 and result.stderr.startswith("raccoon: error: no weights"), result.stderr


def test_python_dash_m_raccoon(workdir):
    result = subprocess.run([sys.executable, "-m", "raccoon", "paint", "--size", "1"], cwd=workdir,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith("raccoon: error: argument --size: must be between 64 and 2048")
