"""Load the shipped weights and paint: ONNX Runtime by default, PyTorch as the reference.

A weights folder holds `config.json` (network, schedule, training record, and the SHA-256 of each
file), `model.safetensors` (the parameters in fp16, read without pickle) and `model.onnx` (the
network's graph with its parameters left out: ONNX Runtime is handed them from the safetensors
file, so one copy of the weights serves both backends). It may also ship `guide.safetensors`, the
parameters of a less trained version of the same network, which the painter is steered away from
(autoguidance); the graph serves both parameter sets.
"""

import hashlib
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from raccoon.day import gaussian_noise
from raccoon.diffusion import Schedule, ddim_sample

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
GRAPH_FILE = "model.onnx"
GUIDE_FILE = "guide.safetensors"
IMAGE_SHAPE = (1, 3, 64, 64)
# Autoguidance steers only where the noise level sigma lies in (low, high]: at higher noise it bends whole
# compositions (a raccoon grew a second head), at lower it has little left to fix. The interval is the one
# Kynkäänniemi et al. found for EDM2 ("Applying guidance in a limited interval ...", 2024).
GUIDED_NOISE_LEVELS = (0.28, 5.42)
PAINT_THREADS = 2  # ONNX Runtime's threads on any machine: GitHub's smallest runners have 2 CPUs
_DTYPES = {"F16": np.float16, "F32": np.float32}


class WeightsError(Exception):
    """Weights missing, truncated or tampered: the message is one line for the user."""


def default_weights_dir() -> Path:
    """$RACCOON_WEIGHTS, else the weights installed with the package, else the checkout's weights/."""
    if "RACCOON_WEIGHTS" in os.environ:
        return Path(os.environ["RACCOON_WEIGHTS"])
    installed = Path(__file__).parent / "weights"
    return installed if installed.is_dir() else Path(__file__).parent.parent / "weights"


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    """The safetensors layout: 8-byte little-endian header size, JSON header, raw little-endian data."""
    header, offset = {}, 0
    names = sorted(tensors)
    for name in names:
        array = tensors[name]
        dtype = next(k for k, v in _DTYPES.items() if v == array.dtype)
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(len(blob).to_bytes(8, "little") + blob)
        for name in names:
            f.write(np.ascontiguousarray(tensors[name]).astype(tensors[name].dtype.newbyteorder("<")).tobytes())


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    data = Path(path).read_bytes()
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    body = memoryview(data)[8 + size :]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        dtype = np.dtype(_DTYPES[info["dtype"]]).newbyteorder("<")
        tensors[name] = np.frombuffer(body[start:end], dtype=dtype).reshape(info["shape"])
    return tensors


