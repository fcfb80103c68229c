-- name: numeric_types
-- severity: error
-- description: every point is a [timestamp, value] pair of numbers (a null value is judged by null_share)
-- threshold: 0
SELECT series, idx, raw AS element,
       CASE WHEN raw LIKE '%"NaN"%' OR raw LIKE '%Infinity"%' THEN 'not a finite number'
            WHEN json_type(raw) <> 'ARRAY' OR json_array_length(raw) <> 2 THEN 'not a [timestamp, value] pair'
            ELSE 'not a number' END AS problem,
       json_type(raw) AS element_type,
       CASE WHEN json_type(raw) = 'ARRAY' THEN json_type(raw, '$[0]') END AS timestamp_type,
       CASE WHEN json_type(raw) = 'ARRAY' THEN json_type(raw, '$[1]') END AS value_type
FROM staged_points
WHERE batch_id = getvariable('batch_id')
  AND raw IS NOT NULL
  AND NOT (json_type(raw) = 'ARRAY'
           AND json_array_length(raw) = 2
           AND json_type(raw, '$[0]') IN ('BIGINT', 'UBIGINT', 'DOUBLE')
           AND json_type(raw, '$[1]') IN ('BIGINT', 'UBIGINT', 'DOUBLE', 'NULL'))
ORDER BY series, idx
