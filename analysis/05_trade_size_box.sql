-- Average trade size by venue and symbol: box plots of each window's average size (shares per trade) for the eight venues with the most trades.
-- A window's average size is its total quantity / number of trades; overall_avg_size is SUM(quantity) / SUM(trades) over all its windows, not a mean of window averages.
-- Quartiles interpolate linearly (percentile_cont, as numpy and seaborn do); whiskers reach the most extreme window within 1.5 IQR of the box; windows beyond are outliers.
-- DataFusion 55 rounds the interpolation weight down to a multiple of 1e-6 (apache/datafusion#25266), so a value may differ from numpy in the sixth decimal.
WITH sizes AS (
    SELECT
        venue,
        symbol,
        total_quantity,
        num_trades,
        CAST(total_quantity AS DOUBLE) / num_trades AS avg_size
    FROM windows
    WHERE num_trades > 0
),
top_venues AS (
    SELECT
        venue,
        ROW_NUMBER() OVER (ORDER BY SUM(num_trades) DESC, venue) AS venue_rank
    FROM sizes
    GROUP BY venue
),
stats AS (
    SELECT
        s.venue,
        t.venue_rank,
        s.symbol,
        COUNT(*) AS windows,
        SUM(s.num_trades) AS num_trades,
        CAST(SUM(s.total_quantity) AS DOUBLE) / SUM(s.num_trades) AS overall_avg_size,
        percentile_cont(0.25) WITHIN GROUP (ORDER BY s.avg_size) AS q1,
        percentile_cont(0.5) WITHIN GROUP (ORDER BY s.avg_size) AS median,
        percentile_cont(0.75) WITHIN GROUP (ORDER BY s.avg_size) AS q3
    FROM sizes AS s
    JOIN top_venues AS t ON t.venue = s.venue
    WHERE t.venue_rank <= 8
    GROUP BY s.venue, t.venue_rank, s.symbol
),
fences AS (
    SELECT
        *,
        q1 - 1.5 * (q3 - q1) AS lower_fence,
        q3 + 1.5 * (q3 - q1) AS upper_fence
    FROM stats
)
SELECT
    f.venue,
    COALESCE(v.kind, 'unknown') AS venue_kind,
    f.venue_rank,
    f.symbol,
    f.windows,
    f.num_trades,
    f.overall_avg_size,
    f.q1,
    f.median,
    f.q3,
    MIN(CASE WHEN s.avg_size >= f.lower_fence THEN s.avg_size END) AS lower_whisker,
    MAX(CASE WHEN s.avg_size <= f.upper_fence THEN s.avg_size END) AS upper_whisker,
    array_agg(s.avg_size ORDER BY s.avg_size) FILTER (WHERE s.avg_size < f.lower_fence OR s.avg_size > f.upper_fence) AS outliers
FROM fences AS f
JOIN sizes AS s ON s.venue = f.venue AND s.symbol = f.symbol
LEFT JOIN venues AS v ON v.code = f.venue
GROUP BY f.venue, v.kind, f.venue_rank, f.symbol, f.windows, f.num_trades, f.overall_avg_size, f.q1, f.median, f.q3
ORDER BY f.venue_rank, f.symbol
