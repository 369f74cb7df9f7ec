"""Labelling a folder: draft readings (``ocr label``), a review page, and the labels ``ocr adapt`` trains on."""
