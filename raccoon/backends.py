"""The network as a `denoise(x, t)` callable: ONNX Runtime by default, PyTorch as the reference, and either
autoguided by the folder's guide network.

Every backend reads a weights folder (pretrained.py) and exposes the schedule it was trained with, which is all
the sampler needs besides the callable.
"""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from raccoon.diffusion import Schedule
from raccoon.pretrained import (GRAPH_FILE, GUIDE_FILE, WEIGHTS_FILE, WeightsError, first_line, load_weights,
                                read_config, shipped_guidance)

PAINT_THREADS = 2  # ONNX Runtime's threads on any machine: GitHub's smallest runners have 2 CPUs
SHARE_LANES_FROM = 8  # images in a batch from which the network's unguided work is shared between lanes (Autoguided)


def onnx_session(graph: Path, parameters: dict[str, np.ndarray], threads: int | None = None, exact: bool = True):
    """An ONNX Runtime session of a graph whose parameters are left out of it, supplied here.

    exact: the same bits on every runner. Not ORT_ENABLE_ALL: its NCHWc convolutions sum in an order set by the
    CPU's vector width (AVX2 or AVX-512). And a fixed thread count, not the machine's: the convolutions that are
    left split their sums by the number of threads. exact=False (ONNX Runtime's fastest settings) exists to
    measure what this costs (benchmarks/reproducibility.py).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    if exact:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.intra_op_num_threads = threads or PAINT_THREADS
    elif threads:
        options.intra_op_num_threads = threads
    names = list(parameters)
    options.add_external_initializers(names, [ort.OrtValue.ortvalue_from_numpy(parameters[name]) for name in names])
    try:
        return ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # ORT raises its own Fail/InvalidGraph types
        raise WeightsError(f"ONNX Runtime cannot load {graph}: {first_line(e)}") from None


class OnnxDenoiser:
    """The exported network in ONNX Runtime, its parameters supplied from the safetensors file."""

    guidance = 1.0  # the network alone

    def __init__(self, directory: Path, threads: int | None = None, exact: bool = True, parameters: str = WEIGHTS_FILE):
        config, state = load_weights(directory, need=(GRAPH_FILE,), parameters=parameters)
        self.schedule = Schedule(**config["schedule"])
        self.session = onnx_session(Path(directory) / GRAPH_FILE, state, threads, exact)

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

    The work runs on lanes, each a thread with half the runtime threads (both runtimes release the GIL): the
    network on the calling thread and the guide beside it on a worker. Where the guide is idle, a batch of at
    least `share_from` images is shared between the lanes, so a month of days keeps both cores busy. Every image
    goes through a network alone: its output never depends on the others in its batch. A smaller batch (one day's
    candidates) keeps each network on its own thread, so each thread's memory holds one network's work: sharing
    a day's four candidates saved 0.4 s of 3.5 and raised the peak RSS by 15 to 20 MB (to 241-262 MB, past the
    250 MB that #14 allows).
    A guided painting takes 2.0 s of sampling where one network after the other took 3.1 s, to the same bits.
    """

    def __init__(self, denoiser, guide, guidance: float, noise_levels: tuple[float, float], lanes: int = PAINT_THREADS,
                 share_from: int = SHARE_LANES_FROM):
        self.denoiser, self.guide, self.guidance, self.schedule = denoiser, guide, guidance, denoiser.schedule
        self.noise_levels = tuple(noise_levels)
        self.lanes, self.share_from = lanes, share_from
        self._beside = [ThreadPoolExecutor(max_workers=1) for _ in range(lanes - 1)]

    def __call__(self, x: np.ndarray, t: int) -> np.ndarray:
        low, high = self.noise_levels
        images = range(len(x))
        steered = low < self.schedule.noise_level(t) <= high
        if steered:
            work = [(self.denoiser, images), (self.guide, images)]
        elif len(x) >= self.share_from:
            work = [(self.denoiser, images[lane :: self.lanes]) for lane in range(self.lanes)]
        else:
            work = [(self.denoiser, images)]

        def run(network, some):
            return [network(x[i : i + 1], t) for i in some]

        if not self._beside:  # one lane: everything on the calling thread
            outputs = [run(*job) for job in work]
        else:
            pending = [self._beside[lane % len(self._beside)].submit(run, *job) for lane, job in enumerate(work[1:])]
            outputs = [run(*work[0]), *(future.result() for future in pending)]
        if steered:
            strong, weak = np.concatenate(outputs[0]), np.concatenate(outputs[1])
            return weak + self.guidance * (strong - weak)
        ordered = [None] * len(x)
        for (_, some), results in zip(work, outputs):
            for i, result in zip(some, results):
                ordered[i] = result
        return np.concatenate(ordered)


BACKENDS = {"onnx": OnnxDenoiser, "torch": TorchDenoiser.load}


def load_denoiser(directory: Path, backend: str = "onnx", threads: int | None = None, guidance: float | None = None):
    """The folder's network, autoguided by its guide at the config's guidance unless `guidance` says otherwise
    (1: the network alone, and the guide is not even read)."""
    config = read_config(directory)
    guidance = guidance if guidance is not None else shipped_guidance(config)
    if guidance == 1:
        return BACKENDS[backend](directory, threads=threads)
    if "guide" not in config:
        raise WeightsError(f"the weights at {directory} ship no guide network, so guidance must be 1")
    threads = threads or PAINT_THREADS
    half = max(1, threads // 2)  # network and guide run side by side
    return Autoguided(BACKENDS[backend](directory, threads=half),
                      BACKENDS[backend](directory, threads=half, parameters=GUIDE_FILE), guidance,
                      config["guide"]["noise_levels"], lanes=max(1, threads // half))
