-- Every coin with features in the quote currency (parameter: vs_currency).
SELECT DISTINCT coin_id FROM features WHERE vs_currency = ? ORDER BY coin_id
