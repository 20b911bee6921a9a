"""Export a weights folder's network to ONNX, its parameters left out of the graph.

    raccoon export [--weights weights/] [--guide DIR --guidance W --noise-levels LOW HIGH]

The graph keeps each parameter's name, shape and type, marked as external data; at load time
backends.OnnxDenoiser supplies the values from model.safetensors. So the folder ships one copy of
the weights (fp16) for both backends, and model.onnx stays a few hundred kilobytes. With --guide,
the network of another weights folder (an earlier milestone of the same run) ships beside it as
guide.safetensors, the autoguidance network; the same graph serves it.
"""

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

import onnx
import torch
from onnx.external_data_helper import set_external_data
from tqdm import tqdm

from raccoon import options
from raccoon.backends import TorchDenoiser
from raccoon.pretrained import GRAPH_FILE, GUIDED_NOISE_LEVELS, WeightsError, attach_guide, default_weights_dir, record_file

EXTERNAL_LOCATION = "supplied-at-load-time-from-model.safetensors"
OPSET = 17


def export(weights: Path) -> Path:
    net = TorchDenoiser.load(weights).net
    # The graph carries no values, so trace a copy with distinct random ones: the exporter merges
    # parameters that happen to be equal (a fresh network's zero-initialised layers), losing their names.
    with torch.no_grad():
        for p in net.parameters():
            p.normal_()
    x, t = torch.zeros(1, 3, 64, 64), torch.zeros(1)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        raw = Path(tmp) / "raw.onnx"
        torch.onnx.export(net, (x, t), raw, input_names=["x", "t"], output_names=["prediction"],
                          dynamic_axes={"x": {0: "batch"}, "t": {0: "batch"}, "prediction": {0: "batch"}},
                          opset_version=OPSET, dynamo=False, do_constant_folding=False)
        graph = onnx.load(raw)
    parameters = {name: tuple(p.shape) for name, p in net.state_dict().items()}
    for tensor in tqdm(graph.graph.initializer, desc="exporting", unit="tensor"):
        if parameters.get(tensor.name) == tuple(tensor.dims):
            set_external_data(tensor, EXTERNAL_LOCATION)
            tensor.ClearField("raw_data")
    missing = set(parameters) - {i.name for i in graph.graph.initializer}
    if missing:
        raise RuntimeError(f"the exporter renamed or folded parameters: {sorted(missing)[:5]}")
    path = Path(weights) / GRAPH_FILE
    onnx.save(graph, path)
    record_file(weights, GRAPH_FILE)
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="raccoon export", description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", type=Path, default=None, help="weights folder (default: the shipped weights)")
    p.add_argument("--guide", type=Path, metavar="DIR",
                   help="weights folder of a less trained version of the same network, shipped as the guide")
    p.add_argument("--guidance", type=options.guidance, default=2.0, metavar="W",
                   help="the painter's default guidance with --guide (default: %(default)s)")
    p.add_argument("--noise-levels", type=float, nargs=2, default=GUIDED_NOISE_LEVELS, metavar=("LOW", "HIGH"),
                   help="with --guide, steer only where the noise level sigma lies in (LOW, HIGH] "
                        "(default: %(default)s)")
    args = p.parse_args(argv)
    weights = args.weights or default_weights_dir()
    try:
        if args.guide:
            attach_guide(weights, args.guide, args.guidance, args.noise_levels)
            low, high = args.noise_levels
            print(f"shipped {args.guide} as the guide of {weights}, guidance {args.guidance:g} "
                  f"at noise levels ({low:g}, {high:g}]")
        path = export(weights)
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    except WeightsError as error:
        print(f"raccoon export: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
