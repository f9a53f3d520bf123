//! Shard leases in Redis, with fencing epochs.
//!
//! A lease is the key `drover:{cluster}:lease:{shard}` holding `"{owner}|{epoch}"`, set with
//! `SET … PX ttl` only when absent; the epoch comes from `INCR drover:{cluster}:epoch:{shard}`,
//! so every new holder of a shard has a strictly larger epoch than any before it. Renewal
//! extends the expiry only when the key still holds this owner *and* this epoch; release
//! deletes it under the same condition. Each operation covers many shards in one Lua script
//! (one round trip, atomic), in chunks.
//!
//! Expiry is decided by Redis alone (`PX`, Redis's clock); node clocks are never read or
//! compared. A node measures only its own elapsed time: a lease it renewed with a request
//! *sent* at `t` is treated as valid locally until `t + ttl − margin`, which is earlier than
//! the moment Redis can expire it (Redis starts the `PX` countdown when it *runs* the
//! script, after `t`).
//!
//! A graceful release also leaves a hand-over marker `drover:{cluster}:idle:{shard}`: the
//! old owner's wall-clock time (unix ms) at which it stopped polling the shard's devices.
//! The next acquire reads and deletes it. Poll slots are points of a wall-clock grid whose
//! nominal times every node computes alike, and the old owner polled slot `k` exactly when
//! its own clock had passed `k` before it stopped, so "slot `k` is at or after the marker"
//! means "nobody served it" whatever the new owner's clock says: the new owner may catch it
//! up. (Lease expiry never reads this marker or any node clock.) A lease that expired
//! instead leaves no marker, and the new owner counts from its own acquire.

use std::time::{Duration, Instant};

use redis::Script;
use redis::aio::ConnectionManager;

/// Shards per script call.
const CHUNK: usize = 512;

