-- Sync health per day
--
-- For each of the last `days` days (UTC), including days without any sync:
-- how many syncs ran and how they ended, how many found a gap in the node's
-- list, the longest pause before a sync started, the last successful sync up
-- to that day and the day's last error.
--
-- param: days = 14  (how many days to show, today included)
WITH runs AS (
    SELECT
        *,
        epoch(started_at - lag(started_at) OVER (ORDER BY started_at)) AS pause_s
    FROM sync_runs
),
per_day AS (
    SELECT
        CAST(started_at AS DATE) AS day,
        count(*) AS runs,
        count(*) FILTER (WHERE outcome = 'ok') AS ok,
        count(*) FILTER (WHERE outcome = 'partial') AS partial,
        count(*) FILTER (WHERE outcome = 'failed') AS failed,
        count(*) FILTER (WHERE outcome IS NULL) AS running,
        count(*) FILTER (WHERE gap_from IS NOT NULL) AS gaps,
        max(pause_s) AS longest_pause_s,
        arg_max(error, started_at) FILTER (WHERE error IS NOT NULL) AS last_error
    FROM runs
    GROUP BY ALL
),
calendar AS (
    SELECT CAST(day AS DATE) AS day
    FROM generate_series(
        CAST(current_date - CAST($days AS INTEGER) + 1 AS TIMESTAMP),
        CAST(current_date AS TIMESTAMP),
        INTERVAL 1 DAY
    ) AS t(day)
)
SELECT
    c.day,
    coalesce(d.runs, 0) AS runs,
    coalesce(d.ok, 0) AS ok,
    coalesce(d.partial, 0) AS partial,
    coalesce(d.failed, 0) AS failed,
    coalesce(d.running, 0) AS running,
    coalesce(d.gaps, 0) AS gaps,
    round(d.longest_pause_s / 60, 1) AS longest_pause_min,
    (
        SELECT max(s.finished_at) FROM sync_runs AS s
        WHERE s.outcome = 'ok' AND CAST(s.finished_at AS DATE) <= c.day
    ) AS last_success_at,
    d.last_error
FROM calendar AS c
LEFT JOIN per_day AS d USING (day)
ORDER BY c.day
