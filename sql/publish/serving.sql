-- The serving publication's rows (crate::publish): what /predict and the pages of a replica read,
-- copied from the writer's database into `serving`, a new file with the same schema (COPY FROM
-- DATABASE ... (SCHEMA) made its tables, views and sequences).
--
-- Every table of the schema is named here: copied whole (small, or what the pages list in full),
-- cut to a window (the bulk), or left empty with its reason. A test holds the list to the schema.
-- {columns} is replaced by the served models' feature columns (`, "name"` each). Variables, set
-- before this runs:
--   series_from: the first hour of each coin's series (publish.series_days back from the newest);
--   pages_from:  the first time the pages' histories reach back to (35 days: a month of API calls).
--
-- Left empty: staged_series, staged_points, staged_rows (a batch in flight on the writer),
-- feature_backlog (the writer's work), prediction_segments (the writer's intake),
-- schema_migrations (the writer's own bookkeeping), audit_log (the writer's trail of who did
-- what: its audit page reads it there).

INSERT INTO serving.market_data
SELECT * FROM market_data WHERE ts >= getvariable('series_from');

-- Only the feature columns the served models read ({columns}: validated names, quoted; the
-- others stay NULL): a replica's series is the writer's, and most of the bytes stay home.
INSERT INTO serving.features BY NAME
SELECT coin_id, vs_currency, ts{columns} FROM features WHERE ts >= getvariable('series_from');

-- The registry and its history: the models and pages list every model. A served model's files
-- lie at models/<model_id> in the publication, whatever the writer's path.
INSERT INTO serving.model_versions
SELECT * REPLACE ('models/' || model_id AS artifact_path) FROM model_versions;
INSERT INTO serving.model_events SELECT * FROM model_events;
INSERT INTO serving.experiments SELECT * FROM experiments;
INSERT INTO serving.run_metrics SELECT * FROM run_metrics;
INSERT INTO serving.lake_writer SELECT * FROM lake_writer;
INSERT INTO serving.dataset_pins SELECT * FROM dataset_pins;

-- Coverage control and drift: the levels served now, and their recent history.
INSERT INTO serving.aci_state SELECT * FROM aci_state;
INSERT INTO serving.live_reliability SELECT * FROM live_reliability;
INSERT INTO serving.aci_log
SELECT * FROM aci_log WHERE logged_at >= getvariable('pages_from');
INSERT INTO serving.feature_psi
SELECT * FROM feature_psi WHERE computed_at >= getvariable('pages_from');

-- Served forecasts: live accuracy reads the last 7 days; the daily roll-up is small.
INSERT INTO serving.predictions
SELECT * FROM predictions WHERE target_ts >= getvariable('pages_from');
INSERT INTO serving.prediction_daily SELECT * FROM prediction_daily;

-- The pipeline's recent history, and its batches without their bodies (the API usage counts
-- the month's calls; a body stays with the writer and the lake).
INSERT INTO serving.pipeline_runs
SELECT * FROM pipeline_runs WHERE started_at >= getvariable('pages_from');
INSERT INTO serving.task_runs
SELECT * FROM task_runs WHERE run_id IN (SELECT run_id FROM serving.pipeline_runs);
INSERT INTO serving.raw_batches
SELECT * REPLACE (NULL AS body) FROM raw_batches WHERE fetched_at >= getvariable('pages_from');
INSERT INTO serving.quality_results
SELECT * FROM quality_results WHERE checked_at >= getvariable('pages_from');
INSERT INTO serving.quality_violations
SELECT * FROM quality_violations
WHERE batch_id IN (SELECT batch_id FROM serving.quality_results);
INSERT INTO serving.incidents SELECT * FROM incidents;
