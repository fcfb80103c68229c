-- The lake's tables, created once, when the lake is first attached (two writers running
-- CREATE TABLE IF NOT EXISTS at once conflict, so never by concurrent writers): the same
-- columns and types as the live file's, so a version hashes as the live rows did. Raw bodies
-- stay in the file (their sha256 and sizes come along) until cleanup moves them to raw_bodies.
-- A lake made by an older release gets the tables it lacks when a newer one first attaches it.
CREATE TABLE IF NOT EXISTS lake.market_data AS SELECT * FROM market_data LIMIT 0;
CREATE TABLE IF NOT EXISTS lake.features AS SELECT * FROM features LIMIT 0;
-- Batch ids are a data folder's own: the batch tables name the writer too.
CREATE TABLE IF NOT EXISTS lake.quality_results AS
SELECT *, CAST(NULL AS VARCHAR) AS writer_id FROM quality_results LIMIT 0;
CREATE TABLE IF NOT EXISTS lake.raw_batches AS
SELECT * EXCLUDE (body, body_archived), CAST(NULL AS VARCHAR) AS writer_id FROM raw_batches LIMIT 0;
-- One row that every version's transaction replaces: two versions committed at once then always
-- conflict (a delete against a delete), so DuckLake refuses one, which is tried again on the newer
-- state; a version's content hash, computed inside its transaction, is thus always that of the
-- snapshot it becomes, also with many writers.
CREATE TABLE IF NOT EXISTS lake.coincast_head (writer_id VARCHAR, committed_at TIMESTAMPTZ);
INSERT INTO lake.coincast_head
SELECT 'none', now() WHERE NOT EXISTS (FROM lake.coincast_head);
-- Raw bodies of merged batches that cleanup moved out of the live file (src/retention), per
-- writer (batch ids are a data folder's own), as zstd Parquet; checked against body_sha256.
CREATE TABLE IF NOT EXISTS lake.raw_bodies (
    writer_id VARCHAR, batch_id BIGINT, coin_id VARCHAR, fetched_at TIMESTAMPTZ,
    body_sha256 VARCHAR, body BLOB
);
CALL lake.set_option('parquet_compression', 'zstd', table_name => 'raw_bodies');
-- The versions each writer keeps (its models' training versions, its pins): no writer's cleanup
-- expires them. A writer replaces its own rows.
CREATE TABLE IF NOT EXISTS lake.coincast_refs (writer_id VARCHAR, version BIGINT, reason VARCHAR);
