"""Grouping many small things (files, chunks) into bounded batches, for backup and restore."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


def pack(
    items: Iterable[T], *, size: Callable[[T], int], max_items: int, max_bytes: int
) -> list[list[T]]:
    """Consecutive groups, in order, of at most ``max_items`` items whose ``size`` adds up to at
    most ``max_bytes``; an item larger than ``max_bytes`` makes a group of its own."""
    groups: list[list[T]] = []
    current: list[T] = []
    total = 0
    for item in items:
        n = size(item)
        if current and (len(current) >= max_items or total + n > max_bytes):
            groups.append(current)
            current, total = [], 0
        current.append(item)
        total += n
    if current:
        groups.append(current)
    return groups
