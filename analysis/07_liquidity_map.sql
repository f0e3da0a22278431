-- Liquidity map: total traded value (USD) at each matching-engine location (latitude, longitude), with the venues there and their dark share of that value.
SELECT
    w.latitude,
    w.longitude,
    array_to_string(array_sort(array_agg(DISTINCT w.venue)), ' ') AS venues,
    COALESCE(MAX(v.site), '') AS site,
    SUM(w.total_trade_value) AS total_value,
    SUM(CASE WHEN COALESCE(v.kind, 'unknown') = 'dark' THEN w.total_trade_value ELSE 0 END) / SUM(w.total_trade_value) AS dark_share
FROM windows AS w
LEFT JOIN venues AS v ON v.code = w.venue
WHERE w.latitude IS NOT NULL AND w.longitude IS NOT NULL
GROUP BY w.latitude, w.longitude
ORDER BY total_value DESC, w.latitude, w.longitude
