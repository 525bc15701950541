"""Latency: measuring backends, the block latency database, profiling and prediction.

Submodules are imported where used (onnxruntime, TensorRT and torch-heavy code stay lazy), so
importing this package is cheap. Every figure these modules return says whether it was measured
(`"measured": true`) or predicted (`"measured": false`).
"""
