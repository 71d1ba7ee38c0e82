"""The progress bar's rate is the average over the bar, as the training log's, not a short window."""

from __future__ import annotations

import io
import re

import pytest
import tqdm.std

from centerpoint_suite import progress
from centerpoint_suite.progress import Progress


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def printed_rates(text: str) -> list[float]:
    """Every rate the bar printed, in items per second ("2.50it/s" or "4.00s/it")."""
    rates = []
    for value, unit in re.findall(r"([\d.]+)(it/s|s/it)", text):
        rates.append(float(value) if unit == "it/s" else 1 / float(value))
    return rates


@pytest.mark.parametrize("tty", [True, False])
def test_rate_of_bursty_epochs_is_their_average(monkeypatch, tty):
    # batches as the training loop sees them: the first of an epoch waits 5 s for the workers,
    # the next three were prefetched meanwhile and come 0.3 s apart (the step time)
    clock = FakeClock()
    monkeypatch.setattr(tqdm.std, "time", clock)
    stream = Terminal() if tty else io.StringIO()
    monkeypatch.setattr(progress.sys, "stderr", stream)
    gaps = [5.0, 0.3, 0.3, 0.3] * 3

    def batches():
        for i, gap in enumerate(gaps):
            clock.now += gap
            yield i

    bar = Progress(batches(), "epoch 1/1")
    assert list(bar) == list(range(len(gaps)))
    average = len(gaps) / sum(gaps)  # 0.68 it/s, what the log reports
    assert bar.rate == pytest.approx(average)
    rates = printed_rates(stream.getvalue())
    assert rates, stream.getvalue()
    # never above the best running average (0.68 it/s after each burst); an average over the
    # last few batches printed 2-3 it/s after the prefetched ones
    assert max(rates) <= average * 1.02, stream.getvalue()
    assert rates[-1] == pytest.approx(average, rel=0.02)


def test_log_lines_show_the_count_of_their_time(monkeypatch):
    """tqdm's monitor thread redraws a bar that has not printed for 10 s; for an iterator bar the
    redraw showed the count of the previous line beside the current time, i.e. a rate too low."""
    import threading
    import time

    import tqdm._monitor

    clock = FakeClock()
    monkeypatch.setattr(tqdm.std, "time", clock)
    monkeypatch.setattr(tqdm._monitor, "time", clock)
    if tqdm.std.tqdm.monitor is not None:  # a monitor of an earlier bar, with the real clock
        tqdm.std.tqdm.monitor.exit()
        tqdm.std.tqdm.monitor = None
    monkeypatch.setattr(tqdm.std.tqdm, "monitor_interval", 0.01)
    stream = io.StringIO()
    monkeypatch.setattr(progress.sys, "stderr", stream)
    woke = threading.Event()

    def items():
        for i in range(12):
            clock.now += 12.0  # one item every 12 s: the monitor's 10 s have passed at each
            woke.clear()
            deadline = time.monotonic() + 1.0
            while tqdm.std.tqdm.monitor is not None and time.monotonic() < deadline and not woke.is_set():
                if tqdm.std.tqdm.monitor.woken >= clock.now:
                    woke.set()  # the monitor has looked at the bar at this time
                time.sleep(0.005)
            yield i

    try:
        assert list(Progress(items(), "epoch 1/1")) == list(range(12))
    finally:
        if tqdm.std.tqdm.monitor is not None:
            tqdm.std.tqdm.monitor.exit()
            tqdm.std.tqdm.monitor = None
    lines = [line for line in re.split(r"[\r\n]", stream.getvalue()) if "it/s" in line or "s/it" in line]
    assert lines
    for line in lines:
        n, minutes, seconds = map(int, re.search(r"(\d+)it \[(\d+):(\d+)", line).groups())  # "3it [00:36, ..."
        if n:
            assert (minutes * 60 + seconds) / n == pytest.approx(12.0, abs=1.0), line


@pytest.mark.parametrize("last_gap", [31.0, 1.0])
def test_a_log_gets_the_final_line_once(monkeypatch, last_gap):
    # 4 items; the last comes 31 s after the previous line (so the bar prints it) or 1 s after
    clock = FakeClock()
    monkeypatch.setattr(tqdm.std, "time", clock)
    stream = io.StringIO()
    monkeypatch.setattr(progress.sys, "stderr", stream)

    def items():
        for i, gap in enumerate([1.0, 1.0, 1.0, last_gap]):
            clock.now += gap
            yield i

    bar = Progress(items(), "epoch 1/1", total=4)
    for _ in bar:
        bar.set_postfix("loss 0.5")
    lines = [line for line in re.split(r"[\r\n]", stream.getvalue()) if line]
    finals = [line for line in lines if "4/4" in line]
    assert len(finals) == 1, stream.getvalue()
    assert "loss 0.5" in finals[0] and stream.getvalue().endswith("\n")
