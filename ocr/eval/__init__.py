"""Scoring readings: lines (``lines``, ``metrics``: accuracy, CER, calibration) and pages (``pages``,
``page_metrics``)."""
