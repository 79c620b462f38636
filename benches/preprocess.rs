//! Preprocessing throughput on ESAC `erk` (1,700 files): find, parse, filter, transpose, encode
//! and write the three outputs, as `engine preprocess` does. music21 needs ≈ 90 s for the same.

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use melody_engine::corpus;
use melody_engine::encode::Options;

fn preprocess_erk(c: &mut Criterion) {
    let erk = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/essen/deutschl/erk");
    if !erk.is_dir() {
        eprintln!("skipped: no corpus at {}", erk.display());
        return;
    }
    let out = std::env::temp_dir().join(format!("bench-preprocess-{}", std::process::id()));
    let inputs = [erk];
    let files = corpus::find_kern_files(&inputs).unwrap();
    let mut group = c.benchmark_group("preprocess");
    group
        .sample_size(20)
        .throughput(Throughput::Elements(files.len() as u64));
    group.bench_function("erk", |b| {
        b.iter(|| {
            let files = corpus::find_kern_files(&inputs).unwrap();
            let records = corpus::process_all(&files, &Options::default(), false);
            corpus::write_outputs(&out, &records).unwrap()
        })
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&out);
}

criterion_group!(benches, preprocess_erk);
criterion_main!(benches);
