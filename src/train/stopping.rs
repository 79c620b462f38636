//! When training stops before its last epoch: early stopping on held-out loss, and Ctrl-C.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

/// Early stopping on held-out loss: training stops once `patience` epochs in a row bring no new
/// best. The best epoch's checkpoint is kept beside the last one.
#[derive(Clone, Debug, Default)]
pub struct EarlyStopping {
    patience: Option<usize>,
    best: Option<(usize, f64)>,
}

impl EarlyStopping {
    pub fn new(patience: Option<usize>) -> EarlyStopping {
        EarlyStopping {
            patience,
            best: None,
        }
    }

    /// Records an epoch's held-out loss; returns (is it a new best?, should training stop?).
    pub fn observe(&mut self, epoch: usize, val_loss: f64) -> (bool, bool) {
        let improved = self.best.is_none_or(|(_, best)| val_loss < best);
        if improved {
            self.best = Some((epoch, val_loss));
        }
        let (best_epoch, _) = self.best.expect("set above");
        let stop = self.patience.is_some_and(|p| epoch - best_epoch >= p);
        (improved, stop)
    }

    pub fn best(&self) -> Option<(usize, f64)> {
        self.best
    }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static HANDLER: Once = Once::new();

/// Catches Ctrl-C from now on (once per process), so that training can save before it stops.
pub(super) fn catch_interrupt() {
    HANDLER.call_once(|| {
        // Without a handler Ctrl-C still stops training, only without the last checkpoint.
        let _ = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst));
    });
}

/// Whether Ctrl-C was pressed.
pub(super) fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_stopping_on_a_synthetic_curve() {
        // Held-out loss falls to its minimum at epoch 4, then rises: with patience 3 training
        // stops at epoch 7, three epochs after the best.
        let curve = [1.0, 0.8, 0.7, 0.65, 0.66, 0.7, 0.75, 0.8, 0.9];
        let mut stopping = EarlyStopping::new(Some(3));
        let decisions: Vec<(bool, bool)> = curve
            .iter()
            .enumerate()
            .map(|(i, &loss)| stopping.observe(i + 1, loss))
            .take_while(|&(_, stop)| !stop)
            .collect();
        assert_eq!(decisions.len(), 6, "epochs 1–6 continue, epoch 7 stops");
        assert_eq!(
            decisions.iter().map(|d| d.0).collect::<Vec<_>>(),
            [true, true, true, true, false, false]
        );
        assert_eq!(stopping.best(), Some((4, 0.65)));
        let mut never = EarlyStopping::new(None);
        assert!(curve
            .iter()
            .enumerate()
            .all(|(i, &l)| !never.observe(i + 1, l).1));
    }
}
