"""crnn: a pretrained CRNN (VGG + BiLSTM + CTC) text-line recogniser.

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
