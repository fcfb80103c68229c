#!/usr/bin/env python3
"""The pandas side of `make bench`: the same feature set on the same rows.

Reads market_data from a Parquet file (written by the Rust bench from the DuckDB file), then times
only the feature computation (per coin: reindex to the hourly grid, every design.md feature), as
the median of --repeat runs. Prints one line: `pandas_seconds=<median> rows=<n> coins=<k>`.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "parity"))
from reference import pandas_features  # noqa: E402


def build(md: pd.DataFrame) -> int:
    rows = 0
    for _, g in md.groupby("coin_id", sort=False):
        g = g.set_index("ts").sort_index()
        grid = g.reindex(pd.date_range(g.index[0], g.index[-1], freq="h"))
        rows += len(pandas_features(grid).loc[g.index])
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("parquet")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    md = pd.read_parquet(args.parquet, columns=["coin_id", "ts", "price", "market_cap", "total_volume"])
    times = []
    rows = 0
    for _ in range(args.repeat):
        t = time.perf_counter()
        rows = build(md)
        times.append(time.perf_counter() - t)
    print(f"pandas_seconds={statistics.median(times):.4f} rows={rows} coins={md.coin_id.nunique()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
