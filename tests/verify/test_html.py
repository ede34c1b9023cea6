"""The HTML report of `modelconv verify --html`: self-contained, escaped, one pair of plots per output.

Reports are built with the comparator on numpy dicts, so no TensorFlow is needed; one test renders
the page in headless Chromium and checks the screenshot shows a page, not a blank window.
"""

from __future__ import annotations

import dataclasses
import re
import struct
import zlib

import numpy as np
import pytest

from tests.verify.browser import colour_share, paeth, read_png, screenshot
from tfmodelkit.verify import render_html, write_html
from tfmodelkit.verify.compare import VerificationReport, compare
from tfmodelkit.verify.html import MAX_SCATTER_POINTS, sample_points

EVIL = "<script>alert(1)</script>"


def _context(**extra) -> dict:
    side = {"backend": "keras", "path": "/m/a.keras", "loader": "keras", "versions": {"keras": "3.0"}}
    cand = {
        "backend": "tflite",
        "path": "/m/b.tflite",
        "loader": "ai_edge_litert",
        "signature": "serving_default",
    }
    return {"reference": side, "candidate": cand, "seed": 7, "inputs_source": "generated", **extra}


def _report(expected: dict, actual: dict, context: dict | None = None, **kw) -> VerificationReport:
    report = compare(expected, actual, **kw)
    return dataclasses.replace(
        report,
        context=_context() if context is None else context,
        arrays={"inputs": {}, "expected": expected, "actual": actual},
    )


def _passing() -> VerificationReport:
    rng = np.random.default_rng(0)
    e = {"logits": rng.normal(size=(8, 5)).astype(np.float32), "count": np.arange(6, dtype=np.int32)}
    a = {"logits": e["logits"] + np.float32(1e-7), "count": e["count"].copy()}
    return _report(e, a)


def _failing() -> VerificationReport:
    rng = np.random.default_rng(1)
    e = {"box": rng.uniform(-1, 1, size=(16, 4)).astype(np.float32), "label": np.array([0, 1, 2, 3])}
    a = {
        "box": e["box"] + rng.normal(scale=1e-2, size=(16, 4)).astype(np.float32),
        "label": np.array([0, 1, 2, 2]),
    }
    return _report(e, a)


def _verdict(page: str) -> str:
    return re.search(r'<section class="verdict (pass|fail)".*?</section>', page, re.S).group(0)


# ------------------------------------------------------------------------------------- the page


@pytest.mark.parametrize("make", [_passing, _failing])
def test_page_is_self_contained(make):
    page = render_html(make())
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "http://" not in page and "https://" not in page
    # Nothing is fetched: no scripts, stylesheets, images, fonts or frames, no URL but #fragments.
    for tag in ("<script", "<link", "<img", "<iframe", "<object", "<embed", "@import", "@font-face"):
        assert tag not in page.lower()
    for target in re.findall(r'(?:src|href)\s*=\s*["\']([^"\']*)', page):
        assert target.startswith("#"), target
    for target in re.findall(r"url\(([^)]*)\)", page):
        assert target.startswith("#"), target
    assert "<style>" in page


def test_verdict_for_pass_and_fail():
    passed = render_html(_passing())
    assert 'class="verdict pass"' in passed and ">PASS<" in _verdict(passed)
    assert "All 2 outputs within tolerance" in passed
    assert passed.count('<span class="pill pass">PASS</span>') == 4  # table row + card, per output

    failed = render_html(_failing())
    verdict = _verdict(failed)
    assert 'class="verdict fail"' in failed and ">FAIL<" in verdict
    assert "2 of 2 outputs out of tolerance" in verdict
    assert "verification failed" in verdict
    assert "<title>FAIL" in failed and "<title>PASS" in passed


def test_one_histogram_and_one_scatter_per_output():
    report = _failing()
    page = render_html(report)
    assert page.count("<svg") == 2 * len(report.outputs)
    for o in report.outputs:
        assert f'aria-label="histogram of absolute errors of {o.name}"' in page
        assert f'aria-label="expected against actual values of {o.name}"' in page
    assert "|actual − expected|, binned by decade" in page  # axis labels
    assert "expected (reference)" in page and "actual (candidate)" in page
    assert "<polygon" in page  # the tolerance band of the float output
    assert 'stroke-linecap="round"' in page  # the points


def test_table_has_every_figure():
    report = _failing()
    page = render_html(report)
    box = report.output("box")
    for header in ("absolute error", "relative error", "median", "p99", "worst element", "failing",
                   "smallest<br>passing atol", "NaN / Inf", "top-1"):  # fmt: skip
        assert header in page
    assert f"{box.failing:,} / {box.size:,}" in page
    assert f"{box.max_abs_error:.3g}" in page and f"{box.p99_rel_error:.3g}" in page
    assert f"{box.min_atol:.3g}" in page
    assert "[" + ",".join(map(str, box.worst_index)) + "]" in page
    assert "float32[16,4]" in page and "int64[4]" in page  # dtype and shape, checked
    assert "exact" in page  # the integer output


