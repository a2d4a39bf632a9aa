//! The command line.

use clap::{Parser, Subcommand};
use keel_jobs::kinds::stripe::sync::SyncCustomer;
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;
use crate::startup::Keel;

#[derive(Parser)]
#[command(name = "keel", version, about = "Keel: durable background jobs")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// API + worker + scheduler in one process (creates the database and migrates first).
    Up {
        /// Also serve a built-in sample Jira on loopback and connect a demo tenant to it
        /// (development only: prints the demo API key and curl lines to try).
        #[arg(long)]
        demo: bool,
    },
    /// The HTTP API only.
    Api,
    /// A worker (scale by running more).
    Worker {
        /// Comma-separated queues to consume (default: every queue).
        #[arg(long, value_delimiter = ',')]
        queues: Vec<String>,
        /// Jobs in flight at most (1 to 10000).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        concurrency: Option<u32>,
        /// Jobs started ahead of a free slot (default: 4 × --concurrency; 0: none; at most 10000).
        #[arg(long, value_parser = clap::value_parser!(u32).range(0..=10_000))]
        prefetch: Option<u32>,
    },
    /// The scheduler (run as many replicas as you like: each tick enqueues one job), or, with
    /// a subcommand, inspect or trigger its tasks.
    Scheduler {
        #[command(subcommand)]
        command: Option<SchedulerCommand>,
    },
    /// Create the database if missing and apply migrations.
    Migrate,
    /// Tenant administration.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Sentiment model files (FinBERT).
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
    /// Stored secrets (webhook signing secrets, Jira API tokens).
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
}

impl Command {
    /// Whether the command uses the admin token or the encryption key: all but `migrate` and
    /// `model pull`. Those that do refuse the development ones when any configured listener is
    /// beyond loopback ([`Settings::check_dev_secrets`]) — every configured one, not only those
    /// the command binds: the processes of one deployment share the key, and a worker or a
    /// `tenant create` next to a public API is part of a public deployment.
    pub fn uses_secrets(&self) -> bool {
        !matches!(
            self,
            Command::Migrate
                | Command::Model { .. }
                | Command::Tenant {
                    command: TenantCommand::Disable { .. } | TenantCommand::Enable { .. }
                }
        )
    }
}

#[derive(Subcommand)]
pub enum SecretsCommand {
    /// Re-seal every stored secret under the first (primary) key of KEEL_ENCRYPTION_KEY, bound
    /// to its tenant and field; prints counts per field. Safe to re-run and while Keel runs.
    /// Once it reports nothing unreadable, older keys can be removed from KEEL_ENCRYPTION_KEY.
    Rotate {
        /// Rows read per batch.
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        batch_size: u32,
    },
}

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Download a Hugging Face BERT classifier (e.g. ProsusAI/finbert) into the model cache
    /// (resumable, sha256-verified); select it with KEEL_SENTIMENT_MODEL=REPO.
    Pull {
        /// Repository name, e.g. ProsusAI/finbert (endpoint: HF_ENDPOINT, default huggingface.co).
        repo: String,
        /// Branch, tag or commit to pin.
        #[arg(long, default_value = "main")]
        revision: String,
        /// Cache root (default ~/.cache/keel/models).
        #[arg(long)]
        cache_dir: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum TenantCommand {
    /// Create a tenant; prints its id, API key and webhook signing secret (shown once).
    Create {
        #[arg(long)]
        name: String,
    },
    /// Disable a tenant (by id or name): its API keys answer 401 `tenant_disabled` in every API
    /// process within a second, and its waiting jobs are held (running ones finish).
    Disable { tenant: String },
    /// Enable a disabled tenant: its keys work again and its held jobs go back on their queues.
    Enable { tenant: String },
}

#[derive(Subcommand)]
pub enum SchedulerCommand {
    /// Every task with its schedule and time zone, next run, last tick and that tick's job status.
    List,
    /// Enqueue one run of TASK now (recorded as the task's tick for this second); prints the
    /// job id. Workers run it.
    RunOnce {
        /// The task's name, as `keel scheduler list` shows it.
        task: String,
    },
}

/// `keel tenant disable|enable TENANT` (an id or a name): Postgres only.
async fn tenant_state(settings: &Settings, tenant: &str, disable: bool) -> anyhow::Result<()> {
    let pool = keel_models::db::connect(&settings.database_url, 2).await?;
    keel_models::db::check_migrated(&pool, &settings.database_url).await?;
    let id = match uuid::Uuid::parse_str(tenant) {
        Ok(id) => id,
        Err(_) => keel_models::tenant::find_by_name(&pool, tenant)
            .await?
            .map(|t| t.id)
            .ok_or_else(|| Usage(format!("no tenant has the id or name {tenant:?}")))?,
    };
    let changed = if disable {
        keel_models::tenant_state::disable(&pool, id).await?
    } else {
        keel_models::tenant_state::enable(&pool, id).await?
    };
    let t = changed.ok_or_else(|| Usage(format!("no tenant has the id {id}")))?;
    if disable {
        println!(
            "tenant {:?} ({}) disabled: its API keys are refused; {} waiting jobs held",
            t.name, t.id, t.jobs_moved
        );
    } else {
        println!(
            "tenant {:?} ({}) enabled: {} held jobs back on their queues",
            t.name, t.id, t.jobs_moved
        );
    }
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {}
            _ = term => {}
        }
        tracing::info!("shutdown requested");
        t.cancel();
    });
    token
}

