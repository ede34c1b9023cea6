"""Hypothesis strategies that damage real model files in one chosen place.

Each reader gets bases (fixtures, plus corpus files when the corpus is present) and a list
of operations: truncation at a structural boundary, a numeric field set to an extreme value
(lengths, offsets, counts, sizes), bit flips, random bytes, and format-aware edits that keep
the rest consistent (checkpoint blocks re-checksummed, protobuf lengths fixed up, zip
members re-packed, HDF5 attributes rewritten) so that the damage reaches the deep parts.
"""

from __future__ import annotations

import functools
import json
import re
import zipfile
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

from tests.conftest import CORPUS, FIXTURES

from . import layouts as L
from . import wire as W

FORMATS = ("checkpoint", "savedmodel", "keras_h5", "keras_zip", "tflite")


class Base:
    """A sound model: its files (relative path -> bytes), the path handed to the reader
    ("" = the folder itself) and the file structural mutations go to."""

    def __init__(self, fmt: str, name: str, files, target: str, primary: str) -> None:
        self.fmt, self.name, self.files, self.target, self.primary = fmt, name, tuple(files), target, primary

    def file(self, rel: str) -> bytes:
        return dict(self.files)[rel]

    def __repr__(self) -> str:  # not the bytes: hypothesis prints failing examples
        return f"Base({self.fmt}: {self.name})"


class Mutant:
    """A damaged copy of a base: its files and what was done to them."""

    def __init__(self, base: Base, files, label: str) -> None:
        self.base, self.files, self.label = base, tuple(files), label

    def __repr__(self) -> str:
        return f"Mutant({self.base.name}: {self.label})"


def _files(folder: Path, only: str | None = None) -> tuple[tuple[str, bytes], ...]:
    out = []
    for p in sorted(folder.rglob("*")):
        if p.is_file() and (only is None or p.name.startswith(only)):
            out.append((p.relative_to(folder).as_posix(), p.read_bytes()))
    return tuple(out)


def _corpus(rel: str) -> Path | None:
    p = CORPUS / rel
    return p if p.exists() else None


CHECKPOINTS = [
    (FIXTURES / "checkpoint/all_dtypes", "ckpt"),
    (FIXTURES / "checkpoint/sharded", "ckpt"),
    (FIXTURES / "checkpoint/partitioned_tf1", "model.ckpt"),
    (FIXTURES / "checkpoint/tf1_graph", "model.ckpt-1"),
    (FIXTURES / "checkpoint/keras3_subclassed", "ckpt"),
    (FIXTURES / "checkpoint/manager", "ckpt-3"),
    ("checkpoint/tf_mnist_stale_state", "model.ckpt-46900"),  # Snappy index block
    ("checkpoint/tf_old_string_tensors", "foo"),
    ("checkpoint/tf_feature_column_embedding", "embedding.ckpt"),
    ("checkpoint/tfkeras_lso_ckpt_tf2.2", "ckpt"),
]
SAVEDMODELS = [
    FIXTURES / "savedmodel/keras3_two_io",
    FIXTURES / "savedmodel/module_multisig",
    FIXTURES / "savedmodel/tfkeras_functional",
    FIXTURES / "savedmodel/pbtxt_module",
    "savedmodel/tf_half_plus_two/00000123",
    "savedmodel/tf_CyclicModule",
    "savedmodel/tf_StaticHashTableModule",
    "savedmodel/tfkeras_lso_savedmodel_tf2.2",
]
KERAS_H5 = [
    *sorted((FIXTURES / "keras_h5").glob("*.h5")),
    "keras_h5/dl4j/weights_dense_tensorflow_1.h5",
    "keras_h5/dl4j/weights_bidirectional_lstm_tensorflow_2.h5",
    "keras_h5/dl4j_oracle/simple_sparse_xent_mlp_keras_2_model.h5",
    "keras_h5/dl4j/tfkeras_rnn_9.h5",
]
KERAS_ZIP = [
    *sorted((FIXTURES / "keras_zip").glob("*.keras")),
    "keras_zip/keras_mlx_branch_model.keras",
    "keras_zip/keras_pre_pr22362_nested_container.keras",
]
TFLITE = [
    *sorted((FIXTURES / "tflite").glob("*.tflite")),
    *(
        f"tflite/litert/{n}.tflite"
        for n in (
            "sparse_tensor",
            "dynamic_shapes",
            "multi_signatures",
            "add_quantized_int8",
            "string_input_model_with_signature",
            "with_metadata",
            "nested_while",
            "softplus_flex",
        )
    ),  # fmt: skip
]


