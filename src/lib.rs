//! melody-engine: learns folk melodies from `**kern` scores with a from-scratch LSTM and writes new
//! ones as MIDI.
//!
//! The modules in layer order; each needs only the ones before it:
//!
//! 1. `atomic`: files written whole or not at all.
//! 2. `kern`: reads one `**kern` score.
//! 3. `key`: a song's declared or estimated key.
//! 4. `encode`: filter, transpose and encode a song as symbols; the vocabulary.
//! 5. `melody`: symbols as notes and rests, transposed, checked, split into songs.
//! 6. `plot`: SVG line charts and piano rolls.
//! 7. `midi`: melodies to and from Standard MIDI Files.
//! 8. `corpus`: a whole directory of scores, in parallel, into a dataset.
//! 9. `dataset`: the dataset as ids; windows, batches, the train / held-out split.
//! 10. `model`: parameters and checkpoints.
//! 11. `optim`: Adam's hyperparameters and state, which both engines update.
//! 12. `cpu`: forward pass, BPTT and the Adam update on the CPU, the reference.
//! 13. `backend`: the interface every engine implements, and the CPU engine.
//! 14. `gpu`: the CUDA engine.
//! 15. `engine`: `--device`, the engine that runs.
//! 16. `evaluate`: the reference accuracy protocol.
//! 17. `train`: the training loop, its start, metrics and stopping.
//! 18. `sample`: temperature and biases, one draw.
//! 19. `generate`: seed → melodies, batched.
//! 20. `outputs`: generated melodies written as MIDI, `**kern`, text, piano roll.
//! 21. `assess`: generated melodies against a corpus, feature by feature.
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
