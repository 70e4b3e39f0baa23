"""Export toolchain: ONNX, quantisation, OpenVINO, target profiles, accuracy gate, bundles."""
