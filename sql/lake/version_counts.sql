-- Rows of each lake table, at one version ({at}: ` AT (VERSION => n)`) or as the current
-- transaction sees them ({at} empty: inside a commit).
SELECT (SELECT count(*) FROM lake.market_data{at}),
       (SELECT count(*) FROM lake.features{at}),
       (SELECT count(*) FROM lake.quality_results{at}),
       (SELECT count(*) FROM lake.raw_batches{at})
