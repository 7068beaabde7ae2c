"""A table of feature vectors, one file per split, saved with
`torch.save({"features": (N, F) float tensor, "labels": (N,) int tensor}, path)`."""

import pickle
import zipfile
from pathlib import Path

import torch

from project.engine.data.source import Samples, Source, Split
from project.engine.errors import DataError


class FeatureFiles(Source):
    """Args:
    train: the training file.
    test: the test file, for `test` and `predict`.
    val: the validation file; without one, the DataModule holds out `data.val_size` of train.
    classes: a name per class; by default "0", "1", ... up to the largest training label.
    """

    def __init__(
        self,
        train: str | Path,
        test: str | Path | None = None,
        val: str | Path | None = None,
        classes: list[str] | None = None,
    ):
        self.files = {"train": train, "val": val, "test": test}
        # Read now: the CLI sizes the model from the classes before any split is loaded
        samples = read_features(Path(train))
        self.classes = tuple(classes or (str(i) for i in range(int(samples.labels.max()) + 1)))
        self.in_features = samples.inputs.shape[1]

    @property
    def input_sizes(self) -> dict[str, int]:
        return {"in_features": self.in_features}

    def load(self, split: Split) -> Samples | None:
        if self.files[split] is None:
            return None
        samples = read_features(Path(self.files[split]))
        if samples.inputs.shape[1] != self.in_features:
            raise DataError(
                f"{self.files[split]} has {samples.inputs.shape[1]} feature columns but the training file "
                f"{self.files['train']} has {self.in_features}: every split needs the same columns."
            )
        if samples.labels.max() >= len(self.classes):
            raise DataError(
                f"{self.files[split]} has labels up to {int(samples.labels.max())}, beyond the {len(self.classes)} "
                f"classes ({', '.join(self.classes)}): fix those labels, or name every class in "
                "data.source.init_args.classes"
            )
        return samples


FORMAT = "torch.save({'features': (N, F) float tensor, 'labels': (N,) integer tensor}, path)"


def read_features(path: Path) -> Samples:
    """The samples of a feature file, refusing anything a cast would change silently: non-finite features,
    fractional labels, negative labels."""
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
    if features.ndim != 2 or labels.shape != (len(features),) or not len(features):
        raise DataError(
            f"{path} must hold features (N, F) and labels (N,) with N >= 1; got features {tuple(features.shape)} "
            f"and labels {tuple(labels.shape)}"
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
