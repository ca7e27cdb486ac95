"""DVC stage: Great Expectations gates on every prepared table; fails naming expectations and rows.

--track vision: glyphs A and digits B; audio: spoken words A and wake-word B (incl. voice leakage)."""
from __future__ import annotations

import sys

from stages._common import StageError, stage_main
from transferlab.data.prepared import load_prepared
from transferlab.io import atomic_dir, write_json
from transferlab.params import Params
from transferlab.validation import build_checks, run_checks


def run(params: Params, args) -> bool:
    source, target = load_prepared(args.source), load_prepared(args.target)
    if args.track == "vision":
        checks, max_rows = build_checks(source, target, params.prepare, params.validation), params.validation.max_fail_rows
    elif args.track == "audio":
        from transferlab.audio.validation import build_audio_checks

        cfg = params.audio.validation
        checks, max_rows = build_audio_checks(source, target, params.audio.prepare, cfg), cfg.max_fail_rows
    else:
        raise StageError(f"--track must be 'vision' or 'audio', got {args.track!r}")
    with atomic_dir(args.docs) as docs:
        summary, failures = run_checks(checks, docs, max_rows)
    write_json(args.result, summary)
    if failures:
        print(f"validation FAILED: {len(failures)} expectation(s) not met:", file=sys.stderr)
        for failure in failures:
            print(f"  - {failure.describe()}", file=sys.stderr)
        print(f"details: {args.result}; Data Docs: {args.docs}/index.html", file=sys.stderr)
        sys.exit(1)
    print(f"validation passed: {sum(t['evaluated'] for t in summary['tables'].values())} expectations "
          f"on {len(summary['tables'])} tables")
    return True


def main(argv=None) -> None:
    stage_main(__doc__, {"track": "vision | audio", "source": "prepared A", "target": "prepared B", "result": "result JSON",
                         "docs": "Data Docs dir"}, run, argv)


if __name__ == "__main__":
    main()
