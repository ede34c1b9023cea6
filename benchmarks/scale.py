"""A 1 GiB checkpoint listed, checked and summarized, against TensorFlow's way, in one run.

    python benchmarks/scale.py [--repeat N] [--json out.json] [--cold]

The checkpoint (~1 GiB, ~1,200 tensors: float32, bfloat16 and int64, one tensor holding a
NaN and two Infs) is written once by TensorFlow with its shard-size policy, which cuts it
into 4 shards and slices the variables that straddle them; it is cached under
``benchmarks/.cache/scale/`` and rewritten when missing. Every command runs as a fresh
process (imports included); the report gives medians, ratios, each process's peak resident
memory (``wait4`` ru_maxrss) and, beside them, what merely reading the same bytes costs
(``cat`` and numpy), i.e. the page-cache/disk limit. ``--cold`` also times ``cat`` and
``check`` with the files evicted from the page cache (``posix_fadvise``), i.e. the disk.
Each command runs once untimed first; bytecode is cached as for an installed package (see
``run.py``), for both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "benchmarks" / ".cache" / "scale"
PREFIX = CACHE / "ckpt"
#: Bump when the generated checkpoint changes, so that caches are rebuilt.
SPEC = "scale-v1 embedding 65536x1024 f32, 6 dense 4096x4096 f32, 512 blocks 512x768 bf16, 160 int64x1024"
MIB = 1 << 20
RSS_LIMIT_MIB = 256
#: Targets: check within this many times cat's time, and at least this much faster than
#: TensorFlow's reader; weights --stats at least this much faster than TensorFlow + numpy.
CHECK_VS_CAT = 3.0
CHECK_VS_TF = 10.0
STATS_VS_TF = 6.0


def bench_env() -> dict[str, str]:
    """As run.py's: TensorFlow quiet, bytecode cached even under ``PYTHONDONTWRITEBYTECODE``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(ROOT / "benchmarks" / ".cache" / "pycache")
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return env


QUIET_TF = bench_env()

GENERATE = r"""
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
import tensorflow as tf

prefix = sys.argv[1]
rng = np.random.default_rng(7)
root = tf.Module()
root.embedding = tf.Variable(rng.standard_normal((65536, 1024), dtype=np.float32))
dense = []
for i in range(6):
    m = tf.Module()
    kernel = rng.standard_normal((4096, 4096), dtype=np.float32) * 0.02
    if i == 2:
        kernel[0, 0], kernel[1, 1], kernel[2, 2] = np.nan, np.inf, -np.inf
    m.kernel = tf.Variable(kernel)
    m.bias = tf.Variable(np.zeros(4096, np.float32))
    dense.append(m)
root.dense = dense
blocks = []
for i in range(512):
    m = tf.Module()
    m.kernel = tf.Variable(tf.cast(rng.standard_normal((512, 768), dtype=np.float32) * 0.05, tf.bfloat16))
    m.bias = tf.Variable(rng.standard_normal(768, dtype=np.float32) * 0.01)
    blocks.append(m)
root.blocks = blocks
root.counters = [tf.Variable(rng.integers(-2**40, 2**40, 1024, dtype=np.int64)) for _ in range(160)]
policy = tf.train.experimental.MaxShardSizePolicy(max_shard_size=270_000_000)
tf.train.Checkpoint(model=root).write(
    prefix, options=tf.train.CheckpointOptions(experimental_sharding_callback=policy)
)
"""

TF_READ = r"""
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
reader = tf.train.load_checkpoint(sys.argv[1])
for name in sorted(reader.get_variable_to_shape_map()):
    reader.get_tensor(name)
"""

TF_STATS = r"""
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
import tensorflow as tf
reader = tf.train.load_checkpoint(sys.argv[1])
for name in sorted(reader.get_variable_to_shape_map()):
    v = reader.get_tensor(name)
    if not isinstance(v, np.ndarray) or v.dtype == object:
        continue
    if v.dtype.name == "bfloat16":  # numpy's reductions on bfloat16 are slow and inexact
        v = v.astype(np.float32)
    print(name, v.min(), v.max(), v.mean(), v.std(), int(np.isnan(v).sum()), int(np.isinf(v).sum()))
"""

TF_TENSOR = r"""
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
import tensorflow as tf
np.save(sys.argv[3], tf.train.load_checkpoint(sys.argv[1]).get_tensor(sys.argv[2]))
"""

