"""Imported audio backbones (transferlab.models.pretrained.audio, transferlab.models.speech): silero's voice-activity
network from the installed silero-vad wheel (real weights, nothing downloaded) and torchaudio bundles, built with
random weights placed where torchaudio's loader looks for its files, never downloaded."""
from __future__ import annotations

import copy
import json
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from stages import import_backbones as stage
from transferlab.models.artifacts import load_model, make_card, save_model
from transferlab.core.engine import TrainConfig, to_input, train
from transferlab.models.preprocessing import PCM_SCALE
from transferlab.system.io import file_md5
from transferlab.models import body_groups
from transferlab.params import FinetuneParams, ImportedBackboneParams
from transferlab.models.pretrained import BackboneImportError, hub_checkpoint, import_backbone
from transferlab.models.pretrained.audio import TORCHAUDIO_MODELS, locate_silero_vad
from transferlab.system.io import relative_path

SILERO = ImportedBackboneParams(name="vad", kind="silero_vad")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small nets on a shared machine: one thread (more only contend)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def silero() -> tuple[torch.nn.Module, dict]:
    return import_backbone(SILERO, sample_rate=16000, clip_seconds=1.0)


def clips(n: int = 6, seed: int = 0) -> torch.Tensor:
    """int16 clips (N, 16000), as prepared audio stores them."""
    return torch.from_numpy(np.random.default_rng(seed).normal(0, 3000, (n, 16000)).astype(np.int16))


def test_silero_imports_from_the_installed_wheel_without_importing_its_package(silero):
    model, card = silero
    path = locate_silero_vad(SILERO)
    assert path.name == "silero_vad_16k.safetensors" and "site-packages" in path.parts
    state = load_file(str(path))
    for key, value in model.state_dict().items():
        if not key.startswith("head."):
            assert torch.equal(value, state[key]), key
    # silero's decoder is the head: the mean part of the pooled features carries its weights, the max part none.
    assert torch.equal(model.head.weight[0, :128], state["final_conv.weight"][0, :, 0])
    assert not model.head.weight[0, 128:].any() and torch.equal(model.head.bias, state["final_conv.bias"])
    assert card["architecture"] == {"name": "silero:vad", "kwargs": {"sample_rate": 16000, "pool": "meanmax"}}
    assert card["classes"] == ["speech"]
    prep = card["preprocessing"]
    assert (prep["modality"], prep["sample_rate"], prep["clip_samples"], prep["channels"], prep["scale"]) == \
        ("audio", 16000, 16000, 1, PCM_SCALE)
    assert prep["network_input"]["sample_rate"] == 16000 and prep["network_input"]["resampled_from"] is None
    md5 = file_md5(path)
    assert card["parents"] == [{"role": "pretrained-weights", "path": relative_path(path), "md5": md5}]
    assert {k: card["imported"][k] for k in ("kind", "arch", "md5", "sample_rate")} == \
        {"kind": "silero_vad", "arch": "silero_vad_16k", "md5": md5, "sample_rate": 16000}
    assert "silero_vad" not in sys.modules  # its import would set torch to one thread for the whole process


def test_silero_forward_shapes_and_resampling(silero):
    model, _ = silero
    x = to_input(clips(3))
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == (3, 128, 32)  # one frame per 512 samples, as silero steps its LSTM
        assert model.forward_head(feats, pre_logits=True).shape == (3, 256) and model(x).shape == (3, 1)
    tuned = copy.deepcopy(model)
    tuned.reset_classifier(2)
    with torch.no_grad():
        assert tuned(x).shape == (3, 2)
    assert [g[0].split(".")[0] for g in body_groups(tuned)] == ["stft_conv", "conv1", "conv2", "conv3", "conv4",
                                                                 "lstm_cell"]
    slow, card = import_backbone(SILERO, sample_rate=8000, clip_seconds=1.0)
    assert card["preprocessing"]["network_input"]["resampled_from"] == 8000
    assert card["preprocessing"]["clip_samples"] == 8000
    with torch.no_grad():
        assert slow.forward_features(torch.zeros(2, 1, 8000)).shape == (2, 128, 32)  # resampled to 16 kHz inside


