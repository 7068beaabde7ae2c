"""Log-mel features computed on the device, so a model (and its checkpoint) takes raw waveforms."""

import math

import torch
from torch import Tensor, nn

from project.engine.errors import ConfigError


class LogMel(nn.Module):
    """Waveforms (B, T) and lengths (B,) -> log-mel features (B, T', F) and frame counts (B,).

    Samples past a clip's length are zeroed and each clip is zero-padded by half a window at both
    ends (rather than reflected), so a clip's frames are the same whether it is alone or padded in
    a batch: frames past its end see only zeros either way. Frame i is centred on sample i * hop;
    a clip of L samples has L // hop + 1.

    Args:
        sample_rate: of the waveforms; sets where the mel bands fall.
        n_mels: number of mel bands, F.
        window_ms: analysis window (Hann); the FFT is the next power of two at least this long.
        hop_ms: step between frames.
        f_min: lowest band edge in Hz; f_max: highest, default the Nyquist frequency.
        top_db: floor of the log, in dB below the clip's loudest band in any frame. Relative to the
            clip, so the features do not depend on its recording level, and background noise more
            than `top_db` below the speech is flattened. None: a fixed floor at 1e-6 (-60 dB of a
            full-scale band), under which a quiet recording keeps less of its range than a loud one.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_mels: int = 40,
        window_ms: float = 25.0,
        hop_ms: float = 10.0,
        f_min: float = 20.0,
        f_max: float | None = None,
        top_db: float | None = None,
    ):
        super().__init__()
        if top_db is not None and top_db <= 0:
            raise ConfigError(f"top_db must be positive (dB below the clip's peak) or None, got {top_db}.")
        self.top_db = top_db
        f_max = sample_rate / 2 if f_max is None else f_max
        if not 0 <= f_min < f_max <= sample_rate / 2:
            raise ConfigError(
                f"need 0 <= f_min < f_max <= {sample_rate / 2} (Nyquist), got f_min={f_min}, f_max={f_max}."
            )
        self.win_length = round(sample_rate * window_ms / 1000)
        self.hop_length = round(sample_rate * hop_ms / 1000)
        if self.win_length < 2 or self.hop_length < 1:
            raise ConfigError(f"window_ms={window_ms} and hop_ms={hop_ms} are too short at {sample_rate} Hz.")
        self.n_fft = 2 ** math.ceil(math.log2(self.win_length))
        # Derived from the arguments, so not saved in checkpoints
        self.register_buffer("window", torch.hann_window(self.win_length), persistent=False)
        self.register_buffer(
            "filters", mel_filterbank(self.n_fft // 2 + 1, n_mels, sample_rate, f_min, f_max), persistent=False
        )

    def forward(self, waves: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        # bf16 autocast would round the power spectrum before the log; the FFT wants float32 anyway
        with torch.autocast(waves.device.type, enabled=False):
            # Whatever the batch holds past a clip's end, its last frames must see zeros there
            inside = torch.arange(waves.shape[1], device=waves.device) < lengths[:, None]  # (B, T)
            padded = nn.functional.pad(waves.float() * inside, (self.n_fft // 2, self.n_fft // 2))
            spec = torch.stft(
                padded, self.n_fft, self.hop_length, self.win_length, self.window, center=False, return_complex=True
            )  # (B, n_fft // 2 + 1, T')
            power = spec.real.square() + spec.imag.square()
            mel = power.transpose(1, 2) @ self.filters  # (B, T', F)
            if self.top_db is None:
                floor = torch.full_like(mel[:, :1, :1], 1e-6)  # -60 dB of a full-scale band: silence stays finite
            else:
                # Frames past a clip's end are all zero, so the peak is the clip's own, batched or alone
                peak = mel.amax(dim=(1, 2), keepdim=True)  # (B, 1, 1)
                floor = peak * 10 ** (-self.top_db / 10) + 1e-10
            features = torch.log(mel + floor)
        return features, lengths // self.hop_length + 1


def mel_filterbank(n_freqs: int, n_mels: int, sample_rate: int, f_min: float, f_max: float) -> Tensor:
    """Triangular filters (n_freqs, n_mels) evenly spaced on the HTK mel scale, each peaking at 1."""
    mel_min, mel_max = _hz_to_mel(torch.tensor(f_min)), _hz_to_mel(torch.tensor(f_max))
    edges = _mel_to_hz(torch.linspace(mel_min, mel_max, n_mels + 2, dtype=torch.float64))  # (n_mels + 2,)
    freqs = torch.linspace(0, sample_rate / 2, n_freqs, dtype=torch.float64)[:, None]  # (n_freqs, 1)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (freqs - lower) / (centre - lower)
    falling = (upper - freqs) / (upper - centre)
    return torch.minimum(rising, falling).clamp(min=0).float()


def _hz_to_mel(hz: Tensor) -> Tensor:
    return 2595.0 * torch.log10(1.0 + hz / 700.0)


def _mel_to_hz(mel: Tensor) -> Tensor:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def dct_matrix(n_in: int, n_out: int) -> Tensor:
    """Orthonormal DCT-II (n_in, n_out): log-mel (..., n_in) @ it -> cepstra (..., n_out), as MFCCs. The first
    coefficients keep the spectral envelope and drop the pitch harmonics' ripple, which differs by speaker."""
    n = torch.arange(n_in, dtype=torch.float64)[:, None]
    k = torch.arange(n_out, dtype=torch.float64)[None]
    basis = torch.cos(math.pi / n_in * (n + 0.5) * k) * math.sqrt(2 / n_in)
    basis[:, 0] /= math.sqrt(2)
    return basis.float()


