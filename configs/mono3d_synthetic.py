"""Default monocular 3D experiment: the built-in synthetic KITTI-format scenes (real KITTI
P2, 1242x375 frames) at a reduced 128x416 input with the small CPU network.

Sized to finish in under 20 minutes on a 2-core CPU. Keypoints at the projected 3D centre
(exact unprojection); depth focal normalised (60 cells = fx * 416 / 1242 / 4) so that the
scale augmentation keeps depth targets right.
"""

from centerpoint_suite.tasks.mono3d import Mono3D

from centerpoint_suite.config import DataConfig, Experiment, ModelConfig, TestConfig, TrainConfig
from centerpoint_suite.transforms import AugmentConfig

CONFIG = Experiment(
    task=Mono3D(center_mode="projected3d", depth_focal=60.0),
    data=DataConfig(
        input_hw=(128, 416),
        test_input_hw=(128, 416),
        augment=AugmentConfig(random_crop=False, scale=0.2, shift=0.05, flip=0.5),
        workers=1,
    ),
    model=ModelConfig(arch="small"),
    train=TrainConfig(epochs=10, batch_size=16, lr=2e-3, lr_steps=(8, 10), warmup_iters=100, grad_clip=10.0, val_every=5),
    test=TestConfig(k=50, batch_size=16),
)
