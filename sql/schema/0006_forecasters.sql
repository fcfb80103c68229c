-- Every kind of forecaster is registered (persistence with its interval methods, HAR, ridge, the
-- LSTM), one model version is the floor, and each registration keeps the gate's conditions.
-- Runs on a checkpointed copy of the file (src/store/file.rs), so ALTER is safe here.

-- The floor serves every coin the champion does not cover, and everything before a champion
-- exists. Exactly one version has it (the newest floor registration).
ALTER TABLE model_versions ADD COLUMN floor BOOLEAN DEFAULT false;
-- The gate's verdict, condition by condition with its numbers (JSON array), and the run's
-- decision in one sentence.
ALTER TABLE model_versions ADD COLUMN verdict JSON;
-- The newest origin hour the model was fitted on: its age counts from here.
ALTER TABLE model_versions ADD COLUMN trained_until TIMESTAMPTZ;
-- What it was fitted from: point model, interval scale, hyperparameters (JSON).
ALTER TABLE model_versions ADD COLUMN recipe JSON;
