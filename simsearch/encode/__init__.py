"""Text -> unit float32 vectors: model resolution, pooling, precision, the torch encoder and the ONNX query encoder."""
