"""Inbox intake without DVC or Prefect: what is merged where, what is quarantined and why."""
import json
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

from transferlab.ops.intake import AudioIntake, ImageIntake, process_inbox


def _png(path, value: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random((28, 28)) * value).astype(np.uint8)).save(path)


def _wav(path, seed: int, level: float = 0.1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (np.random.default_rng(seed).standard_normal(16000) * level).astype(np.float32), 16000)


def test_an_image_batch_is_merged_into_its_own_sub_folders_and_a_repeat_is_quarantined(tmp_path):
    pool, inbox = tmp_path / "pool", tmp_path / "inbox"
    for c in "01":
        _png(pool / c / "a.png", 255, int(c))
    _png(inbox / "b1" / "0" / "a.png", 255, 10)  # same name as a pool file: must not overwrite it
    _png(inbox / "b1" / "1" / "x.png", 255, 11)
    (inbox / "b1" / "notes.txt").write_text("stays with the batch")
    original = (pool / "0" / "a.png").read_bytes()
    [result] = process_inbox(inbox, pool, ImageIntake(28, 1))
    assert result.status == "merged" and result.items == 2
    new = [p for p in pool.rglob("*.png") if p.parent.parent != pool]
    assert sorted(p.name for p in new) == ["a.png", "x.png"] and all(p.parent.name.startswith("b1-") for p in new)
    assert (pool / "0" / "a.png").read_bytes() == original
    assert (Path(result.moved_to) / "notes.txt").exists() and not (inbox / "b1").exists()
    # The same images again: every one is already in the pool.
    _png(inbox / "b2" / "0" / "a.png", 255, 10)
    [again] = process_inbox(inbox, pool, ImageIntake(28, 1))
    assert again.status == "quarantined" and "content_hash" in again.problems[0]
    assert len(list(pool.rglob("*.png"))) == 4
    # Two new batches in one run: the second repeats an image the first just merged.
    _png(inbox / "b3" / "1" / "y.png", 255, 12)
    _png(inbox / "b4" / "1" / "y.png", 255, 12)
    first, second = process_inbox(inbox, pool, ImageIntake(28, 1))
    assert (first.status, second.status) == ("merged", "quarantined") and "content_hash" in second.problems[0]


def test_an_audio_batch_with_a_test_voice_or_an_unknown_class_is_quarantined(tmp_path):
    pool, test, inbox = tmp_path / "pool", tmp_path / "test", tmp_path / "inbox"
    _wav(pool / "marvin" / "ann_nohash_0.wav", 1)
    _wav(pool / "other" / "ann_nohash_1.wav", 2)
    _wav(test / "marvin" / "zoe_nohash_0.wav", 3)
    _wav(inbox / "good" / "marvin" / "bob_nohash_0.wav", 4)
    _wav(inbox / "leak" / "marvin" / "zoe_nohash_5.wav", 5)  # zoe speaks in the fixed test set
    _wav(inbox / "zclass" / "dog" / "cal_nohash_0.wav", 6)
    kind = AudioIntake(16000, 1.0, min_rms=0.002, max_clipped_fraction=0.01)
    results = {r.batch: r for r in process_inbox(inbox, pool, kind, test)}
    assert results["good"].status == "merged"
    assert list((pool / "marvin").glob("good-*/bob_nohash_0.wav"))
    assert results["leak"].status == "quarantined" and "'speaker'" in results["leak"].problems[0]
    assert "zoe_nohash_5.wav" in results["leak"].problems[0]
    assert results["zclass"].status == "quarantined" and "'label_name'" in results["zclass"].problems[0]
    report = json.loads((Path(results["leak"].moved_to) / "validation.json").read_text())
    assert report["batch"] == "leak" and report["success"] is False
    assert sorted(p.name for p in pool.rglob("*.wav")) == ["ann_nohash_0.wav", "ann_nohash_1.wav", "bob_nohash_0.wav"]


def test_a_batch_with_links_to_outside_data_is_quarantined_and_nothing_outside_is_read(tmp_path):
    pool, inbox, elsewhere = tmp_path / "pool", tmp_path / "inbox", tmp_path / "elsewhere"
    for c in "01":
        _png(pool / c / "a.png", 255, int(c))
    _png(elsewhere / "secret.png", 255, 5)
    for i in range(3):
        _png(elsewhere / "1" / f"s{i}.png", 255, 20 + i)
    _png(inbox / "b1" / "0" / "own.png", 255, 7)
    (inbox / "b1" / "0" / "linked.png").symlink_to(elsewhere / "secret.png")
    (inbox / "b1" / "1").symlink_to(elsewhere / "1", target_is_directory=True)
    before = sorted(p.name for p in pool.rglob("*"))
    [result] = process_inbox(inbox, pool, ImageIntake(28, 1))
    assert result.status == "quarantined" and len(result.problems) == 2
    assert all("symbolic link" in p for p in result.problems)
    kept = Path(result.moved_to) / "batch"
    # The report names the entries where they now lie, in the quarantine.
    assert {p.split(":")[0] for p in result.problems} == {str(kept / "0" / "linked.png"), str(kept / "1")}
    report = json.loads((Path(result.moved_to) / "validation.json").read_text())
    assert report["problems"] == result.problems
    assert sorted(p.name for p in pool.rglob("*")) == before and (elsewhere / "secret.png").exists()


def test_a_quarantine_report_names_a_broken_file_where_it_now_lies(tmp_path):
    pool, inbox = tmp_path / "pool", tmp_path / "inbox"
    _png(pool / "0" / "a.png", 255, 0)
    (inbox / "b2" / "0").mkdir(parents=True)
    (inbox / "b2" / "0" / "broken.png").write_bytes(b"\x89PNG not really")
    [result] = process_inbox(inbox, pool, ImageIntake(28, 1))
    kept = Path(result.moved_to) / "batch" / "0" / "broken.png"
    assert result.status == "quarantined" and str(kept) in result.problems[0] and kept.exists()
