//! Configuration: the YAML schema (`gateway.yaml`), its validation and CLI overrides.
//!
//! Loading runs in three steps, each reporting every problem it finds with
//! file, line, column and dotted key:
//! 1. `tree` turns the text into a small position-tracking YAML tree
//!    (syntax errors, duplicate keys, anchors/aliases/tags);
//! 2. `schema` walks that tree into a [`Config`], starting from the
//!    defaults in `model` (unknown keys, types, ranges, durations, sizes,
//!    files that must exist);
//! 3. [`Config::apply_overrides`] lays the command-line flags on top
//!    ([`load_file_with`] and [`load_str_with`] run all three).

mod auth;
mod auth_schema;
mod backend;
mod duration;
mod errors;
mod model;
mod overrides;
mod schema;
mod security_schema;
mod tree;
mod walk;
mod xdp;

use std::path::Path;

pub use auth::*;
pub use errors::{ConfigError, ConfigErrors};
pub use model::*;
pub use overrides::Overrides;
pub use xdp::{Cidr, XdpConfig, XdpHealth, XdpMode, XdpNode, parse_cidr, parse_mac};

/// The embedded reference config: every key with its default and a one-line
/// comment, no backends. Loads to exactly [`Config::default()`].
pub const DEFAULT_CONFIG_YAML: &str = include_str!("default.yaml");

/// Loads and validates the config file at `path`.
///
/// Relative file paths inside it (`server.tls.*`, `sessions.key_file`) are
/// resolved against the file's directory. A file that cannot be read is
/// reported as a single error at line 0.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    load_file_with(path, &Overrides::default())
}

/// [`load_file`], then `overrides` on top. A value a flag supplies need not be in the file
/// (`xdp.local_node` with `xdp.nodes`: one file for every node, each told its name).
pub fn load_file_with(path: &Path, overrides: &Overrides) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    let text = read_file(path, &file)?;
    load(&text, &file, path.parent().unwrap_or(Path::new("")), overrides)
}

/// Loads and validates config text; `source_name` is the "file" in errors.
/// Relative file paths are resolved against the current directory.
pub fn load_str(text: &str, source_name: &str) -> Result<Config, ConfigErrors> {
    load_str_with(text, source_name, &Overrides::default())
}

/// [`load_str`], then `overrides` on top (see [`load_file_with`]).
pub fn load_str_with(text: &str, source_name: &str, overrides: &Overrides) -> Result<Config, ConfigErrors> {
    load(text, source_name, Path::new(""), overrides)
}

/// The config file's text, or one error at line 0 saying why it cannot be read.
fn read_file(path: &Path, file: &str) -> Result<String, ConfigErrors> {
    std::fs::read_to_string(path).map_err(|e| {
        let message = match e.kind() {
            std::io::ErrorKind::NotFound => "config file not found".to_owned(),
            std::io::ErrorKind::InvalidData => "config file is not valid UTF-8".to_owned(),
            _ => format!("cannot read config file: {e}"),
        };
        ConfigErrors(vec![ConfigError::new(file, 0, 0, "", message)])
    })
}

fn load(text: &str, file: &str, base_dir: &Path, overrides: &Overrides) -> Result<Config, ConfigErrors> {
    let (root, mut errors) = tree::parse(text, file);
    let mut walker = walk::Walker::new(file, base_dir);
    walker.local_node_from_flag = overrides.xdp_local_node.is_some();
    let mut config = schema::build(&mut walker, root.as_ref());
    errors.append(&mut walker.errors);
    ConfigErrors::check(errors)?;
    config.apply_overrides(overrides)?;
    Ok(config)
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod auth_tests;

#[cfg(test)]
#[path = "load_tests.rs"]
mod load_tests;

#[cfg(test)]
#[path = "schema_tests.rs"]
mod schema_tests;
