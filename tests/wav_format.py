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


def write_speech_commands(root: Path, words: tuple[str, ...], per_word: int = 4, sample_rate: int = 16000) -> Path:
    """The archive's layout: <word>/<speaker>_nohash_<i>.wav for every word, the two split lists
    (take 0 of each word validates, take 1 tests) and two background-noise recordings."""
    rng = np.random.default_rng(0)
    val, test = [], []
    for w, word in enumerate(words):
        for i in range(per_word):
            name = f"{word}/{w:04x}{i:04x}_nohash_0.wav"
            write_wav(root / name, sound(SOUNDS[w % len(SOUNDS)], 0.25, sample_rate, rng), sample_rate)
            (val if i == 0 else test if i == 1 else []).append(name)
    (root / "validation_list.txt").write_text("\n".join(val) + "\n")
    (root / "testing_list.txt").write_text("\n".join(test) + "\n")
    for name in ("white_noise", "pink_noise"):
        write_wav(root / "_background_noise_" / f"{name}.wav", 0.1 * rng.standard_normal(3 * sample_rate), sample_rate)
    return root
