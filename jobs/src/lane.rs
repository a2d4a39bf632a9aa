//! The Redis fast lane: one Stream per queue with one consumer group (`keel`).
//!
//! Redis only ever carries job *ids* whose rows already exist in Postgres, so it is a buffer,
//! never the store: losing it loses nothing (the relay re-dispatches from the ledger). Streams
//! give what the worker needs and apalis-redis 1.0 lacked (see README): `XREADGROUP … BLOCK`
//! hands a new id to an idle worker within a round trip instead of at its next poll, and an
//! entry is removed with `XACK`+`XDEL` in one pipelined call, O(1) whatever the backlog.
//! The stream is kept short (a window per queue): producers push only while it holds fewer than
//! `window` entries; everything else waits in Postgres for the relay.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, RedisError, Script, Value};
use uuid::Uuid;

pub const GROUP: &str = "keel";

/// Pushes ids (ARGV[2..]) in order while the stream holds fewer than ARGV[1] entries; answers
/// how many it pushed (the first n).
const PUSH_IF_ROOM: &str = r#"
local room = tonumber(ARGV[1]) - redis.call('XLEN', KEYS[1])
local n = 0
for i = 2, #ARGV do
  if n >= room then break end
  redis.call('XADD', KEYS[1], '*', 'id', ARGV[i])
  n = n + 1
end
return n
"#;

/// For each stream (KEYS), creates consumer group ARGV[1] (and the stream) if missing; answers
/// per stream `created (0|1), length`.
const ENSURE_GROUPS: &str = r#"
local out = {}
for _, key in ipairs(KEYS) do
  local created = 1
  local r = redis.pcall('XGROUP', 'CREATE', key, ARGV[1], '0', 'MKSTREAM')
  if type(r) == 'table' and r.err then
    if string.sub(r.err, 1, 9) ~= 'BUSYGROUP' then return r end
    created = 0
  end
  out[#out + 1] = created
  out[#out + 1] = redis.call('XLEN', key)
end
return out
"#;

/// A queue's stream as [`Lane::ensure_groups`] found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamState {
    /// Its consumer group had to be created: new, or (after the first start) lost by Redis.
    pub created: bool,
    /// Entries in the stream (undelivered plus delivered-but-not-acked).
    pub len: usize,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "cannot reach Redis at {url}: {source}. Start it (on a dev machine: `redis-server --daemonize yes \
     --bind 127.0.0.1 --port 6379 --save \"\" --appendonly no`) or set REDIS_URL"
)]
pub struct LaneUnreachable {
    pub url: String,
    #[source]
    pub source: RedisError,
}

/// A delivered entry: which stream it came from, its entry id (for the ack) and the job id.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub queue: String,
    pub entry_id: String,
    pub job_id: Option<Uuid>,
}

/// Suffix of a queue's priority lane: jobs of tenants with the `priority_lane` add-on travel on
/// `{queue}.priority`, which workers read before the queue itself.
pub const PRIORITY_SUFFIX: &str = ".priority";

/// The priority lane of `queue`.
pub fn priority_queue(queue: &str) -> String {
    format!("{queue}{PRIORITY_SUFFIX}")
}

/// What a worker consuming `queues` reads, in order of precedence: every queue's priority lane
/// first, then the queues (an explicitly listed lane is not doubled).
pub fn with_priority_lanes(queues: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(queues.len() * 2);
    for q in queues.iter().filter(|q| !q.ends_with(PRIORITY_SUFFIX)) {
        out.push(priority_queue(q));
    }
    for q in queues {
        if !out.contains(q) {
            out.push(q.clone());
        }
    }
    out
}

/// Cheap to clone (one `Arc`): the API's state, the submitter and every worker task hold one,
/// and axum clones the state for each request.
#[derive(Clone)]
pub struct Lane {
    inner: Arc<LaneInner>,
}

struct LaneInner {
    client: Client,
    conn: ConnectionManager,
    prefix: String,
    window: usize,
    url: String,
    push_script: Script,
    groups_script: Script,
}

impl Lane {
    /// Connects and checks Redis answers; fails with a message naming the URL otherwise.
    pub async fn connect(url: &str, prefix: &str, window: usize) -> Result<Self, LaneUnreachable> {
        let shown = keel_models::db::redact_url(url);
        let unreachable = |source| LaneUnreachable {
            url: shown.clone(),
            source,
        };
        let client = Client::open(url).map_err(unreachable)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let mut conn = tokio::time::timeout(
            Duration::from_secs(5),
            ConnectionManager::new_with_config(client.clone(), config),
        )
        .await
        .map_err(|_| {
            unreachable(RedisError::from(std::io::Error::from(
                std::io::ErrorKind::TimedOut,
            )))
        })?
        .map_err(unreachable)?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map_err(unreachable)?;
        Ok(Self {
            inner: Arc::new(LaneInner {
                client,
                conn,
                prefix: prefix.to_string(),
                window: window.max(1),
                url: shown,
                push_script: Script::new(PUSH_IF_ROOM),
                groups_script: Script::new(ENSURE_GROUPS),
            }),
        })
    }

