"""How stored samples become network input: the constants and the card's `preprocessing` entry.

Images are stored as uint8 and the network sees (x/255 - MEAN) / STD; clips are stored as int16 and the network
sees floats in [-1, 1). Every model card carries these (timm's pretrained_cfg idea), so a model loads and
predicts with nothing else; engine.to_input applies them.
"""
from __future__ import annotations

PIXEL_MEAN, PIXEL_STD = 0.5, 0.5
PCM_SCALE = 1 / 32768


def image_preprocessing(image_size: int, channels: int) -> dict:
    return {"modality": "image", "image_size": image_size, "channels": channels, "scale": 1 / 255,
            "mean": PIXEL_MEAN, "std": PIXEL_STD}


def audio_preprocessing(sample_rate: int, clip_samples: int) -> dict:
    return {"modality": "audio", "sample_rate": sample_rate, "clip_samples": clip_samples, "channels": 1,
            "scale": PCM_SCALE}
