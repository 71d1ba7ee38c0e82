"""KITTI object (3DOP split) with DLA-34, the original's ddd_3dop recipe: 384x1280 input,
BGR images with ImageNet statistics, batch 16, 70 epochs, lr 1.25e-4 dropped at 45 and 60,
scale 0.4 / shift 0.1 augmentation, 2D-box-centre keypoints.

Ours beyond the original: the depth target is focal normalised (depth_focal: fx * zoom of a
standard KITTI frame letterboxed into 1280 px, in cells) so scale augmentation keeps depth
right (the original instead dropped depth and size from the loss on augmented images), and
horizontal flips (alpha -> pi - alpha). Set ``--set task.depth_focal=none`` for raw depth.
"""

from centerpoint_suite.config import DataConfig, Experiment, ModelConfig, TestConfig, TrainConfig
from centerpoint_suite.tasks.mono3d import Mono3D
from centerpoint_suite.transforms import AugmentConfig

CONFIG = Experiment(
    task=Mono3D(classes=("Pedestrian", "Car", "Cyclist"), max_objects=50, center_mode="box2d", depth_focal=184.7),
    data=DataConfig(
        root="datasets/kitti",
        train_split="train",
        val_split="val",
        input_hw=(384, 1280),
        test_input_hw=(384, 1280),
        test_mode="fixed",
        normalization="original_kitti",
        augment=AugmentConfig(random_crop=False, scale=0.4, shift=0.1, flip=0.5, colour=False),
    ),
    model=ModelConfig(arch="dla34"),
    train=TrainConfig(epochs=70, batch_size=16, lr=1.25e-4, lr_steps=(45, 60)),
    test=TestConfig(k=100, batch_size=8),
)
