"""Hand-designed audio features, the first stage of the pipeline branch: MFCC + Δ + ΔΔ (torchaudio), pooled
over the detected speech region as a whole and over equal parts of it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file

from transferlab.data.prepared import METADATA_FILE, Prepared
from transferlab.models.preprocessing import PCM_SCALE
from transferlab.system.io import save_tensors

FEATURES_FILE = "features.safetensors"


def speech_region(log_energy: torch.Tensor, drop_db: float = 25.0) -> tuple[torch.Tensor, torch.Tensor]:
    """First and last frame whose energy is within drop_db of the clip's loudest frame (a plain energy VAD)."""
    loud = log_energy >= log_energy.max(1, keepdim=True).values - drop_db / 10 * np.log(10)
    frames = torch.arange(log_energy.shape[1]).expand_as(loud)
    start = torch.where(loud, frames, log_energy.shape[1]).min(1).values
    end = torch.where(loud, frames, -1).max(1).values
    return start, end


def pooled_features(clips: torch.Tensor, sample_rate: int, n_mfcc: int = 20, segments: int = 4) -> torch.Tensor:
    """int16 clips (N,T) → (N, 2*3*n_mfcc + segments*3*n_mfcc) features: mean and std of MFCC+Δ+ΔΔ over the
    speech region, then the mean over each of `segments` equal parts of it (a coarse time course)."""
    from torchaudio.transforms import MFCC, ComputeDeltas

    mfcc = MFCC(sample_rate, n_mfcc=n_mfcc, melkwargs={"n_fft": 512, "win_length": int(0.025 * sample_rate),
                                                        "hop_length": int(0.010 * sample_rate), "n_mels": 40})
    deltas = ComputeDeltas()
    out = []
    with torch.no_grad():
        for i in range(0, len(clips), 1000):
            x = clips[i:i + 1000].float() * PCM_SCALE
            c = mfcc(x)  # (n, n_mfcc, frames); coefficient 0 is the log energy
            d = deltas(c)
            frames = torch.cat([c, d, deltas(d)], 1)
            start, end = speech_region(c[:, 0])
            idx = torch.arange(frames.shape[-1]).unsqueeze(0)
            inside = ((idx >= start[:, None]) & (idx <= end[:, None])).float()
            count = inside.sum(1, keepdim=True).clamp(min=1)
            mean = (frames * inside[:, None]).sum(-1) / count
            std = (((frames - mean[..., None]) ** 2 * inside[:, None]).sum(-1) / count).sqrt()
            part = ((idx - start[:, None]) * segments // (end - start + 1).clamp(min=1)[:, None]).clamp(0, segments - 1)
            seg_means = []
            for s in range(segments):
                m = inside * (part == s).float()
                seg_means.append((frames * m[:, None]).sum(-1) / m.sum(1, keepdim=True).clamp(min=1))
            out.append(torch.cat([mean, std, *seg_means], 1))
    return torch.cat(out) if out else torch.zeros(0, (2 + segments) * 3 * n_mfcc)


def write_features(out: Path, source: Prepared, n_mfcc: int, segments: int) -> dict:
    sample_rate = int(source.metadata["sample_rate"].iloc[0])
    feats = pooled_features(source.samples, sample_rate, n_mfcc, segments)
    if not torch.isfinite(feats).all():
        bad = source.metadata["id"][~torch.isfinite(feats).all(1).numpy()].tolist()[:10]
        raise ValueError(f"non-finite features for clips {bad}")
    out.mkdir(parents=True, exist_ok=True)
    save_tensors({"features": feats.contiguous(), "labels": source.labels.clone()}, str(out / FEATURES_FILE),
              metadata={"classes": ",".join(source.classes)})
    source.metadata[["id", "label", "label_name", "split", "speaker"]].to_csv(out / METADATA_FILE, index=False)
    return {"clips": len(feats), "features": int(feats.shape[1])}


def load_features(root: Path) -> tuple[torch.Tensor, torch.Tensor, pd.DataFrame]:
    tensors = load_file(str(root / FEATURES_FILE))
    return tensors["features"], tensors["labels"], pd.read_csv(root / METADATA_FILE, dtype={"speaker": str})
