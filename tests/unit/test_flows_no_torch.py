"""The flows orchestrate; they never load torch just by being imported (a scheduler process serves them all
day), and neither does any ops module they may call."""
import subprocess
import sys

from ..conftest import ROOT

MODULES = ["flows.retrain", "flows.serve", "flows.pipeline", "transferlab.ops.git", "transferlab.ops.intake",
           "transferlab.ops.lineage", "transferlab.system.openlineage", "transferlab.ops.predict",
           "transferlab.ops.promotion", "transferlab.ops.registry", "transferlab.ops.retrain",
           "transferlab.ops.retrain_journal", "transferlab.ops.tracks"]


def test_importing_the_flows_and_ops_loads_no_torch():
    code = (f"import importlib, sys\nfor m in {MODULES!r}:\n    importlib.import_module(m)\n"
            "    assert 'torch' not in sys.modules, f'importing {m} loaded torch'\nprint('ok')")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
