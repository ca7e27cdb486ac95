"""The one typed schema for params.yaml: unknown keys, wrong types and bad ranges fail by name.

The schema is the one source of defaults; params.yaml states the default run and must agree with it
(tests/unit/test_params.py checks every key params.yaml states against Params()). A profile such as
profiles/smoke.yaml states only what it changes; every key it leaves out takes the schema's default.

Each area has its own module; they import only pydantic, YAML readers and the standard library (and each
other), never the rest of transferlab, so reading params pulls in no torch and no experiment code.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, get_args

from pydantic import AfterValidator, BaseModel, Field, ValidationError, model_validator

from transferlab.params.audio import (
    AudioEvaluateParams,
    AudioStreamsParams,
    AudioDetectParams,
    AudioFinetuneParams,
    AudioModelParams,
    AudioParams,
    AudioPrepareParams,
    AudioPretrainParams,
    AudioSourceParams,
    AudioTargetParams,
    AudioValidateParams,
    SynthParams,
    VoiceParams,
)
from transferlab.params.base import (
    STRATEGIES,
    EvaluateParams,
    Fraction,
    ModelParams,
    PositiveInt,
    ReportParams,
    RuntimeParams,
    Section,
    Strategy,
    TrainingParams,
    TransferParams,
)
from transferlab.params.branches import (
    AudioBranchParams,
    BranchesParams,
    CompareParams,
    NetworkRun,
    VisionBranchParams,
)
from transferlab.params.distill import DistillParams, StudentParams
from transferlab.params.fewshot import FewshotParams
from transferlab.params.multitask import MultitaskParams, SceneParams
from transferlab.params.retrain import AudioRetrainParams, RetrainParams
from transferlab.params.backbones import (
    CONTROL_BACKBONE,
    CURVE_PREFIX,
    KIND_TRACK,
    OWN_BACKBONES,
    WHOLE_SOURCE,
    renamed_backbone,
    ImportedBackboneParams,
    curve_backbones,
    unique_backbone_names,
)
from transferlab.params.transferability import SCORES, TransferabilityParams
from transferlab.params.vision import (
    SOURCE_TAGS,
    FinetuneParams,
    FolderSourceParams,
    GlyphSourceParams,
    PrepareParams,
    PretrainParams,
    SourceParams,
    TargetParams,
    ValidateParams,
)

__all__ = [
    "STRATEGIES", "CLASH_SEPARATOR", "Params", "ParamsError", "load_params", "parse_params", "read_params_file",
    "Section", "Strategy", "PositiveInt", "Fraction", "ModelParams", "TrainingParams", "TransferParams",
    "RuntimeParams", "EvaluateParams", "ReportParams",
    "GlyphSourceParams", "FolderSourceParams", "SourceParams", "TargetParams", "PrepareParams", "ValidateParams",
    "PretrainParams", "FinetuneParams", "ImportedBackboneParams", "KIND_TRACK", "OWN_BACKBONES", "WHOLE_SOURCE", "CONTROL_BACKBONE", "CURVE_PREFIX",
    "curve_backbones",
    "AudioParams", "AudioPrepareParams", "VoiceParams", "SynthParams", "AudioSourceParams", "AudioTargetParams",
    "AudioValidateParams", "AudioModelParams", "AudioPretrainParams", "AudioFinetuneParams", "AudioEvaluateParams", "AudioStreamsParams", "AudioDetectParams",
    "BranchesParams", "NetworkRun", "AudioBranchParams", "VisionBranchParams", "CompareParams",
    "MultitaskParams", "SceneParams", "DistillParams", "StudentParams", "FewshotParams",
    "RetrainParams", "AudioRetrainParams", "SCORES", "TransferabilityParams",
]

CLASH_SEPARATOR = " | "


class Params(Section):
    runtime: RuntimeParams = RuntimeParams()
    prepare: PrepareParams = PrepareParams()
    # 'validate' would shadow a pydantic method; the YAML key stays 'validate'.
    validation: ValidateParams = Field(default_factory=ValidateParams, alias="validate")
    pretrain: PretrainParams = PretrainParams()
    finetune: FinetuneParams = FinetuneParams()
    evaluate: EvaluateParams = EvaluateParams()
    report: ReportParams = ReportParams()
    audio: AudioParams = AudioParams()
    branches: BranchesParams = BranchesParams()
    multitask: MultitaskParams = MultitaskParams()
    distill: DistillParams = DistillParams()
    fewshot: FewshotParams = FewshotParams()
    retrain: RetrainParams = RetrainParams()
    transferability: TransferabilityParams = TransferabilityParams()
    # Backbones pre-trained elsewhere (torchvision, timm, a local file, torchaudio bundles, silero-vad).
    # Default: silero-vad, a voice-activity network trained on real speech that ships inside its wheel, the
    # wake-word track's real-speech source beside our synthetic-speech backbone (no download needed).
    backbones: Annotated[list[ImportedBackboneParams], AfterValidator(unique_backbone_names)] = [
        ImportedBackboneParams(name="silero-vad", kind="silero_vad")]

    @model_validator(mode="after")
    def _cross_section(self) -> Params:
        # Every clash at once: a user fixing params.yaml should not meet them one run at a time.
        t, a, d = self.prepare.target, self.audio, self.distill
        clashes = [
            self.finetune.seeds > t.pool_draws and
            f"finetune.seeds ({self.finetune.seeds}) exceeds prepare.target.pool_draws ({t.pool_draws}): each seed "
            "needs its own draw of the pools",
            self.evaluate.focus_per_class not in t.pool_sizes and
            f"evaluate.focus_per_class ({self.evaluate.focus_per_class}) is not one of prepare.target.pool_sizes "
            f"{t.pool_sizes}",
            a.finetune.seeds > a.prepare.target.pool_draws and
            f"audio.finetune.seeds ({a.finetune.seeds}) exceeds audio.prepare.target.pool_draws "
            f"({a.prepare.target.pool_draws})",
            a.evaluate.focus_positives not in a.prepare.target.pool_sizes and
            f"audio.evaluate.focus_positives ({a.evaluate.focus_positives}) is not one of "
            f"audio.prepare.target.pool_sizes {a.prepare.target.pool_sizes}",
            bool(d.per_class) and not set(d.per_class) <= set(t.pool_sizes) and
            f"distill.per_class {d.per_class} must be among prepare.target.pool_sizes {t.pool_sizes}: the students "
            "learn from the fine-tuning pools",
            bool(d.seeds) and d.seeds > t.pool_draws and
            f"distill.seeds ({d.seeds}) exceeds prepare.target.pool_draws ({t.pool_draws})",
            *[cfg.main_backbone not in self.track_backbones(track) and
              f"{key}.main_backbone ({cfg.main_backbone!r}) is none of the {track} backbones "
              f"({', '.join(self.track_backbones(track))})" + _renamed_hint(cfg.main_backbone)
              for key, cfg, track in (("finetune", self.finetune, "vision"), ("audio.finetune", a.finetune, "audio"))],
        ]
        clashes = [c for c in clashes if c]
        if clashes:
            raise ValueError(CLASH_SEPARATOR.join(clashes))
        return self


    def curve_pool_sizes(self) -> list[int]:
        """The pool sizes the source-size curve fine-tunes at: finetune.curve_pool_sizes among the swept ones (all
        of them when none is). Lenient, not a clash: a params file dumped from parsed params, or a sweep moved to
        other sizes, stays valid."""
        sizes = self.prepare.target.pool_sizes
        return [n for n in sizes if n in self.finetune.curve_pool_sizes] or list(sizes)

    def track_backbones(self, track: str) -> list[str]:
        """The names of the backbones a track can fine-tune from: its own pre-trained ones, then the imported."""
        own = [n for n, t in OWN_BACKBONES.items() if t == track and n != CONTROL_BACKBONE]
        if track == "vision":
            own += curve_backbones(self.pretrain.source_sizes)
        return own + [b.name for b in self.backbones if b.track == track]


class ParamsError(ValueError):
    """params.yaml is unreadable or does not fit the schema; the message names each bad key."""


def _renamed_hint(name: str) -> str:
    new = renamed_backbone(name)
    return f"; did you mean {new!r}? (renamed: our backbones are named for their source)" if new else ""


def _models_in(annotation) -> list[type[BaseModel]]:
    """The pydantic models a field's annotation can hold (through Annotated, list, Union)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _keys_at(loc: tuple) -> list[str]:
    """The keys the schema allows at `loc` (a validation error's location, list indices and union tags
    included), to suggest the nearest one for an unknown key."""
    models: list[type[BaseModel]] = [Params]
    for part in loc:
        if isinstance(part, int) or part in SOURCE_TAGS:
            continue
        fields = [f for m in models for name, f in m.model_fields.items() if part in (name, f.alias)]
        models = [m for f in fields for m in _models_in(f.annotation)]
    return sorted({f.alias or name for m in models for name, f in m.model_fields.items()})


