"""A table of feature vectors, one file per split, saved with
`torch.save({"features": (N, F) float tensor, "labels": targets, path)`: class indices (N,), values (N,) or (N, K)
(`target: value`), or several labels a sample as 0/1 (N, K) (`target: labels`)."""

import pickle
import zipfile
from pathlib import Path
from typing import Literal

import torch

from project.engine.data.source import Samples, Source, Split
from project.engine.errors import DataError


class FeatureFiles(Source):
    """Args:
    train: the training file.
    test: the test file, for `test` and `predict`.
    val: the validation file; without one, the DataModule holds out `data.val_size` of train.
    classes: a name per class (or per label); by default "0", "1", ... up to the largest training label (or the
        labels' count).
    target: what the labels are: `class` indices (N,), `value`s to regress (N,) or (N, K), or several `labels` a
        sample, 0 or 1 each (N, K).
    """

    def __init__(
        self,
        train: str | Path,
        test: str | Path | None = None,
        val: str | Path | None = None,
        classes: list[str] | None = None,
        target: Literal["class", "value", "labels"] = "class",
    ):
        self.files = {"train": train, "val": val, "test": test}
        self.target = target
        # Read now: the CLI sizes the model from the classes before any split is loaded
        samples = read_features(Path(train), target)
        if target == "value":
            if classes:
                raise DataError("data.source.init_args.classes names classes, but target is value: values have none")
            self.classes = ()
            self.outputs = 1 if samples.labels.ndim == 1 else samples.labels.shape[1]
        else:
            count = int(samples.labels.max()) + 1 if target == "class" else samples.labels.shape[1]
            self.classes = tuple(classes or (str(i) for i in range(count)))
            self.outputs = len(self.classes)
            if target == "labels" and len(self.classes) != samples.labels.shape[1]:
                raise DataError(
                    f"data.source.init_args.classes names {len(self.classes)} labels, but {train} has "
                    f"{samples.labels.shape[1]} label columns: name each column once"
                )
        self.in_features = samples.inputs.shape[1]

    @property
    def input_sizes(self) -> dict[str, int]:
        return {"in_features": self.in_features}

    @property
    def num_outputs(self) -> int:
        return self.outputs

    def load(self, split: Split) -> Samples | None:
        if self.files[split] is None:
            return None
        samples = read_features(Path(self.files[split]), self.target)
        if samples.inputs.shape[1] != self.in_features:
            raise DataError(
                f"{self.files[split]} has {samples.inputs.shape[1]} feature columns but the training file "
                f"{self.files['train']} has {self.in_features}: every split needs the same columns."
            )
        if self.target != "class":
            if samples.labels.shape[1:] != ((self.outputs,) if self.target == "labels" or self.outputs > 1 else ()):
                raise DataError(
                    f"{self.files[split]} has labels of shape {tuple(samples.labels.shape)}, unlike the training "
                    f"file {self.files['train']}: every split needs the same target columns."
                )
            return samples
        if samples.labels.max() >= len(self.classes):
            raise DataError(
                f"{self.files[split]} has labels up to {int(samples.labels.max())}, beyond the {len(self.classes)} "
                f"classes ({', '.join(self.classes)}): fix those labels, or name every class in "
                "data.source.init_args.classes"
            )
        return samples


FORMAT = "torch.save({'features': (N, F) float tensor, 'labels': (N,) integer tensor}, path)"
TARGETS = {
    "class": "class indices 0, 1, ...: an integer tensor (N,)",
    "value": "values: a float tensor (N,) or (N, K)",
    "labels": "several labels a sample: a tensor (N, K) of 0 and 1",
}