def _speech_and_noise() -> tuple[torch.Tensor, torch.Tensor]:
    """Spoken words (eSpeak, no noise) and noise-only clips (white, pink), as the audio track renders them."""
    from transferlab.data.audio.synth import SynthStyle, _render_chunk, plan_clips

    voices = pd.DataFrame({"speaker": ["default"] * 2, "language": ["en", "de"], "voice": ["en", "de"]})
    rng = np.random.default_rng(0)
    speech = plan_clips(["marvin", "seven", "left", "hello"], voices, rng, SynthStyle(noise_mix=(1, 0, 0, 0)))
    noise = plan_clips([""] * 4, voices, rng, SynthStyle(noise_mix=(0, 1, 1, 0)), noise_only=True)
    out, _ = _render_chunk(pd.concat([speech, noise], ignore_index=True), 16000, 16000)
    x = to_input(torch.from_numpy(out))
    return x[:4], x[4:]


def _streaming_probabilities(model, state, x: torch.Tensor) -> torch.Tensor:
    """silero's own streaming inference, step by step: a 512-sample chunk with 64 samples of context at a time."""
    wav = F.pad(x[:, 0], (64, (-x.shape[-1]) % 512))
    h = c = wav.new_zeros(len(wav), 128)
    out = []
    for i in range(64, wav.shape[1], 512):
        y = F.pad(wav[:, i - 64:i + 512], (0, 64), mode="reflect")[:, None]
        re, im = model.stft_conv(y).chunk(2, dim=1)
        y = torch.sqrt(re ** 2 + im ** 2)
        for conv in (model.conv1, model.conv2, model.conv3, model.conv4):
            y = F.relu(conv(y))
        h, c = model.lstm_cell(y[..., 0], (h, c))
        out.append(torch.sigmoid(F.conv1d(F.relu(h)[..., None], state["final_conv.weight"],
                                          state["final_conv.bias"]))[:, 0, 0])
    return torch.stack(out, dim=1)


def test_silero_decoder_on_our_frames_tells_speech_from_noise(silero):
    """The weights are loaded right: silero's decoder (final_conv + sigmoid) on each frame scores spoken words as
    speech and white/pink noise and silence as not, exactly as silero's own chunk-by-chunk inference does."""
    model, _ = silero
    state = load_file(str(locate_silero_vad(SILERO)))
    speech, noise = _speech_and_noise()
    silence = torch.zeros(1, 1, 16000)
    with torch.no_grad():
        probs = {name: torch.sigmoid(F.conv1d(model.forward_features(x), state["final_conv.weight"],
                                              state["final_conv.bias"]))[:, 0]
                 for name, x in (("speech", speech), ("noise", noise), ("silence", silence))}
        for name, x in (("speech", speech), ("noise", noise)):
            assert torch.allclose(probs[name], _streaming_probabilities(model, state, x), atol=1e-4)
        # The imported head scores the clip: the mean of the decoder's frame logits.
        assert torch.allclose(model(speech)[:, 0], torch.logit(probs["speech"]).mean(1), atol=1e-3)
    assert (probs["speech"].amax(1) > 0.8).all(), probs["speech"].amax(1)
    assert (probs["noise"].amax(1) < 0.3).all(), probs["noise"].amax(1)
    assert probs["silence"].amax() < 0.1


@pytest.mark.parametrize("strategy", ["head", "last_k", "surgical"])
def test_frozen_body_recipes_train_only_what_they_say(silero, strategy):
    from transferlab.core.recipes import apply_recipe

    model = copy.deepcopy(silero[0])
    model.reset_classifier(2)
    recipe = apply_recipe(model, strategy, FinetuneParams(last_k=1))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train(model, clips(8), torch.tensor([0, 1] * 4), recipe.param_groups, TrainConfig(steps=2, batch_size=4),
          torch.Generator().manual_seed(0))
    after = model.state_dict()
    trained = {"head": (), "last_k": ("lstm_cell.",), "surgical": ("stft_conv.",)}[strategy] + ("head.",)
    for key in before:
        assert torch.equal(before[key], after[key]) != key.startswith(trained), key
    assert sorted(recipe.frozen_modules) == sorted(
        {"stft_conv", "conv1", "conv2", "conv3", "conv4", "lstm_cell"} - {p.rstrip(".") for p in trained})


def test_fine_tuned_silero_saves_and_reloads_with_equal_outputs(silero, tmp_path):
    from transferlab.core.recipes import apply_recipe

    model, card = copy.deepcopy(silero[0]), silero[1]
    model.reset_classifier(2)
    recipe = apply_recipe(model, "last_k", FinetuneParams(last_k=1))
    train(model, clips(8), torch.tensor([0, 1] * 4), recipe.param_groups, TrainConfig(steps=1, batch_size=4),
          torch.Generator().manual_seed(0))
    save_model(tmp_path / "tuned", model, make_card(architecture=card["architecture"], classes=["other", "marvin"],
                                                    preprocessing=card["preprocessing"],
                                                    frozen_modules=recipe.frozen_modules))
    loaded, _ = load_model(tmp_path / "tuned")
    x = to_input(clips(3, seed=1))
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))
    assert {n for n, p in loaded.named_parameters() if p.requires_grad} == \
        {"lstm_cell.weight_ih", "lstm_cell.weight_hh", "lstm_cell.bias_ih", "lstm_cell.bias_hh", "head.weight",
         "head.bias"}


