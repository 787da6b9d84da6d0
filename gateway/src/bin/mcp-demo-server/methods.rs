//! JSON-RPC method dispatch: `initialize` (version negotiation), `ping`, `tools/list` and
//! `tools/call`. Everything else is "Method not found".

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::protocol::{self, LATEST_VERSION, METHOD_NOT_FOUND, NEGOTIABLE_VERSIONS, Payload};
use crate::tools::{self, CallContext, Reply};

/// Methods this server answers (requests only; any notification is accepted).
pub const KNOWN_METHODS: [&str; 4] = ["initialize", "ping", "tools/list", "tools/call"];

/// Whether `method` is one this server answers.
pub fn is_known(method: &str) -> bool {
    KNOWN_METHODS.contains(&method)
}

#[derive(Deserialize)]
struct InitializeParams<'a> {
    #[serde(borrow, default, rename = "protocolVersion")]
    protocol_version: Option<Cow<'a, str>>,
}

/// The version `initialize` answers: the client's if negotiable, else the latest.
pub fn negotiate(requested: Option<&str>) -> &'static str {
    NEGOTIABLE_VERSIONS.iter().find(|v| Some(**v) == requested).copied().unwrap_or(LATEST_VERSION)
}

fn initialize_result(version: &str) -> String {
    format!(
        concat!(
            r#"{{"protocolVersion":"{}","capabilities":{{"tools":{{"listChanged":false}}}},"#,
            r#""serverInfo":{{"name":"mcp-demo-server","version":"{}"}}}}"#
        ),
        version,
        env!("CARGO_PKG_VERSION")
    )
}

/// Answers one request.
pub async fn handle(ctx: &CallContext<'_>, id: &RawValue, method: &str, params: Option<&RawValue>) -> Reply {
    let inline = |bytes| Reply::Done(Payload::Inline(bytes));
    match method {
        "tools/call" => tools::call(ctx, id, params).await,
        "ping" => inline(protocol::response(id, b"{}")),
        "tools/list" => inline(protocol::response(id, tools::TOOLS_LIST_RESULT.as_bytes())),
        "initialize" => {
            let requested = params
                .and_then(|p| serde_json::from_str::<InitializeParams<'_>>(p.get()).ok())
                .and_then(|p| p.protocol_version);
            let version = negotiate(requested.as_deref());
            inline(protocol::response(id, initialize_result(version).as_bytes()))
        }
        other => inline(protocol::error(Some(id), METHOD_NOT_FOUND, &format!("Method not found: {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;
    use serde_json::Value;

    async fn answer(method: &str, params: Option<&str>) -> Value {
        let headers = HeaderMap::new();
        let ctx = CallContext { server_name: "demo", session: None, headers: &headers, host: None };
        let id: &RawValue = serde_json::from_str("\"req-1\"").unwrap();
        let params: Option<&RawValue> = params.map(|p| serde_json::from_str(p).unwrap());
        match handle(&ctx, id, method, params).await {
            Reply::Done(Payload::Inline(bytes)) => serde_json::from_slice(&bytes).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn negotiation() {
        assert_eq!(negotiate(Some("2025-03-26")), "2025-03-26");
        assert_eq!(negotiate(Some("2025-06-18")), "2025-06-18");
        assert_eq!(negotiate(Some("2025-11-25")), "2025-11-25");
        assert_eq!(negotiate(Some("2024-11-05")), LATEST_VERSION);
        assert_eq!(negotiate(Some("1999-01-01")), LATEST_VERSION);
        assert_eq!(negotiate(None), LATEST_VERSION);
    }

    #[tokio::test]
    async fn initialize_answers_capabilities_and_version() {
        let v = answer(
            "initialize",
            Some(r#"{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}"#),
        )
        .await;
        assert_eq!(v["id"], "req-1");
        assert_eq!(v["result"]["protocolVersion"], "2025-06-18");
        assert_eq!(v["result"]["capabilities"]["tools"]["listChanged"], false);
        assert_eq!(v["result"]["serverInfo"]["name"], "mcp-demo-server");
        let v = answer("initialize", Some(r#"{"protocolVersion":"2099-01-01"}"#)).await;
        assert_eq!(v["result"]["protocolVersion"], LATEST_VERSION);
        let v = answer("initialize", None).await;
        assert_eq!(v["result"]["protocolVersion"], LATEST_VERSION);
    }

    #[tokio::test]
    async fn ping_list_and_unknown() {
        assert_eq!(answer("ping", None).await["result"], serde_json::json!({}));
        let v = answer("tools/list", Some("{}")).await;
        assert_eq!(v["result"]["tools"].as_array().unwrap().len(), 5);
        let v = answer("resources/list", None).await;
        assert_eq!(v["error"]["code"], METHOD_NOT_FOUND);
        assert!(!is_known("resources/list"));
        assert!(is_known("tools/call"));
    }
}
