"""Audio held in memory as decoded clips and augmented on the device: any `AudioSource`. Clips keep their true
lengths, so a batch is padded only to its longest clip and the network can ignore the padding."""

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import soundfile
import torch
from torch import Tensor
from torch.utils.data import Dataset

from project.engine.data.audio import AudioClips, list_audio_folder, pad_clips, read_audio, read_audio_folder
from project.engine.data.audio_transforms import WaveformEvalTransform, WaveformTrainTransform
from project.engine.data.datamodule import InMemoryDataModule
from project.engine.data.source import AudioSource, Samples, Split
from project.engine.data.streaming import StreamedFiles
from project.engine.errors import DataError

Waves = tuple[Tensor, Tensor]  # (waveforms (B, T), lengths (B,))


class AudioDataModule(InMemoryDataModule):
    """Decoded clips in memory, batched with their true lengths, augmented on the device.

    Args:
        source: the data set, and how it splits (e.g. `class_path: project.engine.data.WavFolder`).
        sample_rate: every clip is resampled to this rate once, when loaded; handed to the net's `sample_rate`.
        clip_seconds: pad or crop every clip to this length; None pads each batch to its longest clip and
            passes the true lengths, so no clip is cut and no compute is spent on silence.
        speed: training augmentation: largest relative change of speed and pitch (0 turns it off).
        max_shift: training augmentation: longest silence, in seconds, put before a clip.
        gain_db: training augmentation: largest change of loudness, in decibels, either way.
        **kwargs: `InMemoryDataModule`'s (batch_size, val_size, seed, on_device, predict_dir, ...). Every file
            under `predict_dir` is read as audio. With `on_device` and no `clip_seconds`, clips are padded
            to the longest of their split.
    """

    def __init__(
        self,
        source: AudioSource,
        sample_rate: int = 16000,
        clip_seconds: float | None = None,
        speed: float = 0.1,
        max_shift: float = 0.1,
        gain_db: float = 6.0,
        **kwargs: Any,
    ):
        super().__init__(source, **kwargs)
        if sample_rate < 1:
            raise DataError(f"data.sample_rate must be a positive number of samples per second, got {sample_rate}.")
        if clip_seconds is not None and clip_seconds <= 0:
            raise DataError(f"data.clip_seconds must be positive or null (variable length), got {clip_seconds}.")
        written = getattr(
            source, "chunk_sample_rate", None
        )  # LitData chunks hold clips at the rate they were written at
        if written is not None and written != sample_rate:
            raise DataError(
                f"data.sample_rate is {sample_rate} but the chunks' clips are at {written} Hz; set it to {written}."
            )
        self.sample_rate = sample_rate
        self.clip_samples = None if clip_seconds is None else round(clip_seconds * sample_rate)
        self.train_transform = WaveformTrainTransform(sample_rate, speed=speed, max_shift=max_shift, gain_db=gain_db)
        self.eval_transform = WaveformEvalTransform()

    @property
    def sizes(self) -> dict[str, int]:
        """Handed to the net's constructor arguments of the same names (project/engine/sizes.py)."""
        return {**super().sizes, "sample_rate": self.sample_rate}

    def read_split(self, split: Split) -> Samples | None:
        return self.source.load(split, self.sample_rate)

    def make_dataset(self, samples: Samples) -> Dataset:
        if not self.in_memory:
            return StreamedFiles(samples, self.decoder(), self.batch_inputs(), skip_bad_files=self.skips_bad_files)
        return AudioClips(samples.inputs, samples.labels, self.clip_samples, samples.names)

    def batch_inputs(self) -> Callable[[list[Tensor]], Waves]:
        return partial(pad_clips, length=self.clip_samples)

    def decoder(self) -> Callable[[Path], Tensor]:
        return partial(read_clip, sample_rate=self.sample_rate)

    def memory_bytes(self, files: Samples) -> int:
        # float16 clips at `sample_rate`, from each file's header (no samples read)
        total = 0
        for path in files.inputs:
            try:
                info = soundfile.info(str(path))
            except (soundfile.LibsndfileError, RuntimeError, OSError):
                continue  # reading it fails with the file's name, and why
            total += 2 * round(info.frames * self.sample_rate / max(info.samplerate, 1))
        return total

    def list_predict_dir(self, folder: Path) -> tuple[list[Path], list[str]]:
        return list_audio_folder(folder)

    def read_predict_dir(self, folder: Path) -> tuple[list[Tensor], list[str]]:
        return read_audio_folder(folder, self.sample_rate)

    def augment(self, inputs: Waves, generator: torch.Generator) -> Waves:
        return self.train_transform(*inputs, generator)

    def transform(self, inputs: Waves) -> Waves:
        return self.eval_transform(*inputs)


def read_clip(path: Path, sample_rate: int) -> Tensor:
    """A file as the in-memory path holds it: mono float16 (T,) at `sample_rate`."""
    return read_audio(path, sample_rate).to(torch.float16)
