"""`make bench` reports what verification costs in each conversion: the cases it measures exist,
their unverified twins differ only by --no-verify, and the share is computed against the bare calls."""

from __future__ import annotations

import importlib.util
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


def test_every_measured_conversion_has_its_unverified_twin(bench):
    cases = {name: ours for name, ours, theirs, _ in bench.conversion_cases() if theirs}
    assert {name for name, _ in bench.UNVERIFIED} <= set(cases)
    assert len(bench.UNVERIFIED) >= 2
    for name, command in bench.UNVERIFIED:
        assert command() == [*cases[name], "--no-verify"]


def test_verification_cost_is_the_difference_over_the_bare_calls(bench, monkeypatch, capsys):
    # The unverified twin here is a process that does nothing (a few tens of ms): the verified
    # run's 3 s minus its time, over the bare calls' 2 s.
    case = bench.UNVERIFIED[0][0]
    monkeypatch.setattr(bench, "UNVERIFIED", [(case, lambda: [sys.executable, "-c", "pass"])])
    (cost,) = bench.verification_cost([bench.Result(case, 3.0, 2.0, 2.0 / 3.0, "<= 1.3x bare")], repeat=1)
    assert 2.0 < cost.ours_s < 3.0  # what verification added
    assert cost.ratio == pytest.approx(cost.ours_s / 2.0) and cost.target == "<= 15% of bare"
    line = capsys.readouterr().out
    assert "verification of 32 samples in" in line and "of the bare calls" in line and "target <= 15%" in line
