//! The query memory limit for what one function call builds. DataFusion's memory pool counts
//! what its operators hold (sorts, joins, aggregates), not the arrays an expression returns:
//! `repeat(symbol, 10000000)` over one batch of 8,192 rows asks the allocator for about 800 GB
//! at once, and a failed allocation aborts the process, a whole `serve` with it. The functions
//! whose output one argument can make arbitrarily larger than their input are registered here
//! behind a check that works out, before the call, how many bytes the call may build for its
//! batch, and reserves them in the session's memory pool (`--memory-limit`, shared by the
//! queries running at once) for the call, or refuses it.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::kernels::concat_elements::concat_elements_dyn;
use arrow::datatypes::{DataType, Field, FieldRef, Int64Type, TimeUnit};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DataFusionError, ExprSchema, Result, ScalarValue};
use datafusion::config::ConfigOptions;
use datafusion::execution::memory_pool::{
    MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::interval_arithmetic::Interval;
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{
    cast, BinaryExpr, ColumnarValue, Documentation, Expr, ExprSchemable, ExpressionPlacement,
    LogicalPlan, Operator, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility,
};
use datafusion::prelude::SessionContext;

/// The functions checked, with how each one's output is bounded.
const BOUNDED: [(&str, Estimate); 11] = [
    ("repeat", Estimate::Repeat),
    ("lpad", Estimate::Pad),
    ("rpad", Estimate::Pad),
    ("replace", Estimate::Replace),
    ("regexp_replace", Estimate::RegexpReplace),
    ("concat", Estimate::Concat),
    ("concat_ws", Estimate::ConcatWs),
    ("array_repeat", Estimate::ArrayRepeat),
    ("array_resize", Estimate::ArrayResize),
    ("range", Estimate::Range { inclusive: false }),
    ("generate_series", Estimate::Range { inclusive: true }),
];

/// Put the checked versions of [`BOUNDED`] in place of DataFusion's in `ctx`.
pub fn register(ctx: &SessionContext) {
    let budget = Budget::of(ctx);
    let functions = ctx.state().scalar_functions().clone();
    for (name, estimate) in BOUNDED {
        if let Some(inner) = functions.get(name) {
            ctx.register_udf(ScalarUDF::new_from_impl(Bounded {
                inner: inner.clone(),
                estimate,
                budget: budget.clone(),
            }));
        }
    }
}

/// The session's memory pool: what DataFusion's operators, the checked calls and the results
/// of the queries running at once share.
#[derive(Debug, Clone)]
pub struct Budget {
    pool: Arc<dyn MemoryPool>,
    /// The pool's size (`--memory-limit`), for messages.
    limit: u64,
}

impl Budget {
    /// The same pool's limit, reserved through `pool` (one query's share of it).
    pub fn through(&self, pool: Arc<dyn MemoryPool>) -> Budget {
        Budget {
            pool,
            limit: self.limit,
        }
    }

    pub fn of(ctx: &SessionContext) -> Budget {
        let pool = ctx.runtime_env().memory_pool.clone();
        let limit = match pool.memory_limit() {
            MemoryLimit::Finite(bytes) => bytes as u64,
            _ => u64::MAX,
        };
        Budget { pool, limit }
    }

    /// The pool's size.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// An empty reservation for `what`, to grow.
    pub fn reservation(&self, what: &str) -> MemoryReservation {
        MemoryConsumer::new(what).register(&self.pool)
    }

    /// Hold `bytes` for `what` over `rows` rows, or say why not.
    pub fn hold(&self, what: &str, bytes: u64, rows: usize) -> Result<MemoryReservation> {
        let reservation = self.reservation(what);
        let grown = usize::try_from(bytes).map(|b| reservation.try_grow(b));
        match grown {
            Ok(Ok(())) => Ok(reservation),
            _ => Err(self.refused(
                &format!("{what} would build about {}", human_bytes(bytes)),
                bytes,
                rows,
            )),
        }
    }

    /// Why `bytes` for `rows` rows were refused: over the limit, or over what the queries
    /// running now leave of it.
    pub fn refused(&self, what: &str, bytes: u64, rows: usize) -> DataFusionError {
        let in_use = if bytes <= self.limit {
            format!(
                ", of which {} is in use",
                human_bytes(self.pool.reserved() as u64)
            )
        } else {
            String::new()
        };
        DataFusionError::ResourcesExhausted(format!(
            "{what} for {rows} row(s), over the query memory limit of {} (--memory-limit, shared \
             by the queries running at once){in_use}: make the result smaller",
            human_bytes(self.limit)
        ))
    }
}

impl PartialEq for Budget {
    fn eq(&self, other: &Budget) -> bool {
        Arc::ptr_eq(&self.pool, &other.pool)
    }
}

impl Eq for Budget {}

impl std::hash::Hash for Budget {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.limit.hash(state);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Estimate {
    /// `repeat(text, n)`: the text's bytes n times.
    Repeat,
    /// `lpad` / `rpad(text, n [, fill])`: n characters of at most 4 bytes.
    Pad,
    /// `replace(text, from, to)`: every `from` (or, empty, every position) becomes `to`.
    Replace,
    /// `regexp_replace(text, pattern, replacement [, flags])`: a match at each position with
    /// `g`, else one; group references (`$1`, `\1`) copy at most the text each.
    RegexpReplace,
    /// `concat(a, b, ...)`: the arguments' bytes.
    Concat,
    /// `concat_ws(separator, a, b, ...)`: the arguments' bytes and a separator between each.
    ConcatWs,
    /// `array_repeat(value, n)`: n copies of the value.
    ArrayRepeat,
    /// `array_resize(list, n [, value])`: n elements.
    ArrayResize,
    /// `range` / `generate_series([start,] stop [, step])`: a list of (stop - start) / step
    /// values of 8 bytes.
    Range { inclusive: bool },
}

/// A DataFusion function with the check in front of it; everything else is the function's.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Bounded {
    inner: Arc<ScalarUDF>,
    estimate: Estimate,
    budget: Budget,
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        self.inner.inner().schema_name(args)
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    #[allow(deprecated)]
    fn is_nullable(&self, args: &[Expr], schema: &dyn ExprSchema) -> bool {
        self.inner.inner().is_nullable(args, schema)
    }

    fn is_strict(&self) -> bool {
        self.inner.inner().is_strict()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let bytes = output_bytes(self.estimate, &args.args, args.number_rows)?;
        let what = format!("{}()", self.inner.name());
        let _held = self.budget.hold(&what, bytes, args.number_rows)?;
        self.inner.invoke_with_args(args)
    }

    fn with_updated_config(&self, config: &ConfigOptions) -> Option<ScalarUDF> {
        let updated = self.inner.inner().with_updated_config(config)?;
        Some(ScalarUDF::new_from_impl(Bounded {
            inner: Arc::new(updated),
            estimate: self.estimate,
            budget: self.budget.clone(),
        }))
    }

    // `simplify` is left at its default: a rewrite by the inner function would name the
    // unchecked function in the plan. Calls on constants are still folded (through
    // `invoke_with_args`, so checked).

    fn conditional_arguments<'a>(
        &self,
        args: &'a [Expr],
    ) -> Option<(Vec<&'a Expr>, Vec<&'a Expr>)> {
        self.inner.inner().conditional_arguments(args)
    }

    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }

    fn evaluate_bounds(&self, input: &[&Interval]) -> Result<Interval> {
        self.inner.evaluate_bounds(input)
    }

    fn propagate_constraints(
        &self,
        interval: &Interval,
        inputs: &[&Interval],
    ) -> Result<Option<Vec<Interval>>> {
        self.inner.propagate_constraints(interval, inputs)
    }

    fn output_ordering(&self, inputs: &[ExprProperties]) -> Result<SortProperties> {
        self.inner.output_ordering(inputs)
    }

    fn preserves_lex_ordering(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.inner.preserves_lex_ordering(inputs)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn placement(&self, args: &[ExpressionPlacement]) -> ExpressionPlacement {
        self.inner.inner().placement(args)
    }
}

