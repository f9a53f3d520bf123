//! Short-lived authentication state in Redis: login sessions, refresh families, the token deny
//! list, per-user token validity, rate limits and single-use tickets.
//!
//! Every key is `<prefix><area>:<id>` (prefix e.g. `drover:`) and every key has a TTL; the
//! areas and TTLs are listed in docs/auth.md. A Redis failure is [`StateError::Unavailable`],
//! which the API answers with 503 — never with "allowed".
//!
//! Identifiers that come from clients (session ids, tickets) are checked to be short URL-safe
//! strings before they become part of a key.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::rng::{RngError, random_bytes};
use crate::srp::PendingLogin;

/// Login sessions live this long between `init` and `verify`.
pub const LOGIN_SESSION_TTL: Duration = Duration::from_secs(60);
/// SSE tickets live this long.
pub const SSE_TICKET_TTL: Duration = Duration::from_secs(30);
/// Longest client-supplied id (session id, ticket) accepted as part of a key.
pub const MAX_ID_LEN: usize = 128;

/// Redis could not be used. The API answers 503 and refuses the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("redis unavailable: {0}")]
    Unavailable(String),
    /// A value in Redis is not what drover wrote (bug, or someone else's key).
    #[error("unexpected value in redis: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Rng(#[from] RngError),
}

impl From<redis::RedisError> for StateError {
    fn from(e: redis::RedisError) -> Self {
        StateError::Unavailable(e.to_string())
    }
}

/// Connect with timeouts that fail fast (a login must not hang on a dead Redis).
pub async fn connect(url: &str) -> Result<ConnectionManager, StateError> {
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(1);
    Ok(client.get_connection_manager_with_config(config).await?)
}

/// A Redis connection and the key prefix. Cheap to clone; every store below wraps one.
#[derive(Clone)]
pub struct Redis {
    conn: ConnectionManager,
    prefix: String,
}

impl fmt::Debug for Redis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redis")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Redis {
    pub fn new(conn: ConnectionManager, prefix: impl Into<String>) -> Self {
        Redis {
            conn,
            prefix: prefix.into(),
        }
    }

    fn key(&self, area: &str, id: &str) -> String {
        format!("{}{area}:{id}", self.prefix)
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    pub fn login_sessions(&self) -> LoginSessions {
        LoginSessions { r: self.clone() }
    }
    pub fn refresh_families(&self) -> RefreshFamilies {
        RefreshFamilies { r: self.clone() }
    }
    pub fn deny_list(&self) -> DenyList {
        DenyList { r: self.clone() }
    }
    pub fn user_validity(&self) -> UserValidity {
        UserValidity {
            r: self.clone(),
            ttl: ttl_of(crate::tokens::REFRESH_TTL),
        }
    }
    pub fn rate_limiter(&self) -> RateLimiter {
        RateLimiter { r: self.clone() }
    }
    pub fn tickets(&self) -> Tickets {
        Tickets { r: self.clone() }
    }
}

fn ttl_of(d: chrono::Duration) -> Duration {
    d.to_std().unwrap_or(Duration::from_secs(1))
}

/// Seconds for EX, at least 1.
fn secs(d: Duration) -> u64 {
    d.as_secs().max(1)
}

/// Milliseconds for PX, at least 1.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// A client-supplied id usable in a key: 1..=128 URL-safe characters.
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// 32 random bytes, URL-safe base64 without padding (43 characters).
pub fn random_id() -> Result<String, RngError> {
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>()?))
}

// ---------------------------------------------------------------- login sessions

/// What the server keeps between SRP `init` and `verify`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginSession {
    pub pending: PendingLogin,
    pub user_id: Uuid,
    /// The lowercase email the session was started for; `verify` must name the same.
    pub email: String,
}

/// `<prefix>login:<session id>` → JSON [`LoginSession`], TTL 60 s, taken once.
#[derive(Debug, Clone)]
pub struct LoginSessions {
    r: Redis,
}

impl LoginSessions {
    /// A fresh session id (43 URL-safe characters).
    pub fn new_session_id() -> Result<String, RngError> {
        random_id()
    }

