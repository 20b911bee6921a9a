"""Writing a file all at once, so that a failure never leaves half of one behind."""

import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder, synced, and os.replace: readers, and a
    machine that crashed, see the old file or the new one, never half of it. An OSError names `path`, not the
    temporary file."""
    path = Path(path)
    try:
        _replace_with(path, data)
    except OSError as error:
        raise type(error)(error.errno, error.strerror, str(path)) from None


def _replace_with(path: Path, data: bytes) -> None:
    if path.exists():
        mode = path.stat().st_mode & 0o777
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask  # what open() would have made; mkstemp makes 0600
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())  # on disk before it takes the old file's place: a crash leaves one of the two
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def cannot_write(error: OSError, where: Path) -> str:
    """The one line for a failed write: the file it names (else `where`) and why."""
    return f"cannot write {error.filename or where}: {error.strerror or error}"
