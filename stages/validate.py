"""DVC stage: Great Expectations gates on every prepared table; fails naming expectations and rows. The source
tables' result is also written alone (--source-result): pre-training depends on it, not on the target's.

--track vision: glyphs A and digits B; audio: spoken words A and wake-word B (incl. voice leakage)."""
from __future__ import annotations

import sys

from stages._common import StageError, stage_main
from transferlab.data.prepared import load_prepared
from transferlab.params import Params
from transferlab.data.validation import build_checks, gate, source_only
from transferlab.system.io import read_json, write_json


def run(params: Params, args) -> bool:
    source, target = load_prepared(args.source), load_prepared(args.target)
    if args.track == "vision":
        checks, max_rows = build_checks(source, target, params.prepare, params.validation), params.validation.max_fail_rows
    elif args.track == "audio":
        from transferlab.data.audio.validation import build_audio_checks

        cfg = params.audio.validation
        checks, max_rows = build_audio_checks(source, target, params.audio.prepare, cfg), cfg.max_fail_rows
    else:
        raise StageError(f"--track must be 'vision' or 'audio', got {args.track!r}")
    failures = gate(checks, args.result, args.docs, max_rows)
    write_json(args.source_result, source_only(read_json(args.result)))
    if failures:
        sys.exit(1)
    return True


def main(argv=None) -> None:
    stage_main(__doc__, {"track": "vision | audio", "source": "prepared A", "target": "prepared B", "result": "result JSON",
                         "source_result": "the source tables' result alone (what pre-training depends on)",
                         "docs": "Data Docs dir"}, run, argv)


if __name__ == "__main__":
    main()
