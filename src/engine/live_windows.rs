//! `live_windows`: the windows a live view shows that the lake does not hold yet. Two parts:
//! the process's own pipeline's (open, and closed but not committed yet), and, when it follows
//! the lake, the windows of trades other processes landed and have not emitted yet. A key the
//! own part has is shown from the own part.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arrow::array::RecordBatch;
use datafusion::datasource::MemTable;

use crate::window::{self, WindowError};

pub(super) struct LiveWindows {
    table: Arc<MemTable>,
    parts: Mutex<Parts>,
    /// The generation of the parts in `table`: an older one, published late, never overwrites
    /// a newer one.
    shown: AtomicU64,
}

#[derive(Default)]
struct Parts {
    own: Vec<RecordBatch>,
    followed: Vec<RecordBatch>,
    /// While following works out its rows: each own part set since it began. The own part
    /// drops a window once its run is committed, which may be after following read the lake:
    /// what following found of such a window is out of date, and is left out.
    since: Option<Vec<RecordBatch>>,
    /// Counts the changes.
    generation: u64,
}

impl Parts {
    /// The own rows, then the followed rows of keys the own ones do not have.
    fn merged(&self) -> Result<Vec<RecordBatch>, WindowError> {
        let mut rows = self.own.clone();
        let own: Vec<&RecordBatch> = self.own.iter().collect();
        for followed in &self.followed {
            let kept = window::without_keys_of(followed, &own)?;
            if kept.num_rows() > 0 {
                rows.push(kept);
            }
        }
        Ok(rows)
    }
}

impl LiveWindows {
    pub(super) fn new(table: Arc<MemTable>) -> LiveWindows {
        LiveWindows {
            table,
            parts: Mutex::default(),
            shown: AtomicU64::new(0),
        }
    }

    fn parts(&self) -> MutexGuard<'_, Parts> {
        // Each change is one assignment: a panic elsewhere leaves the parts whole.
        self.parts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replace the own part (shown at the next [`LiveWindows::show`]).
    pub(super) fn set_own(&self, rows: Vec<RecordBatch>) {
        let mut parts = self.parts();
        if let Some(since) = &mut parts.since {
            since.extend(rows.iter().cloned());
        }
        parts.own = rows;
        parts.generation += 1;
    }

    /// Following starts reading the lake for the windows no process has emitted.
    pub(super) fn begin_following(&self) {
        let mut parts = self.parts();
        parts.since = Some(parts.own.clone());
    }

    /// Replace the followed part with what following found since it began (shown at the next
    /// [`LiveWindows::show`]).
    pub(super) fn set_followed(&self, rows: Vec<RecordBatch>) -> Result<(), WindowError> {
        let mut parts = self.parts();
        let since = parts.since.take().unwrap_or_default();
        let since: Vec<&RecordBatch> = since.iter().collect();
        parts.followed = rows
            .iter()
            .map(|batch| window::without_keys_of(batch, &since))
            .collect::<Result<_, _>>()?;
        parts.generation += 1;
        Ok(())
    }

