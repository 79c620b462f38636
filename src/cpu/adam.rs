//! The optimiser step on the CPU: the global norm, clipping, and the Adam update of
//! [`crate::optim`] over the flat parameter buffer.

use rayon::prelude::*;

use crate::optim::{global_norm, Adam};

impl Adam {
    /// One update of `params` from `grads` (clipped in place first if `clip` is set). Returns the
    /// global gradient norm before clipping.
    pub fn step(&mut self, params: &mut [f32], grads: &mut [f32]) -> f32 {
        assert_eq!(
            params.len(),
            self.state.m.len(),
            "parameter count differs from the state"
        );
        assert_eq!(
            grads.len(),
            params.len(),
            "gradient count differs from the parameters"
        );

        let norm = global_norm(grads);
        let scale = self.clip_scale(norm);
        if scale != 1.0 {
            grads.iter_mut().for_each(|g| *g *= scale);
        }

        self.state.step += 1;
        let lr_t = self.step_size(self.state.step);
        let rates = (1.0 - self.beta1, 1.0 - self.beta2, self.epsilon);
        let state = &mut self.state;
        adam_update(params, grads, (&mut state.m, &mut state.v), lr_t, rates);
        norm
    }
}

/// Per element, with g the (already clipped) gradient:
///   m ← m + (g − m)(1 − β1);  v ← v + (g² − v)(1 − β2);  θ ← θ − lr_t·m / (√v + ε)
/// Blocks of elements go to rayon's threads: each element's update is its own.
pub fn adam_update(
    theta: &mut [f32],
    grads: &[f32],
    (m, v): (&mut [f32], &mut [f32]),
    lr_t: f32,
    (one_minus_beta1, one_minus_beta2, epsilon): (f32, f32, f32),
) {
    (theta.par_chunks_mut(ADAM_BLOCK))
        .zip(grads.par_chunks(ADAM_BLOCK))
        .zip(m.par_chunks_mut(ADAM_BLOCK))
        .zip(v.par_chunks_mut(ADAM_BLOCK))
        .for_each(|(((theta, grads), m), v)| {
            for (((theta, &g), m), v) in theta
                .iter_mut()
                .zip(grads)
                .zip(m.iter_mut())
                .zip(v.iter_mut())
            {
                *m += (g - *m) * one_minus_beta1;
                *v += (g * g - *v) * one_minus_beta2;
                *theta -= lr_t * *m / (v.sqrt() + epsilon);
            }
        });
}

/// Parameters per rayon task.
const ADAM_BLOCK: usize = 1 << 15;
