//! The HTTP API end to end on real PostgreSQL, Redis and NATS: SRP login and enrolment,
//! tokens (refresh rotation and reuse, logout, revocation on role change), rate limits,
//! cookie flags, API keys, the role matrix over every route of the spec, cross-tenant
//! isolation, hostile input, SSE tickets and resume, and the committed spec.
#![allow(clippy::unwrap_used)]

mod harness;
mod rbac;
mod sse;

use harness::{Harness, cookie_value, json_of, set_cookie_line};
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn committed_spec_matches_the_code() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi.json");
    let spec = drover_api::spec_json();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &spec).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == spec,
        "api/openapi.json differs from the code; regenerate with `UPDATE_OPENAPI=1 cargo nextest run -p drover-api committed_spec` (or `drover export-openapi > api/openapi.json`)"
    );
    // Every operation is typed: an operation id, and JSON error responses for 4xx.
    let v: serde_json::Value = serde_json::from_str(&spec).unwrap();
    for (path, item) in v["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(
                op["operationId"].is_string(),
                "{method} {path} has no operationId"
            );
        }
    }
}

#[tokio::test]
async fn srp_login_sets_strict_http_only_cookies_and_me_works_both_ways() {
    let h = Harness::start().await;
    let email = "first.admin@example.com";
    h.create_super_admin(email, "correct horse battery").await;
    // Before enrolment the account cannot use SRP; the legacy step leads to enrolment.
    let x = h.enrol(email, "correct horse battery").await;
    // After enrolment the legacy password is gone.
    let (s, v) = h
        .post(
            "/api/auth/login",
            None,
            json!({"email": email, "password": "correct horse battery"}),
        )
        .await;
    assert_eq!((s, v["code"].as_str()), (409, Some("srp_required")), "{v}");

    let (resp, proof) = h.srp_login(email, &x).await;
    assert_eq!(resp.0.status().as_u16(), 200);
    let access_line = set_cookie_line(&resp, "drover_access").unwrap();
    let refresh_line = set_cookie_line(&resp, "drover_refresh").unwrap();
    for line in [&access_line, &refresh_line] {
        assert!(line.contains("HttpOnly"), "{line}");
        assert!(line.contains("SameSite=Strict"), "{line}");
        assert!(!line.contains("Secure"), "not behind TLS here: {line}");
    }
    assert!(
        refresh_line.contains("Path=/api/auth/refresh"),
        "{refresh_line}"
    );
    let access_cookie = cookie_value(&resp, "drover_access").unwrap();
    let (_, v) = json_of(resp).await;
    assert!(proof.verify_m2(&drover_auth::hex::decode(v["m2"].as_str().unwrap()).unwrap()));
    assert!(
        v["refresh_token"].is_null(),
        "refresh token only in the httpOnly cookie"
    );

    let (s, me) = h
        .get("/api/auth/me", Some(v["access_token"].as_str().unwrap()))
        .await;
    assert_eq!(s, 200, "{me}");
    assert_eq!(me["email"], email);
    assert_eq!(me["role"], "super_admin");
    let by_cookie = h
        .client
        .get("/api/auth/me")
        .header("cookie", format!("drover_access={access_cookie}"))
        .send()
        .await;
    assert_eq!(by_cookie.0.status().as_u16(), 200);
}

#[tokio::test]
async fn secure_cookies_and_hsts_behind_tls() {
    let h = Harness::start_with(drover_api::HttpConfig {
        public_tls: true,
        auth_rate_per_minute: 1000,
        ..Default::default()
    })
    .await;
    let sa = h.super_admin().await;
    let (resp, _) = h.srp_login(&sa.email, &sa.x).await;
    assert!(
        set_cookie_line(&resp, "drover_access")
            .unwrap()
            .contains("Secure")
    );
    let hsts = resp.0.headers().get("strict-transport-security").cloned();
    assert!(hsts.is_some());
}

