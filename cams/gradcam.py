"""Grad-CAM (Selvaraju et al. 2017) on `model.features`: channel weights are the spatially averaged
gradients of the class score with respect to the feature maps, map = sum_k alpha_k F_k.

Only the head (GAP + fc) lies between the feature maps and the score, so the gradient is taken
through the head alone; the backbone runs once, without a graph. For a GAP + linear head the
gradient is w_c / (h w) at every position, so Grad-CAM here is CAM divided by h w, and after our
min-max normalisation the two are the same picture: a useful cross-check, and the plug-in point
for methods that differ.
"""

from __future__ import annotations

import torch
from torch import Tensor

from cams.base import CamMethod


class GradCAM(CamMethod):
    """Gradient-weighted class activation mapping on `model.features`."""

    name = "gradcam"

    def maps_from_features(self, features: Tensor, classes: Tensor) -> Tensor:
        with torch.enable_grad():
            acts = features.detach().clone().requires_grad_(True)  # clone: leave inference mode
            logits = self.model.fc(acts.mean((2, 3)))
            # Per-image scores summed: image b's score depends only on image b's features,
            # so one backward gives every image its own gradient.
            score = logits.gather(1, classes[:, None]).sum()
            (grads,) = torch.autograd.grad(score, acts)
        alpha = grads.mean((2, 3))  # B x C
        return torch.einsum("bchw,bc->bhw", acts.detach(), alpha).float()
