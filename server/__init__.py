"""The gRPC ``ocr.v1.Recognizer`` service: servicer, dynamic batcher, lifecycle, metrics."""
