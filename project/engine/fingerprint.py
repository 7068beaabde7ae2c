"""A cheap fingerprint of the files a run's data is read from, kept in its checkpoints, so that a resume on other
data (another file at the same path, a file replaced in place, files added or removed) is refused (resume.py).

Each data argument that names a local file or folder (runs.PATH_ARGUMENTS: `root`, `train`, ...; a source may
name its own part of a shared download folder as its `location`) gives: the number of files, their bytes, a
digest of their names and sizes, one of their modification times, and, for data of at most CONTENT_LIMIT bytes
in CONTENT_FILES files, one of their contents (so a copy with new times still matches). A fit computes it in a
thread beside its first steps (60,000 files: about a second on an idle 2-core machine), so only a checkpoint
written before it is done waits for it. A data module that names no files gives none, and is not checked.
"""

import hashlib
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import lightning as L

from project.engine.runs import PATH_ARGUMENTS

FINGERPRINT_KEY = "data_fingerprint"  # in a checkpoint: {argument: fingerprint}
# Data of at most this many bytes in at most this many files is also hashed whole (about 0.1 s on one core);
# opening many small files costs more than reading them (60,000 JPEGs: 15 s on a busy 2-core machine)
CONTENT_LIMIT = 64 << 20
CONTENT_FILES = 256
NOT_DATA = ("predict_dir",)  # files a run predicts on, not what it trains on


def data_arguments(init_args: Any, prefix: str = "") -> dict[str, Path]:
    """The data config's arguments that name local files or folders, by their key (`source.init_args.root`)."""
    found: dict[str, Path] = {}
    items = init_args.items() if isinstance(init_args, Mapping) else []
    for key, value in items:
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            found.update(data_arguments(value, f"{name}."))
        elif str(key) in PATH_ARGUMENTS and str(key) not in NOT_DATA and _local(value):
            found[name] = Path(os.path.abspath(value))
    return found


def _local(value: Any) -> bool:
    return isinstance(value, str | Path) and bool(str(value)) and "://" not in str(value)


def fingerprint(arguments: Mapping[str, Path], parts: Mapping[str, list[str] | None] | None = None) -> dict:
    """{key: fingerprint} of the files under each path (a file, or every file below a folder; only `parts`, paths
    relative to it, when given), for those that exist."""
    prints = {}
    for key, path in arguments.items():
        chosen = (parts or {}).get(key)
        if path.exists():
            prints[key] = {"path": str(path), "parts": chosen, **_files_fingerprint(path, chosen)}
    return prints


def difference(stored: Mapping[str, Any], arguments: Mapping[str, Path]) -> str | None:
    """How the data under `arguments` differs from the `stored` fingerprint, in words, or None when it is the same
    data. An argument whose path moved is followed: its files are compared, not its path."""
    for key, was in stored.items():
        path = arguments.get(key)
        if not isinstance(was, Mapping) or path is None:
            continue
        if not path.exists():  # to be downloaded again, or missing: the fit says which
            continue
        now = _files_fingerprint(path, was.get("parts"))
        where = f"the data at {path} (data.init_args.{key})"
        if (now["files"], now["bytes"]) != (was["files"], was["bytes"]):
            return (
                f"{where} is {_size(now)} now, but the run was made with {_size(was)} there: other data, or files "
                "added or removed"
            )
        if now["listing"] != was["listing"]:
            return f"{where} holds other files, or files of other sizes, than the run was made with"
        if now["times"] == was["times"]:
            continue
        if was.get("content") is None:
            return (
                f"the files of {where} were modified since the run was made (same names and sizes, other times), "
                "and the data is too large to compare byte for byte"
            )
        if _content(path, was.get("parts")) != was["content"]:
            return f"the files of {where} were replaced since the run was made (same names and sizes, other bytes)"
    return None


def _size(print_: Mapping[str, Any]) -> str:
    files = print_["files"]
    return f"{files:,} file{'s' if files != 1 else ''} of {print_['bytes']:,} bytes"


def _files(path: Path, parts: list[str] | None) -> list[tuple[str, int, int, Path]]:
    """(name relative to `path`, size, modification time in ns, path) of every file, sorted by name."""
    roots = [path / p for p in parts] if parts else [path]
    found = []
    for root in roots:
        for file in _walk(root):
            stat = file.stat()
            name = str(file.relative_to(path)) if file != path else ""  # a file moved or renamed: its bytes count
            found.append((name, stat.st_size, stat.st_mtime_ns, file))
    return sorted(found)


def _walk(root: Path) -> Iterator[Path]:
    if root.is_file():
        yield root
        return
    stack = [root]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir():
                    stack.append(Path(entry.path))
                elif entry.is_file():
                    yield Path(entry.path)


def _files_fingerprint(path: Path, parts: list[str] | None) -> dict[str, Any]:
    files = _files(path, parts)
    listing, times = hashlib.sha256(), hashlib.sha256()
    for name, size, mtime, _ in files:
        listing.update(f"{name}\0{size}\n".encode())
        times.update(f"{name}\0{mtime}\n".encode())
    total = sum(size for _, size, _, _ in files)
    content = _content_of(files) if total <= CONTENT_LIMIT and len(files) <= CONTENT_FILES else None
    return {
        "files": len(files),
        "bytes": total,
        "listing": listing.hexdigest(),
        "times": times.hexdigest(),
        "content": content,
    }


def _content(path: Path, parts: list[str] | None) -> str:
    return _content_of(_files(path, parts))


def _content_of(files: list[tuple[str, int, int, Path]]) -> str:
    digest = hashlib.sha256()
    for name, _, _, file in files:
        digest.update(f"{name}\n".encode())
        with open(file, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


class DataFingerprint(L.Callback):
    """Keeps the fingerprint of the data a fit trains on in its checkpoints (FINGERPRINT_KEY), computed in a
    thread from the fit's start. Reads the data module's hyperparameters (its config, source included) and the
    source's `location`, when it names a part of such a folder."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._print: dict | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit" or not trainer.is_global_zero or trainer.datamodule is None:
            return
        arguments = data_arguments(getattr(trainer.datamodule, "hparams", {}) or {})
        parts = _declared_parts(trainer.datamodule, arguments)
        self._print = None
        self._thread = threading.Thread(target=self._compute, args=(arguments, parts), daemon=True)
        self._thread.start()  # after prepare_data: a download is complete

    def _compute(self, arguments: dict[str, Path], parts: dict[str, list[str] | None]) -> None:
        try:
            self._print = fingerprint(arguments, parts)
        except OSError:  # unreadable data fails the fit where it is read, with its own message
            self._print = {}

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        if self._thread is not None:
            self._thread.join()
        if self._print:
            checkpoint[FINGERPRINT_KEY] = self._print


def _declared_parts(datamodule: Any, arguments: Mapping[str, Path]) -> dict[str, list[str] | None]:
    """For each argument, the part of its folder the source says its data is read from (its `location`, e.g.
    `root/cifar-10-batches-py` of a download folder that may hold other data sets), if it says."""
    location = getattr(getattr(datamodule, "source", None), "location", None)
    if not isinstance(location, str | Path) or "://" in str(location):
        return {}
    files = [location]
    parts: dict[str, list[str] | None] = {}
    for key, path in arguments.items():
        inside = [Path(os.path.abspath(f)) for f in files]
        inside = [f for f in inside if f.is_relative_to(path) and f != path]
        if inside:
            parts[key] = sorted(str(f.relative_to(path)) for f in inside)
    return parts
