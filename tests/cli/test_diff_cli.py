"""``modelinspect diff`` on a model and its own conversion, and on TFLite files that differ only in
metadata: exit 0 when identical, 1 when not; the table and JSON say how each pair was made and
what else differs."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import FIXTURES
from tfmodelkit.cli.modelinspect import main

H5 = str(FIXTURES / "keras_h5/tfkeras_full_adam.h5")
H5_AS_SAVEDMODEL = str(FIXTURES / "savedmodel/from_h5/tfkeras_full_adam")
PLAIN = str(FIXTURES / "tflite/metadata_pair/plain.tflite")
CARDED = str(FIXTURES / "tflite/metadata_pair/with_model_card.tflite")


def test_an_h5_and_its_savedmodel_are_identical_and_the_table_says_how_they_paired(capsys):
    assert main(["diff", H5, H5_AS_SAVEDMODEL]) == 0
    out = capsys.readouterr().out
    assert "weights: 4 equal, 0 changed, 0 only in A, 0 only in B; paired by normalized name (4)" in out
    row = next(line for line in out.splitlines() if line.startswith("model_weights/dense/dense/kernel:0"))
    assert row.split() == [
        "model_weights/dense/dense/kernel:0",
        "model/_operations/1/_kernel/.ATTRIBUTES/VARIABLE_VALUE",
        "normalized",
        "name",
        "equal",
    ]
    assert out.rstrip().endswith("identical")


def test_json_lists_every_pair_with_how_it_was_made(capsys):
    assert main(["diff", H5, H5_AS_SAVEDMODEL, "--format", "json", "--include-optimizer"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["identical"] is False and data["matched_by"] == "normalized name"
    assert [p["matched_by"] for p in data["pairs"]] == ["normalized name"] * 4
    assert len(data["only_in_a"]) == 9 and data["only_in_b"] == []


def test_tflite_files_that_differ_only_in_metadata_exit_1_saying_so(capsys):
    assert main(["diff", PLAIN, CARDED]) == 1
    out = capsys.readouterr().out
    assert "weights: 2 equal, 0 changed, 0 only in A, 0 only in B; paired by name (2)" in out
    assert "metadata entry 'model_card' only in B (72 bytes)" in out
    assert out.rstrip().endswith("different")
    assert main(["diff", PLAIN, CARDED, "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["metadata_changes"] == ["metadata entry 'model_card' only in B (72 bytes)"]
    assert data["signature_changes"] == [] and data["op_changes"] == [] and data["changed"] == []
    assert main(["diff", PLAIN, CARDED, "--format", "markdown"]) == 1
    assert "| metadata | metadata entry 'model_card' only in B (72 bytes) |" in capsys.readouterr().out


def test_a_changed_weight_shows_both_names_and_the_difference(tmp_path, capsys):
    import h5py

    changed = tmp_path / "changed.h5"
    changed.write_bytes((FIXTURES / "keras_h5/tfkeras_full_adam.h5").read_bytes())
    with h5py.File(changed, "r+") as f:
        f["model_weights/logits/logits/bias:0"][0] += 2.0
    assert main(["diff", str(changed), H5_AS_SAVEDMODEL]) == 1
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("model_weights/logits/logits/bias:0"))
    assert "model/_operations/3/bias/.ATTRIBUTES/VARIABLE_VALUE" in row
    assert row.rstrip().endswith("max |a-b| = 2 (1 of 3 elements)")


def test_as_a_process_diff_never_imports_tensorflow():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('tensorflow', 'keras', 'tf_keras'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from tfmodelkit.cli.modelinspect import main\n"
        f"sys.exit(main(['diff', {PLAIN!r}, {CARDED!r}, '-q']))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 1, p.stderr
    assert p.stderr == "" and "model_card" in p.stdout
