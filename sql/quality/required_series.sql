-- name: required_series
-- severity: error
-- description: the body is a market_chart object with the arrays prices, market_caps and total_volumes
-- threshold: 0
SELECT req.series, coalesce(s.present, false) AS present
FROM (VALUES ('prices'), ('market_caps'), ('total_volumes')) AS req(series)
LEFT JOIN staged_series s ON s.series = req.series AND s.batch_id = getvariable('batch_id')
WHERE s.present IS NOT TRUE