# torchaudio bundles -----------------------------------------------------------------------------------------------

TINY = "TINY_WAV2VEC2_TEST"  # a wav2vec 2.0 bundle of the real architecture, small enough for a unit test
TINY_PARAMS = {"extractor_mode": "group_norm", "extractor_conv_layer_config": [(32, 10, 5)] + [(32, 3, 2)] * 4
               + [(32, 2, 2)] * 2, "extractor_conv_bias": False, "encoder_embed_dim": 48,
               "encoder_projection_dropout": 0.0, "encoder_pos_conv_kernel": 16, "encoder_pos_conv_groups": 4,
               "encoder_num_layers": 2, "encoder_num_heads": 4, "encoder_attention_dropout": 0.0,
               "encoder_ff_interm_features": 96, "encoder_ff_interm_dropout": 0.0, "encoder_dropout": 0.0,
               "encoder_layer_norm_first": False, "encoder_layer_drop": 0.0, "aux_num_out": None}


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    """An empty TORCH_HOME, no network (a download fails at once), and the tiny bundle among torchaudio's."""
    from torchaudio import pipelines
    from torchaudio.pipelines import Wav2Vec2Bundle

    home = tmp_path / "torch-home"
    monkeypatch.setenv("TORCH_HOME", str(home))

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("offline (test)")
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    monkeypatch.setattr(pipelines, TINY, Wav2Vec2Bundle("tiny_wav2vec2_test.pth", TINY_PARAMS, 16000, False,
                                                        "Wav2Vec2"), raising=False)
    return home


def place(bundle: str, **changes) -> tuple[Path, dict]:
    """Random weights of the bundle's architecture (params changed by `changes`) saved under the file name its
    loader expects."""
    from torchaudio import pipelines
    from torchaudio.models import wav2vec2_model

    spec = getattr(pipelines, bundle)
    state = wav2vec2_model(**{**spec._params, **changes}).state_dict()
    path = hub_checkpoint(TORCHAUDIO_MODELS + spec._path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path, state


def test_torchaudio_bundle_imports_from_torch_home_and_fine_tunes(tmp_path, torch_home):
    from transferlab.core.recipes import apply_recipe

    path, state = place(TINY, aux_num_out=29)  # an ASR bundle's file: its CTC output layer is left out
    assert path == torch_home / "hub" / "checkpoints" / "tiny_wav2vec2_test.pth"
    entry = ImportedBackboneParams(name="w2v", kind="torchaudio", arch=TINY)
    model, card = import_backbone(entry, sample_rate=8000, clip_seconds=1.0)
    assert torch.equal(model.net.encoder.transformer.layers[1].attention.k_proj.weight,
                       state["encoder.transformer.layers.1.attention.k_proj.weight"])
    assert card["architecture"] == {"name": f"ta:{TINY}", "kwargs": {"sample_rate": 8000}}
    assert card["classes"] == ["placeholder"] and not model.head.weight.any()
    assert card["preprocessing"]["sample_rate"] == 8000
    assert card["preprocessing"]["network_input"]["sample_rate"] == 16000
    assert card["preprocessing"]["network_input"]["resampled_from"] == 8000
    assert card["parents"] == [{"role": "pretrained-weights", "path": path.as_posix(), "md5": file_md5(path)}]
    assert card["imported"]["sample_rate"] == 16000 and card["imported"]["left_out"].startswith("aux")
    groups = body_groups(model)
    assert len(groups) == 3 and groups[0][0].startswith("net.feature_extractor.")
    # As in the base models, the transformer's LayerNorm runs before its first layer: it is in the first group.
    assert any(n.startswith("net.encoder.transformer.layer_norm.") for n in groups[0])
    save_model(tmp_path / "backbone", model, card)
    model, card = load_model(tmp_path / "backbone")
    model.reset_classifier(2)
    recipe = apply_recipe(model, "last_k", FinetuneParams(last_k=1))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    samples = clips(4)[:, :8000]
    train(model, samples, torch.tensor([0, 1, 0, 1]), recipe.param_groups, TrainConfig(steps=1, batch_size=4),
          torch.Generator().manual_seed(0))
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]) != key.startswith(("net.encoder.transformer.layers.1.", "head.")), key
    save_model(tmp_path / "tuned", model, make_card(architecture=card["architecture"], classes=["other", "marvin"],
                                                    preprocessing=card["preprocessing"],
                                                    frozen_modules=recipe.frozen_modules))
    loaded, _ = load_model(tmp_path / "tuned")
    x = to_input(samples)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model.eval()(x), atol=1e-6) and loaded(x).shape == (4, 2)


