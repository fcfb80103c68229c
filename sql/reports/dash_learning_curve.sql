-- Per-epoch losses of a training run. Parameter: run_id.
SELECT step, name, value FROM run_metrics
WHERE run_id = ? AND name IN ('train_loss', 'val_loss') AND step > 0
ORDER BY step
