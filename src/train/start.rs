//! Where training starts: fresh parameters, a checkpoint to fine-tune, or a run to resume, with
//! the dataset in the model's vocabulary.

use std::path::Path;

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::metrics::{self, metrics_path};
use super::stopping::EarlyStopping;
use super::TrainOptions;
use crate::dataset::Dataset;
use crate::encode::Vocabulary;
use crate::features::FeatureSet;
use crate::model::checkpoint::{self, CheckpointConfig};
use crate::model::{Config, Params};
use crate::optim::Adam;

/// Where training starts.
#[derive(Clone, Debug)]
pub struct Start {
    pub epoch: usize,
    pub step: u64,
    pub early_stopping: EarlyStopping,
}

/// Fresh parameters, a checkpoint to fine-tune (`init`), or the checkpoint and Adam state of a
/// run to resume; and the dataset in the model's vocabulary.
pub fn initial_state(
    options: &TrainOptions,
    data: Dataset,
) -> Result<(Params<f32>, Dataset, Adam, Start), String> {
    let fresh_start = Start {
        epoch: 0,
        step: 0,
        early_stopping: EarlyStopping::new(options.patience),
    };
    let adam = |config: &Config| {
        let mut adam = Adam::new(config.num_params());
        adam.learning_rate = options.learning_rate;
        adam.clip = options.clip;
        adam
    };
    if options.resume {
        return resume(options, data, adam);
    }
    if let Some(init) = &options.init {
        let (params, data) = fine_tuning_start(init, data, options)?;
        let adam = adam(params.config());
        return Ok((params, data, adam, fresh_start));
    }
    let set = &options.features;
    let v = data.vocab.len();
    let config = Config::one_hot(v, options.hidden, options.layers, options.dropout)
        .multi_hot(set.input_width(v), set.inputs_per_step());
    let params = Params::init(config, &mut StdRng::seed_from_u64(options.seed));
    Ok((params, data, adam(&config), fresh_start))
}

fn resume(
    options: &TrainOptions,
    data: Dataset,
    adam: impl Fn(&Config) -> Adam,
) -> Result<(Params<f32>, Dataset, Adam, Start), String> {
    let out = options.out.display();
    let (saved, vocab) =
        checkpoint::load_with_vocabulary(&options.out).map_err(|e| format!("--resume: {e}"))?;
    let data = in_vocabulary(data, &vocab, false)
        .map_err(|unknown| format!("--resume: {out} does not know {unknown}"))?;
    same_features(&saved.config, options, "--resume", &options.out)?;
    let model = saved.config.model();
    let wanted = (
        options.hidden,
        options.layers,
        options.dropout,
        options.objective,
    );
    if options.init.is_none()
        && (
            model.hidden,
            model.layers,
            model.dropout,
            saved.config.objective,
        ) != wanted
    {
        return Err(format!(
            "--resume: {out} has layers {}, hidden {}, dropout {}, objective {:?}; pass the same options to resume",
            model.layers, model.hidden, model.dropout, saved.config.objective
        ));
    }
    let mut adam = adam(&model);
    let adam_path = checkpoint::adam_path(&options.out);
    adam.state = checkpoint::load_adam(&adam_path, model.num_params())
        .map_err(|e| format!("--resume: {e}"))?;
    if adam.state.step != saved.config.step {
        return Err(format!(
            "--resume: {} is at step {} but {out} at step {}",
            adam_path.display(),
            adam.state.step,
            saved.config.step
        ));
    }
    // The held-out losses logged so far decide the best epoch, as if training had not stopped.
    let mut early_stopping = EarlyStopping::new(options.patience);
    for (epoch, loss) in metrics::logged_val_losses(&metrics_path(options), saved.config.epoch) {
        early_stopping.observe(epoch, loss);
    }
    let start = Start {
        epoch: saved.config.epoch,
        step: saved.config.step,
        early_stopping,
    };
    Ok((saved.params, data, adam, start))
}

/// The checkpoint to fine-tune, its vocabulary extended by the corpus's new symbols if allowed.
fn fine_tuning_start(
    init: &Path,
    data: Dataset,
    options: &TrainOptions,
) -> Result<(Params<f32>, Dataset), String> {
    let (saved, vocab) =
        checkpoint::load_with_vocabulary(init).map_err(|e| format!("--init: {e}"))?;
    same_features(&saved.config, options, "--init", init)?;
    let new: Vec<String> = data
        .vocab
        .symbols()
        .iter()
        .filter(|s| vocab.id(s).is_none())
        .cloned()
        .collect();
    if !new.is_empty() && !options.extend_vocab {
        return Err(format!(
            "--init: {} does not know the symbols {} of {}; pass --extend-vocab to add them",
            init.display(),
            new.join(" "),
            options.data.display()
        ));
    }
    if !new.is_empty() && options.features != FeatureSet::NONE {
        return Err(format!(
            "--init --extend-vocab: {} reads features ({}), whose rows are laid out by its \
             vocabulary, so it cannot learn new symbols; preprocess with its symbols only, or \
             train a new model",
            init.display(),
            options.features
        ));
    }
    let mut symbols = saved.vocab;
    symbols.extend(new.iter().cloned());
    let vocab = Vocabulary::from_ordered(symbols).expect("the new symbols are not in it");
    let mut rng = StdRng::seed_from_u64(options.seed);
    let params = match new.len() {
        0 => saved.params,
        extra => saved.params.with_extra_symbols(extra, &mut rng),
    };
    let data = in_vocabulary(data, &vocab, true).expect("every symbol was added");
    Ok((params, data))
}

/// A checkpoint to resume or fine-tune reads the features asked for, or it is an error naming
/// both.
fn same_features(
    saved: &CheckpointConfig,
    options: &TrainOptions,
    flag: &str,
    path: &Path,
) -> Result<(), String> {
    let saved_set = saved
        .feature_set()
        .map_err(|e| format!("{flag}: {}: {e}", path.display()))?;
    if saved_set != options.features {
        return Err(format!(
            "{flag}: {} reads features {saved_set}, but --features asks for {}; pass \
             --features {saved_set}",
            path.display(),
            options.features
        ));
    }
    Ok(())
}

/// The dataset with the ids of `vocab`; the symbols `vocab` lacks as an error. Unless `subset`,
/// the two vocabularies must be the same.
fn in_vocabulary(data: Dataset, vocab: &Vocabulary, subset: bool) -> Result<Dataset, String> {
    if !subset && data.vocab != *vocab {
        let unknown = data
            .vocab
            .symbols()
            .iter()
            .filter(|s| vocab.id(s).is_none())
            .cloned()
            .collect::<Vec<_>>();
        return Err(if unknown.is_empty() {
            "the same symbols in another order (the dataset was preprocessed again?)".to_string()
        } else {
            format!("the symbols {}", unknown.join(" "))
        });
    }
    data.remap(vocab)
        .map_err(|unknown| format!("the symbols {}", unknown.join(" ")))
}