/// An upper bound of the bytes a call builds for `rows` rows (saturating).
fn output_bytes(estimate: Estimate, args: &[ColumnarValue], rows: usize) -> Result<u64> {
    let arg = |i: usize| args.get(i).map(|v| Values::of(v, rows)).transpose();
    let mut total = 0u64;
    let mut add = |bytes: u64| total = total.saturating_add(bytes);
    match estimate {
        Estimate::Repeat => {
            let (Some(text), Some(n)) = (arg(0)?, arg(1)?) else {
                return Ok(0);
            };
            if n.is_constant() {
                add(text.total_len(rows).saturating_mul(n.count(0)));
            } else {
                for row in 0..rows {
                    add(text.len(row).saturating_mul(n.count(row)));
                }
            }
        }
        Estimate::Pad => {
            let Some(n) = arg(1)? else { return Ok(0) };
            if n.is_constant() {
                add((rows as u64).saturating_mul(n.count(0)).saturating_mul(4));
            } else {
                for row in 0..rows {
                    add(n.count(row).saturating_mul(4));
                }
            }
        }
        Estimate::Replace => {
            let (Some(text), Some(from), Some(to)) = (arg(0)?, arg(1)?, arg(2)?) else {
                return Ok(0);
            };
            if from.is_constant() && to.is_constant() {
                // Over all the rows at once: the matches are at most the total's.
                return Ok(replaced(text.total_len(rows), rows, from.len(0), to.len(0)));
            }
            for row in 0..rows {
                add(replaced(text.len(row), 1, from.len(row), to.len(row)));
            }
        }
        Estimate::RegexpReplace => {
            let (Some(text), Some(replacement)) = (arg(0)?, arg(2)?) else {
                return Ok(0);
            };
            let flags = arg(3)?;
            let global = |row: usize| flags.as_ref().is_some_and(|f| f.text(row).contains('g'));
            if replacement.is_constant() && flags.as_ref().is_none_or(Values::is_constant) {
                let total = text.total_len(rows);
                return Ok(regexp_replaced(
                    total,
                    rows,
                    global(0),
                    &replacement.text(0),
                ));
            }
            for row in 0..rows {
                add(regexp_replaced(
                    text.len(row),
                    1,
                    global(row),
                    &replacement.text(row),
                ));
            }
        }
        Estimate::Concat | Estimate::ConcatWs => {
            let first = usize::from(estimate == Estimate::ConcatWs);
            let separator = if first == 1 { arg(0)? } else { None };
            let parts = (first..args.len())
                .map(arg)
                .collect::<Result<Vec<_>>>()?
                .into_iter()
                .flatten()
                .collect::<Vec<_>>();
            for part in &parts {
                add(part.total_len(rows));
            }
            if let Some(separator) = separator {
                let gaps = parts.len().saturating_sub(1) as u64;
                add(separator.total_len(rows).saturating_mul(gaps));
            }
        }
        Estimate::ArrayRepeat => {
            let (Some(value), Some(n)) = (arg(0)?, arg(1)?) else {
                return Ok(0);
            };
            for row in 0..rows {
                add(value.bytes(row).saturating_mul(n.count(row)));
            }
        }
        Estimate::ArrayResize => {
            let Some(n) = arg(1)? else { return Ok(0) };
            let value = arg(2)?;
            for row in 0..rows {
                let each = value.as_ref().map_or(8, |v| v.bytes(row).max(8));
                add(n.count(row).saturating_mul(each));
            }
        }
        Estimate::Range { inclusive } => {
            let (start, stop, step) = match args.len() {
                1 => (None, arg(0)?, None),
                2 => (arg(0)?, arg(1)?, None),
                _ => (arg(0)?, arg(1)?, arg(2)?),
            };
            let Some(stop) = stop else { return Ok(0) };
            for row in 0..rows {
                let from = start.as_ref().map_or(Some(0), |s| s.instant(row));
                let step = step.as_ref().map_or(Some(1), |s| s.step(row));
                let (Some(from), Some(to), Some(step)) = (from, stop.instant(row), step) else {
                    continue;
                };
                let span = (i128::from(to) - i128::from(from)).unsigned_abs();
                let values = span / u128::from(step.unsigned_abs().max(1)) + u128::from(inclusive);
                add(u64::try_from(values.saturating_mul(8)).unwrap_or(u64::MAX));
            }
        }
    }
    Ok(total)
}