def test_missing_bundle_file_offline_names_the_expected_path_and_writes_nothing(tmp_path, torch_home, capsys):
    params = tmp_path / "params.yaml"
    params.write_text(f"backbones:\n  - {{name: vad, kind: silero_vad}}\n  - {{name: w2v, kind: torchaudio, "
                      f"arch: {TINY}}}\n")
    out = tmp_path / "models" / "imported"
    with pytest.raises(SystemExit) as exit_:
        stage.main(["--params", str(params), "--weights", str(tmp_path / "weights.json"), "--out", str(out)])
    assert exit_.value.code == 2
    expected = torch_home / "hub" / "checkpoints" / "tiny_wav2vec2_test.pth"
    err = capsys.readouterr().err
    assert f"place it at {expected}" in err and TORCHAUDIO_MODELS + "tiny_wav2vec2_test.pth" in err
    assert not out.exists() and not (out.parent.exists() and any(out.parent.iterdir()))  # not even silero's


def test_stage_imports_silero_and_a_bundle(tmp_path, torch_home):
    path, _ = place(TINY)
    params = tmp_path / "params.yaml"
    params.write_text(f"backbones:\n  - {{name: vad, kind: silero_vad}}\n  - {{name: w2v, kind: torchaudio, "
                      f"arch: {TINY}}}\n")
    out = tmp_path / "models" / "imported"
    stage.main(["--params", str(params), "--weights", str(tmp_path / "weights.json"), "--out", str(out)])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["w2v"] == {"track": "audio", "kind": "torchaudio", "dir": (out / "w2v").as_posix(),
                               "weights": path.as_posix(), "md5": file_md5(path)}
    assert manifest["vad"]["md5"] == file_md5(locate_silero_vad(SILERO)) and manifest["vad"]["track"] == "audio"
    for name in ("vad", "w2v"):
        model, _ = load_model(out / name)
        with torch.no_grad():
            assert model(to_input(clips(2))).shape == (2, 1)


def test_bundle_file_of_another_architecture_names_the_mismatching_key(torch_home):
    entry = ImportedBackboneParams(name="w2v", kind="torchaudio", arch=TINY)
    place(TINY, encoder_num_layers=1)
    with pytest.raises(BackboneImportError, match=r"tiny_wav2vec2_test\.pth: does not fit torchaudio "
                                                  rf"{TINY}: .*missing: encoder\.transformer\.layers\.1\."):
        import_backbone(entry, sample_rate=16000, clip_seconds=1.0)
    place(TINY, encoder_ff_interm_features=64)
    with pytest.raises(BackboneImportError, match=r"feed_forward\.intermediate_dense\.weight is \[64, 48\] not "
                                                  r"\[96, 48\]"):
        import_backbone(entry, sample_rate=16000, clip_seconds=1.0)


def test_unknown_bundle_lists_the_known_ones(torch_home):
    with pytest.raises(BackboneImportError, match="WAV2VEC2_BASE"):
        import_backbone(ImportedBackboneParams(name="x", kind="torchaudio", arch="TACOTRON2_WAVERNN_CHAR_LJSPEECH"),
                        sample_rate=16000, clip_seconds=1.0)


def test_wav2vec2_base_real_architecture(torch_home):
    """WAV2VEC2_BASE itself (95 M parameters, a 360 MB file): imported from torch home, 768 features (9 s on one
    core, measured: no need to mark it slow)."""
    path, state = place("WAV2VEC2_BASE")
    assert path.name == "wav2vec2_fairseq_base_ls960.pth"
    model, card = import_backbone(ImportedBackboneParams(name="w2v", kind="torchaudio", arch="WAV2VEC2_BASE"),
                                  sample_rate=16000, clip_seconds=1.0)
    assert card["parents"][0]["md5"] == file_md5(path) and card["imported"]["sample_rate"] == 16000
    assert torch.equal(model.net.encoder.transformer.layers[11].final_layer_norm.weight,
                       state["encoder.transformer.layers.11.final_layer_norm.weight"])
    assert len(body_groups(model)) == 13
    with torch.no_grad():
        assert model.forward_head(model.forward_features(to_input(clips(2))), pre_logits=True).shape == (2, 768)
