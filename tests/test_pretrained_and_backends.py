"""The weights folder (pretrained.py), the ONNX export, and the two backends (backends.py) held to the same output."""

import json

import numpy as np
import pytest
from conftest import TINY_UNET, copy_weights, save_tiny_network

from raccoon.day import DayRecord
from raccoon.diffusion import Schedule
from raccoon.model import UNet, UNetConfig
from raccoon.backends import OnnxDenoiser, TorchDenoiser, load_denoiser
from raccoon.painting import Painter, PaintError
from raccoon.pretrained import (
    CONFIG_FILE,
    GRAPH_FILE,
    GUIDE_FILE,
    GUIDED_NOISE_LEVELS,
    WEIGHTS_FILE,
    WeightsError,
    attach_guide,
    default_weights_dir,
    load_weights,
    read_parameters,
    save_pretrained,
    write_parameters,
)

# The backends agree to this on the network's output; final images differ by at most one level.
OUTPUT_TOLERANCE = 1e-4


def paint(seed: bytes, steps: int, weights, backend: str = "onnx", guidance: float | None = None) -> np.ndarray:
    return Painter.load(weights, backend, guidance=guidance).paint([seed], steps).images[0]


def test_parameters_round_trip_through_fp16(tmp_path):
    tensors = {"b": np.arange(6, dtype=np.float32).reshape(2, 3), "a": np.full(4, 1 / 3, dtype=np.float32)}
    write_parameters(tmp_path / "t.safetensors", tensors)
    back = read_parameters(tmp_path / "t.safetensors")
    assert set(back) == {"a", "b"}
    for name in tensors:
        assert back[name].dtype == np.float32
        np.testing.assert_array_equal(back[name], tensors[name].astype(np.float16).astype(np.float32))


def safetensors_file(header: dict, body: bytes, header_size: int | None = None) -> bytes:
    text = json.dumps(header).encode()
    return (len(text) if header_size is None else header_size).to_bytes(8, "little") + text + body


@pytest.mark.parametrize("content", [
    safetensors_file({"w": {"dtype": "F16", "shape": [4], "data_offsets": [0, 8]}}, b"\0" * 8, header_size=1 << 40),
    safetensors_file({"w": {"dtype": "F16", "shape": [4], "data_offsets": [0, 8]}}, b"\0" * 4),
    safetensors_file({"w": {"dtype": "F16", "shape": [4], "data_offsets": [0, 999]}}, b"\0" * 8),
    b"\x10\0\0\0\0\0\0\0{not json at all",
    b"\x01\0",
    safetensors_file({"w": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}}, b"\0" * 8),
], ids=["header-past-the-end", "data-past-the-end", "offsets-past-the-end", "header-not-json", "too-short",
        "integers"])
def test_malformed_parameters_are_one_line(tmp_path, content):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(WeightsError) as error:
        read_parameters(path)
    assert "\n" not in str(error.value) and str(path) in str(error.value)


def test_saving_in_a_guided_folder_keeps_the_guide_and_rehashes(guided_weights, tmp_path):
    folder = copy_weights(guided_weights, tmp_path / "w")
    before = json.loads((folder / CONFIG_FILE).read_text())
    _, state = load_weights(folder)
    state = {name: value * 0.5 for name, value in state.items()}  # a training run's newer weights
    save_pretrained(folder, state, before["model"], Schedule(**before["schedule"]), {"steps": 7})
    after = json.loads((folder / CONFIG_FILE).read_text())
    assert after["guide"] == before["guide"] and after["training"] == {"steps": 7}
    assert set(after["files"]) == {WEIGHTS_FILE, GRAPH_FILE, GUIDE_FILE}
    assert after["files"][WEIGHTS_FILE] != before["files"][WEIGHTS_FILE]
    guided = load_denoiser(folder)
    assert guided.guidance == before["guide"]["guidance"]
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_weights_are_fp16_on_disk_and_graph_holds_no_parameters(tiny_weights):
    raw = (tiny_weights / WEIGHTS_FILE).read_bytes()
    header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
    assert {v["dtype"] for v in header.values()} == {"F16"}
    parameter_bytes = sum(p.numel() for p in UNet(TINY_UNET).parameters()) * 4
    assert (tiny_weights / GRAPH_FILE).stat().st_size < parameter_bytes / 4


def test_config_records_the_schedule(tiny_weights):
    config, _ = load_weights(tiny_weights)
    assert config["schedule"] == {"kind": "cosine", "prediction": "v", "train_steps": 1000}
    assert OnnxDenoiser(tiny_weights).schedule == Schedule("cosine", "v")


def test_backends_agree_on_the_network_output(tiny_weights):
    onnx, reference = OnnxDenoiser(tiny_weights), TorchDenoiser.load(tiny_weights)
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    for t in (0, 500, 999):
        a, b = onnx(x, t), reference(x, t)
        assert np.abs(b).max() > 0.1
        assert np.abs(a - b).max() < OUTPUT_TOLERANCE


