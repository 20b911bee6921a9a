"""The Action's two paths, side by side, each up to the PNG: building its image from the Dockerfile, as GitHub
does for `image: Dockerfile` (main, forks, `uses: ./`), against pulling the image a release pins by digest
(`image: docker://ghcr.io/...@sha256:...`, docs/releasing.md).

    python -m benchmarks.action [--repeats 3]

- Build: `podman build --no-cache` of the Dockerfile as tests/container.py builds it (the Debian base already
  there: its pull, about 28 MB, is not counted; pip downloads from PyPI at this machine's bandwidth), then the
  first run of the new image.
- Pull: the image's compressed size, what a runner downloads (`podman save | gzip`; a registry stores each layer
  gzipped, which comes within a few percent of it); `gzip -dc | podman load` of that archive into an empty image
  store, which decompresses and unpacks every layer as a pull does; then the first run. The download itself cannot be timed here
  (registries are out of reach): at a runner's 100 MB/s or more it adds about a second.
- A run is the container as GitHub's runner starts it for the Action with its default inputs (256 px, 50
  steps), a day with two commits served by tests/fake_github.py, from `podman run` to exit, the PNG written.

Run it on a quiet machine from the repository's root, as root with podman, runc and debootstrap
(.ci/setup-podman). Writes benchmarks/results/action.md and action.json; the README and docs/speed.md quote them.
Benchmarks run by hand, never in the test suite.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))

import container  # noqa: E402  (tests/container.py: the stand-in base, podman with runc)
from fake_github import FakeCommit, FakeGitHub  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
TAG = "localhost/raccoon-action:bench"
TARGET_SECONDS = 10.0  # from a pulled image to the PNG
DAY = "2026-03-10"
COMMITS = [FakeCommit(f"{n:040x}", "octocat", datetime.datetime.fromisoformat(f"2026-03-10T{9 + n}:00:00+00:00"))
           for n in (1, 2)]


def timed(*args: str, **kwargs) -> float:
    start = time.perf_counter()
    container.podman(*args, **kwargs)
    return time.perf_counter() - start


def build_no_cache() -> float:
    """Seconds of `podman build --no-cache` of the Dockerfile, as tests/container.py builds it otherwise."""
    container.ensure_base_image()
    args = ["build", "--no-cache", "--isolation", "chroot", "--network", "host", "--pull=never", "-t", TAG]
    if container.HOST_CA_BUNDLE.exists():
        args += ["-v", f"{container.HOST_CA_BUNDLE}:/run/host-ca.pem:ro", "--build-arg", "PIP_CERT=/run/host-ca.pem"]
    return timed(*args, str(REPO_ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def load(store: list[str], archive: Path) -> float:
    """Seconds to unpack the gzipped archive into the image store: gunzip piped into `podman load`."""
    start = time.perf_counter()
    with open(archive, "rb") as packed:
        gunzip = subprocess.Popen(["gzip", "-dc"], stdin=packed, stdout=subprocess.PIPE)
        container.podman(*store, "load", "--quiet", stdin=gunzip.stdout, stdout=subprocess.DEVNULL)
        gunzip.stdout.close()
        if gunzip.wait() != 0:
            raise RuntimeError("gzip -dc failed")
    return time.perf_counter() - start


def run_action(store: list[str], api_url: str, folder: Path) -> float:
    """Seconds from `podman run` to exit of the Action with its default inputs; the PNG must be there."""
    workspace = Path(tempfile.mkdtemp(prefix="workspace-", dir=folder))
    commands = Path(tempfile.mkdtemp(prefix="commands-", dir=folder))
    (commands / "set_output").touch()
    (commands / "step_summary").touch()
    env = {"GITHUB_ACTIONS": "true", "CI": "true", "HOME": "/github/home", "RUNNER_OS": "Linux",
           "GITHUB_WORKSPACE": "/github/workspace", "GITHUB_REPOSITORY": "octocat/octocat",
           "GITHUB_REPOSITORY_OWNER": "octocat", "GITHUB_API_URL": api_url, "GITHUB_EVENT_NAME": "schedule",
           "GITHUB_OUTPUT": "/github/file_commands/set_output",
           "GITHUB_STEP_SUMMARY": "/github/file_commands/step_summary",
           "INPUT_GITHUB_TOKEN": "", "INPUT_USERNAME": "octocat", "INPUT_DATE": DAY, "INPUT_TIMEZONE": "UTC",
           "INPUT_OUTPUT": "raccoon.png", "INPUT_SIZE": "256", "INPUT_STEPS": "50", "INPUT_README": "",
           "INPUT_ON_ERROR": "fail"}
    args = [*store, "run", "--rm", "--network", "host", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
            "--workdir", "/github/workspace", "-v", f"{workspace}:/github/workspace",
            "-v", f"{commands}:/github/file_commands"]
    for name in env:
        args += ["-e", name]
    start = time.perf_counter()
    result = container.podman(*args, TAG, check=False, capture_output=True, text=True, timeout=600,
                              env={**os.environ, **env})
    seconds = time.perf_counter() - start
    if result.returncode != 0 or not (workspace / "raccoon.png").is_file():
        raise RuntimeError(f"the action failed:\n{result.stdout}{result.stderr}")
    lines = (commands / "set_output").read_text().splitlines()
    if not any(line.startswith("commits<<") and lines[n + 1] == "2" for n, line in enumerate(lines)):
        raise RuntimeError("the action did not find the day's two commits")
    return seconds


def summarize(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": len(values)}


def fmt(summary: dict) -> str:
    if summary["runs"] == 1:
        return f"{summary['median']:.1f}"
    return f"{summary['median']:.1f} ({summary['min']:.1f} to {summary['max']:.1f})"


def measure(repeats: int, build_repeats: int) -> dict:
    if os.geteuid() != 0 or container.missing_tools():
        sys.exit("run as root with podman, runc and debootstrap (bash .ci/setup-podman)")
    fake = FakeGitHub(COMMITS).start()
    folder = Path(tempfile.mkdtemp(prefix="raccoon-bench-"))
    try:
        builds, build_runs = [], []
        for _ in range(build_repeats):
            builds.append(build_no_cache())
            build_runs.append(run_action([], fake.url, folder))
        warm = [run_action([], fake.url, folder) for _ in range(repeats)]

        archive = folder / "image.tar.gz"
        start = time.perf_counter()
        with open(archive, "wb") as out:
            save = subprocess.Popen(["podman", "--runtime", "runc", "save", "--format", "docker-archive", TAG],
                                    stdout=subprocess.PIPE)
            subprocess.run(["gzip", "-6"], stdin=save.stdout, stdout=out, check=True)
            save.stdout.close()
            if save.wait() != 0:
                raise RuntimeError("podman save failed")
        save_seconds = time.perf_counter() - start

        loads, load_runs = [], []
        for n in range(repeats):  # each into an empty image store, so every layer is unpacked
            store = ["--root", str(folder / f"store-{n}"), "--runroot", str(folder / f"run-{n}")]
            loads.append(load(store, archive))
            load_runs.append(run_action(store, fake.url, folder))
            container.podman(*store, "rmi", "--all", "--force", check=False, capture_output=True)
            shutil.rmtree(folder / f"store-{n}", ignore_errors=True)
        pulled = [load + run for load, run in zip(loads, load_runs)]
        return {
            "date": datetime.date.today().isoformat(),
            "machine": {"cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                        "load_average": os.getloadavg(), "podman": container.podman(
                            "--version", capture_output=True, text=True).stdout.strip()},
            "image_bytes": container.image_size_bytes(TAG),
            "compressed_bytes": archive.stat().st_size,
            "save_gzip_seconds": save_seconds,
            "build_no_cache_seconds": summarize(builds),
            "first_run_after_build_seconds": summarize(build_runs),
            "build_to_png_seconds": summarize([b + r for b, r in zip(builds, build_runs)]),
            "warm_run_seconds": summarize(warm),
            "load_seconds": summarize(loads),
            "first_run_after_load_seconds": summarize(load_runs),
            "pulled_image_to_png_seconds": summarize(pulled),
            "target_seconds": TARGET_SECONDS,
        }
    finally:
        fake.stop()
        for store in folder.glob("store-*"):  # a failed run's image store still mounts its layers
            run = folder / store.name.replace("store-", "run-")
            container.podman("--root", str(store), "--runroot", str(run), "rmi", "--all", "--force",
                             check=False, capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)
        container.podman("rmi", TAG, check=False, capture_output=True)


def markdown(results: dict) -> str:
    r = results
    mb = 1e6
    met = r["pulled_image_to_png_seconds"]["max"] <= r["target_seconds"]
    return f"""# The Action's two paths