def _format(err: ValidationError, path: Path) -> str:
    lines = [f"{path}: {len(err.errors())} invalid parameter(s):"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"] if not (isinstance(p, str) and p in SOURCE_TAGS))
        got = e.get("input")
        shown = "" if isinstance(got, dict) else f" (got {got!r})"
        if not key and e["type"] == "value_error":  # cross-section clashes: one line each, each names its keys
            lines += [f"  {clash}" for clash in str(e["ctx"]["error"]).split(CLASH_SEPARATOR)]
        elif e["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(e["loc"][-1]), _keys_at(e["loc"][:-1]), n=1, cutoff=0.6)
            hint = f"; did you mean {'.'.join([*key.split('.')[:-1], close[0]])}?" if close else ""
            lines.append(f"  {key}: unknown key{hint}")
        else:
            lines.append(f"  {key or '<root>'}: {e['msg']}{shown}")
    lines[0] = f"{path}: {len(lines) - 1} invalid parameter(s):"
    return "\n".join(lines)


def parse_params(data: dict, path: Path | str = "params.yaml") -> Params:
    try:
        return Params.model_validate(data or {})
    except ValidationError as err:
        raise ParamsError(_format(err, Path(path))) from None


def read_params_file(path: Path | str = "params.yaml") -> dict:
    """The raw mapping of a params file, read as YAML 1.2 like DVC reads it: `yes`, `no`, `on`, `off` stay
    strings (a YAML 1.1 reader would turn the spoken words yes/no into booleans once `dvc exp run -S`
    rewrites the file without quotes)."""
    # ruamel.yaml is the YAML 1.2 reader DVC itself uses (PyYAML reads YAML 1.1).
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    path = Path(path)
    try:
        data = YAML(typ="safe", pure=True).load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found") from None
    except YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    if data is not None and not isinstance(data, dict):
        raise ParamsError(f"{path}: top level must be a mapping of sections, got {type(data).__name__}")
    return data or {}


def load_params(path: Path | str = "params.yaml") -> Params:
    return parse_params(read_params_file(path), path)
