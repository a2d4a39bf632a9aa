//! Connecting to Postgres and applying migrations.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgDatabaseError, PgPoolOptions, PgSeverity};
use sqlx::{ConnectOptions, Connection, PgPool};

/// Errors from bringing the database up, each naming what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("invalid DATABASE_URL: {0}")]
    InvalidUrl(String),
    #[error(
        "cannot reach Postgres at {url}: {source}. Start it (on a dev machine: \
         `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`) or set DATABASE_URL"
    )]
    Unreachable {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    /// Postgres answers, but the database is missing: starting Postgres would not help.
    #[error(
        "database {name:?} does not exist on the Postgres at {url}: run `keel migrate` (it creates the \
         database and applies the migrations) or set DATABASE_URL"
    )]
    NoDatabase { name: String, url: String },
    /// The schema is older than this binary: a process that does not migrate itself refuses to
    /// start rather than answer 500s (`relation "jobs" does not exist`).
    #[error(
        "the database at {url} is not migrated ({pending} of this version's {known} migrations not \
         applied): run `keel migrate` first"
    )]
    NotMigrated {
        url: String,
        pending: usize,
        known: usize,
    },
    #[error("applying migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// Whether `e` says Postgres could not be reached, ended the session or did not answer in time
/// (down, restarting, failing over, out of connections, the pool exhausted, a statement past
/// its timeout), rather than refusing a statement: what was asked may be asked again.
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(db) => {
            // FATAL and PANIC end the session; class 08 is "connection exception"; 57014 is
            // `query_canceled` (a statement timeout, or an operator's cancel).
            db.try_downcast_ref::<PgDatabaseError>()
                .is_some_and(|pg| matches!(pg.severity(), PgSeverity::Fatal | PgSeverity::Panic))
                || db
                    .code()
                    .is_some_and(|c| c.starts_with("08") || c == "57014")
        }
        _ => false,
    }
}

/// The migrations of `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Strips the passwords from a URL so it can be shown in errors and logs: the one in the
/// authority (`user:pw@host`) and a `password`/`sslpassword` query parameter (libpq's form).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((creds, host)) => match creds.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("{creds}@{host}"),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _))
                        if k.eq_ignore_ascii_case("password")
                            || k.eq_ignore_ascii_case("sslpassword") =>
                    {
                        format!("{k}=***")
                    }
                    _ => kv.to_string(),
                })
                .collect();
            format!("{path}?{}", params.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

fn options(url: &str) -> Result<PgConnectOptions, DbError> {
    PgConnectOptions::from_str(url)
        .map(|o| o.log_statements(tracing::log::LevelFilter::Trace))
        .map_err(|e| DbError::InvalidUrl(e.to_string()))
}

/// Creates the database named in `url` if it does not exist yet (connecting to the server's
/// `postgres` database to do so). `keel up` calls this so a fresh machine needs no setup.
pub async fn create_database_if_missing(url: &str) -> Result<(), DbError> {
    let (mut conn, name) = server_connection(url).await?;
    let exists: bool = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS "exists!""#,
        name
    )
    .fetch_one(&mut conn)
    .await?;
    if !exists {
        match sqlx::query(&format!("CREATE DATABASE {}", quote_ident(&name)))
            .execute(&mut conn)
            .await
        {
            Ok(_) => tracing::info!(database = %name, "created database"),
            // Another process created it at the same moment: 42P04 if its creation had
            // committed, 23505 (pg_database's unique name) if it was still under way.
            Err(sqlx::Error::Database(e))
                if matches!(e.code().as_deref(), Some("42P04") | Some("23505")) => {}
            Err(e) => return Err(e.into()),
        }
    }
    conn.close().await.ok();
    Ok(())
}

/// A connection to the server's `postgres` database, and the database name `url` points at.
async fn server_connection(url: &str) -> Result<(sqlx::PgConnection, String), DbError> {
    let opts = options(url)?;
    let name = opts.get_database().unwrap_or("postgres").to_string();
    let conn = sqlx::PgConnection::connect_with(&opts.database("postgres"))
        .await
        .map_err(|source| DbError::Unreachable {
            url: redact_url(url),
            source,
        })?;
    Ok((conn, name))
}

