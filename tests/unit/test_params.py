import subprocess
import sys

import pytest
import yaml

from transferlab.params.profiles import whole_data
from transferlab.params import Params, ParamsError, load_params, parse_params

from ..conftest import ROOT, venv_env


def test_default_and_smoke_profiles_are_valid():
    assert isinstance(load_params(ROOT / "params.yaml"), Params)
    smoke = load_params(ROOT / "profiles" / "smoke.yaml")
    assert smoke.finetune.seeds <= 2 and max(smoke.prepare.target.pool_sizes) <= 10


def test_full_profile_is_larger_than_the_default():
    full, default = load_params(ROOT / "profiles" / "full.yaml"), Params()
    assert full.prepare.source.num_samples > default.prepare.source.num_samples
    assert full.pretrain.model.widths[-1] > default.pretrain.model.widths[-1]
    assert max(full.prepare.target.pool_sizes) > max(default.prepare.target.pool_sizes)
    assert full.audio.finetune.steps > default.audio.finetune.steps


PROFILES = sorted(p.name for p in (ROOT / "profiles").glob("*.yaml"))


@pytest.mark.parametrize("profile", PROFILES)
def test_a_profile_states_only_what_it_changes(profile):
    from transferlab.params.profiles import restated_defaults

    assert restated_defaults(ROOT / "profiles" / profile) == []


def test_restated_defaults_finds_a_key_equal_to_its_default(tmp_path):
    from transferlab.params.profiles import restated_defaults

    path = tmp_path / "p.yaml"
    path.write_text(f"finetune: {{seeds: 2, steps: {Params().finetune.steps}}}\nruntime: {{device: cpu}}\n")
    assert restated_defaults(path) == ["finetune.steps"]


# The commit before profiles were trimmed to their changes: Params() plus each trimmed profile equals the file it was.
TRIMMED_AT = "eb2a961"


@pytest.mark.parametrize("profile", ["full.yaml", "smoke.yaml"])
def test_the_trimmed_profile_equals_the_whole_file_it_replaced(profile, tmp_path):
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)

    old = git("show", f"{TRIMMED_AT}:profiles/{profile}")
    if old.returncode != 0:
        pytest.skip(f"no git history here ({old.stderr.strip()})")
    later = git("log", "--format=%h", f"{TRIMMED_AT}..HEAD", "--", f"profiles/{profile}").stdout.split()
    if len(later) > 1:  # the trim itself is one commit; after another, the profile was changed on purpose
        pytest.skip(f"profiles/{profile} changed since the trim ({later[0]})")
    # The one rename since the trim (the backbone `full` became `src-full`) applied to the old text.
    (tmp_path / profile).write_text(old.stdout.replace("main_backbone: full ", "main_backbone: src-full "))
    assert load_params(tmp_path / profile).model_dump() == load_params(ROOT / "profiles" / profile).model_dump()
    from transferlab.params.profiles import restated_defaults

    assert restated_defaults(tmp_path / profile)  # the old file did restate defaults: the test compares two forms


@pytest.mark.parametrize("profile", PROFILES)
def test_params_yaml_written_from_a_profile_states_every_key_dvc_declares(profile, tmp_path):
    from transferlab.params.profiles import render
    from transferlab.system.dvc_params import missing_declared_params

    text = render(ROOT / "profiles" / profile)
    (tmp_path / "params.yaml").write_text(text)
    assert load_params(tmp_path / "params.yaml").model_dump() == load_params(ROOT / "profiles" / profile).model_dump()
    assert yaml.safe_load(text)["runtime"].keys() == Params().runtime.model_dump().keys()  # `-S runtime.x=` works
    assert missing_declared_params(ROOT, yaml.safe_load(text)) == []


