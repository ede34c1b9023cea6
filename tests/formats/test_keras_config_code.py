"""Where a Keras config holds Python code: one rule, ``keras_config.code_sites``.

Four copies of the rule disagreed before it: the layer records' ``code``, the safety lint
(which read those records), the runners' ``code_layers`` and the legacy upgrader's check
(which added Keras 1 ``Merge``). ``TODAY`` pins what each copy flagged on small hand-written
configs; ``code_sites`` flags their union, field by field.
"""

from __future__ import annotations

import base64
import marshal

import pytest

from tfmodelkit.description import ModelDescription
from tfmodelkit.formats import keras_config as kc
from tfmodelkit.formats.keras_config import UNCHECKED, CodeSite, code_sites, parse_model_config


def _code_b64(src: str, name: str) -> str:
    ns: dict = {}
    exec(compile(src, "/home/someone/model.py", "exec"), ns)  # the test makes its own bytecode
    return base64.b64encode(marshal.dumps(ns[name].__code__)).decode()


SQUARE = _code_b64("def square(x):\n    return x * x\n", "square")
ANON = _code_b64("f = lambda x: x + 1\n", "f")
SHAPE = _code_b64("def shape_of(s):\n    return s\n", "shape_of")
KERAS3_LAMBDA = {"class_name": "__lambda__", "config": {"code": ANON, "defaults": None, "closure": None}}


def layer(cls, name, **config):
    return {"class_name": cls, "config": {"name": name, **config}}


def seq(name, *layers):
    return {"class_name": "Sequential", "config": {"name": name, "layers": list(layers)}}


def keras1(*layers):
    """A Keras 1 Sequential: its config is the layer list."""
    return {"class_name": "Sequential", "config": list(layers)}


def merge(name, **over):
    """A Keras 1 Merge layer with every function field "raw" unless ``over`` says otherwise."""
    config = {
        "name": name,
        "mode": "concat",
        "mode_type": "raw",
        "concat_axis": -1,
        "dot_axes": -1,
        "output_shape": None,
        "output_shape_type": "raw",
        "output_mask": None,
        "output_mask_type": "raw",
        "arguments": {},
    }
    return {"class_name": "Merge", "config": {**config, **over}}


def nested(depth):
    """A Lambda at the bottom of ``depth`` Sequentials, one inside the other."""
    model = seq("s0", layer("Lambda", "deep_lambda", function=[SQUARE, None, None], function_type="lambda"))
    for i in range(1, depth):
        model = seq(f"s{i}", model)
    return seq("top", model)


