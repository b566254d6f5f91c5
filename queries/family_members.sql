-- family_members: each family's current members, i.e. the repos its query listed in the newest scan that listed
-- the family (`memberships`), with their rank in that listing (1 = first). A family never listed by a recorded
-- scan (explicit repos on the command line, a lake from before memberships) has no rows here.
-- Columns: family, repo_id, revision, rank, scan_id, listed_at
SELECT family, repo_id, revision, rank, scan_id, listed_at
FROM memberships
QUALIFY dense_rank() OVER (PARTITION BY family ORDER BY listed_at DESC, scan_id DESC) = 1