@pytest.mark.parametrize("data, key", [
    ({"finetune": {"seedz": 3}}, "finetune.seedz"),
    ({"pretrain": {"epochs": "5"}}, "pretrain.epochs"),
    ({"pretrain": {"lr": -1.0}}, "pretrain.lr"),
    ({"finetune": {"strategies": ["head", "everything"]}}, "finetune.strategies.1"),
    ({"prepare": {"source": {"num_samples": 0}}}, "prepare.source.num_samples"),
    ({"runtime": {"device": "tpu"}}, "runtime.device"),
    ({"prepare": {"target": {"pool_sizes": [10, 5]}}}, "prepare.target"),
    ({"validate": {"min_per_class_test": 0}}, "validate.min_per_class_test"),
])
def test_bad_params_name_the_key(data, key):
    with pytest.raises(ParamsError) as err:
        parse_params(data)
    assert key in str(err.value)


def test_cross_section_check_names_both_keys():
    with pytest.raises(ParamsError, match=r"finetune.seeds .* prepare.target.pool_draws"):
        parse_params({"finetune": {"seeds": 5}, "prepare": {"target": {"pool_draws": 3}}})


def test_user_source_needs_root():
    with pytest.raises(ParamsError, match="prepare.source"):
        parse_params({"prepare": {"source": {"kind": "imagefolder"}}})
    p = parse_params({"prepare": {"source": {"kind": "imagefolder", "root": "/x"}}})
    assert p.prepare.source.kind == "imagefolder"


