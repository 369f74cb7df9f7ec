"""``ocr export``: a model as ONNX (fp32, or int8 QDQ for ONNX Runtime), with what a server needs in its metadata.

The graph maps ``images`` ``(N, 1, 64, W)`` float32, normalised as the
metadata says, to ``logits`` ``(N, W // 4 - 1, classes)``; batch and width
are dynamic. Class 0 is the CTC blank; class ``i > 0`` is ``alphabet[i - 1]``.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from crnn import Recognizer
from crnn.preprocess import PreparedImage
from crnn.weights import LoadedModel

OPSET = 17


@dataclass(frozen=True)
class ExportConfig:
    model: str
    out: Path
    int8: bool = False
    #: Labelled or unlabelled images (any layout ``ocr eval`` reads) to calibrate int8 on; None: rendered lines.
    calibration: Path | None = None
    calibration_lines: int = 256


#: Output frames for an input ``width`` columns wide, per architecture (written into the graph's metadata).
FRAMES = {"vgg_bilstm_ctc": "width // 4 - 1", "pplcnetv4_svtr_ctc": "((width + 1) // 2 + 1) // 2 // 2"}


def metadata(model: LoadedModel, int8: bool) -> dict[str, str]:
    """What a client needs to feed the graph and read its output, as ONNX metadata_props.

    An adapted model's fallback (and its domain gate) is not in the graph,
    which reads every line with the adapted network alone; the metadata says so.
    """
    extra = {}
    if model.row_crop:
        extra["row_crop"] = str(model.row_crop)
        extra["row_crop_note"] = ("share of each image's height to cut from its top and bottom before resizing to "
                                  "input_height (negative: rows of edge pixels to add)")
    if model.fallback is not None:
        extra["fallback"] = model.fallback.model.name
        which = "its domain gate turns away" if model.fallback.gate else "it is unsure of"
        extra["fallback_note"] = f"not in this graph: ocr serve has the fallback read the lines {which}"
    return extra | {
        "model": model.name,
        "alphabet": model.charset.alphabet,
        "blank_index": "0",
        "input_height": str(model.input_height),
        "normalization": json.dumps(model.normalization.to_dict()),
        "frames": FRAMES.get(str(model.metadata.get("architecture")), "see the model's architecture"),
        "weights_sha256": model.sha256,
        "source": model.source,
        "precision": "int8 (convolutions, QDQ)" if int8 else "fp32",
    }


def export_fp32(model: LoadedModel, path: Path) -> None:
    """Write the fp32 graph with dynamic batch and width axes, plus metadata."""
    import onnx

    network = model.network.float().eval()
    example = torch.zeros(2, model.normalization.channels, model.input_height, 320)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            network, (example,), str(path), input_names=["images"], output_names=["logits"],
            dynamic_axes={"images": {0: "batch", 3: "width"}, "logits": {0: "batch", 1: "frames"}},
            opset_version=OPSET, dynamo=False,
        )
    graph = onnx.load(str(path))
    for key, value in metadata(model, int8=False).items():
        graph.metadata_props.add(key=key, value=value)
    onnx.save(graph, str(path))


def calibration_batches(recognizer: Recognizer, source: Path | None, lines: int) -> list[np.ndarray]:
    """Batches for int8 calibration: real images from ``source`` or, without one, degraded rendered words."""
    if source is not None:
        from itertools import islice

        from ocr.data.datasets import open_dataset

        images = [s.image for s in islice(iter(open_dataset(source)), lines)]
    else:
        from ocr.adapt.general import PROBE_CHARS, hard_general_set
        from ocr.fonts import find_fonts

        images, _ = hard_general_set(find_fonts(PROBE_CHARS), count=lines, seed=7)
    prepared: list[PreparedImage] = recognizer.prepare_many(images)
    return [tensor.numpy() for _, tensor in recognizer.input_batches(prepared)]


def quantize_int8(fp32_path: Path, out: Path, batches: list[np.ndarray], model: LoadedModel) -> None:
    """Static int8 (QDQ, per-channel weights) of the convolutions with ONNX Runtime's quantizer."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches: Iterator[np.ndarray] = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._batches, None)
            return None if batch is None else {"images": batch}

    pre = fp32_path.with_name("pre.onnx")
    quant_pre_process(str(fp32_path), str(pre))
    quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["Conv"])
    graph = onnx.load(str(out))
    del graph.metadata_props[:]
    for key, value in metadata(model, int8=True).items():
        graph.metadata_props.add(key=key, value=value)
    onnx.save(graph, str(out))


def run_export(config: ExportConfig) -> Path:
    """Export ``config.model`` to ``config.out`` (written atomically); returns the path."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise ValueError(f"ocr export needs onnx and onnxruntime: pip install '.[onnx]' ({exc})") from exc
    recognizer = Recognizer(config.model, device="cpu", precision="fp32")
    config.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=config.out.parent) as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        export_fp32(recognizer.model, fp32)
        result = fp32
        if config.int8:
            result = Path(tmp) / "int8.onnx"
            batches = calibration_batches(recognizer, config.calibration, config.calibration_lines)
            quantize_int8(fp32, result, batches, recognizer.model)
        result.replace(config.out)
    return config.out


class OnnxNetwork:
    """An exported graph behind ONNX Runtime, fed and read like the PyTorch network (for parity checks)."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.metadata = self.session.get_modelmeta().custom_metadata_map

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.session.run(["logits"], {"images": images.astype(np.float32, copy=False)})[0]
