"""Networks as plain nn.Modules with timm's interface, and the one registry that builds them."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
_MODALITY: dict[str, str] = {}  # what a model eats: "image" (N,C,H,W) or "audio" (N,1,T) waveforms


def register(name: str, modality: str = "image"):
    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY[name] = fn
        _MODALITY[name] = modality
        return fn
    return deco


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def modality(name: str) -> str:
    return _MODALITY[name]


def create_model(name: str, num_classes: int, in_chans: int = 1, **kwargs) -> nn.Module:
    """Build a registered architecture with a fresh, randomly initialised head."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(list_models())}")
    return _REGISTRY[name](num_classes=num_classes, in_chans=in_chans, **kwargs)


def _conv_bn(cin: int, cout: int, stride: int | tuple[int, int] = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class ConvNet(nn.Module):
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
            first = _conv_bn(cin, w, stem_stride if i == 0 else 1)
            layers = [first] if last else [first, _conv_bn(w, w), nn.MaxPool2d(2)]
            blocks.append(nn.Sequential(*layers))
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.num_features = cin
        self.drop_rate = dropout
        self.head_drop = nn.Dropout(dropout)
        self.num_classes = num_classes
        self.head = nn.Linear(cin, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(self.pool(x))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        """Delete the output layer and its weights; put a new randomly initialised one in place."""
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def group_matcher(self, coarse: bool = False) -> dict:
        # Same contract as timm's models, so timm's layer grouping (for last_k / layer decay) applies.
        return {"stem": r"^blocks\.0\.", "blocks": r"^blocks\.(\d+)"}


@register("convnet")
def convnet(num_classes: int, in_chans: int = 1, widths=(32, 64, 128), dropout: float = 0.1,
            stem_stride: int = 1) -> nn.Module:
    return ConvNet(num_classes, in_chans, widths, dropout, stem_stride)


@register("convnet_small")
def convnet_small(num_classes: int, in_chans: int = 1, widths=(16, 32, 64), dropout: float = 0.1,
                  stem_stride: int = 1) -> nn.Module:
    # stem_stride 2 for larger canvases: the full-resolution first block is most of the cost (4x on 48 px)
    return ConvNet(num_classes, in_chans, widths, dropout, stem_stride)


@register("resnet18")
def resnet18(num_classes: int, in_chans: int = 3, widths=None, dropout: float = 0.0) -> nn.Module:
    """timm's ResNet-18 (random init, nothing downloaded) for users' larger RGB images."""
    import timm

    return timm.create_model("resnet18", pretrained=False, num_classes=num_classes, in_chans=in_chans,
                             drop_rate=dropout)


class LogMel(nn.Module):
    """Waveform (N,1,T) → per-clip normalised log-mel spectrogram (N,1,mels,frames); no parameters."""

    def __init__(self, sample_rate: int = 16000, n_mels: int = 40, win_ms: float = 30.0, hop_ms: float = 20.0):
        super().__init__()
        from torchaudio.transforms import MelSpectrogram

        win, hop = int(sample_rate * win_ms / 1000), int(sample_rate * hop_ms / 1000)
        n_fft = 1 << (win - 1).bit_length()  # a power of two: several times faster FFTs
        self.mel = MelSpectrogram(sample_rate, n_fft=n_fft, win_length=win, hop_length=hop, n_mels=n_mels)

    @torch.no_grad()  # fixed transform, nothing to learn: no autograd graph through the FFT
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spec = torch.log(self.mel(x.float()) + 1e-6)
        # Per-clip standardisation: the level of a recording says nothing about the word.
        mean = spec.mean(dim=(-2, -1), keepdim=True)
        std = spec.std(dim=(-2, -1), keepdim=True)
        return (spec - mean) / (std + 1e-5)


class AudioConvNet(ConvNet):
    """The ConvNet on a log-mel front end (torchaudio), so the model maps raw clips to classes."""

    def __init__(self, num_classes: int, in_chans: int = 1, widths=(16, 32, 64), dropout: float = 0.1,
                 sample_rate: int = 16000, n_mels: int = 40, stem_stride: int | tuple[int, int] = 2):
        # A stride-2 stem: a spectrogram is larger than a digit, and the full-resolution convs cost 4x.
        super().__init__(num_classes, in_chans, widths, dropout, stem_stride=stem_stride)
        self.frontend = LogMel(sample_rate, n_mels)
        # Channels-last convs on CPU: a training step 1.45x, inference 2.5x faster than contiguous (measured);
        # loading a state dict copies into these tensors and keeps their layout, saving makes them contiguous.
        self.blocks.to(memory_format=torch.channels_last)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.frontend(x).contiguous(memory_format=torch.channels_last))


class TemporalGRUPool(nn.Module):
    """Feature maps (N,C,F,T) → (N, 2*hidden): a bidirectional GRU over time (after averaging frequency),
    max over time. Average pooling turns a clip into a bag of local patterns; a wake word and its near
    misses ("marvin", "marvel", "carving") share most of those and differ in their order."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.gru = nn.GRU(channels, hidden, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x.mean(2).transpose(1, 2))
        return out.amax(1)


class AudioCRNN(AudioConvNet):
    """Log-mel → conv blocks that keep the 20 ms time resolution in the stem (stride 2 in frequency only)
    → a bidirectional GRU over time → head. The GRU is the last body group, so `last_k: 1` retrains it."""

    def __init__(self, num_classes: int, in_chans: int = 1, widths=(32, 64, 128), dropout: float = 0.1,
                 sample_rate: int = 16000, n_mels: int = 40):
        super().__init__(num_classes, in_chans, widths, dropout, sample_rate, n_mels, stem_stride=(2, 1))
        hidden = max(list(widths)[-1] // 2, 1)
        self.pool = TemporalGRUPool(self.num_features, hidden)
        self.num_features = 2 * hidden
        self.reset_classifier(num_classes)


def _conv1d_bn(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(cin, cout, kernel, stride=stride, padding=kernel // 2 if stride == 1 else 0,
                                   bias=False), nn.BatchNorm1d(cout), nn.ReLU(inplace=True))


class M5(nn.Module):
    """M5 (Dai et al. 2017): a 1-D CNN straight on the raw waveform, the end-to-end audio branch."""

    def __init__(self, num_classes: int, in_chans: int = 1, widths=(32, 64), dropout: float = 0.1,
                 stem_kernel: int = 80, stem_stride: int = 16):
        super().__init__()
        a, b = list(widths)[:2] if len(widths) >= 2 else (widths[0], widths[0])
        self.blocks = nn.Sequential(
            nn.Sequential(_conv1d_bn(in_chans, a, stem_kernel, stem_stride), nn.MaxPool1d(4)),
            nn.Sequential(_conv1d_bn(a, a, 3), nn.MaxPool1d(4)),
            nn.Sequential(_conv1d_bn(a, b, 3), nn.MaxPool1d(4)),
            nn.Sequential(_conv1d_bn(b, b, 3)))
        self.pool = nn.Sequential(nn.AdaptiveAvgPool1d(1), nn.Flatten())
        self.num_features, self.num_classes, self.drop_rate = b, num_classes, dropout
        self.head_drop = nn.Dropout(dropout)
        self.head = nn.Linear(b, num_classes) if num_classes > 0 else nn.Identity()

    forward_features = ConvNet.forward_features
    forward_head = ConvNet.forward_head
    forward = ConvNet.forward
    get_classifier = ConvNet.get_classifier
    reset_classifier = ConvNet.reset_classifier
    group_matcher = ConvNet.group_matcher


@register("audio_convnet", modality="audio")
def audio_convnet(num_classes: int, in_chans: int = 1, widths=(16, 32, 64), dropout: float = 0.1) -> nn.Module:
    return AudioConvNet(num_classes, in_chans, widths, dropout)


@register("audio_crnn", modality="audio")
def audio_crnn(num_classes: int, in_chans: int = 1, widths=(32, 64, 128), dropout: float = 0.1) -> nn.Module:
    return AudioCRNN(num_classes, in_chans, widths, dropout)


@register("m5", modality="audio")
def m5(num_classes: int, in_chans: int = 1, widths=(32, 64), dropout: float = 0.1) -> nn.Module:
    return M5(num_classes, in_chans, widths, dropout)


def head_module_name(model: nn.Module) -> str:
    """Dotted name of the classifier module (timm models name it differently: head, fc, classifier)."""
    classifier = model.get_classifier()
    for name, module in model.named_modules():
        if module is classifier:
            return name
    raise ValueError(f"{type(model).__name__}.get_classifier() is not a submodule")


def body_groups(model: nn.Module) -> list[list[str]]:
    """Parameter names of the body grouped input→output (timm's coarse groups), without the head."""
    from timm.models import group_parameters

    head = head_module_name(model) + "."
    grouped = group_parameters(model, model.group_matcher(coarse=True))
    groups = [[n for n in names if not n.startswith(head)] for _, names in sorted(grouped.items())]
    return [g for g in groups if g]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
