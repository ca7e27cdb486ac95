"""Precision: fp32, or bf16 autocast over fp32 weights; `auto` only picks bf16 where the hardware has it."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from transferlab.core.engine import TrainConfig, predict_logits, train
from transferlab.params import ParamsError, RuntimeParams, parse_params
from transferlab.system import precision
from transferlab.system.context import Runtime

from ..conftest import tiny_digits

BF16 = Runtime(precision="bf16")


def test_auto_is_bf16_only_where_the_device_computes_it_natively(monkeypatch):
    monkeypatch.setattr(precision, "native_bf16", lambda device: False)
    assert precision.resolve("auto", "cpu") == "fp32"
    monkeypatch.setattr(precision, "native_bf16", lambda device: True)
    assert precision.resolve("auto", "cpu") == "bf16"
    assert precision.resolve("fp32", "cpu") == "fp32" and precision.resolve("bf16", "cpu") == "bf16"
    with pytest.raises(ValueError, match="fp16"):
        precision.resolve("fp16", "cpu")
    with pytest.raises(ValueError, match="resolve 'auto' first"):
        Runtime(precision="auto")


def test_configure_builds_the_context_from_params_with_auto_resolved(monkeypatch):
    from transferlab.system import runtime as rt
    from transferlab.system.parallel import cores

    monkeypatch.setattr(rt, "resolve", lambda requested, device: "bf16" if requested == "auto" else requested)
    before = torch.get_num_threads()
    try:
        ctx = rt.configure(RuntimeParams(device="auto", precision="auto", workers=0, threads=1,
                                         cluster="tcp://10.0.0.5:8786"))
        assert ctx == Runtime(device="cuda" if torch.cuda.is_available() else "cpu", precision="bf16",
                              workers=cores(), threads=1, cluster="tcp://10.0.0.5:8786")
        assert torch.get_num_threads() == 1
        assert rt.configure(RuntimeParams(precision="fp32", workers=3), "cpu").workers == 3
    finally:
        torch.set_num_threads(before)


def test_the_params_name_a_bad_precision_or_cluster():
    with pytest.raises(ParamsError, match="runtime.precision"):
        parse_params({"runtime": {"precision": "fp16"}})
    with pytest.raises(ParamsError, match="runtime.cluster"):
        parse_params({"runtime": {"cluster": "host:8786"}})
    ok = parse_params({"runtime": {"precision": "auto", "cluster": "tcp://10.0.0.5:8786"}})
    assert ok.runtime.cluster == "tcp://10.0.0.5:8786"


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))


def _fit(steps: int = 6, runtime: Runtime = Runtime()) -> tuple[nn.Module, list[torch.dtype]]:
    data = tiny_digits(per_class=8)
    model = _net()
    seen: list[torch.dtype] = []
    model[0].register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    train(model, data.samples, data.labels, [{"params": list(model.parameters()), "lr": 1e-2}],
          TrainConfig(steps=steps, batch_size=8), torch.Generator().manual_seed(0), runtime)
    return model, seen


def test_bf16_trains_convolutions_in_bf16_keeps_fp32_weights_and_is_deterministic():
    model, seen = _fit(runtime=BF16)
    assert set(seen) == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in model.parameters())
    again, _ = _fit(runtime=BF16)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    seen.clear()
    logits = predict_logits(model, tiny_digits(per_class=6).samples, BF16)
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all() and set(seen) == {torch.bfloat16}


def test_fp32_is_untouched_by_autocast():
    model, seen = _fit()
    assert set(seen) == {torch.float32}
    # bf16 really changes the arithmetic: the two precisions' weights differ after training.
    other, _ = _fit(runtime=BF16)
    assert not all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))
