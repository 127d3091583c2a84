"""Drives an oxinfer server with NVIDIA's tritonclient (HTTP), as a Triton
user's code would, and prints what it got as JSON for tritonclient.test.ts
to check against in-process runs. Usage: python tritonclient_check.py URL"""

import json
import sys

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

url = sys.argv[1]
client = httpclient.InferenceServerClient(url=url)
out = {}

out["live"] = client.is_server_live()
out["ready"] = client.is_server_ready()
out["server"] = client.get_server_metadata()
out["metadata"] = client.get_model_metadata("tiny_mlp")
out["config"] = client.get_model_config("tiny_mlp")
out["model_ready"] = client.is_model_ready("tiny_mlp")

x = np.array([[np.sin(r * 16 + i) for i in range(16)] for r in range(3)], dtype=np.float32)

# JSON tensors in and out.
inp = httpclient.InferInput("x", list(x.shape), "FP32")
inp.set_data_from_numpy(x, binary_data=False)
res = client.infer("tiny_mlp", [inp], outputs=[httpclient.InferRequestedOutput("y", binary_data=False)], request_id="json-1")
out["json"] = {"y": res.as_numpy("y").tolist(), "id": res.get_response()["id"]}

# Binary tensors in and out.
inp = httpclient.InferInput("x", list(x.shape), "FP32")
inp.set_data_from_numpy(x, binary_data=True)
res = client.infer("tiny_mlp", [inp], outputs=[httpclient.InferRequestedOutput("y", binary_data=True)], model_version="1")
out["binary"] = {"y": res.as_numpy("y").tolist()}

# A pipeline with BYTES inputs and outputs.
rows = json.loads(sys.argv[2])
tensors = []
for name, kind in [("island", "BYTES"), ("bill_length_mm", "FP64"), ("bill_depth_mm", "FP64"), ("flipper_length_mm", "FP64"), ("body_mass_g", "FP64"), ("sex", "BYTES")]:
    if kind == "BYTES":
        arr = np.array([("" if r.get(name) is None else str(r[name])).encode() for r in rows], dtype=np.object_)
    else:
        arr = np.array([r[name] if isinstance(r.get(name), (int, float)) else np.nan for r in rows], dtype=np.float64)
    t = httpclient.InferInput(name, [len(rows)], kind)
    t.set_data_from_numpy(arr, binary_data=(name != "island"))
    tensors.append(t)
res = client.infer("penguins", tensors, outputs=[httpclient.InferRequestedOutput("label", binary_data=True), httpclient.InferRequestedOutput("scores", binary_data=False)])
out["pipeline"] = {"label": [b.decode() for b in res.as_numpy("label").tolist()], "scores": res.as_numpy("scores").tolist()}

# Repository: index, unload, load.
out["index"] = client.get_model_repository_index()
client.unload_model("tiny_mlp")
out["after_unload_ready"] = client.is_model_ready("tiny_mlp")
try:
    client.infer("tiny_mlp", [inp])
    out["infer_unloaded"] = "succeeded"
except InferenceServerException as e:
    out["infer_unloaded"] = str(e)
client.load_model("tiny_mlp")
out["after_load_ready"] = client.is_model_ready("tiny_mlp")

# Statistics.
out["stats"] = client.get_inference_statistics("penguins")

# A bad request: the client raises with the server's message.
try:
    bad = httpclient.InferInput("x", [1, 3], "FP32")
    bad.set_data_from_numpy(np.zeros((1, 3), dtype=np.float32))
    client.infer("tiny_mlp", [bad])
    out["bad"] = "succeeded"
except InferenceServerException as e:
    out["bad"] = str(e)

print(json.dumps(out))
