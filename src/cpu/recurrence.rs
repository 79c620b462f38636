//! The f32 recurrence on the engine's own kernels (forward over T steps, and ∂L/∂h_{t−1} in
//! BPTT), the same computation as `lstm::lstm_forward` and the loop of `lstm::lstm_backward`.
//!
//! W_hh is packed once per pass into [`super::microkernel`] panels. The H units (each with its
//! four gates) are split across threads in chunks of the kernel's panel width, so each thread's
//! slice of the packed weights stays in its own cache for all T steps while the batch rows
//! stream through it; the threads meet at a barrier once per step, when every unit's h_t
//! (forward) or ∂L/∂a_t (backward) is written.
//!
//! Forward, chunk c of units has one panel per gate, [k][unit] of that gate's rows of W_hh; once
//! a thread's tiles of a step are added to the input terms, the gate nonlinearities and the c/h
//! update run over its units of each row while they are in its cache (`lstm::cell_forward_units`,
//! the reference's own code). Backward, chunk c's panel is W_hh's columns of those units over all
//! 4H rows: dh_{t−1} += ∂L/∂a_t · W_hh, tile by tile, after the pointwise step of every unit.

use std::any::TypeId;
use std::ops::Range;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::isa::Isa;
use super::lstm::{cell_backward_units, cell_forward_units, Dims, LayerTape, StepOutput};
use super::microkernel::{
    pack_column, pack_row, tile_shape, Microkernel, Portable, Strided, TileOut, MAX_ROWS, MAX_WIDTH,
};
use crate::model::Float;

#[cfg(target_arch = "x86_64")]
use super::microkernel::{Avx2, Avx512};

/// The panel width of `isa`'s microkernel: the units of one chunk.
fn width(isa: Isa) -> usize {
    tile_shape(isa).1
}

/// W_hh [4H][H] into forward panels, one per chunk of `width` units and gate:
/// packed[c][g][k][u] = W_hh[g·H + c·width + u][k], zero beyond unit H.
pub fn pack_forward(weight_hh: &[f32], h: usize, width: usize, packed: &mut Vec<f32>) {
    packed.clear();
    packed.resize(h.div_ceil(width) * 4 * h * width, 0.0);
    for g in 0..4 {
        for j in 0..h {
            let (c, u) = (j / width, j % width);
            let panel = &mut packed[(c * 4 + g) * h * width..][..h * width];
            pack_column(&weight_hh[(g * h + j) * h..][..h], u, width, panel);
        }
    }
}

