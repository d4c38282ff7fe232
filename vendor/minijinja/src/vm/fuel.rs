use crate::compiler::instructions::Instruction;
use crate::error::{Error, ErrorKind};

use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Instructions between two reads of the clock.
const CLOCK_EVERY: isize = 256;

/// Helper for tracking fuel consumption
pub struct FuelTracker {
    // The initial fuel level.
    initial: u64,
    // This should be an AtomicI64 but sadly 32bit targets do not necessarily have
    // AtomicI64 available.
    remaining: AtomicIsize,
    // promptlab patch: when the render must stop.
    deadline: Option<Instant>,
}

impl FuelTracker {
    /// A tracker for the environment's limits, or none when it has neither.
    ///
    /// The tracker is always wrapped in an `Arc` so that it can be shared across
    /// nested invocations of the template evaluation.  (promptlab patch: replaces
    /// `FuelTracker::new`.)
    pub fn for_limits(fuel: Option<u64>, time_limit: Option<Duration>) -> Option<Arc<FuelTracker>> {
        if fuel.is_none() && time_limit.is_none() {
            return None;
        }
        let fuel = fuel.unwrap_or(isize::MAX as u64).min(isize::MAX as u64);
        Some(Arc::new(FuelTracker {
            initial: fuel,
            remaining: AtomicIsize::new(fuel as isize),
            deadline: time_limit.and_then(|limit| Instant::now().checked_add(limit)),
        }))
    }

    /// Tracks an instruction.  If it runs out of fuel an error is returned.
    pub fn track(&self, instr: &Instruction) -> Result<(), Error> {
        let fuel_to_consume = fuel_for_instruction(instr);
        if fuel_to_consume != 0 {
            let old_fuel = self.remaining.fetch_sub(fuel_to_consume, Ordering::Relaxed);
            if old_fuel - fuel_to_consume <= 0 {
                return Err(Error::from(ErrorKind::OutOfFuel));
            }
            if let Some(deadline) = self.deadline {
                if old_fuel % CLOCK_EVERY == 0 && Instant::now() > deadline {
                    return Err(Error::new(
                        ErrorKind::OutOfFuel,
                        "the render ran past its time limit",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Returns the remaining fuel.
    pub fn remaining(&self) -> u64 {
        self.remaining.load(Ordering::Relaxed) as _
    }

    /// Returns the consumed fuel.
    pub fn consumed(&self) -> u64 {
        self.initial.saturating_sub(self.remaining())
    }
}

/// How much fuel does an instruction consume?
fn fuel_for_instruction(instruction: &Instruction) -> isize {
    match instruction {
        Instruction::BeginCapture(_)
        | Instruction::PushLoop(_)
        | Instruction::PushDidNotIterate
        | Instruction::PushWith
        | Instruction::PopFrame
        | Instruction::PopLoopFrame
        | Instruction::DupTop
        | Instruction::DiscardTop
        | Instruction::PushAutoEscape
        | Instruction::PopAutoEscape => 0,
        #[cfg(feature = "multi_template")]
        Instruction::ExportLocals => 0,
        #[cfg(feature = "macros")]
        Instruction::LoadBlocks | Instruction::BuildMacro(..) | Instruction::Return => 0,
        _ => 1,
    }
}