pub async fn run(cli: Cli, settings: Settings) -> anyhow::Result<()> {
    match cli.command {
        Command::Model {
            command:
                ModelCommand::Pull {
                    repo,
                    revision,
                    cache_dir,
                },
        } => {
            let mut opts = keel_bert::hub::PullOptions::from_env();
            let select = match (&cache_dir, revision.as_str()) {
                (Some(_), _) => None,
                (None, "main") => Some(repo.clone()),
                (None, rev) => Some(format!("{repo}@{rev}")),
            };
            opts.revision = revision;
            opts.cache_dir = cache_dir.unwrap_or(opts.cache_dir);
            let dir = keel_bert::hub::pull(&repo, &opts).await?;
            println!("pulled {repo} into {}", dir.display());
            let spec = select.unwrap_or_else(|| dir.display().to_string());
            println!("select it with KEEL_SENTIMENT_MODEL={spec}");
            Ok(())
        }
        Command::Secrets {
            command: SecretsCommand::Rotate { batch_size },
        } => crate::secrets::rotate(&settings, batch_size).await,
        Command::Migrate => {
            keel_models::db::create_database_if_missing(&settings.database_url).await?;
            let pool = keel_models::db::connect(&settings.database_url, 2).await?;
            keel_models::db::migrate(&pool).await?;
            println!(
                "migrations applied to {}",
                keel_models::db::redact_url(&settings.database_url)
            );
            Ok(())
        }
        Command::Tenant {
            command: TenantCommand::Disable { tenant },
        } => tenant_state(&settings, &tenant, true).await,
        Command::Tenant {
            command: TenantCommand::Enable { tenant },
        } => tenant_state(&settings, &tenant, false).await,
        Command::Tenant {
            command: TenantCommand::Create { name },
        } => {
            let name = keel_models::tenant::check_name(&name)
                .map_err(|m| anyhow::anyhow!("--name {m}"))?
                .to_string();
            let stripe_mode = settings.stripe_secret_key.is_some();
            let keel = Keel::connect(settings, true).await?;
            let mut tx = keel.pool.begin().await?;
            let (created, customer_job) =
                SyncCustomer::create_tenant(&mut tx, &name, &keel.services.secrets, stripe_mode)
                    .await?;
            tx.commit().await?;
            if let Some(job) = &customer_job {
                keel_jobs::enqueue::dispatch_after_commit(&keel.lane, &keel.pool, job).await;
            }
            println!("tenant_id:      {}", created.tenant.id);
            println!("api_key:        {}", created.api_key.secret);
            println!("signing_secret: {}", created.signing_secret);
            println!("(the key and secret are shown only once)");
            Ok(())
        }
        Command::Api => {
            settings.warn_dev_defaults();
            let keel = Keel::connect(settings, false).await?;
            let shutdown = shutdown_on_signals();
            keel.api().await?.run_until_stopped(shutdown).await?;
            Ok(())
        }
        Command::Worker {
            queues,
            concurrency,
            prefetch,
        } => {
            // Checked before connecting, and a usage error like a bad setting (exit code 2).
            let mut config = settings.worker_config();
            if !queues.is_empty() {
                config.queues = queues;
            }
            config.queues = known_queues(&config.queues, &keel_jobs::builtin_registry().queues())?;
            if let Some(c) = concurrency {
                config.concurrency = c as usize;
            }
            if let Some(p) = prefetch {
                config.prefetch = Some(p as usize);
            }
            settings.warn_dev_defaults();
            let keel = Keel::connect(settings, false).await?;
            let shutdown = shutdown_on_signals();
            if let Some(addr) = keel.settings.worker_metrics_addr {
                let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                    anyhow::anyhow!("cannot listen on {addr} (KEEL_WORKER_METRICS_ADDR): {e}")
                })?;
                tracing::info!(%addr, "worker metrics on /metrics");
                tokio::spawn(keel_api::metrics::serve(
                    listener,
                    keel.settings.metrics_token.clone(),
                    shutdown.clone(),
                ));
            }
            keel.worker(config).run_until_stopped(shutdown).await;
            Ok(())
        }
        Command::Scheduler { command: None } => {
            settings.warn_dev_defaults();
            let keel = Keel::connect(settings, false).await?;
            let shutdown = shutdown_on_signals();
            keel.scheduler().run_until_stopped(shutdown).await;
            Ok(())
        }
        Command::Scheduler {
            command: Some(SchedulerCommand::List),
        } => {
            let keel = Keel::connect(settings, false).await?;
            let scheduler = keel.scheduler();
            let tasks = scheduler.list(scheduler.now()).await?;
            print!("{}", format_task_list(&tasks));
            Ok(())
        }
        Command::Scheduler {
            command: Some(SchedulerCommand::RunOnce { task }),
        } => {
            let keel = Keel::connect(settings, false).await?;
            let scheduler = keel.scheduler();
            let now = scheduler.now();
            let per_tenant = scheduler
                .tasks()
                .iter()
                .any(|t| t.name == task && t.is_per_tenant());
            match scheduler.run_once(&task, now).await? {
                Some(job) => println!("enqueued {} job {} for task {task}", job.kind, job.id),
                // A scan with no tenant due enqueues nothing; it had said "already recorded".
                None if per_tenant => println!("ran the scan of task {task}: no tenant was due"),
                None => anyhow::bail!(
                    "task {task} already has a run recorded for this second; try again"
                ),
            }
            Ok(())
        }
        Command::Up { demo } => {
            let mut settings = settings;
            settings.warn_dev_defaults();
            if demo {
                // The demo Jira is on loopback, which the SSRF guard refuses otherwise.
                settings.allow_private_networks = true;
            }
            let keel = Keel::connect(settings, true).await?;
            let demo = match demo {
                true => Some(crate::demo::start(&keel).await?),
                false => None,
            };
            let shutdown = shutdown_on_signals();
            let api = keel.api().await?;
            let addr = api.local_addr();
            if let Some(demo) = &demo {
                println!("{}", crate::demo::banner(demo, addr));
            }
            let worker = keel.worker(keel.settings.worker_config());
            let scheduler = keel.scheduler();
            tracing::info!(%addr, "keel is up: API, worker and scheduler in one process");
            let (a, _, _) = tokio::join!(
                api.run_until_stopped(shutdown.clone()),
                worker.run_until_stopped(shutdown.clone()),
                scheduler.run_until_stopped(shutdown.clone()),
            );
            a?;
            Ok(())
        }
    }
}

