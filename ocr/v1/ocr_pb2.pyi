from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RecognizeRequest(_message.Message):
    __slots__ = ("images", "model", "allowlist", "char_details", "pattern", "lexicon", "lexicon_ignore_case", "beam_width", "min_confidence", "pattern_ignore_case")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ALLOWLIST_FIELD_NUMBER: _ClassVar[int]
    CHAR_DETAILS_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    LEXICON_FIELD_NUMBER: _ClassVar[int]
    LEXICON_IGNORE_CASE_FIELD_NUMBER: _ClassVar[int]
    BEAM_WIDTH_FIELD_NUMBER: _ClassVar[int]
    MIN_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    PATTERN_IGNORE_CASE_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedCompositeFieldContainer[Image]
    model: str
    allowlist: str
    char_details: bool
    pattern: str
    lexicon: _containers.RepeatedScalarFieldContainer[str]
    lexicon_ignore_case: bool
    beam_width: int
    min_confidence: float
    pattern_ignore_case: bool
    def __init__(self, images: _Optional[_Iterable[_Union[Image, _Mapping]]] = ..., model: _Optional[str] = ..., allowlist: _Optional[str] = ..., char_details: _Optional[bool] = ..., pattern: _Optional[str] = ..., lexicon: _Optional[_Iterable[str]] = ..., lexicon_ignore_case: _Optional[bool] = ..., beam_width: _Optional[int] = ..., min_confidence: _Optional[float] = ..., pattern_ignore_case: _Optional[bool] = ...) -> None: ...

class Image(_message.Message):
    __slots__ = ("content", "id", "detect")
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    DETECT_FIELD_NUMBER: _ClassVar[int]
    content: bytes
    id: str
    detect: bool
    def __init__(self, content: _Optional[bytes] = ..., id: _Optional[str] = ..., detect: _Optional[bool] = ...) -> None: ...

class RecognizeResponse(_message.Message):
    __slots__ = ("results", "model")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[Recognition]
    model: str
    def __init__(self, results: _Optional[_Iterable[_Union[Recognition, _Mapping]]] = ..., model: _Optional[str] = ...) -> None: ...

class Recognition(_message.Message):
    __slots__ = ("id", "text", "confidence", "chars", "unconstrained_text", "unconstrained_confidence", "rejected", "lines")
    ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    CHARS_FIELD_NUMBER: _ClassVar[int]
    UNCONSTRAINED_TEXT_FIELD_NUMBER: _ClassVar[int]
    UNCONSTRAINED_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    id: str
    text: str
    confidence: float
    chars: _containers.RepeatedCompositeFieldContainer[Char]
    unconstrained_text: str
    unconstrained_confidence: float
    rejected: bool
    lines: _containers.RepeatedCompositeFieldContainer[Line]
    def __init__(self, id: _Optional[str] = ..., text: _Optional[str] = ..., confidence: _Optional[float] = ..., chars: _Optional[_Iterable[_Union[Char, _Mapping]]] = ..., unconstrained_text: _Optional[str] = ..., unconstrained_confidence: _Optional[float] = ..., rejected: _Optional[bool] = ..., lines: _Optional[_Iterable[_Union[Line, _Mapping]]] = ...) -> None: ...

class Line(_message.Message):
    __slots__ = ("box", "text", "confidence", "chars", "rejected")
    BOX_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    CHARS_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    box: _containers.RepeatedCompositeFieldContainer[Point]
    text: str
    confidence: float
    chars: _containers.RepeatedCompositeFieldContainer[Char]
    rejected: bool
    def __init__(self, box: _Optional[_Iterable[_Union[Point, _Mapping]]] = ..., text: _Optional[str] = ..., confidence: _Optional[float] = ..., chars: _Optional[_Iterable[_Union[Char, _Mapping]]] = ..., rejected: _Optional[bool] = ...) -> None: ...

class Point(_message.Message):
    __slots__ = ("x", "y")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    x: int
    y: int
    def __init__(self, x: _Optional[int] = ..., y: _Optional[int] = ...) -> None: ...

class Char(_message.Message):
    __slots__ = ("text", "confidence", "x_start", "x_end")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    X_START_FIELD_NUMBER: _ClassVar[int]
    X_END_FIELD_NUMBER: _ClassVar[int]
    text: str
    confidence: float
    x_start: int
    x_end: int
    def __init__(self, text: _Optional[str] = ..., confidence: _Optional[float] = ..., x_start: _Optional[int] = ..., x_end: _Optional[int] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "default_model")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MODEL_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    default_model: str
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ..., default_model: _Optional[str] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "alphabet", "input_height", "source", "checksum", "device", "precision", "calibrated", "fallback", "state", "runtime")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ALPHABET_FIELD_NUMBER: _ClassVar[int]
    INPUT_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    CALIBRATED_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    alphabet: str
    input_height: int
    source: str
    checksum: str
    device: str
    precision: str
    calibrated: bool
    fallback: str
    state: str
    runtime: str
    def __init__(self, name: _Optional[str] = ..., alphabet: _Optional[str] = ..., input_height: _Optional[int] = ..., source: _Optional[str] = ..., checksum: _Optional[str] = ..., device: _Optional[str] = ..., precision: _Optional[str] = ..., calibrated: _Optional[bool] = ..., fallback: _Optional[str] = ..., state: _Optional[str] = ..., runtime: _Optional[str] = ...) -> None: ...