    pub async fn put(
        &self,
        session_id: &str,
        login: &LoginSession,
        ttl: Duration,
    ) -> Result<(), StateError> {
        if !valid_id(session_id) {
            return Err(StateError::Corrupt("invalid session id".into()));
        }
        let json = serde_json::to_string(login).map_err(|e| StateError::Corrupt(e.to_string()))?;
        let _: () = self
            .r
            .conn()
            .set_ex(self.r.key("login", session_id), json, secs(ttl))
            .await?;
        Ok(())
    }

    /// Take the session (GETDEL): a second take of the same id gets `None`, as does an unknown,
    /// expired or malformed id.
    pub async fn take(&self, session_id: &str) -> Result<Option<LoginSession>, StateError> {
        if !valid_id(session_id) {
            return Ok(None);
        }
        let raw: Option<String> = self
            .r
            .conn()
            .get_del(self.r.key("login", session_id))
            .await?;
        raw.map(|s| serde_json::from_str(&s).map_err(|e| StateError::Corrupt(e.to_string())))
            .transpose()
    }
}

// ---------------------------------------------------------------- refresh families

/// Why a refresh was refused (besides Redis being down).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefreshError {
    /// A refresh token that was already rotated away was presented: the family is now revoked
    /// (the token was probably stolen). Log it; answer 401.
    #[error("refresh token reused; family revoked")]
    Reused,
    /// The family was revoked earlier (logout, reuse, password change).
    #[error("refresh family revoked")]
    Revoked,
    /// No such family (expired, or never started here).
    #[error("unknown refresh family")]
    Unknown,
    #[error(transparent)]
    State(#[from] StateError),
}

impl From<redis::RedisError> for RefreshError {
    fn from(e: redis::RedisError) -> Self {
        RefreshError::State(e.into())
    }
}

const REVOKED: &str = "!revoked";

/// `<prefix>refresh:<family id>` → the current refresh token's jti (or `!revoked`), TTL = the
/// refresh lifetime, renewed on each rotation.
#[derive(Debug, Clone)]
pub struct RefreshFamilies {
    r: Redis,
}

const ROTATE: &str = r#"
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
if cur == ARGV[3] then return -2 end
if cur ~= ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[4])
  return -1
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[4])
return 1
"#;

impl RefreshFamilies {
    /// Start a family at login with its first refresh token.
    pub async fn start(
        &self,
        family_id: Uuid,
        token_id: Uuid,
        ttl: Duration,
    ) -> Result<(), StateError> {
        let _: () = self
            .r
            .conn()
            .set_ex(
                self.r.key("refresh", &family_id.to_string()),
                token_id.to_string(),
                secs(ttl),
            )
            .await?;
        Ok(())
    }

    /// Atomically replace `presented` by `new_token` as the family's current token. If
    /// `presented` is not the current one, the family is revoked and `Reused` returned.
    pub async fn rotate(
        &self,
        family_id: Uuid,
        presented: Uuid,
        new_token: Uuid,
        ttl: Duration,
    ) -> Result<(), RefreshError> {
        let r: i64 = Script::new(ROTATE)
            .key(self.r.key("refresh", &family_id.to_string()))
            .arg(presented.to_string())
            .arg(new_token.to_string())
            .arg(REVOKED)
            .arg(secs(ttl))
            .invoke_async(&mut self.r.conn())
            .await?;
        match r {
            1 => Ok(()),
            0 => Err(RefreshError::Unknown),
            -1 => Err(RefreshError::Reused),
            _ => Err(RefreshError::Revoked),
        }
    }

    /// Revoke the family (logout): every refresh token of it is refused from now on.
    pub async fn revoke(&self, family_id: Uuid, ttl: Duration) -> Result<(), StateError> {
        let _: () = self
            .r
            .conn()
            .set_ex(
                self.r.key("refresh", &family_id.to_string()),
                REVOKED,
                secs(ttl),
            )
            .await?;
        Ok(())
    }
}

// ---------------------------------------------------------------- deny list

/// `<prefix>deny:<revocation id>` → "1", TTL = the token's remaining lifetime.
#[derive(Debug, Clone)]
pub struct DenyList {
    r: Redis,
}

