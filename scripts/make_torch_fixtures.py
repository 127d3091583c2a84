"""TorchScript and ONNX twins of small seeded networks, for the torch backend's
tests and benchmark (__test__/fixtures/torch). Each TorchScript file carries an
`oxinfer.json` extra file declaring its inputs' and outputs' names, element
types and dims, which TorchScript itself does not record.

    python3 -m venv /tmp/tv && /tmp/tv/bin/pip install -r scripts/requirements-torch.txt
    /tmp/tv/bin/python scripts/make_torch_fixtures.py
"""
import json
import os
import sys
from typing import Dict, Tuple

import torch
from torch import Tensor, nn

OUT = os.path.join(os.path.dirname(__file__), "..", "__test__", "fixtures", "torch")


def declare(inputs, outputs):
    d = {"inputs": inputs}
    if outputs is not None:
        d["outputs"] = outputs
    return {"oxinfer.json": json.dumps(d)}


class Mlp(nn.Module):
    """A tabular classifier: 32 features -> 256 -> 256 -> 10 logits."""

    def __init__(self):
        super().__init__()
        self.l1 = nn.Linear(32, 256)
        self.l2 = nn.Linear(256, 256)
        self.l3 = nn.Linear(256, 10)

    def forward(self, features: Tensor) -> Tensor:
        return self.l3(torch.relu(self.l2(torch.relu(self.l1(features)))))


class Gru(nn.Module):
    """One recurrent step: a frame and the state in, a score and the next state out."""

    def __init__(self):
        super().__init__()
        self.cell = nn.GRUCell(8, 16)
        self.head = nn.Linear(16, 1)

    def forward(self, x: Tensor, state: Tensor) -> Tuple[Tensor, Tensor]:
        h = self.cell(x, state)
        return torch.sigmoid(self.head(h)), h


class Mixed(nn.Module):
    """Several element types and a dict output: int64 ids, a half-precision
    scale and a bfloat16 bias in; named sums out."""

    def forward(self, ids: Tensor, scale: Tensor, bias: Tensor) -> Dict[str, Tensor]:
        total = ids.sum(dim=1)
        scaled = scale * 2.0
        return {"total": total, "scaled": scaled, "shifted": bias + 1.0, "count": (ids > 0).sum(dim=1).to(torch.int32)}


