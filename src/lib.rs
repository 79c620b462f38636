//! melody-engine: learns folk melodies from `**kern` scores with a from-scratch LSTM and writes new
//! ones as MIDI.
//!
//! The modules follow the pipeline, left to right; each needs only the ones before it:
//! `kern` (read scores) → `key` (declared or estimated key) → `encode` (filter, transpose, time
//! series, vocabulary) → `corpus` (a whole directory, in parallel) → `dataset` (windows, batches,
//! splits) → `model` (parameters, checkpoints) → `cpu` (forward and BPTT, the reference) → `optim`
//! (Adam) → `train` (the loop) → `sample` (temperature, biasing) → `midi` (writer and reader).

pub mod assess;
pub mod atomic;
pub mod backend;
pub mod corpus;
pub mod cpu;
pub mod dataset;
pub mod encode;
pub mod evaluate;
pub mod generate;
pub mod kern;
pub mod key;
pub mod melody;
pub mod midi;
pub mod model;
pub mod optim;
pub mod plot;
pub mod sample;
pub mod train;