/// Bytes of `replace` over texts of `len` bytes in all, in `rows` rows: every `from` (of
/// `from` bytes) becomes `to` bytes; an empty `from` matches at every position.
fn replaced(len: u64, rows: usize, from: u64, to: u64) -> u64 {
    let times = match from {
        0 => len.saturating_add(rows as u64),
        from => len / from,
    };
    len.saturating_add(times.saturating_mul(to))
}

/// Bytes of `regexp_replace` over texts of `len` bytes in all, in `rows` rows: a match at each
/// position with `g` (else one a row), each replaced by `with`, whose group references (`$1`,
/// `\1`) copy at most the text each.
fn regexp_replaced(len: u64, rows: usize, global: bool, with: &str) -> u64 {
    let times = if global {
        len.saturating_add(rows as u64)
    } else {
        rows as u64
    };
    let references = with.bytes().filter(|b| matches!(b, b'$' | b'\\')).count() as u64;
    len.saturating_add(times.saturating_mul(with.len() as u64))
        .saturating_add(references.saturating_mul(len))
}

/// One argument of a call, row by row (a constant is the same for every row).
enum Values {
    Constant(ScalarValue),
    Column(ArrayRef),
}

impl Values {
    fn is_constant(&self) -> bool {
        matches!(self, Values::Constant(_))
    }

