//! Per-kernel launch times, recorded where `ENGINE_GPU_TIMINGS=1` asks for them: CUDA events
//! around each launch on a device, wall-clock around each emulated launch on the host; and the
//! table `engine train` and the bench print from them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cudarc::driver::{sys, CudaContext, CudaEvent, CudaStream};

use super::kernels::Kernel;
use super::runtime::{driver, GpuResult};

/// The environment variable that turns the timings on.
pub const TIMINGS_VARIABLE: &str = "ENGINE_GPU_TIMINGS";

/// Launches whose events are read in one go, so that recording rarely waits for the device.
const PENDING_LIMIT: usize = 1024;

/// Whether `ENGINE_GPU_TIMINGS=1` is set.
pub(super) fn requested() -> bool {
    std::env::var(TIMINGS_VARIABLE).is_ok_and(|value| value == "1")
}

/// One kernel's launches so far.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KernelTime {
    pub kernel: Kernel,
    pub calls: u64,
    pub total_ms: f64,
}

/// The start of one launch's measurement.
pub(super) enum Stamp {
    Event(CudaEvent),
    Wall(Instant),
}

/// The launches measured so far.
pub(super) struct Timings {
    /// Whether the times are the host emulation's wall-clock rather than a device's.
    on_host: bool,
    /// CUDA launches whose end events have not been read yet: (kernel, start, end).
    pending: Vec<(Kernel, CudaEvent, CudaEvent)>,
    /// Events already read, for reuse.
    spare: Vec<CudaEvent>,
    /// Per kernel, indexed like [`Kernel::ALL`]: calls and total milliseconds.
    totals: Vec<(u64, f64)>,
}

impl Timings {
    pub(super) fn new(on_host: bool) -> Timings {
        Timings {
            on_host,
            pending: Vec::new(),
            spare: Vec::new(),
            totals: vec![(0, 0.0); Kernel::ALL.len()],
        }
    }

    /// Marks the start of a launch on `stream` (None on the host).
    pub(super) fn start(
        &mut self,
        device: Option<(&Arc<CudaContext>, &Arc<CudaStream>)>,
    ) -> GpuResult<Stamp> {
        let Some((ctx, stream)) = device else {
            return Ok(Stamp::Wall(Instant::now()));
        };
        let event = self.event(ctx)?;
        event
            .record(stream)
            .map_err(driver("recording a timing event"))?;
        Ok(Stamp::Event(event))
    }

    /// Marks the end of `kernel`'s launch that `start` began.
    pub(super) fn stop(
        &mut self,
        kernel: Kernel,
        start: Stamp,
        device: Option<(&Arc<CudaContext>, &Arc<CudaStream>)>,
    ) -> GpuResult<()> {
        match (start, device) {
            (Stamp::Event(start), Some((ctx, stream))) => {
                let end = self.event(ctx)?;
                end.record(stream)
                    .map_err(driver("recording a timing event"))?;
                self.pending.push((kernel, start, end));
                if self.pending.len() >= PENDING_LIMIT {
                    self.read_pending()?;
                }
            }
            (Stamp::Wall(started), _) => self.add(kernel, started.elapsed()),
            (Stamp::Event(_), None) => unreachable!("a device's stamp ended on the host"),
        }
        Ok(())
    }

    fn add(&mut self, kernel: Kernel, elapsed: Duration) {
        let total = &mut self.totals[kernel.index()];
        total.0 += 1;
        total.1 += elapsed.as_secs_f64() * 1e3;
    }

    fn event(&mut self, ctx: &Arc<CudaContext>) -> GpuResult<CudaEvent> {
        match self.spare.pop() {
            Some(event) => Ok(event),
            None => ctx
                .new_event(Some(sys::CUevent_flags::CU_EVENT_DEFAULT))
                .map_err(driver("creating a timing event")),
        }
    }

    /// Waits for the pending launches and adds their times.
    fn read_pending(&mut self) -> GpuResult<()> {
        for (kernel, start, end) in std::mem::take(&mut self.pending) {
            let ms = start
                .elapsed_ms(&end)
                .map_err(driver("reading a timing event"))?;
            let total = &mut self.totals[kernel.index()];
            total.0 += 1;
            total.1 += f64::from(ms);
            self.spare.extend([start, end]);
        }
        Ok(())
    }

    /// Every kernel launched so far, the longest total first.
    pub(super) fn kernel_times(&mut self) -> GpuResult<Vec<KernelTime>> {
        self.read_pending()?;
        let mut times: Vec<KernelTime> = Kernel::ALL
            .iter()
            .zip(&self.totals)
            .filter(|(_, (calls, _))| *calls > 0)
            .map(|(&kernel, &(calls, total_ms))| KernelTime {
                kernel,
                calls,
                total_ms,
            })
            .collect();
        times.sort_by(|a, b| b.total_ms.total_cmp(&a.total_ms));
        Ok(times)
    }

    /// The table of [`Timings::kernel_times`]: kernel, calls, total ms, mean µs, share.
    pub(super) fn table(&mut self) -> GpuResult<String> {
        let times = self.kernel_times()?;
        let sum: f64 = times.iter().map(|t| t.total_ms).sum();
        let how = match self.on_host {
            true => "host emulation: wall-clock of the emulated launches, not GPU times",
            false => "CUDA events around each launch",
        };
        let mut table = format!(
            "GPU kernel timings ({how})\n{:<28} {:>8} {:>11} {:>10} {:>7}\n",
            "kernel", "calls", "total ms", "mean µs", "share"
        );
        for t in &times {
            table += &format!(
                "{:<28} {:>8} {:>11.3} {:>10.2} {:>6.1}%\n",
                t.kernel.name(),
                t.calls,
                t.total_ms,
                1e3 * t.total_ms / t.calls as f64,
                100.0 * t.total_ms / sum.max(f64::MIN_POSITIVE)
            );
        }
        let calls: u64 = times.iter().map(|t| t.calls).sum();
        table += &format!("{:<28} {calls:>8} {sum:>11.3}", "all kernels");
        Ok(table)
    }
}