/// KEYS: (lease, epoch, idle) per shard; ARGV: owner, ttl. Returns (epoch or 0, hand-over
/// marker or -1) per shard.
const ACQUIRE: &str = r"
local out = {}
for i = 1, #KEYS, 3 do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    local e = redis.call('INCR', KEYS[i + 1])
    redis.call('SET', KEYS[i], ARGV[1] .. '|' .. e, 'PX', ARGV[2])
    out[#out + 1] = e
    local idle = tonumber(redis.call('GET', KEYS[i + 2]) or '')
    redis.call('DEL', KEYS[i + 2])
    if idle then
      out[#out + 1] = idle
    else
      out[#out + 1] = -1
    end
  else
    out[#out + 1] = 0
    out[#out + 1] = -1
  end
end
return out
";

const RENEW: &str = r"
local out = {}
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] .. '|' .. ARGV[i + 2] then
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
";

/// KEYS: (lease, idle) per shard; ARGV: owner, marker ttl, then (epoch, stop time in unix
/// ms) per shard.
const RELEASE: &str = r"
local n = 0
for i = 1, #KEYS, 2 do
  local j = (i + 1) / 2
  if redis.call('GET', KEYS[i]) == ARGV[1] .. '|' .. ARGV[2 * j + 1] then
    redis.call('DEL', KEYS[i])
    redis.call('SET', KEYS[i + 1], ARGV[2 * j + 2], 'PX', ARGV[2])
    n = n + 1
  end
end
return n
";
/// Lease settings.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// Key prefix: `drover:{cluster}`.
    pub prefix: String,
    /// This node's name (the lease owner); must not contain `|`.
    pub owner: String,
    pub ttl: Duration,
    /// Subtracted from `ttl` for the local deadline.
    pub margin: Duration,
}

/// This node's wall clock in unix ms (for hand-over markers only).
pub fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Who holds a shard's lease, as Redis says now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    pub owner: String,
    pub epoch: u64,
}

/// A granted or renewed lease: the epoch and the local deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Granted {
    pub shard: u32,
    pub epoch: u64,
    pub valid_until: Instant,
    /// This grant's reply (for a renewal: its start). Without a hand-over marker, no node
    /// polled the shard's devices from here on: the old lease had expired, so its owner had
    /// stopped before.
    pub idle_since: Instant,
    /// The old owner's hand-over marker: its wall-clock unix ms when it stopped polling
    /// (slots at or after it were served by nobody). `None` after an expiry or for a
    /// shard never held.
    pub handed_over_at_ms: Option<u64>,
}

/// Lease operations against one Redis.
#[derive(Clone)]
pub struct Leases {
    cfg: LeaseConfig,
    conn: ConnectionManager,
    acquire: Script,
    renew: Script,
    release: Script,
}

impl std::fmt::Debug for Leases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leases")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl Leases {
    /// Connects (with reconnection and a response timeout shorter than the local deadline).
    pub async fn connect(url: &str, cfg: LeaseConfig) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let budget = cfg
            .ttl
            .saturating_sub(cfg.margin)
            .max(Duration::from_millis(200));
        let mgr_cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(budget / 2))
            .set_response_timeout(Some(budget / 2))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn = client.get_connection_manager_with_config(mgr_cfg).await?;
        Ok(Self {
            cfg,
            conn,
            acquire: Script::new(ACQUIRE),
            renew: Script::new(RENEW),
            release: Script::new(RELEASE),
        })
    }

    pub fn config(&self) -> &LeaseConfig {
        &self.cfg
    }

    fn lease_key(&self, shard: u32) -> String {
        format!("{}:lease:{shard}", self.cfg.prefix)
    }

    fn epoch_key(&self, shard: u32) -> String {
        format!("{}:epoch:{shard}", self.cfg.prefix)
    }

    fn idle_key(&self, shard: u32) -> String {
        format!("{}:idle:{shard}", self.cfg.prefix)
    }

    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.cfg.ttl.as_millis()).unwrap_or(u64::MAX)
    }

    fn deadline(&self, started: Instant) -> Instant {
        started + self.cfg.ttl.saturating_sub(self.cfg.margin)
    }

    /// Tries to take the leases of `shards` that nobody holds. Returns the ones granted.
    pub async fn acquire(&self, shards: &[u32]) -> redis::RedisResult<Vec<Granted>> {
        let mut out = Vec::new();
        for chunk in shards.chunks(CHUNK) {
            let started = Instant::now();
            let mut inv = self.acquire.prepare_invoke();
            for s in chunk {
                inv.key(self.lease_key(*s))
                    .key(self.epoch_key(*s))
                    .key(self.idle_key(*s));
            }
            inv.arg(&self.cfg.owner).arg(self.ttl_ms());
            let reply: Vec<i64> = inv.invoke_async(&mut self.conn.clone()).await?;
            // Taken after the reply: Redis ran the script (and the old lease was gone) before.
            let replied = Instant::now();
            let valid_until = self.deadline(started);
            out.extend(
                chunk
                    .iter()
                    .zip(reply.chunks_exact(2))
                    .filter(|(_, r)| r[0] > 0)
                    .map(|(s, r)| Granted {
                        shard: *s,
                        epoch: r[0].unsigned_abs(),
                        valid_until,
                        idle_since: replied,
                        handed_over_at_ms: u64::try_from(r[1]).ok(),
                    }),
            );
        }
        Ok(out)
    }

    /// Renews `held` (shard, epoch). Returns the renewed leases with their new deadline;
    /// shards missing from the result are lost (expired, or someone else holds them).
    /// (`idle_since` of a renewal is meaningless; it is the renewal's start.)
    pub async fn renew(&self, held: &[(u32, u64)]) -> redis::RedisResult<Vec<Granted>> {
        let mut out = Vec::new();
        for chunk in held.chunks(CHUNK) {
            let started = Instant::now();
            let mut inv = self.renew.prepare_invoke();
            for (s, _) in chunk {
                inv.key(self.lease_key(*s));
            }
            inv.arg(&self.cfg.owner).arg(self.ttl_ms());
            for (_, e) in chunk {
                inv.arg(*e);
            }
            let ok: Vec<u8> = inv.invoke_async(&mut self.conn.clone()).await?;
            let valid_until = self.deadline(started);
            out.extend(
                chunk
                    .iter()
                    .zip(ok)
                    .filter(|(_, ok)| *ok == 1)
                    .map(|((s, e), _)| Granted {
                        shard: *s,
                        epoch: *e,
                        valid_until,
                        idle_since: started,
                        handed_over_at_ms: None,
                    }),
            );
        }
        Ok(out)
    }

    /// Gives up `held` (shard, epoch, stopped) leases still held under that epoch, leaving
    /// hand-over markers that say this node stopped polling each at `stopped` (unix ms on
    /// its wall clock); returns how many.
    pub async fn release(&self, held: &[(u32, u64, u64)]) -> redis::RedisResult<u64> {
        let mut n = 0;
        // Markers outlive any lease gap worth catching up, then vanish on their own.
        let marker_ttl = self.ttl_ms().saturating_mul(10).max(60_000);
        for chunk in held.chunks(CHUNK) {
            let mut inv = self.release.prepare_invoke();
            for (s, _, _) in chunk {
                inv.key(self.lease_key(*s)).key(self.idle_key(*s));
            }
            inv.arg(&self.cfg.owner).arg(marker_ttl);
            for (_, epoch, stopped) in chunk {
                inv.arg(*epoch).arg(*stopped);
            }
            let released: u64 = inv.invoke_async(&mut self.conn.clone()).await?;
            n += released;
        }
        Ok(n)
    }

    /// Who holds `shard` now, per Redis.
    pub async fn holder(&self, shard: u32) -> redis::RedisResult<Option<LeaseHolder>> {
        let v: Option<String> = redis::cmd("GET")
            .arg(self.lease_key(shard))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(v.and_then(|v| parse_value(&v)))
    }
}

/// `"{owner}|{epoch}"` → holder; `None` for anything else.
pub fn parse_value(v: &str) -> Option<LeaseHolder> {
    let (owner, epoch) = v.rsplit_once('|')?;
    Some(LeaseHolder {
        owner: owner.to_owned(),
        epoch: epoch.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn lease_values_parse() {
        assert_eq!(
            super::parse_value("node-a|42"),
            Some(super::LeaseHolder {
                owner: "node-a".into(),
                epoch: 42
            })
        );
        assert_eq!(super::parse_value("garbage"), None);
        assert_eq!(super::parse_value("a|x"), None);
    }
}
