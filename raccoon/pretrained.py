"""The weights folder: its config, the hashes of its files, and the parameters in safetensors.

A weights folder holds `config.json` (network, schedule, training record, and the SHA-256 of each
file), `model.safetensors` (the parameters in fp16, read without pickle) and `model.onnx` (the
network's graph with its parameters left out: ONNX Runtime is handed them from the safetensors
file, so one copy of the weights serves both backends). It may also ship `guide.safetensors`, the
parameters of a less trained version of the same network, which the painter is steered away from
(autoguidance, see backends.py); the graph serves both parameter sets. And it may ship the scorer that
picks the best of K candidate paintings (`scorer.onnx`, `scorer.safetensors`, `real-crops.safetensors`, and
`scorer-head.safetensors` under candidate rule 2, see scorer.py), with the rule that derives the candidates from
the day's seed and ranks them (day.py).
"""

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import safetensors.numpy
from safetensors import SafetensorError

from raccoon.day import CANDIDATE_RULES, MAX_CANDIDATES
from raccoon.diffusion import Schedule
from raccoon.files import write_atomically

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
GRAPH_FILE = "model.onnx"
GUIDE_FILE = "guide.safetensors"
# Autoguidance steers only where the noise level sigma lies in (low, high]: at higher noise it bends whole
# compositions (a raccoon grew a second head), at lower it has little left to fix. The interval is the one
# Kynkäänniemi et al. found for EDM2 ("Applying guidance in a limited interval ...", 2024).
GUIDED_NOISE_LEVELS = (0.28, 5.42)
PARAMETER_DTYPES = (np.float16, np.float32)


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


def write_parameters(path: Path, state: dict[str, np.ndarray]) -> None:
    """Parameters as a safetensors file, in fp16 (what ships), written atomically."""
    half = {name: np.ascontiguousarray(value, dtype=np.float16) for name, value in state.items()}
    write_atomically(path, safetensors.numpy.save(half))


def first_line(error: Exception) -> str:
    """What a library's exception says, cut to one line for the user (its type, when it says nothing)."""
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def read_parameters(path: Path) -> dict[str, np.ndarray]:
    """The fp32 parameters of a safetensors file; WeightsError if it is not one or holds other than floats."""
    try:
        tensors = safetensors.numpy.load_file(str(path))
    except (SafetensorError, ValueError, OSError) as error:
        raise WeightsError(f"{path} is not a valid safetensors file: {first_line(error)}") from None
    if any(tensor.dtype not in PARAMETER_DTYPES for tensor in tensors.values()):
        raise WeightsError(f"{path} holds tensors other than fp16 or fp32 parameters")
    return {name: tensor.astype(np.float32) for name, tensor in tensors.items()}


def write_config(directory: Path, config: dict) -> None:
    write_atomically(Path(directory) / CONFIG_FILE, (json.dumps(config, indent=2) + "\n").encode())


def save_pretrained(directory: Path, state: dict[str, np.ndarray], model: dict, schedule: Schedule, training: dict):
    """Write the network's parameters (fp16) and its config, as a folder `load_weights` reads back.

    Everything else the folder's config holds stays (the graph, the guide and its guidance): a run that
    trains on in a guided folder keeps painting guided. Every recorded file is hashed anew.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_parameters(directory / WEIGHTS_FILE, state)
    config_path = directory / CONFIG_FILE
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    config.update(model=model, schedule=schedule.to_dict(), training=training)
    names = {name for name in config.get("files", {}) if (directory / name).is_file()} | {WEIGHTS_FILE}
    config["files"] = {name: sha256_file(directory / name) for name in sorted(names)}
    write_config(directory, config)


def record_file(directory: Path, name: str, **entries) -> None:
    """Add a file written beside the weights (the ONNX graph, the guide) to the config's hashes, and any
    config entries that describe it."""
    config = json.loads((Path(directory) / CONFIG_FILE).read_text())
    config["files"][name] = sha256_file(Path(directory) / name)
    config.update(entries)
    write_config(directory, config)


def check_noise_levels(low: float, high: float) -> None:
    if not 0 <= low < high:
        raise WeightsError(f"the guided noise levels need 0 <= LOW < HIGH, got ({low:g}, {high:g}]")


def check_choice(choice: dict) -> None:
    """The best-of-K entry's shape: its candidate rule, how many candidates, the noise level of the choice."""
    if not isinstance(choice["rule"], int):
        raise TypeError("rule")
    if choice["rule"] not in CANDIDATE_RULES:  # a newer rule's entry may differ: read_config asks for an upgrade
        return
    if not (isinstance(choice["candidates"], int) and 1 <= choice["candidates"] <= MAX_CANDIDATES):
        raise TypeError("candidates")
    if not (isinstance(choice["noise_level"], (int, float)) and choice["noise_level"] > 0):  # NaN is not > 0
        raise TypeError("noise_level")