impl DenyList {
    /// Deny these revocation ids (from [`crate::tokens::VerifiedToken::revocation_ids`]) for
    /// `ttl` (use the token's remaining lifetime).
    pub async fn revoke_ids(&self, ids: &[String], ttl: Duration) -> Result<(), StateError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for id in ids {
            pipe.set_ex(self.r.key("deny", id), "1", secs(ttl)).ignore();
        }
        let _: () = pipe.query_async(&mut self.r.conn()).await?;
        Ok(())
    }

    /// Whether any of these ids is denied.
    pub async fn any_revoked(&self, ids: &[String]) -> Result<bool, StateError> {
        if ids.is_empty() {
            return Ok(false);
        }
        let keys: Vec<String> = ids.iter().map(|id| self.r.key("deny", id)).collect();
        let n: u64 = self.r.conn().exists(keys).await?;
        Ok(n > 0)
    }
}

// ---------------------------------------------------------------- user validity

/// `<prefix>valid_after:<user id>` → unix seconds, TTL = the refresh lifetime. A cache of
/// `users.tokens_valid_after`: tokens with `issued_at < valid_after` are refused.
#[derive(Debug, Clone)]
pub struct UserValidity {
    r: Redis,
    ttl: Duration,
}

impl UserValidity {
    pub async fn set_valid_after(
        &self,
        user_id: Uuid,
        time: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let _: () = self
            .r
            .conn()
            .set_ex(
                self.r.key("valid_after", &user_id.to_string()),
                time.timestamp(),
                secs(self.ttl),
            )
            .await?;
        Ok(())
    }

    /// The cached time, or `None` when not cached (then read the database column and call
    /// [`Self::set_valid_after`]).
    pub async fn valid_after(&self, user_id: Uuid) -> Result<Option<DateTime<Utc>>, StateError> {
        let v: Option<i64> = self
            .r
            .conn()
            .get(self.r.key("valid_after", &user_id.to_string()))
            .await?;
        v.map(|s| {
            DateTime::from_timestamp(s, 0)
                .ok_or_else(|| StateError::Corrupt("valid_after out of range".into()))
        })
        .transpose()
    }
}

/// What a request bearing an access token must learn from Redis: whether any of the token's
/// revocation ids is denied ([`DenyList`]) and the user's `valid_after` ([`UserValidity`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessChecks {
    pub revoked: bool,
    pub valid_after: Option<DateTime<Utc>>,
}

/// [`DenyList::any_revoked`] and [`UserValidity::valid_after`] in one round trip (one
/// pipeline): every authenticated request asks both, so this halves its Redis traffic.
pub async fn access_checks(
    deny: &DenyList,
    validity: &UserValidity,
    ids: &[String],
    user_id: Uuid,
) -> Result<AccessChecks, StateError> {
    let mut pipe = redis::pipe();
    if !ids.is_empty() {
        let keys: Vec<String> = ids.iter().map(|id| deny.r.key("deny", id)).collect();
        pipe.exists(keys);
    }
    pipe.get(validity.r.key("valid_after", &user_id.to_string()));
    let (denied, after): (u64, Option<i64>) = if ids.is_empty() {
        let (after,): (Option<i64>,) = pipe.query_async(&mut validity.r.conn()).await?;
        (0, after)
    } else {
        pipe.query_async(&mut deny.r.conn()).await?
    };
    let valid_after = after
        .map(|s| {
            DateTime::from_timestamp(s, 0)
                .ok_or_else(|| StateError::Corrupt("valid_after out of range".into()))
        })
        .transpose()?;
    Ok(AccessChecks {
        revoked: denied > 0,
        valid_after,
    })
}

/// Whether a token issued at `issued_at` is still valid for a user whose tokens are valid
/// after `valid_after` (second precision: a token issued in the same second survives).
pub fn issued_after(issued_at: DateTime<Utc>, valid_after: DateTime<Utc>) -> bool {
    issued_at.timestamp() >= valid_after.timestamp()
}

// ---------------------------------------------------------------- rate limits

/// Over the limit: retry after this long (send it as `Retry-After`, rounded up to seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    /// Whole seconds, rounded up, at least 1 (for the `Retry-After` header).
    pub fn as_header_secs(&self) -> u64 {
        self.0.as_millis().div_ceil(1000).max(1) as u64
    }
}

