//! Time series: daily partitions created ahead and dropped past retention
//! ([`Maintenance`], run as the owner role), and range queries with an automatic bucket size
//! that let PostgreSQL prune partitions ([`health_series`], [`interface_series`],
//! [`wireless_series`]).
//!
//! Samples live in `device_samples`, one row per device poll (interfaces as parallel arrays,
//! migration 5). Rows written before migration 5 stay in the read-only `*_v1` tables until
//! retention drops their partitions; the range queries read both.

use std::fmt;

use chrono::{DateTime, Duration as ChronoDuration, NaiveDate, TimeZone, Utc};
use sea_orm::{
    ConnectionTrait, Database, DatabaseConnection, DbBackend, FromQueryResult, Statement,
    TransactionTrait,
};
use uuid::Uuid;

use crate::{Result, TenantTx};

/// The partitioned tables the recorder writes, all `PARTITION BY RANGE (time)` with one
/// partition per UTC day: partitions are created ahead and dropped past retention.
pub const PARTITIONED_TABLES: &[&str] = &["device_samples"];

/// The tables of the schema before migration 5 (one row per health, interface and wireless
/// figure), read-only since: nothing creates partitions for them any more, and their
/// partitions are dropped past retention like the others, so they empty themselves.
pub const LEGACY_PARTITIONED_TABLES: &[&str] = &[
    "health_samples_v1",
    "interface_samples_v1",
    "wireless_samples_v1",
];

/// How far back data is kept and how far ahead partitions exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Days of samples kept (default 90). Partitions whose whole day is older are dropped.
    pub days: u32,
    /// Days of partitions created ahead of today (default 3).
    pub ahead_days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            days: 90,
            ahead_days: 3,
        }
    }
}

impl Retention {
    /// From `DROVER_METRICS_RETENTION_DAYS` (1..=3650, default 90) and
    /// `DROVER_PARTITIONS_AHEAD_DAYS` (1..=30, default 3).
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> crate::Result<Self> {
        let num = |k: &str, d: u32, lo: u32, hi: u32| -> crate::Result<u32> {
            match env(k) {
                None => Ok(d),
                Some(v) => v
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (lo..=hi).contains(n))
                    .ok_or_else(|| {
                        crate::Error::Invalid(format!("{k} must be {lo}..={hi}, not {v:?}"))
                    }),
            }
        };
        Ok(Self {
            days: num("DROVER_METRICS_RETENTION_DAYS", 90, 1, 3650)?,
            ahead_days: num("DROVER_PARTITIONS_AHEAD_DAYS", 3, 1, 30)?,
        })
    }

    /// The oldest instant a sample may carry and still be stored.
    pub fn oldest_accepted(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        day_start(now.date_naive() - ChronoDuration::days(i64::from(self.days)))
    }

    /// The first instant past the last partition created ahead.
    pub fn newest_accepted(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        day_start(now.date_naive() + ChronoDuration::days(i64::from(self.ahead_days) + 1))
    }
}

fn day_start(d: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default())
}

/// `health_samples` + 2026-11-27 → `health_samples_p20261127`.
pub fn partition_name(table: &str, day: NaiveDate) -> String {
    format!("{table}_p{}", day.format("%Y%m%d"))
}

fn parse_partition_day(table: &str, name: &str) -> Option<NaiveDate> {
    let suffix = name.strip_prefix(table)?.strip_prefix("_p")?;
    NaiveDate::parse_from_str(suffix, "%Y%m%d").ok()
}

/// What one maintenance run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    pub created: Vec<String>,
    pub dropped: Vec<String>,
}

/// Partition maintenance. Needs the **owner** role (it runs DDL on the owner's tables), so it
/// has its own connection; the node runs [`Maintenance::run`] at start and then hourly.
pub struct Maintenance {
    db: DatabaseConnection,
    retention: Retention,
}

impl fmt::Debug for Maintenance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Maintenance")
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

impl Maintenance {
    pub async fn connect(owner_url: &str, retention: Retention) -> Result<Self> {
        let mut co = sea_orm::ConnectOptions::new(owner_url.to_owned());
        co.max_connections(1).sqlx_logging(false);
        Ok(Self {
            db: Database::connect(co).await?,
            retention,
        })
    }

