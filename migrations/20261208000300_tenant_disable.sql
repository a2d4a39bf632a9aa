-- Operators can disable a tenant (`keel tenant disable`, `POST /admin/tenants/{id}/disable`):
-- its API keys answer 401 and its waiting jobs are held until it is enabled again. Held jobs
-- are parked on a queue no worker serves (`held:<queue>`), so the relay never reads past them
-- and no index changes; enabling puts them back on their queue.
ALTER TABLE tenants ADD COLUMN disabled_at timestamptz;
