"""Reading WAV files into mono clips at one sample rate, and batching clips of different lengths: decoded and
resampled once, at load; a batch pads a few in-memory clips and carries their true lengths."""

import math
import struct
from pathlib import Path

import numpy as np
import soundfile
import torch
from torch import Tensor
from torch.utils.data import Dataset

from project.engine.data import targets
from project.engine.data.source import Samples
from project.engine.data.targets import BatchTargets, Targets
from project.engine.errors import DataError

# What a DataLoader yields: ((waveforms (B, T), lengths (B,)), targets: labels (B,), or padded sequences)
AudioBatch = tuple[tuple[Tensor, Tensor], BatchTargets]


# Bounds that no real recording is outside of. A rate below the lowest bound is a broken header (a
# 1 Hz file would be resampled into minutes of nonsense); samples beyond the amplitude bound are not
# sound (a float WAV holds samples in [-1, 1]) and would overflow the float16 clips are stored in.
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 768_000
MAX_AMPLITUDE = 256.0


def read_audio(path: str | Path, sample_rate: int) -> Tensor:
    """Decode an audio file into a mono float32 waveform (T,) at `sample_rate`, channels averaged. A file that is
    truncated, declares an absurd rate, or holds non-finite or absurdly large samples is refused."""
    path = Path(path)
    try:
        _check_wav_length(path)
        # float32 in [-1, 1) whatever the file's sample format; (T, channels) even for mono
        data, file_rate = soundfile.read(path, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, OSError) as err:
        raise DataError(
            f"Could not read {path} as audio ({err}). Only formats libsndfile reads (WAV, FLAC, OGG, ...) are "
            "supported: convert the file, or remove it from the data folder."
        ) from err
    if data.shape[0] == 0:
        raise DataError(f"{path} holds no audio samples (an empty recording); remove it from the data folder.")
    if not MIN_SAMPLE_RATE <= file_rate <= MAX_SAMPLE_RATE:
        raise DataError(
            f"{path} declares a sample rate of {file_rate} Hz, outside {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz, "
            "so its header is broken; re-export the recording with its true rate, or remove it."
        )
    finite = np.isfinite(data)
    if not finite.all():
        raise DataError(
            f"{path} holds {np.count_nonzero(~finite)} NaN or infinite samples; re-export the recording, or remove it."
        )
    peak = float(np.abs(data).max())
    if peak > MAX_AMPLITUDE:
        raise DataError(
            f"{path} has samples as large as {peak:.3g}; audio samples lie in [-1, 1] (at most {MAX_AMPLITUDE:g} "
            "is accepted). Re-export the recording normalised, or remove it."
        )
    wave = torch.from_numpy(data).mean(dim=1)  # (T, channels) -> (T,)
    return resample(wave, file_rate, sample_rate)


