-- A model version enters the registry (src/model/registry.rs). Params: model_id, run_id, family,
-- dataset_version, artifact_path (relative to the data folder), score, metrics (JSON),
-- training_stats (JSON), alias, gate_passed, gate_reason, floor, verdict (JSON), trained_until (hours
-- since the epoch), recipe (JSON).
INSERT INTO model_versions (model_id, run_id, family, created_at, dataset_version,
    artifact_path, score, metrics, training_stats, alias, gate_passed, gate_reason,
    floor, verdict, trained_until, recipe)
VALUES (?, ?, ?, now(), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, to_timestamp(? * 3600), ?)
