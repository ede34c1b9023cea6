"""Regenerate tfmodelkit/formats/protos/tfmodelkit_pb2.py from tfmodelkit.proto.

The generated module is committed so that installing tfmodelkit needs only the protobuf
runtime. Generated code refuses runtimes older than the protoc that wrote it, so generate
with grpcio-tools 1.75.1 (protoc for protobuf 6.31.1, the oldest runtime we accept), kept
apart from the project's environment because it pins protobuf below 7:

    pip install --no-deps --target /tmp/gt grpcio-tools==1.75.1 grpcio==1.75.1
    PYTHONPATH=/tmp/gt python scripts/gen_protos.py
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    protos = root / "tfmodelkit" / "formats" / "protos"
    include = Path(protoc.__file__).parent / "_proto"
    rc = protoc.main(
        ["protoc", f"-I{protos}", f"-I{include}", f"--python_out={protos}", str(protos / "tfmodelkit.proto")]
    )
    if rc:
        print("protoc failed", file=sys.stderr)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