def read_features(path: Path, target: str = "class") -> Samples:
    """The samples of a feature file, refusing anything a cast would change silently: non-finite features,
    targets that are not what `target` says (fractional or negative class indices, non-finite values, labels
    other than 0 and 1)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; point data.source.init_args at your feature files.")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if not zipfile.is_zipfile(path):  # text or garbage, which torch's unpickler reads as opcodes
            raise DataError(
                f"{path} is not a feature file: torch.load cannot read it (another format, such as CSV, or a "
                f"truncated file); write it with {FORMAT}"
            ) from err
        # weights_only refused an object, which was never unpickled
        raise DataError(
            f"{path} holds Python objects besides tensors (numpy arrays, say), which are not loaded: write it "
            f"with {FORMAT}"
        ) from err
    except Exception as err:  # a CSV, a truncated file
        raise DataError(
            f"{path} is not a feature file: torch.load cannot read it (another format, such as CSV, or a "
            f"truncated file); write it with {FORMAT}"
        ) from err
    missing = [k for k in ("features", "labels") if not isinstance(saved, dict) or k not in saved]
    if missing:
        held = f"a dict of {', '.join(map(repr, saved))}" if isinstance(saved, dict) else f"a {type(saved).__name__}"
        raise DataError(f"{path} lacks {' and '.join(map(repr, missing))} (it holds {held}): write it with {FORMAT}")
    features, labels = saved["features"], saved["labels"]
    if not isinstance(features, torch.Tensor) or not isinstance(labels, torch.Tensor):
        kinds = f"{type(features).__name__} and {type(labels).__name__}"
        raise DataError(f"{path}: 'features' and 'labels' must be tensors, got {kinds}: write it with {FORMAT}")
    dims = {"class": (1,), "value": (1, 2), "labels": (2,)}[target]
    fits = labels.ndim in dims and len(labels) == len(features)
    if features.ndim != 2 or not fits or not len(features):
        shape = {"class": "(N,)", "value": "(N,) or (N, K)", "labels": "(N, K)"}[target]
        raise DataError(
            f"{path} must hold features (N, F) and labels {shape} with N >= 1; got features "
            f"{tuple(features.shape)} and labels {tuple(labels.shape)}"
        )
    if features.is_complex() or features.dtype == torch.bool:
        raise DataError(f"{path}: 'features' must be real numbers, got {features.dtype}")
    features = features.float()
    bad = ~torch.isfinite(features)
    if bad.any():
        row = int(bad.any(dim=1).nonzero()[0])
        raise DataError(
            f"{path} holds {int(bad.sum())} NaN or infinite feature values (first in row {row}): fill or drop those "
            "rows before training"
        )
    if target != "class":
        return Samples(features, _float_targets(path, labels, target))
    if labels.is_floating_point():
        fractional = labels != labels.round()
        if fractional.any() or not torch.isfinite(labels).all():
            row = int((fractional | ~torch.isfinite(labels)).nonzero()[0])
            raise DataError(
                f"{path} holds labels that are not whole numbers (row {row}: {labels[row].item():g}): labels are class "
                "indices 0, 1, ...; save them as an integer tensor"
            )
    elif labels.dtype == torch.bool or labels.is_complex():
        raise DataError(f"{path}: 'labels' must be class indices 0, 1, ..., got {labels.dtype}")
    labels = labels.long()
    if labels.min() < 0:
        raise DataError(f"{path} holds negative labels ({int(labels.min())}): labels are class indices 0, 1, ...")
    return Samples(features, labels)


def _float_targets(path: Path, labels: torch.Tensor, target: str) -> torch.Tensor:
    if labels.dtype == torch.bool:
        labels = labels.float()
    if labels.is_complex() or not (labels.is_floating_point() or labels.dtype in (torch.int64, torch.int32)):
        raise DataError(f"{path}: 'labels' must be {TARGETS[target]}, got {labels.dtype}")
    labels = labels.float()
    if not torch.isfinite(labels).all():
        row = int((~torch.isfinite(labels)).reshape(len(labels), -1).any(1).nonzero()[0])
        raise DataError(f"{path} holds NaN or infinite targets (first in row {row}): fill or drop those rows")
    if target == "labels" and not ((labels == 0) | (labels == 1)).all():
        row = int(((labels != 0) & (labels != 1)).any(1).nonzero()[0])
        raise DataError(f"{path} holds labels other than 0 and 1 (row {row}): each column is one label, on or off")
    return labels
