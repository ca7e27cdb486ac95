import hashlib

import numpy as np
import pytest
from PIL import Image

from transferlab.system.context import Runtime
from transferlab.data.build import load_target, prepare, resolve_charset
from transferlab.data.glyphs import LATIN, GlyphStyle, render_dataset
from transferlab.data.prepared import load_prepared
from transferlab.data.sources import DataError, load_image_folder, load_torchvision
from transferlab.params import parse_params


def digest(a: np.ndarray) -> str:
    return hashlib.sha256(a.tobytes()).hexdigest()


def test_glyphs_are_deterministic_and_independent_of_workers():
    a, la, fa = render_dataset(120, LATIN, seed=3, runtime=Runtime(workers=1), chunk=50)
    b, lb, fb = render_dataset(120, LATIN, seed=3, runtime=Runtime(workers=2), chunk=40)
    assert digest(a) == digest(b) and (la == lb).all() and fa == fb
    c, _, _ = render_dataset(120, LATIN, seed=4)
    assert digest(a) != digest(c)


def test_glyphs_are_balanced_centred_and_not_blank():
    images, labels, _ = render_dataset(104, LATIN, seed=0, style=GlyphStyle())
    assert images.shape == (104, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels, minlength=52).tolist() == [2] * 52
    assert (images.reshape(104, -1).max(1) > 100).all()
    ys, xs = np.indices((28, 28))
    mass = images.astype(float).sum((1, 2))
    cy = (images * ys).sum((1, 2)) / mass
    cx = (images * xs).sum((1, 2)) / mass
    assert np.abs(cy - 14).max() < 3 and np.abs(cx - 14).max() < 3  # MNIST-like centring


def test_unknown_character_is_named():
    with pytest.raises(ValueError, match=r"no bundled font renders .*ue000"):
        render_dataset(4, "A\ue000", seed=0)  # private-use code point: in no font
    with pytest.raises(DataError):
        resolve_charset("AA")


def test_prepare_writes_tables_pools_and_same_bytes_twice(tmp_path):
    p = parse_params({"prepare": {"source": {"num_samples": 208, "charset": "latin"},
                                  "target": {"test_per_class": 10, "pool_sizes": [1, 3], "pool_draws": 2}},
                      "finetune": {"seeds": 2}, "evaluate": {"focus_per_class": 3},
                      "distill": {"per_class": None, "seeds": None}})
    prepare(p.prepare, tmp_path / "s1", tmp_path / "t1")
    prepare(p.prepare, tmp_path / "s2", tmp_path / "t2")
    for name in ("images.safetensors", "metadata.csv"):
        assert (tmp_path / "s1" / name).read_bytes() == (tmp_path / "s2" / name).read_bytes()
        assert (tmp_path / "t1" / name).read_bytes() == (tmp_path / "t2" / name).read_bytes()
    target = load_prepared(tmp_path / "t1")
    assert target.samples.shape[1:] == (1, 28, 28) and len(target.classes) == 10
    assert (target.metadata["split"] == "test").sum() == 100
    for draw in range(2):
        small, big = target.pool(draw, 1), target.pool(draw, 3)
        assert set(small) <= set(big) and len(big) == 30  # nested pools
        assert (target.metadata["split"].to_numpy()[big] == "train").all()
        assert np.bincount(target.labels[big].numpy(), minlength=10).tolist() == [3] * 10
    assert set(target.pool(0, 3)) != set(target.pool(1, 3))  # each draw its own sample


def _write_folder(root, classes=("cat", "dog"), per_class=4, size=12, mode="L"):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            arr = rng.integers(0, 255, (size, size, 3) if mode == "RGB" else (size, size), dtype=np.uint8)
            Image.fromarray(arr, mode).save(root / c / f"{i}.png")


