"""A small synthetic copy of Speech Commands (the archive's layout and split lists), written by the tests."""

from pathlib import Path

import numpy as np

from tests.wav_format import SOUNDS, sound, write_wav


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
