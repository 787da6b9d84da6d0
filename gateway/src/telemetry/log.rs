//! `tracing` setup: level and format from config, overridden by the environment
//! variables operators already use (`RUST_LOG`, `LOG_LEVEL`, `LOG_FORMAT`).

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LoggingConfig};

/// Full `tracing` filter directives (highest precedence).
pub const ENV_RUST_LOG: &str = "RUST_LOG";
/// A plain level such as `debug` (the seeds' `LOG_LEVEL=debug`).
pub const ENV_LOG_LEVEL: &str = "LOG_LEVEL";
/// `json` or `text`.
pub const ENV_LOG_FORMAT: &str = "LOG_FORMAT";

/// Resolved logging settings, after the environment is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// The filter directive.
    pub filter: String,
    /// Output format.
    pub format: LogFormat,
}

/// Apply env overrides to the configured logging. `env` reads one variable,
/// so tests pass a map instead of touching the process environment.
pub fn resolve(cfg: &LoggingConfig, env: &dyn Fn(&str) -> Option<String>) -> LogSettings {
    let non_empty = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    let filter = non_empty(ENV_RUST_LOG)
        .or_else(|| non_empty(ENV_LOG_LEVEL).map(|l| l.trim().to_ascii_lowercase()))
        .unwrap_or_else(|| cfg.level.clone());
    let format = match non_empty(ENV_LOG_FORMAT).as_deref().map(str::trim) {
        Some(f) if f.eq_ignore_ascii_case("json") => LogFormat::Json,
        Some(f) if f.eq_ignore_ascii_case("text") => LogFormat::Text,
        _ => cfg.format,
    };
    LogSettings { filter, format }
}

/// Install the global subscriber. Returns an error string if the filter is
/// invalid; a second call (tests) is a no-op.
pub fn init(settings: &LogSettings) -> Result<(), String> {
    let filter =
        EnvFilter::try_new(&settings.filter).map_err(|e| format!("invalid log filter {:?}: {e}", settings.filter))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match settings.format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
        LogFormat::Text => builder.with_target(true).try_init(),
    };
    // Already installed (tests start several gateways in one process): keep the first.
    let _ = result;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn env_overrides_config() {
        let cfg = LoggingConfig::default();
        let s = resolve(&cfg, &env_of(&[]));
        assert_eq!(s, LogSettings { filter: "info".into(), format: LogFormat::Text });
        let s = resolve(&cfg, &env_of(&[("LOG_LEVEL", "DEBUG"), ("LOG_FORMAT", "json")]));
        assert_eq!(s, LogSettings { filter: "debug".into(), format: LogFormat::Json });
        let s = resolve(&cfg, &env_of(&[("LOG_LEVEL", "debug"), ("RUST_LOG", "mcp_gateway=trace")]));
        assert_eq!(s.filter, "mcp_gateway=trace");
        let s = resolve(&cfg, &env_of(&[("LOG_FORMAT", "yaml")]));
        assert_eq!(s.format, LogFormat::Text);
    }
}
