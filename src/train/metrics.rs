//! What training records after every epoch: a flat JSON line in the metrics log, and the
//! accuracy curve drawn from that log.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::TrainOptions;
use crate::atomic;
use crate::evaluate::Report;
use crate::plot::{self, Series};

/// One epoch's figures: a line of the metrics log.
#[derive(Clone, Debug)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub step: u64,
    /// Mean training-objective loss over the epoch's batches (with dropout).
    pub objective_loss: f64,
    /// The evaluate protocol on the fixed sample of training and held-out windows.
    pub train: Report,
    pub val: Report,
    /// Batch × window per second of forward + backward + update.
    pub step_samples_per_s: f64,
    pub wall_s: f64,
}

impl EpochMetrics {
    /// One flat JSON object: `train_loss`, `val_accuracy`, `val_events_accuracy`, ….
    pub fn to_json(&self) -> Value {
        let mut line = Map::new();
        line.insert("epoch".into(), self.epoch.into());
        line.insert("step".into(), self.step.into());
        line.insert("objective_loss".into(), self.objective_loss.into());
        for (prefix, report) in [("train", &self.train), ("val", &self.val)] {
            flatten(
                prefix,
                &serde_json::to_value(report).expect("numbers"),
                &mut line,
            );
        }
        line.insert("step_samples_per_s".into(), self.step_samples_per_s.into());
        line.insert("wall_s".into(), self.wall_s.into());
        Value::Object(line)
    }
}

fn flatten(prefix: &str, value: &Value, out: &mut Map<String, Value>) {
    match value {
        Value::Object(fields) => {
            for (name, field) in fields {
                flatten(&format!("{prefix}_{name}"), field, out);
            }
        }
        _ => {
            out.insert(prefix.to_string(), value.clone());
        }
    }
}

pub fn metrics_path(options: &TrainOptions) -> PathBuf {
    options
        .metrics
        .clone()
        .unwrap_or_else(|| options.out.with_extension("metrics.jsonl"))
}

/// `model.safetensors` → `model.curve.svg`: the training curve.
pub fn curve_path(out: &Path) -> PathBuf {
    out.with_extension("curve.svg")
}

/// The lines of a metrics log that parse.
fn parse_log(log: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// (epoch, held-out loss) of every epoch logged up to `last_epoch` (none without a log).
pub(super) fn logged_val_losses(path: &Path, last_epoch: usize) -> Vec<(usize, f64)> {
    parse_log(&fs::read_to_string(path).unwrap_or_default())
        .iter()
        .filter_map(|line| Some((line["epoch"].as_u64()? as usize, line["val_loss"].as_f64()?)))
        .filter(|&(epoch, _)| epoch <= last_epoch)
        .collect()
}

pub(super) fn append_line(path: &Path, metrics: &EpochMetrics) -> Result<(), String> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    writeln!(file, "{}", metrics.to_json()).map_err(|e| format!("{}: {e}", path.display()))
}

/// Draws accuracy per epoch (train and held-out) from the metrics log.
pub(super) fn write_curve(metrics: &Path, curve: &Path) -> Result<(), String> {
    let log = fs::read_to_string(metrics).map_err(|e| format!("{}: {e}", metrics.display()))?;
    let lines = parse_log(&log);
    let series = |name, field: &str| Series {
        name,
        points: lines
            .iter()
            .filter_map(|l| Some((l["epoch"].as_f64()?, l[field].as_f64()?)))
            .collect(),
    };
    let svg = plot::line_chart(
        "training curve",
        "epoch",
        "accuracy (reference protocol)",
        &[
            series("train accuracy", "train_accuracy"),
            series("held-out accuracy", "val_accuracy"),
            series("held-out baseline", "val_baseline_accuracy"),
            series("held-out events", "val_events_accuracy"),
        ],
    );
    atomic::write(curve, svg.as_bytes()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_lines_are_flat_and_named() {
        let metrics = EpochMetrics {
            epoch: 3,
            step: 30,
            objective_loss: 1.5,
            train: Report::default(),
            val: Report::default(),
            step_samples_per_s: 1000.0,
            wall_s: 2.0,
        };
        let json = metrics.to_json();
        for name in [
            "epoch",
            "train_loss",
            "train_accuracy",
            "val_loss",
            "val_accuracy",
            "val_perplexity",
            "val_baseline_accuracy",
            "val_events_accuracy",
            "val_holds_accuracy",
            "val_excluding_delimiter_runs_accuracy",
            "step_samples_per_s",
            "wall_s",
        ] {
            assert!(json.get(name).is_some(), "{name} missing from {json}");
        }
    }
}
