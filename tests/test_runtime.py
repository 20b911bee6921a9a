"""Weights on disk, the ONNX export, and the two backends held to the same output."""

import json

import numpy as np
import pytest
from conftest import TINY_UNET

from raccoon.day import DayRecord
from raccoon.diffusion import Schedule
from raccoon.model import UNet, UNetConfig
from raccoon.runtime import (
    GRAPH_FILE,
    WEIGHTS_FILE,
    OnnxDenoiser,
    TorchDenoiser,
    WeightsError,
    default_weights_dir,
    load_weights,
    paint,
    read_safetensors,
    write_safetensors,
)

# The backends agree to this on the network's output; final images differ by at most one level.
OUTPUT_TOLERANCE = 1e-4


def test_safetensors_round_trip(tmp_path):
    tensors = {"b": np.arange(6, dtype=np.float16).reshape(2, 3), "a": np.ones(4, dtype=np.float32)}
    write_safetensors(tmp_path / "t.safetensors", tensors)
    back = read_safetensors(tmp_path / "t.safetensors")
    assert set(back) == {"a", "b"}
    for name in tensors:
        assert back[name].dtype == tensors[name].dtype
        np.testing.assert_array_equal(back[name], tensors[name])


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


def copy_weights(src, dst):
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


@pytest.mark.parametrize("damage", ["truncate", "flip", "missing", "config"])
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
    else:
        (folder / "config.json").write_text("{not json")
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


def test_shipped_weights_are_intact_and_paint():
    """The committed weights: hashes match, and both backends paint the same raccoon from them."""
    folder = default_weights_dir()
    if not (folder / "config.json").exists():
        pytest.skip("no shipped weights in this checkout")
    config, state = load_weights(folder, need=(WEIGHTS_FILE, GRAPH_FILE))
    assert config["training"]["steps"] > 0
    assert sum(v.size for v in state.values()) == sum(p.numel() for p in UNet(UNetConfig.from_dict(config["model"])).parameters())
    seed = b"\x07" * 32
    a = paint(seed, steps=10, weights=folder)
    b = paint(seed, steps=10, backend="torch", weights=folder)
    assert np.abs(a.astype(int) - b).max() <= 1
