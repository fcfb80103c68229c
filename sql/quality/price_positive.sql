-- name: price_positive
-- severity: error
-- description: every price is a finite number above zero
-- threshold: 0
SELECT series, idx, ts_ms, value
FROM staged_points
WHERE batch_id = getvariable('batch_id')
  AND series = 'prices'
  AND value IS NOT NULL
  AND (NOT isfinite(value) OR value <= 0)
ORDER BY idx
