"""Network definitions: ResNet image classifiers and the series model (ResNet per slice + Transformer across slices).

Every architecture names its Grad-CAM layer. The ResNets explain from `layer4`, the last convolutional stage:
behind global average pooling and a linear head its Grad-CAM is the network's own decomposition of the class
score over positions, so it points where the evidence is. Intermediate stages are not: measured on held-out
phantoms (128 px, ResNet-18, three training seeds), `layer3` scored 0.12 / 0.92 / 0.13 on the pointing game
and `layer2` 0.00-0.48, swinging with the seed. The catch is resolution: at 128 px with the ImageNet stem
`layer4` is a 4x4 map whose cells dwarf a small lesion (0.90 / 0.83 / 0.90). Our phantoms and scans are
small, so the ResNets drop the stem's max-pool (as CIFAR-style ResNets do): `layer4` becomes 8x8 at 128 px
(stride 16) and scored 0.93 / 1.00 on the same data, at about 4x the convolution cost of the pooled stem
(still ~10 ms a 128 px image on a CPU core). Weights are never downloaded, so no pretrained stem is lost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock


@dataclass(frozen=True)
class ArchSpec:
    """What callers need to know about an architecture without building it."""

    name: str
    feature_dim: int
    gradcam_layer: str
    default_input_size: int


ARCHS: dict[str, ArchSpec] = {
    "tiny": ArchSpec(name="tiny", feature_dim=32, gradcam_layer="layer2", default_input_size=64),
    "resnet18": ArchSpec(name="resnet18", feature_dim=512, gradcam_layer="layer4", default_input_size=128),
    "resnet50": ArchSpec(name="resnet50", feature_dim=2048, gradcam_layer="layer4", default_input_size=160),
}
SERIES_PREFIX = "backbone."


class UnknownArchError(ValueError):
    """An architecture name this code base does not define."""


def arch_spec(arch: str) -> ArchSpec:
    """Return the spec of `arch`, or raise UnknownArchError naming the known ones."""
    try:
        return ARCHS[arch]
    except KeyError:
        raise UnknownArchError(f"unknown architecture '{arch}'; known: {', '.join(sorted(ARCHS))}") from None


class TinyResNet(nn.Module):
    """A very small ResNet-style CNN (about 18k parameters, stride 8) for tests and smoke runs."""

    def __init__(self, *, num_classes: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.layer1 = BasicBlock(8, 16, stride=2, downsample=_shortcut(8, 16))
        self.layer2 = BasicBlock(16, 32, stride=2, downsample=_shortcut(16, 32))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _shortcut(cin: int, cout: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride=2, bias=False), nn.BatchNorm2d(cout))


def build_classifier(*, arch: str, num_classes: int) -> nn.Module:
    """Build an untrained image classifier (random init; weights are never downloaded)."""
    arch_spec(arch)
    if num_classes < 2:
        raise ValueError("a classifier needs at least 2 classes")
    if arch == "tiny":
        return TinyResNet(num_classes=num_classes)
    factory = {"resnet18": torchvision.models.resnet18, "resnet50": torchvision.models.resnet50}[arch]
    model = factory(weights=None, num_classes=num_classes)
    model.maxpool = nn.Identity()  # stride 16 at layer4: a Grad-CAM map fine enough for small lesions (see top)
    return model


def build_backbone(*, arch: str) -> nn.Module:
    """A classifier trunk whose forward returns globally pooled features (N, feature_dim)."""
    model = build_classifier(arch=arch, num_classes=2)
    model.fc = nn.Identity()
    return model


def is_channels_last(module: nn.Module) -> bool:
    """Whether the module's first convolution (3 input channels, so unambiguous) is stored channels_last."""
    weight = next((p for p in module.parameters() if p.dim() == 4), None)
    return weight is not None and not weight.is_contiguous() and weight.is_contiguous(memory_format=torch.channels_last)


def _sinusoidal_positions(length: int, dim: int, *, device: torch.device) -> torch.Tensor:
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return table


