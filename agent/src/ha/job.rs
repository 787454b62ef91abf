//! The background database job: whether one runs, waiting for it, and taking in what it reports.

use super::execute::JobReport;
use super::run::Agent;
use crate::db::Database;
use std::time::Duration;

impl<D: Database> Agent<D> {
    /// Whether a background database job is running.
    pub(super) fn busy(&self) -> bool {
        self.job.as_ref().is_some_and(|j| !j.is_finished())
    }

    /// Waits, at most `limit`, for the running background job to end.
    pub(super) async fn wait_for_job(&mut self, limit: Duration) {
        if let Some(job) = self.job.as_mut() {
            if let Ok(report) = tokio::time::timeout(limit, job).await {
                self.job = None; // a finished JoinHandle must not be polled again
                self.remember_job(report.unwrap_or_default());
            }
        }
    }

    /// Takes in the report of the background job, if it has ended.
    pub(super) async fn collect_job(&mut self) {
        if let Some(job) = self.job.take_if(|job| job.is_finished()) {
            let report = job.await.unwrap_or_else(|e| {
                tracing::error!(error = %e, "the database job panicked");
                JobReport::default()
            });
            self.remember_job(report);
        }
    }

    /// Takes in what a database job reports.
    pub(super) fn remember_job(&mut self, report: JobReport) {
        for event in report.events {
            self.memory.job_reported(event);
        }
    }
}
