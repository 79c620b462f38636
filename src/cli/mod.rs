//! The command line: one module per subcommand, each declaring its options, turning them into the
//! library's plain options and printing what the library returns.

pub mod args;
pub mod assess;
pub mod evaluate;
pub mod generate;
pub mod preprocess;
pub mod train;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "engine",
    version,
    about = "Learns folk melodies from **kern scores and writes new ones as MIDI."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Turn a corpus of **kern, MIDI and ABC songs into a dataset: songs.jsonl, dataset.txt,
    /// vocab.json.
    ///
    /// Finds *.krn, *.mid and *.abc files under each input directory (every X: tune of an ABC
    /// file is a song), drops songs with a note or rest of a duration outside --durations,
    /// transposes to C major / A minor (first key designation, else a Krumhansl–Schmuckler
    /// estimate; a church mode to its white-key tonic, dorian to D, …), and encodes each song on a grid of --step quarter notes:
    /// a MIDI number at a note onset, `r` at a rest onset, `_` for every further step. The
    /// dataset joins the kept songs, each followed by 64 `/`.
    Preprocess(preprocess::PreprocessArgs),
    /// Train the LSTM on a preprocessed dataset; writes a safetensors checkpoint every epoch.
    ///
    /// The model: each step's symbol and feature inputs (--features), one-hot each → --layers
    /// LSTM layers of --hidden units → dropout → dense softmax over the vocabulary, trained with
    /// Adam. Songs are split into training and held-out sets by a fixed rule (--val-fraction).
    /// After every epoch the checkpoint (and the Adam state beside it, *.adam.safetensors) is
    /// written atomically and one JSON line is appended to the metrics log. Ctrl-C writes a
    /// checkpoint and stops; --resume continues exactly where it stopped.
    Train(train::TrainArgs),
    /// Loss, accuracy and perplexity of a checkpoint with the reference protocol: every window of
    /// 64 consecutive symbols, from a zero state, predicts the symbol after it.
    Evaluate(evaluate::EvaluateArgs),
    /// Generate melodies from a seed and write them as MIDI and **kern.
    ///
    /// As the reference work: 64 `/` before the seed, each next symbol predicted from the last 64
    /// symbols from a zero state, drawn with the temperature and biases below, until `/` or
    /// --steps. Prints the whole melody (seed and generated part) as symbols on stdout; the files
    /// hold exactly that melody. Without --seed or --seed-file the melody starts from `/` alone.
    Generate(generate::GenerateArgs),
    /// Compare generated melodies with a corpus's held-out songs, feature by feature.
    ///
    /// The method of Yang & Lerch 2018 (mgeval): per melody, pitch count and range, pitch-class
    /// histogram and transitions, average interval, note count, average inter-onset interval,
    /// note-length histogram and transitions, rest ratio, share of notes on the C major scale
    /// and longest repeat. For each feature, the distances between reference melodies
    /// (intra-set) and between generated and reference melodies (inter-set) are smoothed by a
    /// Gaussian kernel density estimate and compared: overlapping area OA (1 =
    /// indistinguishable) and KL(intra ‖ inter). Beside each result, the ceiling: the corpus's
    /// held-out songs against its training songs.
    Assess(assess::AssessArgs),
}