    /// Bytes of the text values of all `rows` rows.
    fn total_len(&self, rows: usize) -> u64 {
        let Values::Column(column) = self else {
            return self.len(0).saturating_mul(rows as u64);
        };
        let span = |offsets: &[i64]| match offsets {
            [first, .., last] => (last - first) as u64,
            _ => 0,
        };
        let span32 = |offsets: &[i32]| match offsets {
            [first, .., last] => (last - first) as u64,
            _ => 0,
        };
        match column.data_type() {
            DataType::Utf8 => span32(column.as_string::<i32>().value_offsets()),
            DataType::Binary => span32(column.as_binary::<i32>().value_offsets()),
            DataType::LargeUtf8 => span(column.as_string::<i64>().value_offsets()),
            DataType::LargeBinary => span(column.as_binary::<i64>().value_offsets()),
            DataType::Utf8View => column.as_string_view().lengths().map(u64::from).sum(),
            DataType::BinaryView => column.as_binary_view().lengths().map(u64::from).sum(),
            _ => 0,
        }
    }

    fn of(value: &ColumnarValue, rows: usize) -> Result<Values> {
        Ok(match value {
            ColumnarValue::Scalar(v) => Values::Constant(v.clone()),
            ColumnarValue::Array(a) if a.len() >= rows => Values::Column(a.clone()),
            ColumnarValue::Array(a) => Values::Constant(ScalarValue::try_from_array(a, 0)?),
        })
    }

    fn scalar(&self, row: usize) -> Option<ScalarValue> {
        match self {
            Values::Constant(v) => Some(v.clone()),
            Values::Column(a) => ScalarValue::try_from_array(a, row).ok(),
        }
    }

    /// Bytes of a text value (0 for null or another type).
    fn len(&self, row: usize) -> u64 {
        let column = match self {
            Values::Constant(v) => {
                return match v {
                    ScalarValue::Utf8(Some(s))
                    | ScalarValue::LargeUtf8(Some(s))
                    | ScalarValue::Utf8View(Some(s)) => s.len() as u64,
                    ScalarValue::Binary(Some(b))
                    | ScalarValue::LargeBinary(Some(b))
                    | ScalarValue::BinaryView(Some(b)) => b.len() as u64,
                    _ => 0,
                }
            }
            Values::Column(a) => a,
        };
        if column.is_null(row) {
            return 0;
        }
        match column.data_type() {
            DataType::Utf8 => column.as_string::<i32>().value(row).len() as u64,
            DataType::LargeUtf8 => column.as_string::<i64>().value(row).len() as u64,
            DataType::Utf8View => column.as_string_view().value(row).len() as u64,
            DataType::Binary => column.as_binary::<i32>().value(row).len() as u64,
            DataType::LargeBinary => column.as_binary::<i64>().value(row).len() as u64,
            DataType::BinaryView => column.as_binary_view().value(row).len() as u64,
            _ => 0,
        }
    }

    /// A text value ("" for null or another type).
    fn text(&self, row: usize) -> String {
        match self.scalar(row) {
            Some(
                ScalarValue::Utf8(Some(s))
                | ScalarValue::LargeUtf8(Some(s))
                | ScalarValue::Utf8View(Some(s)),
            ) => s,
            _ => String::new(),
        }
    }

    /// A count (a negative count or null is none).
    fn count(&self, row: usize) -> u64 {
        self.integer(row).map_or(0, |n| n.max(0) as u64)
    }

    fn integer(&self, row: usize) -> Option<i64> {
        if let Values::Column(a) = self {
            // The usual type of a count, read without a value made for each row.
            if let Some(ints) = a.as_primitive_opt::<Int64Type>() {
                return (!ints.is_null(row)).then(|| ints.value(row));
            }
        }
        let v = self.scalar(row)?;
        match v.cast_to(&DataType::Int64).ok()? {
            ScalarValue::Int64(n) => n,
            _ => None,
        }
    }

    /// A point of a range: an integer, or a date or time in nanoseconds.
    fn instant(&self, row: usize) -> Option<i64> {
        let v = self.scalar(row)?;
        if v.data_type().is_integer() {
            return self.integer(row);
        }
        let to = |a: &ArrayRef, t: &DataType| arrow::compute::cast(a, t).ok();
        let ns = to(
            &v.to_array().ok()?,
            &DataType::Timestamp(TimeUnit::Nanosecond, None),
        )?;
        let ns = to(&ns, &DataType::Int64)?;
        let ns = ns.as_primitive::<Int64Type>();
        (!ns.is_null(0)).then(|| ns.value(0))
    }

