"""`raccoon eval`: the KID estimator, the pretrained features it uses, the near-copy check, and the files it writes."""

import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from raccoon import evaluate
from raccoon.diffusion import Schedule
from raccoon.evaluate import (
    blurred, features, kid, memorization, mmd2_unbiased, near_copies_of, nearest_in_pixels, uniform_noise, with_flips,
)
from raccoon.export import export
from raccoon.model import UNet, UNetConfig
from raccoon.backends import OnnxDenoiser
from raccoon.painting import Painter
from raccoon.pretrained import save_pretrained
from raccoon.train import grid_seeds

TINY = UNetConfig(channels=(32, 32, 64, 64), head_channels=32, groups=8, dropout=0.0)


@pytest.fixture(autouse=True)
def one_thread():
    """Stay light beside whatever else the machine runs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def scene(seed: int, size: int = 64) -> np.ndarray:
    """A structured stand-in for a photo: a few sharp-edged shapes of random colours on a flat background."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x0, y0 = (int(v) for v in rng.integers(0, size * 3 // 4, 2))
        w, h = (int(v) for v in rng.integers(size // 8, size // 2, 2))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x0, y0, x0 + w, y0 + h), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return np.asarray(image)


def scenes(seeds) -> np.ndarray:
    return np.stack([scene(s) for s in seeds])


def test_unbiased_mmd_matches_a_hand_computed_value():
    # k(a, b) = (ab + 1)^3 in one dimension. Within x: k(0, 1) = 1; within y: k(2, 3) = 343;
    # across: k(0, 2) = k(0, 3) = 1, k(1, 2) = 27, k(1, 3) = 64, mean 23.25. 1 + 343 - 2 * 23.25 = 297.5.
    assert mmd2_unbiased(np.array([[0.0], [1.0]]), np.array([[2.0], [3.0]])) == pytest.approx(297.5)


def test_kid_is_zero_for_one_distribution_and_the_true_mmd_for_two():
    # In one dimension the cubic kernel is (xy + 1)^3 = 1 + 3xy + 3x^2y^2 + x^3y^3, so MMD^2 between X and Y is
    # 3 (E X - E Y)^2 + 3 (E X^2 - E Y^2)^2 + (E X^3 - E Y^3)^2. X = +-1 with equal odds has moments 0, 1, 0;
    # X + 1/2 has 1/2, 5/4, 13/8: MMD^2 = 3/4 + 3/16 + 169/64 = 229/64. Each set holds exactly as many -1 as +1
    # (shuffled), so the moments are exact and only KID's own subset sampling adds noise.
    rng = np.random.default_rng(0)
    a, b, c = (rng.permutation(np.repeat([-1.0, 1.0], 500))[:, None] for _ in range(3))
    same, same_std = kid(a, b)
    different, _ = kid(a, c + 0.5)
    assert abs(same) < 0.05 and same_std > 0
    assert different == pytest.approx(229 / 64, rel=0.05)


def test_features_are_the_pretrained_networks():
    images = scenes(range(4))
    f = features(images)
    assert f.shape == (4, 1280) and np.isfinite(f).all()
    np.testing.assert_allclose(features(images[::-1]), f[::-1], rtol=1e-4, atol=1e-5)
    # The ImageNet weights, not a fresh network: trained BatchNorm statistics are not the initial 0 and 1.
    net = evaluate.feature_net()
    assert net.net._bn1.running_var.std() > 0.1


def test_kid_orders_real_blurred_and_noise():
    """Against a set of scenes, other scenes are closest, blurred scenes further, noise furthest."""
    real, other = features(scenes(range(32))), scenes(range(100, 132))
    kids = [kid(real, features(images))[0] for images in (other, blurred(other, 1.5), uniform_noise(32))]
    assert kids[0] < kids[1] < kids[2]
    assert abs(kids[0]) < 0.03 and kids[1] > 0.1


def test_nearest_in_pixels_sees_through_a_small_shift():
    reals = scenes(range(10))
    moved = np.roll(reals[[3, 7]], shift=(2, -1), axis=(1, 2))
    index, rmse = nearest_in_pixels(moved, reals)
    assert list(index) == [3, 7] and rmse.max() < 1e-9


def test_memorization_flags_near_copies_and_not_new_images():
    reals = scenes(range(12))
    copies = near_copies_of(reals[[2, 5, 9]])
    samples = np.stack([reals[4], copies["shifted_jpeg"][0][:, ::-1], copies["blurred_1px"][1],
                        copies["brightened_10"][2], scene(1000), scene(1001)])
    seeds = grid_seeds(len(samples))
    report, rows = memorization(samples, features(samples), reals, features(with_flips(reals)), seeds)
    flagged = {m["sample"]: m for m in report["near_copies"]}
    assert sorted(flagged) == [0, 1, 2, 3]
    expected = [(4, False), (2, True), (5, False), (9, False)]
    assert [(flagged[i]["in_pixels"]["real"], flagged[i]["in_pixels"]["flipped"]) for i in range(4)] == expected
    assert flagged[0]["in_pixels"]["rmse"] == 0 and flagged[0]["in_features"]["cosine"] == pytest.approx(1)
    assert flagged[0]["seed"] == seeds[0].hex()
    assert report["closest_in_pixels"]["sample"] == 0
    assert rows.shape == (3 * len(samples), 64, 64, 3)  # fewer samples than PAIR_ROWS: all of them
    assert np.array_equal(rows[0], samples[0]) and np.array_equal(rows[1], reals[4])


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    """A small random network, saved and exported as a shipped weights folder is."""
    torch.manual_seed(0)
    net = UNet(TINY)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.05)
    folder = tmp_path_factory.mktemp("weights")
    save_pretrained(folder, {k: v.numpy() for k, v in net.state_dict().items()}, TINY.to_dict(),
                    Schedule("cosine", "v"), {"steps": 7})
    export(folder)
    return folder


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(12):
        Image.fromarray(scene(i, size=96)).save(folder / f"p{i}.png")
    return folder


def test_eval_writes_grid_pairs_and_metrics(tiny_weights, photos, tmp_path, raccoon):
    out = tmp_path / "eval"
    run = raccoon("eval", "--data", photos, "--weights", tiny_weights, "--samples", 10, "--steps", 2,
                  "--batch", 4, "--threads", 1, "--out", out)
    assert run.code == 0, run.err
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"data", "real_crops", "weights", "training_steps", "backend", "guidance", "candidates",
                            "steps", "samples", "split", "feature_net", "kid", "memorization", "recognizability",
                            "seconds"}
    proxies = metrics["recognizability"]["per_sample"]
    assert [p["date"] for p in proxies] == [f"2026-01-{d:02d}" for d in range(1, 11)] and metrics["split"] == "tuning"
    assert [p["seed"] for p in proxies] == [seed.hex() for seed in grid_seeds(10)]
    assert all(-1 <= p["proxy"] <= 1 for p in proxies) and "auc" not in metrics["recognizability"]
    assert metrics["candidates"] == 1 and all(p["candidate"] == 0 for p in proxies)  # no scorer: each day's own
    assert (metrics["real_crops"], metrics["training_steps"], metrics["samples"], metrics["guidance"]) == (12, 7, 10, 1)
    assert set(metrics["kid"]) == {"mean", "std", "subsets"} and np.isfinite(metrics["kid"]["mean"])
    memo = metrics["memorization"]
    assert set(memo) == {"pixel_rmse_threshold", "feature_cosine_threshold", "near_copies", "closest_in_pixels",
                         "closest_in_features", "pixel_rmse_median", "feature_cosine_median"}
    closest = memo["closest_in_pixels"]
    assert 0 <= closest["in_pixels"]["real"] < 12 and closest["in_pixels"]["rmse"] > 0
    assert closest["seed"] in {seed.hex() for seed in grid_seeds(10)}
    assert f"KID {metrics['kid']['mean']:.4f}" in run.out
    # The grid holds the samples of the grid's fixed seeds, in order, at twice their size.
    grid = np.asarray(Image.open(out / "grid.png"))
    assert grid.shape == (2 * 128, 8 * 128, 3)
    first = Painter(OnnxDenoiser(tiny_weights)).paint(grid_seeds(1), steps=2).images[0]
    assert np.abs(grid[:128:2, :128:2].astype(int) - first).max() <= 1
    sheet = np.asarray(Image.open(out / "sheet-1.png"))  # the 10 samples, 4 a row, numbered above each tile
    assert sheet.shape == (3 * (256 + 28), 4 * 256, 3) and not (out / "sheet-2.png").exists()
    assert np.array_equal(sheet[28 : 28 + 256 : 4, 256 : 512 : 4], grid[:128:2, 128:256:2])
    assert Image.open(out / "nearest.png").size == (3 * 128, evaluate.PAIR_ROWS * 128)


