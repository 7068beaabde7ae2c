"""How a DataModule cuts a source's samples into splits: a seeded validation hold-out, and the test fold
of cross-validation (dealt by project/engine/data/folds.py), with the checks that name the setting to fix."""

import torch

from project.engine.data.folds import assign_folds
from project.engine.data.source import Samples, Source, Split
from project.engine.errors import DataError


def check_split_settings(
    val_size: int | float, fold: int | None, num_folds: int | None, fold_groups: str | None, source: Source
) -> None:
    """Refuse split settings that cannot work, naming the key, before any data is read."""
    if not (val_size >= 1 if isinstance(val_size, int) else 0 < val_size < 1):
        raise DataError(
            f"data.val_size must be at least 1 (a count) or between 0 and 1 (a share), got {val_size}: "
            "checkpoints pick the best epoch by validation accuracy, which needs a validation split."
        )
    if num_folds is None:
        if fold is not None:
            raise DataError(f"data.fold={fold} needs data.num_folds, the number of folds the data is dealt into.")
        if fold_groups is not None:
            raise DataError(f"data.fold_groups={fold_groups!r} needs data.num_folds and data.fold (cross-validation).")
        return
    if num_folds < 2:
        raise DataError(f"data.num_folds must be at least 2, got {num_folds}: one fold leaves nothing to train on.")
    if fold is None:
        raise DataError(
            f"data.num_folds={num_folds} needs data.fold, the fold to test on (0 to {num_folds - 1}); "
            "`python -m project.crossval` runs them all."
        )
    if not 0 <= fold < num_folds:
        raise DataError(f"data.fold must be between 0 and {num_folds - 1} (data.num_folds={num_folds}), got {fold}.")
    if fold_groups is not None and fold_groups not in source.group_keys:
        known = f"it tells {', '.join(source.group_keys)}" if source.group_keys else "it tells none"
        name = type(source).__name__
        raise DataError(
            f"data.fold_groups={fold_groups!r}: {name} cannot tell a sample's {fold_groups} ({known}). "
            "Leave data.fold_groups unset to stratify the folds by class."
        )


def named(samples: Samples, split: str) -> Samples:
    """`samples`, each named `<split>/<index>` unless the source named them."""
    if samples.names is not None:
        return samples
    return samples._replace(names=[f"{split}/{i}" for i in range(len(samples.labels))])


def present(samples: Samples | None, split: Split, source: Source) -> Samples:
    """`samples`, refusing a split the source does not have."""
    if samples is not None:
        return samples
    name = type(source).__name__
    hint = (
        f" Give it one ({name}'s documentation says how; an image folder's is root/test/<class>/), score "
        "the validation split with `validate`, or test on folds of the data it has: `python -m "
        "project.crossval` (docs/crossval.md)."
    )
    raise FileNotFoundError(
        f"{name} has no {split} split, so there is nothing to {split} on.{hint if split == 'test' else ''}"
    )


def nonempty(samples: Samples, split: Split, source: Source) -> Samples:
    if len(samples.labels) == 0:
        raise DataError(f"the {split} split of {type(source).__name__} is empty; check the data set's split settings.")
    return samples


def hold_out(train: Samples, val_size: int | float, seed: int, source: Source) -> tuple[Samples, Samples]:
    """(train, val): a seeded `val_size` of the training samples held out for validation."""
    n = len(train.labels)
    n_val = val_size if isinstance(val_size, int) else round(n * val_size)
    if not 0 < n_val < n:
        if isinstance(val_size, int):
            raise DataError(
                f"data.val_size={val_size} must be between 1 and {n - 1}, the number of training "
                f"samples of {type(source).__name__} less one."
            )
        raise DataError(
            f"data.val_size={val_size} of {n} training samples leaves {n_val} for validation and "
            f"{n - n_val} for training; both need at least one. Add data or change data.val_size."
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return train.select(order[n_val:]), train.select(order[:n_val])


def split_folds(
    parts: dict[Split, Samples | None], num_folds: int, fold: int, seed: int, source: Source, groups_key: str | None
) -> tuple[Samples, Samples, list[str] | None]:
    """(the other folds, fold `fold`, the groups in fold `fold` or None) of the pool: every split the
    source has, each sample named."""
    pool = [named(s, split) for split, s in parts.items() if s is not None and len(s.labels)]
    if not pool:
        raise DataError(f"{type(source).__name__} holds no samples to deal into folds.")
    samples = Samples.concat(pool)
    groups = None if groups_key is None else [source.group(groups_key, name) for name in samples.names]
    folds = assign_folds(samples.names, samples.labels, num_folds, seed, groups, tuple(source.classes))
    held_out = folds == fold
    held_out_groups = None
    if groups is not None:
        held_out_groups = sorted({g for g, out in zip(groups, held_out.tolist(), strict=True) if out})
    rest, test = held_out.logical_not().nonzero().squeeze(1), held_out.nonzero().squeeze(1)
    return samples.select(rest), samples.select(test), held_out_groups
