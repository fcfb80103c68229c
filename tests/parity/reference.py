"""design.md's features in pandas: the reference for the parity test and the pandas benchmark."""
import numpy as np
import pandas as pd


def pandas_features(g: pd.DataFrame) -> pd.DataFrame:
    """design.md's definitions on an hourly grid (index = every hour, NaN where missing)."""
    p, v, m = g["price"], g["total_volume"], g["market_cap"]
    ts = g.index
    f = pd.DataFrame(index=ts)
    f["hour"] = ts.hour
    f["day_of_week"] = ts.day_of_week
    f["day"] = ts.day
    f["month"] = ts.month
    f["hour_sin"] = np.sin(2 * np.pi * f["hour"] / 24)
    f["hour_cos"] = np.cos(2 * np.pi * f["hour"] / 24)
    f["day_sin"] = np.sin(2 * np.pi * f["day_of_week"] / 7)
    f["day_cos"] = np.cos(2 * np.pi * f["day_of_week"] / 7)
    f["month_sin"] = np.sin(2 * np.pi * f["month"] / 12)
    f["month_cos"] = np.cos(2 * np.pi * f["month"] / 12)
    for k in (1, 3, 6, 12, 24):
        f[f"price_lag_{k}h"] = p.shift(k)
        f[f"volume_lag_{k}h"] = v.shift(k)
        f[f"market_cap_lag_{k}h"] = m.shift(k)
    for w in (3, 6, 12, 24):
        r = p.rolling(w)
        f[f"price_rolling_mean_{w}h"] = r.mean()
        f[f"price_rolling_std_{w}h"] = r.std()
        f[f"price_rolling_min_{w}h"] = r.min()
        f[f"price_rolling_max_{w}h"] = r.max()
        f[f"volume_rolling_mean_{w}h"] = v.rolling(w).mean()
    for k in (1, 3, 6, 12, 24):
        f[f"price_change_{k}h"] = p / p.shift(k) - 1
    f["log_return_1h"] = np.log(p / p.shift(1))
    for k in (3, 6, 12):
        f[f"momentum_{k}h"] = p - p.shift(k)
    for w in (6, 12, 24):
        f[f"volatility_{w}h"] = f["price_change_1h"].rolling(w).std()
    f["volume_price_ratio"] = v / p
    for k in (1, 6, 24):
        f[f"volume_change_{k}h"] = v / v.shift(k) - 1
    f["price_volume_corr_24h"] = p.rolling(24).corr(v)
    for s in (6, 12, 24):
        f[f"sma_{s}h"] = p.rolling(s).mean()
        f[f"ema_{s}h"] = p.ewm(span=s, adjust=True).mean()
    mid, sd = p.rolling(12).mean(), p.rolling(12).std()
    f["bb_middle"] = mid
    f["bb_upper"] = mid + 2 * sd
    f["bb_lower"] = mid - 2 * sd
    f["bb_width"] = (f["bb_upper"] - f["bb_lower"]) / mid
    f["price_bb_position"] = (p - f["bb_lower"]) / (f["bb_upper"] - f["bb_lower"])
    lo, hi = p.rolling(24).min(), p.rolling(24).max()
    f["price_position_24h"] = (p - lo) / (hi - lo)
    lr2 = np.log(p / p.shift(1)) ** 2
    for w in (6, 24, 168):
        f[f"realized_vol_{w}h"] = np.sqrt(lr2.rolling(w).mean())
    # The same hour of the day on the last 30 days, of the week on the last 8 weeks.
    f["seasonal_vol_hour_30d"] = np.sqrt(sum(lr2.shift(24 * k) for k in range(30)) / 30)
    f["seasonal_vol_week_8w"] = np.sqrt(sum(lr2.shift(168 * k) for k in range(8)) / 8)
    return f
