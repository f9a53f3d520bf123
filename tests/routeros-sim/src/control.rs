//! The HTTP/JSON control API, served for one in-process fleet or fanned out to worker
//! processes and merged.
//!
//! | request | answer |
//! |---|---|
//! | `GET /health` | `{"ok":true,"devices":N}` |
//! | `GET /devices` | `[{"index","address","tls_port","plain_port","model","identity","legacy_login"}]` |
//! | `GET /stats` | `{"devices":[DeviceStats…]}`; `?device=127.10.0.5` → one `DeviceStats` (404 if unknown) |
//! | `POST /faults` | body `{"target": T, "fault": F}` or `{"clear": T}` → `{"ok":true,"affected":N}` |
//! | `POST /reboot` | body `{"device":"127.10.0.5"}` or `{"index":N}` → `{"ok":true}` (404 if unknown) |
//! | `POST /legacy_login` | body `{"target": T, "on": true}` → `{"ok":true,"affected":N}`: devices answer the modern login with a challenge |
//! | `GET /ca.pem` | the CA certificate PEM |
//!
//! `T` is `"all"`, `{"device":"127.10.0.5"}`, `{"index":N}` or `{"share":0.1[,"salt":N]}`;
//! `F` is a [`crate::Fault`] in its JSON form, e.g. `{"kind":"refuse_login"}`.

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::fault::{Fault, Target};
use crate::fleet::{Fleet, FleetInner, device_info};
use crate::http::{self, Request, Response};
use crate::stop::StopSignal;

/// A worker process as the parent's control server sees it.
#[derive(Debug, Clone)]
pub struct WorkerLink {
    pub control: SocketAddr,
    pub first_index: usize,
    pub devices: usize,
}

#[derive(Debug, Clone)]
enum Backend {
    Local(Arc<FleetInner>),
    Workers {
        workers: Arc<Vec<WorkerLink>>,
        ca_pem: Arc<String>,
    },
}

/// A running control server.
#[derive(Debug)]
pub struct ControlServer {
    addr: SocketAddr,
    stop: StopSignal,
    task: JoinHandle<()>,
}

impl ControlServer {
    /// Serves the control API of `fleet` on `bind` (port 0: an ephemeral port).
    pub async fn start_local(fleet: &Fleet, bind: SocketAddr) -> anyhow::Result<Self> {
        Self::start(Backend::Local(fleet.inner.clone()), bind).await
    }

    /// Serves the control API by fanning out to worker processes.
    pub async fn start_workers(
        workers: Vec<WorkerLink>,
        ca_pem: String,
        bind: SocketAddr,
    ) -> anyhow::Result<Self> {
        Self::start(
            Backend::Workers {
                workers: Arc::new(workers),
                ca_pem: Arc::new(ca_pem),
            },
            bind,
        )
        .await
    }

