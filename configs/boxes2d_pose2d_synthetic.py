"""Default composite experiment: 2D boxes and human poses on one small network, trained on the
built-in synthetic scenes (shapes and people in the same 256x256 images).

One backbone, two sets of heads (``boxes2d.*``, ``pose2d.*``), both losses weighted 1. Like the
single-task defaults it trains for a 12-minute wall-clock budget (at most 40 epochs), so
``centerpoint train --task boxes2d+pose2d`` ends within 15 minutes on a 2-core CPU; the
learning rate drops at 75% and 90% of the run. ``--set task.uncertainty=true`` learns the
task weighting instead; ``--set task.pose2d.max_objects=16`` reaches into one sub-task.
"""

from centerpoint_suite.composite import Composite
from centerpoint_suite.config import DataConfig, Experiment, ModelConfig, TestConfig, TrainConfig
from centerpoint_suite.tasks.boxes2d import Boxes2D
from centerpoint_suite.tasks.pose2d import Pose2D
from centerpoint_suite.transforms import AugmentConfig

CONFIG = Experiment(
    task=Composite(tasks=(Boxes2D(), Pose2D())),
    data=DataConfig(
        input_hw=(256, 256),
        test_input_hw=(256, 256),
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
    test=TestConfig(k=100, batch_size=16),
)