/// `keel scheduler list` as an aligned table, one task per line.
pub fn format_task_list(tasks: &[keel_scheduler::TaskStatus]) -> String {
    use chrono::SecondsFormat;
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
            .unwrap_or_else(|| "-".into())
    };
    let mut rows = vec![[
        "TASK".to_string(),
        "SCHEDULE".into(),
        "TIME ZONE".into(),
        "CATCH-UP".into(),
        "NEXT RUN".into(),
        "LAST TICK".into(),
        "LAST JOB".into(),
    ]];
    for t in tasks {
        let job = match (t.last_job_id, t.last_job_status) {
            (Some(id), Some(status)) => format!("{id} {}", status.as_str()),
            // A per-tenant scan records its ticks without a job of their own.
            _ if t.per_tenant && t.last_tick.is_some() => "(one per tenant due)".into(),
            // The tick's job finished long ago and housekeeping deleted it.
            _ if t.last_tick.is_some() => "(deleted)".into(),
            _ => "-".into(),
        };
        rows.push([
            t.name.to_string(),
            t.cron.clone(),
            t.timezone.clone(),
            t.catch_up.as_str().into(),
            time(t.next_run),
            time(t.last_tick),
            job,
        ]);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// A command line or setting that cannot work: `keel` exits with code 2, as for a bad setting.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// The queues asked for (`--queues`, `KEEL_WORKER_QUEUES`), once each, or an error naming one no
/// job kind uses: a worker on a misspelt queue had started, consumed nothing and said nothing.
fn known_queues(asked: &[String], known: &[&str]) -> Result<Vec<String>, Usage> {
    let mut queues: Vec<String> = Vec::new();
    for q in asked.iter().map(|q| q.trim()) {
        if !known.contains(&q) {
            return Err(Usage(format!(
                "unknown queue {q:?} in --queues / KEEL_WORKER_QUEUES; the queues are {}",
                known.join(", ")
            )));
        }
        if !queues.iter().any(|have| have == q) {
            queues.push(q.to_string());
        }
    }
    Ok(queues)
}

#[cfg(test)]
mod tests {
    use super::known_queues;

    #[test]
    fn worker_queues_must_be_known_and_are_taken_once() {
        let known = ["analysis", "default"];
        let asked = |qs: &[&str]| {
            known_queues(
                &qs.iter().map(|q| q.to_string()).collect::<Vec<_>>(),
                &known,
            )
        };
        assert_eq!(
            asked(&["default", " analysis", "default"]).unwrap(),
            vec!["default", "analysis"]
        );
        assert!(asked(&[]).unwrap().is_empty(), "none asked: every queue");
        for bad in ["nosuch", "", "a b"] {
            let err = asked(&["default", bad]).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
            assert!(err.contains("analysis, default"), "{err}");
        }
    }
}