/// Identifiers cannot be bound as parameters; quote one as Postgres does.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Drops a database (tests use one database each and drop it at the end).
pub async fn drop_database(url: &str) -> Result<(), DbError> {
    let (mut conn, name) = server_connection(url).await?;
    sqlx::query(&format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        quote_ident(&name)
    ))
    .execute(&mut conn)
    .await?;
    Ok(())
}

/// Opens a pool; fails fast with a message naming the URL when Postgres is unreachable.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, DbError> {
    let opts = options(url)?;
    // One direct connection first: a pool would retry until its timeout and then report only
    // "pool timed out", hiding the real cause (connection refused, unknown database, …).
    let probe = tokio::time::timeout(
        Duration::from_secs(5),
        sqlx::PgConnection::connect_with(&opts),
    )
    .await
    .unwrap_or(Err(sqlx::Error::PoolTimedOut))
    .map_err(|source| {
        // 3D000 invalid_catalog_name: the server is up, the database is not there.
        if source.as_database_error().and_then(|e| e.code()).as_deref() == Some("3D000") {
            return DbError::NoDatabase {
                name: opts.get_database().unwrap_or("postgres").to_string(),
                url: redact_url(url),
            };
        }
        DbError::Unreachable {
            url: redact_url(url),
            source,
        }
    })?;
    probe.close().await.ok();
    // sqlx pings a connection before each use (and after): the hot batch paths hold their own
    // connections instead ([`crate::held`]). Here the ping stays: at a few jobs per second,
    // dropping it made pick-up latency worse (the insert then paid the idle backend's wake-up).
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(opts)
        .await
        .map_err(|source| DbError::Unreachable {
            url: redact_url(url),
            source,
        })
}

/// Refuses a database whose schema lacks any of this binary's migrations (see
/// [`DbError::NotMigrated`]). Migrations applied by a newer binary are fine: they only add.
pub async fn check_migrated(pool: &PgPool, url: &str) -> Result<(), DbError> {
    let applied: Vec<i64> =
        match sqlx::query_scalar!("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await
        {
            Ok(v) => v,
            // 42P01 undefined_table: nothing was ever applied.
            Err(e) if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("42P01") => {
                Vec::new()
            }
            Err(e) => return Err(e.into()),
        };
    let known = MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .count();
    let pending = MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_up_migration() && !applied.contains(&m.version))
        .count();
    if pending > 0 {
        return Err(DbError::NotMigrated {
            url: redact_url(url),
            pending,
            known,
        });
    }
    Ok(())
}

/// The advisory lock processes take turns on to migrate (any constant of Keel's own).
const MIGRATION_LOCK: i64 = 0x6b65_656c_6d69_6772; // "keelmigr"

/// How often a process waiting for its turn to migrate asks again.
const MIGRATION_LOCK_POLL: Duration = Duration::from_millis(100);

/// Applies pending migrations. Several processes may run it at once (compose starts `migrate`,
/// `api`, `worker` and `scheduler` together): they take turns on an advisory lock, and one
/// waiting for its turn asks for the lock every [`MIGRATION_LOCK_POLL`] rather than blocking.
/// A backend blocked in `pg_advisory_lock` keeps its snapshot, and `CREATE INDEX CONCURRENTLY`
/// (a no-transaction migration) waits for every older snapshot to end: the builder and the
/// waiter waited on each other until Postgres failed one of them, sometimes the index build.
pub async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    // One session takes the lock, runs the migrations and gives the lock back.
    let mut conn = pool.acquire().await?;
    while !sqlx::query_scalar!(
        r#"SELECT pg_try_advisory_lock($1) AS "locked!""#,
        MIGRATION_LOCK
    )
    .fetch_one(&mut *conn)
    .await?
    {
        tokio::time::sleep(MIGRATION_LOCK_POLL).await;
    }
    let migrated = async {
        drop_failed_concurrent_indexes(&mut conn).await?;
        MIGRATOR.run(&mut *conn).await?;
        Ok(())
    }
    .await;
    let unlocked = sqlx::query_scalar!(
        r#"SELECT pg_advisory_unlock($1) AS "unlocked!""#,
        MIGRATION_LOCK
    )
    .fetch_one(&mut *conn)
    .await;
    migrated.and(unlocked.map(|_| ()).map_err(DbError::from))
}

