"""Batch transforms for padded waveforms `(waveforms (B, T), lengths (B,))`, run on the device after transfer,
with randomness from an explicit generator, as the image transforms. Slowing down or shifting makes a clip
longer, so the batch widens to hold the longest possible result."""

import math

import torch
from torch import Tensor

from project.engine.errors import DataError


class WaveformEvalTransform:
    """float16 storage -> float32 waveforms; lengths unchanged."""

    def __call__(
        self, waves: Tensor, lengths: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        return waves.float(), lengths


class WaveformTrainTransform:
    """Speed perturbation, a random delay and a random gain, each drawn per clip.

    Speed perturbation (resampling by a factor in [1 - speed, 1 + speed]) also scales pitch and formants, as a
    shorter or longer vocal tract would: the augmentation that most helps a model to unseen voices.

    Args:
        sample_rate: of the waveforms, to turn `max_shift` into samples.
        speed: largest relative change of speed (and pitch); 0 turns it off.
        max_shift: longest silence, in seconds, put before the clip.
        gain_db: largest change of loudness, in decibels, either way.
        zero_crossings: half-width of the windowed-sinc interpolation kernel.
    """

    def __init__(
        self,
        sample_rate: int,
        speed: float = 0.1,
        max_shift: float = 0.1,
        gain_db: float = 6.0,
        zero_crossings: int = 6,
    ):
        if not 0 <= speed < 1:
            raise DataError(f"speed perturbation must be in [0, 1), got {speed}.")
        if max_shift < 0 or gain_db < 0:
            raise DataError(f"max_shift and gain_db must be non-negative, got {max_shift} and {gain_db}.")
        self.speed = speed
        self.max_shift = round(max_shift * sample_rate)
        self.gain_db = gain_db
        self.zero_crossings = zero_crossings

    def __call__(
        self, waves: Tensor, lengths: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        b, t = waves.shape
        device = waves.device
        rate, shift, gain = torch.rand(3, b, device=device, generator=generator)
        rate = 1 + self.speed * (2 * rate - 1)  # input samples consumed per output sample
        shift = (shift * (self.max_shift + 1)).floor().clamp(max=self.max_shift)
        gain = 10 ** (self.gain_db * (2 * gain - 1) / 20)
        # Wide enough for the slowest, most-delayed clip; fixed by shapes alone, so no host sync
        out_len = math.ceil(t / (1 - self.speed)) + self.max_shift
        new_lengths = (shift.long() + (lengths / rate).ceil().long()).clamp(max=out_len)
        if self.speed == 0:  # a delay alone: each output sample is an input sample, no interpolation to pay for
            out = delayed(waves.float(), lengths, shift.long(), out_len)
        else:
            out = resample_at(waves.float(), lengths, rate, shift, out_len, self.zero_crossings)
        valid = torch.arange(out_len, device=device) < new_lengths[:, None]  # (B, T')
        return out * valid * gain[:, None], new_lengths


def delayed(waves: Tensor, lengths: Tensor, shift: Tensor, out_len: int) -> Tensor:
    """Each clip delayed by shift[b] samples: (B, T) -> (B, out_len); samples past a clip's length count as zero."""
    t = waves.shape[1]
    index = torch.arange(out_len, device=waves.device)[None] - shift[:, None]  # (B, T')
    inside = (index >= 0) & (index < lengths[:, None])
    return waves.gather(1, index.clamp(0, t - 1)) * inside


def resample_at(
    waves: Tensor, lengths: Tensor, rate: Tensor, shift: Tensor, out_len: int, zero_crossings: int
) -> Tensor:
    """Each clip read at positions (n - shift) * rate by windowed-sinc interpolation: (B, T) -> (B, out_len).
    Samples past a clip's length count as zero; sped up, the cutoff drops to the new Nyquist frequency."""
    b, t = waves.shape
    device = waves.device
    n = torch.arange(out_len, device=device, dtype=torch.float32)
    pos = (n[None] - shift[:, None]) * rate[:, None]  # (B, T') in input samples
    base = pos.floor()
    taps = torch.arange(-zero_crossings + 1, zero_crossings + 1, device=device, dtype=torch.float32)
    index = base[..., None] + taps  # (B, T', K)
    cutoff = (1 / rate).clamp(max=1.0)[:, None, None]  # fraction of the input's Nyquist frequency
    offset = pos[..., None] - index  # distance of each tap from the read position
    window = torch.cos(offset.clamp(-zero_crossings, zero_crossings) * (math.pi / (2 * zero_crossings))) ** 2
    kernel = cutoff * torch.special.sinc(cutoff * offset) * window  # (B, T', K)
    inside = (index >= 0) & (index < lengths[:, None, None])
    gathered = waves.gather(1, index.clamp(0, t - 1).long().view(b, -1)).view_as(kernel)  # (B, T', K)
    return (gathered * kernel * inside).sum(-1)
