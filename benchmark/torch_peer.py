"""The PyTorch peer of benchmark/torch.mjs: the same TorchScript model, run
the way PyTorch users serve it (torch.jit.load, inference_mode, one call per
batch), timed per call with the same inputs and the same protocol.

    python torch_peer.py MODEL DEVICE THREADS PLAN_JSON   ->  JSON on stdout
PLAN_JSON: {"<batch>": <calls>, ...}
"""
import json
import math
import sys
import time

import torch


def inputs(batch: int) -> torch.Tensor:
    # Row r, column k holds sin(r * 32 + k), as the Node side makes them.
    r = torch.arange(batch, dtype=torch.float64).unsqueeze(1)
    k = torch.arange(32, dtype=torch.float64).unsqueeze(0)
    return torch.sin(r * 32 + k).to(torch.float32)


def main() -> None:
    model_path, device, threads, plan = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
    torch.set_num_threads(threads)
    dev = torch.device(device)
    model = torch.jit.load(model_path, map_location=dev).eval()
    out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "batches": {}}
    with torch.inference_mode():
        for batch, calls in plan.items():
            b = int(batch)
            x_host = inputs(b)
            warm = max(3, calls // 10)
            times = []
            first = None
            for i in range(warm + calls):
                t0 = time.perf_counter_ns()
                # Host in, host out, as a server answers: the copy to and from the device counts.
                y = model(x_host.to(dev, non_blocking=False)).to("cpu")
                t1 = time.perf_counter_ns()
                if i >= warm:
                    times.append((t1 - t0) / 1000.0)
                if first is None:
                    first = y[0].tolist()
            times.sort()
            pick = lambda p: times[min(len(times) - 1, max(0, math.ceil(p * len(times)) - 1))]
            out["batches"][batch] = {"median_us": pick(0.5), "p99_us": pick(0.99), "calls": len(times), "row0": first}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
