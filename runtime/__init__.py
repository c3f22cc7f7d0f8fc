"""Running compiled models: onnxruntime sessions, benchmarks, and verification against the
independent NumPy reference interpreter."""
