//! A pipeline query planned once and run on every micro-batch.
//!
//! Planning the window SQL (parse, logical optimizer, physical planner) cost more than a third
//! of a push on 64k-trade batches. The query's table is a slot: the physical plan reads whatever
//! batches the slot holds when it runs, and DataFusion's `reset_plan_states` clears the state an
//! operator keeps between runs (a cross join's build side) before each one.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};

use super::WindowError;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::execution_plan::reset_plan_states;
use datafusion::physical_plan::memory::{LazyBatchGenerator, LazyMemoryExec};
use datafusion::physical_plan::{collect, ExecutionPlan};
use datafusion::prelude::SessionContext;
use parking_lot::RwLock;

/// The batches the next run reads.
type Slot = Arc<Mutex<Vec<RecordBatch>>>;

/// A query over one table (`table` in its SQL), planned once.
pub(super) struct Prepared {
    /// The query's name in errors.
    query: &'static str,
    slot: Slot,
    plan: Arc<dyn ExecutionPlan>,
    schema: SchemaRef,
    task: Arc<TaskContext>,
}

impl Prepared {
    /// Plan `sql` (named `query` in errors) over a table named `table` with `input` as its
    /// schema.
    pub(super) async fn new(
        ctx: &SessionContext,
        query: &'static str,
        table: &str,
        input: SchemaRef,
        sql: &str,
    ) -> Result<Prepared, WindowError> {
        Self::plan(ctx, query, table, input, sql)
            .await
            .map_err(|source| WindowError::Sql { query, source })
    }

    async fn plan(
        ctx: &SessionContext,
        query: &'static str,
        table: &str,
        input: SchemaRef,
        sql: &str,
    ) -> Result<Prepared> {
        let slot: Slot = Arc::default();
        ctx.deregister_table(table)?;
        ctx.register_table(
            table,
            Arc::new(SlotTable {
                schema: input,
                slot: slot.clone(),
            }),
        )?;
        let df = ctx.sql(sql).await?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let plan = df.create_physical_plan().await?;
        Ok(Prepared {
            query,
            slot,
            plan,
            schema,
            task: ctx.task_ctx(),
        })
    }

    /// The query's output columns.
    pub(super) fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Run the query over the rows of `input` (a table of these batches; none is copied into
    /// another), all output in one batch.
    pub(super) async fn run(&self, input: &[RecordBatch]) -> Result<RecordBatch, WindowError> {
        self.execute(input)
            .await
            .map_err(|source| WindowError::Sql {
                query: self.query,
                source,
            })
    }

    async fn execute(&self, input: &[RecordBatch]) -> Result<RecordBatch> {
        *self.slot.lock().map_err(poisoned)? = input.to_vec();
        let plan = reset_plan_states(self.plan.clone())?;
        let batches = collect(plan, self.task.clone()).await;
        self.slot.lock().map_err(poisoned)?.clear();
        Ok(concat_batches(&self.schema, &batches?)?)
    }
}

fn poisoned<T>(_: T) -> DataFusionError {
    DataFusionError::Internal("a window query's input slot was poisoned".into())
}

/// The table a prepared query reads: one partition, the slot's batches.
#[derive(Debug)]
struct SlotTable {
    schema: SchemaRef,
    slot: Slot,
}

#[async_trait]
impl TableProvider for SlotTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let reader = SlotReader {
            slot: self.slot.clone(),
            next: 0,
        };
        let exec = LazyMemoryExec::try_new(
            self.schema.clone(),
            vec![Arc::new(RwLock::new(reader)) as Arc<RwLock<dyn LazyBatchGenerator>>],
        )?;
        Ok(Arc::new(exec.with_projection(projection.cloned())))
    }
}

/// Hands out the slot's batches in turn, once per run.
#[derive(Debug)]
struct SlotReader {
    slot: Slot,
    /// The next batch to hand out.
    next: usize,
}

impl fmt::Display for SlotReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("window input")
    }
}

impl LazyBatchGenerator for SlotReader {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn generate_next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let batch = self.slot.lock().map_err(poisoned)?.get(self.next).cloned();
        self.next += 1;
        Ok(batch)
    }

    fn reset_state(&self) -> Arc<RwLock<dyn LazyBatchGenerator>> {
        Arc::new(RwLock::new(SlotReader {
            slot: self.slot.clone(),
            next: 0,
        }))
    }
}
