"""Reading a raw photo folder, and a short training run that checkpoints, resumes and restarts from weights."""

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from raccoon.data import difference_hash, load_crops, read_curation, square_around, trim_letterbox

VOC = """<annotation><size><width>{w}</width><height>{h}</height><depth>3</depth></size>
<object><name>raccoon</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>
</annotation>"""


def pattern(seed: int, size=(120, 90)) -> Image.Image:
    """A photo stand-in with structure at several scales, different for every seed."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC)
    return Image.fromarray(np.clip(np.asarray(image, dtype=np.int16) + rng.integers(-20, 20, (*size[::-1], 3)), 0, 255).astype(np.uint8))


@pytest.fixture
def photo_folder(tmp_path):
    """Five distinct photos (one greyscale, one letterboxed, one with a box), an exact copy and a re-encoded copy."""
    photos, notes = tmp_path / "photos", tmp_path / "annotations"
    photos.mkdir(), notes.mkdir()
    for i in range(5):
        pattern(i).save(photos / f"p{i}.png")
    pattern(1).convert("L").save(photos / "p1.png")
    letterboxed = Image.new("RGB", (120, 150), "black")
    letterboxed.paste(pattern(2), (0, 30))
    letterboxed.save(photos / "p2.png")
    (notes / "p3.xml").write_text(VOC.format(w=120, h=90, x0=10, y0=20, x1=50, y1=80))
    (photos / "copy.png").write_bytes((photos / "p0.png").read_bytes())
    buffer = io.BytesIO()
    pattern(4).save(buffer, "JPEG", quality=70)
    (photos / "p4-reencoded.jpg").write_bytes(buffer.getvalue())
    return tmp_path


def write_curation(path, drop=("text",)):
    """A curation file flagging the boxed photo's crop for text and another photo's for a person."""
    crops = [{"photo": "photos/p3.png", "box": 0, "flags": ["text"]}, {"photo": "photos/p1.png", "box": 0,
                                                                         "flags": ["person"]}]
    path.write_text(json.dumps({"drop": list(drop), "crops": crops}))
    return path


def test_crops_drop_duplicates_and_are_rgb(photo_folder):
    crops = load_crops(photo_folder, size=32)
    assert crops.shape == (5, 32, 32, 3) and crops.dtype == np.uint8
    grey = [c for c in crops if np.array_equal(c[..., 0], c[..., 1]) and np.array_equal(c[..., 1], c[..., 2])]
    assert len(grey) == 1


def test_box_crop_is_square_and_inside_the_image():
    assert square_around((10, 20, 50, 80), 120, 90, margin=0.0) == (0, 20, 60, 80)
    left, top, right, bottom = square_around((100, 0, 120, 90), 120, 90)
    assert right - left == bottom - top == 90 and right <= 120 and left >= 0


def test_context_widens_the_crop_around_the_same_centre(tmp_path):
    (tmp_path / "photos").mkdir()
    photo = Image.new("RGB", (200, 200), "grey")
    photo.paste((255, 0, 0), (60, 60, 140, 140))
    photo.save(tmp_path / "photos" / "box.png")
    (tmp_path / "box.xml").write_text(VOC.format(w=200, h=200, x0=60, y0=60, x1=140, y1=140))
    for context in (1.0, 1.25):
        crop = load_crops(tmp_path, size=64, context=context)[0].astype(int)
        red = (crop[..., 0] > 200) & (crop[..., 1] < 50)
        assert red.mean() == pytest.approx((1 / (1.15 * context)) ** 2, abs=0.03)
        rows, columns = np.nonzero(red)
        assert abs(rows.mean() - 31.5) < 1 and abs(columns.mean() - 31.5) < 1  # still centred on the box


def test_jitter_zooms_and_shifts_around_the_plain_crop():
    from raccoon.train import JITTER_CONTEXT, augment

    side = 160
    inner = round(side / JITTER_CONTEXT)  # the plain crop: white, the extra context: black
    source = -torch.ones(1, 3, side, side)
    start = (side - inner) // 2
    source[..., start : start + inner, start : start + inner] = 1
    black = np.array([(augment(source, 64, 0.1) < 0).float().mean().item() for _ in range(60)])
    assert black.max() < 0.35 and black.min() < 0.02 and black.max() > 0.05  # zooms in and out, never far

    plain = torch.rand(8, 3, 64, 64)
    flipped = augment(plain, 64, 0.0)
    assert all(torch.equal(f, p) or torch.equal(f, p.flip(2)) for f, p in zip(flipped, plain))


def test_letterbox_bars_are_trimmed():
    image = Image.new("RGB", (120, 150), "black")
    image.paste(pattern(7), (0, 30))
    trimmed, dx, dy = trim_letterbox(image)
    assert trimmed.size == (120, 90) and (dx, dy) == (0, 30)


def test_difference_hash_sees_near_copies_not_other_photos():
    a, b = difference_hash(pattern(1)), difference_hash(pattern(2))
    buffer = io.BytesIO()
    pattern(1).resize((100, 75)).save(buffer, "JPEG", quality=60)
    near = difference_hash(Image.open(buffer))
    assert bin(a ^ near).count("1") <= 6 < bin(a ^ b).count("1")


def test_a_curation_file_leaves_out_the_crops_its_flags_rule_out(photo_folder, tmp_path):
    path = write_curation(tmp_path / "curation.json")
    left_out, drop, digest = read_curation(path)
    assert left_out == {("photos/p3.png", 0)} and drop == ["text"]
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    every, curated = load_crops(photo_folder, size=32), load_crops(photo_folder, size=32, leave_out=left_out)
    kept = [any(np.array_equal(c, e) for c in curated) for e in every]
    assert len(curated) == 4 and kept.count(False) == 1
    alone = tmp_path / "alone"  # the crop that went is the boxed photo's
    (alone / "photos").mkdir(parents=True)
    (alone / "photos" / "p3.png").write_bytes((photo_folder / "photos" / "p3.png").read_bytes())
    (alone / "p3.xml").write_text((photo_folder / "annotations" / "p3.xml").read_text())
    assert np.array_equal(every[kept.index(False)], load_crops(alone, size=32)[0])

    everything = read_curation(write_curation(tmp_path / "all.json", drop=("text", "person")))[0]
    with pytest.raises(FileNotFoundError, match="every crop under .* is left out"):
        load_crops(alone, leave_out=everything)


def test_empty_or_missing_folder_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no photos"):
        load_crops(tmp_path)
    with pytest.raises(FileNotFoundError, match="no folder"):
        load_crops(tmp_path / "missing")


@pytest.mark.parametrize("problem, flags, message", [
    ("missing --init", ["--init", "{tmp}/nowhere"], "--init: no weights at {tmp}/nowhere (config.json missing)"),
    ("no photos", ["--data", "{tmp}/empty"], "--data: no photos (jpg, jpeg, png) under {tmp}/empty"),
    ("no data folder", ["--data", "{tmp}/missing"], "--data: no folder {tmp}/missing"),
    ("not an image", ["--data", "{tmp}/broken"],
     "--data: cannot read {tmp}/broken/photo.png: cannot identify image file"),
    ("boxes not VOC", ["--data", "{tmp}/badboxes"],
     "--data: cannot read the boxes in {tmp}/badboxes/photo.xml: not a Pascal VOC annotation"),
    ("missing curation", ["--curation", "{tmp}/nowhere.json"],
     "--curation: cannot read {tmp}/nowhere.json: No such file or directory"),
    ("not a curation file", ["--curation", "{tmp}/broken/photo.png"],
     "--curation: {tmp}/broken/photo.png is not a curation file"),
    ("zero batch", ["--batch", "0"], "argument --batch: must be at least 1, got 0"),
    ("zero warm-up", ["--warmup", "0"], "argument --warmup: must be at least 1, got 0"),
    ("too much jitter", ["--jitter", "0.5"], "argument --jitter: must be between 0 and 0.25, got 0.5"),
    ("no sampling steps", ["--sample-steps", "0"], "argument --sample-steps: must be between 1 and 1000, got 0"),
])
def test_bad_training_input_is_one_line_and_exit_code_2(problem, flags, message, photo_folder, tmp_path, capsys):
    from raccoon import train

    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "photo.png").write_text("<html>not a photo</html>")
    (tmp_path / "badboxes").mkdir()
    (tmp_path / "badboxes" / "photo.png").write_bytes((photo_folder / "photos" / "p3.png").read_bytes())
    (tmp_path / "badboxes" / "photo.xml").write_text("<annotation><object><bndbox><xmin>ten</xmin>")
    flags = [flag.format(tmp=tmp_path) for flag in flags]
    data = [] if "--data" in flags else ["--data", str(photo_folder)]  # --data adds a folder: the bad one alone
    argv = [*data, "--init", "none", "--run", str(tmp_path / "run"), "--max-steps", "1", *flags]
    assert train.main(argv) == 2, problem
    err = capsys.readouterr().err  # after the photo-reading progress bar, if it got that far
    assert err.splitlines()[-1].startswith("raccoon train: error: " + message.format(tmp=tmp_path))
    assert "Traceback" not in err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_a_batch_must_split_evenly_over_the_processes():
    from raccoon import train

    args = train.parse_args(["--data", "photos", "--batch", "6"])
    assert train.adopt_recipe({"steps": 0}, args, world_size=3) == float("inf")
    with pytest.raises(train.TrainError, match="a batch of 6 does not split evenly over 4 processes"):
        train.adopt_recipe({"steps": 0}, args, world_size=4)


def test_training_checkpoints_resumes_and_restarts_from_weights(photo_folder, tmp_path_factory):
    from raccoon import train
    from raccoon.pretrained import load_weights

    def tiny_run(folder, *flags):
        return ["--data", str(photo_folder), "--batch", "4", "--sample-steps", "2", "--run", str(folder), *flags]

    runs = tmp_path_factory.mktemp("runs")  # not under the photos: a run's sample grids are PNGs too
    run = runs / "run"
    assert train.main(tiny_run(run, "--init", "none", "--max-steps", "2", "--lr", "1e-4")) == 0
    config, first = load_weights(run / "weights")
    assert config["training"]["steps"] == 2 and config["training"]["crops"] == 5
    assert (run / "checkpoint.pt").exists() and list((run / "samples").glob("step-000002.png"))
    assert len((run / "log.jsonl").read_text().splitlines()) == 2
    assert not list(run.rglob("*.tmp"))  # every file written through a temporary one and renamed

    assert train.main(tiny_run(run, "--max-steps", "3")) == 0  # resumes the checkpoint
    config, second = load_weights(run / "weights")
    assert config["training"]["steps"] == 3 and config["training"]["lr"] == 1e-4  # the run keeps its recipe
    with Image.open(run / "samples" / "step-000003.png") as grid, Image.open(run / "trajectory.png") as trajectory:
        assert trajectory.height == 2 * grid.width // 8  # one row of 8 samples for each progress grid
    assert any(not np.array_equal(first[k], second[k]) for k in first)

    fresh = runs / "fresh"  # the run folder is gone: start again from the saved weights, on curated crops
    curation = str(write_curation(runs / "curation.json"))
    assert train.main(tiny_run(fresh, "--init", str(run / "weights"), "--max-steps", "4", "--jitter", "0.05",
                               "--curation", curation)) == 0
    config = json.loads((fresh / "weights" / "config.json").read_text())
    assert config["training"]["steps"] == 4 and config["training"]["cpu_hours"] > 0
    assert config["training"]["jitter"] == 0.05 and config["training"]["lr"] == 1e-4
    digest = hashlib.sha256(Path(curation).read_bytes()).hexdigest()
    assert config["training"]["crops"] == 4 and config["training"]["curation"] == {
        "file": "curation.json", "sha256": digest, "drop": ["text"], "left_out": 1, "since_step": 3}

    assert train.main(tiny_run(fresh, "--cooldown", "2", "--minutes", "5", "--curation", curation)) == 0
    cooled = json.loads((fresh / "weights" / "config.json").read_text())["training"]  # resumed at 4, stopped at 6
    assert cooled["steps"] == 6 and cooled["cooldown"] == [4, 6] and cooled["curation"]["since_step"] == 3
    again = runs / "again"
    assert train.main(tiny_run(again, "--init", str(fresh / "weights"), "--max-steps", "7")) == 0
    record = json.loads((again / "weights" / "config.json").read_text())["training"]
    assert "cooldown" not in record and "curation" not in record and record["crops"] == 5


def test_learning_rate_warms_up_then_cools_down_linearly_to_zero():
    from raccoon.train import learning_rate

    record = {"lr": 1e-3, "warmup": 10}
    assert [learning_rate(record, s) for s in (0, 4, 9, 500)] == pytest.approx([1e-4, 5e-4, 1e-3, 1e-3])
    record["cooldown"] = [500, 600]
    assert [learning_rate(record, s) for s in (500, 550, 599)] == pytest.approx([1e-3, 5e-4, 1e-5])
