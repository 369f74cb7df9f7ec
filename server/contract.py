"""The ``ocr.v1`` contract shared by ``ocr serve`` and ``ocr serve --ray``: checks, results and model info.

Both servers call these functions, so the same request gets the same
answer (and the same status code) from either.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from typing import TypeVar, cast

import grpc
import numpy as np

from crnn import Recognizer, Result
from crnn.constrained import Constraint
from crnn.decode import CharResult
from crnn.errors import InvalidImageError, UnknownModelError
from crnn.preprocess import PreparedImage, to_gray
from crnn.runtime import Precision
from crnn.specs import MODEL_SPECS
from crnn.weights import LoadedModel, find_model_file, folder_models, load_model
from ocr.v1 import ocr_pb2
from server.config import ServerConfig
from server.errors import RequestError
from textdet.detector import Detector
from textdet.page import Cut, Line, PageReader, page_confidence, page_text

#: Requests with at most this many image bytes are decoded on the event loop (~0.3 ms), bigger ones on a thread.
INLINE_PREPARE_BYTES = 64 * 1024
#: Most images with ``detect`` in one request: a page takes a second or two on CPU, so a request of hundreds of
#: pages would hold the machine for minutes.
MAX_PAGES_PER_REQUEST = 16
M = TypeVar("M")


def select_model(models: Mapping[str, M], name: str, default: str) -> tuple[str, M]:
    """The loaded model a request names (empty: ``default``); ``UnknownModelError`` lists the loaded ones."""
    name = name or default
    if name not in models:
        raise UnknownModelError(f"unknown model {name!r}; this server has: {', '.join(sorted(models))}")
    return name, models[name]


def build_recognizer(model: str | LoadedModel, config: ServerConfig) -> Recognizer:
    """A recogniser configured the way the server runs models, warmed up (call it on the inference thread)."""
    recognizer = Recognizer(
        model, device=config.device, precision=config.precision,  # type: ignore[arg-type]
        runtime=config.runtime, threads=config.threads, batch_size=config.max_batch_size,  # type: ignore[arg-type]
    )
    recognizer.warmup()
    return recognizer


def build_detector(config: ServerConfig) -> Detector:
    """The text detector on the server's device (int8 is for the recogniser only: the detector then picks)."""
    precision = cast(Precision, "auto" if config.precision == "int8" else config.precision)
    return Detector(config.detector, device=config.device, precision=precision,
                    runtime=config.runtime, threads=config.threads)  # type: ignore[arg-type]


def load_for_request(name: str, config: ServerConfig) -> Recognizer:
    """Load a model a request names (a registered name or a plain name in the models folder), warmed up.

    Never a path: ``allow_paths=False`` keeps network-supplied names inside the models folder.
    """
    return build_recognizer(load_model(name, allow_paths=False), config)


def check_loadable(name: str, loaded: int, config: ServerConfig) -> None:
    """A model a request names can be loaded: it exists (NOT_FOUND otherwise) and fits ``config.max_models``."""
    if name not in MODEL_SPECS and find_model_file(name) is None:
        raise UnknownModelError(f"unknown model {name!r}: not registered and not in the models folder")
    if loaded >= config.max_models:
        raise RequestError(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"{loaded} models loaded, the limit (--max-models); start the server with --model NAME instead",
        )


@dataclass(frozen=True)
class ReadOptions:
    """How a request's images are read: its allowlist and constraint (None: everything, greedy)."""

    allowlist: str | None
    constraint: Constraint | None
    min_confidence: float | None = None


