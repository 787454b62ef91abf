//! The discrete-event scheduler: virtual time in milliseconds and a queue of events ordered by time, then
//! by the order they were scheduled in (so that two events at the same instant always run in the same
//! order, and a seed replays exactly).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Virtual time, in milliseconds since the start of the run (the "true" time no node can read).
pub type Millis = u64;

/// The pending events of a run.
pub struct Scheduler<E> {
    now: Millis,
    seq: u64,
    queue: BinaryHeap<Reverse<(Millis, u64, Slot<E>)>>,
}

/// An event in the heap; compared by nothing (the heap orders by time and sequence number).
struct Slot<E>(E);

impl<E> PartialEq for Slot<E> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl<E> Eq for Slot<E> {}
impl<E> PartialOrd for Slot<E> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Slot<E> {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl<E> Scheduler<E> {
    /// An empty scheduler at time 0.
    pub fn new() -> Self {
        Scheduler { now: 0, seq: 0, queue: BinaryHeap::new() }
    }

    /// The current virtual time.
    pub fn now(&self) -> Millis {
        self.now
    }

    /// Runs `event` `delay` ms from now.
    pub fn after(&mut self, delay: Millis, event: E) {
        self.at(self.now + delay, event);
    }

    /// Runs `event` at `time` (at once if `time` has passed).
    pub fn at(&mut self, time: Millis, event: E) {
        self.seq += 1;
        self.queue.push(Reverse((time.max(self.now), self.seq, Slot(event))));
    }

    /// The next event, with the clock moved to its time; `None` when nothing is left before `until`.
    pub fn next_before(&mut self, until: Millis) -> Option<E> {
        let Reverse((time, _, _)) = self.queue.peek()?;
        if *time > until {
            return None;
        }
        let Reverse((time, _, Slot(event))) = self.queue.pop()?;
        self.now = time;
        Some(event)
    }
}