DENSE = layer("Dense", "d", units=2, activation="relu")
CASES = {
    "clean": seq("m", DENSE),
    "lambda_bytecode": seq(
        "m",
        DENSE,
        layer(
            "Lambda",
            "l",
            function=[SQUARE, None, None],
            function_type="lambda",
            output_shape=None,
            output_shape_type="raw",
        ),
    ),
    "lambda_keras1_string": keras1(layer("Lambda", "l", function=SQUARE, function_type="lambda")),
    "lambda_named": seq(
        "m",
        layer(
            "Lambda",
            "l",
            function="my_fn",
            function_type="function",
            module="my_module",
            output_shape=None,
            output_shape_type="raw",
        ),
    ),
    "lambda_keras3": seq("m", layer("Lambda", "l", function=KERAS3_LAMBDA)),
    "lambda_keras3_named": seq(
        "m", layer("Lambda", "l", function={"module": "builtins", "class_name": "function", "config": "fn"})
    ),
    "keras3_activation": seq("m", layer("Dense", "d", units=2, activation=KERAS3_LAMBDA)),
    "lambda_output_shape": seq(
        "m",
        layer(
            "Lambda",
            "l",
            function="my_fn",
            function_type="function",
            module="my_module",
            output_shape=[SHAPE, None, None],
            output_shape_type="lambda",
        ),
    ),
    "lambda_both_bytecode": seq(
        "m",
        layer(
            "Lambda",
            "l",
            function=[SQUARE, None, None],
            function_type="lambda",
            output_shape=[SHAPE, None, None],
            output_shape_type="lambda",
        ),
    ),
    "custom_output_shape": {
        "class_name": "Functional",
        "config": {
            "name": "m",
            "layers": [layer("MyLayer", "mine", output_shape=[SHAPE], output_shape_type="lambda")],
        },
    },
    "merge_mode_lambda": keras1(DENSE, merge("merge_1", mode=SQUARE, mode_type="lambda")),
    "merge_mode_function": keras1(DENSE, merge("merge_1", mode="my_merge", mode_type="function")),
    "merge_output_mask_lambda": keras1(
        DENSE, merge("merge_1", output_mask=SQUARE, output_mask_type="lambda")
    ),
    "merge_output_shape_lambda": keras1(
        DENSE, merge("merge_1", mode="sum", output_shape=SHAPE, output_shape_type="lambda")
    ),
    "merge_plain": keras1(DENSE, merge("merge_1")),
    "nested_models": {
        "class_name": "Functional",
        "config": {
            "name": "m",
            "layers": [
                DENSE,
                seq("block", layer("Lambda", "inner", function=[SQUARE, None, None], function_type="lambda")),
                {
                    "class_name": "Functional",
                    "config": {
                        "name": "branch",
                        "layers": [layer("Dense", "act", units=1, activation=KERAS3_LAMBDA)],
                    },
                },
            ],
        },
    },
    "wrappers": seq(
        "m",
        layer(
            "TimeDistributed",
            "td",
            layer=layer("Lambda", "wrapped", function=[ANON, None, None], function_type="lambda"),
        ),
        layer(
            "Bidirectional",
            "bi",
            layer=layer("LSTM", "fwd", units=2, activation=KERAS3_LAMBDA),
            backward_layer=layer("LSTM", "bwd", units=2, recurrent_activation=KERAS3_LAMBDA),
        ),
    ),
    "model_level": {
        "class_name": "Functional",
        "config": {"name": "m", "layers": [DENSE]},
        "compile_config": {"loss": KERAS3_LAMBDA},
    },
    "deep": nested(100),
}

#: What each copy flagged before the one rule, per case: (the runners' ``code_layers``, the
#: legacy upgrader's ``_code_in_config``, the layer records' ``code``, which the safety lint
#: reported). Measured on the copies as they were; they disagree on Merge and output_shape.
TODAY: dict[str, tuple[list[str], list[str], dict[str, str]]] = {
    "clean": ([], [], {}),
    "lambda_bytecode": (["l (Lambda)"], ["l (Lambda)"], {"l": "square"}),
    "lambda_keras1_string": (["l (Lambda)"], ["l (Lambda)"], {"l": "square"}),
    "lambda_named": (["l (Lambda)"], ["l (Lambda)"], {"l": "my_module.my_fn"}),
    "lambda_keras3": (["l (Lambda)"], ["l (Lambda)"], {"l": "<lambda>"}),
    "lambda_keras3_named": (["l (Lambda)"], ["l (Lambda)"], {"l": "fn"}),
    "keras3_activation": (["d (Dense)"], ["d (Dense)"], {"d": "<bytecode>"}),
    "lambda_output_shape": (["l (Lambda)"], ["l (Lambda)"], {"l": "my_module.my_fn"}),
    "lambda_both_bytecode": (["l (Lambda)"], ["l (Lambda)"], {"l": "square"}),
    "custom_output_shape": (["mine (MyLayer)"], ["mine (MyLayer)"], {}),
    "merge_mode_lambda": ([], ["merge_1 (Merge)"], {}),
    "merge_mode_function": ([], ["merge_1 (Merge)"], {}),
    "merge_output_mask_lambda": ([], ["merge_1 (Merge)"], {}),
    "merge_output_shape_lambda": (["merge_1 (Merge)"], ["merge_1 (Merge)"], {}),
    "merge_plain": ([], [], {}),
    "nested_models": (
        ["inner (Lambda)", "act (Dense)"],
        ["inner (Lambda)", "act (Dense)"],
        {"inner": "square", "act": "<bytecode>"},
    ),
    "wrappers": (
        ["wrapped (Lambda)", "fwd (LSTM)", "bwd (LSTM)"],
        ["wrapped (Lambda)", "fwd (LSTM)", "bwd (LSTM)"],
        {"wrapped": "<lambda>", "fwd": "<bytecode>", "bwd": "<bytecode>"},
    ),
    "model_level": (["m (Functional)"], ["m (Functional)"], {}),
    "deep": (["<config nested too deeply to check>"], ["<config nested too deeply to check>"], {}),
}

