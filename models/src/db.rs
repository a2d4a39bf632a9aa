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

/// Parses a URL and strips the password so it can be shown in errors and logs.
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((creds, host)) => {
                let user = creds.split(':').next().unwrap_or("");
                if creds.contains(':') {
                    format!("{scheme}://{user}:***@{host}")
                } else {
                    format!("{scheme}://{user}@{host}")
                }
            }
            None => url.to_string(),
        },
        None => url.to_string(),
    }
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
            // Another process created it at the same moment.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
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
    .map_err(|source| DbError::Unreachable {
        url: redact_url(url),
        source,
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

/// Applies pending migrations. Safe to run from several processes at once (sqlx takes an
/// advisory lock).
pub async fn migrate(pool: &PgPool) -> Result<(), DbError> {
    MIGRATOR.run(pool).await?;
    Ok(())
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
    }
}