def test_auc_counts_the_pairs_a_score_puts_in_order():
    scores = np.array([0.9, 0.8, 0.7, 0.3, 0.3])
    assert evaluate.auc(scores, np.array([True, True, False, False, False])) == 1.0
    assert evaluate.auc(scores, np.array([False, False, True, True, True])) == 0.0
    assert evaluate.auc(scores, np.array([True, False, True, False, False])) == pytest.approx(5 / 6)
    assert evaluate.auc(np.array([0.5, 0.5]), np.array([True, False])) == 0.5


@pytest.mark.parametrize("split, year", [("held-out", 2029), ("held-out-2", 2031), ("held-out-3", 2033),
                                          ("held-out-4", 2035), ("held-out-5", 2037), ("held-out-6", 2039)])
def test_the_proxy_is_scored_against_blind_labels_on_a_split(tiny_weights, photos, tmp_path, raccoon, split, year):
    days = [f"{year}-01-{d:02d}" for d in range(1, 7)]
    labels = {day: {"normal": i % 2 == 0, "strict": i < 2} for i, day in enumerate(days[:5])}
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    out = tmp_path / "eval"
    run = raccoon("eval", "--data", photos, "--weights", tiny_weights, "--samples", 6, "--steps", 2, "--split",
                  split, "--labels", tmp_path / "labels.json", "--threads", 1, "--out", out)
    assert run.code == 0, run.err
    report = json.loads((out / "metrics.json").read_text())["recognizability"]
    assert [p["date"] for p in report["per_sample"]] == days
    assert report["labelled"] == {"normal": 5, "strict": 5} and report["recognized"] == {"normal": 3, "strict": 2}
    proxies = np.array([p["proxy"] for p in report["per_sample"]][:5])
    for name in ("normal", "strict"):
        expected = evaluate.auc(proxies, np.array([labels[day][name] for day in days[:5]]))
        assert report["auc"][name] == pytest.approx(expected)
    assert f"proxy AUC for the normal reviewer {report['auc']['normal']:.2f}" in run.out


