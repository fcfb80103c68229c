#!/usr/bin/env python3
"""Parity of coincast's SQL features with pandas, read through the Python duckdb client.

1. `coincast replay` loads real recorded data into a fresh DuckDB file.
2. This script opens that file read-only with the `duckdb` Python package (a real SQL client) and
   computes every feature of design.md with pandas on the same market_data rows.
3. pandas runs on each coin's series reindexed to the full hourly grid (NaN where an hour is
   missing), so its row-based shift/rolling/ewm mean exactly coincast's "hours, not rows"; on a
   gap-free stretch that is plain pandas on the rows. Every present hour is compared.

Tolerance: 1e-9 relative. Std-based features (rolling std, volatility, correlation, Bollinger)
pass within 1e-6 of pandas, or within 1e-9 of an exact two-pass computation (numpy over each
window): pandas' rolling variance is an online add/remove algorithm whose error grows along a
long series (it reports 2e-8 for three equal prices), and DuckDB's is the exact one there.
A NULL in DuckDB must be NaN or +-inf in pandas and vice versa.
Prints one line per feature and ends with `parity: N passed, M failed`; exits 1 on any failure.
"""
import argparse
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from reference import pandas_features



def _windows(x: np.ndarray, w: int) -> np.ndarray:
    pad = np.concatenate([np.full(w - 1, np.nan), x])
    return np.lib.stride_tricks.sliding_window_view(pad, w)


def exact_std(x: np.ndarray, w: int) -> np.ndarray:
    """Two-pass sample std of each window ending at a row (NaN if any value is missing)."""
    win = _windows(x, w)
    mean = win.mean(axis=1, keepdims=True)
    sd = np.sqrt(((win - mean) ** 2).sum(axis=1) / (w - 1))
    # Equal values: the mean itself carries rounding noise; the true std is 0.
    return np.where(sd <= 1e-12 * np.abs(mean[:, 0]), 0.0, sd)


def exact_corr(x: np.ndarray, y: np.ndarray, w: int) -> np.ndarray:
    wx, wy = _windows(x, w), _windows(y, w)
    dx = wx - wx.mean(axis=1, keepdims=True)
    dy = wy - wy.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (dx * dy).sum(axis=1) / np.sqrt((dx**2).sum(axis=1) * (dy**2).sum(axis=1))


def exact_std_features(g: pd.DataFrame) -> pd.DataFrame:
    """The std-based features with exact two-pass statistics, on the same hourly grid."""
    p = g["price"].to_numpy(float)
    v = g["total_volume"].to_numpy(float)
    f = pd.DataFrame(index=g.index)
    for w in (3, 6, 12, 24):
        f[f"price_rolling_std_{w}h"] = exact_std(p, w)
    change = p / np.concatenate([[np.nan], p[:-1]]) - 1
    for w in (6, 12, 24):
        f[f"volatility_{w}h"] = exact_std(change, w)
    f["price_volume_corr_24h"] = exact_corr(p, v, 24)
    mid = pd.Series(p, index=g.index).rolling(12).mean().to_numpy()
    sd = f["price_rolling_std_12h"].to_numpy()
    f["bb_upper"], f["bb_lower"] = mid + 2 * sd, mid - 2 * sd
    with np.errstate(invalid="ignore", divide="ignore"):
        f["bb_width"] = 4 * sd / mid
        f["price_bb_position"] = (p - (mid - 2 * sd)) / (4 * sd)
    return f


