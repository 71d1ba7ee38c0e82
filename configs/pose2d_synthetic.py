"""Default pose experiment: the built-in synthetic people and the small CPU network.

Trains for a fixed wall-clock budget (12 minutes, at most 40 epochs) so that
``centerpoint train --task pose2d`` finishes within 15 minutes on a 2-core CPU, whatever
its speed that day; the learning rate drops at 75% and 90% of the run. Input 192x192 (the
images are 256x256): 1.8x the iterations of 256 in the same time, for an oracle ceiling of
keypoints/AP 0.91 instead of 0.95; set ``data.input_hw`` / ``data.test_input_hw`` back for more.
"""

from centerpoint_suite.config import DataConfig, Experiment, ModelConfig, TestConfig, TrainConfig
from centerpoint_suite.tasks.pose2d import Pose2D
from centerpoint_suite.transforms import AugmentConfig

CONFIG = Experiment(
    task=Pose2D(),
    data=DataConfig(
        input_hw=(192, 192),
        test_input_hw=(192, 192),
        augment=AugmentConfig(random_crop=False, scale=0.3, shift=0.1),
        workers=0,  # 2 cores: data loaded in-process + 2 threads: 1.3x (boxes2d) / 1.45x (pose2d) the it/s of 1 + 1
    ),
    model=ModelConfig(arch="small"),
    train=TrainConfig(
        epochs=40,
        time_budget_min=12.0,
        batch_size=16,
        lr=2e-3,
        lr_steps=(30, 36),
        warmup_iters=100,
        grad_clip=10.0,
        val_every=5,
    ),
    test=TestConfig(k=32, batch_size=16),
)