    /// Put the parts as they are now into the table. If they cannot be merged (rows not of the
    /// window schema, which the pipeline and following never give), the own part is shown alone.
    pub(super) async fn show(&self) -> Result<(), WindowError> {
        let (generation, merged) = {
            let parts = self.parts();
            let merged = parts.merged().map_err(|e| (parts.own.clone(), e));
            (parts.generation, merged)
        };
        let Some(partition) = self.table.batches.first() else {
            return Ok(());
        };
        let mut partition = partition.write().await;
        if generation < self.shown.load(Ordering::Acquire) {
            return Ok(());
        }
        self.shown.store(generation, Ordering::Release);
        match merged {
            Ok(rows) => {
                *partition = rows;
                Ok(())
            }
            Err((own, e)) => {
                *partition = own;
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Int64Array, StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit};

    fn schema() -> SchemaRef {
        let time = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        Arc::new(Schema::new(vec![
            Field::new("window_start", time.clone(), false),
            Field::new("window_end", time, false),
            Field::new("symbol", DataType::Utf8, false),
            Field::new("venue", DataType::Utf8, false),
            Field::new("num_trades", DataType::Int64, false),
        ]))
    }

    /// Windows 09:30-09:35 at one venue: (symbol, trades).
    fn rows(windows: &[(&str, i64)]) -> Vec<RecordBatch> {
        let n = windows.len();
        let start = 1_704_101_400_000_000;
        let columns: Vec<arrow::array::ArrayRef> = vec![
            Arc::new(TimestampMicrosecondArray::from(vec![start; n]).with_timezone("UTC")),
            Arc::new(
                TimestampMicrosecondArray::from(vec![start + 300_000_000; n]).with_timezone("UTC"),
            ),
            Arc::new(StringArray::from_iter_values(windows.iter().map(|w| w.0))),
            Arc::new(StringArray::from(vec!["DARK1"; n])),
            Arc::new(Int64Array::from_iter_values(windows.iter().map(|w| w.1))),
        ];
        vec![RecordBatch::try_new(schema(), columns).unwrap()]
    }

    fn live() -> LiveWindows {
        LiveWindows::new(Arc::new(MemTable::try_new(schema(), vec![vec![]]).unwrap()))
    }

    /// What the table holds, in order: (symbol, trades).
    async fn shown(live: &LiveWindows) -> Vec<(String, i64)> {
        live.show().await.unwrap();
        let batches = live.table.batches[0].read().await;
        batches
            .iter()
            .flat_map(|b| {
                let symbols = b.column(2).as_string::<i32>().clone();
                let trades = b.column(4).as_primitive::<Int64Type>().clone();
                (0..b.num_rows())
                    .map(move |i| (symbols.value(i).to_string(), trades.value(i)))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn named(rows: &[(&str, i64)]) -> Vec<(String, i64)> {
        rows.iter().map(|(s, n)| (s.to_string(), *n)).collect()
    }

    #[tokio::test]
    async fn the_own_rows_are_shown_as_set() {
        let live = live();
        live.set_own(rows(&[("AAPL", 5), ("MSFT", 1)]));
        assert_eq!(shown(&live).await, named(&[("AAPL", 5), ("MSFT", 1)]));
        live.set_own(rows(&[("MSFT", 2)]));
        assert_eq!(shown(&live).await, named(&[("MSFT", 2)]));
    }

    /// The pipeline's own open window has every trade read; the lake only those committed.
    #[tokio::test]
    async fn a_window_the_own_part_has_is_shown_from_it_not_from_the_lake() {
        let live = live();
        live.set_own(rows(&[("AAPL", 5)]));
        live.begin_following();
        live.set_followed(rows(&[("AAPL", 3), ("MSFT", 2)]))
            .unwrap();
        assert_eq!(shown(&live).await, named(&[("AAPL", 5), ("MSFT", 2)]));
        // Another member's window is shown as following last found it.
        live.set_own(rows(&[("AAPL", 6), ("TSLA", 1)]));
        assert_eq!(
            shown(&live).await,
            named(&[("AAPL", 6), ("TSLA", 1), ("MSFT", 2)])
        );
    }

    /// Following read the lake before the own pipeline committed its window AAPL, which the own
    /// part then dropped: what following found of AAPL is out of date and must not be shown
    /// (the lake shows the committed window).
    #[tokio::test]
    async fn a_window_committed_while_following_read_the_lake_is_left_out() {
        let live = live();
        live.begin_following();
        live.set_own(rows(&[("AAPL", 5)]));
        live.set_own(Vec::new());
        live.set_followed(rows(&[("AAPL", 3), ("MSFT", 2)]))
            .unwrap();
        assert_eq!(shown(&live).await, named(&[("MSFT", 2)]));
        // The next time, following reads the lake after the commit: AAPL is not among its rows.
        live.begin_following();
        live.set_followed(rows(&[("MSFT", 4)])).unwrap();
        assert_eq!(shown(&live).await, named(&[("MSFT", 4)]));
    }
}
