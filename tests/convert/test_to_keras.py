"""``modelconv to-keras``: Keras files of every generation become native ``.keras`` files that plain
Keras 3 loads in a fresh process (tfmodelkit unimportable) and that compute the source's numbers.

Expensive work is shared: each module-scoped fixture converts its files once (one process, the
package's worker pool), and one plain-Keras process checks all results against outputs the
original framework stored.
"""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest

from tests.conftest import CORPUS, FIXTURES
from tests.convert.plain_keras import plain_keras_run

pytest.importorskip("tensorflow")
pytest.importorskip("keras")

pytestmark = pytest.mark.tf

INDEX = json.loads((FIXTURES / "inputs" / "index.json").read_text())
#: Fixtures with stored inputs/outputs that the migration handles (the tf_keras nested Sequential
#: is refused: see test_unsupported_sources_are_refused_in_one_line).
FIXTURE_CASES = [
    "keras_h5_keras2_hard_sigmoid",
    "keras_h5_keras3_legacy",
    "keras_h5_keras3_lstm",
    "keras_h5_keras3_nested_sequential",
    "keras_h5_tfkeras_full_adam",
    "keras_h5_tfkeras_lstm",
    "keras_zip_conv_bn",
    "keras_zip_functional_multi_io",
]
ORACLE = CORPUS / "keras_h5" / "dl4j_oracle"
DL4J = CORPUS / "keras_h5" / "dl4j"
#: Every model-bearing legacy .h5 of the corpus that converts (the Lambda file and the
#: Attention file are refused: see the refusal tests).
CORPUS_FILES = [
    *(DL4J / f"{n}.h5" for n in (
        "examples_custom_loss", "examples_functional_lstm_lstm_functional_tf_keras_2", "tfkeras_rnn_9",
        "tfkeras_some_loss", "weights_batch_to_conv2d_tensorflow_2", "weights_bidirectional_lstm_tensorflow_2",
        "weights_conv2d_tensorflow_2", "weights_conv2d_theano_1", "weights_dense_tensorflow_1",
        "weights_dense_tensorflow_2", "weights_embedding_conv1d_flatten_theano_2", "weights_lstm_tensorflow_1",
        "weights_lstm_tensorflow_2", "weights_sepconv2d_tensorflow_2",
    )),
    *(ORACLE / f"{n}_model.h5" for n in (
        "simple_lstm_tf_keras_1", "simple_lstm_tf_keras_2", "simple_lstm_th_keras_1", "simple_sparse_xent_mlp_keras_2",
    )),
]  # fmt: skip


def _to_keras():
    from tfmodelkit.convert.to_keras import to_keras

    return to_keras


@pytest.fixture(scope="module")
def fixture_results(tmp_path_factory):
    """Each fixture converted once: name -> (report, destination)."""
    out = tmp_path_factory.mktemp("to_keras_fixtures")
    results = {}
    for name in FIXTURE_CASES:
        dst = out / f"{name}.keras"
        results[name] = (_to_keras()(FIXTURES / INDEX[name]["model"], dst), dst)
    return results


@pytest.fixture(scope="module")
def plain_fixture_run(fixture_results, tmp_path_factory):
    jobs = [
        {"name": n, "model": str(dst), "inputs": str(FIXTURES / "inputs" / f"{n}.inputs.npz")}
        for n, (_, dst) in fixture_results.items()
    ]
    answer = plain_keras_run(jobs, tmp_path_factory.mktemp("plain"))
    return answer, jobs


def test_fixtures_convert_verified_with_names_kept(fixture_results):
    for name, (report, dst) in fixture_results.items():
        assert report.ok, (name, report.verification)
        assert dst.is_file() and report.route[-1] == "keras_zip"
        assert report.details["names_kept"], (name, report.warnings)
        (check,) = report.verification
        assert check["ok"] and "keras-process" in json.dumps(check["context"]["candidate"])
        dropped = [w for w in report.warnings if "optimizer state was dropped" in w]
        # A .h5 that holds optimizer slots says it lost them (no --include-optimizer here).
        if INDEX[name]["model"].endswith(".h5"):
            with h5py.File(FIXTURES / INDEX[name]["model"], "r") as f:
                assert bool(dropped) == ("optimizer_weights" in f), (name, report.warnings)
        assert report.details["optimizer"] == "not carried"


