//! `GET /openapi.json`: the API described as OpenAPI 3.0, for clients and API tooling.

use axum::Json;
use serde_json::{json, Value};

pub async fn openapi() -> Json<Value> {
    Json(document())
}

fn error_response(description: &str) -> Value {
    json!({ "description": description,
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

pub fn document() -> Value {
    json!({
        "openapi": "3.0.3",
        "info": { "title": "coincast", "version": env!("CARGO_PKG_VERSION"),
                  "description": "Crypto price forecasts from the champion model, with split-conformal intervals." },
        "paths": {
            "/predict": { "post": {
                "summary": "Forecast one coin and horizon from its newest hour",
                "requestBody": { "required": true, "content": { "application/json": {
                    "schema": { "$ref": "#/components/schemas/PredictRequest" } } } },
                "responses": {
                    "200": { "description": "The forecast", "content": { "application/json": {
                        "schema": { "$ref": "#/components/schemas/PredictResponse" } } } },
                    "400": error_response("Malformed JSON or wrong field types"),
                    "404": error_response("Unknown coin or model type"),
                    "413": error_response("Body larger than serve.max_body_bytes"),
                    "415": error_response("Body is not JSON"),
                    "422": error_response("hours_ahead outside 1..24"),
                    "503": error_response("No model yet, incomplete data, or overloaded")
                } } },
            "/predict/batch": { "post": {
                "summary": "Backtest: a forecast for every hour of a range, with actuals where known",
                "requestBody": { "required": true, "content": { "application/json": {
                    "schema": { "$ref": "#/components/schemas/BatchRequest" } } } },
                "responses": {
                    "200": { "description": "The forecasts" },
                    "400": error_response("Malformed JSON or wrong field types"),
                    "404": error_response("Unknown coin or model type"),
                    "422": error_response("Dates unparsable or reversed, range over 90 days, hours_ahead outside 1..24"),
                    "503": error_response("No model yet")
                } } },
            "/health": { "get": { "summary": "Liveness", "responses": { "200": { "description": "Alive" } } } },
            "/ready": { "get": { "summary": "Readiness: a champion is loaded and the data is fresh",
                "responses": { "200": { "description": "Ready" }, "503": error_response("Not ready, with every reason") } } },
            "/models/status": { "get": { "summary": "The champion and the data behind it",
                "responses": { "200": { "description": "Status" } } } },
            "/metrics": { "get": { "summary": "Prometheus metrics (text format 0.0.4)",
                "responses": { "200": { "description": "Metrics", "content": { "text/plain": {} } } } } },
            "/api/pipeline/runs": { "post": {
                "summary": "Queue a run now: ingest (the default) or retrain",
                "security": [ { "bearer": [] } ],
                "requestBody": { "required": false, "content": { "application/json": { "schema": {
                    "type": "object", "additionalProperties": false,
                    "properties": { "job": { "type": "string", "enum": ["ingest", "retrain"], "default": "ingest" } } } } } },
                "responses": { "202": { "description": "Queued" },
                               "400": error_response("Malformed JSON"),
                               "401": error_response("Missing or wrong bearer token"),
                               "404": error_response("Off: no serve.api_token configured"),
                               "422": error_response("Unknown job") } } },
            "/api/models/{model_id}/promote": { "post": {
                "summary": "Make a registered model champion (force: also one that failed the gate); served at once",
                "security": [ { "bearer": [] } ],
                "parameters": [ { "name": "model_id", "in": "path", "required": true, "schema": { "type": "string" } } ],
                "requestBody": { "required": false, "content": { "application/json": { "schema": {
                    "type": "object", "additionalProperties": false,
                    "properties": { "force": { "type": "boolean", "default": false } } } } } },
                "responses": { "200": { "description": "The new and the previous champion" },
                               "400": error_response("Malformed JSON"),
                               "401": error_response("Missing or wrong bearer token"),
                               "404": error_response("Unknown model, or off: no serve.api_token configured"),
                               "409": error_response("Refused by the gate, artifact unusable, or a concurrent change") } } },
            "/api/models/rollback": { "post": {
                "summary": "Give the champion role back to the champion before the current one, along the champion history (again: further back); `{\"force\": true}` for one that failed the gate; served at once",
                "security": [ { "bearer": [] } ],
                "responses": { "200": { "description": "The new and the previous champion" },
                               "401": error_response("Missing or wrong bearer token"),
                               "404": error_response("Off: no serve.api_token configured"),
                               "409": error_response("Nothing to roll back to, or the previous champion failed the gate (force it)") } } },
            "/api/admin/backup": { "post": {
                "summary": "An online backup: a tar of a consistent copy of the database (BACKUP.json, coincast.duckdb, models/); `coincast backup` writes it, `coincast restore` reads it",
                "security": [ { "bearer": [] } ],
                "responses": { "200": { "description": "The archive", "content": { "application/x-tar": {} } },
                               "401": error_response("Missing or wrong bearer token"),
                               "404": error_response("Off: no serve.api_token configured") } } },
            "/api/exports": { "post": {
                "summary": "Publish the read-only copy now (data_dir/published/: coincast.duckdb and one Parquet file per table)",
                "security": [ { "bearer": [] } ],
                "responses": { "200": { "description": "What was published: version, paths, tables with row counts, bytes, seconds" },
                               "401": error_response("Missing or wrong bearer token"),
                               "404": error_response("Off: no serve.api_token configured") } } },
            "/api/sql": { "post": {
                "summary": "One read statement (SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN) on the published copy, in a sandbox; ?format=csv for CSV",
                "security": [ { "bearer": [] } ],
                "requestBody": { "required": true, "content": { "application/json": { "schema": {
                    "type": "object", "additionalProperties": false, "required": ["sql"],
                    "properties": { "sql": { "type": "string" }, "limit": { "type": "integer", "minimum": 1 } } } } } },
                "responses": { "200": { "description": "columns (name, type), rows, truncated, elapsed_ms, published" },
                               "400": error_response("Bad SQL"),
                               "401": error_response("Missing, wrong or expired token (a token of the sql scope; serve.sql_token, else serve.read_token)"),
                               "403": error_response("Not a single read statement, or a way out of the sandbox; or no token on a non-loopback bind"),
                               "408": error_response("Interrupted after serve.sql_timeout_secs"),
                               "413": error_response("Query over serve.max_body_bytes"),
                               "503": error_response("Nothing published yet") } } },
            "/api/audit": { "get": {
                "summary": "The audit trail: per token name (events, SQL statements, refused or failed, last), and the newest 500 events; ?who=NAME for one name. Admin scope",
                "security": [ { "bearer": [] } ],
                "parameters": [ { "name": "who", "in": "query", "required": false, "schema": { "type": "string" } } ],
                "responses": { "200": { "description": "who, tokens, events (at, instance, token, channel, action, statement, outcome, duration_ms, client), elsewhere" },
                               "401": error_response("Missing or wrong bearer token"),
                               "403": error_response("A token of a lower scope"),
                               "404": error_response("Off: no admin token configured (serve.api_token or serve.tokens_file)") } } },
            "/openapi.json": { "get": { "summary": "This document", "responses": { "200": { "description": "OpenAPI 3.0" } } } }
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "PredictRequest": { "type": "object", "additionalProperties": false, "properties": {
                    "coin_id": { "type": "string", "default": "bitcoin" },
                    "hours_ahead": { "type": "integer", "minimum": 1, "maximum": 24, "default": 1 },
                    "model_type": { "type": "string", "description": "lstm or champion; default the champion" } } },
                "BatchRequest": { "type": "object", "additionalProperties": false,
                    "required": ["start_date", "end_date"], "properties": {
                    "coin_id": { "type": "string", "default": "bitcoin" },
                    "start_date": { "type": "string", "description": "YYYY-MM-DD or RFC 3339" },
                    "end_date": { "type": "string", "description": "YYYY-MM-DD (day included) or RFC 3339" },
                    "hours_ahead": { "type": "integer", "minimum": 1, "maximum": 24, "default": 1 },
                    "model_type": { "type": "string" } } },
                "PredictResponse": { "type": "object", "properties": {
                    "coin_id": { "type": "string" },
                    "timestamp": { "type": "string", "format": "date-time" },
                    "predicted_price": { "type": "number" },
                    "confidence_interval": { "type": "object", "properties": {
                        "lower": { "type": "number" }, "upper": { "type": "number" }, "level": { "type": "number", "description": "nominal coverage" }, "drawn_at_level": { "type": "number", "description": "the conformal level the interval is drawn at (online coverage control)" } } },
                    "model_type": { "type": "string" },
                    "prediction_horizon_hours": { "type": "integer" },
                    "model_version": { "type": "string" },
                    "as_of": { "type": "string", "format": "date-time" },
                    "current_price": { "type": "number" } } },
                "Error": { "type": "object", "properties": { "error": { "type": "object", "properties": {
                    "code": { "type": "string" }, "message": { "type": "string" } } } } }
            }
        }
    })
}
