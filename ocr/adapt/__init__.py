"""``ocr adapt``: few-shot fine-tuning with synthetic text and augmentation, proven on held-out images."""
