"""Audio networks on raw 16 kHz waveforms (N,1,T): log-mel + ConvNet, log-mel + CRNN, and M5 (1-D CNN)."""
from __future__ import annotations

import torch
from torch import nn

from transferlab.models.base import BlockNet
from transferlab.models.convnet import ConvNet


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
        return self._normalised(self.mel(x.float()))

    @staticmethod
    def _normalised(power: torch.Tensor) -> torch.Tensor:
        spec = torch.log(power + 1e-6)
        # Per-clip standardisation: the level of a recording says nothing about the word.
        mean = spec.mean(dim=(-2, -1), keepdim=True)
        std = spec.std(dim=(-2, -1), keepdim=True)
        return (spec - mean) / (std + 1e-5)

    def shares_frames(self, clip_samples: int, hop_samples: int) -> bool:
        """Whether windows `hop_samples` apart share their STFT frames (stream_windows applies)."""
        step, half = self.mel.hop_length, self.mel.n_fft // 2
        return hop_samples % step == 0 and clip_samples % step == 0 and clip_samples >= 2 * half + 2 * step

    @torch.no_grad()
    def stream_windows(self, stream: torch.Tensor, clip_samples: int, starts: list[int]) -> torch.Tensor:
        """forward() of every window stream[start:start + clip_samples] (a float stream (T,)), computed from one STFT
        of the stream: windows a multiple of the STFT hop apart share all but their two edge frames, and those (the
        ones forward pads by reflection) are computed per window as forward computes them. The same numbers up to
        floating-point rounding, at a fraction of the cost on overlapping windows (shares_frames must hold)."""
        mel, spec = self.mel, self.mel.spectrogram
        step, n_fft = mel.hop_length, mel.n_fft
        half = n_fft // 2
        starts_t = torch.as_tensor(starts, dtype=torch.long)
        first, last = int(starts_t.min()), int(starts_t.max()) + clip_samples
        # Interior frames: STFT frame k of the stream (centred on sample k * step) without padding.
        lo = max(first // step, 1)
        hi = (last - half) // step  # the last whole frame's index
        piece = stream[lo * step - half:hi * step + half].float()
        inner = mel.mel_scale(torchaudio_spectrogram(piece, spec, center=False))  # (mels, hi - lo + 1)
        frames = clip_samples // step + 1
        idx = (starts_t // step)[:, None] + torch.arange(1, frames - 1)[None, :] - lo  # (N, frames - 2)
        middle = inner[:, idx].permute(1, 0, 2)  # (N, mels, frames - 2)
        # Edge frames, reflection-padded as forward pads each clip: from the first and last 2 * step samples.
        edge = 2 * step
        heads = torch.stack([stream[a:a + edge] for a in starts]).float()
        tails = torch.stack([stream[a + clip_samples - edge:a + clip_samples] for a in starts]).float()
        left = mel(heads)[..., :1]
        right = mel(tails)[..., -1:]
        return self._normalised(torch.cat([left, middle, right], dim=-1)).unsqueeze(1)


def torchaudio_spectrogram(x: torch.Tensor, spec, center: bool) -> torch.Tensor:
    """torchaudio's Spectrogram module `spec` applied with another `center`."""
    import torchaudio.functional as AF

    return AF.spectrogram(x, spec.pad, spec.window, spec.n_fft, spec.hop_length, spec.win_length, spec.power,
                          spec.normalized, center, spec.pad_mode, spec.onesided)


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
        return self.forward_spectrogram(self.frontend(x))

    def forward_spectrogram(self, spec: torch.Tensor) -> torch.Tensor:
        """forward_features from the front end's output (LogMel.stream_windows makes it for a whole stream)."""
        return self.blocks(spec.contiguous(memory_format=torch.channels_last))


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


class M5(BlockNet):
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
        self._init_head(b, num_classes, dropout)


def audio_convnet(num_classes: int, in_chans: int = 1, widths=(16, 32, 64), dropout: float = 0.1) -> nn.Module:
    return AudioConvNet(num_classes, in_chans, widths, dropout)


def audio_crnn(num_classes: int, in_chans: int = 1, widths=(32, 64, 128), dropout: float = 0.1) -> nn.Module:
    return AudioCRNN(num_classes, in_chans, widths, dropout)


def m5(num_classes: int, in_chans: int = 1, widths=(32, 64), dropout: float = 0.1) -> nn.Module:
    return M5(num_classes, in_chans, widths, dropout)