    pub fn retention(&self) -> Retention {
        self.retention
    }

    /// Creates missing partitions from the retention horizon up to `ahead_days` after `now`,
    /// then drops partitions entirely older than the horizon.
    ///
    /// The whole run is one transaction that first takes the transaction-level advisory lock
    /// of [`MAINTENANCE_LOCK_SQL`]: nodes starting together queue behind each other instead
    /// of racing on the same `CREATE TABLE … PARTITION OF` (which fails for the loser), and
    /// the later runs find the partitions the first one created and do nothing. Either all
    /// of a run's creations and drops happen, or none does.
    pub async fn run(&self, now: DateTime<Utc>) -> Result<MaintenanceReport> {
        let tx = self.db.begin().await?;
        tx.execute_unprepared(MAINTENANCE_LOCK_SQL).await?;
        let mut report = MaintenanceReport::default();
        let today = now.date_naive();
        let first = today - ChronoDuration::days(i64::from(self.retention.days));
        let last = today + ChronoDuration::days(i64::from(self.retention.ahead_days));
        let tables = PARTITIONED_TABLES
            .iter()
            .map(|t| (t, true))
            .chain(LEGACY_PARTITIONED_TABLES.iter().map(|t| (t, false)));
        for (table, create) in tables {
            let existing = partitions_of(&tx, table).await?;
            let mut day = first;
            while create && day <= last {
                let name = partition_name(table, day);
                if !existing.contains(&name) {
                    create_partition(&tx, table, day).await?;
                    report.created.push(name);
                }
                day += ChronoDuration::days(1);
            }
            for name in existing {
                if let Some(d) = parse_partition_day(table, &name)
                    && d < first
                {
                    tx.execute_unprepared(&format!("DROP TABLE IF EXISTS \"{name}\""))
                        .await?;
                    report.dropped.push(name);
                }
            }
        }
        tx.commit().await?;
        for name in &report.dropped {
            tracing::info!(partition = %name, "dropped partition past retention");
        }
        Ok(report)
    }

    /// Names of the partitions of `table`.
    pub async fn partitions_of(&self, table: &str) -> Result<Vec<String>> {
        partitions_of(&self.db, table).await
    }

    pub async fn close(self) {
        let _ = self.db.close().await;
    }
}

/// The lock every maintenance run takes first, inside its transaction (released at commit or
/// rollback, so a run that dies cannot leave it held).
pub const MAINTENANCE_LOCK_SQL: &str =
    "SELECT pg_advisory_xact_lock(hashtext('drover.partition_maintenance'))";

async fn create_partition(conn: &impl ConnectionTrait, table: &str, day: NaiveDate) -> Result<()> {
    let name = partition_name(table, day);
    let from = day_start(day).format("%Y-%m-%d %H:%M:%S+00");
    let to = day_start(day + ChronoDuration::days(1)).format("%Y-%m-%d %H:%M:%S+00");
    // Partitions get ENABLE + FORCE row-level security without policies: nobody but the
    // owner reaches them directly (queries go through the parent and its policies), and
    // the catalog test sees every relation with tenant_id protected.
    let sql = format!(
        "CREATE TABLE IF NOT EXISTS \"{name}\" PARTITION OF {table} \
           FOR VALUES FROM ('{from}') TO ('{to}');\n\
         ALTER TABLE \"{name}\" ENABLE ROW LEVEL SECURITY;\n\
         ALTER TABLE \"{name}\" FORCE ROW LEVEL SECURITY;"
    );
    conn.execute_unprepared(&sql).await?;
    Ok(())
}

async fn partitions_of(conn: &impl ConnectionTrait, table: &str) -> Result<Vec<String>> {
    let rows = conn
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT c.relname::text FROM pg_inherits i \
               JOIN pg_class c ON c.oid = i.inhrelid \
               JOIN pg_class p ON p.oid = i.inhparent \
             WHERE p.relname = $1 ORDER BY 1",
            [table.into()],
        ))
        .await?;
    rows.iter()
        .map(|r| r.try_get_by_index::<String>(0).map_err(Into::into))
        .collect()
}