class SeriesModel(nn.Module):
    """Study-level classifier over a stack of slices.

    Each slice goes through a ResNet trunk (global pooled features); a Transformer encoder mixes information
    across slices (sinusoidal slice positions, so any slice count works); attention pooling yields one study
    vector and per-slice weights that sum to 1 over the (unpadded) slices.

    With `slice_head`, a linear classifier on each slice's pooled trunk features sits beside the Transformer. It
    is trained on the attention-weighted slice logits against the study label (multiple-instance learning) and
    explains the slices: Grad-CAM through a linear head on global pooling is the trunk's own class map, while
    Grad-CAM taken through the Transformer scored 0.13 on the pointing game of the demo phantoms (its attention
    found the lesion slice every time). Models saved before the head existed load without it.
    """

    def __init__(self, *, arch: str, num_classes: int, d_model: int = 128, layers: int = 2, heads: int = 4,
                 dropout: float = 0.1, slice_head: bool = False) -> None:
        super().__init__()
        self.backbone = build_backbone(arch=arch)
        self.project = nn.Sequential(nn.Linear(arch_spec(arch).feature_dim, d_model), nn.LayerNorm(d_model))
        layer = nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=2 * d_model, dropout=dropout,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.attention = nn.Sequential(nn.Linear(d_model, d_model // 2), nn.Tanh(), nn.Linear(d_model // 2, 1))
        self.head = nn.Sequential(nn.LayerNorm(d_model), nn.Dropout(dropout), nn.Linear(d_model, num_classes))
        self.slice_head = nn.Linear(arch_spec(arch).feature_dim, num_classes) if slice_head else None

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, D, 3, S, S); padding_mask: (B, D) True where a slice is padding. Returns (logits, attention)."""
        return self.forward_features(self.slice_features(x), padding_mask)

    def slice_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled trunk features per slice: (B, D, 3, S, S) -> (B, D, feature_dim)."""
        batch, depth = x.shape[:2]
        flat = x.flatten(0, 1)
        if flat.is_cuda or is_channels_last(self.backbone):
            flat = flat.contiguous(memory_format=torch.channels_last)
        return self.backbone(flat).view(batch, depth, -1)

    def forward_features(self, features: torch.Tensor,
                         padding_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Study logits and slice attention from per-slice trunk features (B, D, feature_dim)."""
        projected = self.project(features.float())
        projected = projected + _sinusoidal_positions(features.shape[1], projected.shape[-1], device=features.device)
        encoded = self.encoder(projected, src_key_padding_mask=padding_mask)
        scores = self.attention(encoded).squeeze(-1).float()
        if padding_mask is not None:
            scores = scores.masked_fill(padding_mask, float("-inf"))
        attention = torch.softmax(scores, dim=1)
        pooled = torch.einsum("bd,bdf->bf", attention.to(encoded.dtype), encoded)
        return self.head(pooled), attention


    def pooled_slice_logits(self, features: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        """The slice head's logits per slice, averaged with the study's (detached) attention: (B, num_classes).

        Training matches these to the study label, so the head learns the evidence on the slices the Transformer
        attends to without the auxiliary loss bending the attention itself.
        """
        if self.slice_head is None:
            raise ValueError("this series model has no slice head")
        return torch.einsum("bd,bdc->bc", attention.detach().float(), self.slice_head(features.float()))


class SliceClassifier(nn.Module):
    """One slice through a series model's trunk and slice head (the same weights, not a copy).

    Module paths match the series model's (`backbone.layer4`), so the manifest's Grad-CAM layer applies as is.
    """

    def __init__(self, series: SeriesModel) -> None:
        super().__init__()
        if series.slice_head is None:
            raise ValueError("this series model has no slice head")
        self.backbone = series.backbone
        self.slice_head = series.slice_head
        self.train(series.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.slice_head(self.backbone(x))


def build_model(*, task: str, arch: str, num_classes: int, arch_params: dict | None = None) -> nn.Module:
    """Build the network for a task ('image' or 'series')."""
    if task == "image":
        return build_classifier(arch=arch, num_classes=num_classes)
    if task == "series":
        arch_spec(arch)
        return SeriesModel(arch=arch, num_classes=num_classes, **(arch_params or {}))
    raise ValueError(f"unknown task '{task}'; expected 'image' or 'series'")


def gradcam_layer_for(*, task: str, arch: str) -> str:
    """Dotted module path of the Grad-CAM layer inside the model built for (task, arch)."""
    layer = arch_spec(arch).gradcam_layer
    return SERIES_PREFIX + layer if task == "series" else layer