def test_backends_paint_the_same_raccoon(tiny_weights):
    seed = DayRecord.of(__import__("datetime").date(2026, 11, 22), ["a" * 40]).seed()
    a = paint(seed, steps=10, weights=tiny_weights)
    b = paint(seed, steps=10, backend="torch", weights=tiny_weights)
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8 and a.std() > 0
    assert np.abs(a.astype(int) - b).max() <= 1


def test_same_seed_same_image_other_seed_other_image(tiny_weights):
    seed, other = b"\x01" * 32, b"\x02" * 32
    first = paint(seed, steps=5, weights=tiny_weights)
    assert np.array_equal(first, paint(seed, steps=5, weights=tiny_weights))
    assert not np.array_equal(first, paint(other, steps=5, weights=tiny_weights))


@pytest.mark.parametrize("damage", ["truncate", "flip", "missing", "config", "guide entry"])
def test_damaged_weights_fail_with_one_clear_line(tiny_weights, tmp_path, damage):
    folder = copy_weights(tiny_weights, tmp_path / "w")
    target = folder / WEIGHTS_FILE
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[:1000])
    elif damage == "flip":
        data = bytearray(target.read_bytes())
        data[-10] ^= 0xFF
        target.write_bytes(bytes(data))
    elif damage == "missing":
        target = folder / GRAPH_FILE
        target.unlink()
    elif damage == "config":
        (folder / "config.json").write_text("{not json")
    else:
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, "guide": {"weight": 2}}))
    backends = (OnnxDenoiser,) if damage == "missing" else (OnnxDenoiser, TorchDenoiser.load)  # torch needs no graph
    for backend in backends:
        with pytest.raises(WeightsError) as error:
            backend(folder)
        assert "\n" not in str(error.value) and str(folder) in str(error.value)


def test_tampered_graph_is_refused(tiny_weights, tmp_path):
    folder = copy_weights(tiny_weights, tmp_path / "w")
    graph = folder / GRAPH_FILE
    graph.write_bytes(graph.read_bytes().replace(b"prediction", b"predictiom"))
    with pytest.raises(WeightsError, match="SHA-256"):
        OnnxDenoiser(folder)


def test_guided_output_steps_past_the_network_away_from_its_guide(guided_weights):
    network, guide = OnnxDenoiser(guided_weights), OnnxDenoiser(guided_weights, parameters=GUIDE_FILE)
    guided = load_denoiser(guided_weights)
    assert guided.guidance == 2.0 and load_denoiser(guided_weights, guidance=3).guidance == 3
    assert guided.noise_levels == GUIDED_NOISE_LEVELS
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    low, high = GUIDED_NOISE_LEVELS
    for t, steered in ((0, False), (300, True), (500, True), (800, True), (999, False)):
        assert (low < network.schedule.noise_level(t) <= high) == steered
        a, b = network(x, t), guide(x, t)
        assert np.abs(a - b).max() > 0.1
        np.testing.assert_allclose(guided(x, t), 2 * a - b if steered else a, atol=1e-5)


def test_guided_noise_levels_are_recorded_and_checked(tiny_weights, tmp_path):
    folder, guide = copy_weights(tiny_weights, tmp_path / "w"), save_tiny_network(tmp_path / "guide", seed=1)
    with pytest.raises(WeightsError, match="0 <= LOW < HIGH"):
        attach_guide(folder, guide, 2.0, noise_levels=(5.0, 1.0))
    assert not (folder / GUIDE_FILE).exists()
    attach_guide(folder, guide, 2.0, noise_levels=(0.0, 1e9))  # every step
    x = np.random.default_rng(1).standard_normal((1, 3, 64, 64)).astype(np.float32)
    network, guided = OnnxDenoiser(folder), load_denoiser(folder)
    assert guided.noise_levels == (0.0, 1e9)
    np.testing.assert_allclose(guided(x, 999), 2 * network(x, 999) - guided.guide(x, 999), atol=1e-5)


def test_guidance_1_paints_the_network_alone_without_reading_the_guide(guided_weights, tiny_weights, tmp_path):
    seed = b"\x05" * 32
    alone = paint(seed, steps=5, weights=tiny_weights)
    assert not np.array_equal(paint(seed, steps=5, weights=guided_weights), alone)
    folder = copy_weights(guided_weights, tmp_path / "w")
    (folder / GUIDE_FILE).unlink()
    assert np.array_equal(paint(seed, steps=5, weights=folder, guidance=1), alone)
    with pytest.raises(PaintError, match=f"{GUIDE_FILE} is missing"):
        paint(seed, steps=5, weights=folder)


def test_backends_paint_the_same_guided_raccoon(guided_weights):
    seed = b"\x06" * 32
    a = paint(seed, steps=10, weights=guided_weights)
    b = paint(seed, steps=10, backend="torch", weights=guided_weights)
    assert np.abs(a.astype(int) - b).max() <= 1