/// Bucket width for a range, as the original product chose it: ≤1 h → 1 min, ≤6 h → 5 min,
/// ≤24 h → 15 min, ≤7 d → 1 h, ≤30 d → 6 h, else 1 day.
pub fn bucket_for_range(from: DateTime<Utc>, to: DateTime<Utc>) -> ChronoDuration {
    let span = to - from;
    if span <= ChronoDuration::hours(1) {
        ChronoDuration::minutes(1)
    } else if span <= ChronoDuration::hours(6) {
        ChronoDuration::minutes(5)
    } else if span <= ChronoDuration::hours(24) {
        ChronoDuration::minutes(15)
    } else if span <= ChronoDuration::days(7) {
        ChronoDuration::hours(1)
    } else if span <= ChronoDuration::days(31) {
        ChronoDuration::hours(6)
    } else {
        ChronoDuration::days(1)
    }
}

/// One bucket of health samples.
#[derive(Debug, Clone, PartialEq, FromQueryResult)]
pub struct HealthBucket {
    pub bucket: DateTime<Utc>,
    pub samples: i64,
    pub cpu_avg: Option<f64>,
    pub cpu_max: Option<f64>,
    pub memory_avg: Option<f64>,
    pub disk_avg: Option<f64>,
    pub temperature_max: Option<f64>,
}

/// One bucket of one interface's traffic.
#[derive(Debug, Clone, PartialEq, FromQueryResult)]
pub struct InterfaceBucket {
    pub bucket: DateTime<Utc>,
    pub name: String,
    pub samples: i64,
    pub rx_bps_avg: Option<f64>,
    pub tx_bps_avg: Option<f64>,
    pub rx_bps_max: Option<f64>,
    pub tx_bps_max: Option<f64>,
}

/// One bucket of wireless client counts.
#[derive(Debug, Clone, PartialEq, FromQueryResult)]
pub struct WirelessBucket {
    pub bucket: DateTime<Utc>,
    pub samples: i64,
    pub clients_avg: Option<f64>,
    pub clients_max: Option<i32>,
    pub signal_avg: Option<f64>,
}

fn interval_literal(d: ChronoDuration) -> String {
    format!("{} seconds", d.num_seconds())
}

const ORIGIN: &str = "TIMESTAMPTZ '2000-01-01 00:00:00+00'";

/// The SQL of [`health_series`] (exposed so tests can `EXPLAIN` it). Both branches carry the
/// literal bounds, so each prunes its own partitions.
pub fn health_series_sql(bucket: ChronoDuration) -> String {
    format!(
        "SELECT date_bin('{b}'::interval, time, {ORIGIN}) AS bucket, \
                count(*) AS samples, \
                avg(cpu_percent)::float8 AS cpu_avg, max(cpu_percent)::float8 AS cpu_max, \
                avg(memory_percent)::float8 AS memory_avg, avg(disk_percent)::float8 AS disk_avg, \
                max(temperature_c)::float8 AS temperature_max \
           FROM (SELECT time, cpu_percent, memory_percent, disk_percent, temperature_c \
                   FROM device_samples \
                  WHERE device_id = $1 AND time >= $2 AND time < $3 \
                 UNION ALL \
                 SELECT time, cpu_percent, memory_percent, disk_percent, temperature_c \
                   FROM health_samples_v1 \
                  WHERE device_id = $1 AND time >= $2 AND time < $3) s \
          GROUP BY 1 ORDER BY 1",
        b = interval_literal(bucket)
    )
}

/// The SQL of [`interface_series`]: the interface arrays of each sample unnested, plus the
/// rows written before migration 5.
pub fn interface_series_sql(bucket: ChronoDuration) -> String {
    format!(
        "SELECT date_bin('{b}'::interval, time, {ORIGIN}) AS bucket, \
                name, count(*) AS samples, \
                avg(rx_bps) AS rx_bps_avg, avg(tx_bps) AS tx_bps_avg, \
                max(rx_bps) AS rx_bps_max, max(tx_bps) AS tx_bps_max \
           FROM (SELECT d.time, i.name, i.rx_bps, i.tx_bps \
                   FROM device_samples d \
                  CROSS JOIN LATERAL unnest(d.if_name, d.if_rx_bps, d.if_tx_bps) \
                        AS i(name, rx_bps, tx_bps) \
                  WHERE d.device_id = $1 AND d.time >= $2 AND d.time < $3 \
                 UNION ALL \
                 SELECT time, name, rx_bps, tx_bps \
                   FROM interface_samples_v1 \
                  WHERE device_id = $1 AND time >= $2 AND time < $3) s \
          GROUP BY 1, 2 ORDER BY 2, 1",
        b = interval_literal(bucket)
    )
}

