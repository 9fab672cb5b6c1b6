-- The write audit
--
-- Every apply and delete attempted through vxcache in the last `days` days:
-- who asked, what, when, and how it ended (ok, failed, unknown or refused),
-- with the session's status now. Newest first.
--
-- param: days = 30  (only writes attempted in the last N days)
SELECT
    w.write_id,
    w."at",
    w.actor,
    w.action,
    w.session_id,
    w.force,
    w.outcome,
    w.http_status,
    w.duration_s,
    w.detail,
    s.status AS session_status
FROM writes AS w
LEFT JOIN sessions AS s USING (session_id)
WHERE w."at" >= now() - to_days(CAST($days AS INTEGER))
ORDER BY w."at" DESC, w.write_id DESC
