"""CAM (Zhou et al. 2016): CAM_c(x, y) = sum_k w_ck F_k(x, y), the fc weights of class c applied at
every position of the last feature maps. Because logits are fc(GAP(F)), the mean of CAM_c plus the
bias is exactly the logit of class c: the map is a spatial decomposition of the score."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cams.base import CamMethod, check_cam_model


def cam_from_features(features: Tensor, fc_weight: Tensor, classes: Tensor) -> Tensor:
    """Raw CAMs (B x h x w): each image's feature maps weighted by its class's fc row."""
    weights = fc_weight[classes].to(features.dtype)  # B x C
    return torch.einsum("bchw,bc->bhw", features, weights).float()


@torch.no_grad()
def class_activation_map(model: nn.Module, images: Tensor, classes: Tensor | list[int]) -> Tensor:
    """Raw CAMs (B x h x w, before ReLU or normalisation) of `classes` (one per image), from one
    forward pass through `model.features` and the `model.fc` weights, without gradients."""
    check_cam_model(model)
    return CAM(model).maps(images, classes)


class CAM(CamMethod):
    """Class activation mapping on `model.features` with the `model.fc` weights."""

    name = "cam"

    @torch.no_grad()
    def maps_from_features(self, features: Tensor, classes: Tensor) -> Tensor:
        return cam_from_features(features, self.model.fc.weight, classes)
