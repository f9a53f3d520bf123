//! The supervision tree against simulated routers: one-for-one restarts, quarantine after
//! too many restarts that holds until cleared, reconciling the device set, and a graceful
//! shutdown that closes every session.

#![allow(clippy::unwrap_used)] // test helpers: a poisoned lock is a test bug

use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover_testkit::eventually;

use drover_device::{DevicePolicy, DeviceSpec};
use drover_model::{DeviceId, DeviceStatus, Event, TenantId};
use drover_node::{NodeArgs, NodeMsg, NodeSummary, NodeSupervisor, RestartPolicy, device_ref};
use ractor::{Actor, ActorRef};
use routeros_client::{Credentials, Transport};
use routeros_sim::{Fleet, SimConfig};

struct Node {
    fleet: Fleet,
    node: ActorRef<NodeMsg>,
    events: Arc<Mutex<Vec<Event>>>,
}

async fn node(devices: usize, restart: RestartPolicy) -> Node {
    let fleet = Fleet::start(SimConfig {
        devices,
        ..SimConfig::for_tests()
    })
    .await
    .unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let args = NodeArgs {
        policy: Arc::new(DevicePolicy {
            reconnect_first: Duration::from_millis(50),
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_millis(400),
            first_poll_spread: Duration::from_millis(100),
            ..DevicePolicy::default()
        }),
        restart,
        events: Arc::new(move |e| sink.lock().unwrap().push(e)),
        max_concurrent_handshakes: 8,
        epoch: 0,
    };
    let (node, _) = Actor::spawn(None, NodeSupervisor, args).await.unwrap();
    Node {
        fleet,
        node,
        events,
    }
}

fn spec(fleet: &Fleet, i: usize, tenant: TenantId) -> DeviceSpec {
    let (user, password) = fleet.credentials();
    DeviceSpec {
        id: DeviceId::new_random(),
        tenant_id: tenant,
        host: fleet.ip(i).to_string(),
        port: Some(fleet.device_addr(i).port()),
        transport: Transport::insecure(),
        credentials: Credentials::new(user, password),
        poll_interval: Duration::from_millis(100),
    }
}

async fn summary(node: &ActorRef<NodeMsg>) -> NodeSummary {
    ractor::call_t!(node, NodeMsg::Summary, 5_000).unwrap()
}

fn fast_restarts() -> RestartPolicy {
    RestartPolicy {
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(100),
        max_restarts: 3,
        window: Duration::from_secs(60),
        stuck_after: Duration::from_secs(30),
    }
}

#[tokio::test]
async fn a_killed_device_actor_is_restarted_and_polls_again() {
    let n = node(1, fast_restarts()).await;
    let s = spec(&n.fleet, 0, TenantId::new_random());
    let id = s.id;
    n.node.send_message(NodeMsg::Reconcile(vec![s])).unwrap();
    assert!(eventually!(
        Duration::from_secs(5),
        n.fleet.stats(0).polls_served >= 2
    ));
    let first = device_ref(id).unwrap();
    first.kill();
    assert!(eventually!(
        Duration::from_secs(5),
        device_ref(id).is_some_and(|a| a.get_id() != first.get_id())
    ));
    let polls = n.fleet.stats(0).polls_served;
    assert!(eventually!(
        Duration::from_secs(5),
        n.fleet.stats(0).polls_served > polls + 1
    ));
    assert_eq!(summary(&n.node).await.restarts, 1);
    n.node.stop_and_wait(None, None).await.unwrap();
    n.fleet.shutdown().await;
}

#[tokio::test]
async fn a_device_that_keeps_dying_is_quarantined_until_cleared() {
    let n = node(1, fast_restarts()).await;
    let s = spec(&n.fleet, 0, TenantId::new_random());
    let id = s.id;
    n.node.send_message(NodeMsg::Reconcile(vec![s])).unwrap();
    for _ in 0..4 {
        assert!(eventually!(
            Duration::from_secs(5),
            device_ref(id).is_some()
        ));
        let victim = device_ref(id).unwrap();
        victim.kill();
        assert!(eventually!(
            Duration::from_secs(5),
            device_ref(id).is_none_or(|a| a.get_id() != victim.get_id())
        ));
    }
    assert!(eventually!(
        Duration::from_secs(3),
        summary(&n.node).await.quarantined.len() == 1
    ));
    let quarantined_event = n.events.lock().unwrap().iter().any(|e| {
        matches!(e, Event::DeviceStatus(s) if s.device_id == id && s.status == DeviceStatus::Quarantined
            && s.reason.as_deref().is_some_and(|r| r.contains("quarantined")))
    });
    assert!(quarantined_event);
    // It stays stopped: no actor, and the device sees no new sessions.
    let accepted = n.fleet.stats(0).connections_accepted;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(device_ref(id).is_none());
    assert_eq!(n.fleet.stats(0).connections_accepted, accepted);
    // An operator clears it: it runs again.
    n.node.send_message(NodeMsg::ClearQuarantine(id)).unwrap();
    let polls = n.fleet.stats(0).polls_served;
    assert!(eventually!(
        Duration::from_secs(5),
        n.fleet.stats(0).polls_served > polls + 1
    ));
    assert!(summary(&n.node).await.quarantined.is_empty());
    n.node.stop_and_wait(None, None).await.unwrap();
    n.fleet.shutdown().await;
}

