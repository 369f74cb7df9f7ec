"""The committed gRPC code must be what scripts/tools/gen_proto.py generates from the .proto today."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT


def load_generator():
    spec = importlib.util.spec_from_file_location("gen_proto", ROOT / "scripts" / "tools" / "gen_proto.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def without_tool_versions(text: str) -> str:
    """Generated code less the lines naming the generator's own version (a newer grpcio-tools or protobuf writes
    its number there; the code is the same)."""
    return re.sub(r"(?m)^(GRPC_GENERATED_VERSION = |# Protobuf Python Version: ).*$", "", text)


def test_generated_code_is_not_stale(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools")
    for fresh in load_generator().generate(tmp_path):
        committed = ROOT / fresh.relative_to(tmp_path)
        assert committed.is_file(), f"{committed} missing: run python scripts/tools/gen_proto.py"
        assert without_tool_versions(committed.read_text()) == without_tool_versions(fresh.read_text()), (
            f"{committed} is stale: run python scripts/tools/gen_proto.py")


def test_contract_field_numbers() -> None:
    from ocr.v1 import ocr_pb2

    def numbers(message) -> dict[str, int]:
        return {f.name: f.number for f in message.DESCRIPTOR.fields}

    assert numbers(ocr_pb2.RecognizeRequest) == {
        "images": 1, "model": 2, "allowlist": 3, "char_details": 4, "pattern": 5, "lexicon": 6,
        "lexicon_ignore_case": 7, "beam_width": 8, "min_confidence": 9, "pattern_ignore_case": 10,
    }
    assert numbers(ocr_pb2.Image) == {"content": 1, "id": 2, "detect": 3}
    assert numbers(ocr_pb2.RecognizeResponse) == {"results": 1, "model": 2}
    assert numbers(ocr_pb2.Recognition) == {
        "id": 1, "text": 2, "confidence": 3, "chars": 4, "unconstrained_text": 5, "unconstrained_confidence": 6,
        "rejected": 7, "lines": 8,
    }
    assert numbers(ocr_pb2.Char) == {"text": 1, "confidence": 2, "x_start": 3, "x_end": 4}
    assert numbers(ocr_pb2.Line) == {"box": 1, "text": 2, "confidence": 3, "chars": 4, "rejected": 5}
    assert numbers(ocr_pb2.Point) == {"x": 1, "y": 2}
    assert ocr_pb2.DESCRIPTOR.package == "ocr.v1"
