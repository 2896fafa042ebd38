"""Datasets as in-memory tensors in the model range: toy 2-D sets, the oracle distributions, digits, IDX, CIFAR-10,
any image folder.

Every loader returns an :class:`ArrayDataset`; nothing downloads.
"""

from .base import (
    ArrayDataset,
    Chain,
    RandomHorizontalFlip,
    UniformDequantization,
    dequantize,
    from_levels,
    max_pairwise_distance,
    to_levels,
)
from .cifar10 import cifar10
from .digits import digits
from .folder import folder_classes, image_folder
from .idx import fashion_mnist, mnist
from .toy import checkerboard, eight_gaussians, gaussian, mixture, moons, pinwheel, swiss_roll

__all__ = [
    "ArrayDataset",
    "RandomHorizontalFlip",
    "UniformDequantization",
    "Chain",
    "from_levels",
    "to_levels",
    "dequantize",
    "max_pairwise_distance",
    "digits",
    "fashion_mnist",
    "mnist",
    "cifar10",
    "image_folder",
    "folder_classes",
    "checkerboard",
    "swiss_roll",
    "moons",
    "pinwheel",
    "eight_gaussians",
    "gaussian",
    "mixture",
]
