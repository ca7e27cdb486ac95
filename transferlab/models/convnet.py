"""Image networks: the small VGG-style ConvNet (ours) and timm's ResNet-18 (for users' larger RGB images)."""
from __future__ import annotations

from torch import nn

from transferlab.models.base import BlockNet


def conv_bn(cin: int, cout: int, stride: int | tuple[int, int] = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class ConvNet(BlockNet):
    """A small VGG-style CNN: per stage two 3x3 conv+BN+ReLU then 2x2 pooling; global pooling at the end.

    Blocks are ordered from input to output so transfer recipes can address "the last k blocks".
    """

    def __init__(self, num_classes: int, in_chans: int = 1, widths: tuple[int, ...] | list[int] = (32, 64, 128),
                 dropout: float = 0.1, stem_stride: int | tuple[int, int] = 1):
        super().__init__()
        widths = list(widths)
        blocks: list[nn.Module] = []
        cin = in_chans
        for i, w in enumerate(widths):
            last = i == len(widths) - 1
            first = conv_bn(cin, w, stem_stride if i == 0 else 1)
            layers = [first] if last else [first, conv_bn(w, w), nn.MaxPool2d(2)]
            blocks.append(nn.Sequential(*layers))
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self._init_head(cin, num_classes, dropout)


def convnet(num_classes: int, in_chans: int = 1, widths=(32, 64, 128), dropout: float = 0.1,
            stem_stride: int = 1) -> nn.Module:
    return ConvNet(num_classes, in_chans, widths, dropout, stem_stride)


def convnet_small(num_classes: int, in_chans: int = 1, widths=(16, 32, 64), dropout: float = 0.1,
                  stem_stride: int = 1) -> nn.Module:
    # stem_stride 2 for larger canvases: the full-resolution first block is most of the cost (4x on 48 px)
    return ConvNet(num_classes, in_chans, widths, dropout, stem_stride)


def resnet18(num_classes: int, in_chans: int = 3, widths=None, dropout: float = 0.0) -> nn.Module:
    """timm's ResNet-18 (random init, nothing downloaded) for users' larger RGB images."""
    import timm

    return timm.create_model("resnet18", pretrained=False, num_classes=num_classes, in_chans=in_chans,
                             drop_rate=dropout)
