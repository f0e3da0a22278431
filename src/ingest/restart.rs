//! Starting a streaming pipeline again after a transient failure: the lake's disk full, or the
//! brokers away for longer than the window producer's `message.timeout.ms`.
//!
//! The lake is the truth, so a run started again resumes where the last one's commits end,
//! as after a kill -9: nothing is lost or landed twice. Waiting it out in the process spares an
//! orchestrator's give-up (Docker's `restart: on-failure:N` is spent within seconds) and keeps
//! `serve`'s API up meanwhile. The waits are those of Flink's exponential-delay restart
//! strategy: 1 s, doubling up to a minute, starting over after a run that lasted five.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::IngestError;
use crate::live::{LiveStats, PipelineState};

/// The waits between runs: `first` after the first failure, doubling with each failure in a
/// row up to `longest`; a run that lasted `healthy` before it failed starts them (and
/// `retry_for`) over.
#[derive(Debug, Clone, Copy)]
struct Waits {
    first: Duration,
    longest: Duration,
    healthy: Duration,
}

const WAITS: Waits = Waits {
    first: Duration::from_secs(1),
    longest: Duration::from_secs(60),
    healthy: Duration::from_secs(300),
};

/// Run `attempt` until it ends well, fails with an error that is not transient, has failed
/// for longer than `retry_for` in a row (`None`: no limit), or `stop` turns true while it
/// waits to start again. `waiting` hears of each failure gone past and the wait before the
/// next attempt. A run that cannot reach the brokers counts as transient only after a first
/// one started: at the start it is the user's to see (a wrong `--brokers`). Ok: how many times
/// it was started again; Err: the last failure.
pub async fn with_restarts<Run>(
    retry_for: Option<Duration>,
    stop: &watch::Receiver<bool>,
    attempt: impl FnMut() -> Run,
    waiting: impl FnMut(&IngestError, Duration),
) -> Result<u64, IngestError>
where
    Run: Future<Output = Result<(), IngestError>>,
{
    restarts_after(WAITS, retry_for, stop, attempt, waiting).await
}

/// [`with_restarts`], told to whoever watches the pipeline (`/healthz`, `/metrics`): each
/// attempt sets `state` running, each transient failure counts in `stats` and sets `state`
/// restarting (with the error and the wait), and the end sets it finished or failed.
pub async fn supervised<Run>(
    retry_for: Option<Duration>,
    stop: &watch::Receiver<bool>,
    (stats, state): (&LiveStats, &watch::Sender<PipelineState>),
    mut attempt: impl FnMut() -> Run,
    mut waiting: impl FnMut(&IngestError, Duration),
) -> Result<u64, IngestError>
where
    Run: Future<Output = Result<(), IngestError>>,
{
    let outcome = with_restarts(
        retry_for,
        stop,
        || {
            state.send_replace(PipelineState::Running);
            attempt()
        },
        |error, wait| {
            waiting(error, wait);
            stats.restarts.fetch_add(1, Ordering::Relaxed);
            state.send_replace(PipelineState::Restarting {
                error: error.to_string(),
                wait,
            });
        },
    )
    .await;
    state.send_replace(match &outcome {
        Ok(_) => PipelineState::Finished,
        Err(e) => PipelineState::Failed(e.to_string()),
    });
    outcome
}

