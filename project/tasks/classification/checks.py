"""What `Classifier` tells a user whose network does not fit the data: the first batch's failure deep in torch
turned into one line naming the setting to change."""

from typing import Any

import torch
from torch import Tensor, nn

from project.engine.errors import CheckpointError
from project.engine.sizes import SizeMismatchError

Inputs = Tensor | tuple[Tensor, ...]


def shapes(x: Inputs) -> str:
    """The inputs' shapes with the batch size left out, e.g. "(B, 3, 32, 32)" or "(B, T), (B,)"."""
    tensors = x if isinstance(x, tuple | list) else (x,)
    return ", ".join(
        "(" + ", ".join(["B", *map(str, t.shape[1:])]) + ("," if t.dim() == 1 else "") + ")"
        if isinstance(t, Tensor) and t.dim() > 0
        else type(t).__name__
        for t in tensors
    )


def misfit_error(
    err: Exception, net: nn.Module, built_with: dict | None, x: Inputs, ckpt_path: str | None, trained_on: str | None
) -> Exception | None:
    """The error for a net that failed on its first batch because it was made for other data, or None
    when the failure is a bug (to be raised as it is)."""
    if isinstance(err, torch.OutOfMemoryError):
        return None
    if ckpt_path is None:
        if not _is_shape_error(err):
            return None
        return SizeMismatchError(
            f"model.net ({type(net).__name__}"
            + (f", built with {_size_args(built_with)}" if built_with else "")
            + f") does not fit the data's inputs of shape {shapes(x)}: {err}. Give the net the data's sizes "
            "(name its constructor arguments like the data module's `sizes`, project/engine/sizes.py) or fix "
            "model.net.init_args."
        )
    trained = f" (it was trained on inputs of shape {trained_on})" if trained_on else ""
    return CheckpointError(
        f"The checkpoint's network does not fit this data: {ckpt_path} holds a "
        f"{type(net).__name__}{trained}, which fails on this data's inputs of shape "
        f"{shapes(x)}: {err}. Evaluate a checkpoint with the data it was trained on (without "
        "--config, the run's own config.yaml is used)."
    )


def _is_shape_error(err: Exception) -> bool:
    """An error torch raises for a tensor of the wrong shape (a net made for other inputs), not a bug."""
    text = str(err)
    return isinstance(err, RuntimeError) and any(
        s in text for s in ("shapes cannot be multiplied", "size mismatch", "Expected", "channels", "must match")
    )


def _size_args(init_args: dict[str, Any]) -> str:
    """The net's arguments that set a size, e.g. "in_features=16"."""
    shown = {k: v for k, v in init_args.items() if isinstance(v, int) and not isinstance(v, bool)}
    return ", ".join(f"{k}={v}" for k, v in shown.items()) or "its defaults"
