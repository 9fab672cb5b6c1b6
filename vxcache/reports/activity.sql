-- Activity per day by status
--
-- How many sessions started on each of the last `days` days (UTC, today
-- included), split by the status each session has now.
--
-- param: days = 90  (how many days to count, today included)
SELECT
    utc_day(started_at) AS day,
    status,
    count(*) AS sessions
FROM sessions
WHERE started_at >= current_date - CAST($days AS INTEGER) + 1
GROUP BY ALL
ORDER BY day, status
