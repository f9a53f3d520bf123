//! The role matrix: every operation of the spec, called by super_admin, the tenant's
//! tenant_admin, operator and viewer, an anonymous client and another tenant's admin, is
//! allowed or refused exactly as docs/api.md's table says.
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::{Harness, Session};

/// Who may call an operation (docs/api.md, "Roles").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Min {
    Public,
    AnyUser,
    Viewer,
    Operator,
    TenantAdmin,
    SuperAdmin,
}

fn required(op: &str) -> Option<Min> {
    use Min::*;
    Some(match op {
        "health" | "health_ready" | "metrics" => Public,
        // The login flow and SSE (ticket) are exercised by their own tests.
        "srp_init" | "srp_verify" | "legacy_login" | "srp_enrol" | "refresh" | "sse_subscribe" => {
            return None;
        }
        // These end or replace the caller's own session; tested on their own.
        "logout" | "change_password" => return None,
        "me" | "list_tenants" => AnyUser,
        "sse_ticket"
        | "get_tenant"
        | "list_devices"
        | "get_device"
        | "device_metrics"
        | "device_status_history"
        | "fleet_summary"
        | "list_groups"
        | "list_tags"
        | "list_sites" => Viewer,
        "create_device"
        | "bulk_add_devices"
        | "update_device"
        | "bulk_update_devices"
        | "test_new_connection"
        | "test_device_connection"
        | "run_device_command"
        | "create_group"
        | "delete_group"
        | "create_tag"
        | "delete_tag"
        | "create_site"
        | "delete_site" => Operator,
        "update_tenant"
        | "list_users"
        | "create_user"
        | "update_user"
        | "delete_user"
        | "reset_user_password"
        | "list_api_keys"
        | "create_api_key"
        | "revoke_api_key"
        | "list_audit"
        | "delete_device" => TenantAdmin,
        "create_tenant" | "delete_tenant" => SuperAdmin,
        other => panic!("operation {other} is missing from the role matrix (docs/api.md)"),
    })
}

fn uniq() -> String {
    Uuid::new_v4().simple().to_string()[..10].to_owned()
}

fn body_for(op: &str, tenant: Uuid, device: &str) -> Value {
    let u = uniq();
    match op {
        "create_tenant" => json!({"name": format!("t-{u}")}),
        "update_tenant" => json!({"description": "x"}),
        "create_user" => {
            json!({"email": format!("u-{u}@example.com"), "role": "viewer", "password": "temporary password 1"})
        }
        "update_user" => json!({"name": "renamed"}),
        "reset_user_password" => json!({"password": "temporary password 2"}),
        "create_api_key" => json!({"name": format!("k-{u}"), "role": "viewer"}),
        "create_device" => {
            json!({"name": format!("d-{u}"), "address": format!("h-{u}.example"), "username": "a", "password": "b"})
        }
        "bulk_add_devices" => {
            json!({"username": "a", "password": "b", "devices": [{"name": format!("d-{u}"), "address": format!("b-{u}.example")}]})
        }
        "update_device" => json!({"notes": "x"}),
        "bulk_update_devices" => json!({"device_ids": [device]}),
        "test_new_connection" => {
            json!({"address": "127.0.0.1", "api_port": 1, "username": "a", "password": "b", "tls_mode": "insecure"})
        }
        "run_device_command" => json!({"path": "/interface", "action": "print"}),
        "create_group" | "create_tag" | "create_site" => json!({"name": format!("n-{u}")}),
        "sse_ticket" => json!({"tenant_id": tenant}),
        _ => json!({}),
    }
}

struct World {
    sa: Session,
    tenant: Uuid,
    admin: Session,
    operator: Session,
    viewer: Session,
    other_admin: Session,
}

