"""Export a weights folder's network to ONNX, its parameters left out of the graph.

    raccoon export [--weights weights/] [--guide DIR --guidance W --noise-levels LOW HIGH]
                   [--scorer DATA --candidates K --choose-at SIGMA] [--head ANSWERS]

The graph keeps each parameter's name, shape and type, marked as external data; at load time
backends.OnnxDenoiser supplies the values from model.safetensors. So the folder ships one copy of
the weights (fp16) for both backends, and model.onnx stays a few hundred kilobytes. With --guide,
the network of another weights folder (an earlier milestone of the same run) ships beside it as
guide.safetensors, the autoguidance network; the same graph serves it. With --scorer, the
recognizability scorer (scorer.py) ships too, and the painter paints the best of K candidates by it.
With --head, the candidates are ranked by a head fitted to blind reviewers' answers (candidate rule 2).
"""

import copy
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx.external_data_helper import set_external_data
from tqdm import tqdm

from raccoon import options
from raccoon.backends import TorchDenoiser, onnx_session
from raccoon.day import CLOSENESS_RULE, HEAD_RULE
from raccoon.files import cannot_write, write_atomically
from raccoon.pretrained import (GRAPH_FILE, GUIDED_NOISE_LEVELS, WeightsError, attach_guide, check_choice,
                                default_weights_dir, read_config, read_parameters, record_file, write_parameters)
from raccoon.scorer import (CROPS_FILE, CROPS_TENSOR, FEATURES, HEAD_FILE, RIDGE, SCORER_FILE, SCORER_GRAPH, Scorer,
                            fit_head)

# Best of K chooses once the noise level is down to this: after 14 of 50 steps, the cheapest choice near the best
# on the tuning days (the model card's best-of-K table).
CHOICE_NOISE_LEVEL = 2.3
# Where a graph says its parameters are. The painter supplies them itself, from model.safetensors or (for the
# scorer's graph, which carries the same words) scorer.safetensors; changing the words would change the graphs' bytes.
EXTERNAL_LOCATION = "supplied-at-load-time-from-model.safetensors"
OPSET = 17


def export_graph(net: torch.nn.Module, inputs: dict[str, torch.Tensor], output: str, path: Path,
                 leave_out: tuple[str, ...] = ()) -> list[str]:
    """Write `net` as an ONNX graph whose parameters (every float tensor of its state but `leave_out`, which the
    graph must not use) are left out, to be supplied at load time; their names, which the graph keeps."""
    net = copy.deepcopy(net)
    # The graph carries no values, so trace a copy with distinct random ones: the exporter merges
    # parameters that happen to be equal (a fresh network's zero-initialised layers), losing their names.
    parameters = {name: tuple(value.shape) for name, value in net.state_dict().items()
                  if value.is_floating_point() and name not in leave_out}
    with torch.no_grad():
        for value in net.state_dict().values():
            if value.is_floating_point():
                value.normal_()
    batch = {name: {0: "batch"} for name in (*inputs, output)}
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        raw = Path(tmp) / "raw.onnx"
        torch.onnx.export(net, tuple(inputs.values()), raw, input_names=list(inputs), output_names=[output],
                          dynamic_axes=batch, opset_version=OPSET, dynamo=False, do_constant_folding=False)
        graph = onnx.load(raw)
    for tensor in tqdm(graph.graph.initializer, desc="exporting", unit="tensor"):
        if parameters.get(tensor.name) == tuple(tensor.dims):
            set_external_data(tensor, EXTERNAL_LOCATION)
            tensor.ClearField("raw_data")
    missing = set(parameters) - {i.name for i in graph.graph.initializer}
    if missing:
        raise RuntimeError(f"the exporter renamed or folded parameters: {sorted(missing)[:5]}")
    write_atomically(path, graph.SerializeToString())
    return list(parameters)


def export(weights: Path) -> Path:
    net = TorchDenoiser.load(weights).net
    path = Path(weights) / GRAPH_FILE
    export_graph(net, {"x": torch.zeros(1, 3, 64, 64), "t": torch.zeros(1)}, "prediction", path)
    record_file(weights, GRAPH_FILE)
    return path


