"""Inception-ResNet-v1, the face-recognition network of FaceNet (Schroff et al., 2015).

Written for chatface in torch from the architecture of Szegedy et al. (2016) as David
Sandberg's facenet trained it; module names follow the published PyTorch port of those
weights (timesler/facenet-pytorch), so its state dict loads as it is. Only the embedding
is kept: the VGGFace2 classification layer is never needed to compare two faces.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

INPUT_SIZE = 160  # the face crops the network was trained on, in pixels
EMBED_DIM = 512
BN_EPS = 1e-3  # TensorFlow's batch-norm epsilon, which the weights were trained with
# Where the network looks in an FFHQ-aligned crop (left, top, right, bottom, as fractions
# of its side): the face box of a face detector plus a margin, as in facenet's training
# crops (MTCNN box + margin). FFHQ alignment puts the face box at about x 0.23-0.77 and
# y 0.2-0.85 (RetinaFace on the test photos), a little below the centre.
FACE_BOX = (0.18, 0.24, 0.82, 0.88)


class ConvBN(nn.Module):
    """Convolution without bias, batch norm, ReLU."""

    def __init__(
        self,
        channels_in: int,
        channels_out: int,
        kernel: int | tuple[int, int],
        stride: int = 1,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels_in, channels_out, kernel, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(channels_out, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def chain(*layers: tuple) -> nn.Sequential:
    """ConvBN layers one after the other, each given as ConvBN's arguments."""
    return nn.Sequential(*(ConvBN(*layer) for layer in layers))


class Parallel(nn.Module):
    """Branches ``branch0``, ``branch1``, ... applied to the same input, concatenated."""

    def __init__(self, *branches: nn.Module) -> None:
        super().__init__()
        self.count = len(branches)
        for index, branch in enumerate(branches):
            self.add_module(f"branch{index}", branch)

    def branches(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([getattr(self, f"branch{i}")(x) for i in range(self.count)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.branches(x)


class Residual(Parallel):
    """An Inception-ResNet block: the branches, projected back by a 1x1 convolution
    (``conv2d``) and added to the input, scaled down so the deep stack trains stably."""

    def __init__(self, channels: int, scale: float, *branches: nn.Module, relu: bool = True):
        super().__init__(*branches)
        width = sum(_out_channels(branch) for branch in branches)
        self.conv2d = nn.Conv2d(width, channels, 1)
        self.scale, self.relu = scale, relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x + self.scale * self.conv2d(self.branches(x))
        return F.relu(out) if self.relu else out


def _out_channels(branch: nn.Module) -> int:
    last = branch[-1] if isinstance(branch, nn.Sequential) else branch
    return last.conv.out_channels  # type: ignore[union-attr]


def block35(scale: float = 0.17) -> Residual:
    """35x35 grid block (256 channels)."""
    return Residual(
        256,
        scale,
        ConvBN(256, 32, 1),
        chain((256, 32, 1), (32, 32, 3, 1, 1)),
        chain((256, 32, 1), (32, 32, 3, 1, 1), (32, 32, 3, 1, 1)),
    )


def block17(scale: float = 0.10) -> Residual:
    """17x17 grid block (896 channels), with factorised 7x7 convolutions."""
    return Residual(
        896,
        scale,
        ConvBN(896, 128, 1),
        chain((896, 128, 1), (128, 128, (1, 7), 1, (0, 3)), (128, 128, (7, 1), 1, (3, 0))),
    )


def block8(scale: float = 0.20, relu: bool = True) -> Residual:
    """8x8 grid block (1792 channels), with factorised 3x3 convolutions."""
    return Residual(
        1792,
        scale,
        ConvBN(1792, 192, 1),
        chain((1792, 192, 1), (192, 192, (1, 3), 1, (0, 1)), (192, 192, (3, 1), 1, (1, 0))),
        relu=relu,
    )


class InceptionResNetV1(nn.Module):
    """Aligned face crops -> 512-d unit embeddings; ``embed`` takes chatface's crops."""

    def __init__(self) -> None:
        super().__init__()
        self.conv2d_1a = ConvBN(3, 32, 3, 2)
        self.conv2d_2a = ConvBN(32, 32, 3)
        self.conv2d_2b = ConvBN(32, 64, 3, 1, 1)
        self.maxpool_3a = nn.MaxPool2d(3, 2)
        self.conv2d_3b = ConvBN(64, 80, 1)
        self.conv2d_4a = ConvBN(80, 192, 3)
        self.conv2d_4b = ConvBN(192, 256, 3, 2)
        self.repeat_1 = nn.Sequential(*(block35() for _ in range(5)))
        self.mixed_6a = Parallel(
            ConvBN(256, 384, 3, 2),
            chain((256, 192, 1), (192, 192, 3, 1, 1), (192, 256, 3, 2)),
            nn.MaxPool2d(3, 2),
        )
        self.repeat_2 = nn.Sequential(*(block17() for _ in range(10)))
        self.mixed_7a = Parallel(
            chain((896, 256, 1), (256, 384, 3, 2)),
            chain((896, 256, 1), (256, 256, 3, 2)),
            chain((896, 256, 1), (256, 256, 3, 1, 1), (256, 256, 3, 2)),
            nn.MaxPool2d(3, 2),
        )
        self.repeat_3 = nn.Sequential(*(block8() for _ in range(5)))
        self.block8 = block8(scale=1.0, relu=False)
        self.last_linear = nn.Linear(1792, EMBED_DIM, bias=False)
        self.last_bn = nn.BatchNorm1d(EMBED_DIM, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, 160, 160] standardised as in training ((pixel - 127.5) / 128) -> [B, 512]."""
        for module in self.children():
            if module is self.last_linear:
                break
            x = module(x)
        x = self.last_linear(x.mean(dim=(2, 3)))  # global average pooling
        return F.normalize(self.last_bn(x), dim=1)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """[B, 3, S, S] FFHQ-aligned faces in [-1, 1], any S -> [B, 512] unit embeddings.

        The face region (``FACE_BOX``) is cut out and resized to 160 px; differentiable
        with respect to ``images``.
        """
        device = next(self.parameters()).device
        images = images.to(device=device, dtype=torch.float32)
        size = images.shape[-1]
        left, top, right, bottom = (round(f * size) for f in FACE_BOX)
        face = images[..., top:bottom, left:right]
        face = F.interpolate(
            face, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False,
            antialias=True,
        )  # fmt: skip
        # facenet's "fixed image standardisation": (pixel - 127.5) / 128.
        return self(face * (127.5 / 128.0))
