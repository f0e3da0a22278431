//! `GET /api/stream`: Server-Sent Events from the live pipeline — `window` events carry windows
//! as they close (or are corrected), `open` events the open windows, at most once a tick; both
//! as JSON arrays in the shape of `/api/heatmap_data`. A `status` event opens the stream and
//! comes again when the pipeline stops (`{"live": true, "pipeline": "failed", "error": ...}`).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, TimestampMicrosecondType};
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::stream::{self, Stream, StreamExt};
use tokio::sync::broadcast::error::RecvError;

use super::AppState;
use crate::live::{LiveEvent, PipelineState};

/// Window rows as JSON in the original API's form (timestamps `YYYY-MM-DDTHH:MM:SS`).
pub fn rows_json(batch: &RecordBatch) -> String {
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if matches!(field.data_type(), DataType::Timestamp(_, _)) {
            let times = column.as_primitive::<TimestampMicrosecondType>();
            let text: StringArray = (0..times.len())
                .map(|i| {
                    (!times.is_null(i)).then(|| {
                        let mut iso = String::new();
                        crate::time::format_iso_micros(times.value(i), &mut iso);
                        iso.truncate(19);
                        iso
                    })
                })
                .collect();
            fields.push(Field::new(field.name(), DataType::Utf8, true));
            columns.push(Arc::new(text));
        } else {
            fields.push(field.as_ref().clone());
            columns.push(column.clone());
        }
    }
    let Ok(converted) = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns) else {
        return "[]".into();
    };
    let mut out = Vec::new();
    {
        let mut writer = arrow::json::ArrayWriter::new(&mut out);
        if writer
            .write(&converted)
            .and_then(|()| writer.finish())
            .is_err()
        {
            return "[]".into();
        }
    }
    if out.is_empty() {
        return "[]".into();
    }
    String::from_utf8(out).unwrap_or_else(|_| "[]".into())
}

/// A `status` event: `{"live": false}` without an embedded pipeline (with `"following":
/// true` when following the lake), else `{"live": true, "pipeline": ...}` (and `"error"` when
/// it failed).
fn status_event(pipeline: Option<PipelineState>, following: bool) -> Event {
    let mut data = serde_json::Map::new();
    data.insert("live".into(), pipeline.is_some().into());
    if following {
        data.insert("following".into(), true.into());
    }
    if let Some(pipeline) = pipeline {
        pipeline.describe(&mut data);
    }
    Event::default()
        .event("status")
        .data(serde_json::Value::Object(data).to_string())
}

/// `GET /api/stream`.
pub async fn events(
    State(state): State<Arc<AppState>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let hello = status_event(
        state.live.as_ref().map(|live| live.state.borrow().clone()),
        state.followed.is_some(),
    );
    let updates = match state.live.as_ref() {
        Some(live) => {
            let mut shutdown = live.shutdown.clone();
            // The pipeline's state when it changes (it stopped, on an error or not).
            let mut pipeline = live.state.subscribe();
            pipeline.mark_unchanged();
            let changes = stream::unfold(pipeline, |mut pipeline| async move {
                pipeline.changed().await.ok()?;
                let now = pipeline.borrow_and_update().clone();
                Some((Ok(status_event(Some(now), false)), pipeline))
            });
            let windows = window_events(live.events.subscribe());
            stream::select(windows, changes)
                // On shutdown the stream ends, so graceful shutdown is not held up by open clients.
                .take_until(async move {
                    let _ = shutdown.wait_for(|stop| *stop).await;
                })
                .boxed()
        }
        None => match state.followed.as_ref() {
            // Following the lake: an `open` event each time its unemitted windows are new.
            Some(followed) => {
                let mut shutdown = followed.shutdown.clone();
                window_events(followed.events.subscribe())
                    .take_until(async move {
                        let _ = shutdown.wait_for(|stop| *stop).await;
                    })
                    .boxed()
            }
            // No pipeline in this process: the stream stays open with keep-alives only.
            None => stream::pending().boxed(),
        },
    };
    Sse::new(stream::once(async { Ok(hello) }).chain(updates))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// The pipeline's windows as events: `window` for closed ones, `open` for the open ones.
fn window_events(
    receiver: tokio::sync::broadcast::Receiver<LiveEvent>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(receiver, |mut receiver| async move {
        loop {
            let event = match receiver.recv().await {
                Ok(LiveEvent::Closed(batch)) => {
                    Event::default().event("window").data(rows_json(&batch))
                }
                Ok(LiveEvent::Open(batch)) => {
                    Event::default().event("open").data(rows_json(&batch))
                }
                // A slow client skips what it missed and carries on.
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return None,
            };
            return Some((Ok(event), receiver));
        }
    })
}