def _resolve(entry: Path | str) -> Path | None:
    return entry if isinstance(entry, Path) else _corpus(entry)


@functools.cache
def bases(fmt: str) -> tuple[Base, ...]:
    out: list[Base] = []
    if fmt == "checkpoint":
        for entry, prefix in CHECKPOINTS:
            folder = _resolve(entry)
            if folder is None:
                continue
            files = _files(folder, prefix + ".")
            files = tuple((r, b) for r, b in files if r.endswith(".index") or ".data-" in r)
            out.append(Base(fmt, f"{folder.name}/{prefix}", files, prefix, prefix + ".index"))
    elif fmt == "savedmodel":
        for entry in SAVEDMODELS:
            folder = _resolve(entry)
            if folder is None:
                continue
            files = _files(folder)
            primary = "saved_model.pb" if (folder / "saved_model.pb").is_file() else "saved_model.pbtxt"
            out.append(
                Base(fmt, str(entry).split("/")[-1] if isinstance(entry, Path) else entry, files, "", primary)
            )
    else:
        entries = {"keras_h5": KERAS_H5, "keras_zip": KERAS_ZIP, "tflite": TFLITE}[fmt]
        suffix = {"keras_h5": ".h5", "keras_zip": ".keras", "tflite": ".tflite"}[fmt]
        for entry in entries:
            path = _resolve(entry)
            if path is None:
                continue
            name = "model" + suffix
            out.append(Base(fmt, path.name, ((name, path.read_bytes()),), name, name))
    return tuple(out)


# ---------------------------------------------------------------------------------------
# Cached structure of each base


@functools.cache
def _sstable(data: bytes) -> tuple[L.Layout, W.SSTable]:
    return L.sstable_layout(data), W.SSTable.parse(data)


@functools.cache
def _proto(data: bytes) -> tuple[W.PField, ...]:
    return tuple(W.walk(W.parse_message(data) or []))


@functools.cache
def _flatbuffer(data: bytes) -> L.Layout:
    return L.flatbuffer_layout(data)


@functools.cache
def _h5(data: bytes) -> L.Layout:
    return L.h5_layout(data)


@functools.cache
def _h5_attrs(data: bytes) -> tuple[tuple[str, str], ...]:
    return tuple(L.h5_attributes(data))


@functools.cache
def _zip(data: bytes) -> L.ZipLayout:
    return L.zip_layout(data)


# ---------------------------------------------------------------------------------------
# Generic operations


def _replace(m: Base, rel: str, data: bytes | None) -> tuple[tuple[str, bytes], ...]:
    """The base's files with ``rel`` replaced (or removed when ``data`` is None)."""
    out = [(r, b) for r, b in m.files if r != rel]
    if data is not None:
        out.append((rel, data))
    return tuple(sorted(out))


def truncate(draw, data: bytes, boundaries) -> tuple[bytes, str]:
    b = draw(st.sampled_from(sorted(boundaries)))
    d = draw(st.sampled_from((0, -1, 1)))
    cut = max(0, min(len(data), b + d))
    return data[:cut], f"cut at {cut} of {len(data)}"


def set_site(draw, data: bytes, sites) -> tuple[bytes, str]:
    site = draw(st.sampled_from(sites))
    value = draw(st.sampled_from(L.interesting(site.width, len(data))))
    return L.write_site(data, site, value), f"{site.label} (@{site.pos}) = {value:#x}"


