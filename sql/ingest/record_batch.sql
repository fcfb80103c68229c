-- Every response (and every failed attempt) is recorded, with its exact body, before anything
-- judges it (src/ingest/batch.rs). Params: source, coin_id, vs_currency, request, range_from,
-- range_to, fetched_at, http_status, body, body_bytes, body_sha256, state, reason, run_id.
INSERT INTO raw_batches (source, coin_id, vs_currency, request, range_from, range_to,
                         fetched_at, http_status, body, body_bytes, body_sha256,
                         state, reason, run_id, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now())
RETURNING batch_id
