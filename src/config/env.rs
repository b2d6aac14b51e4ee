//! `AUTHGATE_<SECTION>__<KEY>` (and `AUTHGATE_MODE`) environment overrides.
//!
//! A value takes the type of the key it overrides: `AUTHGATE_GRAPHQL__MAX_DEPTH=7` is an integer,
//! `AUTHGATE_SERVER__TRUSTED_PROXIES=10.0.0.0/8,192.168.0.0/16` a list. Variables without `__`
//! (other than `AUTHGATE_MODE`) are ignored, so the `AUTHGATE_PORT`-style variables that
//! Kubernetes injects for a Service named `authgate` do no harm.

use super::file::FileConfig;
use super::ConfigError;

const PREFIX: &str = "AUTHGATE_";

/// Applies the overrides; returns which key each variable set, for error messages.
pub(super) fn apply_overrides(
    tree: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut applied = Vec::new();
    let defaults = toml::Table::try_from(FileConfig::default())
        .map_err(|e| ConfigError(format!("config: cannot render defaults: {e}")))?;
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(name, _)| name.starts_with(PREFIX))
        .collect();
    vars.sort();
    for (name, raw) in vars {
        let rest = &name[PREFIX.len()..];
        if rest == "MODE" {
            tree.insert("mode".into(), toml::Value::String(raw));
            applied.push(("mode".to_string(), name));
            continue;
        }
        let Some((section, key)) = rest.split_once("__") else {
            continue;
        };
        let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
        let unknown = || ConfigError(format!("{name}: no config key `{section}.{key}`"));
        let template = defaults
            .get(&section)
            .and_then(|s| s.as_table())
            .and_then(|s| s.get(&key))
            .ok_or_else(unknown)?;
        let value =
            typed_like(template, &raw).map_err(|what| ConfigError(format!("{name}: {what}")))?;
        let table = tree
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let table = table
            .as_table_mut()
            .ok_or_else(|| ConfigError(format!("config key `{section}`: must be a table")))?;
        table.insert(key.clone(), value);
        applied.push((format!("{section}.{key}"), name));
    }
    Ok(applied)
}

/// Reads `raw` as a value of the same TOML type as `template`.
fn typed_like(template: &toml::Value, raw: &str) -> Result<toml::Value, String> {
    let raw = raw.trim();
    Ok(match template {
        toml::Value::String(_) => toml::Value::String(raw.to_string()),
        toml::Value::Integer(_) => toml::Value::Integer(
            raw.parse()
                .map_err(|_| format!("`{raw}` is not an integer"))?,
        ),
        toml::Value::Boolean(_) => match raw {
            "true" | "1" | "yes" => toml::Value::Boolean(true),
            "false" | "0" | "no" => toml::Value::Boolean(false),
            _ => return Err(format!("`{raw}` is not true or false")),
        },
        toml::Value::Array(_) => {
            if raw.starts_with('[') {
                let doc: toml::Table = format!("v = {raw}")
                    .parse()
                    .map_err(|_| format!("`{raw}` is not a TOML array"))?;
                doc["v"].clone()
            } else {
                toml::Value::Array(
                    raw.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| toml::Value::String(s.to_string()))
                        .collect(),
                )
            }
        }
        other => {
            return Err(format!(
                "cannot be set from the environment ({})",
                other.type_str()
            ))
        }
    })
}
