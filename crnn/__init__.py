"""crnn: pretrained CTC text-line recognisers of the CRNN family, and everything needed to run them.

Two architectures, one registry of specs (``crnn.specs``): PP-OCRv6 small (PP-LCNetV4 backbone, light SVTR
encoder, CTC head; ``crnn.lcnet_svtr``, the default) and EasyOCR's english_g2 (VGG + BiLSTM + CTC;
``crnn.model``). Beside them: verified weight loading, preprocessing, decoding (greedy, beam, patterns,
lexicons, calibrated confidences), the domain gate of adapted models, and the inference runtimes
(PyTorch, ONNX Runtime, OpenVINO) that the ``Recognizer`` runs a network on.

    from crnn import Recognizer
    results = Recognizer().recognize([open("word.png", "rb").read()])
    print(results[0].text, results[0].confidence)
"""

from crnn.decode import CharResult, Result
from crnn.errors import CrnnError, InvalidAllowlistError, InvalidImageError, UnknownModelError, WeightsError
from crnn.recognizer import Recognizer
from crnn.specs import DEFAULT_MODEL, MODEL_SPECS, ModelSpec

__all__ = [
    "DEFAULT_MODEL",
    "MODEL_SPECS",
    "CharResult",
    "CrnnError",
    "InvalidAllowlistError",
    "InvalidImageError",
    "ModelSpec",
    "Recognizer",
    "Result",
    "UnknownModelError",
    "WeightsError",
]