def check_request(request: ocr_pb2.RecognizeRequest, recognizer: Recognizer, max_images: int) -> ReadOptions:
    """Reject too many images, a bad allowlist or a bad constraint before any work."""
    if len(request.images) > max_images:
        raise RequestError(
            grpc.StatusCode.INVALID_ARGUMENT, f"{len(request.images)} images in one request; the limit is {max_images}"
        )
    pages = sum(1 for image in request.images if image.detect)
    if pages > MAX_PAGES_PER_REQUEST:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"{pages} images with detect in one request; the limit is {MAX_PAGES_PER_REQUEST} "
                           "(send pages in several requests)")
    allowlist = request.allowlist or None
    recognizer.charset.allow_mask(allowlist)  # InvalidAllowlistError
    constraint = recognizer.constraint(  # InvalidConstraintError
        request.pattern or None, tuple(request.lexicon) or None,
        request.pattern_ignore_case if request.pattern else request.lexicon_ignore_case, request.beam_width,
    )
    if not 0.0 <= request.min_confidence <= 1.0:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"min_confidence must be between 0 and 1, got {request.min_confidence}")
    return ReadOptions(allowlist, constraint, request.min_confidence or None)


async def check_off_loop(
    request: ocr_pb2.RecognizeRequest, recognizer: Recognizer, max_images: int, executor: Executor
) -> ReadOptions:
    """:func:`check_request`; on ``executor`` when the request carries a pattern or lexicon, whose first
    compilation can take a second (100,000 words), so that other requests are not held up meanwhile."""
    if not request.pattern and not request.lexicon:
        return check_request(request, recognizer, max_images)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, check_request, request, recognizer, max_images)


def prepare_request(recognizer: Recognizer, request: ocr_pb2.RecognizeRequest) -> list[PreparedImage | np.ndarray]:
    """Decode every image of a request: a line (``PreparedImage``) or, with ``detect``, a grey page array.

    The first bad image raises ``InvalidImageError`` naming its index (and id).
    """
    out: list[PreparedImage | np.ndarray] = []
    for i, image in enumerate(request.images):
        try:
            out.append(to_gray(image.content) if image.detect else recognizer.prepare(image.content))
        except InvalidImageError as exc:
            label = f"image {i}" + (f" (id {image.id!r})" if image.id else "")
            raise InvalidImageError(exc.reason, f"{label}: {exc}") from exc
    return out


async def prepare_off_loop(
    recognizer: Recognizer, request: ocr_pb2.RecognizeRequest, executor: Executor
) -> list[PreparedImage | np.ndarray]:
    """:func:`prepare_request`, inline for small requests (cheaper than a thread hop), else on ``executor``."""
    if sum(len(im.content) for im in request.images) <= INLINE_PREPARE_BYTES:
        return prepare_request(recognizer, request)
    return await asyncio.get_running_loop().run_in_executor(executor, prepare_request, recognizer, request)


#: Reads lines through the caller's batching: ``read(images, options, bulk=False)``; ``bulk`` marks a page's lines.
ReadLines = Callable[..., Awaitable[list[Result]]]


async def read_request(
    prepared: Sequence[PreparedImage | np.ndarray], options: ReadOptions, read: ReadLines,
    page_reader: Callable[[], Awaitable[PageReader]], executor: Executor,
) -> list[Result | list[Line]]:
    """Every image's reading: a ``Result`` for a line, the lines found for a page (``detect``).

    ``read`` reads lines through the caller's batching; page detection runs on
    ``executor`` (not the inference thread, so crops keep flowing meanwhile),
    and every page line goes through ``read`` too, marked ``bulk`` so that
    other requests' crops do not wait behind a whole page.
    """
    lines = [i for i, p in enumerate(prepared) if isinstance(p, PreparedImage)]
    pages = [i for i, p in enumerate(prepared) if not isinstance(p, PreparedImage)]

    async def read_lines() -> list[Result]:
        return await read([prepared[i] for i in lines], options) if lines else []  # type: ignore[misc]

    async def read_pages() -> list[list[Line]]:
        if not pages:
            return []
        grays = [prepared[i] for i in pages]
        return await _read_pages(await page_reader(), grays, options, read, executor)  # type: ignore[arg-type]

    line_results, page_lines = await asyncio.gather(read_lines(), read_pages())
    readings: list[Result | list[Line]] = [[] for _ in prepared]
    for i, result in zip(lines, line_results):
        readings[i] = result
    for i, found in zip(pages, page_lines):
        readings[i] = found
    return readings


