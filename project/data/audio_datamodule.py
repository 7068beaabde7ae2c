"""One DataModule for every audio data set: the data set is a component chosen in YAML.

A data set (`FSDD`, `SpeechCommands`, `WavFolder`) knows where its files are, how to download
them and how they split; the DataModule does what is the same for all of them: decode everything
into memory once, batch variable lengths, and augment on the device.
"""

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Literal, NamedTuple

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from project.data.audio import AudioBatch, AudioClips, read_audio, read_audio_folder
from project.data.audio_transforms import WaveformEvalTransform, WaveformTrainTransform
from project.data.loading import augmentation_generator, make_loader, per_device_batch_size
from project.errors import DataError
from project.internals import keep_batch

Split = Literal["train", "val", "test"]


class LoadedSplit(NamedTuple):
    """A split decoded into memory: mono clips at one rate, int64 labels (N,), and a name for each
    clip (its file, relative to the data set's folder) for prediction CSVs."""

    clips: list[Tensor]
    labels: Tensor
    names: list[str]


def read_split(items: list[tuple[Path, int]], sample_rate: int, root: Path) -> LoadedSplit:
    """Decode (file, label) pairs into a `LoadedSplit`, naming each clip by its path relative to `root`."""
    return LoadedSplit(
        clips=[read_audio(path, sample_rate) for path, _ in items],
        labels=torch.tensor([label for _, label in items], dtype=torch.int64),
        names=[str(path.relative_to(root)) for path, _ in items],
    )


class AudioDataset(ABC):
    """Where an audio data set's clips come from, and which split each belongs to."""

    classes: tuple[str, ...]

    @abstractmethod
    def prepare(self) -> None:
        """Make the files available (download, verify, extract); called on one process only."""

    @abstractmethod
    def load(self, split: Split, sample_rate: int) -> LoadedSplit:
        """Decode a split into mono clips at `sample_rate`, with their labels and names."""


class AudioDataModule(L.LightningDataModule):
    """Decoded clips in memory, batched with their true lengths, augmented on the device.

    Args:
        dataset: which data set, and how it splits (e.g. `class_path: project.data.FSDD`).
        sample_rate: every clip is resampled to this rate once, when loaded; must equal the model's.
        batch_size: global batch size, split evenly across devices.
        clip_seconds: pad or crop every clip to this length; None pads each batch to its longest
            clip and passes the true lengths, so no clip is cut and no compute is spent on silence.
        speed: training augmentation: largest relative change of speed and pitch (0 turns it off).
        max_shift: training augmentation: longest silence, in seconds, put before a clip.
        gain_db: training augmentation: largest change of loudness, in decibels, either way.
        num_workers: loader processes. Clips are in memory and augmented on the device, so a batch
            is a few copies; 0 avoids copying the set into worker processes.
        seed: fixes the augmentation stream and shuffle order (splits are the data set's, seeded by
            its own `seed`).
        predict_dir: a folder of recordings for `predict` (by default the test split); every file
            under it is read, and the predictions CSV names each by its path in the folder.
    """

    def __init__(
        self,
        dataset: AudioDataset,
        sample_rate: int = 16000,
        batch_size: int = 128,
        clip_seconds: float | None = None,
        speed: float = 0.1,
        max_shift: float = 0.1,
        gain_db: float = 6.0,
        num_workers: int = 0,
        pin_memory: bool | None = None,
        seed: int = 0,
        predict_dir: str | Path | None = None,
    ):
        super().__init__()
        if batch_size < 1:
            raise DataError(f"data.batch_size must be at least 1, got {batch_size}.")
        if sample_rate < 1:
            raise DataError(f"data.sample_rate must be a positive number of samples per second, got {sample_rate}.")
        if clip_seconds is not None and clip_seconds <= 0:
            raise DataError(f"data.clip_seconds must be positive or null (variable length), got {clip_seconds}.")
        self.save_hyperparameters(ignore=["dataset"])
        self.dataset = dataset
        self.sample_rate = sample_rate
        self.batch_size = batch_size
        self.clip_samples = None if clip_seconds is None else round(clip_seconds * sample_rate)
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.seed = seed
        self.predict_dir = Path(predict_dir) if predict_dir is not None else None
        self.train_transform = WaveformTrainTransform(sample_rate, speed=speed, max_shift=max_shift, gain_db=gain_db)
        self.eval_transform = WaveformEvalTransform()

    @property
    def classes(self) -> tuple[str, ...]:
        return self.dataset.classes

    @property
    def num_classes(self) -> int:
        return len(self.dataset.classes)

    def prepare_data(self) -> None:
        self.dataset.prepare()

    def setup(self, stage: str) -> None:
        self.per_device_batch_size = per_device_batch_size(self.batch_size, self.trainer)
        self._check_model_sample_rate()
        if stage in ("fit", "validate") and not hasattr(self, "train_set"):
            self.train_set = self._clips("train")
            self.val_set = self._clips("val")
        if stage == "predict" and self.predict_dir is not None:
            clips, names = read_audio_folder(self.predict_dir, self.sample_rate)
            no_labels = torch.full((len(clips),), -1)
            self.predict_set = AudioClips(clips, no_labels, self.clip_samples, names)
        elif stage in ("test", "predict") and not hasattr(self, "test_set"):
            self.test_set = self._clips("test")
        if stage == "predict" and self.predict_dir is None:
            self.predict_set = self.test_set

    @property
    def predict_names(self) -> list[str]:
        """The file behind each row of a `predict` CSV."""
        return self.predict_set.names

    def train_dataloader(self) -> DataLoader:
        # drop_last keeps every step's batch full-sized (one compiled shape, steady statistics)
        return self._loader(self.train_set, shuffle=True, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.predict_set)

    def on_after_batch_transfer(self, batch: AudioBatch, dataloader_idx: int) -> AudioBatch:
        (waves, lengths), labels = batch
        if self.trainer is not None and self.trainer.training:
            generator = augmentation_generator(self.trainer, self.seed, waves.device)
            return self.train_transform(waves, lengths, generator), labels
        return self.eval_transform(waves, lengths), labels

    def _clips(self, split: Split) -> AudioClips:
        loaded = self.dataset.load(split, self.sample_rate)
        if not loaded.clips:
            raise DataError(
                f"the {split} split of {type(self.dataset).__name__} is empty; check the data set's split settings."
            )
        return AudioClips(loaded.clips, loaded.labels, self.clip_samples, loaded.names)

    def _loader(self, dataset: AudioClips, shuffle: bool = False, drop_last: bool = False) -> DataLoader:
        if drop_last and len(dataset) < self.per_device_batch_size:
            raise DataError(
                f"the training split has {len(dataset)} clips, fewer than one batch of {self.per_device_batch_size}, "
                "so no full batch could be drawn; lower data.batch_size."
            )
        return make_loader(
            dataset,
            self.trainer,
            self.per_device_batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            seed=self.seed,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            collate_fn=keep_batch,
        )

    def _check_model_sample_rate(self) -> None:
        # The front end's mel filters are laid out for one rate; clips at another would train
        # without error and mean something else. The model cannot see the data, so check here.
        model = self.trainer.lightning_module if self.trainer is not None else None
        expected = getattr(getattr(model, "net", None), "sample_rate", None)
        if expected is not None and expected != self.sample_rate:
            raise DataError(
                f"data.sample_rate={self.sample_rate} but the model's front end expects {expected} Hz; set "
                f"model.net.init_args.sample_rate and data.sample_rate to the same rate."
            )