class InPlace(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        x /= 255.0
        return x


class LinearClassifier(nn.Module):
    """ONNX-ML's LinearClassifier with a softmax, then the L1 Normalizer skl2onnx adds."""

    def __init__(self, coef: Tensor, intercept: Tensor):
        super().__init__()
        self.register_buffer("coef", coef)
        self.register_buffer("intercept", intercept)

    def forward(self, float_input: Tensor) -> Tuple[Tensor, Tensor]:
        p = torch.softmax(float_input @ self.coef.t() + self.intercept, dim=1)
        p = p / p.abs().sum(dim=1, keepdim=True)
        return p.argmax(dim=1), p


def penguins_twin():
    import onnx
    from onnx import helper, numpy_helper  # noqa: F401

    path = os.path.join(os.path.dirname(__file__), "..", "__test__", "fixtures", "penguins", "penguins.onnx")
    node = next(n for n in onnx.load(path).graph.node if n.op_type == "LinearClassifier")
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    assert attrs["post_transform"] == b"SOFTMAX" and list(attrs["classlabels_ints"]) == [0, 1, 2]
    intercept = torch.tensor(list(attrs["intercepts"]), dtype=torch.float32)
    coef = torch.tensor(list(attrs["coefficients"]), dtype=torch.float32).reshape(len(intercept), -1)
    return LinearClassifier(coef, intercept).eval()


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(7)

    mlp = Mlp().eval()
    mlp_decl = declare([{"name": "features", "type": "float32", "dims": [-1, 32]}],
                       [{"name": "logits", "type": "float32", "dims": [-1, 10]}])
    torch.jit.save(torch.jit.script(mlp), os.path.join(OUT, "mlp.pt"), _extra_files=mlp_decl)
    # The same network with nothing declared: names come from forward's signature.
    torch.jit.save(torch.jit.script(mlp), os.path.join(OUT, "mlp_plain.pt"))
    torch.onnx.export(mlp, (torch.zeros(1, 32),), os.path.join(OUT, "mlp.onnx"), input_names=["features"],
                      output_names=["logits"], dynamic_axes={"features": {0: "batch"}, "logits": {0: "batch"}},
                      opset_version=17, dynamo=False)

    gru = Gru().eval()
    gru_decl = declare([{"name": "x", "type": "float32", "dims": [-1, 8]}, {"name": "state", "type": "float32", "dims": [-1, 16]}],
                       [{"name": "score", "type": "float32", "dims": [-1, 1]}, {"name": "next_state", "type": "float32", "dims": [-1, 16]}])
    torch.jit.save(torch.jit.script(gru), os.path.join(OUT, "gru.pt"), _extra_files=gru_decl)
    torch.onnx.export(gru, (torch.zeros(1, 8), torch.zeros(1, 16)), os.path.join(OUT, "gru.onnx"),
                      input_names=["x", "state"], output_names=["score", "next_state"],
                      dynamic_axes={n: {0: "batch"} for n in ["x", "state", "score", "next_state"]}, opset_version=17, dynamo=False)

    mixed_decl = declare(
        [{"name": "ids", "type": "int64", "dims": [-1, 4]}, {"name": "scale", "type": "float16", "dims": [-1]},
         {"name": "bias", "type": "bfloat16", "dims": [-1]}],
        [{"name": "total", "type": "int64", "dims": [-1]}, {"name": "scaled", "type": "float16", "dims": [-1]},
         {"name": "shifted", "type": "bfloat16", "dims": [-1]}, {"name": "count", "type": "int32", "dims": [-1]}])
    torch.jit.save(torch.jit.script(Mixed()), os.path.join(OUT, "mixed.pt"), _extra_files=mixed_decl)

    # A TorchScript twin of the shipped penguins classifier (scikit-learn's
    # LogisticRegression as ONNX), built from that model's own weights, so
    # the penguins pipeline can run on either backend.
    torch.jit.save(torch.jit.script(penguins_twin()), os.path.join(OUT, "penguins.pt"), _extra_files=declare(
        [{"name": "float_input", "type": "float32", "dims": [-1, 10]}],
        [{"name": "label", "type": "int64", "dims": [-1]}, {"name": "probabilities", "type": "float32", "dims": [-1, 3]}]))

    # The same with only its input declared: the output types are learnt by a
    # run on zeros at load (an int64 label and float32 probabilities).
    torch.jit.save(torch.jit.script(penguins_twin()), os.path.join(OUT, "penguins_inputs_only.pt"), _extra_files=declare(
        [{"name": "float_input", "type": "float32", "dims": [-1, 10]}], None))

    # A model that writes to its input in place (TorchScript keeps `x /= 255` in place).
    torch.jit.save(torch.jit.script(InPlace()), os.path.join(OUT, "in_place.pt"))

    # Not TorchScript: a plain pickle of the weights, as torch.save writes it.
    torch.save(mlp.state_dict(), os.path.join(OUT, "weights_only.pt"))

    # Reference outputs, computed by PyTorch itself, for the parity tests.
    g = torch.Generator().manual_seed(11)
    x = torch.randn(5, 32, generator=g)
    frames = torch.randn(4, 3, 8, generator=g)
    with torch.no_grad():
        logits = mlp(x)
        state = torch.zeros(3, 16)
        scores = []
        for t in range(4):
            s, state = gru(frames[t], state)
            scores.append(s.flatten().tolist())
    ref = {"features": x.flatten().tolist(), "logits": logits.flatten().tolist(),
           "frames": frames.flatten().tolist(), "scores": scores, "final_state": state.flatten().tolist(),
           "torch": torch.__version__}
    with open(os.path.join(OUT, "reference.json"), "w") as f:
        json.dump(ref, f)
    print("wrote", sorted(os.listdir(OUT)), file=sys.stderr)


if __name__ == "__main__":
    main()
