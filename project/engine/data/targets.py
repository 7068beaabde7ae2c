"""A sample's target, whatever its shape: one tensor (N, ...) for the whole set (class indices (N,), values,
multi-hot rows), or a list of N tensors of different lengths (a transcript's tokens, a tag per frame).

A batch carries fixed-shape targets gathered as they are, and sequences padded to the batch's longest with
their true lengths: `(padded (B, L), lengths (B,))`, padded with `PAD`. Everything that fetches, selects,
joins or moves targets goes through here, so the loaders, folds and streaming serve both kinds alike.
"""

import torch
from torch import Tensor

# What a sequence batch holds past each sequence's length; models read only the first lengths[b] entries
PAD = 0

Targets = Tensor | list[Tensor]
BatchTargets = Tensor | tuple[Tensor, Tensor]


def is_sequences(targets: Targets) -> bool:
    """Whether `targets` are per-sample sequences (a list), not one tensor for the set."""
    return isinstance(targets, list)


def take(targets: Targets, indices: list[int] | Tensor) -> BatchTargets:
    """The targets of a batch: gathered, or the sequences padded with their lengths."""
    if is_sequences(targets):
        index = indices.tolist() if isinstance(indices, Tensor) else indices
        return pad_sequences([targets[i] for i in index])
    return targets[torch.as_tensor(indices)]


def pad_sequences(sequences: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Sequences (L_i, ...) of one dtype -> (padded (B, max L_i, ...), lengths (B,) int64)."""
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.int64)
    if not sequences:
        return torch.zeros(0, 0, dtype=torch.int64), lengths
    longest = int(lengths.max())
    padded = sequences[0].new_full((len(sequences), longest, *sequences[0].shape[1:]), PAD)
    for row, sequence in enumerate(sequences):
        padded[row, : len(sequence)] = sequence
    return padded, lengths


def select(targets: Targets, index: Tensor) -> Targets:
    """The targets at `index` (N',) int64, in that order, of the same kind."""
    if is_sequences(targets):
        return [targets[i] for i in index.tolist()]
    return targets[index]


def concat(parts: list[Targets]) -> Targets:
    """The targets of every part, in order; all parts of one kind."""
    if any(is_sequences(p) for p in parts):
        return [t for p in parts for t in p]
    return torch.cat(parts)


def on_device(targets: Targets, device: torch.device) -> BatchTargets:
    """The whole set's targets on `device` as one batch: the tensor, or the sequences padded with lengths."""
    if is_sequences(targets):
        padded, lengths = pad_sequences(targets)
        return padded.to(device), lengths.to(device)
    return targets.to(device)


def gather(targets: BatchTargets, index: Tensor) -> BatchTargets:
    """Rows `index` of a batch's targets (a tensor, or padded sequences with their lengths)."""
    if isinstance(targets, tuple):
        return tuple(part[index] for part in targets)
    return targets[index]


def count(targets: BatchTargets) -> int:
    """How many samples a batch's targets hold."""
    return len(targets[0] if isinstance(targets, tuple) else targets)


def device_of(targets: BatchTargets) -> torch.device:
    return (targets[0] if isinstance(targets, tuple) else targets).device
