//! drover-auth's Redis state against a real Redis (127.0.0.1:6379, or `DROVER_TEST_REDIS_URL`),
//! each test under its own key prefix.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use drover_auth::srp;
use drover_auth::state::{
    self, LoginSession, LoginSessions, RateLimitError, Redis, RefreshError, StateError,
};
use redis::AsyncCommands;
use uuid::Uuid;

fn url() -> String {
    std::env::var("DROVER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into())
}

async fn redis() -> Redis {
    let conn = state::connect(&url())
        .await
        .expect("redis at 127.0.0.1:6379");
    Redis::new(conn, format!("drover-test:{}:", Uuid::new_v4().simple()))
}

fn login(email: &str) -> LoginSession {
    let ch = srp::start_login(email, &[1; 32], &srp::verifier(&[2; 32])).unwrap();
    LoginSession {
        pending: ch.session,
        user_id: Uuid::new_v4(),
        email: email.into(),
    }
}

#[tokio::test]
async fn login_session_is_single_use() {
    let r = redis().await;
    let s = r.login_sessions();
    let id = LoginSessions::new_session_id().unwrap();
    let l = login("a@example.com");
    s.put(&id, &l, state::LOGIN_SESSION_TTL).await.unwrap();
    let got = s.take(&id).await.unwrap().unwrap();
    assert_eq!(got.user_id, l.user_id);
    assert_eq!(got.pending.b_pub(), l.pending.b_pub());
    assert!(s.take(&id).await.unwrap().is_none(), "replayed session id");
    assert!(s.take("unknown").await.unwrap().is_none());
    assert!(s.take("bad:id with spaces").await.unwrap().is_none());
    assert!(s.take("").await.unwrap().is_none());
}

#[tokio::test]
async fn login_session_has_ttl_and_prefix() {
    let r = redis().await;
    let id = LoginSessions::new_session_id().unwrap();
    r.login_sessions()
        .put(&id, &login("b@example.com"), state::LOGIN_SESSION_TTL)
        .await
        .unwrap();
    let mut conn = state::connect(&url()).await.unwrap();
    let keys: Vec<String> = conn.keys(format!("{}*", prefix_of(&r))).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert!(keys[0].ends_with(&format!("login:{id}")));
    let ttl: i64 = conn.ttl(&keys[0]).await.unwrap();
    assert!((1..=60).contains(&ttl), "{ttl}");
}

fn prefix_of(r: &Redis) -> String {
    // Debug shows the prefix (and nothing else)
    let d = format!("{r:?}");
    let start = d.find("drover-test:").unwrap();
    d[start..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn refresh_rotation_and_reuse() {
    let r = redis().await;
    let f = r.refresh_families();
    let ttl = Duration::from_secs(600);
    let family = Uuid::new_v4();
    let t1 = Uuid::new_v4();
    let t2 = Uuid::new_v4();
    let t3 = Uuid::new_v4();
    f.start(family, t1, ttl).await.unwrap();
    f.rotate(family, t1, t2, ttl).await.unwrap();
    f.rotate(family, t2, t3, ttl).await.unwrap();
    // t1 presented again: stolen — the whole family goes
    assert_eq!(
        f.rotate(family, t1, Uuid::new_v4(), ttl).await.unwrap_err(),
        RefreshError::Reused
    );
    // even the legitimate holder of t3 is out now
    assert_eq!(
        f.rotate(family, t3, Uuid::new_v4(), ttl).await.unwrap_err(),
        RefreshError::Revoked
    );
    assert_eq!(
        f.rotate(Uuid::new_v4(), t1, t2, ttl).await.unwrap_err(),
        RefreshError::Unknown
    );
    let other = Uuid::new_v4();
    f.start(other, t1, ttl).await.unwrap();
    f.revoke(other, ttl).await.unwrap();
    assert_eq!(
        f.rotate(other, t1, t2, ttl).await.unwrap_err(),
        RefreshError::Revoked
    );
}

#[tokio::test]
async fn concurrent_rotation_lets_one_win() {
    let r = redis().await;
    let f = r.refresh_families();
    let ttl = Duration::from_secs(600);
    let family = Uuid::new_v4();
    let t1 = Uuid::new_v4();
    f.start(family, t1, ttl).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            f.rotate(family, t1, Uuid::new_v4(), ttl).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap().is_ok() {
            ok += 1;
        }
    }
    assert_eq!(ok, 1);
}

#[tokio::test]
async fn deny_list() {
    let r = redis().await;
    let d = r.deny_list();
    let a = vec!["aa".to_string(), "bb".to_string()];
    assert!(!d.any_revoked(&a).await.unwrap());
    assert!(!d.any_revoked(&[]).await.unwrap());
    d.revoke_ids(&["bb".to_string()], Duration::from_secs(60))
        .await
        .unwrap();
    assert!(d.any_revoked(&a).await.unwrap());
    assert!(!d.any_revoked(&["cc".to_string()]).await.unwrap());
}

#[tokio::test]
async fn user_validity() {
    let r = redis().await;
    let v = r.user_validity();
    let user = Uuid::new_v4();
    assert_eq!(v.valid_after(user).await.unwrap(), None);
    let t = chrono::DateTime::from_timestamp(1_900_000_000, 0).unwrap();
    v.set_valid_after(user, t).await.unwrap();
    assert_eq!(v.valid_after(user).await.unwrap(), Some(t));
}

/// One round trip answers both questions, with and without revocation ids, and agrees with
/// the two separate reads.
#[tokio::test]
async fn access_checks_read_deny_list_and_validity_together() {
    let prefix = format!("drover-test:{}:", Uuid::new_v4().simple());
    let r = Redis::new(state::connect(&url()).await.unwrap(), prefix.clone());
    let (d, v) = (r.deny_list(), r.user_validity());
    let user = Uuid::new_v4();
    let ids = vec!["aa".to_string(), "bb".to_string()];
    let none = state::access_checks(&d, &v, &ids, user).await.unwrap();
    assert_eq!((none.revoked, none.valid_after), (false, None));
    let t = chrono::DateTime::from_timestamp(1_900_000_000, 0).unwrap();
    v.set_valid_after(user, t).await.unwrap();
    d.revoke_ids(&["bb".to_string()], Duration::from_secs(60))
        .await
        .unwrap();
    let both = state::access_checks(&d, &v, &ids, user).await.unwrap();
    assert_eq!((both.revoked, both.valid_after), (true, Some(t)));
    let no_ids = state::access_checks(&d, &v, &[], user).await.unwrap();
    assert_eq!((no_ids.revoked, no_ids.valid_after), (false, Some(t)));
    let other = state::access_checks(&d, &v, &["cc".to_string()], Uuid::new_v4())
        .await
        .unwrap();
    assert_eq!((other.revoked, other.valid_after), (false, None));
    // a corrupt value is an error, not a pass
    let mut c = state::connect(&url()).await.unwrap();
    let key = format!("{prefix}valid_after:{user}");
    let _: () = c.set(&key, i64::MAX).await.unwrap();
    assert!(state::access_checks(&d, &v, &ids, user).await.is_err());
}

#[tokio::test]
async fn rate_limit_returns_retry_after() {
    let r = redis().await;
    let rl = r.rate_limiter();
    let window = Duration::from_secs(30);
    for _ in 0..3 {
        rl.hit("login:ip:198.51.100.1", 3, window).await.unwrap();
    }
    match rl.hit("login:ip:198.51.100.1", 3, window).await {
        Err(RateLimitError::Limited(ra)) => {
            assert!(ra.0 <= window && ra.0 > Duration::from_secs(25), "{ra:?}");
            assert!(ra.as_header_secs() <= 30);
        }
        other => panic!("{other:?}"),
    }
    // other keys are independent
    rl.hit("login:ip:198.51.100.2", 3, window).await.unwrap();
    rl.reset("login:ip:198.51.100.1").await.unwrap();
    rl.hit("login:ip:198.51.100.1", 3, window).await.unwrap();
}

#[tokio::test]
async fn rate_limit_window_expires() {
    let r = redis().await;
    let rl = r.rate_limiter();
    let window = Duration::from_millis(300);
    rl.hit("k", 1, window).await.unwrap();
    assert!(rl.hit("k", 1, window).await.is_err());
    assert!(drover_testkit::eventually!(
        Duration::from_secs(3),
        rl.hit("k", 1, window).await.is_ok()
    ));
}

#[tokio::test]
async fn tickets_are_single_use() {
    let r = redis().await;
    let t = r.tickets();
    let ticket = t
        .issue("sse", "user-payload", state::SSE_TICKET_TTL)
        .await
        .unwrap();
    assert!(
        t.redeem("enrol", &ticket).await.unwrap().is_none(),
        "other kind"
    );
    assert_eq!(
        t.redeem("sse", &ticket).await.unwrap().as_deref(),
        Some("user-payload")
    );
    assert!(
        t.redeem("sse", &ticket).await.unwrap().is_none(),
        "second redeem"
    );
    assert!(t.redeem("sse", "nope").await.unwrap().is_none());
    assert!(t.redeem("sse", "a:b").await.unwrap().is_none());
    let short = t
        .issue("sse", "p", Duration::from_millis(100))
        .await
        .unwrap();
    assert!(drover_testkit::eventually!(
        Duration::from_secs(3),
        t.redeem("sse", &short).await.unwrap().is_none()
    ));
}

#[tokio::test]
async fn redis_down_is_a_distinct_error() {
    // nothing listens on port 1
    let err = state::connect("redis://127.0.0.1:1/").await.unwrap_err();
    assert!(matches!(err, StateError::Unavailable(_)), "{err:?}");
}
