-- A replica's SQL reads the lake (attached read-only as `lake`): the tables it holds keep the
-- live file's names, so one query runs unchanged on the writer and on a replica. Views are bound
-- when a query runs, so each query reads the newest dataset version. The lake's own names stay
-- open too: `lake.raw_bodies`, `lake.snapshots()`, `FROM lake.market_data AT (VERSION => n)`.
CREATE VIEW market_data AS FROM lake.market_data;
CREATE VIEW features AS FROM lake.features;
CREATE VIEW quality_results AS FROM lake.quality_results;
CREATE VIEW raw_batches AS FROM lake.raw_batches;
