"""ONNX export round trips: onnxruntime raw maps and in-graph decoding against PyTorch.

One dynamic export per (task, network) through ``centerpoint export --checkpoint``, fixed
random weights, two input sizes each; the
self-describing metadata; ``centerpoint predict --onnx`` against ``--weights`` for a file
exported from an original-format checkpoint.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

pytest.importorskip("onnx")  # a guard for users without the [onnx] extra; CI installs it
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from centerpoint_suite.checkpoint import save_checkpoint  # noqa: E402
from centerpoint_suite.cli.main import main  # noqa: E402
from centerpoint_suite.config import default_config  # noqa: E402
from centerpoint_suite.data import collate, prepare_eval  # noqa: E402
from centerpoint_suite.engine import Predictor, build_model  # noqa: E402
from centerpoint_suite.errors import UserError  # noqa: E402
from centerpoint_suite.export import export_onnx, read_metadata  # noqa: E402
from centerpoint_suite.models.base import module_key  # noqa: E402
from centerpoint_suite.onnx_runtime import OnnxPredictor, experiment_from_metadata  # noqa: E402
from centerpoint_suite.transforms import STRIDE, EvalResize, get_normalization, normalize_batch  # noqa: E402
from centerpoint_suite.types import Predictions, Sample  # noqa: E402
from centerpoint_suite.zoo import original_experiment  # noqa: E402

# (task, network) -> two input sizes (h, w); hourglass needs multiples of 128. res18 boxes2d is
# covered by the original-checkpoint round trip.
CASES = {
    ("boxes2d", "resdcn18"): ((128, 128), (160, 224)),
    ("boxes2d", "dla34"): ((128, 128), (160, 224)),
    ("pose2d", "res18"): ((128, 128), (160, 224)),
    ("boxes2d", "hourglass104"): ((128, 128), (256, 128)),
    ("mono3d", "res18"): ((128, 128), (160, 224)),
    ("boxes2d+pose2d", "small"): ((128, 128), (160, 224)),
}
IDS = [f"{t}-{a}" for t, a in CASES]
# exports are the slow part (tracing): run them as `centerpoint export` in two background
# lanes, longest first, while the tests compare finished files
LAUNCH_ORDER = [("boxes2d", "hourglass104"), ("boxes2d", "dla34"), ("boxes2d", "resdcn18"), ("pose2d", "res18"),
                ("mono3d", "res18"), ("boxes2d+pose2d", "small"), "original"]  # fmt: skip
THRESHOLD = 0.1
ORIGINAL = ["--arch", "res_18", "--task", "boxes2d"]


def _experiment(task_name: str, arch: str, input_hw: tuple[int, int]):
    exp = default_config(task_name)
    if task_name == "boxes2d":
        exp = replace(exp, task=exp.task.with_classes(("a", "b", "c")))
    elif task_name == "boxes2d+pose2d":
        exp = replace(exp, task=exp.task.with_task("boxes2d", exp.task.task("boxes2d").with_classes(("a", "b", "c"))))
    return replace(exp, model=replace(exp.model, arch=arch), data=replace(exp.data, test_input_hw=input_hw))


def _spread_heatmaps(model: torch.nn.Module, exp) -> None:
    """Rescale the heatmap heads' last layer so random weights give logits ~ N(-2, 2) on random
    images: well separated scores, many far above and below THRESHOLD, no ties, none saturated
    (as built, every score is sigmoid(-2.19 +- 0.01), all tied near 0.1)."""
    images = torch.from_numpy(_images(CASES[(exp.task.name, exp.model.arch)][0]))
    with torch.no_grad():
        out = model(normalize_batch(images, get_normalization(exp.data.normalization)))
    params = dict(model.named_parameters())
    last = len(model.heads) - 1  # the stack whose maps the model outputs
    for head in exp.task.heatmap_heads():
        key = module_key(head)
        weight, bias = params.get(f"heads.{last}.{key}.2.weight"), params.get(f"heads.{last}.{key}.2.bias")
        if weight is not None:
            wx = out[head] - bias.view(1, -1, 1, 1)  # the last layer's W x, before its bias
            scale = 2.0 / wx.std()
            weight.data.mul_(scale)
            bias.data.fill_(-2.0).sub_(scale * wx.mean())


def _golden():
    path = Path(__file__).parents[1] / "models" / "golden.py"
    spec = importlib.util.spec_from_file_location("cp_golden_onnx", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cli_export(args: list, out: Path) -> Path:
    cmd = [sys.executable, "-m", "centerpoint_suite.cli.main", "export", *map(str, args), "--out", str(out)]
    res = subprocess.run(cmd + ["--with-decode", "--dynamic"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def exports(tmp_path_factory, request):
    """Every dynamic export of this file (with decode), started at once: {case: Future[path]}, the
    PyTorch models {case: (exp, model)} (fixed random weights) and the original checkpoint."""
    tmp = tmp_path_factory.mktemp("onnx")
    jobs, models = {}, {}
    for case in LAUNCH_ORDER:
        if case == "original":
            try:
                reference_dir = request.getfixturevalue("reference_dir")
            except pytest.skip.Exception:
                continue
            state = _golden().golden_state_dict(reference_dir / "res18_boxes2d.keys.json")
            ckpt = tmp / "ctdet_coco_res18.pth"
            torch.save({"epoch": 140, "state_dict": {f"module.{k}": v for k, v in state.items()}}, ckpt)
            models[case] = ckpt
            jobs[case] = (["--weights", ckpt, *ORIGINAL], tmp / "original_res18.onnx")
            continue
        task_name, arch = case
        exp = _experiment(task_name, arch, CASES[case][0])
        torch.manual_seed(0)
        model = build_model(exp).eval()
        _spread_heatmaps(model, exp)
        save_checkpoint(tmp / f"{task_name}_{arch}.pth", exp, model)
        models[case] = (exp, model)
        jobs[case] = (["--checkpoint", tmp / f"{task_name}_{arch}.pth"], tmp / f"{task_name}_{arch}.onnx")
    pool = ThreadPoolExecutor(max_workers=2)
    futures = {case: pool.submit(_cli_export, *job) for case, job in jobs.items()}
    yield futures, models
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="module")
def exported(exports):
    """(task, arch) -> (exp, model, OnnxPredictor) once its export has finished."""
    futures, models = exports
    cache: dict = {}

    def get(case):
        if case not in cache:
            cache[case] = (*models[case], OnnxPredictor(futures[case].result()))
        return cache[case]

    return get


def _images(hw: tuple[int, int], n: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *hw, 3), dtype=np.uint8)


def _batch(task, hw: tuple[int, int], n: int = 2):
    """``n`` (<= 2) random images of other sizes letterboxed to ``hw`` (real inverse affines; a P2 each)."""
    rng = np.random.default_rng(1)
    samples = []
    for i, (h, w) in enumerate([(hw[0] + 37, hw[1] * 2 - 10), (hw[0] * 2, hw[1] - 20)][:n]):
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        calib = task.calibration((h, w))
        samples.append(
            Sample(image, i, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, bool), calib=calib)
        )
    return collate([prepare_eval(s, task, EvalResize(hw)) for s in samples])


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


def _assert_detections_in(a: Predictions, b: Predictions, score_tol: float, atol: float = 2e-2) -> int:
    """Every detection of ``a`` scoring over THRESHOLD (and over ``b``'s lowest score, so it
    cannot have dropped out of b's top-K), by a margin of ``score_tol``, is in ``b``: same class,
    score within ``score_tol``, same box and task extras. Returns how many were checked."""
    checked = 0
    floor = max(THRESHOLD, float(b.scores.min())) + score_tol
    for i in np.flatnonzero(a.scores > floor):
        cand = np.flatnonzero((b.classes == a.classes[i]) & (np.abs(b.scores - a.scores[i]) <= score_tol))
        assert len(cand), f"detection {i} (score {a.scores[i]:.4f}) has no twin"
        dist = np.abs(b.boxes[cand] - a.boxes[i]).max(1)
        for key, value in a.extras.items():  # boxes clipped to the image may coincide: extras decide
            diff = np.abs(b.extras[key][cand] - value[i]).reshape(len(cand), -1)
            dist = dist + np.nan_to_num(diff, nan=0.0).max(1)
        j = cand[dist.argmin()]
        np.testing.assert_allclose(b.boxes[j], a.boxes[i], atol=atol)
        for key, value in a.extras.items():
            np.testing.assert_allclose(b.extras[key][j], value[i], rtol=1e-3, atol=atol, equal_nan=True, err_msg=key)
        checked += 1
    return checked


@pytest.mark.parametrize("case", list(CASES), ids=IDS)
def test_raw_maps_equal_pytorch_at_two_sizes(exported, case):
    exp, model, onnx = exported(case)
    norm = get_normalization(exp.data.normalization)
    for hw in CASES[case]:
        images = _images(hw)
        with torch.no_grad():
            ref = model(normalize_batch(torch.from_numpy(images), norm))
        got = onnx.raw_maps(images)
        assert set(got) == set(ref)
        for name, value in ref.items():
            assert got[name].shape == value.shape, name
            assert _relative(got[name].numpy(), value.numpy()) < 1e-4, (hw, name)


@pytest.mark.parametrize("case", list(CASES), ids=IDS)
def test_decoded_detections_equal_pytorch(exported, case):
    """The graph's det_* outputs (through the task's to_predictions) against the PyTorch decoder,
    on the graph's own raw maps (the decoders alone: tight) and end to end (network + decoder)."""
    exp, model, onnx = exported(case)
    norm = get_normalization(exp.data.normalization)
    torch_predictor = Predictor(model, exp.task, norm, torch.device("cpu"), exp.test.k, channels_last=False)
    checked = 0
    for hw in CASES[case]:
        batch = _batch(exp.task, hw)
        out = onnx.run(batch.images.numpy())
        in_graph = exp.task.to_predictions({n[4:]: out[n] for n in onnx.det_names}, batch.meta, scale=float(STRIDE))
        same_maps = exp.task.decode({h: torch.from_numpy(out[h]) for h in onnx.heads}, batch.meta, exp.test.k)
        end_to_end = torch_predictor.predict_batch(batch)
        for got, runner, ref, ref2 in zip(in_graph, onnx.predict_batch(batch), same_maps, end_to_end):
            np.testing.assert_array_equal(runner.boxes, got.boxes)  # OnnxPredictor = det_* + to_predictions
            per_image = exp.test.k * (len(exp.task.tasks) if "+" in exp.task.name else 1)  # composites: k per task
            assert len(got) == len(ref) == per_image and set(got.extras) == set(ref.extras)
            checked += _assert_detections_in(ref, got, 1e-5) + _assert_detections_in(got, ref, 1e-5)
            _assert_detections_in(ref2, got, 1e-3)
            _assert_detections_in(got, ref2, 1e-3)
    assert checked >= 8  # the comparison saw real detections


