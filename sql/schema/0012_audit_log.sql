-- The audit trail (src/access/audit.rs): every admin action and every SQL statement, over HTTP
-- and the Postgres wire. `token` is the token's name (`serve.api_token` and the like for the
-- three settings, `anonymous` where no token is needed), never the token.
CREATE TABLE audit_log (
    occurred_at  TIMESTAMPTZ NOT NULL,
    instance     VARCHAR NOT NULL,   -- the server that did it (serve.instance)
    token        VARCHAR NOT NULL,   -- who: the token's name
    channel      VARCHAR NOT NULL,   -- http, postgres
    action       VARCHAR NOT NULL,   -- the route (POST /api/models/{model_id}/promote) or sql
    statement    VARCHAR,            -- the SQL or the path, cut to 1,000 characters
    outcome      VARCHAR NOT NULL,   -- the HTTP status, or ok / the error's code
    duration_ms  DOUBLE NOT NULL,
    client       VARCHAR             -- the client's address
);
