"""Export of the trained models for deployment without PyTorch (ONNX)."""
