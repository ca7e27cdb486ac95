"""Speech networks whose weights come from elsewhere, behind our timm-style interface on (N,1,T) waveforms in
[-1, 1) (engine.to_input): silero's voice-activity network (`silero:vad`, weights inside the silero-vad wheel)
and torchaudio's self-supervised bundles (`ta:<BUNDLE>`: wav2vec 2.0, HuBERT, WavLM). Loading the weights is
transferlab.models.pretrained.audio's business; here they are built with random weights. A sample rate other than the
weights' is resampled inside the network, so stored clips and the engine stay as for our own audio models."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from transferlab.models.base import BlockNet, WrappedNet

SILERO_RATE = 16000
CHUNK, CONTEXT = 512, 64  # silero 16 kHz: samples per LSTM step, and the previous samples each chunk sees
# silero's layers in input → output order: their names are the safetensors keys' prefixes, one layer group each.
SILERO_LAYERS = ("stft_conv", "conv1", "conv2", "conv3", "conv4", "lstm_cell")
SILERO_DECODER = ("final_conv.weight", "final_conv.bias")  # frame → speech logit; becomes the imported head
POOLS = ("meanmax", "mean", "max")


def _check_rate(sample_rate: int) -> int:
    if not isinstance(sample_rate, int) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer, not {sample_rate!r}")
    return sample_rate


def _resampled(x: torch.Tensor, source: int, target: int) -> torch.Tensor:
    if source == target:
        return x
    from torchaudio.functional import resample

    return resample(x, source, target)  # windowed sinc, differentiable, no parameters (nothing in the state dict)


def _check_waveform(x: torch.Tensor) -> None:
    if x.ndim != 3 or x.shape[1] != 1:
        raise ValueError(f"expected waveforms (N, 1, T), got {tuple(x.shape)}")


class TimePool(nn.Module):
    """(N, C, T) → (N, C) mean over time, (N, C) max, or both concatenated (mean first)."""

    def __init__(self, kind: str):
        super().__init__()
        if kind not in POOLS:
            raise ValueError(f"pool must be one of {', '.join(POOLS)}, not {kind!r}")
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = ([x.mean(-1)] if self.kind != "max" else []) + ([x.amax(-1)] if self.kind != "mean" else [])
        return torch.cat(parts, dim=1)


class SileroVAD(BlockNet):
    """silero-vad 16 kHz (v5/v6): a learned STFT (conv, 256 taps, hop 128) → magnitude of its 129 bins → four
    1-D convs → an LSTM cell → (silero: relu → final_conv → sigmoid per step). Parameter names and shapes are
    those of silero_vad_16k.safetensors, so its tensors load by name; the decoder is no module here: importing
    makes it the head (transferlab.models.pretrained.audio).

    Computed as silero's streaming inference is: 512-sample chunks, each with the previous 64 samples as context
    (zeros before the clip) and reflect-padded by 64 behind, encoded alone into one frame (4 STFT frames, halved
    twice by the stride-2 convs, each conv zero-padded at the chunk's edges), the LSTM stepped once per chunk from
    a zero state (32 steps for 1 s; a partial last chunk is zero-padded). Only the batching differs: all chunks of
    all clips go through the encoder in one batch, and the LSTM steps run as one fused call. The obvious shortcut,
    the convs over the whole clip at once (the same 8 ms / 32 ms frame grid, but each conv sees the neighbouring
    chunks' frames where silero saw its zero padding), costs as much and is not what the weights learned: its
    per-frame speech probabilities correlated 0.05 with silero's on our clips (measured), these are silero's.

    Features: relu of the LSTM's hidden states (N, 128, chunks), what silero's decoder reads; pooled over time
    into the head, mean and max by default (wake word, 100 positives, full, FRR@1%FAR over two seeds: mean+max
    0.86/0.85, mean 0.89/0.92, max 0.88/0.85; measured)."""

    def __init__(self, num_classes: int, in_chans: int = 1, sample_rate: int = SILERO_RATE, pool: str = "meanmax",
                 dropout: float = 0.0):
        super().__init__()
        if in_chans != 1:
            raise ValueError(f"silero takes mono waveforms (in_chans 1), not {in_chans} channels")
        self.sample_rate = _check_rate(sample_rate)
        self.stft_conv = nn.Conv1d(1, 258, kernel_size=256, stride=128, bias=False)
        self.conv1 = nn.Conv1d(129, 128, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(128, 64, kernel_size=3, stride=2, padding=1)
        self.conv3 = nn.Conv1d(64, 64, kernel_size=3, stride=2, padding=1)
        self.conv4 = nn.Conv1d(64, 128, kernel_size=3, padding=1)
        self.lstm_cell = nn.LSTMCell(128, 128)
        self.pool = TimePool(pool)
        self._init_head(128 * (2 if pool == "meanmax" else 1), num_classes, dropout)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Waveforms (N,1,T) at 16 kHz → one encoder frame per 512-sample chunk (chunks, N, 128)."""
        n = x.shape[0]
        x = F.pad(x[:, 0], (CONTEXT, (-x.shape[-1]) % CHUNK))  # zero context in front, a partial chunk completed
        chunks = x.unfold(-1, CONTEXT + CHUNK, CHUNK).reshape(-1, 1, CONTEXT + CHUNK)  # (N*chunks, 1, 576)
        chunks = F.pad(chunks, (0, CONTEXT), mode="reflect")
        re, im = self.stft_conv(chunks).chunk(2, dim=1)
        # silero takes sqrt(re² + im²). The floor (only below 1e-20, which nothing audible comes near) keeps the
        # gradient finite where digital silence makes both zero and the STFT itself is trained (sqrt'(0) = inf).
        y = torch.sqrt((re * re + im * im).clamp_min(1e-20))
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            y = F.relu(conv(y))
        return y[..., 0].reshape(n, -1, y.shape[1]).transpose(0, 1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        _check_waveform(x)
        frames = self.encode(_resampled(x.float(), self.sample_rate, SILERO_RATE))
        zero = frames.new_zeros(1, frames.shape[1], self.lstm_cell.hidden_size)  # silero starts from a zero state
        # The cell stepped over the frames as one fused call of the op nn.LSTM runs, on the cell's own tensors:
        # the numbers of a Python loop of lstm_cell, fwd+bwd 2x faster on CPU (measured); stateless, so one
        # model may serve several threads. Arguments: biases, 1 layer, no dropout, train, not bidirectional,
        # not batch-first.
        cell = self.lstm_cell
        states = torch.lstm(frames, (zero, zero), [cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh],
                            True, 1, 0.0, self.training, False, False)[0]
        return F.relu(states.permute(1, 2, 0))

    def group_matcher(self, coarse: bool = False):
        # One group per silero layer, input → output: surgical "first" tunes the learned STFT, last_k 1 the LSTM.
        order = {name: i for i, name in enumerate(SILERO_LAYERS)}
        return lambda name: order.get(name.split(".")[0], math.inf)


def silero_net(member: str, num_classes: int, in_chans: int = 1, **kwargs) -> SileroVAD:
    """Family `silero`: `silero:vad` (a family, not a plain name, as `tv:`: test_models' per-architecture checks
    assume BatchNorm statistics, which silero has none of)."""
    if member != "vad":
        raise ValueError(f"unknown silero network {member!r} (known: vad)")
    return SileroVAD(num_classes, in_chans, **kwargs)


def torchaudio_bundle(name: str):
    """torchaudio.pipelines.<name>, checked to be a wav2vec 2.0-style bundle (wav2vec 2.0, HuBERT, WavLM, with
    or without a CTC head); nothing is downloaded."""
    from torchaudio import pipelines
    from torchaudio.pipelines import Wav2Vec2Bundle

    known = sorted(n for n in dir(pipelines) if isinstance(getattr(pipelines, n), Wav2Vec2Bundle))
    bundle = getattr(pipelines, name, None) if name.isupper() else None
    if not isinstance(bundle, Wav2Vec2Bundle):
        raise ValueError(f"{name!r} is no torchaudio wav2vec2/HuBERT/WavLM bundle (known: {', '.join(known)})")
    return bundle


def bundle_network(bundle, num_layers: int | None = None) -> nn.Module:
    """The bundle's network with random weights, without its CTC output layer (`aux`), keeping only the first
    `num_layers` transformer layers (None: all)."""
    from torchaudio.models import wav2vec2_model, wavlm_model

    factory = {"Wav2Vec2": wav2vec2_model, "WavLM": wavlm_model}[bundle._model_type]
    net = factory(**{**bundle._params, "aux_num_out": None})
    layers = net.encoder.transformer.layers
    if num_layers is not None:
        if not 0 < num_layers <= len(layers):
            raise ValueError(f"num_layers must be 1..{len(layers)}, not {num_layers}")
        del layers[num_layers:]
    return net


class TorchaudioNet(WrappedNet):
    """A torchaudio bundle's network `net` (feature extractor → transformer) → mean over time of its last layer's
    output → `head`. Input: our waveforms, resampled to the bundle's rate inside the network when they differ;
    bundles trained on normalised waveforms (the large ones) get each clip normalised, as fairseq does (torchaudio
    normalises over the whole batch tensor, which is the same for one clip). Our keys are "net." + the bundle's."""

    def __init__(self, bundle: str, num_classes: int, in_chans: int = 1, sample_rate: int = 16000,
                 num_layers: int | None = None):
        super().__init__()
        if in_chans != 1:
            raise ValueError(f"torchaudio bundles take mono waveforms (in_chans 1), not {in_chans} channels")
        spec = torchaudio_bundle(bundle)
        self.bundle, self.sample_rate, self.bundle_rate = bundle, _check_rate(sample_rate), int(spec.sample_rate)
        self.normalize_waveform = bool(spec._normalize_waveform)
        self.net = bundle_network(spec, num_layers)
        self.num_features = int(spec._params["encoder_embed_dim"])
        self.num_classes = num_classes
        self.head = self._new_head(num_classes)
        transformer = self.net.encoder.transformer
        last = len(transformer.layers)
        # Ordinal per parameter: 0 for everything before the first layer (feature extractor, projection, position
        # conv), i+1 for layer i; the transformer's own LayerNorm goes where it runs: before the first layer (base
        # models, post-LN layers) or after the last (large ones, pre-LN layers).
        self._ordinals = {}
        for name, _ in self.net.named_parameters():
            if name.startswith("encoder.transformer.layers."):
                ordinal = int(name.split(".")[3]) + 1
            elif name.startswith("encoder.transformer.layer_norm."):
                ordinal = 0 if transformer.layer_norm_first else last
            else:
                ordinal = 0
            self._ordinals["net." + name] = ordinal

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N,1,T) → the last kept layer's output (N, frames, features), one frame per 20 ms."""
        _check_waveform(x)
        x = _resampled(x[:, 0].float(), self.sample_rate, self.bundle_rate)
        if self.normalize_waveform:
            x = F.layer_norm(x, x.shape[-1:])
        features, _ = self.net.feature_extractor(x, None)
        return self.net.encoder(features)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean(1)
        return x if pre_logits else self.head(x)


def torchaudio_net(bundle: str, num_classes: int, in_chans: int = 1, **kwargs) -> TorchaudioNet:
    return TorchaudioNet(bundle, num_classes, in_chans, **kwargs)
