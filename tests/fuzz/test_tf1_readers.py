"""Property: damaged V1 checkpoints, ``.meta`` files and frozen GraphDefs give only tfmodelkit's
own errors (one line, naming the file) from ``read``, from reading every weight and from ``check``.

Mutants of the fixtures (and the corpus's V1 ``export``): truncation at structural boundaries,
numbers set to extreme values, bit flips, random bytes; for V1 tables, records edited inside
their blocks and re-checksummed (meta and slice records with a protobuf field changed, deleted,
duplicated or cut) so the damage reaches the record parsing; for graphs, protobuf fields edited
with every enclosing length fixed up. Examples: ``TFMODELKIT_FUZZ_EXAMPLES`` (default 150 each).
"""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import CORPUS, FIXTURES

from . import layouts as L
from . import wire as W
from .harness import TIME_LIMIT, Scratch
from .mutators import flips, noise, set_site, splat, truncate

EXAMPLES = int(os.environ.get("TFMODELKIT_FUZZ_EXAMPLES", "150"))
V1_BASES = [
    FIXTURES / "checkpoint/v1_saver/model.ckpt",
    FIXTURES / "checkpoint/v1_sharded/model.ckpt-00000-of-00001",
]
if (CORPUS / "savedmodel/tfserving_bad_half_plus_two/00000123/export").is_file():
    V1_BASES.append(CORPUS / "savedmodel/tfserving_bad_half_plus_two/00000123/export")
GRAPH_BASES = {
    "graphdef": FIXTURES / "graphdef/frozen.pb",
    "metagraph": FIXTURES / "checkpoint/tf1_cnn/model.ckpt.meta",
}
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:google.protobuf")


@pytest.fixture(scope="module")
def scratch():
    s = Scratch()
    yield s
    s.close()


def _settings() -> settings:
    return settings(
        max_examples=EXAMPLES,
        deadline=timedelta(seconds=2 * TIME_LIMIT + 5),
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


def _proto_edit(draw, data: bytes) -> tuple[bytes, str]:
    fields = list(W.walk(W.parse_message(data) or []))
    if not fields:
        return flips(draw, data)
    f = draw(st.sampled_from(fields))
    op = draw(st.sampled_from(["number", "delete", "duplicate", "cut", "length"]))
    if op == "number" and f.wire_type in (0, 1, 5):
        value = draw(st.sampled_from(L.interesting(8, len(data))))
        return W.set_number(data, f, value), f"field {f.num} @{f.start} = {value:#x}"
    if op == "delete":
        return W.delete_field(data, f), f"field {f.num} @{f.start} deleted"
    if op == "duplicate":
        return W.duplicate_field(data, f), f"field {f.num} @{f.start} twice"
    if op == "cut" and f.wire_type == 2 and f.end > f.vstart:
        at = draw(st.integers(f.vstart, f.end - 1))
        return W.cut_inside(data, f, at), f"field {f.num} @{f.start} cut at {at}"
    if f.wire_type == 2:
        value = draw(st.sampled_from(L.interesting(4, len(data))))
        return W.set_length_prefix(data, f, value), f"field {f.num} @{f.start} length = {value:#x}"
    return flips(draw, data)


@st.composite
def v1_mutants(draw):
    base = draw(st.sampled_from(V1_BASES))
    data = base.read_bytes()
    lay = L.sstable_layout(data)
    op = draw(st.sampled_from(["cut", "number", "flips", "splat", "noise", "record", "record", "record"]))
    if op == "cut":
        new, how = truncate(draw, data, lay.boundaries)
    elif op == "number":
        new, how = set_site(draw, data, lay.sites)
    elif op == "flips":
        new, how = flips(draw, data, lay.boundaries)
    elif op == "splat":
        new, how = splat(draw, data)
    elif op == "noise":
        body, how = noise(draw)
        new = body + W.footer((0, 0), (0, 0))
    else:  # one record edited in place, the block re-encoded and re-checksummed
        table = W.SSTable.parse(data)
        k = draw(st.integers(0, len(table.blocks) - 1))
        entries, _ = W.block_entries(table.blocks[k].contents)
        i = draw(st.integers(0, len(entries) - 1))
        value, how = _proto_edit(draw, entries[i][1])
        entries[i] = (entries[i][0], value)
        new = table.relayout(contents={k: W.encode_block(entries)})
        how = f"block {k} record {i}: {how}"
    return base.name, new, f"{base.name}: {op}: {how}"


@st.composite
def graph_mutants(draw):
    fmt = draw(st.sampled_from(sorted(GRAPH_BASES)))
    data = GRAPH_BASES[fmt].read_bytes()
    op = draw(st.sampled_from(["proto", "proto", "proto", "flips", "splat", "cut"]))
    if op == "proto":
        new, how = _proto_edit(draw, data)
    elif op == "flips":
        new, how = flips(draw, data)
    elif op == "splat":
        new, how = splat(draw, data)
    else:
        cut = draw(st.integers(0, len(data)))
        new, how = data[:cut], f"cut at {cut}"
    return GRAPH_BASES[fmt].name, new, f"{fmt}: {op}: {how}"


@_settings()
@given(m=v1_mutants())
def test_v1_checkpoint_damage(scratch, m):
    name, data, label = m
    scratch.run("checkpoint_v1", [(name, data)], name, label)


@_settings()
@given(m=graph_mutants())
def test_graph_damage(scratch, m):
    name, data, label = m
    scratch.run("graphs", [(name, data)], name, label)