def test_every_string_from_the_model_is_escaped():
    e = {EVIL: np.ones((2, 3), np.float32), "ok": np.zeros(2, np.float32)}
    a = {EVIL: np.ones((2, 3), np.float32) * 1.5, "ok": np.zeros(2, np.float32)}
    ctx = _context(inputs={EVIL: {"dtype": "float32", "shape": [2, 3]}})
    ctx["reference"] = {**ctx["reference"], "path": f"/m/{EVIL}.keras", "signature": EVIL,
                        "inputs": [{"name": EVIL, "dtype": "float32", "shape": [None, 3]}]}  # fmt: skip
    report = dataclasses.replace(_report(e, a, ctx), notes=(f"note about {EVIL}",))
    page = render_html(report, title=f"title {EVIL}")
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("&lt;script&gt;") >= 8  # title, verdict, side, inputs, table, card, plots, notes


def test_mismatched_signatures_have_no_outputs():
    # What verify() returns when the models take different inputs: nothing ran.
    report = VerificationReport(
        outputs=(), matched_by="mismatch", ok=False, notes=("the models take different inputs (x vs y)",),
        context=_context(inputs_matched_by="mismatch"),
    )  # fmt: skip
    page = render_html(report)
    assert "The models could not be compared" in _verdict(page)
    assert "not run: the models take different inputs" in page
    assert "No output was compared." in page and "<svg" not in page
    assert "the models take different inputs (x vs y)" in page


def test_different_output_sets_are_listed():
    e = {"a": np.ones(3, np.float32), "b": np.ones(2, np.float32)}
    a = {"a": np.ones(3, np.float32), "c<x>": np.ones(4, np.float32)}
    page = render_html(_report(e, a))
    assert "The two sides do not have the same outputs" in page
    assert "expected but missing from the actual side: <code>b</code>" in page
    assert "not expected (only on the actual side): <code>c&lt;x&gt;</code>" in page
    assert page.count("<svg") == 2  # the common output is still plotted


def test_nan_and_inf():
    e = {"y": np.array([1.0, np.nan, np.inf, 2.0, 3.0], np.float32)}
    a = {"y": np.array([1.0, np.nan, np.inf, np.nan, np.inf], np.float32)}
    report = _report(e, a)
    page = render_html(report)
    assert not report.ok
    assert ">NaN/Inf</text>" in page  # its own histogram bar
    assert "2 NaN/Inf mismatches" in page
    assert "4 NaN/Inf pairs not drawn" in page  # the scatter leaves out matching and mismatching ones
    assert "exp</span> 1 NaN, 1 Inf" in page and "act</span> 2 NaN, 2 Inf" in page
    assert "none</span>" in page  # no atol passes


def test_all_nonfinite_output():
    e = {"y": np.full(4, np.nan, np.float32)}
    page = render_html(_report(e, {"y": e["y"].copy()}))
    assert "no element is finite on both sides (4 NaN/Inf pairs)" in page
    assert 'class="verdict pass"' in page


def test_integer_outputs_are_compared_exactly():
    e = {"ids": np.array([[1, 2], [3, 4]], np.int64)}
    a = {"ids": np.array([[1, 2], [3, 5]], np.int64)}
    page = render_html(_report(e, a, atol=10.0, rtol=10.0))
    assert "exact comparison: any difference fails" in page
    assert "<polygon" not in page  # no tolerance band around y = x
    assert page.count("<svg") == 2
    assert "1 / 4" in page


def test_scalar_and_empty_outputs():
    e = {"s": np.float32(2.5), "empty": np.zeros((0, 3), np.float32)}
    page = render_html(_report(e, {"s": np.float32(2.5), "empty": np.zeros((0, 3), np.float32)}))
    assert 'class="verdict pass"' in page
    assert "float32[]" in page and "float32[0,3]" in page
    assert "empty output: nothing to plot" in page and "empty output: no errors to bin" in page
    assert page.count("<svg") == 2  # the scalar's histogram and scatter


def test_shape_mismatch_and_strings_render_without_plots():
    e = {"x": np.ones((2, 3), np.float32), "names": np.array(["a", "b"])}
    a = {"x": np.ones((2, 4), np.float32), "names": np.array(["a", "c"])}
    page = render_html(_report(e, a))
    assert "shape [2, 4] differs from the expected [2, 3]" in page
    assert "values are not numbers (compared exactly): no error histogram" in page
    assert "values are not real numbers: nothing to plot" in page
    assert "<svg" not in page