def test_guide_is_hashed_and_recorded(guided_weights, tmp_path):
    config, _ = load_weights(guided_weights, parameters=GUIDE_FILE)
    assert config["guide"] == {"guidance": 2.0, "noise_levels": list(GUIDED_NOISE_LEVELS), "training": {"steps": 0}}
    folder = copy_weights(guided_weights, tmp_path / "w")
    data = bytearray((folder / GUIDE_FILE).read_bytes())
    data[-10] ^= 0xFF
    (folder / GUIDE_FILE).write_bytes(bytes(data))
    for backend in ("onnx", "torch"):
        with pytest.raises(WeightsError, match="SHA-256"):
            load_denoiser(folder, backend)


def save_with_linear_schedule(source, folder):
    """`source`'s network under another schedule: linear betas, epsilon prediction."""
    _, state = load_weights(source)
    save_pretrained(folder, state, TINY_UNET.to_dict(), Schedule("linear", "epsilon"), {"steps": 0})
    return folder


def test_export_ships_a_guide_or_says_why_not_in_one_line(tiny_weights, tmp_path, capsys):
    from raccoon import export

    folder, guide = copy_weights(tiny_weights, tmp_path / "w"), save_tiny_network(tmp_path / "guide", seed=1)
    assert export.main(["--weights", str(folder), "--guide", str(guide), "--guidance", "3"]) == 0
    assert (folder / GUIDE_FILE).read_bytes() == (guide / WEIGHTS_FILE).read_bytes()
    assert load_denoiser(folder).guidance == 3
    linear = save_with_linear_schedule(tiny_weights, tmp_path / "linear")
    capsys.readouterr()
    assert export.main(["--weights", str(folder), "--guide", str(linear)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("raccoon export: error: ") and err.count("\n") == 1 and "not the same network" in err


def test_guidance_needs_a_guide(tiny_weights):
    with pytest.raises(WeightsError, match="no guide"):
        load_denoiser(tiny_weights, guidance=2)


def test_only_the_same_network_with_the_same_schedule_can_guide(tiny_weights, tmp_path):
    folder = copy_weights(tiny_weights, tmp_path / "w")
    other_schedule = save_with_linear_schedule(tiny_weights, tmp_path / "linear")
    smaller = tmp_path / "smaller"
    small = UNetConfig(channels=(16, 16, 32, 32), head_channels=16, groups=8, dropout=0.0)
    save_pretrained(smaller, {k: v.numpy() for k, v in UNet(small).state_dict().items()}, small.to_dict(),
                    Schedule("cosine", "v"), {"steps": 0})
    for guide in (other_schedule, smaller):
        with pytest.raises(WeightsError, match="not the same network and schedule"):
            attach_guide(folder, guide, 2.0)
    assert not (folder / GUIDE_FILE).exists()


def test_shipped_weights_are_intact_and_paint():
    """The committed weights: hashes match, and both backends paint the same raccoon from them."""
    folder = default_weights_dir()
    if not (folder / "config.json").exists():
        pytest.skip("no shipped weights in this checkout")
    config, state = load_weights(folder, need=(GRAPH_FILE, GUIDE_FILE))
    assert config["training"]["steps"] > config["guide"]["training"]["steps"] > 0
    assert sum(v.size for v in state.values()) == sum(p.numel() for p in UNet(UNetConfig.from_dict(config["model"])).parameters())
    seed = b"\x07" * 32
    a = paint(seed, steps=10, weights=folder)
    b = paint(seed, steps=10, backend="torch", weights=folder)
    assert np.abs(a.astype(int) - b).max() <= 1


def test_lanes_share_only_a_large_batchs_unguided_work():
    """Guided steps: the network on the calling thread, the guide on the worker. Unguided steps: a day's few
    candidates stay on the calling thread (memory); a batch of share_from images or more uses both lanes (speed)."""
    import threading

    from raccoon.backends import Autoguided

    seen = []

    class Network:
        schedule, guidance = Schedule("cosine", "v"), 1.0

        def __init__(self, name):
            self.name = name

        def __call__(self, x, t):
            seen.append((self.name, threading.get_ident()))
            return np.zeros_like(x)

    guided = Autoguided(Network("network"), Network("guide"), 2.0, (0.28, 5.42), lanes=2, share_from=8)
    here = threading.get_ident()
    steered, alone = 700, 999  # noise levels 2.0 (guided) and 20291 (the network alone)
    x = np.zeros((4, 3, 64, 64), np.float32)
    guided(x, steered)
    assert {name: thread == here for name, thread in seen} == {"network": True, "guide": False} and len(seen) == 8
    for count, threads in ((4, 1), (8, 2)):
        seen.clear()
        guided(np.zeros((count, 3, 64, 64), np.float32), alone)
        assert len(seen) == count and {name for name, _ in seen} == {"network"}
        assert len({thread for _, thread in seen}) == threads
