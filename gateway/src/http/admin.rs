//! The admin listener (default `:9090`): `/health` (liveness), `/ready`
//! (readiness: listeners up and at least one backend healthy), `/metrics`
//! (Prometheus text), `/status` (backends as JSON, for humans and `doctor`).

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use serde_json::json;

use super::{GwBody, full};
use crate::gateway::Shared;

/// Serve one admin request.
pub async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<GwBody> {
    // Admin actions (`/admin/…`) need the admin token; the read-only endpoints below stay open.
    if req.uri().path().starts_with("/admin/") {
        return crate::auth::admin::handle(&shared, req).await;
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
    }
    match req.uri().path() {
        "/health" | "/healthz" | "/livez" => json_response(StatusCode::OK, &json!({"status": "ok"})),
        "/ready" | "/readyz" => {
            let ready = shared.backends.any_healthy() && !shared.drain.is_stopping();
            let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            json_response(
                status,
                &json!({
                    "ready": ready,
                    "stopping": shared.drain.is_stopping(),
                    "draining": shared.drain.is_draining(),
                    "backends": backend_status(&shared),
                    "xdp": {
                        "enabled": shared.config.xdp.enabled,
                        "attached": shared.metrics.ebpf_mode.get() == 1,
                    },
                }),
            )
        }
        "/metrics" => Response::builder()
            .header(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")
            .body(full(shared.metrics.render()))
            .unwrap_or_default(),
        "/status" => json_response(
            StatusCode::OK,
            &json!({
                "version": crate::VERSION,
                "draining": shared.drain.is_draining(),
                "backends": backend_status(&shared),
            }),
        ),
        _ => text(StatusCode::NOT_FOUND, "not found: try /health, /ready, /metrics, /status\n"),
    }
}

fn backend_status(shared: &Shared) -> serde_json::Value {
    shared
        .backends
        .all()
        .iter()
        .map(|b| {
            json!({
                "name": &*b.name,
                "url": b.url.to_string(),
                "transport": b.transport.as_str(),
                "healthy": b.is_healthy(),
                "outstanding": b.outstanding(),
                "weight": b.weight,
            })
        })
        .collect()
}

/// A JSON body with a trailing newline (admin answers, here and in `auth::admin`).
pub(crate) fn json_response(status: StatusCode, v: &serde_json::Value) -> Response<GwBody> {
    let mut body = serde_json::to_vec(v).unwrap_or_default();
    body.push(b'\n');
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(full(body))
        .unwrap_or_default()
}

fn text(status: StatusCode, s: &'static str) -> Response<GwBody> {
    Response::builder().status(status).header(header::CONTENT_TYPE, "text/plain").body(full(s)).unwrap_or_default()
}
