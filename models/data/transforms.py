"""Image transforms: training augmentation, deterministic eval geometry, and normalisation.

`to_model_input` is the single place where PIL images become network input, so that CAM code can
start from `Sample.image` and get exactly the tensor the eval dataset yields.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image
from torch import Tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EVAL_CROP_FRACTION = 0.875  # resize to size / 0.875, then centre-crop `size` (the ImageNet convention)

PilTransform = Callable[[Image.Image], Image.Image]


def to_model_input(pil_images: Sequence[Image.Image]) -> Tensor:
    """B x 3 x H x W float tensor: ToTensor, then ImageNet mean/std normalisation."""
    if not pil_images:
        raise ValueError("to_model_input needs at least one image")
    tensors = [TF.normalize(TF.to_tensor(image.convert("RGB")), IMAGENET_MEAN, IMAGENET_STD)
               for image in pil_images]
    return torch.stack(tensors)


def eval_geometry(size: int) -> PilTransform:
    """Deterministic resize + centre crop for photographs."""
    return T.Compose([T.Resize(round(size / EVAL_CROP_FRACTION)), T.CenterCrop(size)])


def train_augmentation(size: int, min_scale: float = 0.08) -> PilTransform:
    """Random resized crop and horizontal flip (torchvision's classification recipe)."""
    return T.Compose([T.RandomResizedCrop(size, scale=(min_scale, 1.0), antialias=True),
                      T.RandomHorizontalFlip()])