def flips(draw, data: bytes, hot=None) -> tuple[bytes, str]:
    if not data:
        return b"\0", "empty file -> one zero byte"
    out = bytearray(data)
    where = []
    positions = st.integers(0, len(data) - 1)
    if hot:
        hot = sorted(p for p in hot if 0 <= p < len(data))
        if hot:
            positions = st.one_of(st.sampled_from(hot), positions)
    for _ in range(draw(st.integers(1, 8))):
        pos = draw(positions)
        bit = draw(st.integers(0, 7))
        out[pos] ^= 1 << bit
        where.append(f"{pos}.{bit}")
    return bytes(out), "bit flips at " + ",".join(where)


def splat(draw, data: bytes) -> tuple[bytes, str]:
    if not data:
        return b"\xff", "empty file -> one byte"
    start = draw(st.integers(0, len(data) - 1))
    chunk = draw(st.binary(min_size=1, max_size=64))
    out = data[:start] + chunk + data[start + len(chunk) :]
    return out[: max(len(data), start + len(chunk))], f"{len(chunk)} random bytes at {start}"


def noise(draw, head: bytes = b"") -> tuple[bytes, str]:
    body = draw(st.binary(min_size=0, max_size=1024))
    return head + body, f"random bytes ({len(head)} magic + {len(body)})"


# ---------------------------------------------------------------------------------------
# Checkpoints

_EXTRA_ENTRY_FIELDS = [
    b"\x08\xe7\x07",  # dtype 999
    b"\x08\x07",  # dtype string
    b"\x08\x14",  # dtype resource
    b"\x12\x02\x18\x01",  # shape: unknown rank
    b"\x12\x0c\x12\x0a\x08" + W.encode_varint((1 << 63) - 1)[:9],  # a huge dim (maybe cut)
    b"\x18\x07",  # shard 7
    b"\x3a\x04\x0a\x02\x08\x01",  # a slice: extent start 1, full length
    b"\x3a\x00",  # an empty slice
]


