"""netc's middle end: elaboration into the IR, shape rules, passes and ONNX lowering."""
