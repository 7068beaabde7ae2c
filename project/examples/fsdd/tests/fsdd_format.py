"""A small synthetic copy of FSDD (its release's layout and file names), written by the tests."""

from pathlib import Path

import numpy as np

from tests.wav_format import SOUNDS, sound, write_wav


def write_fsdd(
    root: Path, speakers: tuple[str, ...] = ("george", "theo"), takes: int = 8, sample_rate: int = 8000, seed: int = 0
) -> Path:
    """root/recordings/{digit}_{speaker}_{take}.wav, FSDD's layout; digits 0-6 are SOUNDS, 7-9 pitched
    variants, and each speaker shifts the pitch a little, as voices do."""
    rng = np.random.default_rng(seed)
    kinds = [(kind, 1.0) for kind in SOUNDS] + [("tone", 1.5), ("chirp", 0.6), ("two_tones", 1.6)]
    for s, speaker in enumerate(speakers):
        for digit, (kind, pitch) in enumerate(kinds):
            for take in range(takes):
                clip = sound(kind, rng.uniform(0.2, 0.5), sample_rate, rng, pitch * (1 + 0.04 * s))
                write_wav(root / "recordings" / f"{digit}_{speaker}_{take}.wav", clip, sample_rate)
    return root
