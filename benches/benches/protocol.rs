//! Criterion benchmarks of the sans-IO codec: a 100-row `/interface/print` reply and an
//! export-sized single word, each encoded to bytes and decoded back into replies.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use routeros_proto::{Attributes, Limits, Reply, SentenceDecoder};

/// A RouterOS 7 `/interface/print` row as the full print returns it.
fn interface_row(i: usize) -> Attributes {
    let mut a = Attributes::new();
    a.push(".id", format!("*{:X}", i + 1));
    a.push("name", format!("ether{}", i + 1));
    a.push("default-name", format!("ether{}", i + 1));
    a.push("type", "ether");
    a.push("mtu", "1500");
    a.push("actual-mtu", "1500");
    a.push("l2mtu", "1514");
    a.push("max-l2mtu", "9578");
    a.push(
        "mac-address",
        format!("48:A9:8A:00:{:02X}:{:02X}", i / 256, i % 256),
    );
    a.push("last-link-up-time", "2025-11-20 08:14:31");
    a.push("link-downs", "3");
    a.push("rx-byte", (1_234_567_890_u64 * (i as u64 + 1)).to_string());
    a.push("tx-byte", (987_654_321_u64 * (i as u64 + 1)).to_string());
    a.push("rx-packet", (12_345_678_u64 * (i as u64 + 1)).to_string());
    a.push("tx-packet", (9_876_543_u64 * (i as u64 + 1)).to_string());
    a.push("fp-rx-byte", "0");
    a.push("fp-tx-byte", "0");
    a.push("running", "true");
    a.push("disabled", "false");
    a.push("comment", "uplink");
    a
}

fn interface_print(rows: usize) -> Vec<Reply> {
    let tag = Some("17".to_owned());
    let mut replies: Vec<Reply> = (0..rows)
        .map(|i| Reply::re(interface_row(i)).with_tag(tag.clone()))
        .collect();
    replies.push(Reply::done().with_tag(tag));
    replies
}

fn encode_all(replies: &[Reply], out: &mut Vec<u8>) {
    for r in replies {
        r.encode(out);
    }
}

fn decode_all(bytes: &[u8]) -> usize {
    let mut decoder = SentenceDecoder::new(Limits::CLIENT);
    let mut offset = 0;
    let mut n = 0;
    while let Ok(Some((sentence, used))) = decoder.decode(&bytes[offset..]) {
        offset += used;
        if let Ok(reply) = Reply::parse(&sentence) {
            n += reply.attributes.len();
        }
    }
    n
}

/// A configuration export of about 256 KiB in one `=ret=` word.
fn export_reply() -> Reply {
    let mut text = String::with_capacity(300 << 10);
    let mut i = 0;
    while text.len() < 256 << 10 {
        text.push_str(&format!(
            "/ip firewall filter add action=accept chain=forward comment=\"rule {i}\" connection-state=established,related dst-address=10.{}.{}.0/24\n",
            (i / 256) % 256,
            i % 256
        ));
        i += 1;
    }
    Reply::done_ret(text.into_bytes()).with_tag(Some("3".to_owned()))
}

fn codec(c: &mut Criterion) {
    let replies = interface_print(100);
    let mut bytes = Vec::new();
    encode_all(&replies, &mut bytes);
    let mut g = c.benchmark_group("interface_print_100_rows");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("encode", |b| {
        let mut out = Vec::with_capacity(bytes.len());
        b.iter(|| {
            out.clear();
            encode_all(black_box(&replies), &mut out);
            out.len()
        })
    });
    g.bench_function("decode", |b| b.iter(|| decode_all(black_box(&bytes))));
    g.finish();

    let export = [export_reply()];
    let mut bytes = Vec::new();
    encode_all(&export, &mut bytes);
    let mut g = c.benchmark_group("export_256k_word");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("encode", |b| {
        let mut out = Vec::with_capacity(bytes.len());
        b.iter(|| {
            out.clear();
            encode_all(black_box(&export), &mut out);
            out.len()
        })
    });
    g.bench_function("decode", |b| b.iter(|| decode_all(black_box(&bytes))));
    // A TLS record delivers at most 16 KiB: the decoder sees the word grow in steps.
    g.bench_function("decode_in_16k_steps", |b| {
        b.iter(|| {
            let mut decoder = SentenceDecoder::new(Limits::CLIENT);
            let mut end = 0;
            loop {
                end = (end + (16 << 10)).min(bytes.len());
                match decoder.decode(black_box(&bytes[..end])) {
                    Ok(Some((s, _))) => break s.words.len(),
                    Ok(None) if end < bytes.len() => continue,
                    _ => break 0,
                }
            }
        })
    });
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
