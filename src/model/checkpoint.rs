//! Checkpoints: parameters as safetensors (f32, PyTorch tensor names, so `load_state_dict` reads
//! them), with the vocabulary and training configuration in the metadata; and the Adam state in a
//! sibling file so training resumes exactly. Every file is written atomically (`crate::atomic`)
//! and validated fully on load.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use super::{Config, Objective, Params};
use crate::atomic;
use crate::encode::Vocabulary;
use crate::features::{
    condition_counts, most_common, parse_meter, tally, Condition, FeatureSet, ModeClass, SongInfo,
};

/// What a checkpoint records besides the tensors (metadata key `config`). The caller fills in
/// `window`, `objective`, `epoch` and `step`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "StoredConfig")]
pub struct CheckpointConfig {
    pub layers: usize,
    pub hidden: usize,
    pub dropout: f32,
    pub vocab_size: usize,
    /// D and K of [`Config`].
    pub input_width: usize,
    pub inputs_per_step: usize,
    pub window: usize,
    pub objective: Objective,
    pub epoch: usize,
    pub step: u64,
    /// What a model with feature inputs was trained with; absent for the reference model, whose
    /// record stays as it was before features.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub features: Option<FeatureRecord>,
}

/// A feature model's groups, and its training songs' most common meter and mode: what
/// generation asks for when neither `--meter` / `--mode` nor the seed says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureRecord {
    /// [`FeatureSet::names`], in block order.
    pub groups: Vec<String>,
    /// `3/4`; None when no training song has a meter.
    pub common_meter: Option<String>,
    /// `major` or `minor`; None when no training song has a mode.
    pub common_mode: Option<String>,
    /// Every training song's meter and mode with how many songs have them, most common first
    /// (`["3/4", "minor", 30]`, null where a song has none): the mixture `engine generate
    /// --training-mixture` draws from. None in checkpoints written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<RecordedCondition>>,
    /// For a model reading `accidentals`: per mode (`["minor", 95, 61]`, null for songs without
    /// one), the training songs and how many of them leave the scale, from which generation
    /// draws whether a melody does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaving_scale: Option<Vec<(Option<String>, usize, usize)>>,
}

/// A meter (`3/4`), a mode (`minor`), null where songs have none, and how many songs have them.
pub type RecordedCondition = (Option<String>, Option<String>, usize);

impl FeatureRecord {
    /// The record of a model reading `set`, trained on `songs`.
    pub fn of(set: &FeatureSet, songs: &[SongInfo]) -> FeatureRecord {
        let meter_name = |(count, unit): (u32, u32)| format!("{count}/{unit}");
        let mode_name = |mode: ModeClass| mode.name().to_string();
        let (meter, mode) = most_common(songs);
        let conditions = (condition_counts(songs).into_iter())
            .map(|((meter, mode), count)| (meter.map(meter_name), mode.map(mode_name), count))
            .collect();
        let leaving_scale = set.accidentals.then(|| {
            (tally(songs.iter().map(|song| song.mode)).into_iter())
                .map(|(mode, count)| {
                    let of_mode = songs.iter().filter(|song| song.mode == mode);
                    let leaving = of_mode.filter(|song| song.leaves_scale).count();
                    (mode.map(mode_name), count, leaving)
                })
                .collect()
        });
        FeatureRecord {
            groups: set.names().iter().map(|name| name.to_string()).collect(),
            common_meter: meter.map(meter_name),
            common_mode: mode.map(mode_name),
            conditions: Some(conditions),
            leaving_scale,
        }
    }
}

/// [`CheckpointConfig`] as a file may hold it: checkpoints written before multi-hot inputs lack
/// D and K, and read as the one-hot model they are (D = V, K = 1).
#[derive(Deserialize)]
struct StoredConfig {
    layers: usize,
    hidden: usize,
    dropout: f32,
    vocab_size: usize,
    input_width: Option<usize>,
    inputs_per_step: Option<usize>,
    window: usize,
    objective: Objective,
    epoch: usize,
    step: u64,
    #[serde(default)]
    features: Option<FeatureRecord>,
}

impl From<StoredConfig> for CheckpointConfig {
    fn from(stored: StoredConfig) -> CheckpointConfig {
        CheckpointConfig {
            layers: stored.layers,
            hidden: stored.hidden,
            dropout: stored.dropout,
            vocab_size: stored.vocab_size,
            input_width: stored.input_width.unwrap_or(stored.vocab_size),
            inputs_per_step: stored.inputs_per_step.unwrap_or(1),
            window: stored.window,
            objective: stored.objective,
            epoch: stored.epoch,
            step: stored.step,
            features: stored.features,
        }
    }
}

