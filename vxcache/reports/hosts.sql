-- Sessions per host by week
--
-- How many sessions each host ran in each ISO week (starting Monday, UTC) of
-- the last `weeks` weeks, and how many of them failed.
--
-- param: weeks = 12  (how many weeks to count, this week included)
SELECT
    CAST(date_trunc('week', utc_day(started_at)) AS DATE) AS week,
    coalesce(hostname, '(none)') AS hostname,
    count(*) AS sessions,
    count(*) FILTER (WHERE is_failure(status)) AS failures
FROM sessions
WHERE started_at >= date_trunc('week', current_date) - to_weeks(CAST($weeks AS INTEGER) - 1)
GROUP BY ALL
ORDER BY week, hostname
