//! JWT header and claims parsing and validation: raw token text (split, base64, header,
//! unverified issuer), and — so the fuzzer reaches claim validation — arbitrary header
//! and payload JSON signed with the issuer's real HS256 secret. Never a panic; a token
//! is accepted only with a string `sub`, the right `iss` and `aud`, and a numeric `exp`.
#![no_main]

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use mcp_gateway::auth::jwt::{self, Issuer};
use mcp_gateway::auth::keys;
use mcp_gateway::config::{KeyConfig, KeySource};
use sha2::Sha256;

const SECRET: &str = "fuzzing-secret-0123456789abcdef-0123456789";
const ISS: &str = "https://issuer.fuzz";
const AUD: &str = "https://mcp.fuzz/mcp";

fn issuers() -> &'static [Issuer] {
    static ISSUERS: OnceLock<Vec<Issuer>> = OnceLock::new();
    ISSUERS.get_or_init(|| {
        let cfg =
            KeyConfig { kid: Some("k".into()), algorithm: "HS256".into(), source: KeySource::SecretEnv("S".into()) };
        let key = keys::load(&cfg, &[("S", SECRET)]).expect("valid secret");
        vec![Issuer::new(ISS.into(), &[AUD.into()], 60, vec![key], None)]
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().build().expect("runtime"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let token = if mode % 2 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        // header JSON \0 payload JSON, signed for real.
        let mut parts = rest.splitn(2, |b| *b == 0);
        let (header, payload) = (parts.next().unwrap_or(b""), parts.next().unwrap_or(b""));
        let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload));
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
        mac.update(signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    };
    let _ = jwt::inspect(&token);
    if let Ok(v) = runtime().block_on(jwt::verify(issuers(), &token)) {
        assert_eq!(v.issuer, ISS);
        assert!(!v.subject.is_empty());
        assert!(v.exp > 0);
    }
});
