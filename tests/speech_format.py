"""Tiny transcribed utterances the speech tests write for themselves: a few "words", each a distinct sound
(tests/wav_format.py), joined with pauses into utterances of one to three words, listed in JSON-lines
manifests as speech toolkits list them."""

import json
from pathlib import Path

import numpy as np

from tests.wav_format import sound, write_wav

# Each word a sound no other word makes, so a small net tells them apart in a few steps
WORDS = {"up": "tone", "go": "chirp", "hi": "noise"}
RATE = 8000


def utterance(words: list[str], rng: np.random.Generator) -> np.ndarray:
    """The words' sounds (each about 0.3 s, the sound inside it at a random place) with pauses between."""
    parts = []
    for i, word in enumerate(words):
        if i:
            parts.append(0.002 * rng.standard_normal(round(rng.uniform(0.03, 0.1) * RATE)))
        parts.append(sound(WORDS[word], rng.uniform(0.25, 0.35), RATE, rng))
    return np.concatenate(parts).astype(np.float32)


def write_manifest(
    folder: Path, split: str, count: int, seed: int = 0, speakers: tuple[str, ...] = ("ann", "bob")
) -> Path:
    """`count` utterances under folder/<split>/ and their manifest folder/<split>.json (paths relative to it)."""
    rng = np.random.default_rng([seed, len(split)])
    names = list(WORDS)
    lines = []
    for i in range(count):
        words = [names[k] for k in rng.integers(len(names), size=rng.integers(1, 4))]
        clip = utterance(words, rng)
        path = write_wav(folder / split / f"{i:03d}.wav", clip, RATE)
        entry = {
            "audio_filepath": str(path.relative_to(folder)),
            "text": " ".join(words),
            "duration": round(len(clip) / RATE, 3),
            "speaker": speakers[i % len(speakers)],
        }
        lines.append(json.dumps(entry))
    manifest = folder / f"{split}.json"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def write_manifests(folder: Path, train: int = 48, val: int = 12, test: int = 12) -> dict[str, Path]:
    return {split: write_manifest(folder, split, n) for split, n in (("train", train), ("val", val), ("test", test))}