#: What code_sites says: (str(site), bytecode, detail) in graph order.
SITES: dict[str, list[tuple[str, bool, str]]] = {
    "clean": [],
    "lambda_bytecode": [("l (Lambda) function", True, "square")],
    "lambda_keras1_string": [("l (Lambda) function", True, "square")],
    "lambda_named": [("l (Lambda) function", False, "my_module.my_fn")],
    "lambda_keras3": [("l (Lambda) function", True, "<lambda>")],
    "lambda_keras3_named": [("l (Lambda) function", False, "fn")],
    "keras3_activation": [("d (Dense) activation", True, "<bytecode>")],
    "lambda_output_shape": [
        ("l (Lambda) function", False, "my_module.my_fn"),
        ("l (Lambda) output_shape", True, "shape_of"),
    ],
    "lambda_both_bytecode": [
        ("l (Lambda) function", True, "square"),
        ("l (Lambda) output_shape", True, "shape_of"),
    ],
    "custom_output_shape": [("mine (MyLayer) output_shape", True, "shape_of")],
    "merge_mode_lambda": [("merge_1 (Merge) mode", True, "square")],
    "merge_mode_function": [("merge_1 (Merge) mode", False, "my_merge")],
    "merge_output_mask_lambda": [("merge_1 (Merge) output_mask", True, "square")],
    "merge_output_shape_lambda": [("merge_1 (Merge) output_shape", True, "shape_of")],
    "merge_plain": [],
    "nested_models": [
        ("inner (Lambda) function", True, "square"),
        ("act (Dense) activation", True, "<bytecode>"),
    ],
    "wrappers": [
        ("wrapped (Lambda) function", True, "<lambda>"),
        ("fwd (LSTM) activation", True, "<bytecode>"),
        ("bwd (LSTM) recurrent_activation", True, "<bytecode>"),
    ],
    "model_level": [("<model> (Functional) compile_config", True, "<bytecode>")],
    "deep": [("<model> (Sequential) layers", False, UNCHECKED)],
}


def _flagged_layer(label: str, case: str) -> str:
    """The layer a copy's label ("name (Class)") names; the model's own name stands for "<model>"."""
    if label == "<config nested too deeply to check>":
        return "<model>"
    name = label.split(" (")[0]
    top = CASES[case].get("config")
    return "<model>" if isinstance(top, dict) and name == top.get("name") else name


