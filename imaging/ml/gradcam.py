"""Batched Grad-CAM on a named layer, in one forward and a partial backward.

The hooked layer's output is detached and made a leaf, so autograd records only the layers after it and the
backward pass never touches the (frozen) parameters: explaining costs a forward plus the tail of a backward.
The CAM itself is computed in float32, so a forward under bf16/fp16 autocast gives the same maps.

Two details make the maps fine enough to point at small lesions from a stride-16 layer:
- upsampling is aligned to where ResNet cells really sit and bicubic, so the peak can fall between cells
  (the maximum of a bilinear upsample always sits on a cell centre, 16 px apart);
- by default each input is explained together with its 180-degree rotation (same batch) and the two maps are
  averaged, cancelling a network's direction bias (e.g. detectors that fire on a lesion's left edge), which
  otherwise shifts the peak off small lesions. This doubles the explained batch, not the passes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class GradCamResult:
    """logits (N, C) float32; targets (N,) class indices explained; heatmaps (M, S, S) float32 in [0, 1].

    M equals N for image models and N * D for series models (one map per slice, study-major); `outputs` are
    the model's remaining outputs (e.g. slice attention), detached. All describe the unrotated inputs.
    """

    logits: torch.Tensor
    targets: torch.Tensor
    heatmaps: torch.Tensor
    outputs: tuple[Any, ...]


def gradcam(*, model: nn.Module, layer: str, inputs: torch.Tensor, targets: torch.Tensor | None = None,
            context: Callable[[], contextlib.AbstractContextManager] | None = None,
            rotation_average: bool = True) -> GradCamResult:
    """Run `model(inputs)` and return Grad-CAM heatmaps of `layer` (a dotted module path) at the input size.

    `inputs` is (N, 3, S, S) for image models or (N, D, 3, S, S) for series models. `targets` are the class
    indices to explain per sample; None explains the predicted class. `context` is entered around the forward
    (e.g. the CUDA autocast context). The model must be in eval mode; do not call under torch.inference_mode().
    """
    module = model.get_submodule(layer)
    captured: list[torch.Tensor] = []

    def hook(_module: nn.Module, _args: Any, output: torch.Tensor) -> torch.Tensor:
        leaf = output.detach().requires_grad_(True)
        captured.append(leaf)
        return leaf

    count = inputs.shape[0]
    batch = torch.cat([inputs, inputs.flip(-2, -1)]) if rotation_average else inputs
    handle = module.register_forward_hook(hook)
    try:
        with torch.enable_grad(), (context() if context else contextlib.nullcontext()):
            outputs = model(batch)
    finally:
        handle.remove()
    if len(captured) != 1:
        raise RuntimeError(f"Grad-CAM layer '{layer}' ran {len(captured)} times in one forward; expected once")
    all_logits, rest = (outputs[0], tuple(outputs[1:])) if isinstance(outputs, tuple) else (outputs, ())
    all_logits = all_logits.float()
    if targets is None:
        targets = all_logits[:count].argmax(dim=1)
    targets = targets.to(all_logits.device)
    all_targets = torch.cat([targets, targets]) if rotation_average else targets
    # samples are independent in eval mode, so the gradient of the summed scores is each sample's own gradient
    score = all_logits.gather(1, all_targets[:, None]).sum()
    activation = captured[0]
    (grads,) = torch.autograd.grad(score, activation)
    weights = grads.float().mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * activation.detach().float()).sum(dim=1, keepdim=True))
    cam = upsample_cam(cam, size=(int(inputs.shape[-2]), int(inputs.shape[-1])))[:, 0].clamp_min(0.0)
    if rotation_average:
        half = cam.shape[0] // 2
        cam = (cam[:half] + cam[half:].flip(-2, -1)) / 2  # rotate back at full resolution, where grids agree
    peak = cam.amax(dim=(1, 2), keepdim=True)
    heatmaps = torch.where(peak > 0, cam / peak.clamp_min(1e-12), torch.zeros_like(cam))
    return GradCamResult(logits=all_logits[:count].detach(), targets=targets.detach(), heatmaps=heatmaps.detach(),
                         outputs=tuple(o[:count].detach() if isinstance(o, torch.Tensor) else o for o in rest))


def upsample_cam(cam: torch.Tensor, *, size: tuple[int, int]) -> torch.Tensor:
    """Upsample (N, 1, h, w) maps to `size`, placing feature cell i on input pixel stride * i.

    In torchvision ResNets (and our tiny net) every stride-2 stage maps output index i to input index 2i
    (padding keeps 'same' alignment), so cell i is centred on pixel stride * i, not stride * i + (stride - 1) / 2
    as plain `interpolate` assumes; the plain version shifts layer4 maps by ~half a cell (15 px) down-right.
    """
    h, w = cam.shape[-2:]
    height, width = size

    def axis(out: int, cells: int) -> torch.Tensor:
        position = torch.arange(out, device=cam.device, dtype=torch.float32) * (cells / out)  # pixel -> cell units
        return position * (2.0 / (cells - 1)) - 1.0 if cells > 1 else torch.zeros(out, device=cam.device)

    gy, gx = torch.meshgrid(axis(height, h), axis(width, w), indexing="ij")
    grid = torch.stack((gx, gy), dim=-1).expand(cam.shape[0], height, width, 2)
    return F.grid_sample(cam, grid, mode="bicubic", padding_mode="border", align_corners=True)


def resize_heatmaps(*, heatmaps: torch.Tensor, shapes: Sequence[tuple[int, int]]) -> list[np.ndarray]:
    """Resize each (S, S) heatmap back to its original image shape (H, W); returns float32 arrays in [0, 1]."""
    resized = []
    for heatmap, shape in zip(heatmaps, shapes, strict=True):
        if tuple(heatmap.shape) != tuple(shape):
            heatmap = F.interpolate(heatmap[None, None], size=tuple(shape), mode="bilinear", align_corners=False)[0, 0]
        resized.append(heatmap.clamp(0.0, 1.0).cpu().numpy().astype(np.float32, copy=False))
    return resized