def test_golden_file_mode():
    e = {"y": np.linspace(0, 1, 10, dtype=np.float32)}
    ctx = {
        "reference": {"backend": "golden outputs", "path": "/g/golden.npz"},
        "candidate": {"backend": "tflite", "path": "/m/model.tflite", "signature": "serving_default"},
        "inputs_source": "/g/inputs.npz", "seed": None,
        "inputs": {"x": {"dtype": "float32", "shape": [1, 8]}},
    }  # fmt: skip
    report = _report(e, {"y": e["y"].copy()}, ctx)
    report = dataclasses.replace(
        report, arrays={**report.arrays, "inputs": {"x": np.full((1, 8), 0.5, np.float32)}}
    )
    page = render_html(report)
    assert "golden outputs" in page and "/g/golden.npz" in page
    assert "read from <code>/g/inputs.npz</code>" in page
    assert "<code>y</code> float32[10]" in page  # the golden file's arrays
    assert "0.5 … 0.5" in page  # the input's range
    assert "golden.npz vs model.tflite" in page  # default title


def test_generated_inputs_show_their_seed_and_outputs_matched_by_position():
    e, a = {"out": np.ones(3, np.float32)}, {"renamed": np.ones(3, np.float32)}
    page = render_html(_report(e, a))
    assert "generated from the reference's signature with seed <code>7</code>" in page
    assert "out ~ renamed" in page and "outputs matched by position" in page


def test_report_without_arrays_still_has_histograms():
    report = compare({"y": np.ones(3, np.float32)}, {"y": np.ones(3, np.float32) + 1e-3})
    page = render_html(report)
    assert "the values were not kept with this report" in page
    assert page.count("<svg") == 1
    assert "Verification report" in page  # no context: a generic title


def test_per_output_tolerances_are_listed():
    e = {"a": np.ones(3, np.float32), "b": np.ones(3, np.float32)}
    page = render_html(_report(e, {k: v + 1e-3 for k, v in e.items()}, per_output={"b": (1e-2, None)}))
    assert "<code>b</code>: atol 0.01, rtol 1e-05" in page
    assert (
        page.count("atol 0.01<br>rtol 1e-05") == 1 and page.count("atol 1e-05<br>rtol 1e-05") == 1
    )  # the table


def test_scatter_sample_is_bounded_deterministic_and_keeps_the_worst():
    rng = np.random.default_rng(3)
    x = rng.normal(size=50_000)
    y = x + rng.normal(scale=1e-6, size=x.size)
    y[12_345] += 5.0  # the one outlier
    xs, ys, fail, skipped = sample_points(x, y, 1e-3, 0.0, exact=False)
    assert xs.size <= MAX_SCATTER_POINTS and skipped == 0
    assert fail.sum() == 1 and np.isclose(ys[fail][0], y[12_345])
    again = sample_points(x, y, 1e-3, 0.0, exact=False)
    assert all(np.array_equal(p, q) for p, q in zip((xs, ys, fail), again[:3], strict=True))

    report = _report({"y": x.astype(np.float32)}, {"y": y.astype(np.float32)}, atol=1e-3)
    page = render_html(report)
    assert page == render_html(report)
    dots = sum(d.count("h0") for d in re.findall(r'<path d="([^"]*)"', page))
    assert 0 < dots <= MAX_SCATTER_POINTS
    assert f"of {x.size:,} points: the worst ones and an even spread" in page


def test_write_html_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "sub" / "r.html"
    write_html(_failing(), target)
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    write_html(_passing(), target)  # replaces
    assert 'class="verdict pass"' in target.read_text(encoding="utf-8")

    import tfmodelkit.verify.html as html_module

    def broken_write(self, text):
        raise OSError("disk full")

    monkeypatch.setattr(html_module, "render_html", lambda report, title=None: "<!DOCTYPE html>new")
    monkeypatch.setattr(html_module.os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        write_html(_failing(), target)
    assert 'class="verdict pass"' in target.read_text(encoding="utf-8")  # the old page is intact
    assert [p.name for p in target.parent.iterdir()] == ["r.html"]  # no temporary left behind


# ------------------------------------------------------------------------------------- the CLI


def test_cli_help_mentions_html():
    from tfmodelkit.cli.modelconv import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    text = sub.choices["verify"].format_help()
    assert "--html FILE.html" in text and "self-contained HTML report" in text


def test_cli_writes_the_page_in_golden_file_mode(tmp_path, capsys):
    """TFLite against its recorded outputs: runs with LiteRT alone, no TensorFlow."""
    pytest.importorskip("ai_edge_litert")
    from tests.conftest import FIXTURES
    from tfmodelkit.cli.modelconv import main

    inputs = FIXTURES / "inputs"
    out = tmp_path / "report.html"
    code = main(["verify", str(FIXTURES / "tflite/mlp_float16.tflite"), str(inputs / "tflite_mlp_float16.outputs.npz"),
                 "--inputs", str(inputs / "tflite_mlp_float16.inputs.npz"), "--html", str(out), "-q"])  # fmt: skip
    assert code == 0, capsys.readouterr()
    page = out.read_text(encoding="utf-8")
    assert 'class="verdict pass"' in page and "golden outputs" in page and "mlp_float16.tflite" in page
    assert page.count("<svg") >= 2


# ------------------------------------------------------------------------ rendered in a browser


def test_png_reader_round_trip(tmp_path):
    """The reader against a PNG written here with every filter type (each row a different one)."""
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, size=(9, 7, 3), dtype=np.uint8)
    img[:, :3] = img[:, :1]  # some structure, so filters matter
    rows, prev = [], np.zeros(7 * 3, np.int16)
    for y in range(9):
        cur = img[y].reshape(-1).astype(np.int16)
        left = np.concatenate([np.zeros(3, np.int16), cur[:-3]])
        up_left = np.concatenate([np.zeros(3, np.int16), prev[:-3]])
        kind = y % 5
        pred = [np.zeros_like(cur), left, prev, (left + prev) // 2, paeth(left, prev, up_left)][kind]
        rows.append(bytes([kind]) + ((cur - pred) & 0xFF).astype(np.uint8).tobytes())
        prev = cur

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    png = tmp_path / "t.png"
    png.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 7, 9, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )
    assert np.array_equal(read_png(png), img)


