"""`make bench` reports what verification costs in each conversion: the cases it names exist, and
the figure is the verify stages of the conversion's own report over the bare calls."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "benchmarks" / "run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module  # its dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("bench_run", None)


def test_every_costed_conversion_is_a_measured_case(bench):
    cases = {name for name, _, theirs, _ in bench.conversion_cases() if theirs}
    assert set(bench.VERIFIED_CASES) <= cases and len(bench.VERIFIED_CASES) >= 2


def test_the_cost_is_the_verify_stages_over_the_bare_calls(bench, monkeypatch, tmp_path, capsys):
    # A "conversion" that writes the report a real one writes: verify stages of 0.25 s and 0.05 s.
    script = tmp_path / "fake_conversion.py"
    script.write_text(
        "import json, sys\n"
        "path = sys.argv[sys.argv.index('--report') + 1]\n"
        "json.dump({'timings': {'savedmodel.load': 3.0, 'savedmodel.verify': 0.25, 'tflite.verify': 0.05}}, open(path, 'w'))\n"
    )
    case = bench.VERIFIED_CASES[0]
    monkeypatch.setattr(bench, "conversion_cases", lambda: [(case, [sys.executable, str(script)], ["bare"], "")])
    (cost,) = bench.verification_cost([bench.Result(case, 5.0, 2.0, 0.4, "<= 1.3x bare")], repeat=3)
    assert cost.ours_s == pytest.approx(0.3) and cost.ratio == pytest.approx(0.15)
    assert cost.target == "<= 15% of bare" and json.loads(json.dumps(cost.__dict__))
    line = capsys.readouterr().out
    assert "verification of 32 samples in" in line and "15.0% of the bare calls" in line and "target <= 15%" in line
