"""A table of feature vectors, one file per split, saved with
`torch.save({"features": (N, F) float tensor, "labels": (N,) int tensor}, path)`."""

from pathlib import Path

import torch

from project.data.source import Samples, Source, Split
from project.errors import DataError


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
            raise DataError(f"{self.files[split]} has labels beyond the {len(self.classes)} classes of train.")
        return samples


def read_features(path: Path) -> Samples:
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; point data.source.init_args at your feature files.")
    saved = torch.load(path, weights_only=True)
    features, labels = saved["features"].float(), saved["labels"].long()
    if features.ndim != 2 or labels.shape != (len(features),) or labels.min() < 0:
        raise DataError(f"{path} must hold features (N, F) and labels (N,) of 0 or more; got {features.shape}.")
    return Samples(features, labels)
