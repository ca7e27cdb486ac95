"""The audio track (params.yaml section `audio`): spoken words (A) → wake-word detection (B) on held-out voices."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from transferlab.params.base import (
    BASIC_STRATEGIES,
    ConvergenceParams,
    Fraction,
    ModelParams,
    PositiveInt,
    Section,
    Strategy,
    TrainingParams,
    TransferParams,
)

Range = Annotated[list[float], Field(min_length=2, max_length=2)]
# The word lists eSpeak speaks are params (audio.prepare.source.words, .target.near_misses, .target.other_words):
# these are their defaults, in the order the synthesiser draws from them.
# The Speech Commands vocabulary without the wake word: source task A.
SOURCE_WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "zero", "one", "two", "three",
                "four", "five", "six", "seven", "eight", "nine", "bed", "bird", "cat", "dog", "happy", "house",
                "sheila", "tree", "wow", "learn"]
# Negatives that sound like the wake word "marvin" (the hard cases) ...
NEAR_MISSES = ["martin", "marvel", "marlin", "carving", "garden", "marvellous", "harvest"]
# ... and ordinary words no source class uses.
OTHER_WORDS = ["follow", "forward", "backward", "visual", "hello", "window", "music", "table", "water", "morning",
               "paper", "kitchen"]
# Latin-script languages whose eSpeak voices read English words (no spelling-out, with a dictionary).
LANGUAGES = ["en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan", "de", "nl", "sv", "da", "fr",
             "es", "it", "pt", "pl", "cs", "fi", "hu"]


class VoiceParams(Section):
    languages: Annotated[list[str], Field(min_length=1)] = LANGUAGES
    # Speakers are eSpeak variants; each belongs to exactly one role, so test voices are never trained on.
    # Shares of speakers: A-train, A-val, B-train, B-test.
    split: list[Fraction] = Field(default=[0.6, 0.1, 0.15, 0.15], min_length=4, max_length=4)

    @model_validator(mode="after")
    def _check(self) -> VoiceParams:
        if abs(sum(self.split) - 1) > 1e-6 or min(self.split) <= 0:
            raise ValueError("split: four positive fractions (A-train, A-val, B-train, B-test) summing to 1")
        return self


class SynthParams(Section):
    rate: Range = [130, 260]  # words per minute (eSpeak clamps below 80)
    pitch: Range = [20, 80]
    word_gap: Range = [0, 8]  # extra pause between words, 10 ms units
    peak: Range = [0.15, 0.9]  # speech peak level before noise
    # shares of clips with no noise, white, pink and babble noise
    noise_mix: list[Fraction] = Field(default=[0.1, 0.3, 0.3, 0.3], min_length=4, max_length=4)
    snr_db: Range = [0.0, 30.0]
    babble_snr_db: Range = [5.0, 30.0]


class AudioSourceParams(Section):
    kind: Literal["espeak", "folder", "speechcommands"] = "espeak"
    root: str | None = None  # folder: <root>/<class>/*.wav|flac; speechcommands: torchaudio's dataset on disk
    words: Annotated[list[str], Field(min_length=2)] = SOURCE_WORDS
    clips: PositiveInt = 6000  # profiles/full.yaml: 16,000
    val_fraction: Annotated[float, Field(gt=0, lt=0.5)] = 0.1

    @model_validator(mode="after")
    def _check(self) -> AudioSourceParams:
        if self.kind != "espeak" and not self.root:
            raise ValueError(f"root is required when kind is {self.kind!r}")
        return self


class AudioTargetParams(Section):
    kind: Literal["espeak", "folder"] = "espeak"
    root: str | None = None  # folder: <root>/<wake_word>/* are positives, every other class folder negatives
    # folder only: a fixed test set with the same class folders (then every clip under root is for training,
    # so new labelled data merged into root never moves the test set)
    test_root: str | None = None
    wake_word: str = "marvin"
    near_misses: Annotated[list[str], Field(min_length=1)] = NEAR_MISSES
    other_words: Annotated[list[str], Field(min_length=1)] = OTHER_WORDS
    positives_train: PositiveInt = 150
    positives_test: PositiveInt = 150
    negatives_train: PositiveInt = 800
    negatives_test: PositiveInt = 800
    negative_mix: list[Fraction] = Field(default=[0.3, 0.55, 0.15], min_length=3, max_length=3)  # near-miss words noise
    test_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.3  # folder data: share of speakers held out for test
    pool_sizes: Annotated[list[PositiveInt], Field(min_length=1)] = [5, 20, 100]  # labelled positives per pool
    # every training negative: they are cheap, the positives are few (100 positives: FRR 0.64 with 400, 0.49 with 800)
    negatives_per_pool: PositiveInt = 400
    pool_draws: PositiveInt = 3

    @model_validator(mode="after")
    def _check(self) -> AudioTargetParams:
        if self.kind == "folder" and not self.root:
            raise ValueError("root is required when kind is 'folder'")
        if self.test_root and self.kind != "folder":
            raise ValueError("test_root is only for kind 'folder'")
        if sorted(set(self.pool_sizes)) != list(self.pool_sizes):
            raise ValueError("pool_sizes must be strictly increasing")
        if self.kind == "espeak" and max(self.pool_sizes) > self.positives_train:
            raise ValueError(f"positives_train ({self.positives_train}) is below the largest pool "
                             f"({max(self.pool_sizes)})")
        if self.kind == "espeak" and self.negatives_per_pool > self.negatives_train:
            raise ValueError(f"negatives_per_pool ({self.negatives_per_pool}) exceeds negatives_train "
                             f"({self.negatives_train})")
        return self


class AudioPrepareParams(Section):
    seed: int = 0
    sample_rate: Annotated[int, Field(ge=4000, le=48000)] = 16000
    clip_seconds: Annotated[float, Field(gt=0.1, le=10)] = 1.0
    voices: VoiceParams = VoiceParams()
    synth: SynthParams = SynthParams()
    source: AudioSourceParams = AudioSourceParams()
    target: AudioTargetParams = AudioTargetParams()


class AudioValidateParams(Section):
    min_per_class_source: PositiveInt = 20
    min_positives_test: PositiveInt = 20
    min_rms: Annotated[float, Field(ge=0)] = 0.002  # below this (full scale 1.0) a clip counts as silent
    max_clipped_fraction: Fraction = 0.01  # share of samples at full scale
    duration_tolerance: Annotated[float, Field(ge=0)] = 0.001  # seconds
    max_fail_rows: PositiveInt = 20


class AudioModelParams(ModelParams):
    # log-mel → CNN → GRU over time: 86-87 % on A and FRR@1%FAR 0.34 at 100 positives, where audio_convnet
    # (average pooling) reached 83 % and 0.49 (measured; see params.yaml)
    name: str = "audio_crnn"
    widths: Annotated[list[PositiveInt], Field(min_length=1)] = [16, 32, 64]  # full profile: [32, 64, 128]


class AudioPretrainParams(TrainingParams):
    model: AudioModelParams = AudioModelParams()
    epochs: PositiveInt = 30  # the cap: training stops once the validation loss stops improving
    batch_size: PositiveInt = 64
    augment: bool = True


class AudioFinetuneParams(TransferParams):
    # full fine-tuning at 100 positives (full profile's network): 180 steps FRR 0.37, 300 0.34, 500 0.34 (measured)
    steps: PositiveInt = 600  # the cap: runs stop earlier when they converge
    steps_per_example: Annotated[float, Field(ge=0)] = 0.0
    max_steps: PositiveInt = 600
    feature_views: Annotated[int, Field(ge=0)] = 2  # frozen-body views per clip (full profile: 4)
    main_backbone: Annotated[str, Field(min_length=1)] = "audio"
    # The other audio backbones (silero-vad by default) train a new head on their frozen features: the cleaner
    # test of what each pre-training learned, and a third of full fine-tuning's cost (silero, 200 steps, one
    # thread: head 11 s, full 35 s per run, measured; at 100 positives full reached FRR@1%FAR 0.86 vs ours 0.31).
    ablation_strategy: Strategy = "head"
    strategies: Annotated[list[Strategy], Field(min_length=1)] = list(BASIC_STRATEGIES)


class AudioEvaluateParams(Section):
    far_targets: Annotated[list[Annotated[float, Field(gt=0, lt=1)]], Field(min_length=1)] = [0.01, 0.05]
    threshold: Annotated[float, Field(gt=0, lt=1)] = 0.5  # operating point on P(wake word)
    focus_positives: PositiveInt = 20  # which pool the DET plot shows
    # A user's own FRR target at the first FAR target for `reference_strategy`, per positives count, judged
    # against the runs' 95 % CI. Empty (default): no such rows; our yardstick is the ceiling (audio.ceiling).
    reference_frr: dict[PositiveInt, Fraction] = {}
    reference_strategy: Strategy = "full"
    # Claim per positives count: `reference_strategy`'s FRR at the first FAR target is within this multiple of
    # the ceiling detector's FRR (the whole 95 % CI over seeds below it).
    ceiling_multiple: Annotated[float, Field(ge=1)] = 2.0


class AudioCeilingParams(Section):
    """The ceiling detector: full fine-tuning of the pre-trained backbone on plentiful positives (and as many
    negatives) spoken by B-train voices, scored on the prepared test set; the sweep is judged against it."""

    positives: PositiveInt = 1000
    # Full profile, FRR@1%FAR with 3,000 positives (measured): 300 steps 0.195 / 0.22 / 0.195 (seeds 0-2), 1500 steps 0.195 / 0.21
    # (seeds 0-1); 600 and 1000 steps 0.200, 0.235 (seed 0). More steps buy nothing but 5x the time.
    steps: PositiveInt = 1500  # the cap: training stops earlier when it converges
    batch_size: PositiveInt = 64
    seed: int = 0
    seeds: PositiveInt = 3  # seeds seed, seed+1, ...: the ceiling is their mean, with its CI
    convergence: ConvergenceParams = ConvergenceParams()  # `steps` is the cap


class AudioStreamsParams(Section):
    """Continuous audio for judging the detector as it is used (stage audio_streams): eSpeak sentences of the
    target's other words and near misses, pauses and a noise bed at `snr_db`, in 60-s chunks. The validation
    streams (A-val voices) choose the threshold for a target false-accept rate; the test streams (B-test voices)
    measure it. Positive streams say the wake word alone every `wake_every_s` seconds, at known times."""

    seed: int = 0
    validation_minutes: Annotated[float, Field(gt=0)] = 10.0  # negative stream for the threshold
    test_minutes: Annotated[float, Field(gt=0)] = 60.0  # negative stream the false accepts per hour are counted on
    positive_minutes: Annotated[float, Field(gt=0)] = 10.0  # per split
    wake_every_s: Annotated[float, Field(ge=5)] = 20.0
    snr_db: Annotated[list[float], Field(min_length=1)] = [20.0, 10.0, 5.0]
    min_rms_dbfs: float = -45.0  # a chunk quieter than this failed to render


class AudioDetectParams(Section):
    """The detector on a stream: one window per `hop_s`, the score smoothed over `smooth_frames` windows, at most
    one detection per `refractory_s` (recorded in every detector's card); the threshold is chosen on the
    validation stream for `target_fa_per_hour`, and every run's FRR is read at each of `fa_rates`."""

    hop_s: Annotated[float, Field(gt=0, le=1)] = 0.1  # openWakeWord scores 80 ms frames
    smooth_frames: PositiveInt = 3  # a causal mean over this many windows: one noisy window does not fire
    refractory_s: Annotated[float, Field(ge=0)] = 1.0  # a 1-s window sees a word for about 1.5 s
    target_fa_per_hour: Annotated[float, Field(gt=0)] = 0.5  # openWakeWord's published target
    fa_rates: Annotated[list[Annotated[float, Field(gt=0)]], Field(min_length=1)] = [0.1, 0.5, 1.0]

    @model_validator(mode="after")
    def _check(self) -> AudioDetectParams:
        if sorted(set(self.fa_rates)) != list(self.fa_rates):
            raise ValueError("fa_rates must be strictly increasing")
        if self.target_fa_per_hour not in self.fa_rates:
            raise ValueError(f"target_fa_per_hour ({self.target_fa_per_hour:g}) must be one of fa_rates "
                             f"{self.fa_rates}: the claims are judged at it")
        return self


class AudioParams(Section):
    prepare: AudioPrepareParams = AudioPrepareParams()
    validation: AudioValidateParams = Field(default_factory=AudioValidateParams, alias="validate")
    pretrain: AudioPretrainParams = AudioPretrainParams()
    finetune: AudioFinetuneParams = AudioFinetuneParams()
    ceiling: AudioCeilingParams = AudioCeilingParams()
    evaluate: AudioEvaluateParams = AudioEvaluateParams()
    streams: AudioStreamsParams = AudioStreamsParams()
    detect: AudioDetectParams = AudioDetectParams()