def shipped_guidance(config: dict) -> float:
    """The guidance a folder paints with unless told otherwise: its guide's, else 1 (the network alone)."""
    return config["guide"]["guidance"] if "guide" in config else 1.0


def shipped_candidates(config: dict) -> int:
    """How many candidates a folder chooses among unless told otherwise: its choice's, else 1 (the day's own)."""
    return config["choice"]["candidates"] if "choice" in config else 1


def read_config(directory: Path) -> dict:
    """A weights folder's config, checked for what every reader needs: a known schedule, the file hashes, the
    guidance and its noise levels if it ships a guide, and a candidate rule this code knows if it chooses among
    candidates."""
    directory = Path(directory)
    try:
        config = json.loads((directory / CONFIG_FILE).read_text())
        Schedule(**config["schedule"])
        if not isinstance(config["files"], dict):
            raise TypeError("files")
        if "guide" in config:
            if not isinstance(config["guide"]["guidance"], (int, float)):
                raise TypeError("guidance")
            check_noise_levels(*config["guide"]["noise_levels"])
        if "choice" in config:
            check_choice(config["choice"])
    except FileNotFoundError:
        raise WeightsError(f"no weights at {directory} ({CONFIG_FILE} missing)") from None
    except OSError as error:  # not a folder, not readable
        raise WeightsError(f"cannot read weights at {directory}: {error.strerror}") from None
    except (ValueError, KeyError, TypeError, WeightsError):
        raise WeightsError(f"{directory / CONFIG_FILE} is not a valid raccoon weights config") from None
    if config.get("choice", {}).get("rule", CANDIDATE_RULES[0]) not in CANDIDATE_RULES:
        raise WeightsError(f"the weights at {directory} choose their raccoons by candidate rule "
                           f"{config['choice']['rule']}, which this raccoon-action predates: upgrade it")
    return config


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
    return config, read_parameters(directory / parameters)


def attach_guide(directory: Path, guide: Path, guidance: float, noise_levels=GUIDED_NOISE_LEVELS) -> None:
    """Ship the network of the weights folder `guide` as `directory`'s autoguidance network, steering at
    `guidance` where the noise level lies in `noise_levels` (low, high].

    The guide must be the same network with the same schedule, trained less: it then makes the same kinds of
    mistakes as the shipped one, only more, and autoguidance steers away from them.
    """
    check_noise_levels(*noise_levels)
    config, _ = load_weights(directory)
    guide_config, _ = load_weights(guide)
    if (guide_config["model"], guide_config["schedule"]) != (config["model"], config["schedule"]):
        raise WeightsError(f"the guide at {guide} is not the same network and schedule as {directory}'s")
    write_atomically(Path(directory) / GUIDE_FILE, (Path(guide) / WEIGHTS_FILE).read_bytes())
    record_file(directory, GUIDE_FILE, guide={"guidance": guidance, "noise_levels": list(noise_levels),
                                              "training": guide_config["training"]})