def test_page_renders_in_headless_chromium(tmp_path):
    page = tmp_path / "report.html"
    write_html(_failing(), page)
    img = screenshot(page, tmp_path, 1600)
    assert img.shape[:2] == (1600, 1200)
    flat = img.reshape(-1, 3)
    colours, counts = np.unique(flat, axis=0, return_counts=True)
    assert len(colours) > 10, "the screenshot is (nearly) one colour"
    background = colours[counts.argmax()]
    assert tuple(background) == (255, 255, 255), f"the page background is {background}, not white"
    inked = float((np.abs(flat - background).max(axis=1) > 8).mean())
    # This page (banner, cards, table, the first plots) covers about a sixth of the window.
    assert 0.08 < inked < 0.6, f"{inked:.1%} of the pixels differ from the background"

    def share(colour: str) -> float:
        return colour_share(flat, colour, 6)

    assert share("#fdecea") > 0.01, "the FAIL banner's background is not there"  # the verdict, styled
    # The first output's SVG plots: every error of its is beyond atol, so its bars and points are red.
    assert share("#c0392b") > 0.001, "no failing histogram bars or points"


def _saturated() -> VerificationReport:
    """An int8 output (scale 0.02: [-2.56, 2.54]) whose reference goes down to -4: a quarter of
    its elements are pinned at -2.56."""
    from tfmodelkit.verify import QuantParams
    from tfmodelkit.verify.saturation import with_saturation

    q = QuantParams("int8", (0.02,), (0,))
    e = {"y": np.linspace(-4.0, 2.0, 600, dtype=np.float32).reshape(60, 10)}
    a = {"y": q.dequantize(q.quantize(e["y"]))}
    return with_saturation(_report(e, a, per_output={"y": (0.08, None)}), e, a, {"y": q})


def test_saturated_points_and_failing_bars_are_coloured():
    from tfmodelkit.verify.html_plots import AMBER, PURPLE, RED, decade_colours

    report = _saturated()
    (o,) = report.outputs
    assert o.saturation_finding and not o.ok
    page = render_html(report)
    assert "SATURATED (finding)" in page and "saturated at the int8 limits" in page
    assert f'stroke="{PURPLE}"' in page  # the saturated points, and the dotted limit lines
    colours = decade_colours(o)
    assert RED in colours and colours[-1] == RED  # the largest errors: beyond atol
    assert all(c == RED for c, low in zip(colours, o.histogram.edges, strict=False) if low >= o.atol)
    assert f'fill="{RED}"' in page and "beyond atol (failing)" in page
    assert AMBER in colours or all(h <= o.atol or lo >= o.atol for lo, h in zip(o.histogram.edges, o.histogram.edges[1:], strict=False))
    # A passing report keeps its bars blue, even the ones above atol that rtol passed.
    assert set(decade_colours(_passing().outputs[0])) <= {"#3b6ea5"}


def test_saturated_page_renders_in_headless_chromium(tmp_path):
    from tfmodelkit.verify.html_plots import PURPLE, RED

    page = tmp_path / "report.html"
    write_html(_saturated(), page)
    flat = screenshot(page, tmp_path, 2400)

    def share(colour: str) -> float:
        return colour_share(flat, colour, 24)

    assert share(PURPLE) > 0.0001, "no saturated points drawn"  # about 500 pixels: the pinned points
    assert share(RED) > 0.0005, "no failing histogram bars drawn"
