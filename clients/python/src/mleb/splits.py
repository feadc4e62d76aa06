"""Split names. MLE-bench's file names and the names people use differ, so both are accepted."""

from __future__ import annotations

# Canonical name -> other accepted names. "all" is MLE-bench's split75 (the 75 benchmark
# competitions); "lite" is what the MLE-bench paper calls the low-complexity split.
SPLIT_ALIASES: dict[str, tuple[str, ...]] = {
    "low": ("lite",),
    "medium": (),
    "high": (),
    "all": ("split75",),
    "dev": (),
    "spaceship-titanic": (),
    "systemcard": (),
}

_CANONICAL = {alias: name for name, aliases in SPLIT_ALIASES.items() for alias in aliases}


def canonical_split(name: str) -> str:
    """Maps an alias (lite, split75) to its canonical split name; other names pass through."""
    key = name.strip().lower()
    return _CANONICAL.get(key, key)


def split_sort_key(name: str) -> tuple[int, str]:
    """Well-known splits first, in their usual order, then the rest alphabetically."""
    order = list(SPLIT_ALIASES)
    return (order.index(name), "") if name in SPLIT_ALIASES else (len(order), name)
