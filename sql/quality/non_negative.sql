-- name: non_negative
-- severity: error
-- description: market caps and volumes are finite and not negative
-- threshold: 0
SELECT series, idx, ts_ms, value
FROM staged_points
WHERE batch_id = getvariable('batch_id')
  AND series IN ('market_caps', 'total_volumes')
  AND value IS NOT NULL
  AND (NOT isfinite(value) OR value < 0)
ORDER BY series, idx
