"""Checkpoint files that never break and never run code: atomic writes, and refusing checkpoints that
carry pickled Python objects. The CLI (project/cli.py) wires both in; they work with a bare Trainer too.
"""

import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO


class UnsafeCheckpointError(RuntimeError):
    pass


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes a local checkpoint to a temporary file beside it, syncs it, then renames it over the target.

    A rename within one folder is atomic, so a run killed mid-write leaves the previous `last.ckpt`
    intact (plus a `.last.ckpt.tmp-PID` to delete). Lightning's default writes through an fsspec
    transaction whose temporary file lies in the system temp folder: moving it onto a different
    file system (node-local /tmp, checkpoints on NFS/Lustre) is a copy, which a kill can cut short,
    and a small /tmp can fill up. URLs (s3://, gs://, ...) keep Lightning's behaviour.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):  # s3://, gs://, file://, ...
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)  # make the rename itself survive a power loss


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


def check_checkpoint_is_safe(path: str | Path) -> None:
    """Raise `UnsafeCheckpointError` if loading the checkpoint at `path` could run code.

    A .ckpt is a pickle. Project checkpoints hold only tensors and plain values, which
    `torch.load(weights_only=True)` reads without executing anything; a file that names any other
    Python callable is refused here, before anything in it is unpickled.
    """
    try:
        unsafe = _unsafe_globals(path)
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


def _unsafe_globals(path: str | Path) -> list[str]:
    if hasattr(torch.serialization, "get_unsafe_globals_in_checkpoint"):  # torch >= 2.5: a scan, no loading
        return torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        return re.findall(r"GLOBAL (\S+)", str(err)) or ["objects torch refuses to load as data"]
    return []