def test_sanity_separates_real_from_noise_and_flags_copies(photos, tmp_path, raccoon):
    out = tmp_path / "sanity"
    run = raccoon("eval", "--data", photos, "--sanity", "--threads", 1, "--out", out)
    assert run.code == 0, run.err
    metrics = json.loads((out / "metrics.json").read_text())
    kids = metrics["kid_against_real_half"]
    assert set(kids) == {"real", "blur_0.5px", "blur_1px", "blur_2px", "uniform_noise"}
    assert kids["uniform_noise"]["mean"] > kids["blur_2px"]["mean"] > kids["real"]["mean"]
    calibration = metrics["near_copy_calibration"]
    assert calibration["distinct_crops"]["flagged"] == "0/6"
    assert all(calibration[name]["flagged"] == "6/6" for name in ("shifted_jpeg", "blurred_1px", "brightened_10"))
    assert not (out / "grid.png").exists()


@pytest.mark.parametrize("problem", ["no photos", "no weights", "too few samples", "too few photos", "guidance below 1",
                                     "past the held-out set", "past the second held-out set",
                                     "past the tuning days", "labels not JSON", "results not writable"])
def test_bad_input_is_one_line_and_exit_2(tiny_weights, photos, tmp_path, raccoon, problem):
    args = {"no photos": ["--data", tmp_path / "empty", "--weights", tiny_weights],
            "no weights": ["--data", photos, "--weights", tmp_path / "nowhere"],
            "too few samples": ["--data", photos, "--weights", tiny_weights, "--samples", 3],
            "too few photos": ["--data", tmp_path / "two", "--sanity"],
            "guidance below 1": ["--data", photos, "--weights", tiny_weights, "--guidance", 0.5],
            "past the held-out set": ["--data", photos, "--weights", tiny_weights, "--split", "held-out",
                                      "--samples", 129],
            "past the second held-out set": ["--data", photos, "--weights", tiny_weights, "--split", "held-out-2",
                                             "--samples", 129],
            "past the tuning days": ["--data", photos, "--weights", tiny_weights, "--samples", 1097],
            "labels not JSON": ["--data", photos, "--weights", tiny_weights, "--labels", photos / "p0.png"],
            "results not writable": ["--data", photos, "--sanity"]}[problem]
    (tmp_path / "empty").mkdir()
    if problem == "results not writable":
        (tmp_path / "eval" / "metrics.json").mkdir(parents=True)  # where the results go, a folder: the last write fails
    (tmp_path / "two").mkdir()
    for i in range(2):
        Image.fromarray(scene(i, size=96)).save(tmp_path / "two" / f"p{i}.png")
    out = tmp_path / "eval"
    run = raccoon("eval", *args, "--out", out)
    last_line = run.err.rstrip("\n").rpartition("\n")[2]  # after any progress bar
    assert run.code == 2 and last_line.startswith("raccoon eval: error: ") and "Traceback" not in run.err
    if problem == "results not writable":
        assert last_line == f"raccoon eval: error: cannot write {out / 'metrics.json'}: Is a directory"
    else:
        assert not out.exists()  # nothing made, not even the folder
