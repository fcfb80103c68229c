-- Per coin, the hours of market data only in the newer version ({b}: added or revised) and only in
-- the older one ({a}: removed or revised).
WITH a AS (FROM lake.market_data AT (VERSION => {a})),
     b AS (FROM lake.market_data AT (VERSION => {b})),
     only_b AS (FROM b EXCEPT ALL FROM a),
     only_a AS (FROM a EXCEPT ALL FROM b)
SELECT coin_id,
       (SELECT count(*) FROM only_b WHERE only_b.coin_id = c.coin_id) AS in_newer,
       (SELECT count(*) FROM only_a WHERE only_a.coin_id = c.coin_id) AS in_older
FROM (SELECT coin_id FROM a UNION SELECT coin_id FROM b) c
ORDER BY coin_id
