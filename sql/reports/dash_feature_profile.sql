-- A profile of every feature over the rows of some coins up to an hour.
-- Parameters: coins (comma-separated), until (epoch seconds).
SUMMARIZE SELECT * EXCLUDE (coin_id, vs_currency, ts)
FROM features
WHERE list_contains(string_split(?, ','), coin_id) AND ts <= to_timestamp(?)
