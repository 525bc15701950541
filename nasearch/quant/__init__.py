"""INT8 quantization: post-training (QDQ via ONNX Runtime), hybrid (sensitive layers kept float), QAT."""