def test_image_folder_loads_and_converts(tmp_path):
    _write_folder(tmp_path / "imgs", mode="RGB")
    data = load_image_folder(tmp_path / "imgs", size=28, channels=1)
    assert data.images.shape == (8, 1, 28, 28) and data.classes == ["cat", "dog"]
    assert data.ids[0].startswith("cat/")
    rgb = load_image_folder(tmp_path / "imgs", size=16, channels=3)
    assert rgb.images.shape == (8, 3, 16, 16)


def test_corrupt_image_is_named(tmp_path):
    _write_folder(tmp_path / "imgs")
    bad = tmp_path / "imgs" / "dog" / "broken.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(DataError, match="broken.png"):
        load_image_folder(tmp_path / "imgs", size=28, channels=1)


def test_missing_sources_give_clear_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_image_folder(tmp_path / "nope", 28, 1)
    with pytest.raises(DataError, match="not found under"):
        load_torchvision("MNIST", tmp_path, True, 28, 1)


def test_imagefolder_target_goes_through_the_same_path(tmp_path):
    _write_folder(tmp_path / "imgs", classes=("a", "b", "c"), per_class=6)
    p = parse_params({"prepare": {"source": {"num_samples": 104, "charset": "latin"},
                                  "target": {"kind": "imagefolder", "root": str(tmp_path / "imgs"),
                                             "test_per_class": 2, "pool_sizes": [1, 2], "pool_draws": 1}},
                      "finetune": {"seeds": 1}, "evaluate": {"focus_per_class": 2},
                      "distill": {"per_class": None, "seeds": None}})
    prepare(p.prepare, tmp_path / "s", tmp_path / "t")
    target = load_prepared(tmp_path / "t")
    assert target.classes == ["a", "b", "c"] and len(target.pool(0, 2)) == 6


def test_too_small_class_is_named(tmp_path):
    _write_folder(tmp_path / "imgs", classes=("a", "b"), per_class=3)
    p = parse_params({"prepare": {"source": {"num_samples": 52, "charset": "latin"},
                                  "target": {"kind": "imagefolder", "root": str(tmp_path / "imgs"),
                                             "test_per_class": 2, "pool_sizes": [5], "pool_draws": 1}},
                      "finetune": {"seeds": 1}, "evaluate": {"focus_per_class": 5},
                      "distill": {"per_class": None, "seeds": None}})
    with pytest.raises(DataError, match="class 'a' has 3 images"):
        prepare(p.prepare, tmp_path / "s", tmp_path / "t")


def test_bundled_targets_load():
    mnist = load_target(parse_params({}).prepare.target, 28, 1)
    assert mnist.images.shape == (5000, 1, 28, 28) and np.bincount(mnist.labels).tolist() == [500] * 10
    digits = load_target(parse_params({"prepare": {"target": {"kind": "sklearn_digits"}}}).prepare.target, 28, 1)
    assert digits.images.shape == (1797, 1, 28, 28) and digits.images.max() > 200


def test_the_roots_manifest_names_every_user_folder_and_sees_a_changed_byte(tmp_path):
    import json

    from transferlab.data.roots import changed_roots, manifest
    from transferlab.params import parse_params

    for name in ("target/a/1.png", "target/b/2.png", "test/a/3.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(name.encode())
    params = parse_params({"prepare": {"target": {"kind": "imagefolder", "root": "target", "test_root": "test"}}})
    result = manifest(params, tmp_path)
    assert set(result["roots"]) == {"prepare.target.root", "prepare.target.test_root"}
    assert result["roots"]["prepare.target.root"]["files"] == 2
    assert manifest(parse_params({}), tmp_path) == {"roots": {}}  # embedded data: no folder
    (tmp_path / "roots.json").write_text(json.dumps(result))
    assert changed_roots(tmp_path / "roots.json", tmp_path) == []
    (tmp_path / "target/b/2.png").write_bytes(b"another drawing")
    [changed] = changed_roots(tmp_path / "roots.json", tmp_path)
    assert changed.startswith("prepare.target.root: target changed")
