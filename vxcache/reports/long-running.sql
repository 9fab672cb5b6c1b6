-- Sessions running longer than a threshold
--
-- Sessions still in flight (queued, running, applying or deleting) that
-- started more than `hours` hours ago, oldest first. `presence` tells whether
-- the node still lists them; an aged-out session's status may be out of date.
--
-- param: hours = 6  (the threshold, in hours; fractions allowed)
SELECT
    session_id,
    status,
    hostname,
    username,
    script,
    started_at,
    round((epoch_us(now()) - epoch_us(started_at)) / 3.6e9, 1) AS hours_running,
    presence,
    last_seen_at,
    stale
FROM sessions
WHERE is_in_flight(status)
  AND started_at < now() - to_seconds(CAST($hours AS DOUBLE) * 3600)
ORDER BY started_at, session_id
