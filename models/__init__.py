"""vibcam models: baseline and VIB ResNets (`build_model`), checkpoints, data and training."""
from models.factory import HEADS, build_model
from models.resnet import ARCHS

__all__ = ["ARCHS", "HEADS", "build_model"]
