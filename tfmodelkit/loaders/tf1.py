"""TF1 graphs in a ``tf.compat.v1.Session``: a frozen GraphDef, a ``.meta`` + its checkpoint, or a
TF1 SavedModel that TF2's loader rejects (``tf.compat.v1.saved_model.loader.load``).

The inputs and outputs are a signature of the file (``signature_def``, ``serving_default`` by
default), the tensors the caller names (``input_tensors`` / ``output_tensors``: ``name[:k]``), or
the signature inferred from the graph (placeholders in, unconsumed tensors out). Graphs whose
ops run Python or write files, reach the network or a remote service are refused unless
``unsafe``: a session would run them. Nothing is written.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import NotFoundError, UnsupportedError, UserError
from ..formats.graphdef import key_of, tensor_names
from ..util import first_line
from .tf import import_tensorflow, quiet_fds

#: Risk kinds (lint.tables.RISKY_OPS) that a session must not run without ``unsafe``.
_REFUSED_KINDS = frozenset({"python", "write", "network", "remote"})


@dataclass
class TF1Graph:
    """A live graph in its session, with the tensors to feed and fetch (key -> tensor name)."""

    session: Any
    graph: Any
    inputs: dict[str, str]
    outputs: dict[str, str]
    kind: str
    #: The checkpoint restored into the session (None for frozen graphs and SavedModels).
    checkpoint: str | None = None
    signature: str | None = None
    notes: list[str] = field(default_factory=list)

    def close(self) -> None:
        self.session.close()


def refuse_risky(graph_def: Any, where: str) -> None:
    """UserError when a node (graph or function body) runs one of the refused op kinds."""
    from ..lint.tables import RISKY_OPS

    bodies = [graph_def.node, *(f.node_def for f in graph_def.library.function)]
    found = sorted(
        {
            n.op
            for nodes in bodies
            for n in nodes
            if n.op in RISKY_OPS and RISKY_OPS[n.op].kind in _REFUSED_KINDS
        }
    )
    if found:
        raise UserError(
            f"{where}: the graph has ops that {RISKY_OPS[found[0]].what} ({', '.join(found)}); "
            "a session would run them: pass --unsafe only if you trust this model"
        )


def _describe_failure(where: str, e: BaseException) -> UserError:
    return UserError(f"{where}: TensorFlow cannot load this graph ({first_line(e)})")


def _load_graph_def(tf: Any, path: Path) -> Any:
    from google.protobuf import text_format

    graph_def = tf.compat.v1.GraphDef()
    if path.suffix.lower() == ".pbtxt":
        text_format.Parse(path.read_text(errors="replace"), graph_def)
    else:
        graph_def.ParseFromString(path.read_bytes())
    return graph_def


def _signature_io(
    meta_graph: Any, signature: str | None, where: str
) -> tuple[dict[str, str], dict[str, str], str]:
    sigs = {k: v for k, v in meta_graph.signature_def.items() if k != "__saved_model_init_op"}
    if signature is None:
        if "serving_default" in sigs:
            signature = "serving_default"
        elif len(sigs) == 1:
            signature = next(iter(sigs))
        else:
            raise UserError(f"{where}: has signatures {', '.join(sorted(sigs))}; choose one with --signature")
    if signature not in sigs:
        raise NotFoundError(
            f"{where}: no signature {signature!r} (signatures: {', '.join(sorted(sigs)) or 'none'})"
        )
    sd = sigs[signature]
    for side in (sd.inputs, sd.outputs):
        for key, info in side.items():
            if info.WhichOneof("encoding") != "name":
                raise UnsupportedError(
                    f"{where}: signature {signature!r} {key} is a sparse or composite tensor"
                )
    inputs = {k: sd.inputs[k].name for k in sorted(sd.inputs)}
    outputs = {k: sd.outputs[k].name for k in sorted(sd.outputs)}
    return inputs, outputs, signature


def _inferred_io(path: Path, fmt: str) -> tuple[dict[str, str], dict[str, str]]:
    from ..formats import read

    desc = read(path, format=fmt)
    found = [s for s in desc.signatures if s.key == "serving_default"] or list(desc.signatures[:1])
    if not found:
        return {}, {}
    sig = found[0]
    return {t.name: t.tensor or f"{t.name}:0" for t in sig.inputs}, {
        t.name: t.tensor or f"{t.name}:0" for t in sig.outputs
    }


def checkpoint_for_meta(meta: Path) -> str:
    """The checkpoint prefix of ``P.meta`` (``P``), when its files are there."""
    prefix = str(meta)[: -len(".meta")] if str(meta).endswith(".meta") else str(meta)
    if (
        Path(prefix + ".index").is_file()
        or Path(prefix).is_file()
        or list(Path(prefix).parent.glob(Path(prefix).name + "-?????-of-?????"))
    ):
        return prefix
    raise NotFoundError(f"{meta}: no checkpoint {prefix} beside it; pass the checkpoint prefix")


def _v1_prefix(prefix: str) -> str:
    """A V1 sharded set is restored through its ``-?????-of-N`` pattern."""
    p = Path(prefix)
    if p.exists() or Path(prefix + ".index").is_file() or "?" in p.name:  # a file, a V2 prefix, a pattern
        return prefix
    shards = sorted(p.parent.glob(p.name + "-?????-of-?????"))
    return str(p.parent / (p.name + "-?????-of-" + shards[0].name[-5:])) if shards else prefix


def load_tf1(
    path: str | os.PathLike[str],
    *,
    meta: str | os.PathLike[str] | None = None,
    signature: str | None = None,
    tags: Sequence[str] | None = None,
    input_tensors: str | Sequence[str] | None = None,
    output_tensors: str | Sequence[str] | None = None,
    unsafe: bool = False,
) -> TF1Graph:
    """The graph of ``path`` in a new session (see the module doc); ``meta`` pairs a checkpoint
    prefix with its ``.meta`` (default: ``path + ".meta"``)."""
    from ..formats import detect

    p = Path(path)
    fmt = detect(p)
    tf = import_tensorflow("running a TF1 graph")
    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
    where = str(p)
    try:
        with graph.as_default(), quiet_fds(replay=False):
            loaded = _load_into(tf, session, p, fmt, meta, signature, tags, unsafe)
    except (UserError, NotFoundError, UnsupportedError):
        session.close()
        raise
    except Exception as e:
        session.close()
        raise _describe_failure(where, e) from None
    kind, inputs, outputs, sig, checkpoint, source = loaded
    ins, outs = tensor_names(input_tensors), tensor_names(output_tensors)
    if not sig and not (ins and outs):
        inputs, outputs = _inferred_io(source, "graphdef" if kind == "graphdef" else "metagraph")
    if ins or outs:
        inputs = {key_of(t): t for t in ins} if ins else inputs
        outputs = {key_of(t): t for t in outs} if outs else outputs
        sig = None
    for t in [*inputs.values(), *outputs.values()]:
        try:
            graph.get_tensor_by_name(t)
        except (KeyError, ValueError) as e:
            session.close()
            raise NotFoundError(f"{where}: no tensor {t!r} in the graph ({first_line(e)})") from None
    if not outputs:
        session.close()
        raise UserError(f"{where}: no outputs to fetch; name them with --output-tensors NAME[:0],...")
    return TF1Graph(session, graph, inputs, outputs, kind, checkpoint, sig)


def _load_into(
    tf: Any, session: Any, p: Path, fmt: str, meta: Any, signature: str | None, tags: Any, unsafe: bool
) -> tuple[str, dict[str, str], dict[str, str], str | None, str | None, Path]:
    """Build the graph in ``session``: (kind, inputs, outputs, signature, checkpoint, the graph file)."""
    if fmt == "savedmodel":
        from ..formats import savedmodel as sm_format

        folder = sm_format.resolve(p).folder
        model = sm_format.load_proto(folder)
        chosen = sm_format.select_meta_graph(model, ",".join(tags) if tags else None)
        if not unsafe:
            refuse_risky(chosen.graph_def, str(folder))
        mg = tf.compat.v1.saved_model.loader.load(session, list(chosen.meta_info_def.tags), str(folder))
        inputs, outputs, sig = _signature_io(mg, signature, str(folder))
        return "savedmodel", inputs, outputs, sig, None, folder
    if fmt == "graphdef":
        graph_def = _load_graph_def(tf, p)
        if not unsafe:
            refuse_risky(graph_def, str(p))
        tf.compat.v1.import_graph_def(graph_def, name="")
        return "graphdef", {}, {}, None, None, p
    if fmt == "metagraph":
        meta_path, prefix = p, checkpoint_for_meta(p)
    elif fmt in ("checkpoint", "checkpoint_v1"):
        meta_path = Path(meta) if meta is not None else Path(str(p) + ".meta")
        if not meta_path.is_file():
            raise NotFoundError(f"{p}: no graph to run: pass its .meta (--meta {meta_path.name} not found)")
        prefix = str(p)
    else:
        raise UnsupportedError(f"{p}: a {fmt} is not a TF1 graph")
    meta_graph = tf.compat.v1.MetaGraphDef()
    meta_graph.ParseFromString(meta_path.read_bytes())
    if not unsafe:
        refuse_risky(meta_graph.graph_def, str(meta_path))
    saver = tf.compat.v1.train.import_meta_graph(meta_graph, clear_devices=True)
    if saver is None:
        raise UserError(f"{meta_path}: the graph has no variables to restore and no saver")
    saver.restore(session, _v1_prefix(prefix))
    if meta_graph.signature_def:
        inputs, outputs, sig = _signature_io(meta_graph, signature, str(meta_path))
        return "metagraph", inputs, outputs, sig, prefix, meta_path
    return "metagraph", {}, {}, None, prefix, meta_path
