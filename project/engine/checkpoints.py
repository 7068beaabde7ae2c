"""Checkpoint files that never break and never run code: atomic writes, and refusing checkpoints that
carry pickled Python objects. The CLI (project/engine/cli.py) wires both in; they work with a bare Trainer too.
"""

import errno
import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from project.engine.errors import CheckpointError, DiskFullError


class UnsafeCheckpointError(CheckpointError, RuntimeError):
    """A checkpoint that could run code, or is not a checkpoint at all."""


def check_state_fits(model: torch.nn.Module, checkpoint: dict[str, Any]) -> None:
    """Refuse a checkpoint whose tensors do not fit the model the config built, in one line naming three of them
    (torch's own error lists every one, in a traceback)."""
    own, theirs = model.state_dict(), checkpoint.get("state_dict") or {}
    wrong = [f"{k}: checkpoint {tuple(v.shape)}, model {tuple(own[k].shape)}" for k, v in theirs.items()
             if k in own and hasattr(v, "shape") and v.shape != own[k].shape]  # fmt: skip
    missing = [k for k in own if k not in theirs]
    if wrong or missing:
        raise CheckpointError(
            "The checkpoint's network does not fit the model built from the config: "
            + "; ".join(wrong[:3] + [f"{k}: missing from the checkpoint" for k in missing[:3]])
            + ". Use the config of the run that wrote the checkpoint (without --config, the run folder's "
            "config.yaml is used), without overrides of the model's nets."
        )


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes a local checkpoint to a temporary file beside it, syncs it, then renames it over the target: a run
    killed mid-write leaves the previous `last.ckpt` intact (plus a `.last.ckpt.tmp-PID` to delete).

    Lightning's default writes through an fsspec transaction whose temporary file lies in the system temp
    folder: moving it to another file system (node-local /tmp, NFS checkpoints) is a copy, which a kill can cut
    short, and a small /tmp can fill up. URLs (s3://, gs://, ...) keep Lightning's behaviour.

    `model`: checked against each checkpoint loaded (`check_state_fits`), before torch's strict load fails on it.
    """

    def __init__(self, model: torch.nn.Module | None = None):
        super().__init__()
        self.model = model

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):  # s3://, gs://, file://, ...
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_path(path)
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException as err:
            tmp.unlink(missing_ok=True)
            if isinstance(err, OSError) and err.errno == errno.ENOSPC:
                raise DiskFullError(path) from err  # the OS's error names no file
            raise
        _fsync_dir(path.parent)  # make the rename itself survive a power loss

    def load_checkpoint(
        self, path: str | Path, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        """Every checkpoint Lightning loads is scanned first: torch's `weights_only` guard is off under
        TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1. Only an explicit `weights_only=False` (a trusted file) skips the scan."""
        if weights_only is not False:
            check_checkpoint_is_safe(path)
        kwargs = {} if map_location is None else {"map_location": map_location}
        checkpoint = super().load_checkpoint(path, weights_only=weights_only, **kwargs)
        if self.model is not None and "state_dict" in checkpoint:
            check_state_fits(self.model, checkpoint)
        return checkpoint


def local_path(path: str | Path) -> Path | None:
    """The local file behind a path or file:// URL, or None for another URL (s3://, https://, ...)."""
    text = str(path)
    if text.startswith("file://"):
        return Path(text[len("file://") :])
    return None if "://" in text else Path(text)


def temporary_path(path: Path, pid: int | None = None) -> Path:
    """Where `AtomicCheckpointIO` writes `path` before renaming it: `.NAME.tmp-PID` beside it."""
    return path.with_name(f".{path.name}.tmp-{os.getpid() if pid is None else pid}")


def remove_leftover_temporary_files(folder: str | Path, only_dead_writers: bool = True) -> list[Path]:
    """Delete the temporary files of checkpoint writes that a kill cut short; returns those deleted. With
    `only_dead_writers`, only those whose PID runs no process here; without, all but this process's own (for
    the folder a fit is about to write into, where no other writer belongs)."""
    deleted = []
    for tmp in Path(folder).glob(".*.tmp-*"):
        pid = tmp.name.rsplit(".tmp-", 1)[1]
        if not pid.isdigit() or int(pid) == os.getpid() or (only_dead_writers and is_running(int(pid))):
            continue
        try:
            tmp.unlink()
        except FileNotFoundError:  # its writer finished, or another process tidied up first
            continue
        deleted.append(tmp)
    return deleted


def is_running(pid: int) -> bool:
    """Whether process `pid` is alive on this host."""
    if os.name == "nt":  # os.kill(pid, 0) would terminate it there: assume it is running
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open folders; the rename is still atomic there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


LIGHTNING_CKPT_NAMES = ("last", "best", "hpc", "registry")  # --ckpt_path values Lightning resolves itself


def check_checkpoint_path(path: str | Path, trusted: bool = False, resume: bool = False) -> None:
    """Raise `CheckpointError` unless `path` (a `--ckpt_path`) names a safe Lightning checkpoint file. URLs and
    Lightning's own names ("last", "best", ...) are left to Lightning; a `trusted` file need only be a file."""
    text = str(path)
    if "://" in text or text in LIGHTNING_CKPT_NAMES or text.startswith("registry:"):
        return
    path = Path(path)
    if path.is_dir():
        found = sorted(p.name for p in path.glob("*.ckpt")) or sorted(str(p) for p in path.glob("*/*.ckpt"))
        hint = f"; it holds {', '.join(found[:5])}" if found else ", and it holds no .ckpt file"
        raise CheckpointError(f"--ckpt_path {path} is a folder: name a checkpoint file{hint}")
    if not path.is_file():
        raise CheckpointError(f"--ckpt_path {path}: no such file. Each run keeps its checkpoints in <run>/checkpoints/")
    if trusted:
        return
    check_checkpoint_is_safe(path)
    # mmap: reads the keys, not the tensors
    checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    missing = [k for k in ("state_dict", "pytorch-lightning_version") if k not in checkpoint]
    if missing:
        raise CheckpointError(
            f"{path} is not a Lightning checkpoint: it lacks {' and '.join(map(repr, missing))} (it holds "
            f"{', '.join(map(repr, list(checkpoint)[:6])) or 'nothing'}). Pass a .ckpt written by a fit; a "
            "bare state_dict can be loaded with Classifier(...).load_state_dict(torch.load(path))."
        )
    if resume and "optimizer_states" not in checkpoint:
        raise CheckpointError(
            f"{path} holds the weights only, no optimizer state (ModelCheckpoint(save_weights_only=true) writes "
            "such files): `fit` cannot resume from it. Use it with validate, test or predict, or resume from the "
            "run's last.ckpt."
        )


# What torch.save(..., _use_new_zipfile_serialization=False) writes first: a pickled magic number
LEGACY_MAGIC = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19"


def check_checkpoint_is_safe(path: str | Path) -> None:
    """Raise `UnsafeCheckpointError` if loading the checkpoint at `path` could run code: a .ckpt is a pickle, and
    one that names any Python callable beyond tensors and plain values is refused before anything is unpickled."""
    local = local_path(path)
    if local is not None and local.is_dir():
        raise UnsafeCheckpointError(f"{path} is a folder, not a checkpoint file; name a .ckpt file inside it.")
    if local is not None:
        with open(local, "rb") as f:
            head = f.read(len(LEGACY_MAGIC))
        if head == LEGACY_MAGIC:
            raise UnsafeCheckpointError(
                f"{path} is a checkpoint in torch's legacy (pre-1.6, non-zip) format, which cannot be scanned for "
                f'code without loading it. Convert it once: python -c "import torch; torch.save(torch.load('
                f"'{path}', weights_only=True), '{local.with_suffix('.zip.ckpt')}')\" and pass the new file."
            )
    else:  # a remote file is read once into memory to be scanned
        import io

        import fsspec

        try:
            with fsspec.open(str(path), "rb") as f:
                local = io.BytesIO(f.read())
        except Exception as err:
            raise CheckpointError(
                f"Could not download --ckpt_path {path} ({type(err).__name__}: {err}): check the URL and the "
                "network, or download the file yourself and pass its local path."
            ) from err
    try:
        unsafe = _unsafe_globals(local)
    except Exception as err:  # not a torch zip file at all: truncated, or an old pickle format
        raise UnsafeCheckpointError(
            f"{path} is not a readable PyTorch checkpoint ({err}). It may be truncated or corrupt; use "
            "another checkpoint (each run folder keeps last.ckpt and the best epoch's)."
        ) from err
    if unsafe:
        raise UnsafeCheckpointError(
            f"Refusing to load {path}: besides tensors it holds pickled Python objects "
            f"({', '.join(sorted(unsafe))}) that run code when loaded. Checkpoints written by this project "
            "never do. Use a checkpoint from a source you trust; if you do trust this one, load it "
            "yourself with torch.load(path, weights_only=False) and save just its 'state_dict'."
        )


def _unsafe_globals(path: Path | Any) -> list[str]:
    if hasattr(torch.serialization, "get_unsafe_globals_in_checkpoint"):  # torch >= 2.5: a scan, no loading
        return torch.serialization.get_unsafe_globals_in_checkpoint(str(path) if isinstance(path, Path) else path)
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        return re.findall(r"GLOBAL (\S+)", str(err)) or ["objects torch refuses to load as data"]
    return []
