"""Profiles: a file in profiles/ states only what it changes from the schema's defaults; `params use` writes the
whole of it to params.yaml, because DVC reads each key a stage declares (and every key `-S` sets) from that file."""
from __future__ import annotations

import enum
from pathlib import Path, PurePath
from typing import Any

import yaml

from transferlab.params import Params, load_params, parse_params


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {_plain(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, enum.Enum):
        return x.value
    if isinstance(x, PurePath):
        return str(x)
    return x


def whole(params: Params) -> dict:
    """Every key of `params`, by the names params.yaml uses, as plain YAML values."""
    return _plain(params.model_dump(by_alias=True))


def whole_data(profile: Path | str) -> dict:
    """The whole params mapping a profile stands for: the schema's defaults, overridden by what it states."""
    return whole(load_params(profile))


def render(profile: Path | str) -> str:
    """params.yaml's text for a profile: a header naming it, then every key."""
    params = load_params(profile)
    text = yaml.safe_dump(whole(params), sort_keys=False, width=120, allow_unicode=True)
    assert parse_params(yaml.safe_load(text)).model_dump() == params.model_dump()  # the dump round-trips
    return (f"# {Path(profile).as_posix()} over the schema's defaults, every key (written by "
            f"`transferlab params use {Path(profile).stem}`; edit the profile, not this file)\n" + text)


def restated_defaults(profile: Path | str) -> list[str]:
    """Keys a profile states whose removal leaves the params unchanged: they restate a default."""
    from transferlab.params import read_params_file

    data = read_params_file(profile)
    target = parse_params(data, profile).model_dump()
    found = []
    for path in _leaves(data):
        trial = _without(data, path)
        try:
            if parse_params(trial, profile).model_dump() == target:
                found.append(".".join(map(str, path)))
        except Exception:  # a key the profile needs (removing it fails validation) is not a restated default
            continue
    return found


def same_profile(params_file: Path | str, profiles_dir: Path | str) -> str | None:
    """The profile in `profiles_dir` whose params equal those of `params_file`, if any."""
    mine = load_params(params_file).model_dump()
    for path in sorted(Path(profiles_dir).glob("*.yaml")):
        try:
            if load_params(path).model_dump() == mine:
                return path.stem
        except Exception:  # a broken profile matches nothing; `params check` reports it
            continue
    return None


def _leaves(d: dict, prefix: tuple = ()) -> list[tuple]:
    out = []
    for k, v in d.items():
        out += _leaves(v, prefix + (k,)) if isinstance(v, dict) and v else [prefix + (k,)]
    return out


def _without(d: dict, path: tuple) -> dict:
    head, *rest = path
    out = dict(d)
    if rest:
        out[head] = _without(d[head], tuple(rest))
        if not out[head]:
            del out[head]
    else:
        del out[head]
    return out
