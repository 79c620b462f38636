//! melody-engine: learns folk melodies from `**kern` scores with a from-scratch LSTM and writes new
//! ones as MIDI.
//!
//! The modules in layer order; each needs only the ones before it:
//!
//! 1. `atomic`: files written whole or not at all.
//! 2. `kern`: reads one `**kern` score.
//! 3. `midi_in`: reads one monophonic melody from a Standard MIDI File.
//! 3. `abc`: reads the tunes of an ABC file.
//! 4. `key`: a song's declared or estimated key.
//! 5. `encode`: filter, transpose and encode a song as symbols; the vocabulary.
//! 6. `melody`: symbols as notes and rests, transposed, checked, split into songs.
//! 7. `melody_file`: `.krn`, `.mid` and `.txt` melody files, read by extension.
//! 8. `plot`: SVG line charts and piano rolls.
//! 9. `midi`: generated melodies as Standard MIDI Files.
//! 10. `corpus`: a whole directory of scores, in parallel, into a dataset.
//! 11. `dataset`: the dataset as ids; windows, batches, the train / held-out split.
//! 12. `features`: each step's input indices: the symbol, lookback, bar position, mode, meter, phrase.
//! 13. `model`: parameters and checkpoints.
//! 14. `optim`: Adam's hyperparameters and state, which both engines update.
//! 15. `cpu`: forward pass, BPTT and the Adam update on the CPU, the reference.
//! 16. `backend`: the interface every engine implements, and the CPU engine.
//! 17. `gpu`: the CUDA engine.
//! 18. `engine`: `--device`, the engine that runs.
//! 19. `evaluate`: the reference accuracy protocol.
//! 20. `train`: the training loop, its start, metrics and stopping.
//! 21. `sample`: temperature and biases, one draw.
//! 22. `generate`: seed → melodies, batched.
//! 23. `outputs`: generated melodies written as MIDI, `**kern`, text, piano roll.
//! 24. `assess`: generated melodies against a corpus, feature by feature.
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

pub mod abc;
pub mod assess;
pub mod atomic;
pub mod backend;
pub mod corpus;
pub mod cpu;
pub mod dataset;
pub mod encode;
pub mod engine;
pub mod evaluate;
pub mod features;
pub mod generate;
pub mod gpu;
pub mod kern;
pub mod key;
pub mod melody;
pub mod melody_file;
pub mod midi;
pub mod midi_in;
pub mod model;
pub mod optim;
pub mod outputs;
pub mod plot;
pub mod sample;
pub mod train;
