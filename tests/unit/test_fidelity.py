"""benchmarks/fidelity.py: two finished runs side by side; an opposite verdict is a failure, a less certain one not."""
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]


def _run(root: Path, verdicts: dict, accuracy: float, capped: int = 0) -> Path:
    (root / "metrics").mkdir(parents=True)
    (root / "metrics" / "claims.json").write_text(json.dumps(
        [{"key": k, "claim": k, "verdict": v, "evidence": ""} for k, v in verdicts.items()]))
    rows = [{"backbone": "full", "strategy": s, "per_class": n, "seed": seed,
             "test_accuracy": (accuracy if s == "head" else 0.3) + 0.01 * seed,
             "stopped": "cap" if s == "scratch" and seed < capped else "converged"}
            for n in (1, 10) for s in ("scratch", "head") for seed in range(3)]
    (root / "results" / "finetune").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(root / "results" / "finetune" / "runs.csv", index=False)
    return root


def _compare(a: Path, b: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fidelity.py"), str(a), str(b), "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT)


def test_fidelity_flags_opposite_verdicts_and_shows_the_headline_figures(tmp_path):
    full = _run(tmp_path / "full", {"a": "holds", "b": "holds", "c": "does not hold"}, 0.9)
    cheap = _run(tmp_path / "default", {"a": "holds", "b": "inconclusive", "c": "does not hold"}, 0.8, capped=1)
    same = _compare(cheap, full, tmp_path / "same.md")
    assert same.returncode == 0, same.stderr
    assert "3 claims: 2 same verdict, 1 decided in one run and inconclusive in the other, 0 opposite" in same.stdout
    assert "head: 81.0 [" in same.stdout and "head: 91.0 [" in same.stdout  # mean [95 % CI] over seeds, in %
    assert "1 of 6" in same.stdout  # runs at their cap, per pool size
    assert (tmp_path / "same.md").read_text().strip() == same.stdout.strip()
    flipped = _run(tmp_path / "flipped", {"a": "does not hold", "b": "holds", "c": "does not hold"}, 0.8)
    opposite = _compare(flipped, full, tmp_path / "opposite.md")
    assert opposite.returncode == 1 and "1 opposite" in opposite.stdout
    row = next(line for line in opposite.stdout.splitlines() if line.startswith("| a "))
    assert [c.strip() for c in row.strip("|").split("|")] == ["a", "does not hold", "holds", "OPPOSITE"]


def test_fidelity_refuses_a_run_that_did_not_finish(tmp_path):
    full = _run(tmp_path / "full", {"a": "holds"}, 0.9)
    missing = _compare(tmp_path / "nowhere", full, tmp_path / "x.md")
    assert missing.returncode != 0 and "nowhere/metrics/claims.json: no claims" in missing.stderr
    assert not (tmp_path / "x.md").exists()
