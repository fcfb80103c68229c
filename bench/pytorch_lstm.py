#!/usr/bin/env python3
"""The PyTorch-Python side of `make bench`, and the GPU anchor of scripts/gpu-check.sh.

Times training steps (Adam, MSE on all horizons, gradient-norm clipping at 1.0) and the
single-sample forward latency, exactly as benches/pipeline.rs does with tch. By default one random
batch is reused on the CPU (the default coincast LSTM's shapes, same threads). With `--resident N`
a training set of N samples is uploaded to `--device` once and every batch is drawn from it by
index on the device, as coincast's trainer does (src/model/lstm/data.rs). Prints
`pytorch_train_samples_per_s=<x> pytorch_forward_p50_us=<x> pytorch_forward_p99_us=<x> ...`.
"""
import argparse
import time

import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, in_dim, hidden, layers, horizon):
        super().__init__()
        self.lstm = nn.LSTM(in_dim, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, horizon)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1, :])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lookback", type=int, default=48)
    ap.add_argument("--in-dim", type=int, default=23)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--horizon", type=int, default=24)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="cpu | cuda")
    ap.add_argument("--resident", type=int, default=0,
                    help="samples uploaded once and indexed per batch (0: reuse one batch)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    net = Net(a.in_dim, a.hidden, a.layers, a.horizon).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    n = a.resident or a.batch
    xs = torch.randn(n, a.lookback, a.in_dim, device=dev)
    ys = torch.randn(n, a.horizon, device=dev)

    def batch():
        if not a.resident:
            return xs, ys
        idx = torch.randint(0, n, (a.batch,), device=dev)
        return xs[idx], ys[idx]

    def step():
        x, y = batch()
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.mse_loss(net(x), y)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(10):  # warm-up (and cuDNN's plan choice)
        step()
    sync()
    t = time.perf_counter()
    for _ in range(a.steps):
        step()
    sync()
    elapsed = time.perf_counter() - t
    train = a.steps * a.batch / elapsed
    one = xs[:1]
    lat = []
    with torch.no_grad():
        for _ in range(50):
            net(one)
        for _ in range(1000):
            s = time.perf_counter()
            net(one)
            sync()
            lat.append((time.perf_counter() - s) * 1e6)
    lat.sort()
    device = torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu"
    print(f"pytorch_train_samples_per_s={train:.1f} pytorch_step_ms={elapsed / a.steps * 1e3:.2f} "
          f"pytorch_forward_p50_us={lat[500]:.1f} pytorch_forward_p99_us={lat[990]:.1f} "
          f"batch={a.batch} hidden={a.hidden} layers={a.layers} lookback={a.lookback} "
          f"resident={a.resident} torch={torch.__version__} threads={torch.get_num_threads()} "
          f"device={device!r}")


if __name__ == "__main__":
    main()