#[tokio::test]
async fn reconcile_starts_new_devices_and_stops_removed_ones() {
    let n = node(3, fast_restarts()).await;
    let (a, b) = (TenantId::new_random(), TenantId::new_random());
    let specs = vec![
        spec(&n.fleet, 0, a),
        spec(&n.fleet, 1, a),
        spec(&n.fleet, 2, b),
    ];
    n.node
        .send_message(NodeMsg::Reconcile(specs.clone()))
        .unwrap();
    assert!(eventually!(
        Duration::from_secs(5),
        (0..3).all(|i| n.fleet.stats(i).polls_served >= 1)
    ));
    let s = summary(&n.node).await;
    assert_eq!((s.tenants, s.devices, s.running), (2, 3, 3));
    // Drop device 1 and tenant b entirely.
    n.node
        .send_message(NodeMsg::Reconcile(vec![specs[0].clone()]))
        .unwrap();
    assert!(eventually!(
        Duration::from_secs(5),
        n.fleet.stats(1).active_connections == 0 && n.fleet.stats(2).active_connections == 0
    ));
    let s = summary(&n.node).await;
    assert_eq!((s.tenants, s.devices, s.running), (1, 1, 1));
    let polls = n.fleet.stats(2).polls_served;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        n.fleet.stats(2).polls_served,
        polls,
        "removed device is no longer polled"
    );
    n.node.stop_and_wait(None, None).await.unwrap();
    n.fleet.shutdown().await;
}

#[tokio::test]
async fn a_reload_that_changes_nothing_keeps_sessions_and_a_changed_address_moves_one() {
    let n = node(2, fast_restarts()).await;
    let tenant = TenantId::new_random();
    let device = spec(&n.fleet, 0, tenant);
    n.node
        .send_message(NodeMsg::Reconcile(vec![device.clone()]))
        .unwrap();
    assert!(eventually!(
        Duration::from_secs(5),
        n.fleet.stats(0).polls_served >= 2
    ));
    // The periodic full reload sends the same settings again (new values, equal content).
    for _ in 0..3 {
        n.node
            .send_message(NodeMsg::Reconcile(vec![device.clone()]))
            .unwrap();
        n.node
            .send_message(NodeMsg::Upsert(Box::new(device.clone())))
            .unwrap();
    }
    let polls = n.fleet.stats(0).polls_served;
    assert!(eventually!(
        Duration::from_secs(5),
        n.fleet.stats(0).polls_served >= polls + 3
    ));
    assert_eq!(
        n.fleet.stats(0).connections_accepted,
        1,
        "an unchanged device kept its session"
    );
    // The same device at another address: its running actor moves there.
    let moved = DeviceSpec {
        host: n.fleet.ip(1).to_string(),
        port: Some(n.fleet.device_addr(1).port()),
        ..device.clone()
    };
    n.node
        .send_message(NodeMsg::Reconcile(vec![moved]))
        .unwrap();
    assert!(eventually!(
        Duration::from_secs(5),
        n.fleet.stats(1).polls_served >= 2 && n.fleet.stats(0).active_connections == 0
    ));
    let s = summary(&n.node).await;
    assert_eq!((s.devices, s.running, s.restarts), (1, 1, 0));
    n.node.stop_and_wait(None, None).await.unwrap();
    n.fleet.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_closes_every_session() {
    let n = node(5, fast_restarts()).await;
    let tenant = TenantId::new_random();
    let specs: Vec<_> = (0..5).map(|i| spec(&n.fleet, i, tenant)).collect();
    n.node.send_message(NodeMsg::Reconcile(specs)).unwrap();
    assert!(eventually!(
        Duration::from_secs(5),
        (0..5).all(|i| n.fleet.stats(i).active_connections == 1)
    ));
    n.node
        .stop_and_wait(None, Some(Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(eventually!(
        Duration::from_secs(3),
        (0..5).all(|i| n.fleet.stats(i).active_connections == 0)
    ));
    n.fleet.shutdown().await;
}