`python -m benchmarks.action`, {r['date']}, {r['machine']['cpus']} CPUs ({r['machine']['cpu']}), {r['machine']['podman']},
load average at the end {r['machine']['load_average'][0]:.2f}. Seconds: median (min to max) of
{r['load_seconds']['runs']} runs; the build ran {r['build_no_cache_seconds']['runs']} time(s). A run: the Action with
its default inputs (256 px, 50 steps, autoguided), two commits from the fake GitHub, `podman run` to exit.

| path | what a runner does | seconds |
|---|---|---|
| `image: Dockerfile` | `podman build --no-cache` (base image present) | {fmt(r['build_no_cache_seconds'])} |
| | first run of the new image | {fmt(r['first_run_after_build_seconds'])} |
| | **build to PNG** | **{fmt(r['build_to_png_seconds'])}** |
| `image: docker://…@sha256:…` | download {r['compressed_bytes'] / mb:.0f} MB (`podman save \\| gzip`) | not measured: about 1 s at 100 MB/s |
| | `gzip -dc \\| podman load` into an empty store (unpacks every layer) | {fmt(r['load_seconds'])} |
| | first run of the loaded image | {fmt(r['first_run_after_load_seconds'])} |
| | **pulled image to PNG** | **{fmt(r['pulled_image_to_png_seconds'])}** (target: at most {r['target_seconds']:.0f} s: {'met' if met else 'missed'}) |
| either | a run of an image already there | {fmt(r['warm_run_seconds'])} |

Image: {r['image_bytes'] / mb:.0f} MB unpacked, {r['compressed_bytes'] / mb:.0f} MB compressed.
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="loads and runs (default: %(default)s)")
    parser.add_argument("--build-repeats", type=int, default=1, help="no-cache builds (default: %(default)s)")
    args = parser.parse_args(argv)
    results = measure(args.repeats, args.build_repeats)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "action.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "action.md").write_text(markdown(results))
    print(markdown(results))
    return 0 if results["pulled_image_to_png_seconds"]["max"] <= TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
