//! melody-engine: learns folk melodies from `**kern` scores with a from-scratch LSTM and writes new
//! ones as MIDI.
//!
//! The modules follow the pipeline, left to right; each needs only the ones before it:
//! `kern` (read scores) → `key` (declared or estimated key) → `encode` (filter, transpose, time
//! series, vocabulary) → `corpus` (a whole directory, in parallel) → `dataset` (windows, batches,
//! splits) → `model` (parameters, checkpoints) → `cpu` (forward and BPTT, the reference) → `optim`
//! (Adam) → `backend` (the interface) → `gpu` (the CUDA engine) → `engine` (`--device`) → `train`
//! (the loop) and `evaluate` → `generate`, `sample` (temperature, biasing) → `midi`, `kern::write`
//! (writers and readers) → `assess` (melody quality).
//!
//! A song from `**kern` to the symbols the model learns, transposed from G major to C major on a
//! sixteenth-note grid:
//!
//! ```
//! use melody_engine::{encode, kern};
//!
//! let song = kern::parse(b"**kern\n*M2/4\n*G:\n4g\n8a\n8b\n=1\n4.dd\n8r\n*-\n").unwrap();
//! let encoded = encode::encode_song(&song, &encode::Options::default()).unwrap();
//! assert_eq!(encoded.shift, -7);
//! assert_eq!(encoded.symbols.join(" "), "60 _ _ _ 62 _ 64 _ 67 _ _ _ _ _ r _");
//! ```

pub mod assess;
pub mod atomic;
pub mod backend;
pub mod corpus;
pub mod cpu;
pub mod dataset;
pub mod encode;
pub mod engine;
pub mod evaluate;
pub mod generate;
pub mod gpu;
pub mod kern;
pub mod key;
pub mod melody;
pub mod midi;
pub mod model;
pub mod optim;
pub mod outputs;
pub mod plot;
pub mod sample;
pub mod train;
