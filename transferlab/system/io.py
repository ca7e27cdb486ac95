"""Small file helpers: atomic outputs, hashing, JSON."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_dir(path: Path | str) -> Iterator[Path]:
    """Yield a scratch directory that replaces `path` only if the block succeeds.

    A failed stage therefore leaves no partial output behind (and an older good output is kept). A
    killed one cannot clean up: the next run of the same output removes its scratch directory, and says so."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private (0700); the output must get the usual mode
    lock = _lock(tmp)  # held while the block runs: a concurrent run of the same output leaves this one alone
    try:
        _remove_leftover_scratch(path, keep=tmp)
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        tmp.rename(path)
    finally:
        if lock is not None:
            os.close(lock)


# mkdtemp's names: the prefix, then 8 characters of these. Nothing else in the folder is taken for scratch.
_SCRATCH_SUFFIX = re.compile(r"[a-z0-9_]{8}")


def _lock(directory: Path) -> int | None:
    """An exclusive flock on `directory` (released when the process dies, even by SIGKILL); raises
    BlockingIOError when another process holds it. None where the system or file system has no flock."""
    try:
        import fcntl
    except ImportError:
        return None
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        os.close(fd)
        if isinstance(err, BlockingIOError):
            raise
        return None
    return fd


def _remove_leftover_scratch(path: Path, keep: Path) -> None:
    prefix = f".{path.name}."
    for d in sorted(path.parent.iterdir()):
        if (d == keep or not d.name.startswith(prefix) or not _SCRATCH_SUFFIX.fullmatch(d.name[len(prefix):])
                or d.is_symlink() or not d.is_dir()):
            continue
        try:
            lock = _lock(d)
        except OSError:  # in use by a run still going (or gone meanwhile)
            continue
        try:
            shutil.rmtree(d)
        except OSError as err:
            print(f"warning: cannot remove leftover scratch dir {d}: {err}", file=sys.stderr, flush=True)
            continue
        finally:
            if lock is not None:
                os.close(lock)
        print(f"removed leftover scratch dir {d} (from an interrupted run of {path})", file=sys.stderr, flush=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: Path | str, text: str) -> None:
    """Write via a scratch file and a rename: a reader (or a run killed mid-write) never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def save_tensors(tensors: dict, path: Path | str, metadata: dict | None = None) -> None:
    """safetensors' save_file with the usual file mode: it writes 0600 whatever the umask, so other users and
    the workers of a shared file system could not read the models."""
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata=metadata)
    os.chmod(path, 0o666 & ~_umask())


def write_json(path: Path | str, data, sort_keys: bool = False) -> None:
    """Indented JSON, written atomically (write_text_atomic)."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=sort_keys) + "\n")


def read_json(path: Path | str):
    return json.loads(Path(path).read_text())


def relative_path(path: Path | str) -> str:
    """A path inside the working directory relative to it (as DVC writes paths), others absolute."""
    path = Path(path)
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def file_md5(path: Path | str) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def dir_md5(path: Path | str) -> str:
    """A folder's hash as DVC 3 writes it in dvc.lock and .dvc files ("<md5>.dir": the md5 of the JSON list of its
    files' relative paths and md5s), so a card's parent, the registry and `lineage` name a folder by one value."""
    path = Path(path)
    entries = [{"md5": file_md5(f), "relpath": f.relative_to(path).as_posix()}
               for f in (p for p in path.rglob("*") if p.is_file())]
    # Sorted by relative path and dumped as dvc_data's Tree.as_bytes does (ASCII JSON: a file name that is not UTF-8,
    # from another system's encoding, is written as escapes).
    listing = json.dumps(sorted(entries, key=lambda e: e["relpath"]), sort_keys=True)
    return hashlib.md5(listing.encode()).hexdigest() + ".dir"


def content_hash(array_bytes: bytes) -> str:
    return hashlib.sha1(array_bytes).hexdigest()[:20]
