"""ckpt-to-savedmodel: rebuild, restore, export and prove a checkpoint's model.

The conversions run on the fixtures written by TensorFlow (fixtures/make_fixtures.py) with the
model code in fixtures/models/; a few checkpoints that need a particular shape (two root
objects, a tf_keras ``save_weights``, a deep model) are written here with TensorFlow. Input
specs and the restored model alone are tested in tests/loaders/test_checkpoint.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import tfmodelkit
from tests.conftest import FIXTURES, tf_available
from tfmodelkit.convert.base import VerifyOptions
from tfmodelkit.convert.ckpt_to_savedmodel import ckpt_to_savedmodel
from tfmodelkit.errors import NotFoundError, UnsupportedError, UserError
from tfmodelkit.loaders import checkpoint as ckpt_loader
from tfmodelkit.loaders.user_code import load_model_factory
from tfmodelkit.verify.runners.checkpoint import CheckpointRunner

MODELS = FIXTURES / "models"
SUBCLASSED_CKPT = FIXTURES / "checkpoint" / "keras3_subclassed" / "ckpt"
SUBCLASSED = f"{MODELS / 'subclassed.py'}"
X_SPEC = ["x:float32:-1,3"]
KEY = "/.ATTRIBUTES/VARIABLE_VALUE"


def _weights(path) -> dict[str, np.ndarray]:
    return {
        w.name: w.read() for w in tfmodelkit.read(path).weights if w.name != "_CHECKPOINTABLE_OBJECT_GRAPH"
    }


def _serve(folder: Path, **inputs: np.ndarray) -> dict[str, np.ndarray]:
    from tfmodelkit.loaders.tf import import_tensorflow

    tf = import_tensorflow()
    loaded = tf.saved_model.load(str(folder))
    out = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in inputs.items()})
    return {k: v.numpy() for k, v in out.items()}


def _x(rows: int = 5, cols: int = 3, seed: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, cols)).astype(np.float32)


def _convert(ckpt, dst, **kwargs):
    return ckpt_to_savedmodel(ckpt, dst, **kwargs)


# ------------------------------------------------------------------------------ refused before any work (no TF)


def test_bad_input_spec_is_refused_before_anything_is_built(tmp_path):
    with pytest.raises(UserError, match="unknown dtype"):
        _convert(SUBCLASSED_CKPT, tmp_path / "out", model=f"{SUBCLASSED}:build", input_specs=["x:floot:-1,3"])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "kwargs", [{}, {"model": f"{SUBCLASSED}:build", "architecture": "arch.json"}], ids=["neither", "both"]
)
def test_exactly_one_of_model_and_architecture(tmp_path, kwargs):
    with pytest.raises(UserError, match="exactly one of --model"):
        _convert(SUBCLASSED_CKPT, tmp_path / "out", **kwargs)


def test_destination_exists_is_refused_without_overwrite(tmp_path):
    dst = tmp_path / "out"
    dst.mkdir()
    (dst / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="already exists; pass --overwrite"):
        _convert(SUBCLASSED_CKPT, dst, model=f"{SUBCLASSED}:build", input_specs=X_SPEC)
    assert (dst / "keep.txt").read_text() == "mine"


def test_missing_checkpoint_is_not_found(tmp_path):
    with pytest.raises(NotFoundError):
        _convert(tmp_path / "nothing", tmp_path / "out", model=f"{SUBCLASSED}:build", input_specs=X_SPEC)


def test_root_key_on_a_name_based_checkpoint_is_refused(tmp_path):
    with pytest.raises(UserError, match="name-based .TF1. checkpoint has no object graph"):
        _convert(
            FIXTURES / "checkpoint" / "tf1_graph", tmp_path / "out", model=f"{MODELS / 'tf1_graph.py'}:build",
            input_specs=X_SPEC, root_key="model",
        )  # fmt: skip


# ------------------------------------------------------------------------------ the Keras 3 fixture


@pytest.fixture(scope="module")
def subclassed(tmp_path_factory):
    dst = tmp_path_factory.mktemp("subclassed") / "saved"
    report = _convert(SUBCLASSED_CKPT, dst, model=f"{SUBCLASSED}:build", input_specs=X_SPEC)
    return report, dst


@pytest.mark.tf
@pytest.mark.skipif(not tf_available(), reason="needs TensorFlow")
class TestKeras3Subclassed:
    def test_converts_with_the_root_key_found(self, subclassed):
        report, dst = subclassed
        assert report.ok and not report.kept_failed and (dst / "saved_model.pb").is_file()
        assert report.loader == "model code"
        assert report.route == ["checkpoint", "savedmodel"]
        d = report.details
        assert d["root_key"] == "model" and d["checkpoint_kind"] == "object-based"
        assert set(report.timings) >= {"load", "restore", "export", "verify"}
        assert report.warnings == []

    def test_reports_restored_unused_missing_and_optimizer(self, subclassed):
        d = subclassed[0].details
        assert d["restored"] == {
            f"model/hidden/_kernel{KEY}": "hidden/_kernel",
            f"model/hidden/bias{KEY}": "hidden/bias",
            f"model/head/_kernel{KEY}": "head/_kernel",
            f"model/head/bias{KEY}": "head/bias",
        }
        assert d["missing"] == [] and d["unused"] == [] and d["ignored"] == []
        optimizer = sorted(w.name for w in tfmodelkit.read(SUBCLASSED_CKPT).weights if w.role == "optimizer")
        assert len(optimizer) == 10
        assert sorted(d["optimizer_unused"]) == optimizer
        json.dumps(subclassed[0].as_dict())  # the report is JSON-ready

    def test_exported_variables_equal_the_checkpoint_exactly(self, subclassed):
        report, dst = subclassed
        source = _weights(SUBCLASSED_CKPT)
        exported = _weights(dst / "variables" / "variables")
        assert sorted(exported) == sorted(report.details["restored"])  # the export root tracks it as `model`
        for key, value in exported.items():
            assert value.dtype == source[key].dtype and value.tobytes() == source[key].tobytes(), key
        check = report.details["variable_check"]
        assert check["ok"] and check["compared"] == check["identical"] == 4

    def test_savedmodel_computes_what_the_checkpoint_says(self, subclassed):
        report, dst = subclassed
        w = _weights(SUBCLASSED_CKPT)
        x = _x()
        hidden = np.maximum(x @ w[f"model/hidden/_kernel{KEY}"] + w[f"model/hidden/bias{KEY}"], 0)
        expected = hidden @ w[f"model/head/_kernel{KEY}"] + w[f"model/head/bias{KEY}"]
        out = _serve(dst, x=x)
        assert list(out) == ["output_0"]
        np.testing.assert_allclose(out["output_0"], expected, rtol=1e-6, atol=1e-6)
        assert report.details["signature"] == {"serving_default": {"inputs": ["x"], "outputs": ["output_0"]}}

    def test_savedmodel_matches_the_restored_model(self, subclassed):
        from tfmodelkit.loaders.tf import import_tensorflow

        tf = import_tensorflow()
        factory, _ = load_model_factory(f"{SUBCLASSED}:build")
        model = factory()
        x = _x(4)
        model(tf.zeros([1, 3]))
        tf.train.Checkpoint(model=model).read(str(SUBCLASSED_CKPT)).expect_partial()
        np.testing.assert_array_equal(_serve(subclassed[1], x=x)["output_0"], model(x).numpy())
        (entry,) = subclassed[0].verification[1:]
        assert entry["ok"] and entry["label"] == "restored model vs SavedModel"
        assert entry["context"]["reference"]["backend"] == "checkpoint"

    def test_progress_lines_go_to_the_sink_given_in_stage_order(self, tmp_path, capsys):
        lines: list[str] = []
        report = _convert(
            SUBCLASSED_CKPT, tmp_path / "out", model=f"{SUBCLASSED}:build", input_specs=X_SPEC,
            verify=VerifyOptions(enabled=False), progress=lines.append,
        )  # fmt: skip
        assert report.ok
        stages = [line.split("]")[0] + "]" for line in lines]
        assert stages == ["[load]", "[load]", "[restore]", "[restore]", "[export]", "[verify]", "[verify]"]
        assert lines[1] == f"[load] model code: --model {SUBCLASSED}:build"
        assert lines[3].startswith("[restore] 4 values restored (root key 'model')")
        assert capsys.readouterr().err == ""  # the library itself prints nothing


@pytest.mark.tf
@pytest.mark.skipif(not tf_available(), reason="needs TensorFlow")
class TestStrictness:
    def test_extra_layer_fails_strictly_listing_it(self, tmp_path):
        with pytest.raises(UserError) as e:
            _convert(
                SUBCLASSED_CKPT, tmp_path / "out", model=f"{SUBCLASSED}:build_with_extra", input_specs=X_SPEC
            )
        msg = str(e.value)
        assert "2 model variable(s) found no value (extra/_kernel, extra/bias)" in msg
        assert "--allow-partial" in msg and "\n" not in msg and e.value.exit_code == 2
        assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == []

    def test_extra_layer_passes_with_allow_partial(self, tmp_path):
        report = _convert(
            SUBCLASSED_CKPT, tmp_path / "out", model=f"{SUBCLASSED}:build_with_extra", input_specs=X_SPEC,
            allow_partial=True,
        )  # fmt: skip
        assert report.ok and (tmp_path / "out" / "saved_model.pb").is_file()
        d = report.details
        assert d["missing"] == ["extra/_kernel", "extra/bias"] and d["unused"] == []
        assert len(d["restored"]) == 4
        assert any("found no value (extra/_kernel, extra/bias)" in w for w in report.warnings)
        check = d["variable_check"]
        assert check["ok"] and check["identical"] == 4 and len(check["not_from_checkpoint"]) == 2

    def test_unused_checkpoint_values_fail_strictly(self, tmp_path):
        with pytest.raises(UserError) as e:
            _convert(
                SUBCLASSED_CKPT, tmp_path / "out", model=f"{SUBCLASSED}:build_hidden_only", input_specs=X_SPEC
            )
        assert f"2 checkpoint value(s) went unused (model/head/_kernel{KEY}, model/head/bias{KEY})" in str(
            e.value
        )
        report = _convert(
            SUBCLASSED_CKPT, tmp_path / "out", model=f"{SUBCLASSED}:build_hidden_only", input_specs=X_SPEC,
            allow_partial=True, verify=VerifyOptions(enabled=False),
        )  # fmt: skip
        assert report.details["unused"] == [f"model/head/_kernel{KEY}", f"model/head/bias{KEY}"]
        assert report.details["missing"] == []

    def test_shapes_that_do_not_fit_are_an_error_even_when_partial(self, tmp_path):
        with pytest.raises(
            UserError, match=r"float32\[3,4\], model variable hidden/_kernel is float32\[3,5\]"
        ):
            _convert(
                SUBCLASSED_CKPT, tmp_path / "out", model=f"{SUBCLASSED}:build_wide", input_specs=X_SPEC,
                allow_partial=True,
            )  # fmt: skip

    def test_wrong_input_spec_shape_is_reported(self, tmp_path):
        with pytest.raises(UserError, match="or --input-spec is wrong"):
            _convert(
                SUBCLASSED_CKPT, tmp_path / "out", model=f"{SUBCLASSED}:build", input_specs=["x:float32:-1,5"]
            )

    def test_input_spec_of_the_wrong_rank_says_what_the_model_said(self, tmp_path):
        with pytest.raises(UserError) as e:
            _convert(
                SUBCLASSED_CKPT, tmp_path / "out", model=f"{SUBCLASSED}:build", input_specs=["x:float32:-1"]
            )
        msg = str(e.value)
        assert "rejected zeros of its input specs (x float32[?])" in msg and "expected min_ndim=2" in msg
        assert "\n" not in msg and "\x1b" not in msg

    def test_subclassed_model_without_input_spec_asks_for_one(self, tmp_path):
        with pytest.raises(UserError, match="give them with --input-spec NAME:DTYPE:DIMS"):
            _convert(SUBCLASSED_CKPT, tmp_path / "out", model=f"{SUBCLASSED}:build")

    def test_wrong_root_key_is_a_clear_error(self, tmp_path):
        with pytest.raises(NotFoundError) as e:
            _convert(
                SUBCLASSED_CKPT,
                tmp_path / "out",
                model=f"{SUBCLASSED}:build",
                input_specs=X_SPEC,
                root_key="net",
            )
        assert "no root object 'net' (its root objects: model, optimizer" in str(e.value)
        with pytest.raises(UserError, match="'optimizer' is optimizer state, not a model"):
            _convert(
                SUBCLASSED_CKPT, tmp_path / "out", model=f"{SUBCLASSED}:build", input_specs=X_SPEC,
                root_key="optimizer",
            )  # fmt: skip

    def test_model_code_that_returns_no_model(self, tmp_path):
        with pytest.raises(UserError, match="returned a dict, not a Keras model"):
            _convert(SUBCLASSED_CKPT, tmp_path / "out", model="builtins:dict", input_specs=X_SPEC)
        with pytest.raises(UserError, match=r"calling it failed \(TypeError"):
            _convert(SUBCLASSED_CKPT, tmp_path / "out", model="json:dumps", input_specs=X_SPEC)


@pytest.mark.tf
@pytest.mark.skipif(not tf_available(), reason="needs TensorFlow")
class TestFailedVerification:
    def test_a_changed_variable_fails_the_exact_check(self, tmp_path, monkeypatch):
        original = ckpt_loader.restore

        def restore_then_nudge(tf, match, prefix, weights, model, where):
            original(tf, match, prefix, weights, model, where)
            model.head.bias.assign(model.head.bias + 1e-7)

        monkeypatch.setattr(ckpt_loader, "restore", restore_then_nudge)
        report = _convert(SUBCLASSED_CKPT, tmp_path / "out", model=f"{SUBCLASSED}:build", input_specs=X_SPEC)
        assert not report.ok and not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == []
        check = report.details["variable_check"]
        assert check["mismatched"] == [
            {
                "exported": f"model/head/bias{KEY}",
                "checkpoint": f"model/head/bias{KEY}",
                "variable": "head/bias",
            }
        ]
        assert check["identical"] == 3
        # The numbers agree (both sides hold the nudged value): only the exact check sees it.
        assert report.verification[0]["ok"] is False and report.verification[1]["ok"] is True

        kept = _convert(
            SUBCLASSED_CKPT,
            tmp_path / "kept",
            model=f"{SUBCLASSED}:build",
            input_specs=X_SPEC,
            keep_failed=True,
        )
        assert not kept.ok and kept.kept_failed and (tmp_path / "kept" / "saved_model.pb").is_file()

    def test_numerical_disagreement_fails(self, tmp_path, monkeypatch):
        original = CheckpointRunner.run
        monkeypatch.setattr(
            CheckpointRunner,
            "run",
            lambda self, feed: {k: v + 1 for k, v in original(self, feed).items()},
        )
        report = _convert(SUBCLASSED_CKPT, tmp_path / "out", model=f"{SUBCLASSED}:build", input_specs=X_SPEC)
        assert not report.ok and not (tmp_path / "out").exists()
        assert report.details["variable_check"]["ok"]


# ------------------------------------------------------------------------------ other checkpoints


@pytest.mark.tf
@pytest.mark.skipif(not tf_available(), reason="needs TensorFlow")
class TestOtherCheckpoints:
    def test_module_path_form(self, tmp_path, monkeypatch):
        monkeypatch.syspath_prepend(str(MODELS))
        monkeypatch.delitem(sys.modules, "subclassed", raising=False)
        report = _convert(
            SUBCLASSED_CKPT, tmp_path / "out", model="subclassed:build", input_specs=X_SPEC,
            verify=VerifyOptions(enabled=False),
        )  # fmt: skip
        assert report.ok and report.details["model"] == "--model subclassed:build"
        assert report.details["root_key"] == "model" and len(report.details["restored"]) == 4

    def test_manager_folder_resolves_to_newest_and_uses_the_models_own_signature(self, tmp_path):
        folder = FIXTURES / "checkpoint" / "manager"
        report = _convert(folder, tmp_path / "out", model=f"{MODELS / 'manager.py'}:build")
        d = report.details
        assert report.ok and d["prefix"].endswith("ckpt-3") and d["root_key"] == "model"
        assert d["restored"] == {f"model/step{KEY}": "step", f"model/weights{KEY}": "weights"}
        assert d["ignored"] == [f"save_counter{KEY}"] and d["optimizer_unused"] == []
        assert d["signature"]["serving_default"] == {"inputs": ["x"], "outputs": ["y"]}
        w = _weights(folder / "ckpt-3")
        exported = _weights(tmp_path / "out" / "variables" / "variables")
        assert exported[f"model/step{KEY}"] == 3 == w[f"model/step{KEY}"]
        x = _x(3, 2)
        np.testing.assert_allclose(
            _serve(tmp_path / "out", x=x)["y"], x @ w[f"model/weights{KEY}"], rtol=1e-6
        )

    def test_several_root_objects_need_a_root_key(self, tmp_path):
        from tfmodelkit.loaders.tf import import_tensorflow

        tf = import_tensorflow()
        factory, _ = load_model_factory(f"{MODELS / 'manager.py'}:build")
        first, second = factory(), factory()
        first.weights.assign(tf.ones([2, 3]))
        second.weights.assign(tf.fill([2, 3], 2.5))
        prefix = tmp_path / "two" / "ckpt"
        tf.train.Checkpoint(first=first, second=second, step=tf.Variable(7)).write(str(prefix))
        spec = f"{MODELS / 'manager.py'}:build"
        with pytest.raises(
            UserError, match=r"several root objects could hold the model \(first, second\); choose one"
        ):
            _convert(prefix, tmp_path / "out", model=spec)
        report = _convert(prefix, tmp_path / "out", model=spec, root_key="second")
        assert report.ok and report.details["root_key"] == "second"
        assert report.details["ignored"] == sorted([f"first/step{KEY}", f"first/weights{KEY}", f"step{KEY}"])
        exported = _weights(tmp_path / "out" / "variables" / "variables")
        np.testing.assert_array_equal(exported[f"model/weights{KEY}"], np.full([2, 3], 2.5, np.float32))

    def test_tf1_name_based_checkpoint_pairs_by_name(self, tmp_path):
        folder = FIXTURES / "checkpoint" / "tf1_graph"
        report = _convert(
            folder, tmp_path / "out", model=f"{MODELS / 'tf1_graph.py'}:build", input_specs=X_SPEC
        )
        d = report.details
        assert report.ok and d["checkpoint_kind"] == "name-based" and d["root_key"] is None
        assert d["restored"] == {"dense/bias": "bias", "dense/kernel": "kernel", "dense_1/kernel": "kernel1"}
        assert d["ignored"] == ["global_step"] and d["unused"] == [] and d["missing"] == []
        assert sorted(d["optimizer_unused"]) == sorted(
            ["beta1_power", "beta2_power"]
            + [
                f"{v}/{s}"
                for v in ("dense/bias", "dense/kernel", "dense_1/kernel")
                for s in ("Adam", "Adam_1")
            ]
        )
        assert d["variable_check"]["identical"] == 3
        w = _weights(folder / "model.ckpt-1")
        x = _x()
        expected = np.maximum(x @ w["dense/kernel"] + w["dense/bias"], 0) @ w["dense_1/kernel"]
        np.testing.assert_allclose(_serve(tmp_path / "out", x=x)["output_0"], expected, rtol=1e-6, atol=1e-6)

    def test_tf1_checkpoint_with_the_wrong_names_fails_strictly(self, tmp_path):
        with pytest.raises(UserError) as e:
            _convert(
                FIXTURES / "checkpoint" / "tf1_graph",
                tmp_path / "out",
                model=f"{SUBCLASSED}:build",
                input_specs=X_SPEC,
            )
        assert "name-based checkpoint: variables are paired by name" in str(e.value)
        assert "3 checkpoint value(s) went unused (dense/bias, dense/kernel, dense_1/kernel)" in str(e.value)

    def test_tf1_partitioned_variables_are_assembled(self, tmp_path):
        prefix = FIXTURES / "checkpoint" / "partitioned_tf1" / "model.ckpt"
        report = _convert(
            prefix,
            tmp_path / "out",
            model=f"{MODELS / 'tf1_graph.py'}:build_partitioned",
            input_specs=["ids:int32:-1"],
        )
        assert report.ok and sorted(report.details["restored"]) == ["embedding", "layer/bias", "layer/matrix"]
        assert report.details["variable_check"]["identical"] == 3
        w = _weights(prefix)
        ids = np.array([0, 4, 9, 3], np.int32)
        expected = w["embedding"][ids][:, :3] @ w["layer/matrix"] + w["layer/bias"]
        np.testing.assert_allclose(
            _serve(tmp_path / "out", ids=ids)["output_0"], expected, rtol=1e-6, atol=1e-6
        )

    def test_variables_keyed_under_the_optimizer_are_still_the_models(self, tmp_path):
        """A checkpoint key is the shortest path: a deep model's variables get optimizer/... keys."""
        from tfmodelkit.loaders.tf import import_tensorflow

        tf = import_tensorflow()
        code = tmp_path / "deep.py"
        code.write_text(
            "import keras\n"
            "class Inner(keras.layers.Layer):\n"
            "    def __init__(self, **k):\n        super().__init__(**k)\n        self.dense = keras.layers.Dense(2)\n"
            "    def call(self, x):\n        return self.dense(x)\n"
            "class Block(keras.layers.Layer):\n"
            "    def __init__(self, **k):\n        super().__init__(**k)\n        self.inner = Inner()\n"
            "    def call(self, x):\n        return self.inner(x)\n"
            "class Deep(keras.Model):\n"
            "    def __init__(self, **k):\n        super().__init__(**k)\n        self.block = Block()\n"
            "    def call(self, x):\n        return self.block(x)\n"
            "def build():\n    return Deep()\n"
        )
        import keras

        factory, _ = load_model_factory(f"{code}:build")
        model = factory()
        model(tf.zeros([1, 3]))
        optimizer = keras.optimizers.Adam()
        optimizer.build(model.trainable_variables)
        prefix = tmp_path / "ckpt" / "ckpt"
        tf.train.Checkpoint(model=model, optimizer=optimizer).write(str(prefix))
        report = _convert(prefix, tmp_path / "out", model=f"{code}:build", input_specs=X_SPEC)
        assert report.ok and report.details["root_key"] == "model"
        assert report.details["restored"] == {
            f"optimizer/_trainable_variables/0{KEY}": "block/inner/dense/_kernel",
            f"optimizer/_trainable_variables/1{KEY}": "block/inner/dense/bias",
        }
        assert report.details["variable_check"]["identical"] == 2