async fn fixture(h: &Harness, w: &World, kind: &str) -> String {
    let t = w.tenant;
    let u = uniq();
    let (path, body) = match kind {
        "device_id" => (
            format!("/api/tenants/{t}/devices"),
            json!({"name": format!("f-{u}"), "address": format!("f-{u}.example"), "username": "a", "password": "b"}),
        ),
        "user_id" => (
            format!("/api/tenants/{t}/users"),
            json!({"email": format!("f-{u}@example.com"), "role": "viewer", "password": "temporary password 1"}),
        ),
        "key_id" => (
            format!("/api/tenants/{t}/api-keys"),
            json!({"name": format!("f-{u}"), "role": "viewer"}),
        ),
        "group_id" => (
            format!("/api/tenants/{t}/groups"),
            json!({"name": format!("f-{u}")}),
        ),
        "tag_id" => (
            format!("/api/tenants/{t}/tags"),
            json!({"name": format!("f-{u}")}),
        ),
        "site_id" => (
            format!("/api/tenants/{t}/sites"),
            json!({"name": format!("f-{u}")}),
        ),
        other => panic!("no fixture for {other}"),
    };
    let (s, v) = h.post(&path, Some(&w.admin.access), body).await;
    assert_eq!(s, 200, "{kind}: {v}");
    v["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn every_route_allows_and_refuses_by_role_and_tenant() {
    let h = Harness::start().await;
    let sa = h.super_admin().await;
    let tenant = h.create_tenant(&sa, "Matrix A").await;
    let other = h.create_tenant(&sa, "Matrix B").await;
    let admin = h.user(&sa, tenant, "tenant_admin").await;
    let operator = h.user(&sa, tenant, "operator").await;
    let viewer = h.user(&sa, tenant, "viewer").await;
    let other_admin = h.user(&sa, other, "tenant_admin").await;
    let w = World {
        sa,
        tenant,
        admin,
        operator,
        viewer,
        other_admin,
    };

    let spec: Value = serde_json::from_str(&drover_api::spec_json()).unwrap();
    let mut checked = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let op_id = op["operationId"].as_str().unwrap();
            let Some(min) = required(op_id) else { continue };
            let actors: [(&str, Option<&Session>, bool); 6] = [
                ("anonymous", None, min == Min::Public),
                (
                    "other tenant's admin",
                    Some(&w.other_admin),
                    matches!(min, Min::Public | Min::AnyUser),
                ),
                ("viewer", Some(&w.viewer), min <= Min::Viewer),
                ("operator", Some(&w.operator), min <= Min::Operator),
                ("tenant_admin", Some(&w.admin), min <= Min::TenantAdmin),
                // API keys belong to a user of the tenant; a super_admin has no tenant.
                ("super_admin", Some(&w.sa), op_id != "create_api_key"),
            ];
            for (who, session, allowed) in actors {
                // Fresh targets for every call, so a delete by one actor does not hide the
                // answer for the next.
                let mut concrete = path.replace("{tenant_id}", &w.tenant.to_string());
                let mut device = String::new();
                for kind in [
                    "device_id",
                    "user_id",
                    "key_id",
                    "group_id",
                    "tag_id",
                    "site_id",
                ] {
                    if concrete.contains(&format!("{{{kind}}}")) {
                        let id = fixture(&h, &w, kind).await;
                        if kind == "device_id" {
                            device = id.clone();
                        }
                        concrete = concrete.replace(&format!("{{{kind}}}"), &id);
                    }
                }
                if device.is_empty() && op_id == "bulk_update_devices" {
                    device = fixture(&h, &w, "device_id").await;
                }
                if op_id == "delete_tenant" {
                    let victim = h.create_tenant(&w.sa, &format!("victim-{}", uniq())).await;
                    concrete = path.replace("{tenant_id}", &victim.to_string());
                }
                let token = session.map(|s| s.access.as_str());
                let body = body_for(op_id, w.tenant, &device);
                let (status, v) = match method.as_str() {
                    "get" => h.get(&concrete, token).await,
                    "post" => h.post(&concrete, token, body).await,
                    "patch" => h.patch(&concrete, token, body).await,
                    "delete" => h.delete(&concrete, token).await,
                    m => panic!("method {m}"),
                };
                let tenant_hidden = status == 404 && v["message"] == "tenant not found";
                if allowed {
                    assert!(
                        status != 401
                            && status != 403
                            && !tenant_hidden
                            && (status < 500 || (op_id == "run_device_command" && status == 503)),
                        "{who} must be allowed {method} {path} ({op_id}), got {status} {v}"
                    );
                } else {
                    let expected = match who {
                        "anonymous" => status == 401,
                        "other tenant's admin" => status == 404 || status == 403,
                        _ => status == 403,
                    };
                    assert!(
                        expected,
                        "{who} must be refused {method} {path} ({op_id}), got {status} {v}"
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 40 * 6, "only {checked} calls checked");
}
