"""DVC stage: Great Expectations gates on every prepared table; fails naming expectations and rows.

--track vision: glyphs A and digits B; audio: spoken words A and wake-word B (incl. voice leakage)."""
from __future__ import annotations

import sys

from stages._common import StageError, stage_main
from transferlab.data.prepared import load_prepared
from transferlab.params import Params
from transferlab.data.validation import build_checks, gate


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
    if gate(checks, args.result, args.docs, max_rows):
        sys.exit(1)
    return True


def main(argv=None) -> None:
    stage_main(__doc__, {"track": "vision | audio", "source": "prepared A", "target": "prepared B", "result": "result JSON",
                         "docs": "Data Docs dir"}, run, argv)


if __name__ == "__main__":
    main()