def normalize_utterance(features: Tensor, mask: Tensor, per_band: bool = False) -> Tensor:
    """Zero mean, unit variance over each clip's own frames (`mask` (B, T) marks them; padding comes out zero):
    (B, T, F) -> (B, T, F). `per_band` (CMVN) also removes the microphone's colouring, but lifts a band of
    background noise to the scale of the speech bands."""
    mask = mask[..., None].to(features.dtype)  # (B, T, 1)
    dims = (1,) if per_band else (1, 2)
    count = mask.sum(1, keepdim=True) * (1 if per_band else features.shape[2])
    mean = (features * mask).sum(dims, keepdim=True) / count
    var = ((features - mean).square() * mask).sum(dims, keepdim=True) / count
    return (features - mean) * torch.rsqrt(var + 1e-5) * mask


class SpecAugment(nn.Module):
    """SpecAugment's frequency and time masking (Park et al., 2019), drawn per clip, training only; masked cells
    are zero, the clip's mean after `normalize_utterance`.

    Args:
        freq_masks: bands of mel channels masked per clip.
        freq_mask_width: widest such band, in mel channels.
        time_masks: spans of frames masked per clip.
        time_mask_fraction: widest such span, as a fraction of the clip's own frames, so short words are not
            wiped out.
    """

    def __init__(
        self, freq_masks: int = 2, freq_mask_width: int = 8, time_masks: int = 2, time_mask_fraction: float = 0.1
    ):
        super().__init__()
        self.freq_masks = freq_masks
        self.freq_mask_width = freq_mask_width
        self.time_masks = time_masks
        self.time_mask_fraction = time_mask_fraction

    def forward(self, features: Tensor, frames: Tensor) -> Tensor:
        if not self.training:
            return features
        _, t, f = features.shape
        n_bins, freq_width = torch.full_like(frames, f), torch.full_like(frames, self.freq_mask_width)
        masked = _random_spans(self.freq_masks, freq_width, n_bins, f)[:, None, :]  # (B, 1, F)
        max_width = (frames * self.time_mask_fraction).floor().long()
        masked = masked | _random_spans(self.time_masks, max_width, frames, t)[:, :, None]  # (B, T, F)
        return features.masked_fill(masked, 0.0)


def _random_spans(count: int, max_width: Tensor, extent: Tensor, size: int) -> Tensor:
    """A (B, size) mask of `count` spans per row, each up to max_width[b] long, inside 0..extent[b]."""
    b = extent.shape[0]
    positions = torch.arange(size, device=extent.device)
    masked = torch.zeros(b, size, dtype=torch.bool, device=extent.device)
    for _ in range(count):
        width = (torch.rand(b, device=extent.device) * (max_width + 1)).floor().long()
        start = (torch.rand(b, device=extent.device) * (extent - width + 1).clamp(min=1)).floor().long()
        masked |= (positions >= start[:, None]) & (positions < (start + width)[:, None])
    return masked
