-- Sessions that left the node's list
--
-- Sessions that aged out (no longer listed, but the node still knows them) or
-- are gone (the node no longer knows them) in the last `days` days, with when
-- vxcache saw them leave and when it last saw them, newest first.
--
-- param: days = 30  (only sessions that vanished in the last N days)
SELECT
    session_id,
    presence,
    presence_changed_at AS vanished_at,
    last_seen_at,
    status,
    hostname,
    username,
    script,
    started_at,
    ended_at
FROM sessions
WHERE presence IN ('aged_out', 'gone')
  AND presence_changed_at >= now() - to_days(CAST($days AS INTEGER))
ORDER BY vanished_at DESC, session_id
