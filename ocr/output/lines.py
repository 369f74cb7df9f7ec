"""How a read line is printed: a tab-separated row or a JSON object (``ocr read``, ``ocr client``)."""

from __future__ import annotations

import json

from crnn.decode import Result


def format_reading(image: str, result: Result, as_json: bool) -> str:
    """One output line: ``image<TAB>text<TAB>confidence``, or a JSON object with those keys.

    With a constraint, JSON adds the ``unconstrained`` (greedy) text and confidence; a rejected reading
    (below ``--min-confidence``) has no text and is marked ``rejected``.
    """
    if as_json:
        record = {"image": image, "text": result.text, "confidence": round(result.confidence, 4)}
        if result.rejected:
            record["rejected"] = True
        if result.unconstrained is not None:
            record["unconstrained"] = {"text": result.unconstrained.text,
                                       "confidence": round(result.unconstrained.confidence, 4)}
        return json.dumps(record, ensure_ascii=False)
    return f"{image}\t{result.text}\t{result.confidence:.4f}" + ("\trejected" if result.rejected else "")