def test_plain_keras_in_a_fresh_process_reproduces_the_stored_outputs(plain_fixture_run):
    answer, jobs = plain_fixture_run
    assert answer["importable"] is False  # tfmodelkit was kept out of that process
    for job in jobs:
        with np.load(FIXTURES / "inputs" / f"{job['name']}.outputs.npz") as z:
            expected = {k: z[k] for k in z.files}
        assert set(job["outputs"]) == set(expected), job["name"]
        for key, value in expected.items():
            np.testing.assert_allclose(job["outputs"][key], value, atol=1e-5, rtol=1e-5, err_msg=job["name"])
        assert list(INDEX[job["name"]]["inputs"]) == job["inputs"], job["name"]


def test_hard_sigmoid_sites_are_scaled_and_listed(fixture_results):
    report, _ = fixture_results["keras_h5_keras2_hard_sigmoid"]
    assert report.loader == "keras2-legacy"
    kept = [r for r in report.details["rewrites"] if "hard_sigmoid kept" in r]
    for site in (
        "gru_after (GRU): recurrent_activation hard_sigmoid kept: columns 0:8 ",
        "gru_before (GRU): activation hard_sigmoid kept: columns 8:12 ",
        "gru_before (GRU): recurrent_activation",
        "bilstm (LSTM): recurrent_activation hard_sigmoid kept: columns 0:6, 9:12 ",
        "simple (SimpleRNN): activation",
        "conv (Conv1D): activation hard_sigmoid kept: kernel and bias scaled by 1.2",
        "gate (Dense): activation hard_sigmoid kept: kernel and bias scaled by 1.2",
    ):
        assert any(r.startswith(site) for r in kept), (site, kept)
    assert "2 cells" in next(r for r in kept if r.startswith("bilstm"))


def test_without_the_scaling_the_trap_is_caught(monkeypatch, tmp_path):
    """The verification is what stands between the user and Keras 3's redefined hard_sigmoid:
    with the scaling switched off, the same file fails and nothing is written."""
    from tfmodelkit.loaders import keras_migrate

    monkeypatch.setattr(keras_migrate, "HARD_SIGMOID_SCALE", 1.0)
    report = _to_keras()(FIXTURES / "keras_h5/keras2_hard_sigmoid.h5", tmp_path / "m.keras")
    assert not report.ok and not report.verification[0]["ok"]
    assert list(tmp_path.iterdir()) == []