/// A no-transaction migration that failed or was killed during `CREATE INDEX CONCURRENTLY`
/// leaves the index behind, invalid, and itself unrecorded: running it again failed on the
/// name taken ("relation … already exists") until someone dropped the index by hand. Before
/// migrating, drop the invalid indexes that pending migrations are about to build.
async fn drop_failed_concurrent_indexes(conn: &mut sqlx::PgConnection) -> Result<(), DbError> {
    let applied: Vec<i64> = match sqlx::query_scalar!("SELECT version FROM _sqlx_migrations")
        .fetch_all(&mut *conn)
        .await
    {
        Ok(v) => v,
        // A fresh database: no migration has run, so none has left anything behind.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let pending = MIGRATOR
        .iter()
        .filter(|m| m.no_tx && !applied.contains(&m.version));
    for name in pending.flat_map(|m| concurrent_index_names(&m.sql)) {
        let invalid = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                              WHERE c.relname = $1 AND NOT i.indisvalid) AS "invalid!""#,
            name
        )
        .fetch_one(&mut *conn)
        .await?;
        if invalid {
            tracing::warn!(index = %name, "dropping the invalid index a failed migration left behind");
            sqlx::query(&format!(
                "DROP INDEX CONCURRENTLY IF EXISTS {}",
                quote_ident(&name)
            ))
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

/// The names of the indexes `sql` builds with `CREATE INDEX CONCURRENTLY [IF NOT EXISTS] name`
/// (folded to lower case as Postgres does, unless quoted).
fn concurrent_index_names(sql: &str) -> Vec<String> {
    let words: Vec<&str> = sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .flat_map(str::split_whitespace)
        .collect();
    let is = |w: &str, k: &str| w.eq_ignore_ascii_case(k);
    let mut names = Vec::new();
    for i in 0..words.len() {
        if !matches!(&words[i..], [c, x, y, ..] if is(c, "create") && is(x, "index") && is(y, "concurrently"))
        {
            continue;
        }
        let name = match &words[i + 3..] {
            [a, b, c, name, ..] if is(a, "if") && is(b, "not") && is(c, "exists") => name,
            [name, ..] => name,
            [] => continue,
        };
        names.push(
            match name.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
                Some(quoted) => quoted.to_string(),
                None => name.to_ascii_lowercase(),
            },
        );
    }
    names
}

/// `SELECT 1`, for readiness checks.
pub async fn ping(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query_scalar!("SELECT 1 AS one")
        .fetch_one(pool)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("redis://h:6379"), "redis://h:6379");
        assert_eq!(
            redact_url("postgres://h:5499/db?user=u&password=SECRET&sslmode=disable"),
            "postgres://h:5499/db?user=u&password=***&sslmode=disable"
        );
        assert_eq!(
            redact_url("postgres://u:p@ss@h/db?sslpassword=x"),
            "postgres://u:***@h/db?sslpassword=***"
        );
        assert_eq!(redact_url("redis://:pw@h:6379/0"), "redis://:***@h:6379/0");
    }

    #[test]
    fn finds_the_indexes_a_migration_builds_concurrently() {
        use super::concurrent_index_names;
        let sql = "-- CREATE INDEX CONCURRENTLY commented_out ON t (a);\n\
                   CREATE INDEX CONCURRENTLY jobs_a ON jobs (a)\n    WHERE b;\n\
                   create index concurrently if not exists \"Jobs_B\" on jobs (b);\n\
                   CREATE INDEX jobs_c ON jobs (c);";
        assert_eq!(concurrent_index_names(sql), vec!["jobs_a", "Jobs_B"]);
    }
}
