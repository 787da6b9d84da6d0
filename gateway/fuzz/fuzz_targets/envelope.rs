//! The JSON-RPC envelope parser and the pre-parse depth scan: any bytes, no panic,
//! and the two agree (a body the depth scan accepts parses without unbounded work);
//! the one-pass reading (`parse_within`) agrees with both.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_gateway::auth::limits::check_depth;
use mcp_gateway::mcp::envelope::{self, Body};

fuzz_target!(|data: &[u8]| {
    let _ = check_depth(data, 128);
    // The one-pass reading, whenever it answers, answers exactly as depth check + full parse.
    for max in [4, 128] {
        if let Some(fast) = envelope::parse_within(data, max) {
            assert!(check_depth(data, max).is_ok());
            assert_eq!(format!("{fast:?}"), format!("{:?}", envelope::parse(data)));
        }
    }
    match envelope::parse(data) {
        Ok(body) => {
            assert!(!body.is_empty());
            let _ = (body.first_id(), body.first_method(), body.is_initialize());
            for env in body.messages() {
                let _ = env.label();
            }
            if let Body::Batch(items) = &body {
                assert!(!items.is_empty());
            }
        }
        Err(e) => {
            // The gateway's own error answer must always be valid JSON.
            let answer = e.to_body();
            assert!(std::str::from_utf8(&answer).is_ok());
        }
    }
});