def save_pretrained(directory: Path, state: dict[str, np.ndarray], model: dict, schedule: Schedule, training: dict):
    """Write weights (fp16) and a config that records their hash, as a folder `load_weights` reads back."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_safetensors(directory / WEIGHTS_FILE, {k: v.astype(np.float16) for k, v in state.items()})
    config_path = directory / CONFIG_FILE
    files = json.loads(config_path.read_text()).get("files", {}) if config_path.exists() else {}
    files[WEIGHTS_FILE] = sha256_file(directory / WEIGHTS_FILE)
    config = {"model": model, "schedule": schedule.to_dict(), "training": training, "files": files}
    config_path.write_text(json.dumps(config, indent=2) + "\n")


def record_file(directory: Path, name: str, **entries) -> None:
    """Add a file written beside the weights (the ONNX graph, the guide) to the config's hashes, and any
    config entries that describe it."""
    config_path = Path(directory) / CONFIG_FILE
    config = json.loads(config_path.read_text())
    config["files"][name] = sha256_file(Path(directory) / name)
    config.update(entries)
    config_path.write_text(json.dumps(config, indent=2) + "\n")


def read_config(directory: Path) -> dict:
    """A weights folder's config, checked for what every reader needs: a known schedule, the file hashes, and
    the guidance and its noise levels if it ships a guide."""
    directory = Path(directory)
    try:
        config = json.loads((directory / CONFIG_FILE).read_text())
        Schedule(**config["schedule"])
        if not isinstance(config["files"], dict):
            raise TypeError("files")
        if "guide" in config:
            low, high = config["guide"]["noise_levels"]
            if not isinstance(config["guide"]["guidance"], (int, float)) or not 0 <= low < high:
                raise TypeError("guide")
        return config
    except FileNotFoundError:
        raise WeightsError(f"no weights at {directory} ({CONFIG_FILE} missing)") from None
    except (ValueError, KeyError, TypeError):
        raise WeightsError(f"{directory / CONFIG_FILE} is not a valid raccoon weights config") from None


def load_weights(directory: Path, need: tuple[str, ...] = (), parameters: str = WEIGHTS_FILE) -> tuple[dict, dict[str, np.ndarray]]:
    """The config and the fp32 parameters of `parameters` (the network's, or the guide's), after checking
    them and every file in `need` against their recorded hashes."""
    directory = Path(directory)
    config = read_config(directory)
    for name in dict.fromkeys((parameters, *need)):
        path = directory / name
        if not path.is_file():
            raise WeightsError(f"{path} is missing")
        if name not in config["files"] or sha256_file(path) != config["files"][name]:
            raise WeightsError(f"{path} is truncated or altered (its SHA-256 does not match {CONFIG_FILE})")
    state = {k: v.astype(np.float32) for k, v in read_safetensors(directory / parameters).items()}
    return config, state


def attach_guide(directory: Path, guide: Path, guidance: float, noise_levels=GUIDED_NOISE_LEVELS) -> None:
    """Ship the network of the weights folder `guide` as `directory`'s autoguidance network, steering at
    `guidance` where the noise level lies in `noise_levels` (low, high].

    The guide must be the same network with the same schedule, trained less: it then makes the same kinds of
    mistakes as the shipped one, only more, and `Autoguided` steers away from them.
    """
    low, high = noise_levels
    if not 0 <= low < high:
        raise WeightsError(f"the guided noise levels need 0 <= LOW < HIGH, got ({low:g}, {high:g}]")
    config, _ = load_weights(directory)
    guide_config, _ = load_weights(guide)
    if (guide_config["model"], guide_config["schedule"]) != (config["model"], config["schedule"]):
        raise WeightsError(f"the guide at {guide} is not the same network and schedule as {directory}'s")
    shutil.copyfile(Path(guide) / WEIGHTS_FILE, Path(directory) / GUIDE_FILE)
    record_file(directory, GUIDE_FILE, guide={"guidance": guidance, "noise_levels": list(noise_levels),
                                              "training": guide_config["training"]})


class OnnxDenoiser:
    """The exported network in ONNX Runtime, its parameters supplied from the safetensors file."""

    guidance = 1.0  # the network alone

    def __init__(self, directory: Path, threads: int | None = None, exact: bool = True, parameters: str = WEIGHTS_FILE):
        import onnxruntime as ort

        config, state = load_weights(directory, need=(GRAPH_FILE,), parameters=parameters)
        self.schedule = Schedule(**config["schedule"])
        options = ort.SessionOptions()
        if exact:
            # Same bits on every runner. Not ORT_ENABLE_ALL: its NCHWc convolutions sum in an order set by the CPU's
            # vector width (AVX2 or AVX-512). And a fixed thread count, not the machine's: the convolutions that
            # are left split their sums by the number of threads. exact=False (ONNX Runtime's fastest settings)
            # exists to measure what this costs (benchmarks/reproducibility.py).
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
            options.intra_op_num_threads = threads or PAINT_THREADS
        elif threads:
            options.intra_op_num_threads = threads
        names = list(state)
        values = [ort.OrtValue.ortvalue_from_numpy(state[name]) for name in names]
        options.add_external_initializers(names, values)
        try:
            self.session = ort.InferenceSession(
                str(Path(directory) / GRAPH_FILE), options, providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # ORT raises its own Fail/InvalidGraph types
            message = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise WeightsError(f"ONNX Runtime cannot load {Path(directory) / GRAPH_FILE}: {message}") from None

    def __call__(self, x: np.ndarray, t: int) -> np.ndarray:
        return self.session.run(None, {"x": x, "t": np.full((x.shape[0],), t, dtype=np.float32)})[0]


class TorchDenoiser:
    """The PyTorch reference: the training code's network, in fp32."""

    guidance = 1.0

    def __init__(self, net, schedule: Schedule):
        import torch

        self.net, self.schedule, self.torch = net, schedule, torch

    @classmethod
    def load(cls, directory: Path, threads: int | None = None, parameters: str = WEIGHTS_FILE) -> "TorchDenoiser":
        import torch

        from raccoon.model import UNet, UNetConfig

        config, state = load_weights(directory, parameters=parameters)
        if threads:
            torch.set_num_threads(threads)
        net = UNet(UNetConfig.from_dict(config["model"])).eval()
        net.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()})
        return cls(net, Schedule(**config["schedule"]))

    def __call__(self, x: np.ndarray, t: int) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            return self.net(torch.from_numpy(x), torch.full((x.shape[0],), float(t))).float().numpy()


