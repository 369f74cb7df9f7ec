"""One module per `ocr` command: what it runs and prints, given the typed config ``ocr.cli`` parsed.

Commands import libraries (``crnn``, ``textdet``, ``server``, ``ocr.data``, ``ocr.eval``, ``ocr.output``,
``ocr.adapt``), never each other.
"""