def _checkpoint(draw, m: Base) -> tuple[tuple[tuple[str, bytes], ...], str]:
    index = m.file(m.primary)
    lay, table = _sstable(index)
    data_files = [r for r, _ in m.files if ".data-" in r]
    op = draw(
        st.sampled_from(
            ["cut", "number", "flips", "splat", "noise", "footer", "handle", "block-number", "entry-field",
             "entry-extra", "entries", "key", "key", "block-flip", "data-cut", "data-flips", "data-missing"]
        )
    )  # fmt: skip
    new: bytes | None = index
    rel = m.primary
    if op == "cut":
        new, how = truncate(draw, index, lay.boundaries)
    elif op == "number":
        new, how = set_site(draw, index, lay.sites)
    elif op == "flips":
        new, how = flips(draw, index, lay.boundaries)
    elif op == "splat":
        new, how = splat(draw, index)
    elif op == "noise":
        body, how = noise(draw)
        new = body + W.footer((0, 0), (0, 0))
    elif op == "footer":
        values = []
        pos = len(index) - 48
        for _ in range(4):
            v, pos = W.decode_varint(index, pos)  # type: ignore[misc]
            values.append(v)
        k = draw(st.integers(0, 3))
        values[k] = draw(st.sampled_from(L.interesting(0, len(index))))
        new = index[:-48] + W.footer((values[0], values[1]), (values[2], values[3]))
        how = f"footer handle {k} = {values[k]:#x}"
    elif op == "handle":
        k = draw(st.integers(0, len(table.blocks) - 1))
        which = draw(st.integers(0, 1))
        v = draw(st.sampled_from(L.interesting(0, len(index))))
        new = table.relayout(handle_override=(k, which, v))
        how = f"index entry {k} {'size' if which else 'offset'} = {v:#x}"
    elif op == "block-number":
        k = draw(st.integers(-1, len(table.blocks) - 1))
        contents = table.index.contents if k < 0 else table.blocks[k].contents
        _, spans = W.block_entries(contents)
        sites = [L.Site(len(contents) - 4, 4, "restart count")]
        for j, (start, *_rest) in enumerate(spans):
            p = start
            for what in ("shared", "non_shared", "value_len"):
                sites.append(L.Site(p, 0, f"entry {j} {what}"))
                p = W.decode_varint(contents, p)[1]  # type: ignore[index]
        body, how = set_site(draw, contents, sites)
        how = f"{'index block' if k < 0 else f'data block {k}'}: {how} (checksum fixed)"
        new = table.relayout(index_contents=body) if k < 0 else table.relayout(contents={k: body})
    elif op == "key":
        k = draw(st.integers(0, len(table.blocks) - 1))
        entries, _ = W.block_entries(table.blocks[k].contents)
        slices = [j for j, (key, _) in enumerate(entries) if key.startswith(b"\x00")]
        if slices and draw(st.booleans()):
            j = draw(st.sampled_from(slices))
            new_key, how = _slice_key_edit(draw, entries[j][0])
        else:
            j = draw(st.integers(0, len(entries) - 1))
            key = entries[j][0]
            pos = draw(st.integers(0, max(0, len(key) - 1)))
            new_key = key[:pos] + bytes([draw(st.integers(0, 255))]) + key[pos + 1 :]
            how = f"byte {pos} replaced"
        how = f"key {entries[j][0][:40]!r}: {how}"
        entries[j] = (new_key, entries[j][1])
        if draw(st.booleans()):
            entries.sort(key=lambda e: e[0])
            how += " (entries re-sorted)"
        new = table.relayout(contents={k: W.encode_block(entries)})
    elif op in ("entry-field", "entry-extra", "entries"):
        k = draw(st.integers(0, len(table.blocks) - 1))
        entries, _ = W.block_entries(table.blocks[k].contents)
        j = draw(st.integers(0, len(entries) - 1))
        key, value = entries[j]
        if op == "entry-field":
            fields = _proto(value)
            if not fields:
                value, how = value[: len(value) // 2], "value cut in half"
            else:
                f = draw(st.sampled_from(fields))
                value, how = _proto_edit(draw, value, f)
            entries[j] = (key, value)
        elif op == "entry-extra":
            extra = draw(st.sampled_from(_EXTRA_ENTRY_FIELDS))
            entries[j] = (key, value + extra)
            how = f"appended field {extra.hex()}"
        else:
            action = draw(st.sampled_from(["drop", "duplicate", "swap"]))
            if action == "drop":
                del entries[j]
            elif action == "duplicate":
                entries.insert(j, (key, value))
            elif len(entries) > 1:
                i = (j + 1) % len(entries)
                entries[i], entries[j] = entries[j], entries[i]
            how = f"entry {action}"
        new = table.relayout(contents={k: W.encode_block(entries)})
        how = f"entry {key[:40]!r}: {how}"
    elif op == "block-flip":
        blocks = [table.meta, table.index, *table.blocks]
        b = draw(st.sampled_from(blocks))
        out = bytearray(index)
        pos = b.offset + draw(st.integers(0, max(0, b.size - 1)))
        out[pos] ^= 1 << draw(st.integers(0, 7))
        end = b.offset + b.size
        out[end + 1 : end + 5] = W.trailer(bytes(out[b.offset : end]), out[end])[1:]
        new, how = bytes(out), f"flip at {pos} in block @{b.offset} (checksum fixed)"
    else:
        rel = draw(st.sampled_from(data_files))
        data = m.file(rel)
        bounds = {0, len(data)}
        for _, value in (e for b in table.blocks for e in W.block_entries(b.contents)[0]):
            fields = {f.num: f for f in _proto(value) if f.parent is None}
            if 4 in fields or 5 in fields:
                off = W.decode_varint(value, fields[4].vstart)[0] if 4 in fields else 0  # type: ignore[index]
                size = W.decode_varint(value, fields[5].vstart)[0] if 5 in fields else 0  # type: ignore[index]
                bounds |= {off, off + size}
        if op == "data-cut":
            new, how = truncate(draw, data, bounds)
        elif op == "data-flips":
            new, how = flips(draw, data, bounds)
        else:
            new, how = None, "missing"
        how = f"{rel}: {how}"
    return _replace(m, rel, new), how


def _slice_key_edit(draw, key: bytes) -> tuple[bytes, str]:
    """A slice key with one extent moved, resized or dropped, or a dimension added."""
    from tfmodelkit.formats.checkpoint import decode_slice_key  # locates the parts of a sound key

    name, extents = decode_slice_key(key)
    ext = [list(e) for e in extents]
    action = draw(st.sampled_from(["start", "length", "drop-dim", "add-dim"] if ext else ["add-dim"]))
    if action == "drop-dim":
        del ext[draw(st.integers(0, len(ext) - 1))]
    elif action == "add-dim":
        ext.append([0, draw(st.sampled_from([-1, 1, 2]))])
    else:
        i = draw(st.integers(0, len(ext) - 1))
        which = 0 if action == "start" else 1
        old = ext[i][which]
        ext[i][which] = draw(
            st.sampled_from([old - 1, old + 1, old - 24, old + 24, 0, -1, -65, 8191, 1 << 40])
        )
    return W.encode_slice_key(name.encode("utf-8"), [tuple(e) for e in ext]), f"slice {extents} -> {ext}"


def _proto_edit(draw, data: bytes, f: W.PField) -> tuple[bytes, str]:
    """One edit of protobuf field ``f`` of ``data``, every enclosing length kept consistent
    unless the edit is a lying length prefix."""
    where = f"field {f.num} @{f.start} (depth {len(f.ancestors())})"
    choices = ["delete", "duplicate"]
    if f.wire_type in (0, 1, 5):
        choices += ["number", "number"]
    if f.wire_type == 2:
        choices += ["length"]
        if f.children:
            choices += ["cut-inside"]
    op = draw(st.sampled_from(choices))
    if op == "number":
        width = {0: 0, 1: 8, 5: 4}[f.wire_type]
        v = draw(st.sampled_from(L.interesting(width, len(data))))
        return W.set_number(data, f, v), f"{where} = {v:#x}"
    if op == "length":
        v = draw(st.sampled_from(L.interesting(0, len(data))))
        return W.set_length_prefix(data, f, v), f"{where} length prefix = {v:#x}"
    if op == "cut-inside":
        assert f.children
        at = draw(st.sampled_from(sorted({c.start for c in f.children} | {c.end for c in f.children})))
        return W.cut_inside(data, f, at), f"{where} cut short at {at}"
    if op == "delete":
        return W.delete_field(data, f), f"{where} deleted"
    return W.duplicate_field(data, f), f"{where} duplicated"


# ---------------------------------------------------------------------------------------
# SavedModels

_NUMBER = re.compile(rb"(?<![\w.])-?\d+(\.\d+)?")
_TEXT_NUMBERS = [b"-1", b"0", b"-9223372036854775808", b"18446744073709551616", b"99999", b"1e400", b"nan"]


def _savedmodel(draw, m: Base) -> tuple[tuple[tuple[str, bytes], ...], str]:
    others = [r for r, _ in m.files if r != m.primary]
    if others and draw(st.integers(0, 9)) == 0:
        rel = draw(st.sampled_from(others))
        data = m.file(rel)
        op = draw(st.sampled_from(["missing", "cut", "flips"]))
        if op == "missing":
            return _replace(m, rel, None), f"{rel} missing"
        new, how = truncate(draw, data, {0, len(data) // 2, len(data)}) if op == "cut" else flips(draw, data)
        return _replace(m, rel, new), f"{rel}: {how}"
    data = m.file(m.primary)
    if m.primary.endswith(".pbtxt"):
        op = draw(st.sampled_from(["cut", "flips", "number", "drop-line"]))
        lines = [0] + [i + 1 for i, c in enumerate(data) if c == 0x0A]
        if op == "cut":
            new, how = truncate(draw, data, lines)
        elif op == "flips":
            new, how = flips(draw, data)
        elif op == "number":
            spans = [mm.span() for mm in _NUMBER.finditer(data)]
            s, e = draw(st.sampled_from(spans))
            num = draw(st.sampled_from(_TEXT_NUMBERS))
            new, how = data[:s] + num + data[e:], f"number @{s} = {num.decode()}"
        else:
            i = draw(st.integers(0, len(lines) - 2))
            new, how = data[: lines[i]] + data[lines[i + 1] :], f"line {i} deleted"
        return _replace(m, m.primary, new), how
    fields = _proto(data)
    op = draw(st.sampled_from(["cut", "length", "field", "field", "field", "flips", "splat", "noise"]))
    if op == "cut":
        bounds = {0, len(data)}
        for f in fields:
            bounds |= {f.start, f.vstart, f.end} | ({f.len_pos} if f.len_pos is not None else set())
        new, how = truncate(draw, data, bounds)
    elif op == "length":
        f = draw(st.sampled_from([f for f in fields if f.wire_type == 2]))
        v = draw(st.sampled_from(L.interesting(0, len(data))))
        new, how = W.set_length_prefix(data, f, v), f"length prefix of field {f.num} @{f.start} = {v:#x}"
    elif op == "field":
        new, how = _proto_edit(draw, data, draw(st.sampled_from(fields)))
    elif op == "flips":
        new, how = flips(draw, data, [f.start for f in fields])
    elif op == "splat":
        new, how = splat(draw, data)
    else:
        new, how = noise(draw)
    return _replace(m, m.primary, new), how


# ---------------------------------------------------------------------------------------
# Keras HDF5


def _deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


_JSON_VALUES = [None, -1, 0, 2**63, 1e308, "", "x" * 300, [], {}, [None], {"class_name": 5}, True,
                {"class_name": "Lambda", "config": {"function": ["AAAA", None, None]}}, "DEEP"]  # fmt: skip


def json_edit(draw, text: str) -> tuple[str, str]:
    """``text`` (JSON) with one node replaced by an awkward value (or the text itself damaged)."""
    try:
        doc = json.loads(text)
    except ValueError:
        return text[: len(text) // 2], "JSON cut in half"
    nodes: list[tuple] = []

    def visit(v, path):
        nodes.append(path)
        if len(nodes) > 5000:
            return
        if isinstance(v, dict):
            for k, x in v.items():
                visit(x, (*path, k))
        elif isinstance(v, list):
            for i, x in enumerate(v):
                visit(x, (*path, i))

    visit(doc, ())
    op = draw(st.sampled_from(["replace", "replace", "replace", "cut"]))
    if op == "cut":
        at = draw(st.integers(0, len(text)))
        return text[:at], f"JSON cut at {at}"
    path = draw(st.sampled_from(nodes))
    value = draw(st.sampled_from(_JSON_VALUES))
    if not path:
        doc = value
    else:
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        parent[path[-1]] = value
    out = json.dumps(doc)
    out = out.replace('"DEEP"', _deep_json(100000))
    return out, f"JSON {'/'.join(map(str, path)) or '<root>'} = {json.dumps(value)[:40]}"


_ATTR_VALUES = [
    np.array([b"nope", b"missing"]),
    np.array([b""]),
    np.array([1, 2, 3], dtype=np.int64),
    b"x" * 70000,
    np.array([b"a"] * 3000),
    np.float64(float("nan")),
    None,  # delete the attribute
]


def _keras_h5(draw, m: Base) -> tuple[tuple[tuple[str, bytes], ...], str]:
    data = m.file(m.primary)
    lay = _h5(data)
    op = draw(st.sampled_from(["cut", "number", "number", "flips", "splat", "noise", "attr"]))
    if op == "cut":
        new, how = truncate(draw, data, lay.boundaries)
    elif op == "number":
        new, how = set_site(draw, data, lay.sites)
    elif op == "flips":
        new, how = flips(draw, data, [s.pos for s in lay.sites])
    elif op == "splat":
        new, how = splat(draw, data)
    elif op == "noise":
        new, how = noise(draw, b"\x89HDF\r\n\x1a\n")
    else:
        new, how = attr_edit(draw, data)
    return _replace(m, m.primary, new), how


def attr_edit(draw, data: bytes) -> tuple[bytes, str]:
    obj, name = draw(st.sampled_from(_h5_attrs(data)))
    if name in ("model_config", "training_config"):
        text = L.get_h5_attribute(data, obj, name)
        text = text.decode("utf-8") if isinstance(text, bytes) else str(text)
        new_text, how = json_edit(draw, text)
        value: object = new_text.encode("utf-8")
    else:
        value = draw(st.sampled_from(_ATTR_VALUES))
        how = "deleted" if value is None else f"= {type(value).__name__} {str(value)[:30]}"
    return L.set_h5_attribute(data, obj, name, value), f"attribute {obj}@{name} {how}"


# ---------------------------------------------------------------------------------------
# Keras zip


def _keras_zip(draw, m: Base) -> tuple[tuple[tuple[str, bytes], ...], str]:
    data = m.file(m.primary)
    z = _zip(data)
    op = draw(
        st.sampled_from(["cut", "number", "number", "flips", "splat", "noise", "inner-h5", "inner-h5", "json",
                         "members"])
    )  # fmt: skip
    if op == "cut":
        new, how = truncate(draw, data, z.layout.boundaries)
    elif op == "number":
        new, how = set_site(draw, data, z.layout.sites)
    elif op == "flips":
        new, how = flips(draw, data, z.layout.boundaries)
    elif op == "splat":
        new, how = splat(draw, data)
    elif op == "noise":
        new, how = noise(draw, b"PK\x03\x04")
    elif op == "inner-h5" and "model.weights.h5" in z.stored:
        start, size = z.stored["model.weights.h5"]
        inner = _h5(data[start : start + size]).shifted(start)
        kind = draw(st.sampled_from(["number", "flips"]))
        new, how = (
            set_site(draw, data, inner.sites) if kind == "number" else flips(draw, data, inner.boundaries)
        )
        how = f"model.weights.h5 in place: {how}"
    elif op in ("json", "inner-h5"):
        members = L.zip_members(data)
        names = [i.filename for i, _ in members]
        choices = [n for n in names if n.endswith(".json")] or names
        target = draw(st.sampled_from(choices))
        rebuilt = []
        how = ""
        for info, payload in members:
            if info.filename == target:
                if target.endswith(".json"):
                    text, how = json_edit(draw, payload.decode("utf-8", "replace"))
                    payload = text.encode("utf-8")
                else:
                    payload, how = flips(draw, payload)
            rebuilt.append((info, payload, info.compress_type))
        new, how = L.build_zip(rebuilt), f"member {target}: {how} (zip rebuilt)"
    else:
        members = [(i, p, i.compress_type) for i, p in L.zip_members(data)]
        action = draw(st.sampled_from(["drop", "duplicate", "unsafe-name", "deflate", "empty"]))
        k = draw(st.integers(0, len(members) - 1))
        name = members[k][0].filename
        if action == "drop":
            del members[k]
        elif action == "duplicate":
            members.append(members[k])
        elif action == "unsafe-name":
            members.append((draw(st.sampled_from(["../evil.txt", "/abs", "C:x", "a/../../b"])), b"x", 0))
        elif action == "deflate":
            members[k] = (members[k][0], members[k][1], zipfile.ZIP_DEFLATED)
        else:
            members[k] = (members[k][0], b"", members[k][2])
        new, how = L.build_zip(members), f"members: {action} {name}"
    return _replace(m, m.primary, new), how


# ---------------------------------------------------------------------------------------
# TFLite


def _tflite(draw, m: Base) -> tuple[tuple[tuple[str, bytes], ...], str]:
    data = m.file(m.primary)
    lay = _flatbuffer(data)
    op = draw(st.sampled_from(["cut", "number", "number", "number", "flips", "splat", "noise"]))
    if op == "cut":
        new, how = truncate(draw, data, lay.boundaries)
    elif op == "number":
        new, how = set_site(draw, data, lay.sites)
    elif op == "flips":
        new, how = flips(draw, data, [s.pos for s in lay.sites])
    elif op == "splat":
        new, how = splat(draw, data)
    else:
        new, how = noise(draw, b"\x1c\0\0\0TFL3")
    return _replace(m, m.primary, new), how


_MUTATORS = {
    "checkpoint": _checkpoint,
    "savedmodel": _savedmodel,
    "keras_h5": _keras_h5,
    "keras_zip": _keras_zip,
    "tflite": _tflite,
}


@st.composite
def mutants(draw, fmt: str) -> Mutant:
    base = draw(st.sampled_from(bases(fmt)))
    files, label = _MUTATORS[fmt](draw, base)
    return Mutant(base, files, label)
