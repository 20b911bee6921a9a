"""Podman helpers for the container tests: the stand-in Debian base, the action image, a runner-like run.

Image registries are out of reach here, so the Dockerfile's official base is rebuilt from Debian's own
packages (debootstrap --variant=minbase) and slimmed the way the official `-slim` image is: no apt lists
or caches, no docs, man pages or locales, and dpkg told to keep it that way. It is imported under the
exact name the Dockerfile's FROM uses and kept, so later runs skip this step.

Run by hand: `python tests/container.py base` (stand-in base only) or `python tests/container.py build`.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BASE_IMAGE = "docker.io/library/debian:bookworm-slim"
ACTION_IMAGE = "localhost/raccoon-action:test"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
REPO_ROOT = Path(__file__).resolve().parent.parent

# What the slim image drops at build time, and tells dpkg to keep dropping on later installs.
SLIM_DPKG_RULES = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
"""
SLIM_APT_CONFIG = {
    "docker-clean": 'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
    '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
    'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
    '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
    'Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";\n',
    "docker-no-languages": 'Acquire::Languages "none";\n',
    "docker-gzip-indexes": 'Acquire::GzipIndexes "true";\n',
    "docker-autoremove-suggests": 'Apt::AutoRemove::SuggestsImportant "false";\n',
}
SLIM_REMOVALS = ("usr/share/doc/*/*", "usr/share/man", "usr/share/groff", "usr/share/info", "usr/share/lintian",
                 "usr/share/linda", "usr/share/locale/*", "var/lib/apt/lists/*", "var/cache/apt/*.bin",
                 "var/cache/apt/archives/*.deb", "var/cache/debconf/*-old", "var/lib/dpkg/*-old", "var/log/*", "tmp/*")
SLIM_KEPT = {"copyright", "locale.alias", "partial", "lock"}
DEBIAN_SOURCES = f"""\
Types: deb
URIs: {DEBIAN_MIRROR}
Suites: {DEBIAN_SUITE} {DEBIAN_SUITE}-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: {DEBIAN_SUITE}-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


def podman(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """podman with the runtime that works on this machine (crun is not installed; runc is)."""
    return subprocess.run(["podman", "--runtime", "runc", *args], check=check, **kwargs)


def missing_tools() -> list[str]:
    """Tools the container tests need that are not on PATH (empty when the tests can run)."""
    return [tool for tool in ("podman", "runc", "debootstrap") if shutil.which(tool) is None]


def image_exists(name: str) -> bool:
    return podman("image", "exists", name, check=False).returncode == 0


def _slim(root: Path) -> None:
    """Trim a debootstrapped tree the way Debian's official slim image is trimmed."""
    (root / "etc/dpkg/dpkg.cfg.d/docker").write_text(SLIM_DPKG_RULES)
    for name, text in SLIM_APT_CONFIG.items():
        (root / "etc/apt/apt.conf.d" / name).write_text(text)
    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    (root / "etc/apt/sources.list.d/debian.sources").write_text(DEBIAN_SOURCES)
    for pattern in SLIM_REMOVALS:
        for path in root.glob(pattern):
            if path.name in SLIM_KEPT:
                continue
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


def ensure_base_image() -> None:
    """Build and import the stand-in for BASE_IMAGE unless podman already has an image by that name."""
    if image_exists(BASE_IMAGE):
        return
    with tempfile.TemporaryDirectory(prefix="raccoon-debootstrap-") as tmp:
        root = Path(tmp) / "rootfs"
        subprocess.run(["debootstrap", "--variant=minbase", DEBIAN_SUITE, str(root), DEBIAN_MIRROR],
                       check=True, stdout=subprocess.DEVNULL)
        _slim(root)
        tarball = Path(tmp) / "rootfs.tar"
        subprocess.run(["tar", "--numeric-owner", "--xattrs", "-C", str(root), "-cf", str(tarball), "."],
                       check=True)
        podman("import", "--change", 'CMD ["bash"]', str(tarball), BASE_IMAGE, stdout=subprocess.DEVNULL)


def build_action_image(tag: str = ACTION_IMAGE, context: Path = REPO_ROOT) -> None:
    """Build the repository's Dockerfile as `docker build` on GitHub's runner would, offline from registries."""
    ensure_base_image()
    args = ["build", "--isolation", "chroot", "--network", "host", "--pull=never", "-t", tag]
    if HOST_CA_BUNDLE.exists():  # pip inside the build reaches PyPI only with this machine's CA bundle
        args += ["-v", f"{HOST_CA_BUNDLE}:/run/host-ca.pem:ro", "--build-arg", "PIP_CERT=/run/host-ca.pem"]
    result = podman(*args, str(context), check=False, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"podman build failed:\n{(result.stdout + result.stderr)[-4000:]}")


def image_size_bytes(tag: str = ACTION_IMAGE) -> int:
    """Uncompressed size of the image, all layers included (what `podman images` shows)."""
    out = podman("image", "inspect", "--format", "{{.Size}}", tag, capture_output=True, text=True).stdout
    return int(out.strip())


def run_action(workspace: Path, file_commands: Path, env: dict[str, str], tag: str = ACTION_IMAGE,
               timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the action's container the way GitHub's runner does for a Docker action.

    The workspace is mounted at /github/workspace and is the working directory, the file-command files
    live under /github/file_commands, and variables are passed by name only (`-e NAME`, the value taken
    from podman's own environment) so no secret shows on a command line. Host networking lets the
    container reach a test server on 127.0.0.1.
    """
    args = ["run", "--rm", "--network", "host",
            "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
            "--workdir", "/github/workspace",
            "-v", f"{workspace}:/github/workspace",
            "-v", f"{file_commands}:/github/file_commands"]
    for name in env:
        args += ["-e", name]
    return podman(*args, tag, check=False, capture_output=True, text=True, timeout=timeout,
                  env={**os.environ, **env})


if __name__ == "__main__":
    if missing_tools():
        sys.exit(f"missing: {' '.join(missing_tools())} (run .ci/setup-podman)")
    {"base": ensure_base_image, "build": build_action_image}[sys.argv[1] if len(sys.argv) > 1 else "build"]()
    print(f"{ACTION_IMAGE}: {image_size_bytes() / 1e6:.0f} MB" if image_exists(ACTION_IMAGE) else BASE_IMAGE)
