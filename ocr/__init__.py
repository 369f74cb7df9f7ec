"""ocr: the command line and jobs (read, eval, bench) around the ``crnn`` recogniser."""
