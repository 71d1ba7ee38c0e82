"""COCO 2017 boxes with ResNet-18 + deconvolution neck, as the original's ctdet_coco_resdcn18
recipe without DCN (512x512, batch 114 on 5 GPUs there; scale lr with batch size)."""

from centerpoint_suite.config import DataConfig, Experiment, ModelConfig, TestConfig, TrainConfig
from centerpoint_suite.tasks.boxes2d import Boxes2D

CONFIG = Experiment(
    task=Boxes2D(max_objects=128),
    data=DataConfig(root="datasets/coco", train_split="train2017", val_split="val2017", input_hw=(512, 512)),
    model=ModelConfig(arch="res18"),
    train=TrainConfig(epochs=140, batch_size=32, lr=1.25e-4 * 32 / 32, lr_steps=(90, 120)),
    test=TestConfig(k=100),
)
