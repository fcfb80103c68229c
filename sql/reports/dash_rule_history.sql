-- Each rule's checks and failures per day.
SELECT rule, strftime(date_trunc('day', checked_at), '%Y-%m-%d') AS day,
       count(*) AS checks, count(*) FILTER (WHERE NOT passed) AS failures
FROM quality_results
GROUP BY ALL
ORDER BY rule, day
