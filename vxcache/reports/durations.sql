-- Durations by script: p50, p95, p99
--
-- How long settled sessions ran, from start to end, in seconds, per script:
-- the median, the 95th and 99th percentiles and the longest.
--
-- param: days = 90  (only sessions started in the last N days)
WITH settled AS (
    SELECT
        coalesce(script, '(none)') AS script,
        count(*) AS sessions,
        quantile_cont(duration_s, [0.5, 0.95, 0.99]) AS q,
        max(duration_s) AS max_s
    FROM sessions
    WHERE is_settled(status)
      AND duration_s IS NOT NULL
      AND started_at >= current_date - CAST($days AS INTEGER) + 1
    GROUP BY ALL
)
SELECT script, sessions, q[1] AS p50_s, q[2] AS p95_s, q[3] AS p99_s, max_s
FROM settled
ORDER BY p95_s DESC, script
