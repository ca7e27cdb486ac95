"""Editing library code marks exactly the stages that import it as changed, on the real smoke project
(dvc.yaml's deps by folder, as DVC itself reads them)."""
from __future__ import annotations

import json

import pytest

from ..conftest import dvc

# One edit per package: the stages that use the edited file show as changed.
EDITS = {
    "transferlab/params/audio.py": {"audio_prepare"},
    "transferlab/core/augment.py": {"pretrain@src-full", "audio_pretrain", "finetune"},
    "transferlab/report/vision.py": {"report"},
    "transferlab/data/audio/synth.py": {"audio_prepare"},
    "transferlab/data/canvas.py": {"canvases", "scenes"},
    "transferlab/data/scenes.py": {"scenes", "multitask"},
    "transferlab/data/glyphs.py": {"prepare"},
    "transferlab/experiments/transfer/rules.py": {"finetune", "audio_finetune"},
}


@pytest.mark.parametrize("edited", sorted(EDITS))
def test_editing_code_marks_the_stage_that_uses_it_changed(smoke_repo, edited):
    path = smoke_repo / edited
    original = path.read_bytes()
    try:
        path.write_bytes(original + b"\n# an edit\n")
        status = json.loads(dvc("status", "--json", cwd=smoke_repo).stdout or "{}")
    finally:
        path.write_bytes(original)
    changed = set(status) - {"data_roots"}
    assert EDITS[edited] <= changed, (edited, sorted(changed))
    if edited.startswith("transferlab/report/"):
        assert changed == {"report"}, sorted(changed)  # a report section re-runs no experiment
    if edited.startswith("transferlab/experiments/transfer/"):  # fine-tuning code re-runs no pre-training
        assert not {s for s in changed if "pretrain" in s}, sorted(changed)
