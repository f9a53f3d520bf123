//! SSE: tickets are single use and tenant-bound, events of the tenant arrive with their
//! stream sequence as id, other tenants' events never do, and `Last-Event-ID` replays what
//! was published while the client was away.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use uuid::Uuid;

use crate::harness::Harness;

async fn publish(
    js: &async_nats::jetstream::Context,
    subject: String,
    body: serde_json::Value,
) -> u64 {
    js.publish(subject, body.to_string().into())
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence
}

/// Reads SSE frames until `n` events (not comments) arrived or 10 s passed.
async fn read_events(body: poem::Body, n: usize) -> Vec<(String, Option<String>, String)> {
    let mut stream = body.into_bytes_stream();
    let mut buf = String::new();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while out.len() < n {
        let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(deadline, stream.next()).await else {
            break;
        };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let (mut event, mut id, mut data) = (String::from("message"), None, String::new());
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    event = v.to_owned();
                } else if let Some(v) = line.strip_prefix("id: ") {
                    id = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push_str(v);
                }
            }
            if !data.is_empty() {
                out.push((event, id, data));
            }
        }
    }
    out
}

#[tokio::test]
async fn tickets_resume_and_tenant_isolation() {
    let h = Harness::start().await;
    let nats = async_nats::connect("nats://127.0.0.1:4222").await.unwrap();
    let js = async_nats::jetstream::new(nats.clone());
    for cfg in drover_node::publisher::StreamLimits::default().stream_configs() {
        js.get_or_create_stream(cfg).await.unwrap();
    }
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    h.state.sse.clone().run(nats.clone(), stop);
    let sa = h.super_admin().await;
    let t = h.create_tenant(&sa, "Live").await;
    let other = h.create_tenant(&sa, "Elsewhere").await;
    let viewer = h.user(&sa, t, "viewer").await;

    // A viewer of tenant t may not ask for a ticket of another tenant.
    let (s, _) = h
        .post(
            "/api/auth/sse-ticket",
            Some(&viewer.access),
            json!({"tenant_id": other}),
        )
        .await;
    assert_eq!(s, 404);
    let (s, v) = h
        .post(
            "/api/auth/sse-ticket",
            Some(&viewer.access),
            json!({"tenant_id": t}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let ticket = v["ticket"].as_str().unwrap().to_owned();

    let url = format!("/api/sse/subscribe?tenant_id={t}&ticket={ticket}");
    let resp = h.client.get(&url).send().await;
    assert_eq!(resp.0.status().as_u16(), 200);
    // The ticket is single use.
    let again = h.client.get(&url).send().await;
    assert_eq!(again.0.status().as_u16(), 401);

    let device = Uuid::new_v4();
    // Give the hub's consumer a moment to attach, then publish: one event of another tenant
    // first (must not arrive), then two of ours.
    tokio::time::sleep(Duration::from_millis(500)).await;
    publish(
        &js,
        format!("device.status.{other}.{device}"),
        json!({"secret": "other tenant"}),
    )
    .await;
    let s1 = publish(&js, format!("device.status.{t}.{device}"), json!({"n": 1})).await;
    let s2 = publish(&js, format!("config.change.{t}.{device}"), json!({"n": 2})).await;
    let got = read_events(resp.0.into_body(), 2).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].0, "device.status");
    assert_eq!(got[0].1.as_deref(), Some(s1.to_string().as_str()));
    assert_eq!(got[1].0, "config.change");
    assert_eq!(got[1].1.as_deref(), Some(s2.to_string().as_str()));
    assert!(got.iter().all(|e| !e.2.contains("other tenant")));

    // Away: two more events; reconnect with Last-Event-ID = s2 and get exactly them.
    let s3 = publish(&js, format!("device.status.{t}.{device}"), json!({"n": 3})).await;
    let s4 = publish(&js, format!("alert.fired.{t}"), json!({"n": 4})).await;
    let (_, v) = h
        .post(
            "/api/auth/sse-ticket",
            Some(&viewer.access),
            json!({"tenant_id": t}),
        )
        .await;
    let url = format!(
        "/api/sse/subscribe?tenant_id={t}&ticket={}",
        v["ticket"].as_str().unwrap()
    );
    let resp = h
        .client
        .get(&url)
        .header("Last-Event-ID", s2.to_string())
        .send()
        .await;
    assert_eq!(resp.0.status().as_u16(), 200);
    let got = read_events(resp.0.into_body(), 2).await;
    let ids: Vec<String> = got.iter().filter_map(|e| e.1.clone()).collect();
    assert_eq!(ids, vec![s3.to_string(), s4.to_string()], "{got:?}");
}