/// W_hh [4H][H] into backward panels, one per chunk of `width` units:
/// packed[c][k][u] = W_hh[k][c·width + u] over all 4H rows k, zero beyond unit H.
pub fn pack_backward(weight_hh: &[f32], h: usize, width: usize, packed: &mut Vec<f32>) {
    packed.clear();
    packed.resize(h.div_ceil(width) * 4 * h * width, 0.0);
    for (k, row) in weight_hh.chunks_exact(h).enumerate() {
        pack_row(row, k, 4 * h, width, packed);
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
    let width = width(isa);
    pack_forward(f32s(weight_hh), h, width, packed);
    let zero_state = f32s(&tape.zero_state).as_ptr();
    let pass = ForwardPass {
        dims,
        packed: packed.as_ptr(),
        h_before: zero_state,
        c_before: zero_state,
        h_before_nonzero: false,
        gates: f32s_mut(&mut tape.gates).as_mut_ptr(),
        cell: f32s_mut(&mut tape.cell).as_mut_ptr(),
        tanh_cell: f32s_mut(&mut tape.tanh_cell).as_mut_ptr(),
        hidden: f32s_mut(&mut tape.hidden).as_mut_ptr(),
    };
    run_forward(isa, &pass);
}

/// `lstm::lstm_step` on the packed kernels of `isa`, for streaming: one step of every row from
/// its carried h and c. `packed` holds W_hh packed for `isa`, or is empty and gets packed here,
/// so a stream packs once per set of parameters.
pub fn step<F: Float>(
    isa: Isa,
    weight_hh: &[F],
    packed: &mut Vec<f32>,
    h: usize,
    h_prev: &[F],
    c_prev: &[F],
    out: StepOutput<'_, F>,
) {
    let rows = c_prev.len() / h;
    assert_eq!(h_prev.len(), rows * h, "h_prev is [rows][H]");
    assert_eq!(out.gates.len(), rows * 4 * h, "gates are [rows][4H]");
    let lengths = [out.cell.len(), out.tanh_cell.len(), out.hidden.len()];
    assert_eq!(lengths, [rows * h; 3], "step outputs are [rows][H]");
    let width = width(isa);
    if packed.is_empty() {
        pack_forward(f32s(weight_hh), h, width, packed);
    }
    assert_eq!(
        packed.len(),
        h.div_ceil(width) * 4 * h * width,
        "packed for another shape"
    );
    let dims = Dims {
        steps: 1,
        batch: rows,
        hidden: h,
        vocab: 0,
        input_width: 0,
        inputs_per_step: 0,
    };
    let pass = ForwardPass {
        dims,
        packed: packed.as_ptr(),
        h_before: f32s(h_prev).as_ptr(),
        c_before: f32s(c_prev).as_ptr(),
        h_before_nonzero: true,
        gates: f32s_mut(out.gates).as_mut_ptr(),
        cell: f32s_mut(out.cell).as_mut_ptr(),
        tanh_cell: f32s_mut(out.tanh_cell).as_mut_ptr(),
        hidden: f32s_mut(out.hidden).as_mut_ptr(),
    };
    run_forward(isa, &pass);
}

/// The threads of one forward pass over the buffers of `pass`.
fn run_forward(isa: Isa, pass: &ForwardPass) {
    let ForwardPass { dims, .. } = *pass;
    on_threads(dims.hidden.div_ceil(width(isa)), |chunks, barrier| {
        // SAFETY: the pointers reach [T][B][·] buffers and the packed panels (sizes checked by
        // the callers and by construction); each thread writes only its own units' columns,
        // and reads other units' h_{t−1} only after the barrier that ends step t−1. `isa` is
        // supported: it came from `Isa::parse`/`Isa::best` or a caller that checked.
        unsafe {
            match isa {
                Isa::Portable => forward_chunks::<Portable>(pass, chunks, barrier),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => forward_chunks_avx2(pass, chunks, barrier),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => forward_chunks_avx512(pass, chunks, barrier),
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
    let width = width(isa);
    pack_backward(f32s(weight_hh), h, width, packed);
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
    on_threads(h.div_ceil(width), |chunks, barrier| {
        // SAFETY: as in `forward`: each thread writes only its own units' columns of d_hidden,
        // d_gates and d_cell, and reads other units' ∂L/∂a_t only after the barrier that ends
        // their pointwise step t.
        unsafe {
            match isa {
                Isa::Portable => backward_chunks::<Portable>(&pass, chunks, barrier),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => backward_chunks_avx2(&pass, chunks, barrier),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => backward_chunks_avx512(&pass, chunks, barrier),
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
    /// [B][H]: h and c before the first step, and whether h is nonzero (a recurrent term).
    h_before: *const f32,
    c_before: *const f32,
    h_before_nonzero: bool,
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
unsafe fn forward_chunks_avx2(pass: &ForwardPass, chunks: Range<usize>, barrier: &SpinBarrier) {
    forward_chunks::<Avx2>(pass, chunks, barrier)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn forward_chunks_avx512(pass: &ForwardPass, chunks: Range<usize>, barrier: &SpinBarrier) {
    forward_chunks::<Avx512>(pass, chunks, barrier)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn backward_chunks_avx2(pass: &BackwardPass, chunks: Range<usize>, barrier: &SpinBarrier) {
    backward_chunks::<Avx2>(pass, chunks, barrier)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn backward_chunks_avx512(pass: &BackwardPass, chunks: Range<usize>, barrier: &SpinBarrier) {
    backward_chunks::<Avx512>(pass, chunks, barrier)
}

/// One thread's chunks of units forward over all T steps: per chunk, gate and block of rows, one
/// tile of W_hh·h_{t−1} added to the input terms; then the cell update of its units, row by row.
#[inline(always)]
unsafe fn forward_chunks<K: Microkernel>(
    pass: &ForwardPass,
    chunks: Range<usize>,
    barrier: &SpinBarrier,
) {
    let Dims {
        steps,
        batch,
        hidden: h,
        ..
    } = pass.dims;
    let (bh, width) = (batch * h, K::WIDTH);
    let units = chunks.start * width..(chunks.end * width).min(h);
    let n = units.len();
    let mut tile: TileOut = [[0.0; MAX_WIDTH]; MAX_ROWS];
    for t in 0..steps {
        // From the zero state, step 0 has no recurrent term (k = 0).
        let (h_prev, c_prev, k) = match t {
            0 => (
                pass.h_before,
                pass.c_before,
                h * usize::from(pass.h_before_nonzero),
            ),
            _ => (
                pass.hidden.add((t - 1) * bh).cast_const(),
                pass.cell.add((t - 1) * bh).cast_const(),
                h,
            ),
        };
        let gates = pass.gates.add(t * 4 * bh);
        for c in chunks.clone() {
            let first = c * width;
            let columns = width.min(h - first);
            for g in 0..4 {
                let panel = pass.packed.add((c * 4 + g) * h * width);
                for r0 in (0..batch).step_by(K::ROWS) {
                    let rows = K::ROWS.min(batch - r0);
                    // The input terms this tile adds to, written before the pass and long out
                    // of cache: fetched while it computes.
                    for r in 0..rows {
                        prefetch(gates.add((r0 + r) * 4 * h + g * h + first), columns);
                    }
                    K::tile(
                        rows,
                        Strided::rows(h_prev.add(r0 * h), h),
                        k,
                        panel,
                        &mut tile,
                    );
                    for (r, recurrent) in tile[..rows].iter().enumerate() {
                        let pre = gates.add((r0 + r) * 4 * h + g * h + first);
                        let pre = std::slice::from_raw_parts_mut(pre, columns);
                        for (a, &recurrent) in pre.iter_mut().zip(recurrent) {
                            *a += recurrent;
                        }
                    }
                }
            }
        }
        for b in 0..batch {
            let row = t * batch + b;
            let gate_row = pass.gates.add(row * 4 * h + units.start);
            let gate = |g: usize| std::slice::from_raw_parts_mut(gate_row.add(g * h), n);
            let state = |buffer: *mut f32| {
                std::slice::from_raw_parts_mut(buffer.add(row * h + units.start), n)
            };
            let c_prev = std::slice::from_raw_parts(c_prev.add(b * h + units.start), n);
            let (cell, tanh_cell) = (state(pass.cell), state(pass.tanh_cell));
            let (i, f, g, o) = (gate(0), gate(1), gate(2), gate(3));
            cell_forward_units(i, f, g, o, c_prev, cell, tanh_cell, state(pass.hidden));
        }
        barrier.wait();
    }
}

/// One thread's chunks of units backwards over all T steps: the pointwise step of its units (all
/// rows), then, once every unit's ∂L/∂a_t is written, its columns of ∂L/∂h_{t−1} += ∂L/∂a_t·W_hh.
#[inline(always)]
unsafe fn backward_chunks<K: Microkernel>(
    pass: &BackwardPass,
    chunks: Range<usize>,
    barrier: &SpinBarrier,
) {
    let Dims {
        steps,
        batch,
        hidden: h,
        ..
    } = pass.dims;
    let (bh, width) = (batch * h, K::WIDTH);
    let units = chunks.start * width..(chunks.end * width).min(h);
    let n = units.len();
    let mut tile: TileOut = [[0.0; MAX_WIDTH]; MAX_ROWS];
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
            let at = |buffer: *const f32, row: usize| {
                std::slice::from_raw_parts(buffer.add(row * h + units.start), n)
            };
            let (c_prev, tanh_cell) = (at(c_prev, b), at(pass.tanh_cell, row));
            let d_hidden = at(pass.d_hidden.cast_const(), row);
            let d_cell = std::slice::from_raw_parts_mut(pass.d_cell.add(b * h + units.start), n);
            let gates = [gate(0), gate(1), gate(2), gate(3)];
            let (d_i, d_f, d_g, d_o) = (d_gate(0), d_gate(1), d_gate(2), d_gate(3));
            cell_backward_units(
                gates, c_prev, tanh_cell, d_hidden, d_cell, d_i, d_f, d_g, d_o,
            );
        }
        barrier.wait();
        if t == 0 {
            break;
        }
        let d_a = pass.d_gates.add(t * batch * 4 * h).cast_const();
        let d_prev = pass.d_hidden.add((t - 1) * bh);
        for c in chunks.clone() {
            let panel = pass.packed.add(c * 4 * h * width);
            let first = c * width;
            let columns = width.min(h - first);
            for r0 in (0..batch).step_by(K::ROWS) {
                let rows = K::ROWS.min(batch - r0);
                let a = Strided::rows(d_a.add(r0 * 4 * h), 4 * h);
                K::tile(rows, a, 4 * h, panel, &mut tile);
                for (r, recurrent) in tile[..rows].iter().enumerate() {
                    let out = d_prev.add((r0 + r) * h + first);
                    let out = std::slice::from_raw_parts_mut(out, columns);
                    for (d, &recurrent) in out.iter_mut().zip(recurrent) {
                        *d += recurrent;
                    }
                }
            }
        }
    }
}

/// Asks for the cache lines of `len` floats at `data` to be brought into L1 (a hint: no fault,
/// no effect on results).
#[inline(always)]
fn prefetch(data: *const f32, len: usize) {
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (data, len);
    #[cfg(target_arch = "x86_64")]
    for line in (0..len).step_by(16) {
        // SAFETY: a prefetch reads nothing architecturally and does not fault on any address.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(data.wrapping_add(line).cast());
        }
    }
}

/// Runs `work(chunks, barrier)` on as many threads as rayon has (at most one per chunk), each
/// with its own contiguous range of the `chunks`.
///
/// The threads are the recurrence's own pool, started once per process with rayon's default
/// thread count: generation calls this once per symbol, a few hundred microseconds each, and
/// starting a thread every time cost it a seventh of its time. Every thread of a call must run
/// at once for the barrier, so the pool runs nothing else and one call at a time (another
/// caller waits on the lock): in rayon's global pool a thread could be busy with other work, or
/// held at another caller's barrier. Not for rayon's workers: one waiting here may run another
/// of its pool's jobs, which would wait on the lock it holds. A thread that panics breaks the
/// barrier, so the others leave it instead of waiting for it forever, and the call panics with
/// that thread's panic.
fn on_threads(chunks: usize, work: impl Fn(Range<usize>, &SpinBarrier) + Sync) {
    static POOL: OnceLock<Mutex<rayon::ThreadPool>> = OnceLock::new();
    let threads = rayon::current_num_threads().min(chunks).max(1);
    if threads == 1 {
        return work(0..chunks, &SpinBarrier::new(1));
    }
    let pool = POOL.get_or_init(|| {
        let pool = rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("recurrence-{i}"))
            .build()
            .expect("the recurrence's threads start");
        Mutex::new(pool)
    });
    let pool = pool.lock().unwrap_or_else(|e| e.into_inner());
    let threads = threads.min(pool.current_num_threads());
    let barrier = SpinBarrier::new(threads);
    let first_panic = Mutex::new(None);
    pool.broadcast(|context| {
        let i = context.index();
        if i < threads {
            let range = i * chunks / threads..(i + 1) * chunks / threads;
            if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| work(range, &barrier))) {
                barrier.break_for_all();
                if !payload.is::<BarrierBroken>() {
                    let mut first = first_panic.lock().unwrap_or_else(|e| e.into_inner());
                    first.get_or_insert(payload);
                }
            }
        }
    });
    drop(pool);
    if let Some(payload) = first_panic.into_inner().unwrap_or_else(|e| e.into_inner()) {
        panic::resume_unwind(payload);
    }
}

/// How a thread leaves a broken [`SpinBarrier`]: an unwind without a panic message of its own,
/// as [`on_threads`] passes on the panic that broke the barrier.
struct BarrierBroken;

/// A barrier for threads that meet every few hundred microseconds: they spin first (a futex
/// wake costs tens of microseconds), then yield the processor for a while (a thread woken late
/// is met without a sleep; a thread that wants the core gets it), then sleep on a condition
/// variable, so that a machine with more runnable threads than cores is not slowed down further
/// by spinning.
pub struct SpinBarrier {
    threads: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
    broken: AtomicBool,
    sleep: Mutex<()>,
    wake: Condvar,
}

/// Spins before yielding: ≈ 50 µs on current processors.
const SPINS: u32 = 2_000;
/// Then yields the processor for this long before sleeping. A thread that arrives that much
/// later was mostly woken late or preempted, and a sleeper's wake adds tens of microseconds
/// more; where another thread wants the core, a yield gives it.
const YIELDING: Duration = Duration::from_millis(1);

impl SpinBarrier {
    pub fn new(threads: usize) -> Self {
        SpinBarrier {
            threads,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            broken: AtomicBool::new(false),
            sleep: Mutex::new(()),
            wake: Condvar::new(),
        }
    }

    /// Returns once all `threads` have called it (for this generation); unwinds if the barrier
    /// is broken, as one of them will never come.
    pub fn wait(&self) {
        if self.threads == 1 {
            return;
        }
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.threads {
            // Reset before releasing: the next round's arrivals see 0. The lock orders the
            // release against a sleeper's last check.
            self.arrived.store(0, Ordering::Relaxed);
            let guard = self.sleep.lock().unwrap_or_else(|e| e.into_inner());
            self.generation.fetch_add(1, Ordering::Release);
            drop(guard);
            self.wake.notify_all();
            return;
        }
        let mut yielding_since = None;
        for round in 0.. {
            if self.generation.load(Ordering::Acquire) != generation {
                return;
            }
            if self.broken.load(Ordering::Acquire) {
                Self::leave();
            }
            if round < SPINS {
                std::hint::spin_loop();
                continue;
            }
            // A yield can give the core away for a whole time slice: bounded by the clock.
            let since = *yielding_since.get_or_insert_with(Instant::now);
            if since.elapsed() > YIELDING {
                break;
            }
            std::thread::yield_now();
        }
        let mut guard = self.sleep.lock().unwrap_or_else(|e| e.into_inner());
        while self.generation.load(Ordering::Acquire) == generation {
            if self.broken.load(Ordering::Acquire) {
                drop(guard);
                Self::leave();
            }
            guard = self.wake.wait(guard).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Called by a thread that will not arrive again (it panicked): every waiter, now and later,
    /// leaves instead of waiting for it.
    fn break_for_all(&self) {
        // Under the lock, as a release is: a sleeper checks before it waits, or is woken.
        let guard = self.sleep.lock().unwrap_or_else(|e| e.into_inner());
        self.broken.store(true, Ordering::Release);
        drop(guard);
        self.wake.notify_all();
    }

    fn leave() -> ! {
        panic::resume_unwind(Box::new(BarrierBroken))
    }
}

/// Whether the packed kernels can run on F (they are f32 only).
pub fn is_f32<F: Float>() -> bool {
    TypeId::of::<F>() == TypeId::of::<f32>()
}

/// `data` as the f32 slice it is; panics for any other F.
pub(super) fn f32s<F: Float>(data: &[F]) -> &[f32] {
    assert!(is_f32::<F>(), "the packed kernels are f32 only");
    // SAFETY: F is f32 (checked above), so the memory is f32s of the same length.
    unsafe { std::slice::from_raw_parts(data.as_ptr().cast(), data.len()) }
}

/// [`f32s`], writable.
pub(super) fn f32s_mut<F: Float>(data: &mut [F]) -> &mut [f32] {
    assert!(is_f32::<F>(), "the packed kernels are f32 only");
    // SAFETY: as in `f32s`; the borrow is unique.
    unsafe { std::slice::from_raw_parts_mut(data.as_mut_ptr().cast(), data.len()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A panic on one of the pool's threads reaches the caller as it was, where it used to leave
    /// the other threads at the barrier forever; the pool runs the next call as before.
    #[test]
    fn a_panic_on_one_thread_reaches_the_caller_and_the_pool_goes_on() {
        let threads = rayon::current_num_threads().min(4);
        if threads < 2 {
            eprintln!("skipped: one thread, so no barrier to break");
            return;
        }
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let caught = panic::catch_unwind(|| {
                on_threads(threads, |chunks, barrier| {
                    // The last thread panics and thread 0 leaves the barrier: the caller gets
                    // the last thread's panic, whichever thread rayon reports first.
                    if chunks.end == threads {
                        panic!("planted");
                    }
                    barrier.wait();
                })
            });
            let message = caught
                .err()
                .map(|payload| payload.downcast_ref::<&str>().copied());
            let met = AtomicUsize::new(0);
            on_threads(threads, |chunks, barrier| {
                met.fetch_add(chunks.len(), Ordering::Relaxed);
                barrier.wait();
                barrier.wait();
            });
            done.send((message, met.into_inner())).unwrap();
        });
        let (message, met) = finished
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the threads still wait at the barrier after 60 s");
        assert_eq!(message, Some(Some("planted")));
        assert_eq!(met, threads);
    }
}