/// Why a rate-limited request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateLimitError {
    #[error("rate limited; retry after {:?}", .0.0)]
    Limited(RetryAfter),
    #[error(transparent)]
    State(#[from] StateError),
}

impl From<redis::RedisError> for RateLimitError {
    fn from(e: redis::RedisError) -> Self {
        RateLimitError::State(e.into())
    }
}

/// Fixed windows kept by Redis itself: `<prefix>rl:<key>` counts hits and expires (PEXPIRE,
/// Redis's clock) one window after the first hit.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    r: Redis,
}

const HIT: &str = r#"
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if n == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  ttl = tonumber(ARGV[2])
end
if n > tonumber(ARGV[1]) then return ttl end
return -1
"#;

impl RateLimiter {
    /// Count one hit on `key` (e.g. `login:ip:203.0.113.7`, `login:email:<sha256>`): at most
    /// `limit` hits per `window`.
    pub async fn hit(&self, key: &str, limit: u32, window: Duration) -> Result<(), RateLimitError> {
        let retry: i64 = Script::new(HIT)
            .key(self.r.key("rl", key))
            .arg(limit)
            .arg(millis(window))
            .invoke_async(&mut self.r.conn())
            .await?;
        if retry < 0 {
            Ok(())
        } else {
            Err(RateLimitError::Limited(RetryAfter(Duration::from_millis(
                u64::try_from(retry).unwrap_or(0).max(1),
            ))))
        }
    }

    /// Forget the hits on `key` (e.g. after a successful login).
    pub async fn reset(&self, key: &str) -> Result<(), StateError> {
        let _: () = self.r.conn().del(self.r.key("rl", key)).await?;
        Ok(())
    }
}

// ---------------------------------------------------------------- tickets

/// `<prefix>ticket:<kind>:<ticket>` → payload, redeemed once (GETDEL).
#[derive(Debug, Clone)]
pub struct Tickets {
    r: Redis,
}

impl Tickets {
    /// Issue a ticket of `kind` (e.g. `sse`, `enrol`; URL-safe characters) carrying `payload`.
    pub async fn issue(
        &self,
        kind: &str,
        payload: &str,
        ttl: Duration,
    ) -> Result<String, StateError> {
        if !valid_id(kind) {
            return Err(StateError::Corrupt("invalid ticket kind".into()));
        }
        let ticket = random_id()?;
        let ok: bool = redis::cmd("SET")
            .arg(self.r.key("ticket", &format!("{kind}:{ticket}")))
            .arg(payload)
            .arg("PX")
            .arg(millis(ttl))
            .arg("NX")
            .query_async::<Option<String>>(&mut self.r.conn())
            .await?
            .is_some();
        if !ok {
            return Err(StateError::Corrupt("ticket collision".into()));
        }
        Ok(ticket)
    }

    /// Redeem a ticket once: its payload, or `None` when unknown, expired, already redeemed,
    /// or of another kind.
    pub async fn redeem(&self, kind: &str, ticket: &str) -> Result<Option<String>, StateError> {
        if !valid_id(kind) || !valid_id(ticket) {
            return Ok(None);
        }
        Ok(self
            .r
            .conn()
            .get_del(self.r.key("ticket", &format!("{kind}:{ticket}")))
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(valid_id("abc-DEF_123"));
        assert!(!valid_id(""));
        assert!(!valid_id("a:b"));
        assert!(!valid_id("a b"));
        assert!(!valid_id(&"a".repeat(MAX_ID_LEN + 1)));
        let id = random_id().unwrap();
        assert_eq!(id.len(), 43);
        assert!(valid_id(&id));
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(RetryAfter(Duration::from_millis(1)).as_header_secs(), 1);
        assert_eq!(RetryAfter(Duration::from_millis(1001)).as_header_secs(), 2);
        assert_eq!(RetryAfter(Duration::from_secs(60)).as_header_secs(), 60);
    }

    #[test]
    fn validity_is_second_precise() {
        let t = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        assert!(issued_after(t, t));
        assert!(!issued_after(t - chrono::Duration::seconds(1), t));
    }
}
