"""Loading weights safely: checksums, ``module.`` prefixes, self-describing checkpoints.

Two kinds of file load here, through one function, :func:`load_model`:

* a **registered model** (``english_g2``: a bare state dict; ``ppocrv6_small``:
  an ONNX file whose tensors are copied onto our own module) whose SHA-256 must
  equal the spec's before ``torch.load`` or ``onnx`` ever sees it;
* a **project checkpoint** (written by :func:`save_checkpoint`, e.g. by
  ``ocr adapt``): a dict carrying the weights *and* what is needed to use them
  (architecture, alphabet, input height, normalisation, provenance, metrics),
  plus a digest of the weights that is checked on load.

Nothing here downloads anything.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from crnn.charset import Charset
from crnn.errors import UnknownModelError, WeightsError
from crnn.gate import DomainGate
from crnn.specs import DEFAULT_MODEL, MODEL_SPECS, ModelSpec, Normalization, build_network

CHECKPOINT_FORMAT = "crnn-checkpoint"
CHECKPOINT_VERSION = 1
#: Environment variable: a weights file to use instead of the registered model's own.
WEIGHTS_ENV = "OCR_WEIGHTS"
#: Environment variable: the folder holding models written by ``ocr adapt``.
MODELS_DIR_ENV = "OCR_MODELS"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass
class LoadedModel:
    """A network with everything needed to feed it and read its output."""

    name: str
    network: nn.Module
    charset: Charset
    input_height: int
    normalization: Normalization
    source: str
    sha256: str
    metadata: dict[str, Any] = field(default_factory=dict)
    #: A second model that also reads the lines this one is unsure of (see ``Fallback``).
    fallback: Fallback | None = None
    #: Share of an image's height cut from its top and bottom before it is read (negative: rows added);
    #: ``crnn.preprocess.frame_rows``. 0 for the pretrained models; ``ocr adapt`` may choose another.
    row_crop: float = 0.0


@dataclass
class Fallback:
    """The pretrained model an adapted checkpoint falls back on.

    With a ``gate``, lines the gate places outside the adapted domain are read
    by ``model`` too, and its reading replaces the adapted one unless the gate's
    override margin keeps the adapted one (``DomainGate.keeps_own``). Without one,
    lines the adapted model reads with confidence below ``below`` are read by
    ``model`` too, and the more confident reading is kept (output-space
    ensembling). ``model.charset`` reads letters in the adapted model's case.
    """

    model: LoadedModel
    below: float
    gate: DomainGate | None = None


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def strip_module_prefix(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the ``module.`` prefix that ``nn.DataParallel`` adds to every key."""
    return {k.removeprefix("module."): v for k, v in state_dict.items()}