NUMPY_READ = r"""
import sys
import numpy as np
buf = np.empty(16 << 20, dtype=np.uint8)
view = memoryview(buf)
for path in sys.argv[1:]:
    with open(path, "rb", buffering=0) as f:
        while f.readinto(view):
            pass
"""


def data_files() -> list[Path]:
    return sorted(CACHE.glob("ckpt.data-*"))


def ensure_checkpoint() -> None:
    stamp = CACHE / "SPEC"
    if stamp.is_file() and stamp.read_text() == SPEC and Path(f"{PREFIX}.index").is_file() and data_files():
        return
    print(f"writing the benchmark checkpoint with TensorFlow into {CACHE} (once) ...", flush=True)
    tmp = CACHE.with_name("scale.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    p = subprocess.run([sys.executable, "-c", GENERATE, str(tmp / "ckpt")], env=QUIET_TF, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"writing the benchmark checkpoint failed:\n{p.stderr[-3000:]}")
    (tmp / "SPEC").write_text(SPEC)
    shutil.rmtree(CACHE, ignore_errors=True)
    tmp.rename(CACHE)


@dataclass
class Run:
    seconds: float
    rss_mib: float


def run_once(cmd: list[str], evict: bool = False) -> Run:
    if evict:
        drop_cache()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=QUIET_TF)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    code = proc.returncode
    # `check` exits 1 when it finds damage; this checkpoint has none, so any failure counts.
    if code != 0:
        raise SystemExit(f"benchmark command failed ({code}): {' '.join(cmd)}\n{err.decode()[-2000:]}")
    # Linux reports KiB. A child's ru_maxrss also counts what its parent held when it was
    # forked, which is why this script imports neither numpy nor TensorFlow.
    return Run(elapsed, usage.ru_maxrss / 1024)


def measure(cmd: list[str], repeat: int, evict: bool = False) -> Run:
    run_once(cmd)  # caches bytecode
    runs = [run_once(cmd, evict) for _ in range(repeat)]
    return Run(statistics.median(r.seconds for r in runs), max(r.rss_mib for r in runs))


def drop_cache() -> None:
    """Evict the checkpoint's files from the page cache (no root needed)."""
    for path in [*data_files(), Path(f"{PREFIX}.index")]:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def modelinspect(*args: str) -> list[str]:
    return [sys.executable, "-m", "tfmodelkit.cli.modelinspect", *args]


