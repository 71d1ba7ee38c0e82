"""Progress bars on stderr (tqdm): redrawn in place on a terminal; in logs (CI, files) a line at
most every 30 seconds.

The rate shown is the average over the bar so far (items / elapsed seconds, tqdm's
``smoothing=0``), the rate the training log reports (``train/iterations_per_s``). tqdm's default
exponential average over the last few items read up to 5x too fast in training: the first batch
of an epoch waits for the data workers while they fill their prefetch queue, then the prefetched
batches arrive back to back, and with a few steps per epoch the average only sees those.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


class _Bar(tqdm):
    """tqdm whose close does not print a final line that the bar has just printed: in a log, a
    bar whose last item came after the 30 s interval printed it, and tqdm printed it again."""

    def close(self) -> None:
        shown = getattr(self, "last_print_n", None) == self.n
        if shown and not self.disable and not self.fp.isatty():
            self.display = lambda *args, **kwargs: True  # close still ends the line
        super().close()


class Progress(Iterable[T]):
    """``for item in Progress(items, "desc")``; ``set_postfix("loss 0.1")`` adds text to the bar."""

    def __init__(self, items: Iterable[T], desc: str, total: int | None = None, enabled: bool = True) -> None:
        tty = sys.stderr.isatty()
        self._bar = _Bar(
            items,
            desc=desc,
            total=total,
            disable=not enabled,
            file=sys.stderr,
            mininterval=0.2 if tty else 30.0,
            dynamic_ncols=tty,
            leave=True,
            smoothing=0,
            # the clock is read every item: tqdm's monitor thread then never forces a redraw, which
            # for an iterator bar prints the count of the last redraw beside the current time (a
            # log line every 30 s showed "74/200 [00:46, 1.59it/s]" at 2.45 it/s)
            miniters=1,
        )

    def set_postfix(self, text: str) -> None:
        self._bar.set_postfix_str(text, refresh=False)

    @property
    def rate(self) -> float:
        """Items per second so far (0 before the first item)."""
        elapsed = self._bar.format_dict.get("elapsed", 0.0)
        return self._bar.n / elapsed if elapsed else 0.0

    @property
    def shown_rate(self) -> float:
        """The items per second the bar prints now (its own estimate; 0 before the first item)."""
        d = self._bar.format_dict
        return d["rate"] if d.get("rate") else self.rate

    def __iter__(self) -> Iterator[T]:
        try:
            yield from self._bar
        finally:
            self._bar.close()