def _check_wav_length(path: Path) -> None:
    """Refuse a WAV whose header promises more audio than the file holds (a cut-short copy), which
    libsndfile would otherwise read silently as a shorter clip."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        if f.read(4) != b"RIFF" or len(f.read(4)) != 4 or f.read(4) != b"WAVE":
            return  # not a WAV (or RF64, whose sizes live elsewhere): libsndfile's own checks apply
        while True:
            header = f.read(8)
            if len(header) < 8:
                return
            chunk, length = header[:4], struct.unpack("<I", header[4:])[0]
            if chunk == b"data":
                # 0xFFFFFFFF (or 0): a streaming writer that never went back to fill the size in
                if length not in (0, 0xFFFFFFFF) and f.tell() + length > size:
                    raise DataError(
                        f"{path} is truncated: its header promises {length} bytes of audio but only "
                        f"{size - f.tell()} follow. Copy or export the recording again, or remove it."
                    )
                return
            f.seek(length + length % 2, 1)  # chunks are padded to an even length


def read_split(items: list[tuple[Path, int]], sample_rate: int, root: Path) -> Samples:
    """Decode (file, label) pairs into `Samples`, naming each clip by its path relative to `root`."""
    return Samples(
        inputs=[read_audio(path, sample_rate) for path, _ in items],
        labels=torch.tensor([label for _, label in items], dtype=torch.int64),
        names=[str(path.relative_to(root)) for path, _ in items],
    )


def read_audio_folder(folder: Path, sample_rate: int) -> tuple[list[Tensor], list[str]]:
    """Every file under `folder` (recursively, sorted, hidden ones aside) as clips at `sample_rate`, named by
    their paths in `folder`. A file that is not audio stops the load with its name."""
    files, names = list_audio_folder(folder)
    if not files:
        raise DataError(f"data.predict_dir {folder.resolve()} holds no files.")
    return [read_audio(path, sample_rate) for path in files], names


def list_audio_folder(folder: Path) -> tuple[list[Path], list[str]]:
    """Every file under `folder` (recursively, sorted; hidden files aside), and its path relative to `folder`."""
    if not folder.is_dir():
        raise FileNotFoundError(f"data.predict_dir {folder.resolve()} does not exist; point it at your recordings.")
    files = [
        path
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    ]
    return files, [str(path.relative_to(folder)) for path in files]


def resample(wave: Tensor, orig_rate: int, new_rate: int, zero_crossings: int = 32, rolloff: float = 0.95) -> Tensor:
    """Band-limited resampling of waveforms (..., T) by a polyphase Kaiser-windowed sinc filter. The cutoff sits
    at `rolloff` times the lower Nyquist frequency, so downsampling does not alias; `zero_crossings` per side
    sets how sharp it is."""
    if orig_rate <= 0 or new_rate <= 0:
        raise DataError(f"sample rates must be positive, got {orig_rate} -> {new_rate}.")
    gcd = math.gcd(orig_rate, new_rate)
    orig, new = orig_rate // gcd, new_rate // gcd
    if orig == new:
        return wave
    cutoff = min(orig, new) * rolloff  # in cycles per `orig`-sample period, after the rate reduction
    width = math.ceil(zero_crossings * orig / cutoff)  # kernel half-width in input samples
    # Time of every tap relative to each output phase, in input samples: (new, 2 * width + orig)
    taps = torch.arange(-width, width + orig, dtype=torch.float64) / orig
    phases = -torch.arange(new, dtype=torch.float64)[:, None] / new
    t = ((taps[None] + phases) * cutoff).clamp(-zero_crossings, zero_crossings)
    window = torch.special.i0(KAISER_BETA * torch.sqrt(1 - (t / zero_crossings) ** 2)) / torch.special.i0(
        torch.tensor(KAISER_BETA, dtype=torch.float64)
    )
    kernels = torch.special.sinc(t) * window * (cutoff / orig)
    length = wave.shape[-1]
    flat = wave.reshape(-1, 1, length).to(torch.float32)  # (N, 1, T)
    padded = torch.nn.functional.pad(flat, (width, width + orig))
    # (N, new, T // orig + 1): column j holds the `new` outputs between input samples j*orig and (j+1)*orig
    out = torch.nn.functional.conv1d(padded, kernels[:, None].to(torch.float32), stride=orig)
    out = out.transpose(1, 2).reshape(flat.shape[0], -1)[:, : math.ceil(new * length / orig)]
    return out.reshape(*wave.shape[:-1], -1)


KAISER_BETA = 14.77  # stop-band attenuation of about 150 dB, as in resampy's "kaiser_best"


class AudioClips(Dataset):
    """Mono clips of different lengths with their targets, served a whole batch at a time.

    Stored as float16: half of float32's memory (Speech Commands: 3.4 GB, not 6.8) and finer than the features
    need; `read_audio` refuses samples beyond +-256, so none overflows. Batches are widened on the device.

    Args:
        clips: 1-D waveforms, all at the sample rate the model expects.
        labels: (N,) class indices, or any targets (project/engine/data/targets.py).
        length: pad or crop every clip to this many samples; None pads each batch to its longest clip.
        names: what to call each clip (its file), for prediction CSVs.
    """

    def __init__(self, clips: list[Tensor], labels: Targets, length: int | None = None, names: list[str] | None = None):
        if len(clips) != len(labels):
            raise DataError(f"got {len(clips)} clips but {len(labels)} labels.")
        self.clips = [clip.to(torch.float16) for clip in clips]
        self.labels = labels
        self.length = length
        self.names = names if names is not None else [str(i) for i in range(len(clips))]
        self._on_device: tuple[tuple[Tensor, Tensor], BatchTargets] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> AudioBatch:
        (waves, lengths), _ = self.__getitems__([index])
        return (waves[0], lengths[0]), self.labels[index]

    def __getitems__(self, indices: list[int]) -> AudioBatch:
        # DataLoader calls this with a whole batch (undocumented; see project.engine.internals.keep_batch), so padding
        # happens once per batch
        waves, lengths = pad_clips([self.clips[i] for i in indices], self.length)
        return (waves, lengths), targets.take(self.labels, indices)

    def device_tensors(self, device: torch.device) -> tuple[tuple[Tensor, Tensor], BatchTargets]:
        """The whole set on `device`, padded to `length` or the longest clip: ((waves (N, T), lengths (N,)), labels)."""
        if self._on_device is None or self._on_device[0][0].device != device:
            waves, lengths = pad_clips(self.clips, self.length)
            self._on_device = ((waves.to(device), lengths.to(device)), targets.on_device(self.labels, device))
        return self._on_device


def pad_clips(clips: list[Tensor], length: int | None = None) -> tuple[Tensor, Tensor]:
    """Zero-padded waveforms (B, T) and true lengths (B,) int64; T is the longest clip, or `length` (longer clips
    keep their first `length` samples)."""
    if not clips:
        raise DataError("cannot batch an empty list of clips.")
    lengths = torch.tensor([len(clip) for clip in clips], dtype=torch.int64)
    if length is not None:
        lengths = lengths.clamp(max=length)
    waves = clips[0].new_zeros(len(clips), int(lengths.max()) if length is None else length)
    for row, (clip, n) in enumerate(zip(clips, lengths.tolist(), strict=True)):
        waves[row, :n] = clip[:n]
    return waves, lengths
