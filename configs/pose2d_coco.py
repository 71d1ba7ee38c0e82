"""COCO 2017 person keypoints with DLA-34, the original's multi_pose_dla_3x recipe
(512x512, 320 epochs, lr x0.1 at 270 and 300; batch 128 / lr 5e-4 there, scaled here to
batch 32), flip test, 32 people per image."""

from centerpoint_suite.config import DataConfig, Experiment, ModelConfig, TestConfig, TrainConfig
from centerpoint_suite.tasks.pose2d import Pose2D

CONFIG = Experiment(
    task=Pose2D(max_objects=32),
    data=DataConfig(
        root="datasets/coco",
        train_split="train2017",
        val_split="val2017",
        input_hw=(512, 512),
        test_input_hw=(512, 512),
    ),
    model=ModelConfig(arch="dla34"),
    train=TrainConfig(epochs=320, batch_size=32, lr=5e-4 * 32 / 128, lr_steps=(270, 300)),
    test=TestConfig(k=100, flip_test=True),
)