async def _read_pages(reader: PageReader, grays: Sequence[np.ndarray], options: ReadOptions, read: ReadLines,
                      executor: Executor) -> list[list[Line]]:
    loop = asyncio.get_running_loop()
    cuts: list[Cut] = []
    for page, gray in enumerate(grays):
        cuts += await loop.run_in_executor(executor, reader.cut, gray, page)
    plain = replace(options, min_confidence=None)  # applied after the darkened second reading
    results = await read([c.image for c in cuts], plain, bulk=True) if cuts else []
    looks = reader.second_looks(cuts, results, options.allowlist is not None or options.constraint is not None)
    again = await read([view.image for _, view in looks], plain, bulk=True) if looks else []
    return reader.finish(cuts, results, looks, again, len(grays), options.constraint is None, options.min_confidence)


def _chars(chars: Sequence[CharResult], char_details: bool) -> list[ocr_pb2.Char]:
    if not char_details:
        return []
    return [ocr_pb2.Char(text=c.text, confidence=c.confidence, x_start=c.x_start, x_end=c.x_end) for c in chars]


def recognition(image_id: str, result: Result, char_details: bool) -> ocr_pb2.Recognition:
    """One result message (characters only when the request asked for them)."""
    greedy = result.unconstrained
    return ocr_pb2.Recognition(
        id=image_id, text=result.text, confidence=result.confidence, chars=_chars(result.chars, char_details),
        unconstrained_text=greedy.text if greedy else "", unconstrained_confidence=greedy.confidence if greedy else 0.0,
        rejected=result.rejected,
    )


def page_recognition(image_id: str, lines: Sequence[Line], char_details: bool) -> ocr_pb2.Recognition:
    """The result message of a page: its lines, their texts joined by newlines, the lowest line confidence."""
    return ocr_pb2.Recognition(
        id=image_id,
        text=page_text(lines),
        confidence=page_confidence(lines),
        lines=[
            ocr_pb2.Line(box=[ocr_pb2.Point(x=x, y=y) for x, y in line.box], text=line.text,
                         confidence=line.confidence, chars=_chars(line.chars, char_details), rejected=line.rejected)
            for line in lines
        ],
    )


def recognize_response(
    request: ocr_pb2.RecognizeRequest, model: str, readings: Sequence[Result | list[Line]]
) -> ocr_pb2.RecognizeResponse:
    """The response to ``request``: one recognition per image, in request order."""
    return ocr_pb2.RecognizeResponse(
        model=model,
        results=[
            recognition(im.id, r, request.char_details) if isinstance(r, Result)
            else page_recognition(im.id, r, request.char_details)
            for im, r in zip(request.images, readings)
        ],
    )


def list_models_response(recognizers: Mapping[str, Recognizer], default: str) -> ocr_pb2.ListModelsResponse:
    """What ``ListModels`` answers: every model the server can serve, with its state, and the default.

    Loaded models in full; then, as ``loadable``, the registered models and those of the models folder that a
    request naming them would load (what is known without loading them: a registered model's source, checksum
    and input height; a folder model's file).
    """
    models = [
        ocr_pb2.ModelInfo(
            name=name,
            alphabet=r.charset.alphabet,
            input_height=r.input_height,
            source=r.model.source,
            checksum=r.model.sha256,
            device=str(r.device),
            precision=r.precision,
            calibrated=r.calibration is not None,
            fallback=r.model.fallback.model.name if r.model.fallback else "",
            state="loaded",
            runtime=r.runtime,
        )
        for name, r in sorted(recognizers.items())
    ]
    for name, spec in sorted(MODEL_SPECS.items()):
        if name not in recognizers:
            models.append(ocr_pb2.ModelInfo(name=name, input_height=spec.input_height, source=spec.source,
                                            checksum=spec.sha256, state="loadable"))
    for name in folder_models():
        if name not in recognizers and name not in MODEL_SPECS:
            path = find_model_file(name)
            models.append(ocr_pb2.ModelInfo(name=name, source=f"models folder: {path}", state="loadable"))
    return ocr_pb2.ListModelsResponse(models=models, default_model=default)
