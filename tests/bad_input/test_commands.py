"""Commands and options: unknown task / arch / config key, config file errors with their line,
train/val class mismatch, videos and cameras that cannot be opened, DataLoader worker errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from centerpoint_suite.errors import DataError

from .conftest import CATEGORIES, write_coco


def test_unknown_task(cli) -> None:
    res = cli("train", "--task", "boxes3d")
    assert "Invalid value for '--task'" in res.error and "'boxes3d'" in res.error


def test_unknown_arch(cli) -> None:
    res = cli("train", "--task", "boxes2d", "--arch", "resnet7")
    assert res.error.startswith("--arch resnet7: unknown network; known: ")


def test_unknown_config_key(cli) -> None:
    res = cli("train", "--task", "boxes2d", "--set", "train.batchsize=4")
    assert res.error.startswith("--set train.batchsize: unknown field 'batchsize'; fields: epochs, batch_size")


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("CONFIG = Experiment(\n    task=Boxes2D(),\n    nope=1,\n)\n", 1, "TypeError: Experiment.__init__() got an "),
        (
            "CONFIG = Experiment(\n    task=Boxes2D(),\n    data=DataConfig(input_hw=(64, 64),\n)\n",
            1,
            "SyntaxError: '('",
        ),
        ("x = 1\n\nCONFIG = Experiment(task=Boxes2D(max_objects=undefined_name))\n", 3, "NameError"),
    ],
    ids=["unknown-field", "syntax", "name"],
)
def test_config_file_error_names_its_line(cli, tmp_path, body, line, message) -> None:
    path = tmp_path / "exp.py"
    head = "from centerpoint_suite.config import DataConfig, Experiment\n"
    head += "from centerpoint_suite.tasks.boxes2d import Boxes2D\n"
    path.write_text(head + body)
    res = cli("train", "--config", path)
    assert res.error.startswith(f"{path}:{line + 2}: error while loading config: {message}")


def test_train_val_class_mismatch(cli, tmp_path) -> None:
    root = tmp_path / "coco"
    write_coco(root, "train")
    other = [CATEGORIES[0], {"id": 3, "name": "c"}]
    val = write_coco(root, "val", categories=other, annotations=[])
    res = cli(
        "train",
        "--task",
        "boxes2d",
        "--data",
        root,
        "--set",
        "data.train_split=train",
        "--set",
        "data.val_split=val",
        "--set",
        "train.epochs=1",
        "--set",
        "data.input_hw=(64,64)",
        "--set",
        "train.batch_size=2",
        "--set",
        "data.workers=0",
    )  # fmt: skip  (tiny if it ran)
    assert res.error.startswith(
        f"train split {root / 'annotations' / 'instances_train.json'} and val split {val} list different "
        "classes (only in train: ['b']; only in val: ['c'])"
    )


def test_class_check_accepts_equal_and_rejects_reordered(tmp_path) -> None:
    from centerpoint_suite.checks import check_same_classes
    from centerpoint_suite.datasets.coco import CocoSource
    from centerpoint_suite.errors import UserError

    root = tmp_path / "coco"
    write_coco(root, "train")
    write_coco(root, "val", categories=[{"id": 1, "name": "b"}, {"id": 2, "name": "a"}], annotations=[])
    train = CocoSource(root, "train")
    check_same_classes(train, None)
    check_same_classes(train, CocoSource(root, "train"))
    with pytest.raises(UserError, match="same classes in another order"):
        check_same_classes(train, CocoSource(root, "val"))


def test_video_that_cannot_be_opened(cli, checkpoint, tmp_path) -> None:
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"this is not a video" * 10)
    res = cli("predict", "--checkpoint", checkpoint, video, "--out", tmp_path / "out")
    assert res.error == f"{video}: cannot open video"


def test_camera_that_does_not_exist(cli, checkpoint, tmp_path) -> None:
    res = cli("predict", "--checkpoint", checkpoint, "--camera", "97", "--out", tmp_path / "out")
    assert res.error == "--camera 97: cannot open the camera"


@pytest.mark.parametrize(
    "message",
    [
        "/data/a: b.json: annotation id 3: 'bbox' must be 4 finite numbers [x, y, w, h], got [1, 2]",
        "/data/c.py:4: error while loading config: SyntaxError: invalid syntax\n    x = (\n        ^",
    ],
    ids=["one-line", "several-lines"],
)
def test_worker_error_keeps_the_whole_message(message) -> None:
    from torch._utils import ExceptionWrapper

    from centerpoint_suite.cli.main import worker_message

    try:
        raise DataError(message)
    except DataError:
        wrapped = ExceptionWrapper(where="in DataLoader worker process 0")
    with pytest.raises(DataError) as info:
        wrapped.reraise()
    assert "Original Traceback" in str(info.value)
    assert worker_message(info.value) == message
    assert worker_message(DataError("plain: message")) == "plain: message"


def test_error_raised_in_a_dataloader_worker_reaches_the_user(cli, checkpoint, tmp_path: Path) -> None:
    path = write_coco(tmp_path / "coco", "val")
    victim = tmp_path / "coco" / "val" / "1.jpg"
    victim.write_bytes(b"")
    res = cli("eval", "--checkpoint", checkpoint, "--data", path.parents[1], "--split", "val",
              "--set", "data.workers=1")  # fmt: skip
    assert res.error == f"{victim}: empty image file (0 bytes)"