# ------------------------------------------------------------------------------ architecture


@pytest.mark.tf
@pytest.mark.skipif(not tf_available(), reason="needs TensorFlow")
class TestArchitecture:
    def test_keras3_functional_config_and_checkpoint(self, tmp_path):
        from tfmodelkit.loaders.tf import import_keras

        keras = import_keras()
        import tensorflow as tf

        a, b = keras.Input((3,), name="feat"), keras.Input((2,), name="extra")
        h = keras.layers.Dense(4, name="h")(keras.layers.Concatenate()([a, b]))
        outputs = {
            "score": keras.layers.Dense(1, name="score")(h),
            "probs": keras.layers.Dense(2, name="probs")(h),
        }
        model = keras.Model([a, b], outputs, name="two_io")
        (tmp_path / "arch.json").write_text(model.to_json())
        tf.train.Checkpoint(net=model, epoch=tf.Variable(3)).write(str(tmp_path / "ckpt" / "ckpt"))
        report = _convert(tmp_path / "ckpt", tmp_path / "out", architecture=str(tmp_path / "arch.json"))
        d = report.details
        assert report.ok and report.loader == "architecture" and d["root_key"] == "net"
        assert len(d["restored"]) == 6 and d["ignored"] == [f"epoch{KEY}"]
        assert d["signature"]["serving_default"] == {
            "inputs": ["feat", "extra"],
            "outputs": ["score", "probs"],
        }
        x, e = _x(3), _x(3, 2, seed=1)
        out = _serve(tmp_path / "out", feat=x, extra=e)
        want = model({"feat": x, "extra": e})
        for k in ("score", "probs"):
            np.testing.assert_allclose(out[k], want[k].numpy(), rtol=1e-6, atol=1e-6)

    def test_tf_keras_save_weights_root_is_the_model(self, tmp_path):
        tf_keras = pytest.importorskip("tf_keras")
        import tensorflow as tf

        inp = tf_keras.Input((3,), name="feat")
        model = tf_keras.Model(
            inp, tf_keras.layers.Dense(2, name="d")(tf_keras.layers.Dense(4, name="h")(inp))
        )
        model.compile(optimizer="adam", loss="mse")
        model.fit(tf.ones([4, 3]), tf.ones([4, 2]), verbose=0)
        (tmp_path / "arch.json").write_text(model.to_json())
        model.save_weights(str(tmp_path / "w" / "weights"))
        report = _convert(
            tmp_path / "w" / "weights", tmp_path / "out", architecture=str(tmp_path / "arch.json")
        )
        d = report.details
        assert report.ok and d["root_key"] == "/" and len(d["restored"]) == 4
        assert d["optimizer_unused"] and all(k.startswith("optimizer/") for k in d["optimizer_unused"])
        assert "architecture built with tf_keras" in report.warnings
        x = _x()
        np.testing.assert_allclose(
            _serve(tmp_path / "out", feat=x)["d"], model(x).numpy(), rtol=1e-6, atol=1e-6
        )

    def test_code_layers_are_refused_without_unsafe(self, tmp_path):
        from tfmodelkit.loaders.tf import import_keras

        keras = import_keras()
        inp = keras.Input((3,), name="x")
        model = keras.Model(inp, keras.layers.Lambda(lambda t: t * 2, name="double")(inp))
        (tmp_path / "arch.json").write_text(model.to_json())
        with pytest.raises(UserError, match=r"refusing to build it: double \(Lambda\) carries Python code"):
            _convert(SUBCLASSED_CKPT, tmp_path / "out", architecture=str(tmp_path / "arch.json"))

    def test_nested_outputs_are_unsupported(self, tmp_path):
        code = tmp_path / "nested.py"
        code.write_text(
            "import tensorflow as tf\n"
            "class M(tf.Module):\n"
            "    def __init__(self):\n        super().__init__()\n        self.w = tf.Variable(tf.zeros([2, 3]), name='weights')\n"
            "    def __call__(self, x):\n        return {'a': (x, x)}\n"
            "def build():\n    return M()\n"
        )
        with pytest.raises(UnsupportedError, match="a tensor, a list/tuple of tensors or a dict of tensors"):
            _convert(
                FIXTURES / "checkpoint" / "manager",
                tmp_path / "out",
                model=f"{code}:build",
                input_specs=["x:float32:-1,2"],
            )
