//! The f32 recurrence on the engine's own kernels (forward over T steps, and ∂L/∂h_{t−1} in
//! BPTT), the same computation as `lstm::lstm_forward` and the loop of `lstm::lstm_backward`.
//!
//! W_hh is packed once per pass into [`super::microkernel`] panels. The H units (with their four
//! gates) are split across threads, so each thread's slice of the packed weights stays in its own
//! cache for all T steps while the batch rows stream through it; the threads meet at a spinning
//! barrier once per step, when every unit's h_t (forward) or ∂L/∂a_t (backward) is written.
//!
//! Forward, panel p holds units p·L..(p+1)·L (L = the kernel's lanes) with their four gates side
//! by side, [k][gate][unit]: one tile is every pre-activation of those units for its rows, and the
//! gate nonlinearities and the c/h update run on it right away (`lstm::cell_forward`), before
//! anything leaves the thread. Backward, panel p holds W_hh's columns p·4L..(p+1)·4L over all
//! 4H rows: dh_{t−1} += ∂L/∂a_t · W_hh, tile by tile.

use std::any::TypeId;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::isa::Isa;
use super::lstm::{cell_backward, cell_forward, Dims, LayerTape};
use super::microkernel::{Microkernel, Portable, TileOut, MAX_PANEL, MAX_ROWS};
use crate::model::Float;

#[cfg(target_arch = "x86_64")]
use super::microkernel::{Avx2, Avx512};

/// The lanes of `isa`'s microkernel (a panel is four times as wide).
pub fn lanes(isa: Isa) -> usize {
    match isa {
        Isa::Portable => Portable::LANES,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => Avx2::LANES,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => Avx512::LANES,
        #[cfg(not(target_arch = "x86_64"))]
        _ => unreachable!("{isa} is x86-64 only"),
    }
}

/// W_hh [4H][H] into forward panels of `lanes` units: packed[p][k][g][u] = W_hh[g·H + p·L + u][k],
/// zero beyond unit H.
pub fn pack_forward(weight_hh: &[f32], h: usize, lanes: usize, packed: &mut Vec<f32>) {
    let width = 4 * lanes;
    packed.clear();
    packed.resize(h.div_ceil(lanes) * h * width, 0.0);
    for g in 0..4 {
        for j in 0..h {
            let (p, u) = (j / lanes, j % lanes);
            let source = &weight_hh[(g * h + j) * h..][..h];
            for (k, &w) in source.iter().enumerate() {
                packed[(p * h + k) * width + g * lanes + u] = w;
            }
        }
    }
}

/// W_hh [4H][H] into backward panels of 4·`lanes` columns: packed[p][k][c] = W_hh[k][p·4L + c],
/// zero beyond column H.
pub fn pack_backward(weight_hh: &[f32], h: usize, lanes: usize, packed: &mut Vec<f32>) {
    let width = 4 * lanes;
    packed.clear();
    packed.resize(h.div_ceil(width) * 4 * h * width, 0.0);
    for (k, row) in weight_hh.chunks_exact(h).enumerate() {
        for (p, columns) in row.chunks(width).enumerate() {
            let start = (p * 4 * h + k) * width;
            packed[start..start + columns.len()].copy_from_slice(columns);
        }
    }
}

/// `lstm::lstm_forward` on the packed kernels of `isa`: on entry `tape.gates` holds the input
/// terms; on exit the activations, and c, tanh(c), h are filled. `packed` is scratch.
pub fn forward<F: Float>(
    isa: Isa,
    weight_hh: &[F],
    dims: Dims,
    tape: &mut LayerTape<F>,
    packed: &mut Vec<f32>,
) {
    let (b, h) = (dims.batch, dims.hidden);
    assert!(
        tape.hidden.len() >= dims.steps * b * h,
        "tape shorter than the window"
    );
    let lanes = lanes(isa);
    pack_forward(f32s(weight_hh), h, lanes, packed);
    let pass = ForwardPass {
        dims,
        packed: packed.as_ptr(),
        zero_state: f32s(&tape.zero_state).as_ptr(),
        gates: f32s_mut(&mut tape.gates).as_mut_ptr(),
        cell: f32s_mut(&mut tape.cell).as_mut_ptr(),
        tanh_cell: f32s_mut(&mut tape.tanh_cell).as_mut_ptr(),
        hidden: f32s_mut(&mut tape.hidden).as_mut_ptr(),
    };
    on_threads(h.div_ceil(lanes), |panels, barrier| {
        // SAFETY: the pointers reach the tape's [T][B][·] buffers and the packed panels (sizes
        // checked above and by construction); each thread writes only its own units' columns,
        // and reads other units' h_{t−1} only after the barrier that ends step t−1. `isa` is
        // supported: it came from `Isa::parse`/`Isa::best` or a caller that checked.
        unsafe {
            match isa {
                Isa::Portable => forward_panels::<Portable>(&pass, panels, barrier),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => forward_panels_avx2(&pass, panels, barrier),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => forward_panels_avx512(&pass, panels, barrier),
                #[cfg(not(target_arch = "x86_64"))]
                _ => unreachable!("{isa} is x86-64 only"),
            }
        }
    });
}