def export_scorer(weights: Path, data: Path, candidates: int, noise_level: float) -> int:
    """Ship the recognizability scorer (scorer.py) in the weights folder: EfficientNet-Lite0 as an ONNX graph, its
    parameters in fp16, and the features of the real crops of `data` (and their mirror images) as the scorer
    itself computes them; the config's choice entry paints the best of `candidates` by it, chosen at
    `noise_level`. Returns the number of crops."""
    from raccoon.data import load_crops
    from raccoon.evaluate import feature_net, with_flips

    weights = Path(weights)
    choice = {"rule": CLOSENESS_RULE, "candidates": candidates, "noise_level": noise_level}
    check_choice(choice)
    try:
        crops = load_crops(data, progress=lambda xs: tqdm(xs, desc="reading photos", unit="photo"))
    except OSError as error:  # no folder, no photos, or one that is not an image
        raise WeightsError(f"--scorer: {error}") from None
    net = feature_net()
    names = export_graph(net, {"images": torch.zeros(1, 64, 64, 3, dtype=torch.uint8)}, "features",
                         weights / SCORER_GRAPH, leave_out=tuple(n for n in net.state_dict() if "._fc." in n))
    write_parameters(weights / SCORER_FILE, {name: net.state_dict()[name].numpy() for name in names})
    record_file(weights, SCORER_GRAPH)
    record_file(weights, SCORER_FILE)
    session = onnx_session(weights / SCORER_GRAPH, read_parameters(weights / SCORER_FILE))
    write_parameters(weights / CROPS_FILE, {CROPS_TENSOR: Scorer(session, None).features(with_flips(crops))})
    choice["scorer"] = {"network": "efficientnet-lite0 (ImageNet), pooled last convolution, 224 px",
                        "data": str(data), "crops": len(crops)}
    record_file(weights, CROPS_FILE, choice=choice)
    return len(crops)


def export_head(weights: Path, answers: Path) -> int:
    """Rank the folder's candidates by a head fitted to blind answers (candidate rule 2): `answers` holds the
    scorer's features of judged paintings ("features", N x 1280) and the strict reviewers' answers ("strict", 1 for
    yes). The folder must ship the scorer already. Returns the number of answers."""
    weights = Path(weights)
    config = read_config(weights)
    if "choice" not in config:
        raise WeightsError(f"--head: the weights at {weights} ship no scorer; export one with --scorer DATA")
    tensors = read_parameters(answers)
    features, strict = tensors.get("features"), tensors.get("strict")
    if (features is None or strict is None or features.ndim != 2 or features.shape[1] != FEATURES
            or strict.shape != (len(features),) or set(np.unique(strict)) != {0.0, 1.0}):
        raise WeightsError(f"--head: {answers} needs 'features' (N x {FEATURES}) and 'strict' (N answers, both yes "
                           "and no among them)")
    write_parameters(weights / HEAD_FILE, fit_head(features, strict))
    head = {"answers": Path(answers).name, "count": len(strict), "target": "strict", "ridge": RIDGE}
    record_file(weights, HEAD_FILE, choice={**config["choice"], "rule": HEAD_RULE, "head": head})
    return len(strict)


def main(argv=None) -> int:
    p = options.Parser(prog="raccoon export", description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", type=Path, default=None, help="weights folder (default: the shipped weights)")
    p.add_argument("--guide", type=Path, metavar="DIR",
                   help="weights folder of a less trained version of the same network, shipped as the guide")
    p.add_argument("--guidance", type=options.guidance, default=2.0, metavar="W",
                   help="the painter's default guidance with --guide (default: %(default)s)")
    p.add_argument("--noise-levels", type=float, nargs=2, default=GUIDED_NOISE_LEVELS, metavar=("LOW", "HIGH"),
                   help="with --guide, steer only where the noise level sigma lies in (LOW, HIGH] "
                        "(default: %(default)s)")
    p.add_argument("--scorer", type=Path, metavar="DATA",
                   help="also ship the recognizability scorer, with the features of the real crops of the photos "
                        "in DATA, and paint the best of --candidates by it")
    p.add_argument("--candidates", type=options.candidates, default=4, metavar="K",
                   help="with --scorer, candidates a day (default: %(default)s)")
    p.add_argument("--choose-at", type=options.number_between(float, 0.01, 100), default=CHOICE_NOISE_LEVEL,
                   metavar="SIGMA",
                   help="with --scorer, choose at the first step whose noise level is at most SIGMA "
                        "(default: %(default)s, after 14 of 50 steps)")
    p.add_argument("--head", type=Path, metavar="ANSWERS",
                   help="rank the candidates by a head fitted to the blind answers in ANSWERS (safetensors: the "
                        "scorer's 'features' of judged paintings and the strict reviewers' 'strict' answers)")
    try:
        args = p.parse_args(argv)
        weights = args.weights or default_weights_dir()
        if args.guide:
            attach_guide(weights, args.guide, args.guidance, args.noise_levels)
            low, high = args.noise_levels
            print(f"shipped {args.guide} as the guide of {weights}, guidance {args.guidance:g} "
                  f"at noise levels ({low:g}, {high:g}]")
        path = export(weights)
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
        if args.scorer:
            crops = export_scorer(weights, args.scorer, args.candidates, args.choose_at)
            print(f"shipped the scorer and the features of {crops} real crops: best of {args.candidates}, chosen "
                  f"at noise level {args.choose_at:g}")
        if args.head:
            answers = export_head(weights, args.head)
            print(f"shipped a head fitted to {answers} blind answers: the candidates are ranked by it")
    except (WeightsError, options.UsageError) as error:
        print(f"raccoon export: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a folder it cannot write to, a full disk
        print(f"raccoon export: error: {cannot_write(error, weights)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
