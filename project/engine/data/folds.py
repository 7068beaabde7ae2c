"""K-fold cross-validation: which of `num_folds` folds each sample of a pool is in.

Stratified (for class data): each class is dealt over the folds in a seeded order, continuing where the one
before stopped, so folds hold each class's share to within one sample. Other targets (values, several labels a
sample, sequences) are dealt in one seeded order. Grouped (e.g. by speaker): groups go whole, largest first, to
the fold with fewest samples. The assignment depends only on the samples' names,
labels, groups and the seed, never on listing order, so every fold of a study sees the same partition.
"""

from collections import Counter

import torch
from torch import Tensor

from project.engine.data.targets import Targets, is_sequences
from project.engine.errors import DataError


def assign_folds(
    keys: list[str],
    labels: Targets,
    num_folds: int,
    seed: int,
    groups: list[str] | None = None,
    classes: tuple[str, ...] = (),
) -> Tensor:
    """The fold (0 to num_folds - 1) of every sample, int64 (N,). `keys`: a unique name per sample that does not
    depend on its place in the pool; `groups`: a group per sample to keep whole, or None to stratify by class
    (class indices (N,) with `classes` named) or else to deal the samples in a seeded order."""
    generator = torch.Generator().manual_seed(seed)
    if groups is not None:
        return _grouped(groups, num_folds, generator)
    order = sorted(range(len(keys)), key=keys.__getitem__)  # the pool's order, whatever the source's
    if classes and not is_sequences(labels) and labels.ndim == 1 and not labels.is_floating_point():
        return _stratified(order, labels, num_folds, generator, classes)
    if len(order) < num_folds:
        raise DataError(f"data.num_folds={num_folds} is more than the {len(order)} samples; lower data.num_folds.")
    folds = torch.empty(len(order), dtype=torch.int64)
    for position, j in enumerate(torch.randperm(len(order), generator=generator).tolist()):
        folds[order[j]] = position % num_folds
    return folds


def _stratified(
    order: list[int], labels: Tensor, num_folds: int, generator: torch.Generator, classes: tuple[str, ...]
) -> Tensor:
    folds = torch.empty(len(order), dtype=torch.int64)
    by_class: dict[int, list[int]] = {}
    label_of = labels.tolist()
    for i in order:
        by_class.setdefault(label_of[i], []).append(i)
    dealt = 0
    for label in sorted(by_class):
        members = by_class[label]
        if len(members) < num_folds:
            name = classes[label] if 0 <= label < len(classes) else str(label)
            raise DataError(
                f"data.num_folds={num_folds} is more than the {len(members)} sample(s) of class {name!r}, so some "
                "test folds would lack that class; lower data.num_folds or add samples of it."
            )
        shuffled = torch.randperm(len(members), generator=generator).tolist()
        for position, j in enumerate(shuffled):
            folds[members[j]] = (dealt + position) % num_folds
        dealt += len(members)
    return folds


def _grouped(groups: list[str], num_folds: int, generator: torch.Generator) -> Tensor:
    sizes = Counter(groups)
    if len(sizes) < num_folds:
        raise DataError(
            f"data.num_folds={num_folds} is more than the {len(sizes)} groups of the data "
            f"({', '.join(sorted(sizes)[:10])}{', ...' if len(sizes) > 10 else ''}), and each group stays whole in "
            f"one fold; lower data.num_folds to {len(sizes)} or fewer."
        )
    names = sorted(sizes)  # the groups' order, whatever the source's
    rank = dict(zip(names, torch.randperm(len(names), generator=generator).tolist(), strict=True))
    filled = [0] * num_folds
    fold_of = {}
    for name in sorted(names, key=lambda n: (-sizes[n], rank[n])):
        fold = min(range(num_folds), key=lambda f: (filled[f], f))
        fold_of[name] = fold
        filled[fold] += sizes[name]
    return torch.tensor([fold_of[group] for group in groups], dtype=torch.int64)