impl CheckpointConfig {
    /// The record of a model of shape `model`, trained on windows of `window` steps for `epoch`
    /// epochs and `step` optimiser steps.
    pub fn new(
        model: Config,
        window: usize,
        objective: Objective,
        epoch: usize,
        step: u64,
    ) -> CheckpointConfig {
        CheckpointConfig {
            layers: model.layers,
            hidden: model.hidden,
            dropout: model.dropout,
            vocab_size: model.vocab_size,
            input_width: model.input_width,
            inputs_per_step: model.inputs_per_step,
            window,
            objective,
            epoch,
            step,
            features: None,
        }
    }

    /// The architecture part of the record.
    pub fn model(&self) -> Config {
        Config::one_hot(self.vocab_size, self.hidden, self.layers, self.dropout)
            .multi_hot(self.input_width, self.inputs_per_step)
    }

    /// The feature groups the model reads (none for the reference model), checked against its
    /// input width D and indices per step K.
    pub fn feature_set(&self) -> Result<FeatureSet, String> {
        let set = match &self.features {
            Some(record) => FeatureSet::parse(&record.groups.join(","))?,
            None => FeatureSet::NONE,
        };
        let expected = (set.input_width(self.vocab_size), set.inputs_per_step());
        if (self.input_width, self.inputs_per_step) != expected {
            return Err(format!(
                "features {set} with {} symbols read {} indices of {} columns a step, but the \
                 model reads {} of {}",
                self.vocab_size, expected.1, expected.0, self.inputs_per_step, self.input_width
            ));
        }
        Ok(set)
    }

    /// The training songs' most common meter, as recorded (None where none was).
    pub fn common_meter(&self) -> Result<Option<(u32, u32)>, String> {
        let record = self.features.as_ref();
        (record.and_then(|r| r.common_meter.as_deref()))
            .map(parse_meter)
            .transpose()
    }

    /// The training songs' most common mode, as recorded (None where none was).
    pub fn common_mode(&self) -> Result<Option<ModeClass>, String> {
        let record = self.features.as_ref();
        (record.and_then(|r| r.common_mode.as_deref()))
            .map(ModeClass::parse)
            .transpose()
    }

    /// The share of the training songs of `mode` that leave the scale, as recorded (of all of
    /// them when none has that mode): None for a model without `accidentals`, or a checkpoint
    /// written before it was recorded.
    pub fn leaving_scale_share(&self, mode: ModeClass) -> Option<f64> {
        let record = self.features.as_ref()?.leaving_scale.as_ref()?;
        let is_mode = |name: &Option<String>| name.as_deref() == Some(mode.name());
        let any_of_mode = record.iter().any(|(name, _, _)| is_mode(name));
        let (songs, leaving) = (record.iter())
            .filter(|(name, _, _)| !any_of_mode || is_mode(name))
            .fold((0, 0), |(songs, leaving), &(_, s, l)| {
                (songs + s, leaving + l)
            });
        (songs > 0).then(|| leaving as f64 / songs as f64)
    }

    /// Every training song's meter and mode with how many songs have them, as recorded; None
    /// for the reference model and for a checkpoint written before they were recorded.
    pub fn conditions(&self) -> Result<Option<Vec<(Condition, usize)>>, String> {
        let record = self.features.as_ref();
        let Some(conditions) = record.and_then(|r| r.conditions.as_ref()) else {
            return Ok(None);
        };
        (conditions.iter())
            .map(|(meter, mode, count)| {
                let meter = meter.as_deref().map(parse_meter).transpose()?;
                let mode = mode.as_deref().map(ModeClass::parse).transpose()?;
                Ok(((meter, mode), *count))
            })
            .collect::<Result<_, String>>()
            .map(Some)
    }
}

/// A loaded model checkpoint.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    pub params: Params<f32>,
    /// Symbol strings in id order.
    pub vocab: Vec<String>,
    pub config: CheckpointConfig,
}

/// Adam's moment estimates and step count: all that is needed to resume optimisation exactly.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamState {
    pub m: Vec<f32>,
    pub v: Vec<f32>,
    pub step: u64,
}

/// Why a checkpoint could not be written or read. Every variant names the file.
#[derive(Debug)]
pub enum CheckpointError {
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not a valid checkpoint (unreadable header, missing or bad metadata).
    Format { path: PathBuf, message: String },
    /// One tensor is missing, foreign, or has the wrong dtype or shape.
    Tensor {
        path: PathBuf,
        tensor: String,
        message: String,
    },
    /// The vocabulary names a symbol twice.
    RepeatedSymbol { path: PathBuf },
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            CheckpointError::Format { path, message } => write!(f, "{}: {message}", path.display()),
            CheckpointError::Tensor {
                path,
                tensor,
                message,
            } => write!(f, "{}: tensor {tensor}: {message}", path.display()),
            CheckpointError::RepeatedSymbol { path } => {
                write!(f, "{}: the vocabulary repeats a symbol", path.display())
            }
        }
    }
}