    pub fn url(&self) -> &str {
        &self.inner.url
    }

    pub fn window(&self) -> usize {
        self.inner.window
    }

    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    pub fn stream_key(&self, queue: &str) -> String {
        format!("{}:q:{}", self.inner.prefix, queue)
    }

    fn queue_of(&self, key: &str) -> String {
        key.strip_prefix(&format!("{}:q:", self.inner.prefix))
            .unwrap_or(key)
            .to_string()
    }

    /// A connection of its own for blocking reads (a `BLOCK` would stall every other command
    /// sharing a multiplexed connection).
    pub async fn blocking_connection(
        &self,
        block: Duration,
    ) -> Result<MultiplexedConnection, RedisError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(block + Duration::from_secs(5)));
        self.inner
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }

    pub async fn ping(&self) -> Result<(), RedisError> {
        let mut conn = self.inner.conn.clone();
        redis::cmd("PING").query_async::<String>(&mut conn).await?;
        Ok(())
    }

    /// Post-commit push from a producer, for one or several ids of one queue in one round trip:
    /// pushes them in order while the queue's window has room and answers how many (the first
    /// n) it pushed; the relay dispatches the rest when there is room.
    pub async fn push_many_if_room(&self, queue: &str, ids: &[Uuid]) -> Result<usize, RedisError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut conn = self.inner.conn.clone();
        let mut call = self.inner.push_script.key(self.stream_key(queue));
        call.arg(self.inner.window);
        for id in ids {
            call.arg(id.to_string());
        }
        let pushed: i64 = call.invoke_async(&mut conn).await?;
        Ok(pushed.max(0) as usize)
    }

    /// Relay push of ids it already made room for (pipelined, one round trip).
    pub async fn push_many(&self, queue: &str, ids: &[Uuid]) -> Result<(), RedisError> {
        if ids.is_empty() {
            return Ok(());
        }
        let key = self.stream_key(queue);
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("XADD")
                .arg(&key)
                .arg("*")
                .arg("id")
                .arg(id.to_string())
                .ignore();
        }
        let mut conn = self.inner.conn.clone();
        pipe.query_async::<()>(&mut conn).await
    }

    /// Counts one request of `subject` in fixed windows (`(window seconds, _)`) that contain
    /// `now_secs`, shared by every process using this Redis: one pipelined round trip of
    /// `INCR` + `EXPIRE … NX` per window. Returns each window's count including this request.
    pub async fn count_hit(
        &self,
        subject: &str,
        windows: &[u64],
        now_secs: u64,
    ) -> Result<Vec<u64>, RedisError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for &w in windows {
            let w = w.max(1);
            let key = format!("{}:rl:{subject}:{w}:{}", self.inner.prefix, now_secs / w);
            pipe.cmd("INCR").arg(&key);
            pipe.cmd("EXPIRE").arg(&key).arg(w + 1).arg("NX").ignore();
        }
        let mut conn = self.inner.conn.clone();
        pipe.query_async::<Vec<u64>>(&mut conn).await
    }

    /// Entries in the stream (undelivered plus delivered-but-not-acked).
    pub async fn len(&self, queue: &str) -> Result<usize, RedisError> {
        let mut conn = self.inner.conn.clone();
        redis::cmd("XLEN")
            .arg(self.stream_key(queue))
            .query_async(&mut conn)
            .await
    }

    /// Creates each queue's consumer group (and stream) if missing and reads how long each
    /// stream is, in one round trip for all queues: the relay asks on every tick.
    pub async fn ensure_groups(&self, queues: &[String]) -> Result<Vec<StreamState>, RedisError> {
        if queues.is_empty() {
            return Ok(Vec::new());
        }
        let mut call = self.inner.groups_script.prepare_invoke();
        for queue in queues {
            call.key(self.stream_key(queue));
        }
        call.arg(GROUP);
        let mut conn = self.inner.conn.clone();
        let answer: Vec<i64> = call.invoke_async(&mut conn).await?;
        Ok(answer
            .chunks_exact(2)
            .map(|pair| StreamState {
                created: pair[0] == 1,
                len: pair[1].max(0) as usize,
            })
            .collect())
    }

    /// Reads up to `count` new entries for `consumer`, blocking up to `block` when none wait.
    pub async fn read(
        &self,
        conn: &mut MultiplexedConnection,
        queues: &[String],
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>, RedisError> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(count.max(1))
            .arg("BLOCK")
            .arg(block.as_millis() as u64)
            .arg("STREAMS");
        for q in queues {
            cmd.arg(self.stream_key(q));
        }
        for _ in queues {
            cmd.arg(">");
        }
        let reply: Value = cmd.query_async(conn).await?;
        Ok(self.parse_read(reply))
    }

    fn parse_read(&self, reply: Value) -> Vec<Delivery> {
        let mut out = Vec::new();
        let streams: Vec<(Value, Value)> = match reply {
            Value::Array(items) => items
                .into_iter()
                .filter_map(|s| match s {
                    Value::Array(mut kv) if kv.len() == 2 => {
                        let v = kv.pop()?;
                        let k = kv.pop()?;
                        Some((k, v))
                    }
                    _ => None,
                })
                .collect(),
            Value::Map(pairs) => pairs,
            _ => return out,
        };
        for (key, entries) in streams {
            let Some(key) = as_string(&key) else { continue };
            let queue = self.queue_of(&key);
            let Value::Array(entries) = entries else {
                continue;
            };
            for entry in entries {
                if let Some((entry_id, job_id)) = parse_entry(entry) {
                    out.push(Delivery {
                        queue: queue.clone(),
                        entry_id,
                        job_id,
                    });
                }
            }
        }
        out
    }

    /// Acknowledges and deletes entries (pipelined), keeping the stream as short as the work
    /// in flight.
    pub async fn ack(&self, queue: &str, entry_ids: &[String]) -> Result<(), RedisError> {
        if entry_ids.is_empty() {
            return Ok(());
        }
        let key = self.stream_key(queue);
        let mut pipe = redis::pipe();
        pipe.cmd("XACK")
            .arg(&key)
            .arg(GROUP)
            .arg(entry_ids)
            .ignore();
        pipe.cmd("XDEL").arg(&key).arg(entry_ids).ignore();
        let mut conn = self.inner.conn.clone();
        pipe.query_async::<()>(&mut conn).await
    }

    /// Acks and deletes entries of several queues in one pipelined round trip.
    pub async fn ack_batch(&self, entries: &[(String, String)]) -> Result<(), RedisError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut by_queue: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
        for (queue, entry) in entries {
            by_queue.entry(queue).or_default().push(entry);
        }
        let mut pipe = redis::pipe();
        for (queue, ids) in by_queue {
            let key = self.stream_key(queue);
            pipe.cmd("XACK").arg(&key).arg(GROUP).arg(&ids).ignore();
            pipe.cmd("XDEL").arg(&key).arg(&ids).ignore();
        }
        let mut conn = self.inner.conn.clone();
        pipe.query_async::<()>(&mut conn).await
    }

    /// Garbage-collects entries delivered to consumers that never acked them (a worker killed
    /// with SIGKILL) once they have been idle for `idle`. Recovery of the *jobs* is the relay's
    /// business (their leases expire in Postgres); this only keeps the stream bounded.
    pub async fn reap_pending(
        &self,
        queue: &str,
        consumer: &str,
        idle: Duration,
    ) -> Result<usize, RedisError> {
        let key = self.stream_key(queue);
        let mut conn = self.inner.conn.clone();
        let reply: Value = redis::cmd("XAUTOCLAIM")
            .arg(&key)
            .arg(GROUP)
            .arg(consumer)
            .arg(idle.as_millis() as u64)
            .arg("0-0")
            .arg("COUNT")
            .arg(1000)
            .arg("JUSTID")
            .query_async(&mut conn)
            .await?;
        let ids: Vec<String> = match reply {
            Value::Array(mut parts) if parts.len() >= 2 => match parts.swap_remove(1) {
                Value::Array(ids) => ids.iter().filter_map(as_string).collect(),
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        self.ack(queue, &ids).await?;
        Ok(ids.len())
    }

    /// Deletes every key under this lane's prefix (tests and `keel bench` clean up with it).
    pub async fn purge(&self) -> Result<(), RedisError> {
        let mut conn = self.inner.conn.clone();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", self.inner.prefix))
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            redis::cmd("DEL")
                .arg(keys)
                .query_async::<()>(&mut conn)
                .await?;
        }
        Ok(())
    }
}

fn as_string(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn parse_entry(entry: Value) -> Option<(String, Option<Uuid>)> {
    let Value::Array(mut parts) = entry else {
        return None;
    };
    if parts.len() != 2 {
        return None;
    }
    let fields = parts.pop()?;
    let entry_id = as_string(&parts.pop()?)?;
    let mut job_id = None;
    if let Value::Array(fv) = fields {
        for pair in fv.chunks(2) {
            if let [k, v] = pair {
                if as_string(k).as_deref() == Some("id") {
                    job_id = as_string(v).and_then(|s| Uuid::parse_str(&s).ok());
                }
            }
        }
    }
    Some((entry_id, job_id))
}

#[cfg(test)]
mod priority_tests {
    use super::*;

    #[test]
    fn priority_lanes_come_first_and_are_not_doubled() {
        let q = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            with_priority_lanes(&q(&["analysis", "default"])),
            q(&[
                "analysis.priority",
                "default.priority",
                "analysis",
                "default"
            ])
        );
        assert_eq!(
            with_priority_lanes(&q(&["default", "default.priority"])),
            q(&["default.priority", "default"])
        );
    }
}
