-- What the current data's features profile depends on: it changes whenever features are built
-- (new hours) or market data is merged (a correction rebuilds the features after it). Cheap: the
-- profile itself aggregates every feature over every row; this is two max() and a count.
SELECT (SELECT count(*) FROM features)::VARCHAR
    || '/' || coalesce((SELECT max(ts) FROM features)::VARCHAR, '-')
    || '/' || coalesce((SELECT max(merged_at) FROM market_data)::VARCHAR, '-')