impl std::error::Error for CheckpointError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CheckpointError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// `model.safetensors` → `model.adam.safetensors`.
pub fn adam_path(model_path: &Path) -> PathBuf {
    let stem = model_path.file_stem().unwrap_or_default().to_string_lossy();
    model_path.with_file_name(format!("{stem}.adam.safetensors"))
}

/// Writes the parameters, vocabulary and configuration to `path`.
pub fn save(
    path: &Path,
    params: &Params<f32>,
    vocab: &[String],
    config: &CheckpointConfig,
) -> Result<(), CheckpointError> {
    assert_eq!(
        config.model(),
        *params.config(),
        "record disagrees with the parameters"
    );
    assert_eq!(
        vocab.len(),
        config.vocab_size,
        "vocabulary size disagrees with the config"
    );
    let metadata = HashMap::from([
        ("vocab".to_string(), to_json(vocab)),
        ("config".to_string(), to_json(config)),
    ]);
    write_tensors(
        path,
        params
            .tensors()
            .map(|(name, shape, values)| (name.to_string(), shape.to_vec(), values)),
        metadata,
    )
}

/// Reads a checkpoint written by [`save`], checking every tensor against the recorded config.
pub fn load(path: &Path) -> Result<Checkpoint, CheckpointError> {
    let bytes = read(path)?;
    let file = parse(path, &bytes)?;
    let config: CheckpointConfig = metadata_json(path, &bytes, "config")?;
    let vocab: Vec<String> = metadata_json(path, &bytes, "vocab")?;
    if vocab.len() != config.vocab_size {
        return Err(format_error(
            path,
            format!(
                "vocab has {} symbols, config says {}",
                vocab.len(),
                config.vocab_size
            ),
        ));
    }
    if config.input_width == 0 || config.inputs_per_step == 0 {
        return Err(format_error(
            path,
            format!(
                "config has input_width {} and inputs_per_step {}; both must be at least 1",
                config.input_width, config.inputs_per_step
            ),
        ));
    }
    // A recorded feature set must fit the input shape (a multi-hot model without one is the
    // engines' own business: it is refused where features are read).
    if config.features.is_some() {
        config
            .feature_set()
            .and_then(|_| config.common_meter())
            .and_then(|_| config.common_mode())
            .and_then(|_| config.conditions())
            .map_err(|e| format_error(path, e))?;
    }
    let mut params = Params::zeros(config.model());
    let expected: Vec<(String, Vec<usize>)> = config.model().tensor_shapes();
    check_no_foreign(path, &file, &expected)?;
    for (name, shape) in &expected {
        let values = params.tensor_mut(name).expect("name comes from the config");
        read_tensor(path, &file, name, shape, values)?;
    }
    Ok(Checkpoint {
        params,
        vocab,
        config,
    })
}

/// Reads a checkpoint with its vocabulary, whose symbols must be distinct.
pub fn load_with_vocabulary(path: &Path) -> Result<(Checkpoint, Vocabulary), CheckpointError> {
    let saved = load(path)?;
    let vocab = Vocabulary::from_ordered(saved.vocab.clone()).ok_or_else(|| {
        CheckpointError::RepeatedSymbol {
            path: path.to_path_buf(),
        }
    })?;
    Ok((saved, vocab))
}

/// Writes Adam's state: tensors `m` and `v` (flat, one per parameter) and metadata `step`.
pub fn save_adam(path: &Path, state: &AdamState) -> Result<(), CheckpointError> {
    let n = state.m.len();
    assert_eq!(state.v.len(), n, "m and v differ in length");
    let metadata = HashMap::from([("step".to_string(), state.step.to_string())]);
    let tensors = [
        ("m".to_string(), vec![n], state.m.as_slice()),
        ("v".to_string(), vec![n], state.v.as_slice()),
    ];
    write_tensors(path, tensors.into_iter(), metadata)
}

/// Reads Adam's state written by [`save_adam`] for a model of `num_params` scalars.
pub fn load_adam(path: &Path, num_params: usize) -> Result<AdamState, CheckpointError> {
    let bytes = read(path)?;
    let file = parse(path, &bytes)?;
    let step: u64 = metadata_json(path, &bytes, "step")?;
    let expected = [
        ("m".to_string(), vec![num_params]),
        ("v".to_string(), vec![num_params]),
    ];
    check_no_foreign(path, &file, &expected)?;
    let mut m = vec![0.0; num_params];
    let mut v = vec![0.0; num_params];
    read_tensor(path, &file, "m", &[num_params], &mut m)?;
    read_tensor(path, &file, "v", &[num_params], &mut v)?;
    Ok(AdamState { m, v, step })
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serialises")
}

