"""The ``inspect_*`` functions behind modelinspect: paths covered, warnings, pass or fail."""

from __future__ import annotations

from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from tests.bundle import write_checkpoint
from tfmodelkit.errors import UserError
from tfmodelkit.inspect import views
from tfmodelkit.inspect.diff import inspect_diff
from tfmodelkit.inspect.views import (
    Inspection,
    expand_paths,
    inspect_check,
    inspect_layers,
    inspect_ops,
    inspect_signatures,
    inspect_summary,
    inspect_tensor,
    inspect_weights,
)

STALE = "state file also lists gone, not in the folder (stale entries)"


def stale_checkpoint(folder: Path, tensors: dict[str, np.ndarray] | None = None) -> Path:
    """A checkpoint folder whose state file also names a prefix that is not there (a warning)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_checkpoint(folder / "ckpt", tensors or {"w": np.array([0.5], np.float32)})
    (folder / "checkpoint").write_text(
        'model_checkpoint_path: "ckpt"\nall_model_checkpoint_paths: "gone"\nall_model_checkpoint_paths: "ckpt"\n'
    )
    return folder


def test_every_prefix_of_a_checkpoint_folder(fixtures_dir):
    folder = fixtures_dir / "checkpoint/manager"
    prefixes = expand_paths(folder, every_prefix=True)
    assert [Path(p).name for p in prefixes] == ["ckpt-2", "ckpt-3"]
    assert expand_paths(folder) == [str(folder)]
    tflite = fixtures_dir / "tflite/two_io_float32.tflite"
    assert expand_paths(tflite, every_prefix=True) == [str(tflite)]
    result = inspect_summary(folder, every_prefix=True)
    assert [item["path"] for item in result.document] == prefixes
    assert isinstance(inspect_summary(folder).document, dict)


def test_reader_warnings_are_reported_apart_from_the_output(tmp_path):
    folder = stale_checkpoint(tmp_path / "c")
    for result in (
        inspect_summary(folder),
        inspect_signatures(folder),
        inspect_weights(folder),
        inspect_layers(folder),
        inspect_ops(folder),
        inspect_tensor(folder, "w"),
    ):
        assert result.warnings == (STALE,), result.view
        assert result.warnings_left_out("table") == result.warnings_left_out("markdown") == (STALE,)
        # JSON carries them in the view's `warnings` field where it has one; else they are told apart
        carried = "warnings" in result.items[0]
        assert result.warnings_left_out("json") == (() if carried else (STALE,)), result.view


def test_warnings_of_several_files_name_their_file(tmp_path, fixtures_dir):
    folder = stale_checkpoint(tmp_path / "c")
    result = inspect_diff(folder, folder)
    assert result.ok and result.warnings == (f"{folder}/ckpt: {STALE}",) * 2
    clean = inspect_diff(fixtures_dir / "checkpoint/manager", fixtures_dir / "checkpoint/manager")
    assert clean.warnings == ()


def test_check_and_diff_say_whether_they_passed(tmp_path):
    a = stale_checkpoint(tmp_path / "a")
    b = stale_checkpoint(tmp_path / "b", {"w": np.array([0.75], np.float32)})
    assert inspect_check(a).ok
    assert not inspect_diff(a, b).ok
    data = tmp_path / "a/ckpt.data-00000-of-00001"
    data.write_bytes(b"\xff" * data.stat().st_size)
    result = inspect_check(a)
    assert not result.ok and result.view == "check"
    assert any(f["severity"] == "error" for f in result.document["findings"])


def test_check_with_targets_runs_the_lints(fixtures_dir):
    result = inspect_check(fixtures_dir / "savedmodel/module_multisig", targets=["safety,serving"])
    assert result.document["targets"] == ["safety", "serving"]
    with pytest.raises(UserError, match="phone"):
        inspect_check(fixtures_dir / "savedmodel/module_multisig", targets=["phone"])


def test_tensor_values_for_text_and_json(tmp_path):
    folder = stale_checkpoint(tmp_path / "c", {"w": np.arange(3, dtype=np.float32)})
    text = inspect_tensor(folder, "w").document
    assert text["values"] == [0.0, 1.0, 2.0] and "values_text" in text
    assert "values_text" not in inspect_tensor(folder, "w", for_json=True).document


def test_tensor_too_large_for_json(tmp_path, monkeypatch):
    from tfmodelkit.inspect import tensor

    folder = stale_checkpoint(tmp_path / "c", {"w": np.zeros(11, np.float32)})
    monkeypatch.setattr(tensor, "MAX_PRINT_ELEMENTS", 10)
    with pytest.raises(UserError, match="too many for JSON output"):
        inspect_tensor(folder, "w", for_json=True)
    assert len(inspect_tensor(folder, "w").document["values_text"]) > 0  # text summarizes instead


def test_tensor_out_writes_atomically_and_notes_conversions(tmp_path):
    folder = stale_checkpoint(tmp_path / "c", {"b": np.array([1.5, -2.0], ml_dtypes.bfloat16)})
    out = tmp_path / "out" / "b.npy"
    result = inspect_tensor(folder, "b", out=out)
    assert result.document["out"] == str(out) and "values" not in result.document
    assert result.notes == ("bfloat16 values saved as float32 (exact)",)
    np.testing.assert_array_equal(np.load(out), np.array([1.5, -2.0], np.float32))
    assert [p.name for p in out.parent.iterdir()] == ["b.npy"]


def test_a_failed_tensor_write_leaves_the_old_file(tmp_path, monkeypatch):
    folder = stale_checkpoint(tmp_path / "c")
    out = tmp_path / "w.npy"
    out.write_bytes(b"old")

    def broken(weight, path, progress=None):
        Path(path).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr("tfmodelkit.inspect.tensor.write_npy", broken)
    with pytest.raises(OSError, match="disk full"):
        inspect_tensor(folder, "w", out=out)
    assert out.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["c", "w.npy"]


def test_document_is_one_view_or_a_list():
    one = Inspection("summary", ({"path": "a"},))
    two = Inspection("summary", ({"path": "a"}, {"path": "b"}))
    assert one.document == {"path": "a"} and two.document == [{"path": "a"}, {"path": "b"}]


def test_options_reach_the_reader(tmp_path, monkeypatch):
    seen = []
    real = views.read_model

    def spy(path, format, tags):
        seen.append((format, tags))
        return real(path, format, None)

    monkeypatch.setattr(views, "read_model", spy)
    inspect_weights(stale_checkpoint(tmp_path / "c"), format="ckpt", tags="serve")
    assert seen == [("ckpt", "serve")]
