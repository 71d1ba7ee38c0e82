"""Default pose experiment: the built-in synthetic people, the small CPU network.

Sized to finish in under 15 minutes on a 2-core CPU.
"""

from centerpoint_suite.tasks.pose2d import Pose2D

from centerpoint_suite.config import DataConfig, Experiment, ModelConfig, TestConfig, TrainConfig
from centerpoint_suite.transforms import AugmentConfig

CONFIG = Experiment(
    task=Pose2D(),
    data=DataConfig(
        input_hw=(256, 256),
        test_input_hw=(256, 256),
        augment=AugmentConfig(random_crop=False, scale=0.3, shift=0.1),
        workers=1,
    ),
    model=ModelConfig(arch="small"),
    train=TrainConfig(epochs=12, batch_size=16, lr=2e-3, lr_steps=(9, 11), warmup_iters=100, grad_clip=10.0),
    test=TestConfig(k=32, batch_size=16),
)