#[tokio::test]
async fn wrong_proof_replay_and_unknown_accounts_are_refused_alike() {
    let h = Harness::start().await;
    let sa = h.super_admin().await;
    // Wrong x: 401 invalid_credentials, audited.
    let (resp, _) = h.srp_login(&sa.email, &[7u8; 32]).await;
    let (s, v) = json_of(resp).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (401, Some("invalid_credentials")),
        "{v}"
    );

    // Replaying a used session id fails even with the right proof.
    let client = drover_auth::srp::SrpClient::new(&sa.email, &sa.x).unwrap();
    let (_, init) = h
        .post(
            "/api/auth/srp/init",
            None,
            json!({"email": sa.email, "a": drover_auth::hex::encode(client.a_pub())}),
        )
        .await;
    let salt = drover_auth::hex::decode(init["salt"].as_str().unwrap()).unwrap();
    let b = drover_auth::hex::decode(init["b"].as_str().unwrap()).unwrap();
    let proof = client.respond(&salt, &b).unwrap();
    let body = json!({"session_id": init["session_id"], "m1": drover_auth::hex::encode(&proof.m1)});
    let (s, _) = h.post("/api/auth/srp/verify", None, body.clone()).await;
    assert_eq!(s, 200);
    let (s, v) = h.post("/api/auth/srp/verify", None, body).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (401, Some("invalid_credentials")),
        "{v}"
    );

    // Unknown e-mail: same shape, same salt on every call, and verify fails.
    let a = drover_auth::hex::encode(client.a_pub());
    let (s1, u1) = h
        .post(
            "/api/auth/srp/init",
            None,
            json!({"email": "nobody@example.com", "a": a}),
        )
        .await;
    let (s2, u2) = h
        .post(
            "/api/auth/srp/init",
            None,
            json!({"email": "NOBODY@example.com", "a": a}),
        )
        .await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(u1["salt"], u2["salt"]);
    assert_eq!(
        u1["salt"].as_str().unwrap().len(),
        init["salt"].as_str().unwrap().len()
    );
    let (s, _) = h
        .post(
            "/api/auth/srp/verify",
            None,
            json!({"session_id": u1["session_id"], "m1": "00".repeat(32)}),
        )
        .await;
    assert_eq!(s, 401);

    // The failed proof is in the audit log of the system tenant.
    let (s, audit) = h
        .get(
            &format!("/api/tenants/{}/audit?action=login_failed", Uuid::nil()),
            Some(&sa.access),
        )
        .await;
    assert_eq!(s, 200, "{audit}");
    assert!(!audit["items"].as_array().unwrap().is_empty(), "{audit}");
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_refresh_token_ends_the_family() {
    let h = Harness::start().await;
    let sa = h.super_admin().await;
    let refresh = |tok: String| {
        let h = &h;
        async move {
            let resp = h
                .client
                .post("/api/auth/refresh")
                .header("cookie", format!("drover_refresh={tok}"))
                .body_json(&json!({}))
                .send()
                .await;
            let new = cookie_value(&resp, "drover_refresh");
            let (s, v) = json_of(resp).await;
            (s, v, new)
        }
    };
    let (s, v, r2) = refresh(sa.refresh.clone()).await;
    assert_eq!(s, 200, "{v}");
    let r2 = r2.unwrap();
    assert_ne!(r2, sa.refresh);
    let a2 = v["access_token"].as_str().unwrap().to_owned();
    assert_eq!(h.get("/api/auth/me", Some(&a2)).await.0, 200);
    // The old refresh token again: reuse → the whole family is revoked.
    let (s, v, _) = refresh(sa.refresh.clone()).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (401, Some("refresh_reused")),
        "{v}"
    );
    let (s, _, _) = refresh(r2).await;
    assert_eq!(s, 401, "the rotated token dies with its family");
}

#[tokio::test]
async fn logout_ends_the_access_token_at_once() {
    let h = Harness::start().await;
    let sa = h.super_admin().await;
    assert_eq!(h.get("/api/auth/me", Some(&sa.access)).await.0, 200);
    let (s, _) = h
        .post("/api/auth/logout", Some(&sa.access), json!({}))
        .await;
    assert_eq!(s, 204);
    let (s, v) = h.get("/api/auth/me", Some(&sa.access)).await;
    assert_eq!((s, v["code"].as_str()), (401, Some("token_revoked")), "{v}");
}

#[tokio::test]
async fn auth_endpoints_are_rate_limited_per_account() {
    let h = Harness::start_with(drover_api::HttpConfig::default()).await;
    let mut last = (0, serde_json::Value::Null);
    for _ in 0..6 {
        let resp = h
            .client
            .post("/api/auth/login")
            .body_json(&json!({"email": "victim@example.com", "password": "guess guess guess"}))
            .send()
            .await;
        let retry = resp.0.headers().get("retry-after").cloned();
        last = json_of(resp).await;
        if last.0 == 429 {
            assert!(retry.is_some(), "429 carries Retry-After");
        }
    }
    assert_eq!(
        (last.0, last.1["code"].as_str()),
        (429, Some("rate_limited")),
        "{}",
        last.1
    );
}

