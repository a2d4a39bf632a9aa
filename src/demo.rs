//! `keel up --demo`: Keel with a built-in sample Jira, so a new user can analyze an issue, a
//! sprint and a portfolio in the first minute without a Jira account.
//!
//! The sample Jira (`keel_jira::demo`) serves clearly labelled demo data on loopback in exactly
//! the shapes Jira Cloud returns. This module connects a demo tenant to it (reused by name across
//! restarts, with a fresh API key each start, since keys are only ever shown once) and prints
//! the curl lines to try. Development only: the demo Jira lives on loopback, which the SSRF guard
//! refuses unless private networks are allowed, so `--demo` allows them and refuses to run with
//! `KEEL_ENV=production`.

use std::net::SocketAddr;

use keel_jira::demo::{DemoJira, DEMO_BOARD_ID, DEMO_EMAIL, DEMO_PROJECT_KEYS, DEMO_TOKEN};
use keel_models::billing::subscriptions::SubscriptionState;
use keel_models::jira::NewJiraConnection;

use crate::startup::Keel;

/// Name of the demo tenant (`keel up --demo` reuses it).
pub const DEMO_TENANT: &str = "Keel Demo (sample data)";

/// What the demo set up, for the banner.
pub struct Demo {
    pub jira: DemoJira,
    pub tenant_id: uuid::Uuid,
    pub api_key: String,
}

/// Starts the sample Jira and connects the demo tenant to it.
pub async fn start(keel: &Keel) -> anyhow::Result<Demo> {
    anyhow::ensure!(
        !keel.settings.production(),
        "--demo serves sample data and allows private networks; it refuses KEEL_ENV=production"
    );
    let jira = DemoJira::start(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let tenant_id = match keel_models::tenant::find_by_name(&keel.pool, DEMO_TENANT).await? {
        Some(t) => t.id,
        None => {
            let mut tx = keel.pool.begin().await?;
            let created =
                keel_models::tenant::create(&mut tx, DEMO_TENANT, &keel.services.secrets).await?;
            tx.commit().await?;
            created.tenant.id
        }
    };
    // The free plan allows no portfolio analyses; the demo tenant gets the Business plan for a
    // month (local mode, nothing is charged).
    let now = chrono::Utc::now();
    let mut tx = keel.pool.begin().await?;
    keel_models::billing::subscriptions::upsert(
        &mut tx,
        &SubscriptionState::local(
            tenant_id,
            "business",
            "month",
            (now, now + chrono::Duration::days(30)),
            keel_api::billing::catalog::global().version as i32,
        ),
    )
    .await?;
    tx.commit().await?;
    let (_, key) = keel_models::tenant::create_key(&keel.pool, tenant_id).await?;
    let sealed =
        keel.services
            .secrets
            .seal(keel_models::crypto::Field::JiraToken, tenant_id, DEMO_TOKEN);
    keel_models::jira::upsert_connection(
        &keel.pool,
        tenant_id,
        &NewJiraConnection {
            base_url: &jira.base_url,
            email: DEMO_EMAIL,
            token_sealed: &sealed,
            account_id: "demo",
            display_name: Some("Keel Demo"),
        },
    )
    .await?;
    Ok(Demo {
        jira,
        tenant_id,
        api_key: key.secret,
    })
}

/// The lines printed once the API is listening.
pub fn banner(demo: &Demo, api: SocketAddr) -> String {
    let key = &demo.api_key;
    let base = format!("http://{api}");
    let projects = DEMO_PROJECT_KEYS
        .iter()
        .map(|k| format!("\"{k}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "\n=== Keel demo: sample Jira data (not a real Jira) at {jira} ===\n\
         demo tenant {tenant}, API key (shown once): {key}\n\
         \n  export KEEL_KEY={key}\n\
         \n  curl -s -X POST {base}/api/analyze/issue -H \"Authorization: Bearer $KEEL_KEY\" \\\n      -H 'content-type: application/json' -d '{{\"issue_key\": \"DEMO-1\"}}'\
         \n  curl -s -X POST {base}/api/analyze/sprint -H \"Authorization: Bearer $KEEL_KEY\" \\\n      -H 'content-type: application/json' -d '{{\"board_id\": {board}}}'\
         \n  curl -s -X POST {base}/api/analyze/portfolio -H \"Authorization: Bearer $KEEL_KEY\" \\\n      -H 'content-type: application/json' -d '{{\"project_keys\": [{projects}]}}'\
         \n  curl -s {base}/api/jobs/JOB_ID -H \"Authorization: Bearer $KEEL_KEY\"\
         \n  curl -s {base}/api/analyses/issues/DEMO-1/trend?format=svg -H \"Authorization: Bearer $KEEL_KEY\" > trend.svg\n",
        jira = demo.jira.base_url,
        tenant = demo.tenant_id,
        board = DEMO_BOARD_ID,
    )
}
