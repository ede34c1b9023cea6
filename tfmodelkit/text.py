"""Wording shared by every layer that puts numbers into sentences."""

from __future__ import annotations


def plural(n: int, word: str, plural_word: str | None = None) -> str:
    """``n`` and the noun agreeing with it: ``1 tensor``, ``0 tensors``, ``2 tensors``.

    The plural is ``word + "s"`` unless ``plural_word`` gives it (``1 index``, ``3 indices``).
    """
    return f"{n} {word if n == 1 else (plural_word or word + 's')}"