#[tokio::test]
async fn tenant_admin_cannot_make_a_super_admin_and_role_changes_end_sessions() {
    let h = Harness::start().await;
    let sa = h.super_admin().await;
    let t = h.create_tenant(&sa, "Acme").await;
    let admin = h.user(&sa, t, "tenant_admin").await;
    let (s, v) = h
        .post(
            &format!("/api/tenants/{t}/users"),
            Some(&admin.access),
            json!({"email": "evil@example.com", "role": "super_admin", "password": "temporary password 1"}),
        )
        .await;
    assert_eq!(s, 403, "{v}");
    let op = h.user(&admin, t, "operator").await;
    let (s, v) = h
        .patch(
            &format!("/api/tenants/{t}/users/{}", op.user_id),
            Some(&admin.access),
            json!({"role": "super_admin"}),
        )
        .await;
    assert_eq!(s, 403, "{v}");
    // Demote the operator to viewer: the operator's current token stops working at once.
    // (Token times are whole seconds: a token minted in the very second of a revocation
    // still passes, so let the login's second end first.)
    assert_eq!(h.get("/api/auth/me", Some(&op.access)).await.0, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (s, v) = h
        .patch(
            &format!("/api/tenants/{t}/users/{}", op.user_id),
            Some(&admin.access),
            json!({"role": "viewer"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(h.get("/api/auth/me", Some(&op.access)).await.0, 401);
    // Nothing about it leaked into the audit trail's absence: the change is recorded.
    let (_, audit) = h
        .get(
            &format!("/api/tenants/{t}/audit?action=user_update"),
            Some(&admin.access),
        )
        .await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 1, "{audit}");
}

#[tokio::test]
async fn api_keys_work_until_revoked_and_are_shown_once() {
    let h = Harness::start().await;
    let sa = h.super_admin().await;
    let t = h.create_tenant(&sa, "Keys Inc").await;
    let admin = h.user(&sa, t, "tenant_admin").await;
    let (s, k) = h
        .post(
            &format!("/api/tenants/{t}/api-keys"),
            Some(&admin.access),
            json!({"name": "grafana", "role": "viewer"}),
        )
        .await;
    assert_eq!(s, 200, "{k}");
    let key = k["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("drv_"));
    let (s, v) = h
        .get(&format!("/api/tenants/{t}/devices"), Some(&key))
        .await;
    assert_eq!(s, 200, "{v}");
    // A viewer key cannot add devices.
    let (s, _) = h
        .post(
            &format!("/api/tenants/{t}/devices"),
            Some(&key),
            json!({"name": "r1", "address": "10.0.0.1", "username": "a", "password": "b"}),
        )
        .await;
    assert_eq!(s, 403);
    let (_, list) = h
        .get(&format!("/api/tenants/{t}/api-keys"), Some(&admin.access))
        .await;
    let listed = list.to_string();
    assert!(!listed.contains(&key), "the key is never shown again");
    let (s, _) = h
        .delete(
            &format!("/api/tenants/{t}/api-keys/{}", k["id"].as_str().unwrap()),
            Some(&admin.access),
        )
        .await;
    assert_eq!(s, 204);
    let (s, v) = h
        .get(&format!("/api/tenants/{t}/devices"), Some(&key))
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (401, Some("api_key_revoked")),
        "{v}"
    );
}

#[tokio::test]
async fn hostile_requests_get_clear_json_errors_and_change_nothing() {
    let h = Harness::start_with(drover_api::HttpConfig {
        max_body_bytes: 4096,
        auth_rate_per_minute: 1000,
        ..Default::default()
    })
    .await;
    let sa = h.super_admin().await;
    let t = h.create_tenant(&sa, "Hostile").await;
    let devices = format!("/api/tenants/{t}/devices");
    let auth = format!("Bearer {}", sa.access);
    // Malformed JSON.
    let resp = h
        .client
        .post(&devices)
        .header("authorization", &auth)
        .content_type("application/json")
        .body("{\"name\": ")
        .send()
        .await;
    let (s, v) = json_of(resp).await;
    assert_eq!(s, 400, "{v}");
    assert!(v["code"].is_string() && v["request_id"].is_string(), "{v}");
    // Unknown field.
    let (s, v) = h
        .post(&devices, Some(&sa.access), json!({"name": "r", "address": "10.0.0.1", "username": "a", "password": "b", "is_admin": true}))
        .await;
    assert_eq!(s, 400, "{v}");
    // Oversized body.
    let big = "x".repeat(10_000);
    let big_body = format!("{{\"name\":\"{big}\"}}");
    let resp = h
        .client
        .post(&devices)
        .header("authorization", &auth)
        .header("content-length", big_body.len().to_string())
        .content_type("application/json")
        .body(big_body)
        .send()
        .await;
    assert_eq!(resp.0.status().as_u16(), 413);
    // Forged and expired-looking tokens.
    let (s, v) = h.get(&devices, Some("not-a-token")).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (401, Some("unauthenticated")),
        "{v}"
    );
    let (s, _) = h.get(&devices, None).await;
    assert_eq!(s, 401);
    // Unknown route: JSON 404.
    let (s, v) = h.get("/api/no/such/route", None).await;
    assert_eq!((s, v["code"].as_str()), (404, Some("not_found")), "{v}");
    // Bad query values.
    let (s, _) = h
        .get(&format!("{devices}?limit=100000"), Some(&sa.access))
        .await;
    assert_eq!(s, 400);
    let (s, _) = h
        .get(&format!("{devices}?status=exploded"), Some(&sa.access))
        .await;
    assert_eq!(s, 422);
    let (s, v) = h
        .get(&format!("{devices}?count=bogus"), Some(&sa.access))
        .await;
    assert_eq!((s, v["code"].as_str()), (400, Some("bad_request")), "{v}");
    assert!(
        v["message"].as_str().is_some_and(|m| m.contains("count")),
        "{v}"
    );
    // Nothing was created.
    let (_, page) = h.get(&devices, Some(&sa.access)).await;
    assert_eq!(page["total"], 0, "{page}");
    // Security headers on every response.
    let resp = h.client.get("/health").send().await;
    for hname in [
        "content-security-policy",
        "x-frame-options",
        "x-content-type-options",
        "referrer-policy",
        "x-request-id",
    ] {
        assert!(resp.0.headers().contains_key(hname), "missing {hname}");
    }
}

#[tokio::test]
async fn devices_crud_search_and_audit_in_the_same_transaction() {
    let h = Harness::start().await;
    let sa = h.super_admin().await;
    let t = h.create_tenant(&sa, "Fleet Co").await;
    let op = h.user(&sa, t, "operator").await;
    let base = format!("/api/tenants/{t}/devices");
    let (s, d) = h
        .post(&base, Some(&op.access), json!({"name": "core-rtr-1", "address": "10.1.0.1", "username": "api", "password": "s3cret-pass", "tls_mode": "insecure"}))
        .await;
    assert_eq!(s, 200, "{d}");
    assert!(
        !d.to_string().contains("s3cret-pass"),
        "no secret in responses"
    );
    let id = d["id"].as_str().unwrap();
    let (s, bulk) = h
        .post(
            &format!("{base}/bulk"),
            Some(&op.access),
            json!({"username": "api", "password": "pw", "devices": (0..50).map(|i| json!({"name": format!("edge-{i}"), "address": format!("10.2.0.{i}")})).collect::<Vec<_>>()}),
        )
        .await;
    assert_eq!(s, 200, "{bulk}");
    assert_eq!(bulk["created"].as_array().unwrap().len(), 50);
    // Search, sort, page.
    let (_, page) = h
        .get(
            &format!("{base}?q=edge-1&sort=name&limit=5"),
            Some(&op.access),
        )
        .await;
    assert_eq!(page["total"], 11, "{page}");
    assert_eq!(page["items"].as_array().unwrap().len(), 5);
    assert_eq!(page["items"][0]["name"], "edge-1");
    // The total's modes: a small result is exact by default; `none` knows only the page.
    assert_eq!(
        (&page["total_is_exact"], &page["has_more"]),
        (&json!(true), &json!(true)),
        "{page}"
    );
    let (_, page) = h
        .get(
            &format!("{base}?sort=name&limit=10&count=none"),
            Some(&op.access),
        )
        .await;
    assert_eq!(
        (&page["total"], &page["total_is_exact"], &page["has_more"]),
        (&json!(11), &json!(false), &json!(true)),
        "{page}"
    );
    for count in ["exact", "estimate", "bounded"] {
        let (s, page) = h
            .get(
                &format!("{base}?limit=10&offset=20&count={count}"),
                Some(&op.access),
            )
            .await;
        assert_eq!(s, 200, "{page}");
        assert_eq!(
            (&page["total"], &page["total_is_exact"]),
            (&json!(51), &json!(true)),
            "count={count}: {page}"
        );
    }
    // Tags and groups in the list (one statement since the page, count and labels were
    // merged): sorted by name, and each listed device as its own GET shows it.
    let label = |kind: &'static str, name: &'static str| {
        let h = &h;
        let op = &op;
        async move {
            let (s, v) = h
                .post(
                    &format!("/api/tenants/{t}/{kind}"),
                    Some(&op.access),
                    json!({ "name": name }),
                )
                .await;
            assert_eq!(s, 200, "{v}");
            v["id"].as_str().unwrap().to_owned()
        }
    };
    let blue = label("tags", "blue").await;
    let amber = label("tags", "amber").await;
    let core = label("groups", "core").await;
    let (_, edge1) = h
        .get(
            &format!("{base}?q=edge-1&sort=name&limit=2"),
            Some(&op.access),
        )
        .await;
    let labelled: Vec<&str> = edge1["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(labelled.len(), 2, "{edge1}");
    let (s, v) = h
        .post(
            &format!("{base}/bulk-update"),
            Some(&op.access),
            json!({"device_ids": labelled, "add_tag_ids": [blue, amber], "group_id": core}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    for count in ["bounded", "exact", "estimate", "none"] {
        let (_, page) = h
            .get(
                &format!("{base}?q=edge-1&sort=name&limit=5&count={count}"),
                Some(&op.access),
            )
            .await;
        let items = page["items"].as_array().unwrap();
        assert_eq!(items.len(), 5, "{page}");
        for (i, d) in items.iter().enumerate() {
            let (tags, groups) = if i < 2 {
                (json!(["amber", "blue"]), json!(["core"]))
            } else {
                (json!([]), json!([]))
            };
            assert_eq!((&d["tags"], &d["groups"]), (&tags, &groups), "{d}");
            let (s, one) = h
                .get(
                    &format!("{base}/{}", d["id"].as_str().unwrap()),
                    Some(&op.access),
                )
                .await;
            assert_eq!(s, 200, "{one}");
            assert_eq!(*d, one, "listed and fetched differ");
        }
    }
    // A duplicate in a bulk request: refused whole, naming the row.
    let (s, v) = h
        .post(&format!("{base}/bulk"), Some(&op.access), json!({"username": "a", "password": "b", "devices": [{"name": "x", "address": "10.9.9.9"}, {"name": "y", "address": "10.9.9.9"}]}))
        .await;
    assert_eq!(s, 422, "{v}");
    assert!(v["message"].as_str().unwrap().contains("devices[1]"), "{v}");
    // Patch, then delete needs tenant_admin.
    let (s, v) = h
        .patch(
            &format!("{base}/{id}"),
            Some(&op.access),
            json!({"name": "core-rtr-01"}),
        )
        .await;
    assert_eq!((s, v["name"].as_str()), (200, Some("core-rtr-01")));
    assert_eq!(
        h.delete(&format!("{base}/{id}"), Some(&op.access)).await.0,
        403
    );
    assert_eq!(
        h.delete(&format!("{base}/{id}"), Some(&sa.access)).await.0,
        204
    );
    assert_eq!(
        h.get(&format!("{base}/{id}"), Some(&op.access)).await.0,
        404
    );
    // A command to a device nobody supervises: a clear 503, audited with its outcome.
    let other = bulk["created"][0].as_str().unwrap();
    let (s, v) = h
        .post(
            &format!("{base}/{other}/commands"),
            Some(&op.access),
            json!({"path": "/interface", "action": "print"}),
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (503, Some("device_not_running")),
        "{v}"
    );
    let (s, v) = h
        .post(
            &format!("{base}/{other}/commands"),
            Some(&op.access),
            json!({"path": "/system/reset-configuration", "action": "print"}),
        )
        .await;
    assert_eq!(s, 403, "{v}");
    let (_, audit) = h
        .get(&format!("/api/tenants/{t}/audit"), Some(&sa.access))
        .await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    for a in [
        "device_create",
        "device_bulk_add",
        "device_update",
        "device_delete",
        "config_print",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    // Fleet summary counts what is there.
    let (_, sum) = h
        .get(&format!("/api/tenants/{t}/fleet/summary"), Some(&op.access))
        .await;
    assert_eq!(sum["total"], 50, "{sum}");
}

#[tokio::test]
async fn readiness_reports_each_dependency() {
    let h = Harness::start().await;
    let (s, v) = h.get("/health/ready", None).await;
    assert_eq!(s, 200, "{v}");
    let names: Vec<&str> = v["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["postgresql", "redis", "nats"]);
    let (s, v) = h.get("/health", None).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("ok")));
}
