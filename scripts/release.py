#!/usr/bin/env python3
"""The release workflow's checks, its notes and one edit (.github/workflows/release.yml; docs/releasing.md).

    python3 scripts/release.py version v1.2.3
        Checks that the version is X.Y.Z (a leading `v` allowed) and is the package's own version
        (`__version__` in raccoon/__init__.py), then prints the tags of the release for $GITHUB_OUTPUT:
        version=1.2.3, tag=v1.2.3, minor=v1.2, major=v1.

    python3 scripts/release.py notes v1.2.3 [--changelog CHANGELOG.md]
        Prints what CHANGELOG.md says of the release: the text under its `## 1.2.3` heading, up to the next
        `## ` heading. A release with no such section is refused, so every release says what it changed
        (above all, whether it changes anyone's raccoons).

    python3 scripts/release.py pin-image ghcr.io/owner/repo sha256:<64 hex digits> [--action action.yml]
        Rewrites `runs.image` of a Docker action from its Dockerfile to the prebuilt image,
        `docker://ghcr.io/owner/repo@sha256:<digest>`. Every other byte of the file stays as it was: comments,
        quoting, line endings, the order of keys.

Each refusal is one line, `release.py: error: ...`, and exit status 1 (2 for a command line argparse refuses). Standard library only: the runner's
python3 runs it without installing anything.
"""

import argparse
import ast
import os
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERSION = re.compile(r"v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)")
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# An image name as a registry accepts it: a host (with an optional port) and lowercase path components.
IMAGE = re.compile(r"[a-z0-9]+(?:[.-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)+")
TOP_KEY = re.compile(r"(?P<key>[^\s#:'\"][^:#]*?|'[^']*'|\"[^\"]*\")[ \t]*:(?:[ \t]+|$)")
LINE_END = re.compile(r"\r?\n\Z|\r\Z")


class Refused(Exception):
    """A check failed: the message is the one line the user sees."""


def release_tags(version: str, package_version: str) -> dict[str, str]:
    """The tags of release `version` (X.Y.Z or vX.Y.Z), which must be `package_version`."""
    match = VERSION.fullmatch(version)
    if not match:
        raise Refused(f"version {version!r} is not X.Y.Z (such as 1.2.3 or v1.2.3)")
    major, minor, patch = match.groups()
    plain = f"{major}.{minor}.{patch}"
    if plain != package_version:
        raise Refused(f"version {plain} is not the package's version {package_version} (raccoon/__init__.py): "
                      "bump __version__ on main first")
    return {"version": plain, "tag": f"v{plain}", "minor": f"v{major}.{minor}", "major": f"v{major}"}


def changelog_section(text: str, version: str) -> str:
    """The text under the `## X.Y.Z` heading of a changelog (a `v` before the version, and anything after it on
    the heading line, such as a date, allowed), up to the next second-level heading."""
    plain = version.removeprefix("v")
    heading = re.compile(rf"^## v?{re.escape(plain)}(?:\s.*)?$", re.M)
    match = heading.search(text)
    if not match:
        raise Refused(f"CHANGELOG.md has no '## {plain}' section: say what this release changes first")
    following = re.compile(r"^## ", re.M).search(text, match.end())
    section = text[match.end():following.start() if following else len(text)].strip()
    if not section:
        raise Refused(f"CHANGELOG.md's '## {plain}' section is empty")
    return section