/// The SQL of [`wireless_series`]: samples that carried wireless figures.
pub fn wireless_series_sql(bucket: ChronoDuration) -> String {
    format!(
        "SELECT date_bin('{b}'::interval, time, {ORIGIN}) AS bucket, \
                count(*) AS samples, avg(clients)::float8 AS clients_avg, \
                max(clients) AS clients_max, avg(mean_signal_dbm)::float8 AS signal_avg \
           FROM (SELECT time, wireless_clients AS clients, \
                        wireless_mean_signal_dbm AS mean_signal_dbm \
                   FROM device_samples \
                  WHERE device_id = $1 AND time >= $2 AND time < $3 \
                    AND wireless_clients IS NOT NULL \
                 UNION ALL \
                 SELECT time, clients, mean_signal_dbm \
                   FROM wireless_samples_v1 \
                  WHERE device_id = $1 AND time >= $2 AND time < $3) s \
          GROUP BY 1 ORDER BY 1",
        b = interval_literal(bucket)
    )
}

/// Health samples of one device over `[from, to)`, aggregated into buckets of
/// [`bucket_for_range`]. The literal time bounds let PostgreSQL prune partitions.
pub async fn health_series(
    tx: &TenantTx,
    device: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<HealthBucket>> {
    let sql = health_series_sql(bucket_for_range(from, to));
    Ok(
        HealthBucket::find_by_statement(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            [device.into(), from.into(), to.into()],
        ))
        .all(tx.conn())
        .await?,
    )
}

/// Per-interface traffic of one device over `[from, to)` in automatic buckets.
pub async fn interface_series(
    tx: &TenantTx,
    device: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<InterfaceBucket>> {
    let sql = interface_series_sql(bucket_for_range(from, to));
    Ok(
        InterfaceBucket::find_by_statement(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            [device.into(), from.into(), to.into()],
        ))
        .all(tx.conn())
        .await?,
    )
}

/// Wireless client counts of one device over `[from, to)` in automatic buckets.
pub async fn wireless_series(
    tx: &TenantTx,
    device: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<WirelessBucket>> {
    let sql = wireless_series_sql(bucket_for_range(from, to));
    Ok(
        WirelessBucket::find_by_statement(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            [device.into(), from.into(), to.into()],
        ))
        .all(tx.conn())
        .await?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_sizes_follow_the_range() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let b = |h: i64| bucket_for_range(t0, t0 + ChronoDuration::hours(h));
        assert_eq!(b(1), ChronoDuration::minutes(1));
        assert_eq!(b(6), ChronoDuration::minutes(5));
        assert_eq!(b(24), ChronoDuration::minutes(15));
        assert_eq!(b(24 * 7), ChronoDuration::hours(1));
        assert_eq!(b(24 * 30), ChronoDuration::hours(6));
        assert_eq!(b(24 * 90), ChronoDuration::days(1));
    }

    #[test]
    fn retention_reads_the_environment() {
        let r =
            Retention::from_env(|k| (k == "DROVER_METRICS_RETENTION_DAYS").then(|| "30".into()))
                .unwrap();
        assert_eq!(
            r,
            Retention {
                days: 30,
                ahead_days: 3
            }
        );
        assert!(Retention::from_env(|_| Some("0".into())).is_err());
        assert_eq!(Retention::from_env(|_| None).unwrap(), Retention::default());
    }

    #[test]
    fn partition_names_round_trip() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
        let n = partition_name("health_samples", d);
        assert_eq!(n, "health_samples_p20261127");
        assert_eq!(parse_partition_day("health_samples", &n), Some(d));
        assert_eq!(
            parse_partition_day("health_samples", "health_samples_default"),
            None
        );
        assert_eq!(parse_partition_day("interface_samples", &n), None);
    }
}
