"""Regenerate the Python gRPC code for ``proto/ocr/v1/ocr.proto`` into ``ocr/v1/``.

    python scripts/tools/gen_proto.py [--out DIR]

Compiled with ``-I proto``, the file becomes the module ``ocr.v1.ocr_pb2``,
inside this project's own ``ocr`` package (on purpose: a second top-level
``ocr`` would shadow it). ``tests/test_proto.py`` fails if the committed
code is stale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTO = Path("ocr/v1/ocr.proto")


def generate(out: Path) -> list[Path]:
    """Run protoc (from grpcio-tools) and return the files it wrote."""
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    out.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{ROOT / 'proto'}",
        f"-I{include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        str(ROOT / "proto" / PROTO),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed")
    stem = out / PROTO.parent
    return [stem / "ocr_pb2.py", stem / "ocr_pb2.pyi", stem / "ocr_pb2_grpc.py"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT, help="root to write ocr/v1/ under (default: the repo)")
    args = parser.parse_args()
    for path in generate(args.out):
        print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