async fn restarts_after<Run>(
    waits: Waits,
    retry_for: Option<Duration>,
    stop: &watch::Receiver<bool>,
    mut attempt: impl FnMut() -> Run,
    mut waiting: impl FnMut(&IngestError, Duration),
) -> Result<u64, IngestError>
where
    Run: Future<Output = Result<(), IngestError>>,
{
    let mut stop = stop.clone();
    let mut restarts = 0;
    let mut wait = waits.first;
    let mut failing_since = None;
    loop {
        let began = Instant::now();
        let error = match attempt().await {
            Ok(()) => return Ok(restarts),
            Err(error) => error,
        };
        if began.elapsed() >= waits.healthy {
            wait = waits.first;
            failing_since = None;
        }
        // Failing in a row since the first failure (not since that run began).
        let since = *failing_since.get_or_insert_with(Instant::now);
        let transient = error.is_transient() || (restarts > 0 && error.is_unreachable());
        if !transient || retry_for.is_some_and(|limit| since.elapsed() >= limit) || *stop.borrow() {
            return Err(error);
        }
        waiting(&error, wait);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            Ok(_) = stop.wait_for(|stopping| *stopping) => return Err(error),
        }
        restarts += 1;
        wait = (wait * 2).min(waits.longest);
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::path::PathBuf;

    use super::*;
    use crate::lake::LakeError;

    fn disk_full() -> IngestError {
        IngestError::Lake(LakeError::Io {
            path: PathBuf::from("lake/trades/f.parquet"),
            source: io::Error::from(io::ErrorKind::StorageFull),
        })
    }

    fn refused() -> IngestError {
        IngestError::Lake(LakeError::Io {
            path: PathBuf::from("lake/trades/f.parquet"),
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        })
    }

    fn unreachable() -> IngestError {
        IngestError::Kafka(crate::source::kafka::KafkaError::Unreachable {
            brokers: "127.0.0.1:9".into(),
            waited: Duration::from_secs(1),
            detail: "refused".into(),
        })
    }

    /// Waits of milliseconds: 1, 2, 4, 8, 8...
    const SHORT: Waits = Waits {
        first: Duration::from_millis(1),
        longest: Duration::from_millis(8),
        healthy: Duration::from_secs(300),
    };

    /// `attempt` answers each call from `outcomes` in turn; the waits it was told of.
    async fn run(
        retry_for: Option<Duration>,
        mut outcomes: Vec<Result<(), IngestError>>,
    ) -> (Result<u64, IngestError>, Vec<Duration>, usize) {
        let (_stop_tx, stop) = watch::channel(false);
        outcomes.reverse();
        let mut calls = 0;
        let mut waits = Vec::new();
        let result = restarts_after(
            SHORT,
            retry_for,
            &stop,
            || {
                calls += 1;
                std::future::ready(outcomes.pop().unwrap_or(Ok(())))
            },
            |_, wait| waits.push(wait),
        )
        .await;
        (result, waits, calls)
    }

    #[tokio::test]
    async fn a_full_disk_is_waited_out_with_doubling_waits() {
        let (result, waits, calls) = run(
            None,
            vec![Err(disk_full()), Err(disk_full()), Err(disk_full()), Ok(())],
        )
        .await;
        assert_eq!(result.unwrap(), 3);
        assert_eq!(calls, 4);
        let millis: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(millis, [1, 2, 4]);
    }

    #[tokio::test]
    async fn the_waits_stop_growing_at_the_longest() {
        let failures = (0..6).map(|_| Err(disk_full())).collect();
        let (result, waits, _) = run(None, failures).await;
        assert_eq!(result.unwrap(), 6);
        let millis: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(millis, [1, 2, 4, 8, 8, 8]);
        // The waits of darkpool itself: Flink's exponential-delay defaults.
        assert_eq!(WAITS.first, Duration::from_secs(1));
        assert_eq!(WAITS.longest, Duration::from_secs(60));
    }

    #[tokio::test]
    async fn an_error_that_is_not_transient_is_returned_at_once() {
        let (result, waits, calls) = run(None, vec![Err(refused()), Ok(())]).await;
        assert!(matches!(result, Err(IngestError::Lake(_))));
        assert!(waits.is_empty());
        assert_eq!(calls, 1);
    }

    #[tokio::test]
    async fn unreachable_brokers_end_a_first_run_but_not_a_restarted_one() {
        let (result, _, calls) = run(None, vec![Err(unreachable()), Ok(())]).await;
        assert!(result.unwrap_err().is_unreachable());
        assert_eq!(calls, 1);
        let (result, waits, calls) =
            run(None, vec![Err(disk_full()), Err(unreachable()), Ok(())]).await;
        assert_eq!(result.unwrap(), 2);
        assert_eq!((waits.len(), calls), (2, 3));
    }

    #[tokio::test]
    async fn retry_for_bounds_the_failures_in_a_row() {
        // The second failure comes at least 100 ms after the first, past the 25 ms allowed.
        let (stop_tx, stop) = watch::channel(false);
        let mut calls = 0;
        let result = restarts_after(
            Waits {
                first: Duration::from_millis(100),
                ..SHORT
            },
            Some(Duration::from_millis(25)),
            &stop,
            || {
                calls += 1;
                std::future::ready(Err(disk_full()))
            },
            |_, _| {},
        )
        .await;
        drop(stop_tx);
        assert!(result.unwrap_err().is_transient());
        assert_eq!(calls, 2);
        // No time at all: the first failure is the last.
        let (result, waits, _) = run(Some(Duration::ZERO), vec![Err(disk_full())]).await;
        assert!(result.is_err() && waits.is_empty());
    }

    #[tokio::test]
    async fn a_stop_during_a_wait_ends_it_with_the_failure() {
        let (stop_tx, stop) = watch::channel(false);
        let mut calls = 0;
        let result = with_restarts(
            None,
            &stop,
            || {
                calls += 1;
                std::future::ready(Err(disk_full()))
            },
            |_, _| {
                let _ = stop_tx.send(true);
            },
        )
        .await;
        assert!(result.unwrap_err().is_transient());
        assert_eq!(calls, 1);
    }
}
