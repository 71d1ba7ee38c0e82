"""The synthetic KITTI generator: layout, label consistency with the camera, reuse, safety."""

from __future__ import annotations

import numpy as np
import pytest

from centerpoint_suite.datasets.kitti import KittiSource, read_label_file, read_p2
from centerpoint_suite.datasets.synthetic_common import image_rng
from centerpoint_suite.datasets.synthetic_kitti import CAMERA_HEIGHT, P2, generate_kitti, render_frame
from centerpoint_suite.errors import UserError
from centerpoint_suite.tasks.mono3d.geometry3d import alpha_from_location, box3d_corners, project_boxes, wrap_angle


@pytest.fixture(scope="module")
def small_root(tmp_path_factory):
    return generate_kitti(tmp_path_factory.mktemp("kitti") / "synthetic", num_train=4, num_val=2, workers=1)


def test_layout_and_reader(small_root):
    assert (small_root / "DONE").is_file()
    assert (small_root / "ImageSets" / "train.txt").read_text().split() == ["000000", "000001", "000002", "000003"]
    assert (small_root / "ImageSets" / "val.txt").read_text().split() == ["000004", "000005"]
    assert len((small_root / "ImageSets" / "trainval.txt").read_text().split()) == 6
    src = KittiSource(small_root, "val")
    sample = src[0]
    assert sample.hw == (375, 1242) and sample.image.dtype == np.uint8
    np.testing.assert_allclose(sample.calib, P2, rtol=1e-6)
    np.testing.assert_allclose(read_p2(small_root / "training" / "calib" / "000000.txt"), P2, rtol=1e-6)


def test_labels_agree_with_the_camera(small_root):
    n_objects, errors = 0, []
    for f in sorted((small_root / "training" / "label_2").glob("*.txt")):
        rows = read_label_file(f)
        real = rows.select(rows.type != "DontCare")
        n_objects += len(real)
        assert set(rows.type) <= {"Car", "Van", "Pedestrian", "Cyclist", "DontCare"}
        corners = box3d_corners(real.dimensions, real.location, real.rotation_y)
        boxes = project_boxes(corners, P2, (375, 1242))
        # equal up to the 2-decimal rounding of the 3D fields (0.005 rad of yaw is ~1 px up close)
        np.testing.assert_allclose(boxes, real.bbox, atol=2.5)
        errors.append(np.abs(boxes - real.bbox).ravel())
        assert np.all(np.abs(wrap_angle(real.alpha - alpha_from_location(real.rotation_y, real.location))) < 0.01)
        assert np.all(np.abs(real.location[:, 1] - CAMERA_HEIGHT) < 0.2)  # standing on the ground
        assert np.all((real.truncated >= 0) & (real.truncated <= 0.8))
        assert set(real.occluded.tolist()) <= {0, 1, 2}
        heights = real.bbox[:, 3] - real.bbox[:, 1]
        assert np.all(heights >= 20)
    assert n_objects >= 6
    assert np.median(np.concatenate(errors)) < 0.1


def test_frames_are_deterministic_and_independent():
    a, la = render_frame(image_rng(0, "train", 3))
    b, lb = render_frame(image_rng(0, "train", 3))
    c, _ = render_frame(image_rng(0, "train", 4))
    assert np.array_equal(a, b) and np.array_equal(la.bbox, lb.bbox)
    assert not np.array_equal(a, c)


def test_occlusion_and_truncation_levels_occur():
    occluded, truncated = set(), []
    for i in range(12):
        _, labels = render_frame(image_rng(1, "train", i))
        real = labels.select(labels.type != "DontCare")
        occluded |= set(real.occluded.tolist())
        truncated.extend(real.truncated.tolist())
    assert {0, 1, 2} <= occluded
    assert max(truncated) > 0.05


def test_reused_when_complete_and_regenerated_on_new_parameters(small_root):
    image = small_root / "training" / "image_2" / "000000.png"
    before = image.stat().st_mtime_ns
    generate_kitti(small_root, num_train=4, num_val=2, workers=1)
    assert image.stat().st_mtime_ns == before
    generate_kitti(small_root, num_train=3, num_val=1, workers=1)
    assert not (small_root / "training" / "image_2" / "000004.png").exists()
    assert len((small_root / "ImageSets" / "trainval.txt").read_text().split()) == 4


def test_refuses_to_overwrite_foreign_files(tmp_path):
    folder = tmp_path / "training" / "image_2"
    folder.mkdir(parents=True)
    (folder / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(UserError, match="did not write"):
        generate_kitti(tmp_path, num_train=1, num_val=1, workers=1)