def test_metadata_describes_the_file(exported):
    exp, _, onnx = exported(("pose2d", "res18"))
    meta = read_metadata(onnx.path)
    assert meta == onnx.meta
    assert experiment_from_metadata(meta).task == exp.task
    assert meta["classes"] == ["person"] and meta["stride"] == 4 and meta["k"] == exp.test.k
    norm = get_normalization(exp.data.normalization)
    assert meta["normalization"]["mean"] == list(norm.mean) and meta["normalization"]["order"] == norm.order
    assert meta["heads"] == exp.task.heads() and meta["input_hw"] == [128, 128] and meta["with_decode"]
    session_outputs = [o.name for o in onnx.session.get_outputs()]
    assert [o["name"] for o in meta["outputs"]] == session_outputs
    images = _images((160, 224), n=3)
    out = onnx.run(images)
    for spec in meta["outputs"]:
        sizes = {"batch": 3, "height/4": 40, "width/4": 56}
        assert list(out[spec["name"]].shape) == [sizes.get(d, d) for d in spec["shape"]], spec["name"]
    keypoints = next(o for o in meta["outputs"] if o["name"] == "det_keypoints")
    assert keypoints["frame"] == "network-input pixels" and keypoints["shape"] == ["batch", exp.test.k, 17, 3]


