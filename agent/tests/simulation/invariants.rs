//! The invariants, checked after every event (safety) and at the end of the run (convergence).
//!
//! 1. At any instant at most one server accepts writes.
//! 2. Fencing tokens strictly increase (checked by the store as it grants them).
//! 3. Synchronous modes: the log of every server that starts accepting writes holds every write
//!    acknowledged before.
//! 4. A server accepts writes only while its agent holds the lease by its own deadline, give or take
//!    `safety_margin`: the time the loop may take to notice and fence (the store expires the lease no
//!    sooner than that after the deadline). The loop waits for no store request past its lease's deadline
//!    (the simulation found it did: a renewal, a read and a member record each awaited up to
//!    `retry_timeout`, so fencing could come 1.5 s late; seeds 31 and 251).
//! 5. Once every fault has healed, the cluster converges: one primary, which leads, and every other
//!    member a streaming replica of it.

use crate::database::Process;
use crate::world::{member, World};

impl World {
    /// Invariants 1 and 4.
    pub fn check_safety(&self) -> Result<(), String> {
        let writable: Vec<usize> = (0..self.nodes.len()).filter(|&n| self.nodes[n].db.is_primary()).collect();
        if writable.len() > 1 {
            let names: Vec<String> = writable.iter().map(|&n| member(n).to_string()).collect();
            return Err(format!("two servers accept writes at once: {}", names.join(" and ")));
        }
        for &n in &writable {
            let agent = &self.nodes[n].agent;
            let local = self.local(n);
            let margin = self.settings.safety_margin;
            let within = agent.lease.is_some_and(|g| local < g.deadline.instant() + margin);
            if !within {
                let late = agent.lease.map(|g| local.saturating_duration_since(g.deadline.instant()));
                return Err(format!(
                    "{} accepts writes without a lease valid by its own deadline (lease {:?}, past the deadline by \
                     {late:?}, allowed lateness {margin:?})",
                    member(n),
                    agent.lease.map(|g| g.token)
                ));
            }
        }
        Ok(())
    }

    /// Invariant 3, when `node` starts accepting writes.
    pub fn check_no_acknowledged_write_lost(&self, node: usize) -> Result<(), String> {
        let Some(data) = &self.nodes[node].db.data else { return Ok(()) };
        let lost = self.acknowledged.iter().filter(|&&(index, id)| data.log.get(index) != Some(&id)).count();
        if lost > 0 {
            let first = self.acknowledged.iter().find(|&&(index, id)| data.log.get(index) != Some(&id));
            return Err(format!(
                "{} accepts writes but lacks {lost} acknowledged write(s) (first: index {:?}); its log has {} writes",
                member(node),
                first,
                data.log.len()
            ));
        }
        Ok(())
    }

    /// Invariant 5, at the end of the run.
    pub fn check_converged(&self) -> Result<(), String> {
        let describe = || {
            (0..self.nodes.len())
                .map(|n| {
                    let db = self.observe(n);
                    format!(
                        "\n  {}: {:?} streaming={} position={:?} lease={:?} reason: {} why: {:?}",
                        member(n),
                        self.nodes[n].db.process,
                        db.streaming,
                        db.position,
                        self.nodes[n].agent.lease.map(|g| g.token),
                        self.nodes[n].agent.cycle.reason,
                        self.nodes[n].agent.cycle.refusal.as_ref().map(ToString::to_string)
                    )
                })
                .collect::<String>()
        };
        let primaries: Vec<usize> =
            (0..self.nodes.len()).filter(|&n| self.nodes[n].db.is_primary()).collect();
        let [primary] = primaries[..] else {
            return Err(format!(
                "no single primary {} ms after every fault healed:{}",
                self.settings.end - self.healed_at,
                describe()
            ));
        };
        let name = member(primary);
        let leads = self.store.leader().is_some_and(|(holder, _)| holder == name);
        let following = (0..self.nodes.len()).filter(|&n| n != primary).all(|n| {
            self.nodes[n].db.process == (Process::Replica { upstream: Some(name.to_string()) })
                && self.observe(n).streaming
        });
        if !leads || !following {
            return Err(format!(
                "not converged {} ms after every fault healed (primary {name}, holds the lease in the store: {leads}):{}",
                self.settings.end - self.healed_at,
                describe()
            ));
        }
        Ok(())
    }
}
