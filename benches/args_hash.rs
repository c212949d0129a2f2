//! The args hash against its floor: SHA-256 alone over the same canonical bytes, in the
//! same run. Run with `cargo bench --bench args_hash`.

mod common;

use std::hint::black_box;

use approval_gate::{ArgsHash, canonical_json};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sha2::{Digest, Sha256};

fn hashing(c: &mut Criterion) {
    for (name, args) in [
        ("1kib", common::args_1kib()),
        ("64kib", common::args_64kib()),
    ] {
        let text = canonical_json(&args).unwrap();
        let mut group = c.benchmark_group(format!("args_hash/{name}"));
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function("sha256_floor", |b| {
            b.iter(|| Sha256::digest(black_box(text.as_bytes())))
        });
        group.bench_function("args_hash", |b| {
            b.iter(|| ArgsHash::compute(black_box(&args)).unwrap())
        });
        group.finish();
    }
}

criterion_group!(benches, hashing);
criterion_main!(benches);
