//! Test harness: a real drover API (in process) on a fresh PostgreSQL database and the real
//! Redis, with helpers that log in the way a browser does (legacy step, SRP enrolment, SRP
//! login) using drover-auth's client side.
#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use drover_api::{
    ApiParts, ApiState, ConnectionTest, ConnectionTestResult, DeviceCall, DeviceCallError,
    DeviceCallReply, DeviceRouter, HttpConfig,
};
use drover_auth::hex;
use drover_auth::srp::SrpClient;
use drover_auth::tokens::TokenKeys;
use drover_store::crypto::{Envelope, LocalKek};
use drover_store::testing::TestDb;
use drover_store::{Store, StoreConfig};
use poem::endpoint::BoxEndpoint;
use poem::test::{TestClient, TestResponse};
use poem::{EndpointExt, Response};
use serde_json::{Value, json};
use uuid::Uuid;

/// No device actors run in these tests: every device call meets "not running", which is what
/// a real node answers for a device it does not supervise. Commands are tested end to end in
/// drover-server's tests against the simulator.
#[derive(Debug)]
pub struct NoActors;

#[async_trait::async_trait]
impl DeviceRouter for NoActors {
    async fn call(&self, _call: DeviceCall) -> Result<DeviceCallReply, DeviceCallError> {
        Err(DeviceCallError::NotRunning)
    }
    async fn test_connection(&self, _test: ConnectionTest) -> ConnectionTestResult {
        ConnectionTestResult {
            ok: false,
            latency_ms: 0,
            identity: None,
            version: None,
            certificate_fingerprint: None,
            error: Some("connection refused".into()),
        }
    }
}

pub struct Harness {
    pub db: TestDb,
    pub state: Arc<ApiState>,
    pub client: TestClient<BoxEndpoint<'static, Response>>,
}

/// A logged-in browser or integration.
#[derive(Debug, Clone)]
pub struct Session {
    pub email: String,
    pub user_id: Uuid,
    pub access: String,
    pub refresh: String,
    /// The SRP secret x the account enrolled with.
    pub x: Vec<u8>,
}

pub fn cookie_value(resp: &TestResponse, name: &str) -> Option<String> {
    resp.0
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(|c| c.split(';').next().unwrap()[name.len() + 1..].to_owned())
}