@dataclass
class Row:
    case: str
    ours_s: float
    ours_rss_mib: float
    theirs_s: float | None
    theirs_rss_mib: float | None
    ratio: float | None
    target: str
    ours_gbps: float | None = None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--repeat", type=int, default=5, help="runs of each of our commands (TF: half, at least 3)"
    )
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--cold", action="store_true", help="also time cat and check with the page cache dropped")
    args = ap.parse_args()
    ensure_checkpoint()
    files = [str(p) for p in data_files()]
    nbytes = sum(os.path.getsize(p) for p in files)
    prefix = str(PREFIX)
    out = CACHE.parent / "scale-out"
    out.mkdir(exist_ok=True)
    tf_repeat = max(3, args.repeat // 2)
    big = "model/embedding/.ATTRIBUTES/VARIABLE_VALUE"
    print(
        f"checkpoint: {PREFIX.relative_to(ROOT)}  {nbytes / 2**30:.2f} GiB in {len(files)} shards", flush=True
    )
    # Warm the page cache, so that every command sees the same (memory-speed) storage.
    for p in files:
        with open(p, "rb") as f:
            while f.read(16 << 20):
                pass

    cases = [
        (
            "weights (listing)",
            modelinspect("weights", prefix),
            [sys.executable, "-m", "tensorflow.python.tools.inspect_checkpoint", f"--file_name={prefix}"],
            ">= 10x",
            False,
        ),
        ("summary (listing)", modelinspect("summary", prefix), None, "metadata only", False),
        (
            "check (every crc32c)",
            modelinspect("check", prefix),
            [sys.executable, "-c", TF_READ, prefix],
            f">= {CHECK_VS_TF:g}x, <= {CHECK_VS_CAT:g}x cat",
            True,
        ),
        (
            "weights --stats",
            modelinspect("weights", "--stats", prefix),
            [sys.executable, "-c", TF_STATS, prefix],
            f">= {STATS_VS_TF:g}x",
            True,
        ),
        (
            "tensor --out (256 MiB tensor)",
            modelinspect("tensor", prefix, big, "--out", str(out / "ours.npy")),
            [sys.executable, "-c", TF_TENSOR, prefix, big, str(out / "tf.npy")],
            "bounded RSS",
            False,
        ),
    ]
    rows = []
    for name, ours_cmd, theirs_cmd, target, reads_all in cases:
        ours = measure(ours_cmd, args.repeat)
        theirs = measure(theirs_cmd, tf_repeat) if theirs_cmd else None
        ratio = theirs.seconds / ours.seconds if theirs else None
        gbps = nbytes / ours.seconds / 1e9 if reads_all else None
        rows.append(
            Row(
                name,
                ours.seconds,
                ours.rss_mib,
                theirs and theirs.seconds,
                theirs and theirs.rss_mib,
                ratio,
                target,
                gbps,
            )
        )
        line = f"{name:32s} ours {ours.seconds * 1000:7.0f} ms  RSS {ours.rss_mib:5.0f} MiB"
        if theirs:
            line += f"   TensorFlow {theirs.seconds * 1000:7.0f} ms  RSS {theirs.rss_mib:5.0f} MiB   {ratio:5.1f}x faster"
        if gbps:
            line += f"   {gbps:4.2f} GB/s"
        print(f"{line}   (target {target})", flush=True)

    cat = measure(["cat", *files], args.repeat)
    npread = measure([sys.executable, "-c", NUMPY_READ, *files], args.repeat)
    print(
        f"{'read limit: cat > /dev/null':32s} {cat.seconds * 1000:7.0f} ms   {nbytes / cat.seconds / 1e9:4.2f} GB/s",
        flush=True,
    )
    print(
        f"{'read limit: numpy readinto':32s} {npread.seconds * 1000:7.0f} ms   {nbytes / npread.seconds / 1e9:4.2f} GB/s "
        "(Python + numpy start-up included)",
        flush=True,
    )
    by = {r.case: r for r in rows}
    for case in ("check (every crc32c)", "weights --stats"):
        r = by[case]
        print(
            f"  {case}: {r.ours_s / cat.seconds:4.1f}x the time of cat, {r.ours_s / npread.seconds:4.1f}x numpy's read"
        )
    check, stats = by["check (every crc32c)"], by["weights --stats"]
    verdicts = [
        ("check vs cat", check.ours_s / cat.seconds, "<=", CHECK_VS_CAT, "x the time of cat"),
        ("check vs TensorFlow's reader", check.ratio, ">=", CHECK_VS_TF, "x faster"),
        ("weights --stats vs TensorFlow + numpy", stats.ratio, ">=", STATS_VS_TF, "x faster"),
    ]
    for what, value, op, limit, unit in verdicts:
        if value is None:
            continue
        ok = value <= limit if op == "<=" else value >= limit
        print(f"  {what}: {value:.1f}{unit} (target {op} {limit:g}x){'' if ok else '  <-- MISSED'}")
    worst = max(r.ours_rss_mib for r in rows)
    print(
        f"  peak RSS of our commands: {worst:.0f} MiB (limit {RSS_LIMIT_MIB} MiB)"
        + ("" if worst < RSS_LIMIT_MIB else "  <-- OVER")
    )
    result = {
        "bytes": nbytes,
        "rows": [asdict(r) for r in rows],
        "cat_s": cat.seconds,
        "numpy_read_s": npread.seconds,
    }
    if args.cold:
        if not hasattr(os, "posix_fadvise"):
            print("--cold: posix_fadvise is not available here")
        else:
            cold_cat = measure(["cat", *files], 3, evict=True)
            cold_check = measure(modelinspect("check", prefix), 3, evict=True)
            print(
                f"{'cold cache: cat > /dev/null':32s} {cold_cat.seconds * 1000:7.0f} ms   "
                f"{nbytes / cold_cat.seconds / 1e9:4.2f} GB/s"
            )
            print(
                f"{'cold cache: modelinspect check':32s} {cold_check.seconds * 1000:7.0f} ms   "
                f"{nbytes / cold_check.seconds / 1e9:4.2f} GB/s   {cold_check.seconds / cold_cat.seconds:4.2f}x cat"
            )
            result["cold_cat_s"] = cold_cat.seconds
            result["cold_check_s"] = cold_check.seconds
    for p in out.glob("*.npy"):
        p.unlink()
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0 if worst < RSS_LIMIT_MIB else 1


if __name__ == "__main__":
    raise SystemExit(main())