    async fn start(backend: Backend, bind: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let stop = StopSignal::new();
        let task = tokio::spawn(http::serve(listener, stop.clone(), move |req| {
            let backend = backend.clone();
            async move { route(&backend, req).await }
        }));
        Ok(Self { addr, stop, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub async fn stop(self) {
        self.stop.stop();
        let _ = self.task.await;
    }
}

async fn route(backend: &Backend, req: Request) -> Response {
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/health") => health(backend).await,
        ("GET", "/devices") => devices(backend).await,
        ("GET", "/stats") => stats(backend, &req).await,
        ("POST", "/faults") => faults(backend, &req).await,
        ("POST", "/reboot") => reboot(backend, &req).await,
        ("POST", "/legacy_login") => legacy_login(backend, &req).await,
        ("GET", "/ca.pem") => Response {
            status: 200,
            content_type: "application/x-pem-file",
            body: match backend {
                Backend::Local(f) => f.shared.ca.cert_pem().as_bytes().to_vec(),
                Backend::Workers { ca_pem, .. } => ca_pem.as_bytes().to_vec(),
            },
        },
        (
            _,
            "/health" | "/devices" | "/stats" | "/faults" | "/reboot" | "/legacy_login" | "/ca.pem",
        ) => Response::error(405, "method not allowed"),
        _ => Response::error(404, "no such endpoint"),
    }
}

/// Sends the same request to every worker; returns (status, parsed body) per worker.
async fn fan_out(
    workers: &[WorkerLink],
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> Vec<anyhow::Result<(u16, Value)>> {
    let calls = workers.iter().map(|w| async move {
        let (status, bytes) = http::request(w.control, method, path, body).await?;
        let value: Value = serde_json::from_slice(&bytes)?;
        Ok((status, value))
    });
    futures_join_all(calls).await
}

/// Awaits every future concurrently (a tiny `join_all` on tokio tasks-free polling).
async fn futures_join_all<F, T>(futures: impl IntoIterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T>,
{
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    let mut out = Vec::with_capacity(set.len());
    // Drive them all at once: poll each in turn until all are done.
    let mut results: Vec<Option<T>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if results[i].is_some() {
                continue;
            }
            match f.as_mut().poll(cx) {
                std::task::Poll::Ready(v) => results[i] = Some(v),
                std::task::Poll::Pending => pending = true,
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.extend(results.into_iter().flatten());
    out
}

fn worker_error(e: &anyhow::Error) -> Response {
    Response::error(502, &format!("worker unreachable: {e:#}"))
}

async fn health(backend: &Backend) -> Response {
    match backend {
        Backend::Local(f) => Response::json(200, &json!({"ok": true, "devices": f.devices.len()})),
        Backend::Workers { workers, .. } => {
            let mut devices = 0u64;
            for r in fan_out(workers, "GET", "/health", None).await {
                match r {
                    Ok((200, v)) => devices += v["devices"].as_u64().unwrap_or(0),
                    Ok((s, _)) => return Response::error(502, &format!("worker status {s}")),
                    Err(e) => return worker_error(&e),
                }
            }
            Response::json(
                200,
                &json!({"ok": true, "devices": devices, "workers": workers.len()}),
            )
        }
    }
}

async fn devices(backend: &Backend) -> Response {
    match backend {
        Backend::Local(f) => {
            let list: Vec<_> = f.devices.iter().map(|d| device_info(d)).collect();
            Response::raw_json(200, serde_json::to_vec(&list).unwrap_or_default())
        }
        Backend::Workers { workers, .. } => {
            let mut all = Vec::new();
            for r in fan_out(workers, "GET", "/devices", None).await {
                match r {
                    Ok((200, Value::Array(items))) => all.extend(items),
                    Ok((s, _)) => return Response::error(502, &format!("worker status {s}")),
                    Err(e) => return worker_error(&e),
                }
            }
            Response::raw_json(200, serde_json::to_vec(&all).unwrap_or_default())
        }
    }
}

async fn stats(backend: &Backend, req: &Request) -> Response {
    let device = req.query_param("device");
    match backend {
        Backend::Local(f) => match device {
            Some(addr) => {
                let Ok(ip) = addr.parse() else {
                    return Response::error(400, "bad device address");
                };
                match f.index_of(ip) {
                    Some(i) => Response::raw_json(
                        200,
                        serde_json::to_vec(&f.devices[i].stats()).unwrap_or_default(),
                    ),
                    None => Response::error(404, "no such device"),
                }
            }
            None => {
                let all: Vec<_> = f.devices.iter().map(|d| d.stats()).collect();
                Response::json(200, &json!({ "devices": all }))
            }
        },
        Backend::Workers { workers, .. } => {
            let path = match device {
                Some(d) => format!("/stats?device={d}"),
                None => "/stats".to_owned(),
            };
            let mut all = Vec::new();
            for r in fan_out(workers, "GET", &path, None).await {
                match r {
                    Ok((200, v)) if device.is_some() => return Response::json(200, &v),
                    Ok((200, mut v)) => {
                        if let Value::Array(items) = v["devices"].take() {
                            all.extend(items);
                        }
                    }
                    Ok((404, _)) if device.is_some() => {}
                    Ok((s, _)) => return Response::error(502, &format!("worker status {s}")),
                    Err(e) => return worker_error(&e),
                }
            }
            if device.is_some() {
                return Response::error(404, "no such device");
            }
            Response::json(200, &json!({ "devices": all }))
        }
    }
}

fn parse_body(req: &Request) -> Result<Value, Response> {
    serde_json::from_slice(&req.body).map_err(|e| Response::error(400, &format!("bad JSON: {e}")))
}

async fn faults(backend: &Backend, req: &Request) -> Response {
    let body = match parse_body(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    // Validate here so a bad request is a 400 rather than a worker error.
    let action = if let Some(t) = body.get("clear") {
        match Target::from_json(t) {
            Ok(t) => (t, None),
            Err(e) => return Response::error(400, &e),
        }
    } else {
        let target = match body.get("target").map(Target::from_json) {
            Some(Ok(t)) => t,
            Some(Err(e)) => return Response::error(400, &e),
            None => return Response::error(400, "need \"target\" and \"fault\", or \"clear\""),
        };
        let fault: Fault = match body.get("fault").cloned().map(serde_json::from_value) {
            Some(Ok(f)) => f,
            Some(Err(e)) => return Response::error(400, &format!("bad fault: {e}")),
            None => return Response::error(400, "missing \"fault\""),
        };
        (target, Some(fault))
    };
    match backend {
        Backend::Local(f) => {
            let affected = match &action {
                (t, Some(fault)) => f.set_fault(t, fault),
                (t, None) => f.clear_faults(t),
            };
            Response::json(200, &json!({"ok": true, "affected": affected}))
        }
        Backend::Workers { workers, .. } => {
            let mut affected = 0u64;
            for r in fan_out(workers, "POST", "/faults", Some(&req.body)).await {
                match r {
                    Ok((200, v)) => affected += v["affected"].as_u64().unwrap_or(0),
                    Ok((s, v)) => {
                        return Response::json(s, &v);
                    }
                    Err(e) => return worker_error(&e),
                }
            }
            Response::json(200, &json!({"ok": true, "affected": affected}))
        }
    }
}

async fn reboot(backend: &Backend, req: &Request) -> Response {
    let body = match parse_body(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match backend {
        Backend::Local(f) => {
            let target = if let Some(d) = body.get("device") {
                match d.as_str().and_then(|s| s.parse().ok()) {
                    Some(ip) => Target::Device(ip),
                    None => return Response::error(400, "bad device address"),
                }
            } else if let Some(i) = body.get("index").and_then(Value::as_u64) {
                Target::Index(usize::try_from(i).unwrap_or(usize::MAX))
            } else {
                return Response::error(400, "need \"device\" or \"index\"");
            };
            let devices = f.targets(&target);
            if devices.is_empty() {
                return Response::error(404, "no such device");
            }
            for d in devices {
                d.reboot();
            }
            Response::json(200, &json!({"ok": true}))
        }
        Backend::Workers { workers, .. } => {
            let mut found = false;
            for r in fan_out(workers, "POST", "/reboot", Some(&req.body)).await {
                match r {
                    Ok((200, _)) => found = true,
                    Ok((404, _)) => {}
                    Ok((s, v)) => return Response::json(s, &v),
                    Err(e) => return worker_error(&e),
                }
            }
            if found {
                Response::json(200, &json!({"ok": true}))
            } else {
                Response::error(404, "no such device")
            }
        }
    }
}

async fn legacy_login(backend: &Backend, req: &Request) -> Response {
    let body = match parse_body(req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let target = match body.get("target").map(Target::from_json) {
        Some(Ok(t)) => t,
        Some(Err(e)) => return Response::error(400, &e),
        None => return Response::error(400, "need \"target\" and \"on\""),
    };
    let Some(on) = body.get("on").and_then(Value::as_bool) else {
        return Response::error(400, "need \"on\": true|false");
    };
    match backend {
        Backend::Local(f) => {
            let devices = f.targets(&target);
            for d in &devices {
                d.set_legacy_login(on);
            }
            Response::json(200, &json!({"ok": true, "affected": devices.len()}))
        }
        Backend::Workers { workers, .. } => {
            let mut affected = 0u64;
            for r in fan_out(workers, "POST", "/legacy_login", Some(&req.body)).await {
                match r {
                    Ok((200, v)) => affected += v["affected"].as_u64().unwrap_or(0),
                    Ok((s, v)) => return Response::json(s, &v),
                    Err(e) => return worker_error(&e),
                }
            }
            Response::json(200, &json!({"ok": true, "affected": affected}))
        }
    }
}
