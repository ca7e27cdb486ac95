"""DVC stage: continuous audio for the wake-word detector (transferlab/data/audio/streams.py). Two splits, each a
negative stream and a positive one (the wake word alone at known times): `validation` (A-val voices, chooses
the threshold for a target false-accept rate) and `test` (B-test voices, measures it); no voice the detector
trained on. Rendered in parallel, then gated by Great Expectations per 60-s chunk: levels, clipping, wake words
where the segment tables put them and in no negative. A folder target's background recordings
(<root>/background, <test_root>/background; streams.background_files) join the negative streams after the
rendered chunks, each gated for length, level and clipping."""
from __future__ import annotations

import sys
from dataclasses import replace

import numpy as np
import pandas as pd

from stages._common import stage_main
from transferlab.data.audio.build import speaker_roles, voices_for
from transferlab.data.audio.streams import (StreamRecipe, background_audio, background_expectations, background_files,
                                            chunk_table, render_stream, stream_expectations)
from transferlab.data.validation import TableCheck, gate
from transferlab.params import Params
from transferlab.system.context import Runtime
from transferlab.system.io import atomic_dir

SPLITS = {"validation": "A-val", "test": "B-test"}


def recipes(params: Params) -> list[tuple[str, StreamRecipe, float]]:
    """(stream name, recipe, seconds) for every stream: <split>-negative and <split>-positive."""
    p, s = params.audio.prepare, params.audio.streams
    t, synth = p.target, p.synth
    roles = speaker_roles(p.voices, p.seed)
    words = tuple(w for w in dict.fromkeys(t.other_words + list(p.source.words)) if w != t.wake_word)
    out = []
    for split, role in SPLITS.items():
        voices = tuple(voices_for(role, roles, p.voices.languages)["voice"])
        negative = StreamRecipe(words, tuple(t.near_misses), t.wake_word, voices, tuple(s.snr_db),
                                rate=tuple(map(int, synth.rate)), pitch=tuple(map(int, synth.pitch)),
                                peak=tuple(synth.peak))
        minutes = s.validation_minutes if split == "validation" else s.test_minutes
        out += [(f"{split}-negative", negative, minutes * 60),
                (f"{split}-positive", replace(negative, wake_every_s=s.wake_every_s), s.positive_minutes * 60)]
    return out


def run(params: Params, args, runtime: Runtime) -> dict:
    s, rate = params.audio.streams, params.audio.prepare.sample_rate
    t = params.audio.prepare.target
    background = background_files(t.root, t.test_root) if t.kind == "folder" else {}
    tables, recorded = [], []
    with atomic_dir(args.out) as out:
        for i, (name, recipe, seconds) in enumerate(recipes(params)):
            audio, segments = render_stream(recipe, seconds, seed=s.seed * 1000 + i, sample_rate=rate, runtime=runtime)
            tables.append(chunk_table(name, audio, segments, rate, recipe.wake_word, recipe.wake_every_s > 0))
            parts = background.get(name.split("-")[0], []) if name.endswith("negative") else []
            extra = ""
            if parts:  # the user's own negative recordings, after the rendered chunks
                more, rows, checks = background_audio(parts, rate, len(audio) / rate)
                audio = np.concatenate([audio, more])
                segments = pd.concat([segments, rows.assign(chunk=-1)], ignore_index=True)
                recorded.append(checks)
                extra = f" + {len(more) / rate / 60:.1f} min of background recordings ({len(parts)})"
            np.save(out / f"{name}.npy", audio, allow_pickle=False)
            segments.to_csv(out / f"{name}.csv", index=False)
            print(f"{name}: {seconds / 60:.0f} min rendered{extra}, {len(segments)} segments, "
                  f"{int((segments['kind'] == 'wake_word').sum())} wake words", flush=True)
        import great_expectations.expectations as gxe

        checks = [TableCheck("audio_streams", pd.concat(tables, ignore_index=True),
                             stream_expectations(gxe, s.min_rms_dbfs), "id")]
        if recorded:
            checks.append(TableCheck("audio_background", pd.concat(recorded, ignore_index=True),
                                     background_expectations(gxe), "id"))
        failures = gate(checks, args.result, args.docs, params.audio.validation.max_fail_rows)
        if failures:  # inside atomic_dir: streams that fail their gate are never written
            sys.exit(1)
    return {"streams": len(tables), "background_recordings": sum(len(c) for c in recorded)}


def main(argv=None) -> None:
    stage_main(__doc__, {"out": "streams dir (<split>-<kind>.npy + .csv)", "result": "validation result JSON",
                         "docs": "Data Docs dir"}, run, argv)


if __name__ == "__main__":
    main()
