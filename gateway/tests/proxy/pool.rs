//! `connection_pool.max_conns_per_host` bounds requests in flight, not open
//! streams: a server→client GET stream holds no slot, while requests beyond
//! the limit wait `acquire_timeout` and then get 503 `pool_exhausted`.

use std::time::Duration;

use serde_json::json;

use crate::common::process::Demo;
use crate::common::rpc::{call, client, expect_gw_error, get_stream, open_session, post, whoami};
use crate::common::{KeyFile, Setup, bounded, key};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_streams_do_not_use_request_slots() {
    bounded(async {
        let demo = Demo::start("a").await;
        let keys = KeyFile::new(&[key(71)]);
        let gw = Setup::new(&keys)
            .backend("a", &demo.url)
            .pool("max_conns_per_host: 1")
            .pool("acquire_timeout: 300ms")
            .start()
            .await;
        let c = client();
        let sid = open_session(&c, &gw.mcp).await;
        // Two open GET streams: with a limit of one slot, they must not take it.
        let mut streams = Vec::new();
        for _ in 0..2 {
            let resp = get_stream(&c, &gw.mcp, &sid).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            streams.push(resp);
        }
        let who = whoami(&c, &gw.mcp, Some(&sid)).await;
        assert_eq!(who["server"], "a", "a request must still get the slot while streams are open");

        // The one slot held by a slow call: a second call waits acquire_timeout, then 503.
        let slow = {
            let (c, url, sid) = (c.clone(), gw.mcp.clone(), sid.clone());
            tokio::spawn(async move { post(&c, &url, &call(5, "sleep", json!({"ms": 1500})), Some(&sid)).send().await })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let resp = post(&c, &gw.mcp, &call(6, "whoami", json!({})), Some(&sid)).send().await.unwrap();
        expect_gw_error(resp, 503, -32603, "pool_exhausted").await;
        assert_eq!(slow.await.unwrap().unwrap().status(), 200);
        assert!(gw.metric("mcp_pool_exhausted_total{backend=\"a\"}").await.unwrap() >= 1.0);
        drop(streams);
    })
    .await;
}
