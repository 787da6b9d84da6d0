//! Command-line overrides: flags beat the file.
//!
//! Each flag value is validated like its YAML counterpart; errors name the
//! flag as the "file" with line 0, e.g. `--backend:0:0: backends[api]: ...`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::backend::from_flag;
use super::errors::{ConfigError, ConfigErrors};
use super::model::Config;
use super::schema::listeners_clash;
use super::walk::check_readable;

/// CLI overrides (flags beat the file).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--listen ADDR:PORT`: replaces `server.host` + `server.port`.
    pub listen: Option<SocketAddr>,
    /// `--admin-listen ADDR:PORT`: replaces `admin.host` + `admin.port`.
    pub admin_listen: Option<SocketAddr>,
    /// `--session-key-file PATH`: replaces `sessions.key_file` (must exist; relative to the current directory).
    pub session_key_file: Option<PathBuf>,
    /// `--backend NAME=URL`, raw: replaces the file's backend of that name, else is appended.
    pub backends: Vec<String>,
    /// `--xdp-local-node NAME` (`MCP_GATEWAY_XDP_LOCAL_NODE`): replaces `xdp.local_node`; must be
    /// one of `xdp.nodes`. Lets every node of a fleet share one file.
    pub xdp_local_node: Option<String>,
}

impl Config {
    /// Applies `o` on top of this config. On error nothing is changed and
    /// every bad flag is reported.
    pub fn apply_overrides(&mut self, o: &Overrides) -> Result<(), ConfigErrors> {
        let mut next = self.clone();
        let mut errors = Vec::new();
        if let Some(listen) = o.listen {
            next.server.listen = listen;
        }
        if let Some(listen) = o.admin_listen {
            next.admin.listen = listen;
        }
        let listen_flag = o.listen.is_some() || o.admin_listen.is_some();
        if listen_flag && listeners_clash(next.server.listen, next.admin.listen) {
            let flag = if o.admin_listen.is_some() { "--admin-listen" } else { "--listen" };
            let message = format!(
                "the admin listener {} clashes with the server listener {}; use a different port",
                next.admin.listen, next.server.listen
            );
            errors.push(ConfigError::new(flag, 0, 0, "admin.listen", message));
        }
        if let Some(path) = &o.session_key_file {
            match check_readable(path) {
                Ok(()) => next.sessions.key_file = Some(path.clone()),
                Err(message) => errors.push(ConfigError::new("--session-key-file", 0, 0, "sessions.key_file", message)),
            }
        }
        let mut from_flags = HashSet::new();
        for raw in &o.backends {
            let backend = match from_flag(raw) {
                Ok(backend) => backend,
                Err((key, message)) => {
                    errors.push(ConfigError::new("--backend", 0, 0, &key, message));
                    continue;
                }
            };
            if !from_flags.insert(backend.name.clone()) {
                let key = format!("backends[{}]", backend.name);
                errors.push(ConfigError::new("--backend", 0, 0, &key, "backend name given twice on the command line"));
                continue;
            }
            match next.backends.iter_mut().find(|b| b.name == backend.name) {
                Some(existing) => *existing = backend,
                None => next.backends.push(backend),
            }
        }
        if let Some(name) = &o.xdp_local_node {
            if next.xdp.nodes.iter().any(|n| &n.name == name) {
                next.xdp.local_node = Some(name.clone());
            } else {
                let message = if next.xdp.nodes.is_empty() {
                    format!("{name:?} names this gateway's node, but the config lists no xdp.nodes")
                } else {
                    super::xdp::not_a_node(name, &next.xdp.nodes)
                };
                errors.push(ConfigError::new("--xdp-local-node", 0, 0, "xdp.local_node", message));
            }
        }
        ConfigErrors::check(errors)?;
        *self = next;
        Ok(())
    }
}

#[cfg(test)]
#[path = "overrides_tests.rs"]
mod tests;
