"""Audio backbones: kind silero_vad (the voice-activity network inside the installed silero-vad wheel, trained on
real speech; nothing is ever downloaded) and kind torchaudio (a torchaudio.pipelines bundle such as WAV2VEC2_BASE,
its weights through torchaudio's own loader, which downloads into and reuses $TORCH_HOME/hub/checkpoints/)."""
from __future__ import annotations

import importlib.metadata
from pathlib import Path

import torch

from transferlab.models.artifacts import make_card
from transferlab.models.preprocessing import audio_preprocessing
from transferlab.system.io import file_md5, relative_path
from transferlab.models import count_parameters
from transferlab.models.speech import SILERO_DECODER, SILERO_RATE, SileroVAD, TorchaudioNet, torchaudio_bundle
from transferlab.params import ImportedBackboneParams
from transferlab.models.pretrained.files import BackboneImportError, check_keys, hub_checkpoint, read_state_dict

SILERO_DIST, SILERO_FILE = "silero-vad", "silero_vad/data/silero_vad_16k.safetensors"
TORCHAUDIO_MODELS = "https://download.pytorch.org/torchaudio/models/"  # where a bundle's bare file name points


def _preprocessing(sample_rate: int, clip_seconds: float, weights_rate: int, **extra) -> dict:
    """The stored clips' preprocessing (as our audio pre-training records it), plus what the network does to them
    before its weights see them (inside forward_features)."""
    return {**audio_preprocessing(sample_rate, int(round(sample_rate * clip_seconds))),
            "network_input": {"sample_rate": weights_rate,
                              "resampled_from": sample_rate if sample_rate != weights_rate else None,
                              **extra, "applied_by": "forward_features"}}


def _card(arch: dict, classes: list[str], preprocessing: dict, entry: ImportedBackboneParams, source: dict,
          model: torch.nn.Module) -> dict:
    return make_card(architecture=arch, classes=classes, preprocessing=preprocessing,
                     params={"backbone": entry.model_dump()},
                     parents=[{"role": "pretrained-weights", "path": source["file"], "md5": source["md5"]}],
                     metrics={"parameters": count_parameters(model)}, extra={"task": "source", "imported": source})


def locate_silero_vad(entry: ImportedBackboneParams) -> Path:
    # Through the installed distribution's file list, not importlib.resources: that imports the silero_vad
    # package, whose import runs torch.set_num_threads(1) for the whole process.
    try:
        dist = importlib.metadata.distribution(SILERO_DIST)
    except importlib.metadata.PackageNotFoundError:
        raise BackboneImportError(f"backbone {entry.name}: the {SILERO_DIST} package is not installed (a transferlab "
                                  "dependency): pip install -c constraints.txt silero-vad") from None
    return Path(dist.locate_file(SILERO_FILE))


def silero_head(decoder_weight: torch.Tensor, decoder_bias: torch.Tensor, model: SileroVAD) -> dict:
    """silero's decoder (Conv1d(128, 1, 1) on each frame) as our head on the pooled features: the mean over
    frames of its logits, exactly (it is linear), read off the mean part of the features; the max part weighs 0."""
    if model.pool.kind == "max":
        raise ValueError("silero's decoder reads the mean over frames: pool 'max' has none")
    weight = torch.zeros_like(model.head.weight)
    weight[:, :decoder_weight.shape[1]] = decoder_weight[:, :, 0]
    return {"head.weight": weight, "head.bias": decoder_bias.clone()}