/// The loop of `lstm::lstm_backward` on the packed kernels of `isa`: fills ∂L/∂a [T][B][4H] into
/// `d_gates` and adds the recurrent terms into `d_hidden` [T][B][H]; `d_cell` [B][H] is scratch,
/// `packed` too.
#[allow(clippy::too_many_arguments)]
pub fn backward<F: Float>(
    isa: Isa,
    weight_hh: &[F],
    dims: Dims,
    tape: &LayerTape<F>,
    d_hidden: &mut [F],
    d_gates: &mut [F],
    d_cell: &mut [F],
    packed: &mut Vec<f32>,
) {
    let (b, h) = (dims.batch, dims.hidden);
    let rows = dims.steps * b;
    assert!(
        d_hidden.len() >= rows * h && d_gates.len() >= rows * 4 * h,
        "short gradient buffers"
    );
    assert_eq!(d_cell.len(), b * h, "d_cell is [B][H]");
    let lanes = lanes(isa);
    pack_backward(f32s(weight_hh), h, lanes, packed);
    d_cell.fill(F::ZERO);
    let pass = BackwardPass {
        dims,
        packed: packed.as_ptr(),
        zero_state: f32s(&tape.zero_state).as_ptr(),
        gates: f32s(&tape.gates).as_ptr(),
        cell: f32s(&tape.cell).as_ptr(),
        tanh_cell: f32s(&tape.tanh_cell).as_ptr(),
        d_hidden: f32s_mut(d_hidden).as_mut_ptr(),
        d_gates: f32s_mut(d_gates).as_mut_ptr(),
        d_cell: f32s_mut(d_cell).as_mut_ptr(),
    };
    on_threads(h.div_ceil(4 * lanes), |panels, barrier| {
        // SAFETY: as in `forward`: each thread writes only its own units' columns of d_hidden,
        // d_gates and d_cell, and reads other units' ∂L/∂a_t only after the barrier that ends
        // their pointwise step t.
        unsafe {
            match isa {
                Isa::Portable => backward_panels::<Portable>(&pass, panels, barrier),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => backward_panels_avx2(&pass, panels, barrier),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => backward_panels_avx512(&pass, panels, barrier),
                #[cfg(not(target_arch = "x86_64"))]
                _ => unreachable!("{isa} is x86-64 only"),
            }
        }
    });
}

/// Raw views of one forward pass, shared by its threads.
struct ForwardPass {
    dims: Dims,
    packed: *const f32,
    zero_state: *const f32,
    gates: *mut f32,
    cell: *mut f32,
    tanh_cell: *mut f32,
    hidden: *mut f32,
}

/// Raw views of one backward pass, shared by its threads.
struct BackwardPass {
    dims: Dims,
    packed: *const f32,
    zero_state: *const f32,
    gates: *const f32,
    cell: *const f32,
    tanh_cell: *const f32,
    d_hidden: *mut f32,
    d_gates: *mut f32,
    d_cell: *mut f32,
}

