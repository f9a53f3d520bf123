//! Criterion benchmarks of the device actor's pure parts: one `Machine::step` in steady state
//! and across a session loss, and `poll::interpret` of a realistic poll (resource, health,
//! identity, 10 interfaces with counter rates, 5 wireless clients).

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use drover_device::poll::{self, Baseline, PollPlan, Radios};
use drover_device::{DevicePolicy, Input, Machine};
use routeros_client::{Attributes, Error, Response};

fn row(pairs: &[(&str, String)]) -> Attributes {
    pairs
        .iter()
        .map(|(k, v)| (*k, v.as_bytes().to_vec()))
        .collect()
}

fn ok(rows: Vec<Attributes>) -> Result<Response, Error> {
    Ok(Response {
        rows,
        done: Attributes::new(),
    })
}

const PLAN: PollPlan = PollPlan {
    routerboard: false,
    firmware: false,
    radios: Radios::Wifi,
};

/// The replies of one steady-state poll, `k` seconds into the run.
fn replies(k: u64) -> Vec<Result<Response, Error>> {
    let s = |v: &str| v.to_owned();
    let resource = row(&[
        ("uptime", format!("3w2d{}h14m{}s", k % 24, k % 60)),
        ("version", s("7.16.1 (stable)")),
        ("build-time", s("2024-10-10 14:03:00")),
        ("free-memory", s("812351488")),
        ("total-memory", s("1073741824")),
        ("cpu", s("ARM64")),
        ("cpu-count", s("4")),
        ("cpu-frequency", s("1400")),
        ("cpu-load", format!("{}", k % 37)),
        ("free-hdd-space", s("1044561920")),
        ("total-hdd-space", s("1073741824")),
        ("architecture-name", s("arm64")),
        ("board-name", s("RB5009UG+S+")),
        ("platform", s("MikroTik")),
    ]);
    let health = vec![
        row(&[
            ("name", s("voltage")),
            ("value", s("24.3")),
            ("type", s("V")),
        ]),
        row(&[
            ("name", s("temperature")),
            ("value", s("41")),
            ("type", s("C")),
        ]),
        row(&[
            ("name", s("cpu-temperature")),
            ("value", s("52")),
            ("type", s("C")),
        ]),
    ];
    let identity = vec![row(&[("name", s("core-rtr-01"))])];
    let interfaces = (0..10u64)
        .map(|i| {
            row(&[
                ("name", format!("ether{}", i + 1)),
                ("type", s("ether")),
                ("running", s("true")),
                ("disabled", s("false")),
                ("rx-byte", (1_000_000 * (i + 1) + k * 125_000).to_string()),
                ("tx-byte", (2_000_000 * (i + 1) + k * 62_500).to_string()),
            ])
        })
        .collect();
    let clients = (0..5)
        .map(|i| {
            row(&[
                ("interface", s("wifi1")),
                ("mac-address", format!("AA:BB:CC:00:00:{i:02X}")),
                ("signal", format!("-{}", 50 + i * 3)),
            ])
        })
        .collect();
    vec![
        ok(vec![resource]),
        ok(health),
        ok(identity),
        ok(interfaces),
        ok(clients),
    ]
}

fn interpret(c: &mut Criterion) {
    let (_, layout) = poll::commands(&PLAN);
    let mut baseline = Baseline::default();
    // Prime the baseline so rates are computed, as in steady state.
    let _ = poll::interpret(&PLAN, &layout, replies(0), &mut baseline, 0.0, 512);
    let next = replies(10);
    c.bench_function("poll_interpret_10_interfaces", |b| {
        b.iter_batched(
            || (next.clone(), baseline.clone()),
            |(results, mut base)| {
                poll::interpret(&PLAN, &layout, black_box(results), &mut base, 10.0, 512)
            },
            BatchSize::SmallInput,
        )
    });
    c.bench_function("poll_commands", |b| {
        b.iter(|| poll::commands(black_box(&PLAN)))
    });
}

fn machine(c: &mut Criterion) {
    let policy = DevicePolicy::default();
    let mut m = Machine::new(&policy);
    m.step(Input::Connected);
    m.step(Input::PollSucceeded { warnings: vec![] });
    c.bench_function("machine_step_poll_succeeded", |b| {
        b.iter(|| {
            m.step(black_box(Input::PollSucceeded {
                warnings: Vec::new(),
            }))
        })
    });
    c.bench_function("machine_step_session_cycle", |b| {
        let mut m = Machine::new(&policy);
        b.iter(|| {
            let mut n = m.step(Input::Connected).len();
            n += m
                .step(Input::PollSucceeded {
                    warnings: Vec::new(),
                })
                .len();
            n += m
                .step(Input::SessionLost {
                    reason: "connection reset".to_owned(),
                })
                .len();
            black_box(n)
        })
    });
}

criterion_group!(benches, machine, interpret);
criterion_main!(benches);