class Autoguided:
    """A network steered away from a less trained version of itself: guide + guidance * (network - guide).

    Autoguidance (Karras et al. 2024, "Guiding a diffusion model with a bad version of itself"): the two
    networks blur the same hard parts of a raccoon, the guide more, so stepping past the shipped network
    in the direction it improved on the guide sharpens faces and bodies. Unlike classifier-free guidance it
    needs no labels. The outputs are combined before they become an image, which is exact for epsilon and v
    prediction alike (the predicted image is linear in the output). Both share the folder's schedule:
    `attach_guide` accepts only a guide trained with it. Outside the guided noise levels the network paints
    alone and the guide is not run.

    The guide runs in a worker thread beside the network (both runtimes release the GIL), each with half the
    threads: a guided painting takes 2.0 s of sampling where one after the other took 3.1 s, to the same bits.
    """

    def __init__(self, denoiser, guide, guidance: float, noise_levels: tuple[float, float]):
        self.denoiser, self.guide, self.guidance, self.schedule = denoiser, guide, guidance, denoiser.schedule
        self.noise_levels = tuple(noise_levels)
        self._beside = ThreadPoolExecutor(max_workers=1)

    def __call__(self, x: np.ndarray, t: int) -> np.ndarray:
        low, high = self.noise_levels
        if not low < self.schedule.noise_level(t) <= high:
            return self.denoiser(x, t)
        pending = self._beside.submit(self.guide, x, t)
        strong = self.denoiser(x, t)
        weak = pending.result()
        return weak + self.guidance * (strong - weak)


BACKENDS = {"onnx": OnnxDenoiser, "torch": TorchDenoiser.load}


def load_denoiser(directory: Path, backend: str = "onnx", threads: int | None = None, guidance: float | None = None):
    """The folder's network, autoguided by its guide at the config's guidance unless `guidance` says otherwise
    (1: the network alone, and the guide is not even read)."""
    shipped = read_config(directory).get("guide")
    guidance = guidance if guidance is not None else shipped["guidance"] if shipped else 1.0
    if guidance == 1:
        return BACKENDS[backend](directory, threads=threads)
    if shipped is None:
        raise WeightsError(f"the weights at {directory} ship no guide network, so guidance must be 1")
    half = max(1, (threads or PAINT_THREADS) // 2)  # network and guide run side by side
    return Autoguided(BACKENDS[backend](directory, threads=half),
                      BACKENDS[backend](directory, threads=half, parameters=GUIDE_FILE), guidance,
                      shipped["noise_levels"])


def to_uint8(image: np.ndarray) -> np.ndarray:
    """A (3, H, W) image in [-1, 1] as (H, W, 3) bytes."""
    return np.clip((image.transpose(1, 2, 0) + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8)


def sample(denoiser, seeds: list[bytes], steps: int = 50, on_step=None) -> np.ndarray:
    """The images of several seeds, drawn as one batch, as (N, 64, 64, 3) uint8."""
    noise = np.concatenate([gaussian_noise(seed, IMAGE_SHAPE) for seed in seeds])
    return np.stack([to_uint8(x) for x in ddim_sample(denoiser, noise, denoiser.schedule, steps, on_step=on_step)])


def paint(seed: bytes, *, steps: int = 50, backend: str = "onnx", weights: Path | None = None, threads: int | None = None,
          guidance: float | None = None, on_step=None):
    """The raccoon of a seed: (64, 64, 3) uint8."""
    denoiser = load_denoiser(weights or default_weights_dir(), backend, threads, guidance)
    return sample(denoiser, [seed], steps, on_step=on_step)[0]
