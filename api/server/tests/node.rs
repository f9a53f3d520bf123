//! The `drover` binary end to end: a real PostgreSQL database, the shared NATS JetStream,
//! a simulated fleet. Seeds a tenant, runs a node, and checks that devices come online in
//! the store and on NATS, that edits and deletions in the database reach the running actors
//! within seconds, that metrics are served, and that SIGTERM shuts down cleanly.

#![allow(clippy::unwrap_used)] // test helpers

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use drover_testkit::eventually;

use futures_util::StreamExt;
use routeros_sim::{Fleet, SimConfig};

const KEY: &str = "q6mBvX5r1qZ6w0yqz8l2Lw9yJ3m0o5Xo7s0YV3n1kTQ=";

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn drover(args: &[&str], db_url: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_drover"));
    c.args(args)
        .env("DATABASE_URL", db_url)
        .env("CREDENTIAL_ENCRYPTION_KEY", KEY)
        .env("DROVER_LOG", "warn")
        // Any free port: several nodes run at once in the test suite.
        .env("DROVER_HTTP_ADDR", "127.0.0.1:0")
        .stdin(Stdio::null());
    c
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn psql(db_url: &str, sql: &str) -> Vec<Vec<String>> {
    use sqlx::{Connection, Row};
    let mut conn = sqlx::PgConnection::connect(db_url).await.unwrap();
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_all(&mut conn)
        .await
        .unwrap();
    rows.iter()
        .map(|r| {
            (0..r.len())
                .map(|i| r.try_get::<String, _>(i).unwrap_or_default())
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_polls_the_stored_fleet_and_follows_database_changes() {
    let fleet = Fleet::start(SimConfig {
        devices: 12,
        ..SimConfig::for_tests()
    })
    .await
    .unwrap();
    let db = format!("drover_e2e_{:x}", rand::random::<u32>());
    let db_url = format!("postgres://postgres@127.0.0.1:5432/{db}");

    // Seed 10 of the 12 simulated devices; 10 and 11 stay spare for the edit below.
    let seed = drover(
        &[
            "demo",
            "seed",
            "--tenant",
            "e2e",
            "--devices",
            "10",
            "--first",
            &fleet.ip(0).to_string(),
            "--port",
            &fleet.device_addr(0).port().to_string(),
            "--password",
            fleet.credentials().1,
            "--interval",
            "5",
        ],
        &db_url,
    )
    .output()
    .unwrap();
    assert!(
        seed.status.success(),
        "seed failed: {}",
        String::from_utf8_lossy(&seed.stderr)
    );
    let seeded: serde_json::Value = serde_json::from_slice(&seed.stdout).unwrap();
    let tenant = seeded["tenant_id"].as_str().unwrap().to_owned();

    let nats = async_nats::connect("nats://127.0.0.1:4222").await.unwrap();
    let mut status_events = nats
        .subscribe(format!("device.status.{tenant}.>"))
        .await
        .unwrap();

    let metrics_port = free_port();
    let node = KillOnDrop(
        drover(
            &[
                "run",
                "--metrics-addr",
                &format!("127.0.0.1:{metrics_port}"),
                "--status-every-secs",
                "0",
            ],
            &db_url,
        )
        .spawn()
        .unwrap(),
    );

    // Every seeded device is polled, over one session each.
    assert!(eventually!(
        Duration::from_secs(30),
        (0..10).all(|i| fleet.stats(i).polls_served >= 1)
    ));
    assert!((0..10).all(|i| fleet.stats(i).logins_ok == 1));
    // The recorder keeps the fleet list current.
    assert!(eventually!(
        Duration::from_secs(15),
        psql(
            &db_url,
            "SELECT count(*)::text FROM devices WHERE status = 'online'"
        )
        .await[0][0]
            == "10"
    ));
    // Samples land in the time-partitioned tables.
    assert!(eventually!(
        Duration::from_secs(15),
        psql(
            &db_url,
            "SELECT (count(*) > 0)::text FROM interface_samples"
        )
        .await[0][0]
            == "true"
    ));
    // Status events reach NATS on the documented subject with the documented payload.
    let msg = tokio::time::timeout(Duration::from_secs(10), status_events.next())
        .await
        .unwrap()
        .unwrap();
    let payload: serde_json::Value = serde_json::from_slice(&msg.payload).unwrap();
    assert_eq!(payload["version"], 1);
    assert_eq!(payload["tenant_id"], tenant);
    assert!(payload["device_id"].is_string() && payload["status"].is_string());

    // Move device 0 to the spare simulated router 10: the running actor follows.
    let moved_from = fleet.ip(0).to_string();
    psql(
        &db_url,
        &format!(
            "UPDATE devices SET address = '{}' WHERE address = '{moved_from}'",
            fleet.ip(10)
        ),
    )
    .await;
    assert!(eventually!(
        Duration::from_secs(15),
        fleet.stats(10).polls_served >= 1
    ));
    assert!(eventually!(
        Duration::from_secs(5),
        fleet.stats(0).active_connections == 0
    ));

    // Delete device 1: its session closes and it is polled no more.
    psql(
        &db_url,
        &format!("DELETE FROM devices WHERE address = '{}'", fleet.ip(1)),
    )
    .await;
    assert!(eventually!(
        Duration::from_secs(10),
        fleet.stats(1).active_connections == 0
    ));

    // Prometheus metrics are served.
    let body = reqwest_lite(metrics_port).await;
    assert!(body.contains("drover_device_polls_total"), "{body}");

    // SIGTERM: the node closes every session and exits cleanly.
    let mut node = node;
    let pid = node.0.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let exited = eventually!(
        Duration::from_secs(30),
        matches!(node.0.try_wait(), Ok(Some(_)))
    );
    assert!(exited, "node did not stop on SIGTERM");
    assert!(node.0.try_wait().unwrap().unwrap().success());
    assert!((0..12).all(|i| fleet.stats(i).active_connections == 0));

    fleet.shutdown().await;
    psql(
        "postgres://postgres@127.0.0.1:5432/postgres",
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    )
    .await;
}

/// GET /metrics over a plain TCP socket.
async fn reqwest_lite(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}
