//! The upstream HTTP/1.1 response reader (`proxy::h1`): any bytes from a backend, no
//! panic and no unbounded work, and the same answer however the bytes are split across
//! reads. The first input byte picks the request method, the next four the read sizes.
#![no_main]

use http::Method;
use libfuzzer_sys::fuzz_target;
use mcp_gateway::proxy::h1::read_response;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let (pieces, bytes) = rest.split_at(rest.len().min(4));
    let method = if pick & 1 == 0 { Method::GET } else { Method::HEAD };
    let answer = |pieces: &[u8]| {
        read_response(bytes, &method, pieces).map(|(head, body)| (head.status(), head.headers().len(), body))
    };
    let whole = answer(&[255]);
    let split = answer(if pieces.is_empty() { &[1] } else { pieces });
    match (&whole, &split) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(a), Err(b)) => assert_eq!(std::mem::discriminant(a), std::mem::discriminant(b), "{a} / {b}"),
        _ => panic!("whole {whole:?} vs split {split:?}"),
    }
    if let Ok((_, _, body)) = &whole {
        assert!(body.len() <= bytes.len());
    }
});
