"""A small progress bar on stderr (no dependency): redraws in place on a terminal, prints a
line every ~10% otherwise (logs, CI)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


class Progress(Iterable[T]):
    def __init__(self, items: Iterable[T], desc: str, total: int | None = None, enabled: bool = True) -> None:
        self.items, self.desc, self.enabled = items, desc, enabled
        try:
            self.total = total if total is not None else len(items)  # type: ignore[arg-type]
        except TypeError:
            self.total = None
        self.postfix = ""
        self.rate = 0.0

    def set_postfix(self, text: str) -> None:
        self.postfix = text

    def __iter__(self) -> Iterator[T]:
        tty = sys.stderr.isatty()
        start = last = time.perf_counter()
        next_pct = 0.1
        n = 0
        for n, item in enumerate(self.items, 1):
            yield item
            now = time.perf_counter()
            self.rate = n / max(now - start, 1e-9)
            if not self.enabled:
                continue
            frac = n / self.total if self.total else None
            if tty and now - last > 0.2:
                last = now
                self._draw(n, frac, now - start, end="\r")
            elif not tty and frac is not None and frac >= next_pct:
                next_pct += 0.1
                self._draw(n, frac, now - start, end="\n")
        if self.enabled and tty and n:
            self._draw(n, 1.0 if self.total else None, time.perf_counter() - start, end="\n")

    def _draw(self, n: int, frac: float | None, elapsed: float, end: str) -> None:
        if frac is not None:
            bar = "#" * int(20 * frac) + "." * (20 - int(20 * frac))
            eta = elapsed / max(frac, 1e-9) - elapsed
            text = f"{self.desc} [{bar}] {n}/{self.total} {self.rate:.1f} it/s eta {eta:.0f}s {self.postfix}"
        else:
            text = f"{self.desc} {n} {self.rate:.1f} it/s {self.postfix}"
        sys.stderr.write(text.ljust(100) + end)
        sys.stderr.flush()
