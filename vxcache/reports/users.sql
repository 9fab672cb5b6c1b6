-- What each user did
--
-- Per user, the sessions started in the last `days` days and where they
-- stand now: succeeded, failed (is_failure()), cancelled, deleted, planned or
-- still in flight; on how many hosts and with how many scripts.
--
-- param: days = 90  (only sessions started in the last N days)
SELECT
    coalesce(username, '(none)') AS username,
    count(*) AS sessions,
    count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
    count(*) FILTER (WHERE is_failure(status)) AS failures,
    count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
    count(*) FILTER (WHERE status = 'deleted') AS deleted,
    count(*) FILTER (WHERE status = 'planned') AS planned,
    count(*) FILTER (WHERE is_in_flight(status)) AS in_flight,
    count(DISTINCT hostname) AS hosts,
    count(DISTINCT script) AS scripts,
    min(started_at) AS first_started_at,
    max(started_at) AS last_started_at
FROM sessions
WHERE started_at >= current_date - CAST($days AS INTEGER) + 1
GROUP BY ALL
ORDER BY sessions DESC, username
