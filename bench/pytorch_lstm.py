#!/usr/bin/env python3
"""The PyTorch-Python side of `make bench`: the default coincast LSTM's shapes, same threads.

Times training steps (Adam, MSE on all horizons, gradient-norm clipping) on random batches and
the single-sample forward latency, exactly as benches/pipeline.rs does with tch. Prints
`pytorch_train_samples_per_s=<x> pytorch_forward_p50_us=<x> pytorch_forward_p99_us=<x>`.
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
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    net = Net(a.in_dim, a.hidden, a.layers, a.horizon)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.randn(a.batch, a.lookback, a.in_dim)
    y = torch.randn(a.batch, a.horizon)
    for _ in range(10):  # warm-up
        opt.zero_grad()
        nn.functional.mse_loss(net(x), y).backward()
        opt.step()
    t = time.perf_counter()
    for _ in range(a.steps):
        opt.zero_grad()
        loss = nn.functional.mse_loss(net(x), y)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
    train = a.steps * a.batch / (time.perf_counter() - t)
    one = torch.randn(1, a.lookback, a.in_dim)
    lat = []
    with torch.no_grad():
        for _ in range(50):
            net(one)
        for _ in range(1000):
            s = time.perf_counter()
            net(one)
            lat.append((time.perf_counter() - s) * 1e6)
    lat.sort()
    print(f"pytorch_train_samples_per_s={train:.1f} pytorch_forward_p50_us={lat[500]:.1f} "
          f"pytorch_forward_p99_us={lat[990]:.1f} torch={torch.__version__} threads={torch.get_num_threads()}")


if __name__ == "__main__":
    main()
