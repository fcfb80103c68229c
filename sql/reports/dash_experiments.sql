-- Training runs, newest first, with the model each registered.
SELECT e.run_id, e.state, strftime(e.started_at, '%Y-%m-%d %H:%M') AS started,
       epoch(coalesce(e.finished_at, now())) - epoch(e.started_at) AS seconds,
       CAST(e.params AS VARCHAR), coalesce(e.device, ''), coalesce(e.dataset_version, ''),
       coalesce(m.model_id, ''), coalesce(e.error, '')
FROM experiments e LEFT JOIN model_versions m USING (run_id)
ORDER BY e.run_id DESC
LIMIT 50
