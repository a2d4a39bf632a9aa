//! `keel secrets rotate`: re-seals every stored secret under the primary (first) key of
//! `KEEL_ENCRYPTION_KEY`, in the tenant- and field-bound format (`keel_models::secrets`).

use keel_models::crypto::{Field, SecretBox};

use crate::settings::Settings;

/// Rotates every sealed column and prints one line per column. Fails (after printing) when a
/// value opens with none of the configured keys, naming its tenants, so the old key is not
/// dropped while something still needs it.
pub async fn rotate(settings: &Settings, batch_size: u32) -> anyhow::Result<()> {
    let secrets = SecretBox::from_config(settings.encryption_key_spec())?;
    let pool = keel_models::db::connect(&settings.database_url, 2).await?;
    keel_models::db::check_migrated(&pool, &settings.database_url).await?;
    println!(
        "re-sealing stored secrets under key {:?} (the first of KEEL_ENCRYPTION_KEY)",
        secrets.primary_id()
    );
    let mut unreadable = Vec::new();
    for field in Field::ALL {
        let r = keel_models::secrets::rotate(&pool, &secrets, field, batch_size).await?;
        println!(
            "{}: {} re-sealed, {} already current, {} changed meanwhile (left as written), {} unreadable",
            field.column(),
            r.resealed,
            r.current,
            r.changed_meanwhile,
            r.unreadable.len()
        );
        unreadable.extend(
            r.unreadable
                .iter()
                .map(|t| format!("{} of tenant {t}", field.column())),
        );
    }
    if !unreadable.is_empty() {
        let shown: Vec<&str> = unreadable.iter().take(10).map(String::as_str).collect();
        anyhow::bail!(
            "{} stored secret(s) open with none of the keys in KEEL_ENCRYPTION_KEY (add the key they were sealed with and run again): {}{}",
            unreadable.len(),
            shown.join(", "),
            if unreadable.len() > 10 { ", …" } else { "" }
        );
    }
    Ok(())
}
