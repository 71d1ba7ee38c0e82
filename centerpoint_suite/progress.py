"""Progress bars on stderr (tqdm): redrawn in place on a terminal; in logs (CI, files) a line at
most every 30 seconds. The rate shown is tqdm's smoothed items per second of the wrapped loop."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


class Progress(Iterable[T]):
    """``for item in Progress(items, "desc")``; ``set_postfix("loss 0.1")`` adds text to the bar."""

    def __init__(self, items: Iterable[T], desc: str, total: int | None = None, enabled: bool = True) -> None:
        tty = sys.stderr.isatty()
        self._bar = tqdm(
            items,
            desc=desc,
            total=total,
            disable=not enabled,
            file=sys.stderr,
            mininterval=0.2 if tty else 30.0,
            dynamic_ncols=tty,
            leave=True,
        )

    def set_postfix(self, text: str) -> None:
        self._bar.set_postfix_str(text, refresh=False)

    @property
    def rate(self) -> float:
        """Items per second so far (0 before the first item)."""
        elapsed = self._bar.format_dict.get("elapsed", 0.0)
        return self._bar.n / elapsed if elapsed else 0.0

    def __iter__(self) -> Iterator[T]:
        try:
            yield from self._bar
        finally:
            self._bar.close()
