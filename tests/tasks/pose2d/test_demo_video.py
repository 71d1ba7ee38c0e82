"""`centerpoint predict` with a pose checkpoint on a short MP4 made from real images, on an
image folder, and a missing camera; the skeleton drawing."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from centerpoint_suite.checkpoint import save_checkpoint
from centerpoint_suite.cli.main import main
from centerpoint_suite.config import load_config
from centerpoint_suite.engine import build_model
from centerpoint_suite.tasks.pose2d import COCO_FLIP_PAIRS, Pose2D
from centerpoint_suite.tasks.pose2d.visualize import LEFT_COLOUR, RIGHT_COLOUR, draw_poses
from centerpoint_suite.types import Predictions

FRAMES, FPS, SIZE = 5, 12.0, (160, 120)  # width, height


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    exp = load_config("pose2d_synthetic")
    exp = replace(exp, data=replace(exp.data, test_input_hw=(128, 128)), train=replace(exp.train, device="cpu"))
    path = tmp_path_factory.mktemp("ckpt") / "pose.pth"
    save_checkpoint(path, exp, build_model(exp))  # random init is enough to exercise the demo
    return path


@pytest.fixture(scope="module")
def clip(coco_mini, tmp_path_factory) -> Path:
    images = sorted((coco_mini / "val2017").glob("*.jpg"))[:FRAMES]
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE)
    assert writer.isOpened()
    for p in images:
        writer.write(cv2.resize(cv2.imread(str(p)), SIZE))
    writer.release()
    return path


def run(args: list[str]):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def test_predict_video_keeps_frame_count_size_and_fps(checkpoint, clip, tmp_path) -> None:
    out = tmp_path / "out"
    result = run(["predict", "--checkpoint", str(checkpoint), str(clip), "--out", str(out), "--threshold", "0"])
    assert result.exit_code == 0, result.output
    cap = cv2.VideoCapture(str(out / "clip_pred.mp4"))
    assert cap.isOpened()
    n = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        n += 1
        assert (frame.shape[1], frame.shape[0]) == SIZE
    assert n == FRAMES
    assert abs(cap.get(cv2.CAP_PROP_FPS) - FPS) < 0.01
    cap.release()
    record = json.loads((out / "detections.json").read_text())
    frames = record["videos"][0]["frames"]
    assert len(frames) == FRAMES
    det = frames[0]["detections"][0]
    assert np.asarray(det["keypoints"]).shape == (17, 3) and len(det["box"]) == 4


def test_predict_image_folder(checkpoint, coco_mini, tmp_path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for p in sorted((coco_mini / "val2017").glob("*.jpg"))[:2]:
        cv2.imwrite(str(folder / p.name), cv2.resize(cv2.imread(str(p)), SIZE))
    out = tmp_path / "out"
    result = run(["predict", "--checkpoint", str(checkpoint), str(folder), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(list(out.glob("*_pred.jpg"))) == 2


def test_missing_camera_is_a_clear_error(checkpoint, tmp_path) -> None:
    result = CliRunner().invoke(
        main, ["predict", "--checkpoint", str(checkpoint), "--camera", "97", "--out", str(tmp_path)]
    )
    assert result.exit_code != 0 and "camera 97" in result.output


def test_skeleton_drawing_skips_low_score_joints() -> None:
    kps = np.zeros((1, 17, 3), np.float32)
    kps[0, :, 0] = np.linspace(20, 180, 17)
    kps[0, :, 1] = 190
    kps[0, :, 2] = 0.9
    kps[0, 5:7] = ((40, 40, 0.9), (160, 40, 0.9))  # shoulders
    kps[0, 7:9] = ((40, 160, 0.9), (160, 160, 0.05))  # left elbow shown, right elbow below threshold
    pred = Predictions(1, np.array([[5, 5, 195, 195]], np.float32), np.array([0.8], np.float32),
                       np.zeros(1, np.int64), {"keypoints": kps})  # fmt: skip
    img = draw_poses(np.zeros((200, 200, 3), np.uint8), pred, COCO_FLIP_PAIRS, 0.3)
    assert tuple(img[100, 40]) == LEFT_COLOUR  # left shoulder -> left elbow limb (x 40, y 40..160)
    assert not img[100, 160].any()  # right shoulder -> right elbow limb not drawn
    assert not img[160, 160].any()  # nor the right elbow
    assert tuple(img[40, 160]) == RIGHT_COLOUR  # the right shoulder joint
    low = replace(pred, scores=np.array([0.2], np.float32))
    assert not draw_poses(np.zeros((200, 200, 3), np.uint8), low, COCO_FLIP_PAIRS, 0.3).any()
    task_img = Pose2D().draw(np.zeros((200, 200, 3), np.uint8), pred, 0.3)
    np.testing.assert_array_equal(task_img, img)


class _Camera:
    """A camera as OpenCV reports it (frame count -1, fps 0) that the user stops with Ctrl-C."""

    def __init__(self, frames: int) -> None:
        self.left = frames

    def get(self, prop: int) -> float:
        return -1.0 if prop == cv2.CAP_PROP_FRAME_COUNT else 0.0

    def read(self):
        if self.left == 0:
            raise KeyboardInterrupt
        self.left -= 1
        return True, np.full((SIZE[1], SIZE[0], 3), 80, np.uint8)


class _Runner:
    exp = replace(load_config("pose2d_synthetic"))

    def __call__(self, frame, image_id):
        empty = Predictions(image_id, np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
        return empty, frame


def test_interrupted_camera_run_still_writes_a_playable_video(tmp_path) -> None:
    from centerpoint_suite.demo import run_video

    path = tmp_path / "camera0.mp4"
    records = run_video(_Runner(), _Camera(4), path, "camera 0", max_frames=0, show=False)
    assert len(records) == 4
    cap = cv2.VideoCapture(str(path))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 4 and abs(cap.get(cv2.CAP_PROP_FPS) - 30) < 0.01
