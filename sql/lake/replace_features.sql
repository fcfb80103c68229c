-- Every feature row of this writer's coins again: the feature SQL changed since its last version
-- (or this is its first). Other writers' coins are theirs to replace.
DELETE FROM lake.features
WHERE (coin_id, vs_currency) IN (SELECT DISTINCT coin_id, vs_currency FROM features);
INSERT INTO lake.features SELECT * FROM features;
