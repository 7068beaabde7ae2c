"""Recurrent nets for raw waveforms: log-mel front end, GRU or LSTM, then a pooled read-out (one class a clip) or
a read-out per frame (CTC)."""

from typing import Literal

import torch
from torch import Tensor, nn

from project.engine.errors import ConfigError
from project.models.logmel import LogMel, SpecAugment, dct_matrix, normalize_utterance


class LogMelRNN(nn.Module):
    """What the recurrent nets over raw waveforms share: waveforms (B, T) with true lengths (B,) -> log-mel
    features, normalised and SpecAugmented, through a length-aware GRU/LSTM: (B, T', H * directions).

    Padding never changes a clip's outputs: features are normalised over each clip's own frames and the
    recurrence never reads past a clip's end in either direction.

    Args:
        sample_rate: of the input waveforms; the DataModule checks that it resamples to this.
        n_mels, window_ms, hop_ms, f_min, top_db: the log-mel front end (see `LogMel`).
        n_ceps: keep this many cepstral coefficients (a DCT of the log-mel bands, as MFCCs), which
            drops the pitch ripple that differs between voices; None feeds the log-mel bands.
        cell: "gru" or "lstm".
        hidden_size: units per direction and layer.
        num_layers: stacked recurrent layers.
        bidirectional: also read each clip backwards from its own last frame.
        dropout: between recurrent layers and before the output layer.
        normalize: "utterance": one mean and variance per clip (removes loudness); "band": per
            mel band (also removes the channel's colouring; see `normalize_utterance`).
        freq_masks, freq_mask_width, time_masks, time_mask_fraction: SpecAugment (see `SpecAugment`);
            0 masks turn it off.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_mels: int = 40,
        window_ms: float = 25.0,
        hop_ms: float = 10.0,
        f_min: float = 20.0,
        top_db: float | None = None,
        n_ceps: int | None = None,
        cell: Literal["gru", "lstm"] = "gru",
        hidden_size: int = 128,
        num_layers: int = 2,
        bidirectional: bool = True,
        dropout: float = 0.1,
        normalize: Literal["utterance", "band"] = "utterance",
        freq_masks: int = 2,
        freq_mask_width: int = 6,
        time_masks: int = 2,
        time_mask_fraction: float = 0.1,
    ):
        super().__init__()
        self.sample_rate = sample_rate
        self.per_band = normalize == "band"
        if n_ceps is not None and not 1 <= n_ceps <= n_mels:
            raise ConfigError(f"n_ceps must be between 1 and n_mels={n_mels}, or None, got {n_ceps}.")
        self.log_mel = LogMel(sample_rate, n_mels, window_ms, hop_ms, f_min, top_db=top_db)
        self.register_buffer("dct", None if n_ceps is None else dct_matrix(n_mels, n_ceps), persistent=False)
        self.spec_augment = SpecAugment(freq_masks, freq_mask_width, time_masks, time_mask_fraction)
        self.rnn = LengthAwareRNN(n_ceps or n_mels, hidden_size, num_layers, cell, bidirectional, dropout)
        self.width = hidden_size * (2 if bidirectional else 1)

    def encode(self, waves: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(the recurrence's outputs (B, T', H * directions), frame counts (B,), mask of real frames (B, T'))."""
        features, frames = self.log_mel(waves, lengths)  # (B, T', F), (B,)
        if self.dct is not None:
            features = features @ self.dct  # (B, T', n_ceps)
        mask = torch.arange(features.shape[1], device=frames.device) < frames[:, None]  # (B, T')
        x = self.spec_augment(normalize_utterance(features, mask, self.per_band), frames)
        return self.rnn(x, frames), frames, mask


class RNNClassifier(LogMelRNN):
    """Waveforms (B, T) with true lengths (B,) -> class logits (B, num_classes).

    Padding never changes a prediction (see `LogMelRNN`), and the read-out ignores padded frames. So a
    checkpoint predicts from raw waveforms, batched or one at a time.

    Args:
        num_classes: the data's class count replaces the default (project/engine/sizes.py).
        readout: "mean" averages the frames; "attention" weights them by a learned score, so the
            model can attend to the word and not the silence around it.
        The others: the log-mel front end and the recurrence, as `LogMelRNN` says.
    """

    def __init__(
        self,
        num_classes: int = 10,
        sample_rate: int = 16000,
        n_mels: int = 40,
        window_ms: float = 25.0,
        hop_ms: float = 10.0,
        f_min: float = 20.0,
        top_db: float | None = None,
        n_ceps: int | None = None,
        cell: Literal["gru", "lstm"] = "gru",
        hidden_size: int = 128,
        num_layers: int = 2,
        bidirectional: bool = True,
        dropout: float = 0.1,
        readout: Literal["mean", "attention"] = "attention",
        normalize: Literal["utterance", "band"] = "utterance",
        freq_masks: int = 2,
        freq_mask_width: int = 6,
        time_masks: int = 2,
        time_mask_fraction: float = 0.1,
    ):
        super().__init__(
            sample_rate, n_mels, window_ms, hop_ms, f_min, top_db, n_ceps, cell, hidden_size, num_layers,
            bidirectional, dropout, normalize, freq_masks, freq_mask_width, time_masks, time_mask_fraction,
        )  # fmt: skip
        self.pool = AttentionPool(self.width) if readout == "attention" else MeanPool()
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.width, num_classes))

    def forward(self, waves: Tensor, lengths: Tensor) -> Tensor:
        h, _, mask = self.encode(waves, lengths)
        return self.head(self.pool(h, mask))


