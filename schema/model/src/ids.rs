//! Typed ids, so a tenant id can never be passed where a device id is expected.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn new_random() -> Self {
                Self(Uuid::new_v4())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// A tenant: an organisation whose devices and users are isolated from all others.
    TenantId
);
uuid_id!(
    /// A device (router) supervised by drover.
    DeviceId
);

impl DeviceId {
    /// A stable 64-bit hash of the id, used to spread poll phases and pick shards.
    pub fn stable_hash(&self) -> u64 {
        let b = self.0.as_bytes();
        let hi = u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        let lo = u64::from_be_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]);
        // splitmix64 finaliser over both halves: ids that differ in one bit spread widely.
        let mut z = hi ^ lo.rotate_left(32);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Number of shards devices are mapped to; cluster ownership is decided per shard.
pub const SHARD_COUNT: u32 = 4096;

/// A shard: a fixed slice of the device id space, the unit of cluster ownership.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ShardId(pub u32);

impl DeviceId {
    /// The shard this device belongs to; fixed for the device's lifetime.
    pub fn shard(&self) -> ShardId {
        ShardId((self.stable_hash() % u64::from(SHARD_COUNT)) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_and_parse_as_plain_uuids() {
        let id = DeviceId::new_random();
        assert_eq!(id.to_string().parse::<DeviceId>().unwrap(), id);
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{id}\""));
    }

    #[test]
    fn stable_hash_spreads_sequential_ids() {
        let buckets = (0u128..1000)
            .map(|n| DeviceId(Uuid::from_u128(n)).stable_hash() % 10)
            .fold([0u32; 10], |mut acc, b| {
                acc[b as usize] += 1;
                acc
            });
        assert!(
            buckets.iter().all(|&c| (60..=140).contains(&c)),
            "{buckets:?}"
        );
    }
}
