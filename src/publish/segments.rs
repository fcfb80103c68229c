//! Served forecasts come home: a replica cannot write the writer's file, so its prediction log
//! writes each segment as a Parquet file at `predictions/` (`BucketSink`), and the writer takes
//! them in (`take_in`) under the `predictions` contract: a segment taken twice counts once, so
//! a file is deleted only after it was taken, and taking it again after a crash adds nothing.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use duckdb::{params, Connection};

use super::{io_error, PublishError};
use crate::config::Settings;
use crate::lake::Bucket;
use crate::monitor::predictions::{take_segment, Segment, ServedForecast, Taken};

/// Where segments wait for the writer.
const DIR: &str = "predictions";

/// The object a segment travels as: `<instance>@<rest>.parquet` for the segment id
/// `<instance>/<rest>` (an instance name has neither `/` nor `@`, and object stores keep `@`
/// as it is).
fn object_name(segment_id: &str) -> String {
    format!("{}.parquet", segment_id.replacen('/', "@", 1))
}

/// The segment id and instance an object name stands for.
fn segment_of(name: &str) -> Option<(String, String)> {
    let (instance, rest) = name.strip_suffix(".parquet")?.split_once('@')?;
    Some((format!("{instance}/{rest}"), instance.to_string()))
}

/// A replica's prediction log writes here: one Parquet file per segment.
pub struct BucketSink {
    bucket: Bucket,
    scratch: Connection,
    dir: PathBuf,
}

impl BucketSink {
    /// The sink of `publish.url` (a replica needs one).
    pub fn of(settings: &Settings) -> Result<Self, PublishError> {
        let url = settings.publish.url().unwrap_or_default();
        let dir = settings.data_dir.join("tmp");
        std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        let scratch = Connection::open_in_memory()?;
        scratch.execute_batch(include_str!("../../sql/publish/segment.sql"))?;
        Ok(Self {
            bucket: Bucket::at_url(url, &settings.s3)?,
            scratch,
            dir,
        })
    }

    /// Writes `segment` as one Parquet file and uploads it whole.
    pub fn write(&self, segment: &Segment) -> Result<(), PublishError> {
        let name = object_name(segment.segment_id);
        let file = self.dir.join(&name);
        let written = self
            .to_parquet(segment, &file)
            .and_then(|()| Ok(self.bucket.put_file(&format!("{DIR}/{name}"), &file)?));
        let _ = std::fs::remove_file(&file);
        written
    }

    fn to_parquet(&self, segment: &Segment, file: &Path) -> Result<(), PublishError> {
        self.scratch.execute_batch("DELETE FROM segment")?;
        {
            let mut appender = self.scratch.appender("segment")?;
            for r in segment.rows {
                appender.append_row(params![
                    segment.instance,
                    segment.segment_id,
                    r.requested_at,
                    r.last_requested_at,
                    r.served_count as i64,
                    r.request_id,
                    r.coin_id,
                    r.vs_currency,
                    r.model_id,
                    r.model_type,
                    r.horizon,
                    r.as_of,
                    r.current_price,
                    r.predicted_price,
                    r.lower,
                    r.upper,
                    r.level,
                    r.latency_ms,
                    r.drift_ratio,
                ])?;
            }
            appender.flush()?;
        }
        self.scratch.execute(
            &format!(
                "COPY segment TO {} (FORMAT parquet)",
                crate::lake::literal(&file.display().to_string())
            ),
            [],
        )?;
        Ok(())
    }
}

/// What one intake took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Intake {
    pub segments: usize,
    pub requests: u64,
    /// Segments taken before (a crash between taking and deleting): deleted, nothing added.
    pub already_taken: usize,
}

/// Takes every waiting segment into `predictions` on `conn`, then deletes its file.
pub(super) fn take_in(
    bucket: &Bucket,
    conn: &Connection,
    tmp: &Path,
) -> Result<Intake, PublishError> {
    let mut intake = Intake::default();
    for name in bucket.list(DIR)? {
        let Some((segment_id, instance)) = segment_of(&name) else {
            continue;
        };
        let object = format!("{DIR}/{name}");
        let Some(body) = bucket.get_bytes(&object)? else {
            continue;
        };
        let file = tmp.join(&name);
        std::fs::write(&file, body).map_err(io_error(&file))?;
        let rows = read_segment(conn, &file);
        let _ = std::fs::remove_file(&file);
        let rows = rows?;
        let taken = take_segment(
            conn,
            &Segment {
                segment_id: &segment_id,
                instance: &instance,
                rows: &rows,
            },
        )?;
        match taken {
            Taken::Added { requests } => {
                intake.segments += 1;
                intake.requests += requests;
            }
            Taken::AlreadyTaken => intake.already_taken += 1,
        }
        bucket.delete(&object)?;
    }
    Ok(intake)
}

fn read_segment(conn: &Connection, file: &Path) -> Result<Vec<ServedForecast>, PublishError> {
    let mut stmt = conn.prepare(
        "SELECT requested_at, last_requested_at, served_count, request_id, coin_id, vs_currency,
                model_id, model_type, horizon, as_of, current_price, predicted_price, lower,
                upper, level, latency_ms, drift_ratio
         FROM read_parquet(?)",
    )?;
    let rows = stmt
        .query_map([file.display().to_string()], |r| {
            Ok(ServedForecast {
                requested_at: r.get::<_, DateTime<Utc>>(0)?,
                last_requested_at: r.get::<_, DateTime<Utc>>(1)?,
                served_count: r.get::<_, i64>(2)?.max(0) as u64,
                request_id: r.get(3)?,
                coin_id: r.get(4)?,
                vs_currency: r.get(5)?,
                model_id: r.get(6)?,
                model_type: r.get(7)?,
                horizon: r.get(8)?,
                as_of: r.get::<_, DateTime<Utc>>(9)?,
                current_price: r.get(10)?,
                predicted_price: r.get(11)?,
                lower: r.get(12)?,
                upper: r.get(13)?,
                level: r.get(14)?,
                latency_ms: r.get(15)?,
                drift_ratio: r.get(16)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_id_travels_in_its_object_name() {
        let name = object_name("replica-1:8000/1764800000000000-3");
        assert_eq!(name, "replica-1:8000@1764800000000000-3.parquet");
        assert_eq!(
            segment_of(&name),
            Some((
                "replica-1:8000/1764800000000000-3".to_string(),
                "replica-1:8000".to_string()
            ))
        );
        assert_eq!(segment_of("stray.parquet"), None);
        assert_eq!(segment_of("a@b.json"), None);
    }
}
