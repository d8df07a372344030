"""The dataset shape every source shares: `ds[i] -> (tensor, label)` and `ds.sample(i) -> Sample`."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from models.data.decode import load_train_crop
from models.data.images import load_rgb
from models.data.transforms import PilTransform, TrainCrop, normalise_batch, to_model_input, to_uint8_tensor


@dataclass
class Sample:
    """One eval image as the network sees it (after resize/crop, before normalisation)."""

    id: str
    image: Image.Image
    label: int
    mask: Image.Image | None = None


class SceneDataset(Dataset):
    """Base class: subclasses say how to load image `i` (`load`); this class applies the transforms.

    With `augment` set (training), `ds[i]` uses the random augmentation; otherwise it is exactly
    `to_model_input([ds.sample(i).image])[0]`. With `uint8` set, `ds[i]` returns the 3 x H x W uint8
    image instead, for the training loop to normalise on the device (`normalise_batch`).
    """

    def __init__(self, geometry: PilTransform, augment: PilTransform | None = None) -> None:
        self.geometry = geometry
        self.augment = augment
        self.uint8 = False

    def to_tensor(self, image: Image.Image) -> Tensor:
        return to_uint8_tensor(image) if self.uint8 else to_model_input([image])[0]

    def __len__(self) -> int:
        raise NotImplementedError

    def load(self, index: int) -> Sample:
        """The raw sample (original geometry)."""
        raise NotImplementedError

    @property
    def labels(self) -> list[int]:
        raise NotImplementedError

    def sample(self, index: int) -> Sample:
        if not 0 <= index < len(self):
            raise IndexError(f"sample index {index} out of range for {len(self)} images")
        raw = self.load(index)
        image = self.geometry(raw.image)
        mask = None if raw.mask is None else self.geometry(raw.mask)
        return Sample(raw.id, image, raw.label, mask)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        if self.augment is None:
            sample = self.sample(index)
            return self.to_tensor(sample.image), sample.label
        raw = self.load(index)
        return self.to_tensor(self.augment(raw.image)), raw.label


class FileDataset(SceneDataset):
    """Images listed as (path relative to `root`, label); ids are the relative POSIX paths.

    Training items with a `TrainCrop` augmentation are cropped straight from the file, JPEGs decoded
    at reduced size when the crop allows (`reduced_decode`, see models/data/decode.py); eval images
    are always decoded at full size, so eval tensors and CAM samples stay exact."""

    def __init__(self, root: Path, items: list[tuple[str, int]], geometry: PilTransform,
                 augment: PilTransform | None = None, reduced_decode: bool = True) -> None:
        super().__init__(geometry, augment)
        self.root = Path(root)
        self.items = list(items)
        self.reduced_decode = reduced_decode

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        if not isinstance(self.augment, TrainCrop):
            return super().__getitem__(index)
        relative, label = self.items[index]
        pixels, _ = load_train_crop(self.root / relative, self.augment, self.reduced_decode)
        return (pixels if self.uint8 else normalise_batch(pixels[None])[0]), label

    def __len__(self) -> int:
        return len(self.items)

    @property
    def labels(self) -> list[int]:
        return [label for _, label in self.items]

    def load(self, index: int) -> Sample:
        relative, label = self.items[index]
        return Sample(relative, load_rgb(self.root / relative), label, None)
