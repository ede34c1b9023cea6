"""Figures of the fuzz suite: per reader, how many mutated inputs ran, how many distinct
failure messages they produced and the slowest input. Written to ``out/fuzz-figures.json``
and printed at the end of the session."""

from __future__ import annotations

import json
import os
import time

from tests.conftest import ROOT

from .harness import FIGURES

FIGURES_PATH = ROOT / "out" / "fuzz-figures.json"
_START = time.time()


def pytest_sessionfinish(session, exitstatus):
    if not FIGURES:
        return
    FIGURES_PATH.parent.mkdir(exist_ok=True)
    data = {
        "examples_setting": os.environ.get("TFMODELKIT_FUZZ_EXAMPLES", "default"),
        "time_limit_seconds": float(os.environ.get("TFMODELKIT_FUZZ_TIME_LIMIT", "5")),
        "readers": {fmt: FIGURES[fmt].as_dict() for fmt in sorted(FIGURES)},
        "total_inputs": sum(f.inputs for f in FIGURES.values()),
    }
    FIGURES_PATH.write_text(json.dumps(data, indent=2) + "\n")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not FIGURES:
        return
    tr = terminalreporter
    tr.section("fuzz figures (also in out/fuzz-figures.json)")
    tr.write_line(
        f"{'reader':<11} {'inputs':>7} {'read ok':>8} {'refused':>8} {'check!':>7} "
        f"{'errors':>7} {'findings':>8} {'slowest s':>9}  slowest input"
    )
    for fmt in sorted(FIGURES):
        f = FIGURES[fmt]
        tr.write_line(
            f"{fmt:<11} {f.inputs:>7} {f.described:>8} {f.refused:>8} {f.check_failed:>7} "
            f"{len(f.errors):>7} {len(f.findings):>8} {f.slowest:>9.3f}  {f.slowest_label[:70]}"
        )