def test_every_case_is_pinned():
    assert set(CASES) == set(TODAY) == set(SITES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_code_sites_flag_the_union_of_the_copies(case):
    runners, legacy, records = TODAY[case]
    union = {_flagged_layer(x, case) for x in (*runners, *legacy)} | set(records)
    sites = code_sites(CASES[case])
    assert {s.layer for s in sites} == union
    assert [(str(s), s.bytecode, s.detail) for s in sites] == SITES[case]
    assert len(set(sites)) == len(sites)  # no duplicates


@pytest.mark.parametrize("case", sorted(CASES))
def test_layer_records_take_their_code_from_the_sites(case):
    parsed = parse_model_config(CASES[case])
    got = {r.layer.name: r.layer.code for r in parsed.layers if r.layer.code}
    # every code a record carried before is unchanged ...
    assert TODAY[case][2].items() <= got.items()
    # ... and a record's code is its first site's detail
    first: dict[str, str] = {}
    for s in code_sites(CASES[case]):
        if s.layer != "<model>":
            first.setdefault(s.layer, s.detail)
    assert got == first


def test_warnings_name_bytecode_and_named_functions_apart():
    parsed = parse_model_config(CASES["lambda_output_shape"])
    [bytecode] = [w for w in parsed.warnings if "marshalled bytecode" in w]
    [named] = [w for w in parsed.warnings if "by name" in w]
    assert "l (shape_of)" in bytecode and "l (my_module.my_fn)" in named
    merge_warnings = parse_model_config(CASES["merge_mode_lambda"]).warnings
    assert any("merge_1 (square)" in w and "never runs it" in w for w in merge_warnings)
    deep = parse_model_config(CASES["deep"])
    assert deep.warnings == (kc.TOO_DEEP_WARNING,)


def test_site_str_and_fields():
    site = CodeSite("lambda_1", "Lambda", "output_shape", True, "<bytecode>")
    assert str(site) == "lambda_1 (Lambda) output_shape"
    [merge_site] = code_sites(CASES["merge_mode_function"])
    assert (
        merge_site.layer,
        merge_site.class_name,
        merge_site.field,
        merge_site.bytecode,
        merge_site.detail,
    ) == (
        "merge_1",
        "Merge",
        "mode",
        False,
        "my_merge",
    )


def test_data_that_looks_like_code_is_not_flagged():
    shapes = seq(
        "m",
        layer(
            "Lambda",
            "l",
            function="fn",
            function_type="function",
            output_shape=[None, 3],
            output_shape_type="raw",
        ),
        # Keras 3: a plain output shape, no *_type
        layer("Lambda", "k3", function={"class_name": "function", "config": "fn"}, output_shape=[None, 3]),
        layer(
            "Dense",
            "d",
            activation={"module": "keras.activations", "class_name": "function", "config": "relu"},
        ),
    )
    assert [str(s) for s in code_sites(shapes)] == ["l (Lambda) function", "k3 (Lambda) function"]
    assert code_sites("not a config") == code_sites(None) == []


def test_code_outside_the_known_child_keys_is_blamed_on_the_holder():
    """A custom wrapper keeps its Lambda under a key no Keras wrapper uses: the wrapper holds the code."""
    inner = layer("Lambda", "hidden", function={"class_name": "function", "config": "fn"})
    model = seq("m", layer("MyWrapper", "w", inner=inner, cells=[]))
    assert [(str(s), s.bytecode, s.detail) for s in code_sites(model)] == [
        ("w (MyWrapper) inner", False, "fn")
    ]


def test_lint_reads_the_sites_from_a_description():
    """The safety lint finds the same sites from the description the readers build."""
    from tfmodelkit.lint.safety import keras_code_sites

    for case, config in CASES.items():
        parsed = parse_model_config(config)
        desc = ModelDescription(
            format="keras_zip",
            path="m.keras",
            layers=tuple(r.layer for r in parsed.layers),
            metadata={
                "class_name": parsed.class_name,
                **({"compile_config": config["compile_config"]} if "compile_config" in config else {}),
            },
            warnings=parsed.warnings,
        )
        assert keras_code_sites(desc) == code_sites(config), case


def test_a_field_nested_too_deeply_is_a_site_not_silence():
    deep: dict = {"leaf": None}
    for _ in range(kc.MAX_DEPTH + 5):
        deep = {"inner": deep}
    model = seq("m", layer("Dense", "d", units=1, activation=deep))
    [site] = code_sites(model)
    assert (str(site), site.bytecode, site.detail) == ("d (Dense) activation", False, UNCHECKED)
    parsed = parse_model_config(model)
    assert [r.layer.code for r in parsed.layers] == [None]
    assert any("not checked for Python code: d (Dense) activation" in w for w in parsed.warnings)
