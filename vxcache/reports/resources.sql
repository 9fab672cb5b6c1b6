-- Terraform resources by type
--
-- The resources in each session's latest pull, counted by type across
-- sessions: how many sessions have one, how many resource blocks and how many
-- instances in all. Sessions whose latest pull had no state count for nothing.
--
-- param: mode = managed  (managed, data, or all)
SELECT
    r.type,
    r.mode,
    min(r.provider) AS provider,
    count(DISTINCT r.session_id) AS sessions,
    count(*) AS resources,
    sum(r.instance_count) AS instances
FROM sessions AS s
JOIN terraform_resources AS r
  ON r.session_id = s.session_id AND r.pull_id = s.last_pull_id
WHERE CAST($mode AS VARCHAR) IN ('all', r.mode)
GROUP BY ALL
ORDER BY instances DESC, r.type, r.mode
