-- Rows of each table at one version ({v}: the snapshot id, a number).
SELECT (SELECT count(*) FROM lake.market_data AT (VERSION => {v})),
       (SELECT count(*) FROM lake.features AT (VERSION => {v})),
       (SELECT count(*) FROM lake.quality_results AT (VERSION => {v})),
       (SELECT count(*) FROM lake.raw_batches AT (VERSION => {v}))