class RNNFrameClassifier(LogMelRNN):
    """Waveforms (B, T) with true lengths (B,) -> logits for every frame (B, T', num_classes) and each clip's
    frame count (B,): for CTC (num_classes counts the blank) or a label per frame.

    A clip's logits over its own frames are the same alone or padded in a batch (see `LogMelRNN`); those past
    its frame count are padding, to be ignored. A frame is `hop_ms` of audio; CTC needs a clip to have at
    least as many frames as its transcript has tokens (and one more per repeated letter).

    Args:
        num_classes: outputs per frame; the data's class count replaces the default (project/engine/sizes.py).
        The others: the log-mel front end and the recurrence, as `LogMelRNN` says.
    """

    def __init__(
        self,
        num_classes: int = 29,
        sample_rate: int = 16000,
        n_mels: int = 40,
        window_ms: float = 25.0,
        hop_ms: float = 10.0,
        f_min: float = 20.0,
        top_db: float | None = None,
        n_ceps: int | None = None,
        cell: Literal["gru", "lstm"] = "gru",
        hidden_size: int = 128,
        num_layers: int = 2,
        bidirectional: bool = True,
        dropout: float = 0.1,
        normalize: Literal["utterance", "band"] = "utterance",
        freq_masks: int = 2,
        freq_mask_width: int = 6,
        time_masks: int = 2,
        time_mask_fraction: float = 0.1,
    ):
        super().__init__(
            sample_rate, n_mels, window_ms, hop_ms, f_min, top_db, n_ceps, cell, hidden_size, num_layers,
            bidirectional, dropout, normalize, freq_masks, freq_mask_width, time_masks, time_mask_fraction,
        )  # fmt: skip
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.width, num_classes))

    def forward(self, waves: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        h, frames, _ = self.encode(waves, lengths)
        return self.head(h), frames


class LengthAwareRNN(nn.Module):
    """Stacked, optionally bidirectional GRU/LSTM over padded sequences (B, T, F) -> (B, T, H * directions).

    The backward direction starts at each sequence's last real frame, not the padding: one cuDNN call per
    direction (a fused bidirectional one starts every row at T), but no packing, whose CPU lengths sync each step.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 2,
        cell: Literal["gru", "lstm"] = "gru",
        bidirectional: bool = True,
        dropout: float = 0.0,
    ):
        super().__init__()
        if num_layers < 1:
            raise ConfigError(f"num_layers must be at least 1, got {num_layers}.")
        rnn_class = {"gru": nn.GRU, "lstm": nn.LSTM}[cell]
        directions = 2 if bidirectional else 1
        self.layers = nn.ModuleList(
            nn.ModuleList(
                rnn_class(input_size if i == 0 else hidden_size * directions, hidden_size, batch_first=True)
                for _ in range(directions)
            )
            for i in range(num_layers)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            if i > 0:
                x = self.dropout(x)
            outputs = [layer[0](x)[0]]
            if len(layer) == 2:
                outputs.append(reverse_padded(layer[1](reverse_padded(x, lengths))[0], lengths))
            x = torch.cat(outputs, dim=-1)  # (B, T, H * directions)
        return x


def reverse_padded(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each sequence of (B, T, F) within its first lengths[b] steps; padding stays in place."""
    t = torch.arange(x.shape[1], device=x.device)
    index = torch.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)  # (B, T)
    return x.gather(1, index[..., None].expand_as(x))


class MeanPool(nn.Module):
    """Average of the real frames: (B, T, H), mask (B, T) -> (B, H)."""

    def forward(self, h: Tensor, mask: Tensor) -> Tensor:
        mask = mask[..., None].to(h.dtype)
        return (h * mask).sum(1) / mask.sum(1)


def _drop_score_bias(module: nn.Module, state_dict: dict, prefix: str, *args) -> None:
    state_dict.pop(f"{prefix}score.bias", None)


class AttentionPool(nn.Module):
    """Softmax-weighted average of the real frames by a learned score: (B, T, H), mask (B, T) -> (B, H)."""

    def __init__(self, width: int):
        super().__init__()
        self.score = nn.Linear(width, 1)
        # Softmax ignores a score's constant shift, so a bias would never get a gradient. Made, then dropped: the
        # nets after it draw the same initial weights as before; a checkpoint that holds it still loads.
        self.score.bias = None
        self.register_load_state_dict_pre_hook(_drop_score_bias)

    def forward(self, h: Tensor, mask: Tensor) -> Tensor:
        scores = self.score(h).squeeze(-1).masked_fill(~mask, torch.finfo(h.dtype).min)  # (B, T)
        weights = scores.softmax(dim=1)
        return (weights[..., None] * h).sum(1)
