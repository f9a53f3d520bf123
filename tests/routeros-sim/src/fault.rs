//! Fault injection: what can go wrong with a device ([`Fault`]), which devices it applies to
//! ([`Target`]), and the per-device set of active faults.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Which devices a fault (or a clear) applies to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Every device.
    All,
    /// One device by global index (the fleet index in one process) — in JSON `{"index": 3}`.
    Index(usize),
    /// One device by address — in JSON `{"device": "127.10.0.5"}`.
    Device(std::net::Ipv4Addr),
    /// A seeded share of the fleet (0.0..=1.0): the same seed picks the same devices, and a
    /// larger share picks a superset. `salt` picks another, independent subset.
    Share { share: f64, salt: u64 },
}

impl Target {
    /// Parses the control-API form: `"all"`, `{"device":"127.10.0.5"}`, `{"index":3}`,
    /// `{"share":0.1}` (optionally with `"salt":N`).
    pub fn from_json(v: &serde_json::Value) -> Result<Self, String> {
        match v {
            serde_json::Value::String(s) if s == "all" => Ok(Self::All),
            serde_json::Value::Object(o) => {
                if let Some(d) = o.get("device") {
                    let s = d.as_str().ok_or("device must be a string address")?;
                    return s
                        .parse()
                        .map(Self::Device)
                        .map_err(|_| format!("bad device address {s:?}"));
                }
                if let Some(i) = o.get("index") {
                    let i = i.as_u64().ok_or("index must be a number")?;
                    return Ok(Self::Index(
                        usize::try_from(i).map_err(|_| "index too big")?,
                    ));
                }
                if let Some(s) = o.get("share") {
                    let share = s.as_f64().ok_or("share must be a number")?;
                    if !(0.0..=1.0).contains(&share) {
                        return Err("share must be within 0..=1".into());
                    }
                    let salt = o.get("salt").and_then(|s| s.as_u64()).unwrap_or(0);
                    return Ok(Self::Share { share, salt });
                }
                Err("target object needs device, index or share".into())
            }
            _ => Err(r#"target must be "all", {"device":..}, {"index":..} or {"share":..}"#.into()),
        }
    }
}

/// How a stalled device behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StallMode {
    /// Accept TCP but never answer the TLS handshake (plain port: never answer anything).
    Handshake,
    /// Finish TLS, then never answer anything, not even `/login`.
    AfterTls,
    /// Answer `/login`, then never answer another command.
    AfterLogin,
}

/// What garbage a device sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GarbageKind {
    /// A reserved control byte (0xF8) where a length prefix should be.
    #[default]
    ControlByte,
    /// 64 random bytes.
    Random,
}

/// A reply latency distribution, applied before the first reply of every command.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "dist", rename_all = "snake_case")]
pub enum Latency {
    Fixed { ms: u64 },
    Uniform { min_ms: u64, max_ms: u64 },
    Exponential { mean_ms: u64 },
}

impl Latency {
    /// Draws one delay (capped at 10 minutes).
    pub fn sample(&self, rng: &mut impl Rng) -> Duration {
        let ms = match *self {
            Self::Fixed { ms } => ms,
            Self::Uniform { min_ms, max_ms } => {
                if max_ms <= min_ms {
                    min_ms
                } else {
                    rng.random_range(min_ms..=max_ms)
                }
            }
            Self::Exponential { mean_ms } => {
                let u: f64 = rng.random_range(f64::EPSILON..1.0);
                (-(u.ln()) * mean_ms as f64) as u64
            }
        };
        Duration::from_millis(ms.min(600_000))
    }
}

/// One injectable fault. In JSON: `{"kind":"refuse_login"}`, `{"kind":"drop","after_replies":3}`,
/// `{"kind":"stall","mode":"after_tls"}`, `{"kind":"garbage","bytes":"random","after_replies":1}`,
/// `{"kind":"slow","latency":{"dist":"uniform","min_ms":10,"max_ms":50}}`,
/// `{"kind":"flap","period_ms":2000,"down_ms":500}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Every login fails as with a wrong password, even with the right one.
    RefuseLogin,
    /// `after_replies == 0`: drop every open connection now and every new one at accept.
    /// Otherwise close each connection after it has sent that many reply sentences
    /// (the login `!done` counts).
    Drop {
        #[serde(default)]
        after_replies: u32,
    },
    /// Accept but never answer, at the chosen stage.
    Stall { mode: StallMode },
    /// After `after_replies` reply sentences, send garbage bytes and close.
    Garbage {
        #[serde(default)]
        bytes: GarbageKind,
        #[serde(default)]
        after_replies: u32,
    },
    /// Delay every command's replies.
    Slow { latency: Latency },
    /// Go down (connections dropped, connects refused) for `down_ms` (default half the
    /// period) in every `period_ms`.
    Flap {
        period_ms: u64,
        #[serde(default)]
        down_ms: Option<u64>,
    },
}

/// The active faults of one device; setting a fault replaces one of the same kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FaultSet {
    pub refuse_login: bool,
    pub drop_after_replies: Option<u32>,
    pub stall: Option<StallMode>,
    pub garbage: Option<(GarbageKind, u32)>,
    pub latency: Option<Latency>,
    pub flap: Option<(Duration, Duration)>,
}

impl FaultSet {
    pub fn apply(&mut self, fault: &Fault) {
        match *fault {
            Fault::RefuseLogin => self.refuse_login = true,
            Fault::Drop { after_replies } => self.drop_after_replies = Some(after_replies),
            Fault::Stall { mode } => self.stall = Some(mode),
            Fault::Garbage {
                bytes,
                after_replies,
            } => self.garbage = Some((bytes, after_replies)),
            Fault::Slow { latency } => self.latency = Some(latency),
            Fault::Flap { period_ms, down_ms } => {
                let period = Duration::from_millis(period_ms.max(20));
                let down = down_ms
                    .map_or(period / 2, Duration::from_millis)
                    .min(period);
                self.flap = Some((period, down));
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_and_targets_parse_from_json() {
        let f: Fault = serde_json::from_str(
            r#"{"kind":"slow","latency":{"dist":"uniform","min_ms":10,"max_ms":50}}"#,
        )
        .expect("slow");
        assert_eq!(
            f,
            Fault::Slow {
                latency: Latency::Uniform {
                    min_ms: 10,
                    max_ms: 50
                }
            }
        );
        let f: Fault = serde_json::from_str(r#"{"kind":"drop"}"#).expect("drop");
        assert_eq!(f, Fault::Drop { after_replies: 0 });
        let t = Target::from_json(&serde_json::json!({"share": 0.25})).expect("share");
        assert_eq!(
            t,
            Target::Share {
                share: 0.25,
                salt: 0
            }
        );
        assert_eq!(
            Target::from_json(&serde_json::json!("all")).expect("all"),
            Target::All
        );
        assert!(Target::from_json(&serde_json::json!({"share": 2.0})).is_err());
    }
}
