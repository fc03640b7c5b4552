"""Grad-CAM sanity: a model with a known answer, aligned upsampling, autocast, no side effects."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from imaging.ml.architectures import build_classifier
from imaging.ml.gradcam import gradcam, resize_heatmaps, upsample_cam

torch.set_num_threads(2)


class BrightSpotNet(nn.Module):
    """Class 1 = 'bright stuff': GAP over a stride-4 feature that copies local brightness; class 0 the opposite.

    For class 1 Grad-CAM must equal the (ReLU'd) feature map, so its maximum sits on the brightest spot.
    """

    def __init__(self) -> None:
        super().__init__()
        # two stride-2 3x3 box filters with padding 1, aligned like ResNet stages: cell i is centred on pixel 4i
        self.features = nn.Sequential(*(nn.Conv2d(3, 3, 3, stride=2, padding=1, groups=3, bias=False) for _ in "ab"))
        self.head = nn.Linear(3, 2)
        with torch.no_grad():
            for conv in self.features:
                conv.weight.fill_(1.0 / 9.0)
            self.head.weight.copy_(torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]))
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


@pytest.mark.parametrize("spot", [(8, 8), (40, 20), (60, 60), (5, 57)])
def test_heatmap_peaks_on_the_evidence(spot: tuple[int, int]) -> None:
    image = torch.zeros(1, 3, 64, 64)
    y, x = spot
    image[:, :, y - 2:y + 2, x - 2:x + 2] = 1.0
    result = gradcam(model=BrightSpotNet().eval(), layer="features", inputs=image, targets=torch.tensor([1]),
                     rotation_average=False)
    heatmap = result.heatmaps[0]
    assert heatmap.shape == (64, 64)
    assert float(heatmap.max()) == pytest.approx(1.0) and float(heatmap.min()) >= 0.0
    peak = np.unravel_index(int(heatmap.argmax()), heatmap.shape)
    assert abs(peak[0] - (y - 0.5)) <= 2 and abs(peak[1] - (x - 0.5)) <= 2
    # class 0 ('dark') has negative weights everywhere: ReLU leaves nothing, the map is all zeros, never NaN
    opposite = gradcam(model=BrightSpotNet().eval(), layer="features", inputs=image, targets=torch.tensor([0]))
    assert torch.count_nonzero(opposite.heatmaps) == 0


def test_default_target_is_the_predicted_class() -> None:
    model = BrightSpotNet().eval()
    bright = torch.zeros(2, 3, 32, 32)
    bright[0, :, 10:14, 10:14] = 1.0
    bright[1] = -1.0
    result = gradcam(model=model, layer="features", inputs=bright)
    assert result.targets.tolist() == [1, 0]
    assert result.logits.shape == (2, 2) and result.logits.dtype == torch.float32


def test_upsample_places_cell_i_on_pixel_stride_times_i() -> None:
    cam = torch.zeros(1, 1, 6, 6)
    cam[0, 0, 2, 4] = 1.0
    up = upsample_cam(cam, size=(96, 96))[0, 0]
    assert np.unravel_index(int(up.argmax()), (96, 96)) == (32, 64)


def test_resnet_heatmaps_are_batched_and_match_single_runs() -> None:
    torch.manual_seed(0)
    model = build_classifier(arch="resnet18", num_classes=2).eval().requires_grad_(False)
    inputs = torch.randn(3, 3, 64, 64)
    batched = gradcam(model=model, layer="layer4", inputs=inputs)
    single = gradcam(model=model, layer="layer4", inputs=inputs[1:2])
    assert batched.heatmaps.shape == (3, 64, 64)
    torch.testing.assert_close(batched.heatmaps[1], single.heatmaps[0], atol=1e-4, rtol=1e-4)
    # no side effects: hooks removed, no parameter gradients accumulated
    assert not model.layer4._forward_hooks
    assert all(p.grad is None for p in model.parameters())


def test_cam_is_float32_and_close_under_autocast() -> None:
    torch.manual_seed(0)
    model = build_classifier(arch="tiny", num_classes=3).eval()
    inputs = torch.randn(2, 3, 64, 64)
    reference = gradcam(model=model, layer="layer2", inputs=inputs)
    mixed = gradcam(model=model, layer="layer2", inputs=inputs, targets=reference.targets,
                    context=lambda: torch.autocast("cpu", dtype=torch.bfloat16))
    assert mixed.heatmaps.dtype == torch.float32
    assert float((mixed.heatmaps - reference.heatmaps).abs().mean()) < 0.05


def test_resize_back_to_original_shapes() -> None:
    maps = torch.rand(2, 32, 32)
    out = resize_heatmaps(heatmaps=maps, shapes=[(50, 70), (32, 32)])
    assert out[0].shape == (50, 70) and out[1].shape == (32, 32)
    assert out[0].dtype == np.float32 and out[0].min() >= 0.0 and out[0].max() <= 1.0
    assert np.allclose(out[1], maps[1].numpy())
