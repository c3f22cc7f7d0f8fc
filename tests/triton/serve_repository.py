"""Serve one model of a Triton model repository made by `netc export triton` on a real
`tritonserver`, for the tests. Runs in the separate Triton environment (`.venv-triton`:
nvidia-pytriton, whose bundled server has the python backend only, with numpy < 2).

The server runs the repository's `model.onnx` on onnxruntime inside the python backend,
with the shapes, dtypes, `max_batch_size`, dynamic batching and instance count of the
exported `config.pbtxt`, parsed with Triton's own `ModelConfig` message. The official
image's onnxruntime backend reads the same repository directly (docs/deploy.md).

    python serve_repository.py REPO/NAME... --http-port P --grpc-port Q --metrics-port R
    python serve_repository.py REPO/NAME... --parse   # print the parsed configs as JSON

Prints NETC-TRITON-READY when serving; stops on SIGTERM/SIGINT or when stdin closes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2

NUMPY_TYPES = {"TYPE_FP32": np.float32, "TYPE_FP64": np.float64, "TYPE_FP16": np.float16,
               "TYPE_INT8": np.int8, "TYPE_INT16": np.int16, "TYPE_INT32": np.int32, "TYPE_INT64": np.int64,
               "TYPE_UINT8": np.uint8, "TYPE_BOOL": np.bool_}


def parse(model_dir: Path) -> model_config_pb2.ModelConfig:
    config = model_config_pb2.ModelConfig()
    text_format.Parse((model_dir / "config.pbtxt").read_text(), config)  # raises on any unknown field
    return config


def bind(triton, model_dir: Path) -> None:
    """Bind one exported model to the server as its config describes it."""
    import onnxruntime as ort
    from pytriton.decorators import batch
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor

    config = parse(model_dir)
    dtype_name = model_config_pb2.DataType.Name
    session = ort.InferenceSession(str(model_dir / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    outputs = [o.name for o in config.output]

    def run(**inputs):
        rows = len(next(iter(inputs.values())))
        print(f"EXECUTE {config.name} {rows}", flush=True)  # the tests see how requests were batched
        return dict(zip(outputs, session.run(outputs, inputs)))

    infer = batch(run) if config.max_batch_size > 0 else (lambda requests: [run(**r) for r in requests])

    def tensors(entries):
        return [Tensor(name=e.name, dtype=NUMPY_TYPES[dtype_name(e.data_type)], shape=tuple(e.dims))
                for e in entries]

    batcher = None
    if config.HasField("dynamic_batching"):
        dyn = config.dynamic_batching
        batcher = DynamicBatcher(max_queue_delay_microseconds=dyn.max_queue_delay_microseconds,
                                 preferred_batch_size=list(dyn.preferred_batch_size) or None)
    instances = sum(group.count for group in config.instance_group) or 1
    triton.bind(model_name=config.name, infer_func=[infer] * instances, inputs=tensors(config.input),
                outputs=tensors(config.output),
                config=ModelConfig(max_batch_size=config.max_batch_size, batching=config.max_batch_size > 0,
                                   **({"batcher": batcher} if batcher else {})))


def serve(model_dirs: list[Path], http_port: int, grpc_port: int, metrics_port: int) -> None:
    from pytriton.triton import Triton, TritonConfig

    triton_config = TritonConfig(http_address="127.0.0.1", http_port=http_port, grpc_address="127.0.0.1",
                                 grpc_port=grpc_port, metrics_port=metrics_port, allow_metrics=False)
    with Triton(config=triton_config) as triton:
        for model_dir in model_dirs:
            bind(triton, model_dir)
        triton.run()
        print("NETC-TRITON-READY", flush=True)
        sys.stdin.read()  # serve until the test closes our stdin (or kills us)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model_dirs", type=Path, nargs="+")
    parser.add_argument("--parse", action="store_true")
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--metrics-port", type=int, default=8002)
    args = parser.parse_args()
    if args.parse:
        configs = [json_format.MessageToDict(parse(d), preserving_proto_field_name=True) for d in args.model_dirs]
        print(json.dumps(configs))
    else:
        serve(args.model_dirs, args.http_port, args.grpc_port, args.metrics_port)


if __name__ == "__main__":
    main()
