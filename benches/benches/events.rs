//! Criterion benchmarks of event serialisation: `Event::to_json` (and the subject) of a
//! metrics sample with 10 interfaces, as every successful poll publishes one.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use drover_model::events::{EVENT_VERSION, InterfaceSample, MetricsSample, WirelessSummary};
use drover_model::{DeviceId, Event, TenantId};

fn sample(interfaces: usize) -> Event {
    Event::Metrics(MetricsSample {
        version: EVENT_VERSION,
        device_id: DeviceId(uuid::Uuid::from_u128(
            0x1234_5678_9abc_def0_1234_5678_9abc_def0,
        )),
        tenant_id: TenantId(uuid::Uuid::from_u128(7)),
        timestamp: chrono::Utc::now(),
        cpu_percent: Some(12.0),
        memory_percent: Some(24.34),
        disk_percent: Some(2.71),
        uptime: Some(1_987_654),
        temperature_c: Some(52.0),
        interfaces: (0..interfaces as u64)
            .map(|i| InterfaceSample {
                name: format!("ether{}", i + 1),
                running: i != 4,
                rx_bytes: 1_234_567_890 * (i + 1),
                tx_bytes: 987_654_321 * (i + 1),
                rx_bps: Some(1_250_000.0 * (i + 1) as f64),
                tx_bps: Some(625_000.5 * (i + 1) as f64),
            })
            .collect(),
        wireless: Some(WirelessSummary {
            clients: 5,
            mean_signal_dbm: Some(-56.0),
            min_signal_dbm: Some(-62),
        }),
        epoch: 3,
    })
}

fn serialise(c: &mut Criterion) {
    let ten = sample(10);
    let five = sample(5);
    eprintln!(
        "metrics sample JSON: {} bytes with 10 interfaces, {} bytes with 5",
        ten.to_json().len(),
        five.to_json().len()
    );
    c.bench_function("event_to_json_metrics_10_interfaces", |b| {
        b.iter(|| black_box(&ten).to_json())
    });
    c.bench_function("event_subject_metrics", |b| {
        b.iter(|| black_box(&ten).subject())
    });
}

criterion_group!(benches, serialise);
criterion_main!(benches);
