"""The README's reproducibility guarantee: `raccoon paint` (ONNX Runtime) writes byte-identical PNGs for the
same inputs across repeated runs, machines with any number of CPUs, and AVX2 and AVX-512 CPUs; and the
shipped weights paint the raccoons they promise for a few fixed days.

AVX2 against AVX-512 is checked by painting under QEMU's user-mode emulator as an AVX2-only CPU (ONNX
Runtime has no switch to cap its instruction set), when qemu-user is installed, as CI installs it.
"""

import datetime
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import onnx
import onnxruntime as ort
import pytest

from raccoon.backends import PAINT_THREADS, OnnxDenoiser
from raccoon.painting import CommitSource, DayRequest, paint_day
from raccoon.pretrained import GRAPH_FILE, default_weights_dir
from raccoon.scorer import SCORER_GRAPH, Scorer

REPO_ROOT = Path(__file__).resolve().parent.parent
SEED = hashlib.sha256(b"raccoon-day-record v1\ndate 2026-11-22\n").digest()
AVX2_CPU = "EPYC-Milan"  # AMD Zen 3: AVX2 and FMA, no AVX-512, as GitHub's AVX2-only runners
# Print the PNG of a seed as `raccoon paint` makes it; on stderr, the instruction sets the process saw and a
# digest of every step's float32 prediction, which shows a difference too small to change the PNG.
PAINT = """
import hashlib, sys
from pathlib import Path
from numpy._core._multiarray_umath import __cpu_features__ as cpu
from raccoon.render import png_bytes
from raccoon.painting import Painter
steps = hashlib.sha256()
image = Painter.load(Path(sys.argv[3])).paint([bytes.fromhex(sys.argv[1])], int(sys.argv[2]),
                                             on_step=lambda i, x0: steps.update(x0.tobytes())).images[0]
print("avx512f", cpu["AVX512F"], "avx2", cpu["AVX2"], "steps", steps.hexdigest(), file=sys.stderr)
sys.stdout.buffer.write(png_bytes(image))
"""


def shipped_weights() -> Path:
    folder = default_weights_dir()
    if not (folder / "config.json").exists():
        pytest.skip("no shipped weights in this checkout")
    return folder


# The contract of a release: these days paint these PNGs (64x64) with the shipped weights and sampler. A new
# weights version or sampler changes every day's raccoon, and must change these on purpose (README, versions).
# Since 3.0.0: weights v0.8, v0.7's network fine-tuned on its own best paintings, same sampler and choice.
PINNED_DAYS = {
    ("2026-01-06", ()): "8e0d1f4404b0c158511d59d1a009193724df795dba75442df86d5d97102f4fea",
    ("2026-07-04", ()): "9f9960089e369b9a70c0b66dcb997b793d7ce44c8bfd3273a54d5691569f7998",
    ("2026-11-30", ("0123456789abcdef0123456789abcdef01234567",)):
        "15b441fa09e4313b7cd923c9fbc67ea800ebfb35e7412d3e0e602d6f30b788cc",
}


@pytest.mark.parametrize("day, shas", PINNED_DAYS, ids=[day for day, _ in PINNED_DAYS])
def test_shipped_weights_paint_the_pinned_raccoon(day, shas, tmp_path, clean_env, monkeypatch):
    commits = tmp_path / "shas.txt"
    commits.write_text("".join(sha + "\n" for sha in shas))
    monkeypatch.chdir(tmp_path)
    request = DayRequest(date=datetime.date.fromisoformat(day), zone=ZoneInfo("UTC"),
                         commits=CommitSource(source="list", commits_file=str(commits)), out=tmp_path / "r.png",
                         size=64, weights=shipped_weights())
    paint_day(request)
    assert hashlib.sha256((tmp_path / "r.png").read_bytes()).hexdigest() == PINNED_DAYS[day, shas]


def painted(weights: Path, steps: int, cpus: list[int] | None = None, emulate: str | None = None) -> tuple[bytes, str]:
    """The PNG painted by a fresh process, allowed only `cpus` or run on an emulated CPU; and what it saw."""
    prefix = ["qemu-x86_64", "-cpu", emulate] if emulate else []
    run = subprocess.run([*prefix, sys.executable, "-c", PAINT, SEED.hex(), str(steps), str(weights)],
                         capture_output=True, timeout=300, cwd=REPO_ROOT,
                         env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                         preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
    assert run.returncode == 0, run.stderr.decode()[-2000:]
    report = [line for line in run.stderr.decode().splitlines() if line.startswith("avx512f ")]  # qemu may warn too
    return run.stdout, report[-1] if report else run.stderr.decode()[-2000:]


def assert_same_png_on_any_number_of_cpus(weights: Path, steps: int) -> None:
    """1, 2 and 4 CPUs (as many as there are), then 1 again: one PNG."""
    available = sorted(os.sched_getaffinity(0))
    first = painted(weights, steps, cpus=available[:1])
    for count in [n for n in (2, 4) if n <= len(available)] + [1]:
        assert painted(weights, steps, cpus=available[:count]) == first, f"{count} CPUs painted another PNG than 1"


def test_tiny_network_same_png_on_any_number_of_cpus_and_every_run(tiny_weights):
    assert_same_png_on_any_number_of_cpus(tiny_weights, steps=50)


def test_shipped_weights_same_png_on_any_number_of_cpus_and_every_run():
    assert_same_png_on_any_number_of_cpus(shipped_weights(), steps=50)


@pytest.mark.parametrize("weights", ["tiny", "shipped"])
def test_session_avoids_what_follows_the_machine(weights, tiny_weights):
    """What makes machines agree where no emulator checks it: a fixed thread count (ONNX Runtime splits sums by
    it); not ORT_ENABLE_ALL (its NCHWc convolutions sum by vector width); no fused Softmax (the same)."""
    folder = tiny_weights if weights == "tiny" else shipped_weights()
    assert "Softmax" not in {node.op_type for node in onnx.load(folder / GRAPH_FILE, load_external_data=False).graph.node}
    sessions = [OnnxDenoiser(folder).session]
    if weights == "shipped":  # and the scorer that picks among its candidates
        sessions.append(Scorer.load(folder).session)
        scorer_graph = onnx.load(folder / SCORER_GRAPH, load_external_data=False).graph
        assert "Softmax" not in {node.op_type for node in scorer_graph.node}
    for session in sessions:
        options = session.get_session_options()
        assert options.graph_optimization_level != ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        assert options.intra_op_num_threads == PAINT_THREADS


@pytest.mark.skipif(not shutil.which("qemu-x86_64"), reason="qemu-user is not installed")
@pytest.mark.parametrize("weights", ["tiny", "shipped"])
def test_avx2_only_cpu_paints_the_same_png(weights, guided_weights):
    """The whole painter (noise, NumPy, ONNX Runtime, autoguidance, PNG) on an emulated AVX2-only CPU against this one,
    with a tiny guided network and with the shipped weights (and their scorer, choosing the best of their
    candidates)."""
    folder = guided_weights if weights == "tiny" else shipped_weights()
    steps = 4  # emulation is some 400x slower; every op of the network still runs at every step, guided at two
    emulated, seen = painted(folder, steps, emulate=AVX2_CPU)
    assert seen.startswith("avx512f False avx2 True")
    native, seen_here = painted(folder, steps)
    assert seen.split()[-1] == seen_here.split()[-1], "the network's outputs differ in their last bits"
    assert emulated == native
