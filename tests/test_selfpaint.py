"""Curated self-training's data: the network's best raccoons of tuning days, written as photos that `raccoon train`
reads beside the real ones."""

import datetime
import json

import numpy as np
import pytest
from PIL import Image

from conftest import photos
from raccoon import selfpaint, train
from raccoon.data import load_crops
from raccoon.painting import Painter
from raccoon.train import grid_seeds

START = datetime.date(2027, 3, 25)


@pytest.fixture(scope="module")
def self_painted(chooser_weights, tmp_path_factory):
    out = tmp_path_factory.mktemp("self-paint") / "paintings"
    argv = ["--weights", chooser_weights, "--start", START.isoformat(), "--days", "6", "--keep", "3", "--out", out]
    assert selfpaint.main([str(arg) for arg in argv]) == 0
    return out


def test_the_best_paintings_by_the_head_are_kept_best_first(self_painted, chooser_weights):
    record = json.loads((self_painted / selfpaint.RECORD_FILE).read_text())
    painter = Painter.load(chooser_weights)
    images = painter.paint(grid_seeds(6, START)).images
    scores = painter.choice.scorer.rank(images)
    assert record["head_scores"] == pytest.approx(scores.tolist(), abs=1e-6)
    assert record["kept"] == np.argsort(-scores, kind="stable")[:3].tolist()
    assert sorted(p.name for p in self_painted.glob("*.png")) == [f"painting-00{i}.png" for i in range(3)]
    pad = selfpaint.padding(64)
    for rank, day in enumerate(record["kept"]):
        written = np.asarray(Image.open(self_painted / f"painting-{rank:03d}.png"))
        assert written.shape == (64 + 2 * pad, 64 + 2 * pad, 3)
        np.testing.assert_array_equal(written[pad:-pad, pad:-pad], images[day])  # the painting, exactly
        np.testing.assert_array_equal(written[pad - 1, pad:-pad], images[day][1])  # mirrored beyond its edge


def test_training_reads_each_painting_back_as_the_picture_painted(self_painted):
    """The box sits where load_crops boxes a raccoon, so the crop it cuts is the painting, pixel for pixel."""
    crops = load_crops(self_painted)
    assert len(crops) == 3
    pad = selfpaint.padding(64)
    for rank, crop in enumerate(crops):
        painting = np.asarray(Image.open(self_painted / f"painting-{rank:03d}.png"))[pad:-pad, pad:-pad]
        np.testing.assert_array_equal(crop, painting)


def test_training_takes_the_paintings_beside_the_photos(self_painted, tmp_path):
    run = tmp_path / "run"
    argv = ["--data", str(photos(tmp_path / "photos")), "--data", str(self_painted), "--init", "none",
            "--batch", "4", "--sample-steps", "2", "--max-steps", "1", "--run", str(run)]
    assert train.main(argv) == 0
    record = json.loads((run / "weights" / "config.json").read_text())["training"]
    assert record["crops"] == 6 + 3
    assert record["data"] == f"{tmp_path / 'photos'} + {self_painted}"


@pytest.mark.parametrize("problem, flags, message", [
    ("a held-out day", ["--start", "2028-12-30", "--days", "3"],
     "--start 2028-12-30 and --days 3 leave the tuning days (2026-01-01 until 2029-01-01, where the held-out sets "
     "begin)"),
    ("before the tuning days", ["--start", "2025-12-31", "--days", "3"], "--start 2025-12-31 and --days 3 leave"),
    ("more kept than painted", ["--start", "2027-01-01", "--days", "3", "--keep", "4"],
     "--keep 4 is more than the 3 days painted"),
    ("a folder in use", ["--start", "2027-01-01", "--days", "3", "--out", "{tmp}/used"],
     "{tmp}/used is not an empty folder: give a new one, so that no earlier painting is trained on"),
    ("a file", ["--start", "2027-01-01", "--days", "3", "--out", "{tmp}/used/painting-000.png"],
     "{tmp}/used/painting-000.png is not an empty folder"),
    ("no head to rank", ["--start", "2027-01-01", "--days", "3", "--weights", "{tiny}"],
     "{tiny} ships no choice among candidates, so no head to rank its paintings"),
])
def test_bad_input_is_one_line_and_nothing_is_written(problem, flags, message, tiny_weights, chooser_weights,
                                                      tmp_path, capsys):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "painting-000.png").write_bytes(b"an earlier run's")
    flags = [flag.format(tmp=tmp_path, tiny=tiny_weights) for flag in flags]
    argv = ["--weights", str(chooser_weights), "--out", str(tmp_path / "new"), *flags]
    assert selfpaint.main(argv) == 2, problem
    err = capsys.readouterr().err
    assert err.startswith("raccoon self-paint: error: " + message.format(tmp=tmp_path, tiny=tiny_weights))
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "new").exists()