// SAFETY: the threads of a pass write disjoint columns and synchronise at the barrier (see
// `forward` and `backward`); the buffers outlive the scoped threads.
unsafe impl Sync for ForwardPass {}
unsafe impl Sync for BackwardPass {}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn forward_panels_avx2(pass: &ForwardPass, panels: Range<usize>, barrier: &SpinBarrier) {
    forward_panels::<Avx2>(pass, panels, barrier)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn forward_panels_avx512(pass: &ForwardPass, panels: Range<usize>, barrier: &SpinBarrier) {
    forward_panels::<Avx512>(pass, panels, barrier)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn backward_panels_avx2(pass: &BackwardPass, panels: Range<usize>, barrier: &SpinBarrier) {
    backward_panels::<Avx2>(pass, panels, barrier)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn backward_panels_avx512(pass: &BackwardPass, panels: Range<usize>, barrier: &SpinBarrier) {
    backward_panels::<Avx512>(pass, panels, barrier)
}

/// One thread's forward panels over all T steps: per panel and block of rows, one tile of
/// W_hh·h_{t−1}, then the cell update of those rows and units from it.
#[inline(always)]
unsafe fn forward_panels<K: Microkernel>(
    pass: &ForwardPass,
    panels: Range<usize>,
    barrier: &SpinBarrier,
) {
    let Dims {
        steps,
        batch,
        hidden: h,
        ..
    } = pass.dims;
    let (bh, lanes) = (batch * h, K::LANES);
    let mut tile: TileOut = [[0.0; MAX_PANEL]; MAX_ROWS];
    for t in 0..steps {
        // h_{−1} = 0: step 0 has no recurrent term (k = 0) and reads c_{−1} = 0.
        let (h_prev, c_prev, k) = match t {
            0 => (pass.zero_state, pass.zero_state, 0),
            _ => (
                pass.hidden.add((t - 1) * bh).cast_const(),
                pass.cell.add((t - 1) * bh).cast_const(),
                h,
            ),
        };
        for p in panels.clone() {
            let panel = pass.packed.add(p * h * 4 * lanes);
            let first = p * lanes;
            let n = lanes.min(h - first);
            for r0 in (0..batch).step_by(K::ROWS) {
                let rows = K::ROWS.min(batch - r0);
                K::tile(rows, h_prev.add(r0 * h), h, k, panel, &mut tile);
                for (r, acc) in tile[..rows].iter().enumerate() {
                    let row = t * batch + r0 + r;
                    let unit = |buffer: *mut f32| {
                        std::slice::from_raw_parts_mut(buffer.add(row * h + first), n)
                    };
                    let gate_row = pass.gates.add(row * 4 * h + first);
                    let gate = |g: usize| std::slice::from_raw_parts_mut(gate_row.add(g * h), n);
                    let (a_i, a_f, a_g, a_o) = (gate(0), gate(1), gate(2), gate(3));
                    let c_prev = std::slice::from_raw_parts(c_prev.add((r0 + r) * h + first), n);
                    let (cell, tanh_cell, hidden) =
                        (unit(pass.cell), unit(pass.tanh_cell), unit(pass.hidden));
                    for u in 0..n {
                        let recurrent = [
                            acc[u],
                            acc[lanes + u],
                            acc[2 * lanes + u],
                            acc[3 * lanes + u],
                        ];
                        let pre = [
                            a_i[u] + recurrent[0],
                            a_f[u] + recurrent[1],
                            a_g[u] + recurrent[2],
                            a_o[u] + recurrent[3],
                        ];
                        let ([i, f, g, o], c, tanh_c) = cell_forward(pre, c_prev[u]);
                        (a_i[u], a_f[u], a_g[u], a_o[u]) = (i, f, g, o);
                        cell[u] = c;
                        tanh_cell[u] = tanh_c;
                        hidden[u] = o * tanh_c;
                    }
                }
            }
        }
        barrier.wait();
    }
}

/// One thread's units backwards over all T steps: the pointwise step for its units (all rows),
/// then, once every unit's ∂L/∂a_t is written, its columns of ∂L/∂h_{t−1} += ∂L/∂a_t · W_hh.
#[inline(always)]
unsafe fn backward_panels<K: Microkernel>(
    pass: &BackwardPass,
    panels: Range<usize>,
    barrier: &SpinBarrier,
) {
    let Dims {
        steps,
        batch,
        hidden: h,
        ..
    } = pass.dims;
    let (bh, width) = (batch * h, 4 * K::LANES);
    let units = panels.start * width..(panels.end * width).min(h);
    let n = units.len();
    let mut tile: TileOut = [[0.0; MAX_PANEL]; MAX_ROWS];
    for t in (0..steps).rev() {
        let c_prev = match t {
            0 => pass.zero_state,
            _ => pass.cell.add((t - 1) * bh),
        };
        for b in 0..batch {
            let row = t * batch + b;
            let gate_row = pass.gates.add(row * 4 * h + units.start);
            let gate = |g: usize| std::slice::from_raw_parts(gate_row.add(g * h), n);
            let d_gate_row = pass.d_gates.add(row * 4 * h + units.start);
            let d_gate = |g: usize| std::slice::from_raw_parts_mut(d_gate_row.add(g * h), n);
            let (i, f, g, o) = (gate(0), gate(1), gate(2), gate(3));
            let (d_i, d_f, d_g, d_o) = (d_gate(0), d_gate(1), d_gate(2), d_gate(3));
            let at = |buffer: *const f32, row: usize| {
                std::slice::from_raw_parts(buffer.add(row * h + units.start), n)
            };
            let (c_prev, tanh_cell) = (at(c_prev, b), at(pass.tanh_cell, row));
            let d_hidden = at(pass.d_hidden.cast_const(), row);
            let d_cell = std::slice::from_raw_parts_mut(pass.d_cell.add(b * h + units.start), n);
            for u in 0..n {
                let (d_a, d_c) = cell_backward(
                    [i[u], f[u], g[u], o[u]],
                    c_prev[u],
                    tanh_cell[u],
                    d_hidden[u],
                    d_cell[u],
                );
                [d_i[u], d_f[u], d_g[u], d_o[u]] = d_a;
                d_cell[u] = d_c;
            }
        }
        barrier.wait();
        if t == 0 {
            break;
        }
        let d_a = pass.d_gates.add(t * batch * 4 * h).cast_const();
        let d_prev = pass.d_hidden.add((t - 1) * bh);
        for p in panels.clone() {
            let panel = pass.packed.add(p * 4 * h * width);
            let first = p * width;
            let columns = width.min(h - first);
            for r0 in (0..batch).step_by(K::ROWS) {
                let rows = K::ROWS.min(batch - r0);
                K::tile(rows, d_a.add(r0 * 4 * h), 4 * h, 4 * h, panel, &mut tile);
                for (r, acc) in tile[..rows].iter().enumerate() {
                    let out =
                        std::slice::from_raw_parts_mut(d_prev.add((r0 + r) * h + first), columns);
                    for (d, &a) in out.iter_mut().zip(acc) {
                        *d += a;
                    }
                }
            }
        }
    }
}

/// Runs `work(panels, barrier)` on as many threads as rayon has (at most one per panel), each
/// with its own contiguous range of `panels`; the calling thread takes the first range.
/// Dedicated scoped threads, not rayon tasks: every thread must run at once for the barrier.
fn on_threads(panels: usize, work: impl Fn(Range<usize>, &SpinBarrier) + Sync) {
    let threads = rayon::current_num_threads().min(panels).max(1);
    let barrier = SpinBarrier::new(threads);
    let part = |i: usize| i * panels / threads..(i + 1) * panels / threads;
    if threads == 1 {
        return work(part(0), &barrier);
    }
    std::thread::scope(|scope| {
        for i in 1..threads {
            let (work, barrier) = (&work, &barrier);
            scope.spawn(move || work(part(i), barrier));
        }
        work(part(0), &barrier);
    });
}

/// A barrier for threads that meet every few hundred microseconds: they spin (a futex wake
/// costs tens of microseconds), and yield after a while in case the machine is oversubscribed.
pub struct SpinBarrier {
    threads: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
}

impl SpinBarrier {
    pub fn new(threads: usize) -> Self {
        SpinBarrier {
            threads,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
        }
    }

    /// Returns once all `threads` have called it (for this generation).
    pub fn wait(&self) {
        if self.threads == 1 {
            return;
        }
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.threads {
            // Reset before releasing: the next round's arrivals see 0.
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
            return;
        }
        let mut spins = 0u32;
        while self.generation.load(Ordering::Acquire) == generation {
            if spins < 20_000 {
                std::hint::spin_loop();
                spins += 1;
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// Whether the packed kernels can run on F (they are f32 only).
pub fn is_f32<F: Float>() -> bool {
    TypeId::of::<F>() == TypeId::of::<f32>()
}

/// `data` as the f32 slice it is; panics for any other F.
fn f32s<F: Float>(data: &[F]) -> &[f32] {
    assert!(is_f32::<F>(), "the packed kernels are f32 only");
    // SAFETY: F is f32 (checked above), so the memory is f32s of the same length.
    unsafe { std::slice::from_raw_parts(data.as_ptr().cast(), data.len()) }
}

/// [`f32s`], writable.
fn f32s_mut<F: Float>(data: &mut [F]) -> &mut [f32] {
    assert!(is_f32::<F>(), "the packed kernels are f32 only");
    // SAFETY: as in `f32s`; the borrow is unique.
    unsafe { std::slice::from_raw_parts_mut(data.as_mut_ptr().cast(), data.len()) }
}