def import_silero_vad(entry: ImportedBackboneParams, sample_rate: int, clip_seconds: float) -> tuple[SileroVAD, dict]:
    """silero's network with its weights, classes ["speech"]: its head is silero's decoder, so the imported model
    scores a clip's speech (fine-tuning replaces the head)."""
    path = locate_silero_vad(entry)
    if not path.is_file():
        raise BackboneImportError(f"{path}: not found in the installed {SILERO_DIST} "
                                  f"{importlib.metadata.version(SILERO_DIST)}: reinstall it "
                                  "(pip install --force-reinstall -c constraints.txt silero-vad)")
    state = read_state_dict(path)
    model = SileroVAD(1, 1, sample_rate=sample_rate)
    encoder = {k: v for k, v in model.state_dict().items() if not k.startswith("head.")}
    expected = {**encoder, SILERO_DECODER[0]: torch.empty(1, 128, 1), SILERO_DECODER[1]: torch.empty(1)}
    check_keys(expected, state, path, "silero-vad 16 kHz")
    model.load_state_dict({**{k: state[k] for k in encoder}, **silero_head(*(state[k] for k in SILERO_DECODER), model)},
                          strict=True)
    source = {"kind": entry.kind, "arch": "silero_vad_16k", "file": relative_path(path), "md5": file_md5(path),
              "sample_rate": SILERO_RATE, "package": f"{SILERO_DIST} {importlib.metadata.version(SILERO_DIST)}"}
    arch = {"name": "silero:vad", "kwargs": {"sample_rate": sample_rate, "pool": model.pool.kind}}
    prep = _preprocessing(sample_rate, clip_seconds, SILERO_RATE, frames_ms=32)
    model.eval()
    return model, _card(arch, ["speech"], prep, entry, source, model)


def _bundle(entry: ImportedBackboneParams):
    try:
        return torchaudio_bundle(entry.arch)
    except ValueError as err:
        raise BackboneImportError(f"backbone {entry.name}: arch {err}") from None


def _url(bundle) -> str:
    # torchaudio's loader takes a bundle's bare file name as relative to its download site (pipelines utils).
    return bundle._path if bundle._path.startswith("https") else TORCHAUDIO_MODELS + bundle._path


def locate_torchaudio(entry: ImportedBackboneParams) -> Path:
    return hub_checkpoint(_url(_bundle(entry)))


def fetch_torchaudio(bundle) -> tuple[dict[str, torch.Tensor], Path]:
    """The bundle's state dict and its file: the cached file when present, else torchaudio's own download (into
    the same place, read with weights_only). Without network and cache: the exact expected path, and the fix."""
    url = _url(bundle)
    path = hub_checkpoint(url)
    if path.is_file():
        return read_state_dict(path), path
    try:
        state = bundle._get_state_dict({"progress": False, "weights_only": True, "map_location": "cpu"})
    except OSError as err:  # URLError, HTTPError, socket errors are all OSErrors
        raise BackboneImportError(
            f"{path}: not found, and downloading {url} failed ({str(err)[:120]}). Without network: download that URL "
            f"on a machine with network (or copy {path.name} from its $TORCH_HOME/hub/checkpoints/) and place it at "
            f"{path}, or set TORCH_HOME to the folder holding hub/checkpoints/") from None
    return state, path


def import_torchaudio(entry: ImportedBackboneParams, sample_rate: int,
                      clip_seconds: float) -> tuple[TorchaudioNet, dict]:
    """The bundle's network with its weights and a placeholder head (zeros, one output: a bundle has no clip
    classes; fine-tuning replaces it). An ASR bundle's CTC output layer (aux.*) is left out."""
    bundle = _bundle(entry)
    state, path = fetch_torchaudio(bundle)
    ctc = sorted(k for k in state if k.startswith("aux."))
    state = {k: v for k, v in state.items() if not k.startswith("aux.")}
    model = TorchaudioNet(entry.arch, 1, 1, sample_rate=sample_rate)
    ours = {k[len("net."):]: v for k, v in model.state_dict().items() if k.startswith("net.")}
    check_keys(ours, state, path, f"torchaudio {entry.arch}")
    torch.nn.init.zeros_(model.head.weight)
    torch.nn.init.zeros_(model.head.bias)
    model.load_state_dict({**{"net." + k: v for k, v in state.items()}, "head.weight": model.head.weight,
                           "head.bias": model.head.bias}, strict=True)
    source = {"kind": entry.kind, "arch": entry.arch, "file": relative_path(path), "md5": file_md5(path),
              "sample_rate": model.bundle_rate, "url": _url(bundle), **({"left_out": "aux (CTC output layer)"}
                                                                         if ctc else {})}
    arch = {"name": f"ta:{entry.arch}", "kwargs": {"sample_rate": sample_rate}}
    prep = _preprocessing(sample_rate, clip_seconds, model.bundle_rate, normalize_waveform=model.normalize_waveform,
                          frames_ms=20)
    model.eval()
    return model, _card(arch, ["placeholder"], prep, entry, source, model)
