-- Trade-size box plot per venue (shares per trade, from individual trades): quartiles, whiskers at 1.5 IQR, outliers.
-- Quartiles interpolate linearly (percentile_cont), as numpy/pandas/seaborn do; whiskers are the most extreme trades within the fences.
WITH quartiles AS (
    SELECT
        venue,
        COUNT(*) AS num_trades,
        SUM(quantity) AS total_quantity,
        MIN(quantity) AS min_size,
        MAX(quantity) AS max_size,
        percentile_cont(0.25) WITHIN GROUP (ORDER BY quantity) AS q1,
        percentile_cont(0.5) WITHIN GROUP (ORDER BY quantity) AS median,
        percentile_cont(0.75) WITHIN GROUP (ORDER BY quantity) AS q3
    FROM trades
    GROUP BY venue
),
fences AS (
    SELECT
        *,
        q3 - q1 AS iqr,
        q1 - 1.5 * (q3 - q1) AS lower_fence,
        q3 + 1.5 * (q3 - q1) AS upper_fence
    FROM quartiles
)
SELECT
    f.venue,
    COALESCE(v.kind, 'unknown') AS venue_kind,
    f.num_trades,
    CAST(f.total_quantity AS DOUBLE) / f.num_trades AS avg_size,
    f.min_size,
    f.q1,
    f.median,
    f.q3,
    f.iqr,
    MIN(CASE WHEN t.quantity >= f.lower_fence THEN t.quantity END) AS lower_whisker,
    MAX(CASE WHEN t.quantity <= f.upper_fence THEN t.quantity END) AS upper_whisker,
    SUM(CASE WHEN t.quantity < f.lower_fence OR t.quantity > f.upper_fence THEN 1 ELSE 0 END) AS outliers,
    f.max_size
FROM fences AS f
JOIN trades AS t ON t.venue = f.venue
LEFT JOIN venues AS v ON v.code = f.venue
GROUP BY f.venue, v.kind, f.num_trades, f.total_quantity, f.min_size, f.q1, f.median, f.q3, f.iqr, f.max_size
ORDER BY f.venue
