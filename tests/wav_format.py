"""Synthetic WAV data sets the audio tests write for themselves: each class a distinct sound.

Every clip is a short "word" in silence: a sound with a smooth onset and decay, at a random
position, length and loudness, over faint noise, so the features change over time as speech does
(per-utterance normalisation would erase a sound that never changes).
"""

import math
from pathlib import Path

import numpy as np
import soundfile

SOUNDS = ("tone", "chirp", "noise", "two_tones", "low_tone", "down_chirp", "buzz")


def sound(kind: str, seconds: float, sample_rate: int, rng: np.random.Generator, pitch: float = 1.0) -> np.ndarray:
    """A float32 clip: silence, the sound `kind` under a Hann envelope, silence."""
    n = max(1, round(seconds * sample_rate))
    word = rng.integers(n // 3, n // 2 + 1)  # samples the sound lasts
    start = rng.integers(0, n - word + 1)
    t = np.arange(word) / sample_rate
    nyquist = sample_rate / 2
    f = {"tone": 0.25, "low_tone": 0.08, "two_tones": 0.12, "buzz": 0.05}.get(kind, 0.2) * nyquist * pitch
    if kind in ("tone", "low_tone"):
        wave = np.sin(2 * math.pi * f * t)
    elif kind == "two_tones":
        wave = 0.5 * np.sin(2 * math.pi * f * t) + 0.5 * np.sin(2 * math.pi * 3.1 * f * t)
    elif kind in ("chirp", "down_chirp"):
        f0, f1 = 0.1 * nyquist * pitch, 0.6 * nyquist * pitch
        if kind == "down_chirp":
            f0, f1 = f1, f0
        duration = word / sample_rate
        wave = np.sin(2 * math.pi * (f0 * t + (f1 - f0) * t**2 / (2 * duration)))
    elif kind == "buzz":
        wave = np.sign(np.sin(2 * math.pi * f * t))  # a square wave: every odd harmonic
    elif kind == "noise":
        wave = rng.standard_normal(word)
    else:
        raise ValueError(f"unknown sound {kind!r}; choose one of {SOUNDS}")
    clip = 0.002 * rng.standard_normal(n)
    clip[start : start + word] += rng.uniform(0.2, 0.8) * wave * np.hanning(word)
    return clip.astype(np.float32)


def write_wav(path: Path, clip: np.ndarray, sample_rate: int, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, np.clip(clip, -1, 1), sample_rate, subtype=subtype)
    return path


def write_wav_folder(
    root: Path, classes: tuple[str, ...] = SOUNDS[:3], per_class: int = 12, sample_rate: int = 8000, seed: int = 0
) -> Path:
    """root/<sound>/<i>.wav, clips of 0.2-0.5 s."""
    rng = np.random.default_rng(seed)
    for kind in classes:
        for i in range(per_class):
            write_wav(root / kind / f"{i}.wav", sound(kind, rng.uniform(0.2, 0.5), sample_rate, rng), sample_rate)
    return root


def write_speaker_folder(
    root: Path, speakers: tuple[str, ...], classes: tuple[str, ...] = SOUNDS[:3], takes: int = 2, seed: int = 0
) -> Path:
    """root/<sound>/<speaker>_<take>.wav at 8 kHz, each speaker a little higher pitched, as voices are: a WAV
    folder whose files tell their speaker, for folds by group (WavFolder's `groups`)."""
    rng = np.random.default_rng(seed)
    for s, speaker in enumerate(speakers):
        for kind in classes:
            for take in range(takes):
                clip = sound(kind, rng.uniform(0.2, 0.5), 8000, rng, 1 + 0.04 * s)
                write_wav(root / kind / f"{speaker}_{take}.wav", clip, 8000)
    return root
