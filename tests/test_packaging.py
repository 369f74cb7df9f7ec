"""A non-editable install ships every file the code loads: the wheel holds each package's data files."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("crnn", "ocr", "server", "textdet")


def package_data_files() -> list[str]:
    """Every non-Python file under the packages (what the code may open at run time), as wheel paths."""
    return sorted(
        path.relative_to(ROOT).as_posix()
        for package in PACKAGES
        for path in (ROOT / package).rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts
    )


def test_wheel_ships_every_package_data_file(tmp_path: Path) -> None:
    source = tmp_path / "src"  # a copy without build/ or egg-info leftovers that could mask a missing file
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "models",
                                                                 "runs", "__pycache__", ".pytest_cache"))
    out = tmp_path / "wheel"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", str(out),
         str(source)], capture_output=True, text=True, timeout=300,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = out.glob("crnn_ocr-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = package_data_files()
    assert "crnn/calibrations/english_g2_int8.pt" in expected  # what --precision int8 loads
    missing = [name for name in expected if name not in names]
    assert not missing, f"the wheel leaves out {missing}: add them to [tool.setuptools.package-data]"
