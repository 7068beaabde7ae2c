"""From per-frame scores to text, and how far text is from its reference."""

from collections.abc import Sequence

import torch
from torch import Tensor


def greedy_decode(logits: Tensor, frames: Tensor, blank: int = 0) -> list[list[int]]:
    """Best path decoding: the likeliest token of every frame (B, T, C) within each row's `frames` (B,), repeats
    collapsed, then blanks removed ("tt-oo-o" -> "too"). Picked on the device, read back once."""
    best = logits.argmax(dim=-1)  # (B, T)
    t = torch.arange(best.shape[1], device=best.device)
    new = torch.ones_like(best, dtype=torch.bool)
    new[:, 1:] = best[:, 1:] != best[:, :-1]  # the first frame of each run
    keep = new & (best != blank) & (t < frames[:, None])
    rows, ids = best.cpu().tolist(), keep.cpu().tolist()
    return [[token for token, k in zip(row, kept, strict=True) if k] for row, kept in zip(rows, ids, strict=True)]


def edit_distance(hypothesis: Sequence, reference: Sequence) -> int:
    """Levenshtein distance: the fewest substitutions, deletions and insertions that turn one into the other."""
    previous = list(range(len(reference) + 1))
    for i, h in enumerate(hypothesis, 1):
        current = [i]
        for j, r in enumerate(reference, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (h != r)))
        previous = current
    return previous[-1]