def state_dict_digest(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of a state dict's tensors."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files
        raise WeightsError(f"{path}: cannot be read as a PyTorch file ({exc.__class__.__name__}: {exc})") from exc


def _load_strict(network: nn.Module, state_dict: dict[str, torch.Tensor], path: Path) -> None:
    try:
        network.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{path}: weights do not fit the architecture: {exc}") from exc


def load_registered(spec: ModelSpec, weights: Path | None = None) -> LoadedModel:
    """Load a registered model, from ``weights`` if given, else ``$OCR_WEIGHTS``, else its package.

    The file's SHA-256 must equal the spec's; a mismatch raises ``WeightsError``
    naming the file and both hashes, before the file is unpickled.
    """
    if weights is None and os.environ.get(WEIGHTS_ENV):
        weights = Path(os.environ[WEIGHTS_ENV])
    path = Path(weights) if weights is not None else spec.weights_file()
    network = spec.build()
    load_verified_weights(network, path, spec.sha256, spec.name, spec.weights_format)
    return LoadedModel(
        name=spec.name,
        network=network.eval(),
        charset=spec.charset,
        input_height=spec.input_height,
        normalization=spec.normalization,
        source=f"{spec.source}; file {path}",
        sha256=spec.sha256,
        metadata={"architecture": spec.architecture},
    )


def verified_path(path: Path, sha256: str, name: str) -> Path:
    """``path`` once its SHA-256 is ``sha256``; ``WeightsError`` naming the file and both hashes if not."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file for model {name!r} not found: {path}")
    actual = sha256_file(path)
    if actual != sha256:
        raise WeightsError(
            f"checksum mismatch for {path}: expected SHA-256 {sha256} for model {name!r}, got {actual}; "
            "refusing to load"
        )
    return path


def load_verified_weights(network: nn.Module, path: Path, sha256: str, name: str, weights_format: str = "torch"
                          ) -> None:
    """Load a registered weights file into ``network`` after checking the file's SHA-256.

    ``weights_format`` "torch" is a bare state dict; "onnx" an ONNX file whose learned tensors are copied in
    graph order (``crnn.onnx_weights``). A missing file, a checksum mismatch (checked before the file is parsed),
    a file that is not a state dict or weights that do not fit raise ``WeightsError``.
    """
    verified_path(path, sha256, name)
    if weights_format == "onnx":
        from crnn.onnx_weights import load_onnx_into

        load_onnx_into(network, path)
        return
    state_dict = _torch_load(path)
    if not isinstance(state_dict, dict):
        raise WeightsError(f"{path}: expected a state dict, got {type(state_dict).__name__}")
    _load_strict(network, strip_module_prefix(state_dict), path)


def save_checkpoint(
    path: Path,
    network: nn.Module,
    *,
    architecture: str,
    alphabet: str,
    input_height: int,
    normalization: Normalization,
    provenance: dict[str, Any],
    metrics: dict[str, Any] | None = None,
    architecture_kwargs: dict[str, int] | None = None,
    case: str | None = None,
    fallback: LoadedModel | None = None,
    fallback_below: float = 1.0,
    gate: DomainGate | None = None,
    row_crop: float = 0.0,
) -> Path:
    """Write a self-describing checkpoint atomically (temp file + rename); returns ``path``.

    ``case`` ("upper"/"lower") records that the model reads letters
    case-insensitively and writes them in that case (see ``Charset``);
    ``row_crop`` how its inputs are framed (``crnn.preprocess.frame_rows``).
    ``fallback`` (a registered model) is recorded by name and SHA-256, not
    copied: lines read with confidence below ``fallback_below`` are read by it
    too, or with a ``gate`` the lines it places outside the domain (see ``Fallback`` for which reading is kept).
    """
    if gate is not None and fallback is None:
        raise ValueError("a domain gate needs a fallback model to route the other lines to")
    if fallback is not None and fallback.name not in MODEL_SPECS:
        raise ValueError(f"a fallback must be a registered model ({', '.join(MODEL_SPECS)}), not {fallback.name!r}")
    state_dict = {k: v.detach().cpu() for k, v in network.state_dict().items()}
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "architecture": architecture,
        "architecture_kwargs": dict(architecture_kwargs or {}),
        "alphabet": alphabet,
        "case": case,
        "input_height": input_height,
        "row_crop": float(row_crop),
        "normalization": normalization.to_dict(),
        "provenance": provenance,
        "metrics": metrics or {},
        "fallback": (
            {"model": fallback.name, "sha256": fallback.sha256, "below": float(fallback_below),
             "gate": gate.to_dict() if gate else None} if fallback else None
        ),
        "weights_sha256": state_dict_digest(state_dict),
        "state_dict": state_dict,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_atomically(Path(path), buffer.getvalue())
    return Path(path)


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see either the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path) -> LoadedModel:
    """Load a project checkpoint; the weights digest and the alphabet size are checked."""
    path = Path(path)
    payload = _torch_load(path)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise WeightsError(f"{path}: not a {CHECKPOINT_FORMAT} file (bare state dicts load only as a registered model)")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise WeightsError(f"{path}: checkpoint version {payload.get('version')} is not supported")
    state_dict = payload["state_dict"]
    digest = state_dict_digest(state_dict)
    if digest != payload.get("weights_sha256"):
        raise WeightsError(
            f"checksum mismatch for {path}: weights digest expected {payload.get('weights_sha256')}, got {digest}"
        )
    charset = Charset(payload["alphabet"], payload.get("case"))
    network = build_network(payload["architecture"], charset.num_classes, payload.get("architecture_kwargs", {}))
    _load_strict(network, state_dict, path)
    norm = payload.get("normalization", {})
    return LoadedModel(
        name=str(payload.get("provenance", {}).get("name") or path.stem),
        network=network.eval(),
        charset=charset,
        input_height=int(payload["input_height"]),
        row_crop=float(payload.get("row_crop", 0.0)),  # absent from checkpoints written before framing
        normalization=Normalization.from_dict(norm),
        source=f"checkpoint {path}",
        sha256=sha256_file(path),
        metadata={k: payload[k] for k in ("architecture", "provenance", "metrics") if k in payload},
        fallback=_load_fallback(payload.get("fallback"), charset, path),
    )


def _load_fallback(entry: dict[str, Any] | None, charset: Charset, path: Path) -> Fallback | None:
    """The registered model a checkpoint falls back on, refused if it is not the one it was adapted with."""
    if not entry:
        return None
    name = str(entry.get("model"))
    if name not in MODEL_SPECS:
        raise WeightsError(f"{path}: falls back on model {name!r}, which is not registered here")
    model = load_registered(MODEL_SPECS[name])
    if model.sha256 != entry.get("sha256"):
        raise WeightsError(
            f"{path}: falls back on {name} with SHA-256 {entry.get('sha256')}, but the installed {name} has "
            f"{model.sha256}; refusing to pair them"
        )
    model.charset = Charset(model.charset.alphabet, charset.case)
    try:
        gate = DomainGate.from_dict(entry["gate"]) if entry.get("gate") else None
    except (KeyError, TypeError, ValueError) as exc:
        raise WeightsError(f"{path}: its domain gate is malformed ({exc})") from exc
    return Fallback(model, float(entry.get("below", 1.0)), gate)


def models_dir() -> Path:
    """The folder of user models: ``$OCR_MODELS`` or ``./models``."""
    return Path(os.environ.get(MODELS_DIR_ENV) or "models")


def find_model_file(name: str, directory: Path | None = None) -> Path | None:
    """Path of model ``name`` inside the models folder, or None.

    Only plain names are accepted (letters, digits, ``.``, ``_``, ``-``), so a
    name that arrives over the network can never point outside the folder.
    """
    if not _SAFE_NAME.match(name) or ".." in name:
        return None
    directory = directory or models_dir()
    for candidate in (directory / name / "model.pt", directory / f"{name}.pt"):
        if candidate.is_file():
            return candidate
    return None


def folder_models(directory: Path | None = None) -> list[str]:
    """The names of the models in the models folder (``NAME/model.pt`` or ``NAME.pt``) that a request may load."""
    directory = directory or models_dir()
    if not directory.is_dir():
        return []
    names = {p.parent.name for p in directory.glob("*/model.pt")} | {p.stem for p in directory.glob("*.pt")}
    return sorted(n for n in names if find_model_file(n, directory) is not None)


def load_model(
    name: str = DEFAULT_MODEL,
    *,
    weights: Path | None = None,
    allow_paths: bool = True,
    directory: Path | None = None,
) -> LoadedModel:
    """Load a model by registered name, models-folder name, or (if ``allow_paths``) checkpoint path."""
    if name in MODEL_SPECS:
        return load_registered(MODEL_SPECS[name], weights)
    if weights is not None:
        raise UnknownModelError(f"--weights applies to registered models only ({', '.join(MODEL_SPECS)}), not {name!r}")
    found = find_model_file(name, directory)
    if found is None and allow_paths and Path(name).is_file():
        found = Path(name)
    if found is None:
        where = directory or models_dir()
        raise UnknownModelError(
            f"unknown model {name!r}: not registered ({', '.join(MODEL_SPECS)}) and no checkpoint "
            f"{where}/{name}/model.pt or {where}/{name}.pt" + (" or file of that path" if allow_paths else "")
        )
    return load_checkpoint(found)
