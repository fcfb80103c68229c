-- What a run recorded in raw_batches, whatever its tasks returned (an extract that gave up
-- returns an error, not its counts): requests sent to CoinGecko (every attempt), and attempts
-- recorded as failed batches. Param: run_id.
SELECT count(*) FILTER (WHERE source = 'coingecko'),
       count(*) FILTER (WHERE state = 'failed')
FROM raw_batches
WHERE run_id = ?
