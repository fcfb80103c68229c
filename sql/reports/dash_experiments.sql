-- Training runs, newest first, with the models each registered (a selection run registers the
-- champion, and the floor when it is another model).
SELECT e.run_id, e.state, strftime(e.started_at, '%Y-%m-%d %H:%M') AS started,
       epoch(coalesce(e.finished_at, now())) - epoch(e.started_at) AS seconds,
       CAST(e.params AS VARCHAR), coalesce(e.device, ''), coalesce(e.dataset_version, ''),
       coalesce(string_agg(m.model_id, ', ' ORDER BY m.model_id), ''), coalesce(e.error, ''),
       e.family
FROM experiments e LEFT JOIN model_versions m USING (run_id)
GROUP BY e.run_id, e.state, e.started_at, e.finished_at, e.params, e.device, e.dataset_version,
         e.error, e.family
ORDER BY e.run_id DESC
LIMIT 50