def package_version(init: Path) -> str:
    """`__version__` of a package's __init__.py, read without importing it."""
    for node in ast.parse(init.read_text(encoding="utf-8")).body:
        if (isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["__version__"]
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            return node.value.value
    raise Refused(f"{init}: no __version__ = \"X.Y.Z\" line")


def _split_value(rest: str) -> tuple[str, str, str]:
    """A one-line YAML scalar after `key:`: (value as written, its text, what follows it: spaces and a comment)."""
    if rest[:1] in ("'", '"'):
        quote = rest[0]
        end = rest.find(quote, 1)
        while quote == "'" and end != -1 and rest[end + 1:end + 2] == "'":  # '' is a quote inside '...'
            end = rest.find(quote, end + 2)
        if end == -1:
            raise Refused("a quoted value runs past its line")
        written, after = rest[:end + 1], rest[end + 1:]
        text = written[1:-1].replace("''", "'") if quote == "'" else written[1:-1]
    else:
        comment = re.search(r"[ \t]#", rest)
        written = (rest[:comment.start()] if comment else rest).rstrip(" \t")
        after, text = rest[len(written):], written
    if after.strip() and not after.lstrip(" \t").startswith("#"):
        raise Refused(f"cannot read the value {rest.strip()!r}")
    return written, text, after


def pin_image(text: str, image: str, digest: str, name: str = "action.yml") -> str:
    """`text` (an action.yml) with runs.image set to docker://IMAGE@DIGEST, every other character kept."""
    if not DIGEST.fullmatch(digest):
        raise Refused(f"digest {digest!r} is not sha256: followed by 64 lowercase hex digits")
    if not IMAGE.fullmatch(image):
        raise Refused(f"image {image!r} is not a registry image name such as ghcr.io/owner/repo (lowercase)")
    lines = text.splitlines(keepends=True)
    bodies = [LINE_END.sub("", line) for line in lines]
    top = [(n, TOP_KEY.match(body)) for n, body in enumerate(bodies) if body[:1] not in ("", " ", "\t", "#")]
    runs = [n for n, match in top if match and match["key"].strip("'\"") == "runs"]
    if len(runs) != 1:
        raise Refused(f"{name}: {'no' if not runs else 'more than one'} top-level runs: key")
    start = runs[0]
    rest = bodies[start][TOP_KEY.match(bodies[start]).end():].strip()
    if rest and not rest.startswith("#"):
        raise Refused(f"{name}: runs: must be a block mapping (one key a line), not written on one line")
    end = next((n for n, _ in top if n > start), len(lines))
    keys: dict[str, list[tuple[int, int, str, str]]] = {}  # key: (line, column of the value, as written, text)
    indent = None
    for n in range(start + 1, end):
        body = bodies[n]
        content = body.lstrip(" ")
        if not content or content.startswith("#"):
            continue
        if body.startswith("\t") or content.startswith("\t"):
            raise Refused(f"{name}: line {n + 1} is indented with a tab")
        here = len(body) - len(content)
        indent = here if indent is None else indent
        if here != indent:
            continue  # deeper: inside a key's own value (args, env, ...)
        match = TOP_KEY.match(content)
        if not match:
            raise Refused(f"{name}: line {n + 1} in runs: is not a `key: value` line")
        key = match["key"].strip("'\"")
        if key in ("using", "image"):  # the other keys' values are left unread, as they are left alone
            try:
                written, value, _ = _split_value(content[match.end():])
            except Refused as refusal:
                raise Refused(f"{name}: line {n + 1}: {refusal}") from None
            keys.setdefault(key, []).append((n, here + match.end(), written, value))
    for key in ("using", "image"):
        if len(keys.get(key, [])) > 1:
            raise Refused(f"{name}: runs.{key} is given more than once")
    using = keys.get("using", [(None, 0, "", "")])[0][3]
    if using != "docker":
        raise Refused(f"{name}: runs.using is {using!r}, not 'docker': only a Docker action has an image to pin")
    if "image" not in keys:
        raise Refused(f"{name}: runs has no image: key")
    n, at, written, value = keys["image"][0]
    if not value or written in ("|", ">") or written[:1] in ("|", ">", "&", "*", "!", "[", "{"):
        raise Refused(f"{name}: runs.image must be a one-line value, such as Dockerfile")
    if value.startswith("docker://"):
        raise Refused(f"{name}: runs.image is already {value!r}: release from a commit whose action builds its Dockerfile")
    pinned = f"docker://{image}@{digest}"
    quote = written[0] if written[0] in ("'", '"') else ""
    line = lines[n]
    assert line[at:at + len(written)] == written
    lines[n] = line[:at] + f"{quote}{pinned}{quote}" + line[at + len(written):]
    return "".join(lines)


def write_keeping_mode(path: Path, text: str) -> None:
    """Replace `path` whole (a crash leaves the old file), with its permissions, and its bytes as given."""
    data = text.encode("utf-8")
    mode = path.stat().st_mode & 0o7777
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        tmp.write(data)
    os.chmod(tmp.name, mode)
    os.replace(tmp.name, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="release.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    version = commands.add_parser("version", help="check a release version and print its tags")
    version.add_argument("version", help="X.Y.Z or vX.Y.Z")
    version.add_argument("--package", type=Path, default=ROOT / "raccoon" / "__init__.py",
                         help="the __init__.py holding __version__ (default: %(default)s)")
    notes = commands.add_parser("notes", help="print what the changelog says of a release")
    notes.add_argument("version", help="X.Y.Z or vX.Y.Z")
    notes.add_argument("--changelog", type=Path, default=ROOT / "CHANGELOG.md", help="(default: %(default)s)")
    pin = commands.add_parser("pin-image", help="point runs.image of action.yml at a prebuilt image")
    pin.add_argument("image", help="registry image name, such as ghcr.io/owner/repo")
    pin.add_argument("digest", help="sha256:<64 hex digits>")
    pin.add_argument("--action", type=Path, default=ROOT / "action.yml", help="(default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        if args.command == "version":
            for name, value in release_tags(args.version, package_version(args.package)).items():
                print(f"{name}={value}")
        elif args.command == "notes":
            try:
                print(changelog_section(args.changelog.read_text(encoding="utf-8"), args.version))
            except OSError as error:
                raise Refused(f"{args.changelog}: {error.strerror}") from None
        else:
            try:
                raw = args.action.read_bytes()
            except OSError as error:
                raise Refused(f"{args.action}: {error.strerror}") from None
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise Refused(f"{args.action}: not UTF-8") from None
            write_keeping_mode(args.action, pin_image(text, args.image, args.digest, args.action.name))
            print(f"{args.action.name}: runs.image is docker://{args.image}@{args.digest}")
    except Refused as refusal:
        print(f"release.py: error: {refusal}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
