"""``centerpoint bench``: every data stage's baseline gives our outputs (on real COCO-mini data),
the agreement checks can fail, and the command prints the table. Tiny repeats, no time asserts."""

from __future__ import annotations

import copy
import time

import numpy as np
import pytest
from click.testing import CliRunner

from centerpoint_suite.bench import (
    decode_stages,
    format_row,
    interleaved_ms,
    machine_line,
    prediction_stage,
    run_bench,
    run_stage,
    sample_stages,
    target_rows,
)


def _check_row(row, stage):
    name, ours, base = row
    assert name == stage.name and ours > 0 and base > 0
    assert format_row(row).startswith(name) and format_row(row).endswith("x")


def test_training_sample_baselines_agree_with_ours(coco_mini):
    for stage in sample_stages(coco_mini, count=3):
        ours, base = stage.ours(), stage.baseline()
        assert len(ours) == 3 and stage.agree(ours, base)
        broken = copy.deepcopy(base)
        key = "joint_heatmap" if "joint_heatmap" in broken[0][1] else "heatmap"
        broken[1][1][key][0, 5, 5] += 0.01
        assert not stage.agree(ours, broken)
        _check_row(run_stage(stage, repeat=1), stage)


def test_decode_baselines_agree_with_ours():
    for stage in decode_stages(batches=(1, 2)):
        ours, base = stage.ours(), stage.baseline()
        assert len(ours) == len(base) and len(ours[0]) == 100 and stage.agree(ours, base)
        broken = copy.deepcopy(base)
        cls = next(j for j, a in broken[-1].items() if len(a))
        broken[-1][cls][0, 0] += 0.5  # one box corner moved half a pixel
        assert not stage.agree(ours, broken)
        _check_row(run_stage(stage, repeat=1), stage)


def test_whole_prediction_baseline_agrees_with_ours(coco_mini):
    stage = prediction_stage(coco_mini, arch="small")
    ours, base = stage.ours(), stage.baseline()
    assert len(ours) == 100 and stage.agree(ours, base)
    assert not stage.agree(ours.select(np.arange(1, 100)), base)  # best detection missing
    _check_row(run_stage(stage, repeat=1), stage)


def test_target_rows_and_disagreement_is_an_error():
    rows = target_rows(repeat=1)
    assert [r[0] for r in rows] == [f"box heatmap targets, {n} objects (80x128x128)" for n in (7, 50)]
    stage = decode_stages(batches=(1,))[0]
    stage.agree = lambda a, b: False
    with pytest.raises(RuntimeError, match="different outputs"):
        run_stage(stage, repeat=1)
    assert run_stage(stage, repeat=1, strict=False)[0].endswith("[OUTPUTS DIFFER]")  # the CLI's table goes on


def test_run_bench_data_stages_print_the_table(coco_mini):
    lines = []
    rows = run_bench(arch="small", repeat=1, echo=lines.append, stages="data", data=coco_mini, min_seconds=0.0)
    assert lines[0].startswith("machine: ") and lines[0].endswith("interleaved medians of 1")
    names = [r[0] for r in rows]
    assert names[:2] == [
        "training sample, 2D boxes, 512 (warp + targets + normalise)",
        "training sample, pose, 512 (warp + targets + normalise)",
    ]
    assert "whole prediction on a real photo, small (read, pre, forward, decode, post)" in names
    assert all(r[2] is not None and r[1] > 0 and "DIFFER" not in r[0] for r in rows)
    assert not any(n.startswith("forward") for n in names)  # networks not asked for
    with pytest.raises(ValueError, match="unknown bench stages"):
        run_bench(stages="bogus", echo=lines.append)


def test_cli_bench_options():
    from centerpoint_suite.cli.main import main

    res = CliRunner().invoke(main, ["bench", "--repeat", "0"])
    assert res.exit_code == 1 and "--repeat 0" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(main, ["bench", "--min-seconds", "-1"])
    assert res.exit_code == 1 and "--min-seconds -1" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(main, ["bench", "--stages", "nope"])
    assert res.exit_code == 2 and "nope" in res.output
    res = CliRunner().invoke(main, ["bench", "--data", "/no/such/folder"])
    assert res.exit_code == 1 and "/no/such/folder" in res.output
    res = CliRunner().invoke(main, ["bench", "--networks", "res18,nonet"])
    assert res.exit_code == 1 and "unknown network 'nonet'" in res.output and "Traceback" not in res.output


def test_run_bench_network_stages_print_their_rows():
    lines = []
    rows = run_bench(repeat=1, echo=lines.append, stages="networks", networks=("small",))
    assert [r[0] for r in rows] and all(r[0].startswith("forward small") for r in rows)
    table = [line for line in lines if line.startswith("forward small")]
    assert len(table) == len(rows)  # each row printed, not only returned


def test_cheap_stages_run_more_rounds_until_their_time_is_up():
    calls = {"ours": 0, "baseline": 0}

    def timed(side: str, seconds: float):
        def fn():
            calls[side] += 1
            time.sleep(seconds)

        return fn

    interleaved_ms(timed("ours", 0.0), timed("baseline", 0.002), repeat=3)
    assert calls == {"ours": 4, "baseline": 4}  # one warm-up each, then exactly the 3 rounds
    calls.update(ours=0, baseline=0)
    interleaved_ms(timed("ours", 0.0), timed("baseline", 0.002), repeat=3, min_seconds=0.1)
    # more rounds than asked for, and no more than 0.1 s of rounds of at least 2 ms (+ the warm-up)
    assert calls["ours"] == calls["baseline"] and 4 < calls["ours"] <= 51
    assert "(data stages: at least 3 s each)" in machine_line(5, 3.0) and machine_line(5).endswith("medians of 5")
    assert "(LLVM " in machine_line(5) and ", torch " in machine_line(5)  # the instruction sets the numbers rest on
