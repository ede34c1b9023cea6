"""int8 calibration: refused without data unless allowed (and then marked), .npz or a folder of
.npy files, held-out samples verify, and float32 or integer I/O as asked, checked with LiteRT."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import FIXTURES, modelconv_reporting_imports, tf_available
from tfmodelkit.convert.calibration import GENERATED_SAMPLES, split_held_out
from tfmodelkit.errors import UserError

needs_tf = pytest.mark.skipif(not tf_available(), reason="needs TensorFlow (the convert extra)")
SAVEDMODEL = FIXTURES / "savedmodel/keras3_two_io"
KERAS = FIXTURES / "keras_h5/keras3_legacy.h5"




# ------------------------------------------------------------------------- refusals, no TensorFlow


@pytest.mark.parametrize("command, src", [("convert", KERAS), ("savedmodel-to-tflite", SAVEDMODEL)])
def test_int8_without_calibration_data_is_refused_before_tensorflow_loads(tmp_path, command, src):
    p = modelconv_reporting_imports(command, str(src), str(tmp_path / "m.tflite"), "--quantize", "int8")
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[-1] == "imported: -", p.stderr
    assert lines[0].startswith("modelconv: error: --quantize int8") and "Traceback" not in p.stderr
    for part in ("--calibration-data", ".npz", "<input>.npy", "--allow-generated-calibration"):
        assert part in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_library_refuses_the_same_and_checks_the_options(tmp_path):
    import tfmodelkit

    with pytest.raises(UserError, match="--calibration-data DATA.npz or DIR"):
        tfmodelkit.convert(KERAS, tmp_path / "m.tflite", quantize="int8")
    with pytest.raises(UserError, match="--allow-generated-calibration is only used with --quantize int8"):
        tfmodelkit.convert(KERAS, tmp_path / "m.tflite", allow_generated_calibration=True)
    with pytest.raises(UserError, match="--io-dtype is only used with --quantize int8"):
        tfmodelkit.convert(KERAS, tmp_path / "m.tflite", io_dtype="int8")
    with pytest.raises(UserError, match="--io-dtype 'int16': choose one of float32, int8, uint8"):
        tfmodelkit.convert(KERAS, tmp_path / "m.tflite", quantize="int8", io_dtype="int16", allow_generated_calibration=True)
    with pytest.raises(UserError, match="no such file or folder"):
        tfmodelkit.convert(KERAS, tmp_path / "m.tflite", quantize="int8", calibration_data=str(tmp_path / "none.npz"))
    with pytest.raises(UserError, match=r"unknown option 'allow_generated_calibrations' \(did you mean"):
        tfmodelkit.convert(KERAS, tmp_path / "m.tflite", quantize="int8", allow_generated_calibrations=True)
    with pytest.raises(UserError, match="--allow-generated-calibration does not apply to a keras_h5 -> savedmodel"):
        tfmodelkit.convert(KERAS, tmp_path / "sm", allow_generated_calibration=True)
    assert list(tmp_path.iterdir()) == []


def test_help_names_the_options():
    from tfmodelkit.cli.modelconv import build_parser

    for command in ("convert", "savedmodel-to-tflite"):
        text = build_parser()._subparsers._group_actions[0].choices[command].format_help()  # noqa: SLF001
        for flag in ("--calibration-data", "--allow-generated-calibration", "--io-dtype"):
            assert flag in text


# -------------------------------------------------------------------------------- held-out split


def test_held_out_samples_are_a_spread_quarter_at_most_what_verification_runs():
    arrays = {"x": np.arange(128)[:, None].astype(np.float32), "ids": np.arange(128)}
    calibrate, held = split_held_out(arrays, 32)
    assert held is not None and len(held["x"]) == 32 and len(calibrate["x"]) == 96
    assert not set(held["ids"]) & set(calibrate["ids"])  # never both
    assert set(held["ids"]) | set(calibrate["ids"]) == set(range(128))
    np.testing.assert_array_equal(held["x"][:, 0], held["ids"])  # the inputs stay paired
    assert held["ids"].min() < 8 and held["ids"].max() > 120  # spread over the data, not its end
    calibrate, held = split_held_out(arrays, 8)
    assert len(held["x"]) == 8 and len(calibrate["x"]) == 120
    calibrate, held = split_held_out({"x": np.zeros((40, 2))}, 32)
    assert len(held["x"]) == 10  # a quarter
    calibrate, held = split_held_out({"x": np.zeros((3, 2))}, 32)
    assert held is None and len(calibrate["x"]) == 3  # too few to spare any
    with pytest.raises(UserError, match="different numbers of samples"):
        split_held_out({"a": np.zeros((8, 1)), "b": np.zeros((9, 1))}, 32)


# ------------------------------------------------------------------------- conversions (TF, LiteRT)


def _calibration_arrays(n: int, seed: int = 3, scale: float = 1.0) -> dict[str, np.ndarray]:
    from tfmodelkit.verify import SavedModelRunner, generate_inputs

    arrays = generate_inputs(SavedModelRunner(SAVEDMODEL).inputs, seed=seed, batch=n)
    return {k: (v * scale).astype(v.dtype) for k, v in arrays.items()}


@needs_tf
@pytest.mark.tf
def test_generated_calibration_is_marked_in_the_verdict_and_both_reports(tmp_path):
    p = subprocess.run(
        [sys.executable, "-m", "tfmodelkit.cli.modelconv", "savedmodel-to-tflite", str(SAVEDMODEL),
         str(tmp_path / "m.tflite"), "--quantize", "int8", "--allow-generated-calibration", "--report",
         str(tmp_path / "r.json")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    verdict = p.stdout.strip().splitlines()[-1]
    assert "verified: SavedModel vs TFLite [serving_default] on 32 generated samples" in verdict
    assert "int8 calibrated on generated data" in verdict
    assert f"calibration: {GENERATED_SAMPLES} generated samples (--allow-generated-calibration" in p.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["calibration"] == {"source": "generated", "samples": GENERATED_SAMPLES}
    assert report["verification"][0]["context"]["calibration"]["source"] == "generated"
    assert any("int8 calibration on generated inputs" in w for w in report["warnings"])


@needs_tf
@pytest.mark.tf
def test_calibration_folder_holds_out_samples_to_verify_on(tmp_path):
    from tfmodelkit.convert.base import summary_line
    from tfmodelkit.convert.savedmodel_to_tflite import savedmodel_to_tflite

    folder = tmp_path / "calibration"
    folder.mkdir()
    arrays = _calibration_arrays(64)
    for name, a in arrays.items():
        np.save(folder / f"{name}.npy", a)
    lines: list[str] = []
    report = savedmodel_to_tflite(SAVEDMODEL, tmp_path / "m.tflite", quantize="int8", calibration_data=str(folder),
                                  progress=lines.append)  # fmt: skip
    assert report.ok, lines
    assert report.calibration == {"source": "given", "samples": 48, "data": str(folder), "held_out": 16}
    context = report.verification[0]["context"]
    assert context["inputs_source"] == "calibration" and context["samples"] == 16
    # the held-out samples are the very samples verification ran on, and calibration did not see them
    _, held = split_held_out(arrays, 32)
    assert held is not None
    for name, summary in context["inputs"].items():
        assert summary["min"] == pytest.approx(float(held[name].min()))
        assert summary["chosen"] == "held out from the calibration data"
    assert "on 16 held-out calibration samples" in summary_line(report)
    assert "calibrated on generated data" not in summary_line(report)
    assert any("16 held out for verification" in line for line in lines)


@needs_tf
@pytest.mark.tf
def test_given_inputs_win_and_calibration_keeps_every_sample(tmp_path):
    from tfmodelkit.convert.base import VerifyOptions
    from tfmodelkit.convert.savedmodel_to_tflite import savedmodel_to_tflite
    from tfmodelkit.verify import save_arrays

    calibration = save_arrays(tmp_path / "calibration.npz", _calibration_arrays(64))
    inputs = save_arrays(tmp_path / "inputs.npz", _calibration_arrays(5, seed=9))
    report = savedmodel_to_tflite(SAVEDMODEL, tmp_path / "m.tflite", quantize="int8",
                                  calibration_data=str(calibration), verify=VerifyOptions(inputs=str(inputs)))  # fmt: skip
    assert report.ok and report.calibration == {"source": "given", "samples": 64, "data": str(calibration)}
    context = report.verification[0]["context"]
    assert context["inputs_source"] == "given" and context["samples"] == 5


@needs_tf
@pytest.mark.tf
@pytest.mark.parametrize("io_dtype", ["float32", "int8", "uint8"])
def test_io_dtype_float32_by_default_integers_when_asked(tmp_path, io_dtype):
    from ai_edge_litert.interpreter import Interpreter

    from tfmodelkit.convert.savedmodel_to_tflite import savedmodel_to_tflite
    from tfmodelkit.verify import SavedModelRunner, save_arrays

    calibration = save_arrays(tmp_path / "calibration.npz", _calibration_arrays(64))
    options = {} if io_dtype == "float32" else {"io_dtype": io_dtype}
    report = savedmodel_to_tflite(SAVEDMODEL, tmp_path / "m.tflite", quantize="int8",
                                  calibration_data=str(calibration), **options)  # fmt: skip
    assert report.ok and report.details["io_dtype"] == io_dtype
    runner = Interpreter(model_path=str(tmp_path / "m.tflite")).get_signature_runner("serving_default")
    ins, outs = runner.get_input_details(), runner.get_output_details()
    assert {np.dtype(d["dtype"]).name for d in [*ins.values(), *outs.values()]} == {io_dtype}
    # Verification fed the integer model quantized inputs and compared dequantized outputs: do
    # the same by hand and compare with TensorFlow within the tolerance the report applied.
    x = _calibration_arrays(8, seed=11)
    feed = {}
    for k, v in x.items():
        if io_dtype == "float32":
            feed[k] = v
        else:
            scale, zero = ins[k]["quantization"]
            info = np.iinfo(np.dtype(io_dtype))
            feed[k] = np.clip(np.round(v / scale + zero), info.min, info.max).astype(io_dtype)
    got = runner(**feed)
    want = SavedModelRunner(SAVEDMODEL).run(x)
    applied = {o["name"]: o["atol"] for o in report.verification[0]["outputs"]}
    for k, v in got.items():
        if io_dtype != "float32":
            scale, zero = outs[k]["quantization"]
            v = (v.astype(np.float64) - zero) * scale
        assert np.max(np.abs(v - want[k])) <= applied[k]
        assert applied[k] > 1e-3  # a few output steps, for float outputs as for integer ones


@needs_tf
@pytest.mark.tf
def test_narrow_calibration_saturates_and_the_reports_say_so(tmp_path):
    from tfmodelkit.verify import save_arrays

    # Calibrated on inputs a twentieth of the range verification then feeds: the output ranges
    # are far too narrow, and most outputs come out pinned at the int8 limits.
    calibration = save_arrays(tmp_path / "calibration.npz", _calibration_arrays(64, scale=0.05))
    inputs = save_arrays(tmp_path / "inputs.npz", _calibration_arrays(32, seed=5))
    p = subprocess.run(
        [sys.executable, "-m", "tfmodelkit.cli.modelconv", "savedmodel-to-tflite", str(SAVEDMODEL),
         str(tmp_path / "m.tflite"), "--quantize", "int8", "--calibration-data", str(calibration),
         "--inputs", str(inputs), "--report", str(tmp_path / "r.json")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert p.returncode == 1, p.stderr
    assert "SATURATED (finding)" in p.stderr and "pinned at the int8 limits" in p.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    outputs = {o["name"]: o for o in report["verification"][0]["outputs"]}
    saturated = [o for o in outputs.values() if o["saturation_finding"]]
    assert saturated, outputs
    for o in saturated:
        assert o["saturated_fraction"] > 0.01 and o["representable_fraction"] < 1
        assert o["quantized_dtype"] == "int8" and len(o["quantized_range"]) == 2
    assert "saturated at the int8 limits" in p.stdout
