"""The characters a transcript is written in, each a token, with CTC's blank as token 0."""

from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

BLANK = "<blank>"  # token 0: "no new character in this frame"; never in a transcript


def normalize_text(text: str, lowercase: bool = False) -> str:
    """A transcript as it is scored: words separated by single spaces, none leading or trailing."""
    text = " ".join(text.split())
    return text.lower() if lowercase else text


class Vocabulary:
    """Tokens: the blank, then one character each, in code-point order.

    Args:
        tokens: `BLANK` first, then distinct single characters.
    """

    def __init__(self, tokens: Sequence[str]):
        tokens = tuple(tokens)
        if not tokens or tokens[0] != BLANK:
            raise ValueError(f"a vocabulary starts with {BLANK!r}, got {tokens[:3]}")
        if len(set(tokens)) != len(tokens) or any(len(t) != 1 for t in tokens[1:]):
            raise ValueError(f"a vocabulary's tokens after {BLANK!r} are distinct single characters, got {tokens}")
        self.tokens = tokens
        self.index = {token: i for i, token in enumerate(tokens)}

    @classmethod
    def of(cls, characters: Iterable[str]) -> "Vocabulary":
        """The vocabulary of every character in `characters` (transcripts, or a string of the characters)."""
        return cls((BLANK, *sorted({c for text in characters for c in text})))

    def __len__(self) -> int:
        return len(self.tokens)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.tokens == other.tokens

    def unknown(self, text: str) -> list[str]:
        """The characters of `text` that are not tokens, in order of first appearance."""
        return list(dict.fromkeys(c for c in text if c not in self.index))

    def encode(self, text: str) -> Tensor:
        """`text` as token ids (L,) int64, 1 and up; every character must be a token (see `unknown`)."""
        return torch.tensor([self.index[c] for c in text], dtype=torch.int64)

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.tokens[i] for i in ids)

    def describe(self) -> str:
        """The characters for a message, e.g. "' ', 'a', 'b'"."""
        return ", ".join(repr(t) for t in self.tokens[1:])
