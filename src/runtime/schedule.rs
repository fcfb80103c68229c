//! When the worker runs what: the jobs, each one's cron schedule (validated with the settings; an empty
//! schedule turns the job off) and what triggered a run.

use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::config::Settings;

/// What a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// extract → quality_gate → transform → monitor.
    Ingest,
    /// Train, evaluate and register through the gate.
    Retrain,
}

impl Job {
    pub fn name(self) -> &'static str {
        match self {
            Job::Ingest => "ingest",
            Job::Retrain => "retrain",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [Job::Ingest, Job::Retrain]
            .into_iter()
            .find(|j| j.name() == name)
    }
}

/// What started a run (the `trigger` recorded with it and its metrics label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The catch-up run when the server starts.
    Startup,
    /// The job's cron schedule.
    Schedule,
    /// `POST /api/pipeline/runs`.
    Api,
}

impl Trigger {
    pub fn name(self) -> &'static str {
        match self {
            Trigger::Startup => "startup",
            Trigger::Schedule => "schedule",
            Trigger::Api => "api",
        }
    }
}

/// The jobs that run on a schedule.
pub struct Schedules {
    jobs: Vec<(Job, cron::Schedule)>,
}

impl Schedules {
    pub fn from_settings(settings: &Settings) -> Self {
        let jobs = [
            (Job::Ingest, &settings.serve.pipeline_schedule),
            (Job::Retrain, &settings.serve.retrain_schedule),
        ]
        .into_iter()
        .filter_map(|(job, text)| cron::Schedule::from_str(text.trim()).ok().map(|s| (job, s)))
        .collect();
        Self { jobs }
    }

    pub fn runs(&self, job: Job) -> bool {
        self.jobs.iter().any(|(j, _)| *j == job)
    }

    /// The next scheduled time after now and every job due then, in schedule order (ingest
    /// first); `None` when nothing is scheduled.
    pub fn next(&self) -> Option<(DateTime<Utc>, Vec<Job>)> {
        let upcoming: Vec<(Job, DateTime<Utc>)> = self
            .jobs
            .iter()
            .filter_map(|(job, s)| s.upcoming(Utc).next().map(|t| (*job, t)))
            .collect();
        let at = upcoming.iter().map(|(_, t)| *t).min()?;
        let due = upcoming
            .into_iter()
            .filter(|(_, t)| *t == at)
            .map(|(job, _)| job)
            .collect();
        Some((at, due))
    }
}
