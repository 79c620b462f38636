//! The command line's values: parsers that refuse a number out of range as the arguments are read,
//! before any work starts, with the range it should be in; quarter lengths; and the
//! named choices (`--device`, `--split`, `--objective`), each converted into the library's enum.

use std::fmt::Display;
use std::str::FromStr;

use clap::ValueEnum;
use melody_engine::dataset::Split;
use melody_engine::engine::Device;
use melody_engine::kern::QuarterLength;
use melody_engine::midi::BPM_RANGE;
use melody_engine::model::Objective;

fn number_in<T: FromStr + Copy + Display>(
    text: &str,
    accepted: impl Fn(T) -> bool,
    range: &str,
) -> Result<T, String> {
    match text.parse::<T>() {
        Ok(x) if accepted(x) => Ok(x),
        _ => Err(format!("{text:?} is not {range}")),
    }
}

/// A count of at least 1: units, layers, windows, epochs, melodies.
pub fn at_least_one(text: &str) -> Result<usize, String> {
    number_in(text, |n: usize| n >= 1, "a whole number ≥ 1")
}

/// A finite number above 0: a learning rate, a norm.
pub fn positive(text: &str) -> Result<f32, String> {
    number_in(text, |x: f32| x.is_finite() && x > 0.0, "a number > 0")
}

/// A finite number ≥ 0: a temperature, a bias.
pub fn non_negative(text: &str) -> Result<f32, String> {
    number_in(text, |x: f32| x.is_finite() && x >= 0.0, "a number ≥ 0")
}

/// A number from 0 to 1, both included: a penalty.
pub fn zero_to_one(text: &str) -> Result<f32, String> {
    number_in(
        text,
        |x: f32| (0.0..=1.0).contains(&x),
        "a number from 0 to 1",
    )
}

/// A probability below 1: dropout (at 1 nothing would pass).
pub fn below_one(text: &str) -> Result<f32, String> {
    number_in(
        text,
        |x: f32| (0.0..1.0).contains(&x),
        "a number from 0 up to (not including) 1",
    )
}

/// A share strictly between 0 and 1: the held-out songs, of which there must be some (they
/// choose the best checkpoint) and not all.
pub fn share(text: &str) -> Result<f64, String> {
    number_in(
        text,
        |x: f64| x > 0.0 && x < 1.0,
        "a number between 0 and 1 (both excluded)",
    )
}

/// A MIDI tempo in quarter notes per minute: 4 … 60,000,000, the range of MIDI's 24-bit
/// microseconds per quarter.
pub fn beats_per_minute(text: &str) -> Result<u32, String> {
    number_in(
        text,
        |bpm: u32| BPM_RANGE.contains(&bpm),
        "a tempo from 4 to 60000000",
    )
}

/// A General MIDI program number, 0 … 127.
pub fn midi_program(text: &str) -> Result<u8, String> {
    number_in(
        text,
        |p: u8| p <= 127,
        "a General MIDI program from 0 to 127",
    )
}

/// A positive quarter length: a decimal or a fraction.
pub fn quarter_length(text: &str) -> Result<QuarterLength, String> {
    match QuarterLength::parse(text) {
        Some(q) if !q.is_zero() => Ok(q),
        _ => Err(format!(
            "{text:?} is not a positive quarter length such as 0.25, 1.5 or 1/3"
        )),
    }
}

/// `--device`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    /// CUDA when a device opens, else the CPU.
    Auto,
    /// The CPU, on all cores.
    Cpu,
    /// An NVIDIA GPU (device 0); an error when none can be used.
    Cuda,
}

impl From<DeviceArg> for Device {
    fn from(device: DeviceArg) -> Device {
        match device {
            DeviceArg::Auto => Device::Auto,
            DeviceArg::Cpu => Device::Cpu,
            DeviceArg::Cuda => Device::Cuda,
        }
    }
}

/// `--split`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SplitArg {
    Train,
    Val,
    All,
}

impl From<SplitArg> for Split {
    fn from(split: SplitArg) -> Split {
        match split {
            SplitArg::Train => Split::Train,
            SplitArg::Val => Split::Val,
            SplitArg::All => Split::All,
        }
    }
}

/// `--objective`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ObjectiveArg {
    /// Predict the next symbol at every step: loss averaged over all T·B positions.
    All,
    /// Predict only the symbol after the window: loss averaged over the B positions at t = T−1.
    Last,
}

impl From<ObjectiveArg> for Objective {
    fn from(objective: ObjectiveArg) -> Objective {
        match objective {
            ObjectiveArg::All => Objective::All,
            ObjectiveArg::Last => Objective::Last,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_range_takes_its_ends_as_documented() {
        assert_eq!(at_least_one("1"), Ok(1));
        assert_eq!(
            at_least_one("0"),
            Err("\"0\" is not a whole number ≥ 1".into())
        );
        assert!(at_least_one("-3").is_err() && at_least_one("2.5").is_err());
        assert_eq!(positive("1e-3"), Ok(1e-3));
        assert!(positive("0").is_err() && positive("inf").is_err() && positive("nan").is_err());
        assert_eq!(non_negative("0"), Ok(0.0));
        assert!(non_negative("-0.1").is_err() && non_negative("nan").is_err());
        assert_eq!((zero_to_one("0"), zero_to_one("1")), (Ok(0.0), Ok(1.0)));
        assert!(zero_to_one("1.01").is_err());
        assert_eq!(below_one("0"), Ok(0.0));
        assert!(below_one("1").is_err());
        assert_eq!(share("0.1"), Ok(0.1));
        assert!(share("0").is_err() && share("1").is_err());
        assert_eq!(positive("x"), Err("\"x\" is not a number > 0".into()));
        assert_eq!(
            (beats_per_minute("4"), midi_program("127")),
            (Ok(4), Ok(127))
        );
        assert!(beats_per_minute("3").is_err() && midi_program("128").is_err());
        // `--meter` is read by the one meter parser, features::parse_meter.
        let meter = melody_engine::features::parse_meter;
        assert_eq!(meter("6/8"), Ok((6, 8)));
        assert!(meter("0/4").is_err() && meter("4").is_err());
        assert!(quarter_length("1/3").is_ok() && quarter_length("0").is_err());
    }
}
