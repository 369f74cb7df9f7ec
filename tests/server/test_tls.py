"""Optional TLS: a self-signed certificate made with the openssl CLI (skipped where it is missing)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import grpc
import pytest

from ocr.v1 import ocr_pb2_grpc
from tests.conftest import example_bytes
from tests.server.conftest import ServerThread, config, request


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not available")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return cert, key


def test_tls_server_reads_over_tls_and_refuses_plaintext(tmp_path: Path, fp32_recognizer) -> None:
    cert, key = self_signed(tmp_path)
    srv = ServerThread(config(tls_cert=cert, tls_key=key), {"english_g2": fp32_recognizer}).start()
    try:
        credentials = grpc.ssl_channel_credentials(cert.read_bytes())
        with grpc.secure_channel(srv.target, credentials) as channel:
            response = ocr_pb2_grpc.RecognizerStub(channel).Recognize(request(example_bytes(0)), timeout=30)
            assert response.results[0].text == "HELLO"
        with grpc.insecure_channel(srv.target) as channel:
            with pytest.raises(grpc.RpcError) as info:
                ocr_pb2_grpc.RecognizerStub(channel).Recognize(request(example_bytes(0)), timeout=5)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        srv.stop()