fn format_error(path: &Path, message: String) -> CheckpointError {
    CheckpointError::Format {
        path: path.to_path_buf(),
        message,
    }
}

fn tensor_error(path: &Path, tensor: &str, message: String) -> CheckpointError {
    CheckpointError::Tensor {
        path: path.to_path_buf(),
        tensor: tensor.to_string(),
        message,
    }
}

fn read(path: &Path) -> Result<Vec<u8>, CheckpointError> {
    fs::read(path).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<SafeTensors<'a>, CheckpointError> {
    SafeTensors::deserialize(bytes)
        .map_err(|e| format_error(path, format!("not a valid safetensors file ({e})")))
}

/// Parses the JSON string stored under metadata `key`.
fn metadata_json<T: for<'de> Deserialize<'de>>(
    path: &Path,
    bytes: &[u8],
    key: &str,
) -> Result<T, CheckpointError> {
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| format_error(path, format!("not a valid safetensors file ({e})")))?;
    let text = header
        .metadata()
        .as_ref()
        .and_then(|map| map.get(key))
        .ok_or_else(|| format_error(path, format!("metadata `{key}` missing")))?;
    serde_json::from_str(text)
        .map_err(|e| format_error(path, format!("metadata `{key}` is invalid ({e})")))
}

/// A tensor the config does not imply means the file belongs to another model.
fn check_no_foreign(
    path: &Path,
    file: &SafeTensors<'_>,
    expected: &[(String, Vec<usize>)],
) -> Result<(), CheckpointError> {
    for name in file.names() {
        if !expected.iter().any(|(known, _)| known == name) {
            return Err(tensor_error(path, name, "unexpected tensor".to_string()));
        }
    }
    Ok(())
}

/// Copies tensor `name` into `out` after checking presence, dtype and shape.
fn read_tensor(
    path: &Path,
    file: &SafeTensors<'_>,
    name: &str,
    shape: &[usize],
    out: &mut [f32],
) -> Result<(), CheckpointError> {
    let view = file
        .tensor(name)
        .map_err(|_| tensor_error(path, name, "missing".to_string()))?;
    if view.dtype() != Dtype::F32 {
        return Err(tensor_error(
            path,
            name,
            format!("dtype {:?}, expected F32", view.dtype()),
        ));
    }
    if view.shape() != shape {
        return Err(tensor_error(
            path,
            name,
            format!("shape {:?}, expected {shape:?}", view.shape()),
        ));
    }
    // safetensors is little-endian; the data may be unaligned, so decode bytewise.
    for (x, bytes) in out.iter_mut().zip(view.data().chunks_exact(4)) {
        *x = f32::from_le_bytes(bytes.try_into().expect("chunks of 4"));
    }
    Ok(())
}

/// Serialises f32 tensors with `metadata` and writes them atomically: `PATH.tmp`, fsync, rename,
/// so a crash never leaves a half-written checkpoint under the real name.
fn write_tensors<'a>(
    path: &Path,
    tensors: impl Iterator<Item = (String, Vec<usize>, &'a [f32])>,
    metadata: HashMap<String, String>,
) -> Result<(), CheckpointError> {
    let encoded: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .map(|(name, shape, values)| {
            let bytes = values.iter().flat_map(|x| x.to_le_bytes()).collect();
            (name, shape, bytes)
        })
        .collect();
    let views = encoded.iter().map(|(name, shape, bytes)| {
        let view = TensorView::new(Dtype::F32, shape.clone(), bytes).expect("length matches shape");
        (name.as_str(), view)
    });
    let buffer = safetensors::serialize(views, &Some(metadata))
        .map_err(|e| format_error(path, format!("cannot serialise ({e})")))?;
    atomic::write(path, &canonical_header(buffer)).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The same file with its JSON header's keys sorted. The metadata arrives as a HashMap whose
/// order changes from run to run; sorted, the same parameters always give the same bytes.
fn canonical_header(mut buffer: Vec<u8>) -> Vec<u8> {
    let len = u64::from_le_bytes(buffer[..8].try_into().expect("8-byte prefix")) as usize;
    let header: serde_json::Value =
        serde_json::from_slice(&buffer[8..8 + len]).expect("safetensors wrote valid JSON");
    // serde_json's maps are ordered by key.
    let sorted = serde_json::to_vec(&header).expect("a JSON value serialises");
    // Same keys and values in another order: same length, so the padding still fits.
    assert!(sorted.len() <= len, "a reordered header cannot grow");
    buffer[8..8 + sorted.len()].copy_from_slice(&sorted);
    buffer[8 + sorted.len()..8 + len].fill(b' ');
    buffer
}
