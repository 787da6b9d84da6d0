//! The sealed session-id opener: any text is refused cleanly (never a panic), and
//! claims built from the input survive seal → open unchanged.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use mcp_gateway::session::keys::SessionKeys;
use mcp_gateway::session::token::{Principal, Sealer, SessionClaims, SessionTransport};

const NOW: u64 = 1_780_000_000;

fuzz_target!(|data: &[u8]| {
    let keys = SessionKeys::parse(&"ab".repeat(32), "fuzz").expect("valid key");
    let sealer = Sealer::new(keys, Duration::from_secs(86_400));
    let text = String::from_utf8_lossy(data);
    let _ = sealer.open_at(&text, NOW);
    let _ = sealer.open_at(&format!("g1.{text}"), NOW);

    // Structured: split the input into claim fields and round-trip them.
    let mut parts = text.splitn(4, '\u{0}');
    let backend = parts.next().unwrap_or("").to_owned();
    let upstream = parts.next().unwrap_or("").to_owned();
    let principal = parts
        .next()
        .map(|issuer| Principal { issuer: issuer.to_owned(), subject: parts.next().unwrap_or("").to_owned() });
    let claims = SessionClaims {
        backend,
        upstream_session: upstream,
        transport: if data.first().is_some_and(|b| b & 1 == 1) {
            SessionTransport::LegacySse
        } else {
            SessionTransport::Streamable
        },
        issued_at: NOW,
        principal,
    };
    if let Some(token) = sealer.seal_checked(&claims) {
        assert!(token.bytes().all(|c| (0x21..=0x7e).contains(&c)));
        assert_eq!(sealer.open_at(&token, NOW).expect("own token opens"), claims);
    }
});