def test_static_export_checks_its_input(tmp_path):
    exp = _experiment("boxes2d", "small", (64, 96))
    model = build_model(exp).eval()
    path = export_onnx(exp, model, tmp_path / "small.onnx", k=20)  # raw maps only, one 64x96 image
    onnx = OnnxPredictor(path)
    assert not onnx.meta["dynamic"] and not onnx.det_names and onnx.meta["test_mode"] == "fixed"
    maps = onnx.raw_maps(_images((64, 96), n=1))
    assert maps["heatmap"].shape == (1, 3, 16, 24)
    with pytest.raises(UserError, match="export with --dynamic"):
        onnx.run(_images((96, 96), n=1))
    batch = _batch(exp.task, (64, 96), n=1)
    assert len(onnx.predict_batch(batch)[0]) == 20  # decoded in Python with the task's decode


def _detections(folder: Path) -> list[dict]:
    return json.loads((folder / "detections.json").read_text())["images"][0]["detections"]


def test_original_checkpoint_export_predicts_as_weights(exports, tmp_path):
    futures, models = exports
    if "original" not in futures:
        pytest.skip("needs the reference key list of ../shared/reference")
    model_path, ckpt = futures["original"].result(), models["original"]
    meta = read_metadata(model_path)
    assert meta["normalization"]["name"] == "original_coco" and meta["test_mode"] == "keep_res"
    assert len(meta["classes"]) == 80 and meta["classes"][0] == "person"
    # raw maps at two sizes (the res18 network)
    exp = original_experiment("res_18", "boxes2d", ckpt)
    model = build_model(exp).eval()
    onnx = OnnxPredictor(model_path)
    for hw in ((128, 128), (160, 224)):
        images = _images(hw)
        with torch.no_grad():
            ref = model(normalize_batch(torch.from_numpy(images), get_normalization("original_coco")))
        got = onnx.raw_maps(images)
        for name, value in ref.items():
            assert _relative(got[name].numpy(), value.numpy()) < 1e-4, (hw, name)
    # the same detections from `predict --onnx` (keep_res letterbox) as from `predict --weights`
    import cv2

    image = tmp_path / "street.png"
    noise = np.random.default_rng(3).integers(0, 256, (150, 230, 3), dtype=np.uint8)
    cv2.imwrite(str(image), cv2.GaussianBlur(noise, (0, 0), 3))
    args = [str(image), "--threshold", "0.05"]
    runner = CliRunner()
    res = runner.invoke(main, ["predict", "--onnx", str(model_path), "--out", str(tmp_path / "a"), *args])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["predict", "--weights", str(ckpt), *ORIGINAL, "--out", str(tmp_path / "b"), *args])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "a" / "street_pred.jpg").is_file()
    ours, ref = _detections(tmp_path / "a"), _detections(tmp_path / "b")
    ref = [d for d in ref if d["score"] > THRESHOLD + 1e-4]
    assert ref and len(ref) <= len([d for d in ours if d["score"] > THRESHOLD])
    for r in ref:
        twin = min(ours, key=lambda d: np.abs(np.subtract(d["box"], r["box"])).max() + abs(d["score"] - r["score"]))
        assert twin["class"] == r["class"] and abs(twin["score"] - r["score"]) <= 2e-4
        np.testing.assert_allclose(twin["box"], r["box"], atol=0.02)


def test_predict_onnx_errors_name_the_file(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    runner = CliRunner()
    missing = tmp_path / "missing.onnx"
    res = runner.invoke(main, ["predict", "--onnx", str(missing), "x.jpg", "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and "missing.onnx" in res.output and "Traceback" not in res.output
    plain = tmp_path / "plain.onnx"
    x = helper.make_tensor_value_info("image", TensorProto.UINT8, [1, 4, 4, 3])
    graph = helper.make_graph([helper.make_node("Identity", ["image"], ["y"])], "g", [x], [x])
    graph.output[0].name = "y"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)]), str(plain))
    res = runner.invoke(main, ["predict", "--onnx", str(plain), "x.jpg", "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and "plain.onnx" in res.output and "no centerpoint_suite metadata" in res.output
    res = runner.invoke(main, ["predict", "--onnx", str(plain), "--weights", "w.pth", "x.jpg", "--out", "o"])
    assert res.exit_code == 1 and "--weights" in res.output
