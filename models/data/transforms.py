"""Image transforms: training augmentation, deterministic eval geometry, and normalisation.

`to_model_input` is the single place where PIL images become network input, so that CAM code can
start from `Sample.image` and get exactly the tensor the eval dataset yields.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
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


def to_uint8_tensor(image: Image.Image) -> Tensor:
    """3 x H x W uint8 tensor of an image: what a worker ships when the device normalises (a quarter
    of the bytes of a float tensor to pass between processes, pin and copy to the GPU)."""
    return torch.from_numpy(np.array(image.convert("RGB"), np.uint8, copy=True)).permute(2, 0, 1).contiguous()


def normalise_batch(images: Tensor) -> Tensor:
    """B x 3 x H x W uint8 -> the float tensor `to_model_input` gives (same operations, same values)."""
    mean = torch.as_tensor(IMAGENET_MEAN, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    std = torch.as_tensor(IMAGENET_STD, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    return images.to(torch.float32).div(255).sub_(mean).div_(std)


def eval_geometry(size: int) -> PilTransform:
    """Deterministic resize + centre crop for photographs."""
    return T.Compose([T.Resize(round(size / EVAL_CROP_FRACTION)), T.CenterCrop(size)])


def train_augmentation(size: int, min_scale: float = 0.08) -> "TrainCrop":
    """Random resized crop and horizontal flip (torchvision's classification recipe)."""
    return TrainCrop(size, (min_scale, 1.0))


def crop_box(width: int, height: int, scale: tuple[float, float] = (0.08, 1.0),
             ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a random resized crop of a `width` x `height` image.

    The same algorithm and the same torch RNG calls as `T.RandomResizedCrop.get_params`, but from the
    size alone: a JPEG's size is in its header, so the crop can be chosen before decoding and the
    decoder told how much resolution the crop needs (models/data/decode.py)."""
    area = height * width
    log_ratio = torch.log(torch.tensor(ratio))
    for _ in range(10):
        target_area = area * torch.empty(1).uniform_(scale[0], scale[1]).item()
        aspect_ratio = torch.exp(torch.empty(1).uniform_(log_ratio[0], log_ratio[1])).item()
        w = int(round(math.sqrt(target_area * aspect_ratio)))
        h = int(round(math.sqrt(target_area / aspect_ratio)))
        if 0 < w <= width and 0 < h <= height:
            top = torch.randint(0, height - h + 1, size=(1,)).item()
            left = torch.randint(0, width - w + 1, size=(1,)).item()
            return top, left, h, w
    in_ratio = float(width) / float(height)  # fallback: the central crop, as torchvision does
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


@dataclass(frozen=True)
class TrainCrop:
    """RandomResizedCrop(size, scale, ratio) + RandomHorizontalFlip, as one picklable callable.

    Called on a decoded image it is exactly torchvision's pair of transforms (same RNG calls, same
    result). `models.data.decode.load_train_crop` applies the same crop to a file, decoding JPEGs
    at reduced size when the crop allows it."""

    size: int
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)

    def box(self, width: int, height: int) -> tuple[int, int, int, int]:
        return crop_box(width, height, self.scale, self.ratio)

    @staticmethod
    def flip() -> bool:
        return bool(torch.rand(1) < 0.5)

    def __call__(self, image: Image.Image) -> Image.Image:
        top, left, height, width = self.box(*image.size)
        image = TF.resized_crop(image, top, left, height, width, [self.size, self.size], antialias=True)
        return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if self.flip() else image
