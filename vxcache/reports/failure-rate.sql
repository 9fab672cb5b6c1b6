-- Failure rate by script
--
-- For each script, how many of its sessions have settled (are no longer in
-- flight) and which share of those failed. A failure is a status of failed,
-- timed_out, rolled_back or delete_failed (the macro is_failure() is the one
-- definition); a cancelled session is settled but not a failure.
--
-- param: days = 90  (only sessions started in the last N days)
SELECT
    coalesce(script, '(none)') AS script,
    count(*) AS settled,
    count(*) FILTER (WHERE is_failure(status)) AS failures,
    count(*) FILTER (WHERE is_failure(status)) / count(*) AS failure_rate,
    count(*) FILTER (WHERE status = 'cancelled') AS cancelled
FROM sessions
WHERE is_settled(status)
  AND started_at >= current_date - CAST($days AS INTEGER) + 1
GROUP BY ALL
ORDER BY failure_rate DESC, settled DESC, script