pub fn set_cookie_line(resp: &TestResponse, name: &str) -> Option<String> {
    resp.0
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

pub async fn json_of(resp: TestResponse) -> (u16, Value) {
    let status = resp.0.status().as_u16();
    let body = resp.0.into_body().into_string().await.unwrap();
    let v = serde_json::from_str(&body).unwrap_or(Value::String(body));
    (status, v)
}

impl Harness {
    /// A node with a generous auth rate limit (every test logs in many times from the same
    /// in-process client); the limit itself is tested with the default.
    pub async fn start() -> Self {
        Self::start_with(HttpConfig {
            auth_rate_per_minute: 1000,
            ..HttpConfig::default()
        })
        .await
    }

    pub async fn start_with(mut config: HttpConfig) -> Self {
        let db = TestDb::create().await.unwrap();
        let store = Store::connect(&StoreConfig::new(db.app_url()))
            .await
            .unwrap();
        let kek = LocalKek::new("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", &[]).unwrap();
        let envelope = Arc::new(Envelope::new(Arc::new(kek)));
        let redis = redis::aio::ConnectionManager::new(
            redis::Client::open("redis://127.0.0.1:6379").unwrap(),
        )
        .await
        .unwrap();
        config.redis_prefix = format!("drover-test:{}:", Uuid::new_v4().simple());
        let nats = async_nats::connect("nats://127.0.0.1:4222").await.ok();
        let state = ApiState::new(ApiParts {
            store,
            envelope,
            redis,
            nats,
            config,
            devices: Arc::new(NoActors),
            metrics: None,
            token_keys: TokenKeys::generate_dev().unwrap(),
            fake_challenge_secret: b"test-fake-challenge-secret".to_vec(),
            ready_probes: Vec::new(),
        })
        .unwrap();
        let client = TestClient::new(drover_api::app(state.clone()).boxed());
        Self { db, state, client }
    }

    /// A super_admin with a temporary password, as `drover admin create` makes one.
    pub async fn create_super_admin(&self, email: &str, password: &str) {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.db.owner_url())
            .await
            .unwrap();
        let hash = drover_auth::password::hash(password).unwrap();
        sqlx::query("INSERT INTO users (email, role, legacy_password_hash, must_upgrade_auth) VALUES ($1, 'super_admin', $2, true)")
            .bind(email)
            .bind(hash)
            .execute(&mut conn)
            .await
            .unwrap();
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = self.client.post(path).body_json(&body);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        json_of(req.send().await).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = self.client.get(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        json_of(req.send().await).await
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = self.client.patch(path).body_json(&body);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        json_of(req.send().await).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = self.client.delete(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        json_of(req.send().await).await
    }

    /// Legacy step + SRP enrolment with a fresh random x; returns x.
    pub async fn enrol(&self, email: &str, password: &str) -> Vec<u8> {
        let (s, v) = self
            .post(
                "/api/auth/login",
                None,
                json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        let ticket = v["enrolment_ticket"].as_str().unwrap().to_owned();
        let mut x = vec![0u8; 32];
        rand::fill(&mut x[..]);
        let mut salt = vec![0u8; 32];
        rand::fill(&mut salt[..]);
        let verifier = drover_auth::srp::verifier(&x);
        let (s, v) = self
            .post(
                "/api/auth/srp/enrol",
                None,
                json!({"enrolment_ticket": ticket, "salt": hex::encode(&salt), "verifier": hex::encode(&verifier)}),
            )
            .await;
        assert_eq!(s, 204, "{v}");
        x
    }

    /// SRP login with `x`; asserts success and checks M2 like a real client.
    pub async fn login(&self, email: &str, x: &[u8]) -> Session {
        let (resp, client) = self.srp_login(email, x).await;
        let status = resp.0.status().as_u16();
        let refresh = cookie_value(&resp, "drover_refresh").unwrap_or_default();
        let (_, v) = json_of(resp).await;
        assert_eq!(status, 200, "{v}");
        let m2 = hex::decode(v["m2"].as_str().unwrap()).unwrap();
        assert!(client.verify_m2(&m2), "server proof M2 must verify");
        Session {
            email: email.to_owned(),
            user_id: v["user"]["id"].as_str().unwrap().parse().unwrap(),
            access: v["access_token"].as_str().unwrap().to_owned(),
            refresh,
            x: x.to_vec(),
        }
    }

    /// The two SRP steps; returns the verify response and the client's proof state.
    pub async fn srp_login(
        &self,
        email: &str,
        x: &[u8],
    ) -> (TestResponse, drover_auth::srp::ClientProof) {
        let client = SrpClient::new(&email.to_lowercase(), x).unwrap();
        let (s, init) = self
            .post(
                "/api/auth/srp/init",
                None,
                json!({"email": email, "a": hex::encode(client.a_pub())}),
            )
            .await;
        assert_eq!(s, 200, "{init}");
        let salt = hex::decode(init["salt"].as_str().unwrap()).unwrap();
        let b = hex::decode(init["b"].as_str().unwrap()).unwrap();
        let proof = client.respond(&salt, &b).unwrap();
        let resp = self
            .client
            .post("/api/auth/srp/verify")
            .body_json(&json!({"session_id": init["session_id"], "m1": hex::encode(&proof.m1)}))
            .send()
            .await;
        (resp, proof)
    }

    /// A super_admin, enrolled and logged in.
    pub async fn super_admin(&self) -> Session {
        let email = format!("root-{}@example.com", Uuid::new_v4().simple());
        self.create_super_admin(&email, "correct horse battery")
            .await;
        let x = self.enrol(&email, "correct horse battery").await;
        self.login(&email, &x).await
    }

    pub async fn create_tenant(&self, sa: &Session, name: &str) -> Uuid {
        let (s, v) = self
            .post("/api/tenants", Some(&sa.access), json!({"name": name}))
            .await;
        assert_eq!(s, 200, "{v}");
        v["id"].as_str().unwrap().parse().unwrap()
    }

    /// A user of `tenant` with `role`, created by `admin`, enrolled and logged in.
    pub async fn user(&self, admin: &Session, tenant: Uuid, role: &str) -> Session {
        let email = format!("{role}-{}@example.com", Uuid::new_v4().simple());
        let (s, v) = self
            .post(
                &format!("/api/tenants/{tenant}/users"),
                Some(&admin.access),
                json!({"email": email, "role": role, "password": "temporary password 1"}),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        let x = self.enrol(&email, "temporary password 1").await;
        self.login(&email, &x).await
    }

    pub async fn wait_for<F: Fn() -> bool>(&self, f: F) {
        for _ in 0..100 {
            if f() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
