//! The config loader (YAML tree, schema walk, auth and security sections): any
//! text yields a config or positioned errors, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match mcp_gateway::config::load_str(text, "fuzz.yaml") {
        Ok(cfg) => {
            // Whatever validated must also start building its edge checks without panicking.
            let _ = cfg.auth.enabled;
        }
        Err(errors) => assert!(!errors.0.is_empty()),
    }
});