def relative_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    err = np.abs(a - b)
    # Relative error; near zero (returns, momentum, equal prices) an absolute 1e-12 suffices.
    return np.where(err <= 1e-12, 0.0, err / np.maximum(np.abs(b), 1e-300))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--data", required=True, help="folder of <coin>.json (shared/data/real/coingecko)")
    ap.add_argument("--coins", default="bitcoin,solana")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        run = subprocess.run(
            [args.binary, "--data-dir", tmp, "replay", args.data, "--coins", args.coins],
            capture_output=True, text=True,
        )
        if run.returncode != 0:
            print(run.stdout, run.stderr, sep="\n")
            print(f"parity: 0 passed, 1 failed (replay exited {run.returncode})")
            return 1
        con = duckdb.connect(str(Path(tmp) / "coincast.duckdb"), read_only=True)
        cols = [r[0] for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'features' "
            "ORDER BY ordinal_position").fetchall()]
        feature_cols = [c for c in cols if c not in ("coin_id", "vs_currency", "ts")]
        worst = {c: 0.0 for c in feature_cols}
        worst_exact = {}
        failures = {}
        rows = 0
        for coin in args.coins.split(","):
            md = con.execute(
                "SELECT epoch_ms(ts) AS ms, price, market_cap, total_volume FROM market_data "
                "WHERE coin_id = ? ORDER BY ts", [coin]).df()
            db = con.execute(
                f"SELECT epoch_ms(ts) AS ms, {', '.join(feature_cols)} FROM features "
                "WHERE coin_id = ? ORDER BY ts", [coin]).df()
            md.index = pd.to_datetime(md.pop("ms"), unit="ms", utc=True)
            db.index = pd.to_datetime(db.pop("ms"), unit="ms", utc=True)
            grid = md.reindex(pd.date_range(md.index[0], md.index[-1], freq="h"))
            expected = pandas_features(grid).loc[md.index]
            exact = exact_std_features(grid).loc[md.index]
            assert len(db) == len(md), f"{coin}: {len(db)} feature rows for {len(md)} hours"
            rows += len(db)
            for c in feature_cols:
                if c not in expected:
                    failures[c] = "no pandas definition (not in design.md?)"
                    continue
                a = db[c].to_numpy(dtype=float)
                b = expected[c].to_numpy(dtype=float)
                a_null, b_null = np.isnan(a), ~np.isfinite(b)
                x = exact[c].to_numpy(dtype=float) if c in exact else None
                if x is not None:
                    # Where pandas' drift turns an exact 0/0 into a number, the exact reference decides.
                    b_null = np.where(a_null != b_null, ~np.isfinite(x), b_null)
                if (a_null != b_null).any():
                    i = int(np.argmax(a_null != b_null))
                    failures[c] = f"{coin}: NULL mismatch at {db.index[i]}: coincast {a[i]} pandas {b[i]}"
                    continue
                ok = ~a_null
                if not ok.any():
                    continue
                rel = relative_error(a[ok], b[ok])
                worst[c] = max(worst[c], float(rel.max()))
                if x is not None:
                    ok &= np.isfinite(b)
                    rel = relative_error(a[ok], b[ok]) if ok.any() else rel[:0]
                    rel_exact = relative_error(a[ok], x[ok])
                    worst_exact[c] = max(worst_exact.get(c, 0.0), float(rel_exact.max()))
                    bad = (rel > 1e-6) & (rel_exact > 1e-9)
                else:
                    bad = rel > 1e-9
                if bad.any():
                    i = int(np.argmax(bad))
                    ref = f", exact {x[ok][i]!r}" if x is not None else ""
                    failures[c] = (f"{coin} {db.index[ok][i]}: relative error {rel[i]:.3g} "
                                   f"(coincast {a[ok][i]!r}, pandas {b[ok][i]!r}{ref})")
        missing = [c for c in pandas_features(grid.iloc[:30]).columns if c not in feature_cols]
        for c in missing:
            failures[c] = "defined in design.md but missing from the features table"
        for c in feature_cols + missing:
            if c in failures:
                status = "FAIL " + failures[c]
            else:
                status = f"ok   max rel err vs pandas {worst.get(c, 0):.2e}"
                if c in worst_exact:
                    status += f", vs exact two-pass {worst_exact[c]:.2e}"
            print(f"{c:<26} {status}")
        passed = len(feature_cols) - sum(1 for c in feature_cols if c in failures)
        print(f"compared {rows} hours of {args.coins} read through duckdb {duckdb.__version__}")
        print(f"parity: {passed} passed, {len(failures)} failed")
        return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