def test_weights_destination_holds_every_value(fixture_results, tmp_path):
    """``convert SRC DST.weights.h5`` writes Keras 3's weights file: loaded over a zeroed model
    in plain Keras it gives back the stored outputs."""
    from tfmodelkit.convert import convert

    name = "keras_zip_functional_multi_io"
    dst = tmp_path / "m.weights.h5"
    report = convert(FIXTURES / INDEX[name]["model"], dst)
    assert report.ok and report.route == ["keras_zip", "keras_weights"]
    with h5py.File(dst, "r") as f:
        assert "model_config" not in f.attrs and len(f.keys()) > 0
    (job,) = jobs = [
        {
            "model": str(fixture_results[name][1]),
            "weights": str(dst),
            "inputs": str(FIXTURES / "inputs" / f"{name}.inputs.npz"),
        }
    ]
    plain_keras_run(jobs, tmp_path)
    with np.load(FIXTURES / "inputs" / f"{name}.outputs.npz") as z:
        for key in z.files:
            np.testing.assert_allclose(job["outputs"][key], z[key], atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------------------------ the corpus


@pytest.fixture(scope="module")
def corpus_results(tmp_path_factory):
    if not (CORPUS / "EXPECTED.json").is_file():
        pytest.skip(f"corpus not found at {CORPUS}")
    out = tmp_path_factory.mktemp("to_keras_corpus")
    results = {}
    for src in CORPUS_FILES:
        dst = out / f"{src.stem}.keras"
        results[src.stem] = (_to_keras()(src, dst), dst)
    arch = out / "simple_sparse_xent_mlp_keras_2_from_weights.keras"
    results[arch.stem] = (
        _to_keras()(
            ORACLE / "simple_sparse_xent_mlp_keras_2_weights.h5", arch,
            architecture=str(ORACLE / "simple_sparse_xent_mlp_keras_2_config.json"),
        ),
        arch,
    )  # fmt: skip
    return results


@pytest.mark.corpus
def test_corpus_legacy_files_convert_and_verify_in_a_fresh_process(corpus_results):
    for name, (report, dst) in corpus_results.items():
        assert report.ok, (name, report.verification, report.warnings)
        assert dst.is_file() and report.details["names_kept"], (name, report.warnings)
    legacy = {n: r for n, (r, _) in corpus_results.items() if r.loader in ("keras1-upgrade", "keras2-legacy")}
    assert len(legacy) >= 8
    lstm = corpus_results["simple_lstm_tf_keras_2_model"][0]
    assert any("recurrent_activation hard_sigmoid kept" in r for r in lstm.details["rewrites"])


@pytest.mark.corpus
def test_dl4j_oracle_predictions_reproduced_by_plain_keras(corpus_results, tmp_path):
    """Keras 2.0.6's own predictions, stored beside the model: the .keras made from the full
    model file and the one made from weights + architecture JSON both reproduce them."""
    with h5py.File(ORACLE / "simple_sparse_xent_mlp_keras_2_inputs_and_outputs.h5", "r") as f:
        x = f["inputs/dense_1_input"][()].astype(np.float32)
        y = f["predictions/activation_1"][()]
    np.savez(tmp_path / "x.npz", dense_1_input=x)
    jobs = [
        {"model": str(corpus_results[n][1]), "inputs": str(tmp_path / "x.npz")}
        for n in ("simple_sparse_xent_mlp_keras_2_model", "simple_sparse_xent_mlp_keras_2_from_weights")
    ]
    answer = plain_keras_run(jobs, tmp_path)
    assert answer["importable"] is False
    for job in jobs:
        (out,) = job["outputs"].values()
        np.testing.assert_allclose(out, y, atol=2e-5)


# ------------------------------------------------------------------------------------ the command


def test_cli_to_keras_writes_the_report(tmp_path, capsys):
    from tfmodelkit.cli.modelconv import main

    dst, report = tmp_path / "m.keras", tmp_path / "r.json"
    rc = main(
        ["to-keras", str(FIXTURES / "keras_h5/tfkeras_lstm.h5"), str(dst), "-q", "--report", str(report)]
    )
    assert rc == 0, capsys.readouterr().err
    data = json.loads(report.read_text())
    assert data["ok"] and data["route"] == ["keras_h5", "keras_zip"] and data["loader"] == "tf_keras"
    assert data["details"]["load_with"] == "keras.saving.load_model(path)"
    assert any("time_major" in r for r in data["details"]["rewrites"])
    assert data["details"]["inputs"] == ["sequence"] and data["details"]["outputs"] == ["out"]
    # An existing destination is refused without --overwrite, and kept.
    before = dst.read_bytes()
    assert main(["to-keras", str(FIXTURES / "keras_h5/tfkeras_lstm.h5"), str(dst), "-q"]) == 2
    assert "--overwrite" in capsys.readouterr().err and dst.read_bytes() == before


@pytest.mark.parametrize("suffix", [".onnx", ".pb", ".pt", ".h5"])
def test_convert_refuses_a_destination_no_route_writes(tmp_path, capsys, suffix):
    from tfmodelkit.cli.modelconv import main

    rc = main(["convert", str(FIXTURES / "keras_zip/conv_bn.keras"), str(tmp_path / f"out{suffix}"), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert f"no route writes a {suffix} file" in err
    for destination in (".tflite", ".keras", ".weights.h5", "a folder"):
        assert destination in err
    assert list(tmp_path.iterdir()) == []


def test_convert_to_a_keras_destination_takes_the_to_keras_route(tmp_path):
    from tfmodelkit.convert import convert

    report = convert(FIXTURES / "keras_h5/keras3_legacy.h5", tmp_path / "m.keras")
    assert report.ok and report.route == ["keras_h5", "keras_zip"]
    assert (tmp_path / "m.keras").is_file()


@pytest.mark.parametrize(
    "args, message",
    [
        (["tflite/two_io_float32.tflite", "x.keras"], "to-keras converts Keras .h5 and .keras files"),
        (["keras_zip/conv_bn.keras", "x.onnx"], "writes a .keras file or a .weights.h5 file"),
        (["keras_zip/conv_bn.keras", "x.keras", "--keras-backend", "theano"], "choose from tensorflow, jax"),
        (["keras_h5/tfkeras_nested_sequential.h5", "x.keras"], "Keras 3 cannot rebuild this Keras 2 model"),
        (["keras_h5/tfkeras_weights_only.h5", "x.keras"], "--architecture"),
    ],
)
def test_unsupported_sources_are_refused_in_one_line(tmp_path, capsys, args, message):
    from tfmodelkit.cli.modelconv import main

    src = FIXTURES / args[0]
    if not src.exists():
        pytest.skip(f"{src} not among the fixtures")
    rc = main(["to-keras", str(src), str(tmp_path / args[1]), "-q", *args[2:]])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.corpus
def test_corpus_refusals(corpus, tmp_path, capsys):
    from tfmodelkit.cli.modelconv import main

    cases = [
        ("examples_lambda_sequential_lambda.h5", "Python code"),
        ("weights_keras-attention.h5", "Keras 3 cannot rebuild this Keras 2 model"),
    ]
    for name, message in cases:
        rc = main(["to-keras", str(DL4J / name), str(tmp_path / "x.keras"), "-q"])
        err = capsys.readouterr().err
        assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.corpus
def test_tf_keras_savedmodel_becomes_a_keras_file(corpus, tmp_path):
    """The corpus tf_keras 2.2 SavedModel (Keras metadata in the object graph), revived by
    tf_keras, becomes a .keras that plain Keras loads with the same layer names and numbers."""
    src = CORPUS / "savedmodel/tfkeras_lso_savedmodel_tf2.2"
    dst = tmp_path / "m.keras"
    report = _to_keras()(src, dst)
    assert report.ok and report.route == ["savedmodel", "keras_zip"] and report.loader == "tf_keras"
    assert report.details["names_kept"] and report.details["layers"] == ["dense"]
    np.savez(tmp_path / "x.npz", dense_input=np.linspace(-2, 2, 10, dtype=np.float32).reshape(5, 2))
    (job,) = jobs = [{"model": str(dst), "inputs": str(tmp_path / "x.npz")}]
    assert plain_keras_run(jobs, tmp_path)["importable"] is False
    import tf_keras

    expected = tf_keras.models.load_model(str(src), compile=False)(np.load(tmp_path / "x.npz")["dense_input"])
    np.testing.assert_allclose(job["outputs"]["dense"], np.asarray(expected), atol=1e-5, rtol=1e-5)


def test_savedmodel_without_keras_metadata_is_refused(tmp_path, capsys):
    from tfmodelkit.cli.modelconv import main

    rc = main(["to-keras", str(FIXTURES / "savedmodel/keras3_two_io"), str(tmp_path / "x.keras"), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "without Keras metadata" in err and len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []


def test_relative_paths(tmp_path, monkeypatch, capsys):
    from tfmodelkit.cli.modelconv import main

    shutil.copy(FIXTURES / "keras_h5/keras3_legacy.h5", tmp_path / "src.h5")
    monkeypatch.chdir(tmp_path)
    assert main(["to-keras", "src.h5", "out.keras", "-q"]) == 0, capsys.readouterr().err
    assert (tmp_path / "out.keras").is_file()


def test_worker_keeps_tfmodelkit_out():
    from tfmodelkit.verify.runners import KerasProcessRunner

    with KerasProcessRunner() as worker:
        assert worker.hello["tfmodelkit_importable"] is False
        assert worker.hello["backend"] == "tensorflow"


def test_no_temporary_files_left_beside_the_destination(fixture_results):
    for _, dst in fixture_results.values():
        leftovers = [p.name for p in dst.parent.iterdir() if "tfmodelkit-partial" in p.name]
        assert leftovers == []


def test_source_files_are_untouched(tmp_path):
    src = tmp_path / "src.h5"
    shutil.copy(FIXTURES / "keras_h5/keras2_hard_sigmoid.h5", src)
    before = src.read_bytes()
    assert _to_keras()(src, tmp_path / "m.keras", verify=None).ok
    assert src.read_bytes() == before


# ------------------------------------------------------------------------------------ beyond TensorFlow


@pytest.fixture(scope="module")
def jax_installed():
    pytest.importorskip("jax", reason="the jax extra is not installed (pip install 'tfmodelkit[jax]')")


def test_jax_backend_reproduces_the_numbers(jax_installed, fixture_results, tmp_path):
    """The same .keras files, loaded by plain Keras on JAX in a fresh process, compute the
    outputs the original framework stored (a 2016-style Keras 2 hard_sigmoid model included)."""
    names = ["keras_h5_keras2_hard_sigmoid", "keras_h5_tfkeras_lstm", "keras_zip_functional_multi_io"]
    jobs = [
        {
            "name": n,
            "model": str(fixture_results[n][1]),
            "inputs": str(FIXTURES / "inputs" / f"{n}.inputs.npz"),
        }
        for n in names
    ]
    answer = plain_keras_run(jobs, tmp_path, backend="jax")
    assert answer["backend"] == "jax" and answer["importable"] is False
    for job in jobs:
        with np.load(FIXTURES / "inputs" / f"{job['name']}.outputs.npz") as z:
            for key in z.files:
                np.testing.assert_allclose(
                    job["outputs"][key], z[key], atol=1e-5, rtol=1e-5, err_msg=job["name"]
                )


@pytest.mark.corpus
def test_keras1_model_runs_on_jax(jax_installed, corpus, tmp_path):
    """A Keras 1 LSTM converted with verification on both backends."""
    report = _to_keras()(
        ORACLE / "simple_lstm_tf_keras_1_model.h5", tmp_path / "m.keras", keras_backends=("tensorflow", "jax")
    )
    assert report.ok and report.loader == "keras1-upgrade"
    assert [v["label"].rsplit(" ", 1)[-1] for v in report.verification] == ["tensorflow", "jax"]


def test_a_plain_keras_file_is_converted_with_tensorflow_imported_once(tmp_path):
    """A .keras plain Keras loads as it is is loaded and saved by the plain-Keras process that
    checks the result: the converting process imports neither Keras nor TensorFlow (what makes
    to-keras cost about one Keras load + save), and the result is still verified."""
    import subprocess
    import sys

    script = (
        "import json, sys\n"
        "from tfmodelkit.convert.to_keras import to_keras\n"
        "r = to_keras(sys.argv[1], sys.argv[2])\n"
        "print(json.dumps({'ok': r.ok, 'loader': r.loader, 'labels': [v['label'] for v in r.verification],\n"
        "    'imported': sorted(m for m in ('tensorflow', 'keras', 'tf_keras') if m in sys.modules)}))\n"
    )
    dst = tmp_path / "m.keras"
    p = subprocess.run(
        [sys.executable, "-c", script, str(FIXTURES / "keras_zip/functional_multi_io.keras"), str(dst)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-2000:]
    answer = json.loads(p.stdout.strip().splitlines()[-1])
    assert answer == {
        "ok": True,
        "loader": "keras",
        "labels": ["keras vs .keras on tensorflow"],
        "imported": [],
    }
    assert dst.is_file()


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_keras3_file_with_python_code_is_refused(tmp_path, capsys, suffix):
    """A Keras 3 file whose config holds a Lambda's code is not handed to plain Keras to load:
    refused without --unsafe (one line, exit 2), nothing written."""
    import keras

    from tfmodelkit.cli.modelconv import main

    inputs = keras.Input((2,), name="x")
    outputs = keras.layers.Lambda(lambda t: t * 2, name="code")(inputs)
    src = tmp_path / f"src{suffix}"
    keras.Model(inputs, outputs).save(str(src))
    rc = main(["to-keras", str(src), str(tmp_path / "m.keras"), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "Python code" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "m.keras").exists()