    /// A step of a range: an integer, or an interval in (roughly) nanoseconds.
    fn step(&self, row: usize) -> Option<i64> {
        const DAY: i64 = 86_400_000_000_000;
        match self.scalar(row)? {
            ScalarValue::IntervalMonthDayNano(Some(i)) => {
                Some(i64::from(i.months) * 28 * DAY + i64::from(i.days) * DAY + i.nanoseconds)
            }
            ScalarValue::IntervalDayTime(Some(i)) => {
                Some(i64::from(i.days) * DAY + i64::from(i.milliseconds) * 1_000_000)
            }
            ScalarValue::IntervalYearMonth(Some(m)) => Some(i64::from(m) * 28 * DAY),
            v if v.data_type().is_integer() => self.integer(row),
            _ => None,
        }
    }

    /// Bytes of one value of any type.
    fn bytes(&self, row: usize) -> u64 {
        match self {
            Values::Constant(v) => v.size() as u64,
            Values::Column(a) => {
                let slice = a.slice(row, 1);
                slice.to_data().get_slice_memory_size().unwrap_or(0) as u64
            }
        }
    }
}

/// `1.5 GiB`, `800 MiB`, `12 KiB`, `7 bytes`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Put a checked `||` in place of every `||` of texts in `plan`. DataFusion runs `a || b` as an
/// operator, not a function, and a chain of them doubles a text at each step
/// (`WITH b AS (SELECT s || s AS s FROM a), c AS (SELECT s || s AS s FROM b) ...`). The
/// check is the same as for `concat`; the result, its type, nulls and its name are the
/// operator's.
pub fn bound_string_concat(plan: LogicalPlan, budget: &Budget) -> Result<LogicalPlan> {
    let op = Arc::new(ScalarUDF::new_from_impl(ConcatOp {
        signature: Signature::any(2, Volatility::Immutable),
        budget: budget.clone(),
    }));
    plan.transform_up_with_subqueries(|node| {
        let schema = merge_schema(&node.inputs());
        node.map_expressions(|expr| {
            expr.transform_up(|e| {
                let Expr::BinaryExpr(BinaryExpr {
                    left,
                    op: Operator::StringConcat,
                    right,
                }) = e
                else {
                    return Ok(Transformed::no(e));
                };
                let whole = Expr::BinaryExpr(BinaryExpr::new(left, Operator::StringConcat, right));
                let text = match whole.get_type(&schema) {
                    Ok(t @ (DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)) => t,
                    // Lists (array concatenation), or a type not known here: left as it is.
                    _ => return Ok(Transformed::no(whole)),
                };
                let Expr::BinaryExpr(BinaryExpr { left, right, .. }) = whole else {
                    unreachable!("built above as a binary expression")
                };
                // The operator's coercion, made explicit where a side has another type.
                let as_text = |side: Expr| match side.get_type(&schema) {
                    Ok(t) if t == text => side,
                    _ => cast(side, text.clone()),
                };
                let args = vec![as_text(*left), as_text(*right)];
                Ok(Transformed::yes(Expr::ScalarFunction(
                    ScalarFunction::new_udf(op.clone(), args),
                )))
            })
        })
    })
    .map(|t| t.data)
}

/// `a || b` of two texts (of one type: the operator's coercion casts them), checked.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ConcatOp {
    signature: Signature,
    budget: Budget,
}

impl ScalarUDFImpl for ConcatOp {
    fn name(&self) -> &str {
        "string_concat"
    }

    /// The operator's own name (`a || b`), so result columns are named as before.
    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        let [left, right] = args else {
            return Err(DataFusionError::Internal("|| takes two values".into()));
        };
        Ok(format!("{} || {}", left.schema_name(), right.schema_name()))
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types.first().cloned().unwrap_or(DataType::Utf8))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let nullable = args.arg_fields.iter().any(|f| f.is_nullable());
        let data_type = args
            .arg_fields
            .first()
            .map_or(DataType::Utf8, |f| f.data_type().clone());
        Ok(Arc::new(Field::new(self.name(), data_type, nullable)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let bytes = output_bytes(Estimate::Concat, &args.args, rows)?;
        let _held = self.budget.hold("||", bytes, rows)?;
        let constant = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let [left, right] = &args.args[..] else {
            return Err(DataFusionError::Internal("|| takes two values".into()));
        };
        let n = if constant { 1 } else { rows };
        let joined = concat_elements_dyn(&left.to_array(n)?, &right.to_array(n)?)?;
        Ok(if constant {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&joined, 0)?)
        } else {
            ColumnarValue::Array(joined)
        })
    }
}
