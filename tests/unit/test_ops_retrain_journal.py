"""A retrain is a transaction: what intake merged under a journal can be taken back, at any point."""
import subprocess

import numpy as np
from PIL import Image

from transferlab.ops import retrain_journal
from transferlab.ops.intake import ImageIntake, process_inbox


def _png(path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.random.default_rng(seed).random((28, 28)) * 255).astype(np.uint8)).save(path)


def _files(root):
    return sorted((p.relative_to(root).as_posix(), p.read_bytes()) for p in root.rglob("*") if p.is_file())


def test_rollback_takes_back_every_merged_batch_and_restores_the_saved_files(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    pool, inbox = tmp_path / "pool", tmp_path / "inbox"
    for c in "01":
        _png(pool / c / "a.png", int(c))
    for i, batch in enumerate(["w1", "w2"]):
        for c in "01":
            _png(inbox / batch / c / f"n{i}.png", 10 + 2 * i + int(c))
    (tmp_path / "dvc.lock").write_text("before")
    before = {"pool": _files(pool), "inbox": _files(inbox)}
    journal = retrain_journal.begin(tmp_path, "vision", ["dvc.lock", "pool.dvc"])
    results = process_inbox(inbox, pool, ImageIntake(28, 1), journal=journal)
    assert [r.status for r in results] == ["merged", "merged"] and not (inbox / "w1").exists()
    assert retrain_journal.merged_batches(tmp_path, "vision") == ["w1", "w2"]
    (tmp_path / "dvc.lock").write_text("after")  # what dvc repro would do
    (tmp_path / "pool.dvc").write_text("new")  # what dvc add would do
    done = retrain_journal.rollback(tmp_path, "vision")
    assert any("w1" in line for line in done) and any("w2" in line for line in done)
    assert {"pool": _files(pool), "inbox": _files(inbox)} == before
    assert (tmp_path / "dvc.lock").read_text() == "before" and not (tmp_path / "pool.dvc").exists()
    assert retrain_journal.pending(tmp_path, "vision") is None
    assert retrain_journal.rollback(tmp_path, "vision") == []  # nothing left to undo


def test_a_merge_killed_half_way_is_still_undone(tmp_path):
    """The journal names a batch before its files are copied: a kill in the middle of the copy is covered."""
    pool, inbox = tmp_path / "pool", tmp_path / "inbox"
    _png(pool / "0" / "a.png", 0)
    _png(inbox / "w1" / "0" / "b.png", 1)
    journal = retrain_journal.begin(tmp_path, "vision", [])
    retrain_journal.record_batch(journal, inbox / "w1", inbox / "merged" / "w1-x", [pool / "0" / "w1-x"])
    (pool / "0" / "w1-x").mkdir()
    (pool / "0" / "w1-x" / "b.png").write_bytes((inbox / "w1" / "0" / "b.png").read_bytes())  # copied; not moved yet
    retrain_journal.rollback(tmp_path, "vision")
    assert [p.name for p in pool.rglob("*.png")] == ["a.png"] and (inbox / "w1" / "0" / "b.png").exists()