def test_stage_fails_before_any_work_on_bad_params(tmp_path):
    bad = whole_data(ROOT / "profiles" / "smoke.yaml")
    bad["prepare"]["source"]["num_samplez"] = 10
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(bad))
    proc = subprocess.run([sys.executable, "-m", "stages.prepare", "--source", "out/s", "--target", "out/t",
                           "--metrics", "out/m.json"], cwd=tmp_path, capture_output=True, text=True,
                          env=venv_env(PYTHONPATH=str(ROOT)))
    assert proc.returncode == 2
    assert "prepare.source.num_samplez" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_params_are_read_as_yaml_1_2_so_spoken_yes_and_no_stay_words(tmp_path):
    # `dvc exp run -S` rewrites params.yaml without quotes; a YAML 1.1 reader would see booleans here.
    path = tmp_path / "params.yaml"
    path.write_text("audio:\n  prepare:\n    source:\n      words: [yes, no, on, off]\n")
    words = load_params(path).audio.prepare.source.words
    assert words == ["yes", "no", "on", "off"]
    path.write_text("finetune: {seeds: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(path)


def test_every_cross_section_clash_is_reported_at_once():
    with pytest.raises(ParamsError) as err:
        parse_params({"prepare": {"target": {"pool_sizes": [5, 20, 50]}}, "distill": {"per_class": [5, 300]}})
    text = str(err.value)
    assert "evaluate.focus_per_class (10)" in text and "distill.per_class [5, 300]" in text
    assert "2 invalid parameter(s)" in text


def _cli(args, cwd):
    return subprocess.run([sys.executable, "-m", "transferlab.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env=venv_env())


def test_params_check_names_every_param_dvc_yaml_declares_but_the_file_lacks(tmp_path):
    from ..conftest import make_project

    repo = make_project(tmp_path / "p")
    for folder, n in (("target", 6), ("test", 5)):
        for c in "ab":
            (repo / "pool" / folder / c).mkdir(parents=True)
            for i in range(n):
                (repo / "pool" / folder / c / f"{i}.png").write_bytes(b"")  # counted, not read
    params = yaml.safe_load((repo / "params.yaml").read_text())
    # The README's way to point at a folder: the whole target mapping replaced, pool_draws left out.
    params["prepare"]["target"] = {"kind": "imagefolder", "root": "pool/target", "test_root": "pool/test",
                                   "pool_sizes": [1, 5]}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = _cli(["params", "check"], repo)
    assert proc.returncode == 2, proc.stdout
    assert "prepare.target.pool_draws (declared by stage validate)" in proc.stdout
    # The pipeline's first stage refuses the same, before it writes anything.
    stage = subprocess.run([sys.executable, "-m", "stages.data_roots", "--manifest", "out/roots.json",
                            "--weights", "out/weights.json"], cwd=repo,
                           capture_output=True, text=True, env=venv_env())
    assert stage.returncode == 2 and "prepare.target.pool_draws (declared by stage validate)" in stage.stderr
    assert not (repo / "out").exists()
    params["prepare"]["target"]["pool_draws"] = 2
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = _cli(["params", "check"], repo)
    assert proc.returncode == 0 and "valid" in proc.stdout, proc.stdout


def test_params_use_keeps_every_backup_and_default_restores_the_committed_file(tmp_path):
    from ..conftest import make_project

    repo = make_project(tmp_path / "p")
    committed = (repo / "params.yaml").read_text()
    (repo / "params.yaml").write_text(committed + "\n# my edit\n")
    assert _cli(["params", "use", "smoke"], repo).returncode == 0
    (repo / "params.yaml").write_text(committed + "\n# second edit\n")
    assert _cli(["params", "use", "smoke"], repo).returncode == 0
    backups = sorted((repo / ".transferlab" / "params-backups").iterdir())
    assert [b.read_text().splitlines()[-1] for b in backups] == ["# my edit", "# second edit"]
    # The profile states only its changes; params.yaml gets every key (DVC reads declared keys from it).
    written = yaml.safe_load((repo / "params.yaml").read_text())
    assert written["runtime"]["threads"] == 0 and written["finetune"]["seeds"] == 2
    assert load_params(repo / "params.yaml").model_dump() == load_params(ROOT / "profiles" / "smoke.yaml").model_dump()
    (repo / "params.yaml").write_text("finetune: {seeds: 1}\n")
    proc = _cli(["params", "use", "default"], repo)
    assert proc.returncode == 0, proc.stdout
    assert (repo / "params.yaml").read_text() == committed
    assert len(list((repo / ".transferlab" / "params-backups").iterdir())) == 3
    # Backups live in a git-ignored folder: the tree stays clean.
    assert subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout == ""
    proc = _cli(["params", "use", "nonesuch"], repo)
    assert proc.returncode == 2 and "default" in proc.stdout and "smoke" in proc.stdout
    # From another folder, with --repo: the project's profiles, params.yaml and backups, nothing written here.
    proc = _cli(["params", "use", "default", "--repo", str(repo)], tmp_path)
    assert proc.returncode == 0 and "already is params.yaml of git HEAD" in proc.stdout, proc.stdout + proc.stderr
    proc = _cli(["params", "use", "smoke", "--repo", str(repo)], tmp_path)
    assert proc.returncode == 0 and (repo / "params.yaml").read_text() != committed, proc.stdout + proc.stderr
    assert len(list((repo / ".transferlab" / "params-backups").iterdir())) == 4 and not (tmp_path / "params.yaml").exists()


def test_empty_lists_are_refused_by_name():
    for data, key in [({"finetune": {"strategies": []}}, "finetune.strategies"),
                      ({"prepare": {"target": {"pool_sizes": []}}}, "prepare.target.pool_sizes"),
                      ({"audio": {"prepare": {"target": {"near_misses": []}}}}, "audio.prepare.target.near_misses")]:
        with pytest.raises(ParamsError, match=key.replace(".", r"\.") + ": List should have at least 1 item"):
            parse_params(data)


def test_a_pool_larger_than_a_class_is_refused_up_front_by_check_and_by_prepare(tmp_path):
    import numpy as np
    from PIL import Image

    from ..conftest import make_project

    repo = make_project(tmp_path / "p")
    for c, n in (("cat", 12), ("dog", 4)):
        for i in range(n):
            (repo / "xrays" / c).mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((28, 28), 10 * i, np.uint8)).save(repo / "xrays" / c / f"{i}.png")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["prepare"]["target"].update(kind="imagefolder", root="xrays", test_per_class=3, pool_sizes=[1, 5])
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = _cli(["params", "check"], repo)
    assert proc.returncode == 2
    assert "prepare.target.pool_sizes: the largest pool (5) plus test_per_class (3) needs 8 images per class" in \
        proc.stdout and "dog (4)" in proc.stdout and "cat" not in proc.stdout.split("fewer:")[-1]
    stage = subprocess.run([sys.executable, "-m", "stages.prepare", "--source", "out/source", "--target", "out/target",
                            "--metrics", "out/m.json"], cwd=repo, capture_output=True, text=True, env=venv_env())
    assert stage.returncode == 2 and "prepare.target.pool_sizes" in stage.stderr and "dog (4)" in stage.stderr
    assert not (repo / "out").exists() or not any((repo / "out").iterdir())


# --- One source of defaults: the schema. params.yaml states the default run and must agree with it. ---

def _stated(raw: dict, section, path: tuple = ()):
    """(dotted key, stated value, schema value) for every leaf a params file states, walking the schema's sections."""
    from pydantic import BaseModel

    for key, value in raw.items():
        dotted = ".".join(map(str, path + (key,)))
        names = [n for n, f in type(section).model_fields.items() if (f.alias or n) == key]
        assert names, f"{dotted}: the file states it, the schema has no such key"
        current = getattr(section, names[0])
        if isinstance(current, BaseModel) and isinstance(value, dict):
            yield from _stated(value, current, path + (key,))
        elif isinstance(current, list) and current and isinstance(current[0], BaseModel):
            # a list of sections (backbones): each stated entry as the schema reads it, keys left out defaulted
            kind = type(current[0])
            yield dotted, [kind.model_validate(v).model_dump() for v in value], [m.model_dump() for m in current]
        else:
            yield dotted, value, current.model_dump(by_alias=True) if isinstance(current, BaseModel) else current


def test_params_yaml_states_exactly_the_schema_defaults():
    from transferlab.params import read_params_file

    defaults = Params()
    differ = [f"{key}: params.yaml {stated!r}, schema {schema!r}"
              for key, stated, schema in _stated(read_params_file(ROOT / "params.yaml"), defaults)
              if stated != schema]
    assert not differ, "schema defaults differ from params.yaml:\n" + "\n".join(differ)
    # Keys params.yaml leaves out of a section it states take the class defaults: those must agree too.
    assert load_params(ROOT / "params.yaml").model_dump() == defaults.model_dump()


def test_smoke_profile_states_only_keys_the_schema_has():
    from transferlab.params import read_params_file

    stated = list(_stated(read_params_file(ROOT / "profiles" / "smoke.yaml"), Params()))
    assert len(stated) > 50  # the walk reached the leaves


def test_the_params_package_imports_only_pydantic_yaml_the_standard_library_and_itself():
    import ast

    package = ROOT / "transferlab" / "params"
    allowed = {"pydantic", "yaml", "ruamel", "__future__", *sys.stdlib_module_names}
    modules = sorted(package.glob("*.py"))
    assert {m.stem for m in modules} >= {"__init__", "base", "vision", "audio", "branches", "multitask", "distill",
                                         "fewshot", "retrain"}
    bad = []
    for module in modules:
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                # every module sits directly in transferlab/params: level 1 stays inside, level 2+ leaves it
                if node.level > 1:
                    bad.append(f"{module.name}:{node.lineno}: from {'.' * node.level}{node.module or ''}")
                continue
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                if name == "transferlab.params" or name.startswith("transferlab.params."):
                    continue
                if name.split(".")[0] not in allowed:
                    bad.append(f"{module.name}:{node.lineno}: import {name}")
    assert not bad, "transferlab/params must not import the rest of the library:\n" + "\n".join(bad)


def test_strategy_names_are_spelled_once():
    from typing import get_args

    from transferlab.params import STRATEGIES, Strategy
    from transferlab.params.base import DEFAULT_STRATEGIES, TRANSFER_STRATEGIES
    from transferlab.core.recipes import STRATEGIES as used_by_recipes

    assert STRATEGIES == get_args(Strategy) == used_by_recipes
    assert Params().finetune.strategies == list(DEFAULT_STRATEGIES) and set(DEFAULT_STRATEGIES) <= set(STRATEGIES)
    assert set(Params().audio.finetune.strategies) <= set(DEFAULT_STRATEGIES)
    assert sorted(TRANSFER_STRATEGIES + ("scratch",)) == sorted(STRATEGIES)  # each strategy in one group


def test_the_audio_word_lists_are_params_with_the_synthesiser_order():
    words = Params().audio.prepare
    assert words.source.words[:4] == ["yes", "no", "up", "down"] and len(words.source.words) == 30
    assert words.target.near_misses[0] == "martin" and words.target.other_words[-1] == "kitchen"
