//! Replication slots: a physical slot for each member that follows this server, the cluster's permanent
//! slots (`slots`), and, on a replica, copies of the primary's permanent logical slots so that a decoding
//! consumer continues on the new primary after a failover.
//!
//! PostgreSQL 15 has no slot synchronization of its own (17's `sync_replication_slots`). As Patroni does
//! before 17: a replica copies a logical slot's state file from the primary once (the server is
//! restarted to load it), runs with `hot_standby_feedback` so that the primary keeps the catalog rows the
//! copy needs, and advances the copy to the primary's confirmed position, never past its own replay
//! position. A consumer that continues on the new primary may see changes again (logical decoding is at
//! least once), none is lost.
//!
//! Slots nobody manages (`ignore_slots`) are never dropped; on the primary, the slot of a member that is
//! gone is kept `member_slots_ttl` after it was first missed.

use super::ops::CONNECT_TIMEOUT;
use super::sql::{self, Session};
use super::Postgres;
use crate::config::{PermanentSlot, SlotMatcher};
use crate::db::{DbError, Position, Retained, StopMode, Upstream};
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::time::Instant;
use tokio_postgres::Client;

/// A slot as `pg_replication_slots` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Slot {
    name: String,
    logical: bool,
    database: Option<String>,
    plugin: Option<String>,
    active: bool,
    /// A logical slot's `confirmed_flush_lsn` in bytes.
    confirmed: Option<u64>,
}

impl Slot {
    fn kind(&self) -> &'static str {
        if self.logical {
            "logical"
        } else {
            "physical"
        }
    }

    fn ignored(&self, matchers: &[SlotMatcher]) -> bool {
        let (database, plugin) = (self.database.as_deref(), self.plugin.as_deref());
        matchers.iter().any(|m| m.matches(&self.name, self.kind(), database, plugin))
    }

    /// Whether it is the permanent slot `wanted` describes.
    fn is(&self, wanted: &PermanentSlot) -> bool {
        match wanted {
            PermanentSlot::Physical => !self.logical,
            PermanentSlot::Logical { database, plugin } => {
                self.logical
                    && self.database.as_ref() == Some(database)
                    && self.plugin.as_ref() == Some(plugin)
            }
        }
    }
}

async fn slots(client: &Client) -> Result<Vec<Slot>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT slot_name::text, slot_type = 'logical', database::text, plugin::text, active, \
             pg_wal_lsn_diff(confirmed_flush_lsn, '0/0')::bigint FROM pg_replication_slots WHERE NOT temporary",
            &[],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let confirmed: Option<i64> = row.try_get(5)?;
            Ok(Slot {
                name: row.try_get(0)?,
                logical: row.try_get(1)?,
                database: row.try_get(2)?,
                plugin: row.try_get(3)?,
                active: row.try_get(4)?,
                confirmed: confirmed.and_then(|c| u64::try_from(c).ok()),
            })
        })
        .collect()
}

impl Postgres {
    /// Where this server's oldest WAL segment in `pg_wal` begins, in bytes (`u64::MAX` without any).
    async fn oldest_wal(&self) -> Result<u64, String> {
        let session = self.connect_local(CONNECT_TIMEOUT).await.map_err(|e| e.to_string())?;
        let row = session
            .client
            .query_one(
                "SELECT min(name), (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size') \
                 FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$'",
                &[],
            )
            .await
            .map_err(|e| message(&e))?;
        let name: Option<String> = row.try_get(0).map_err(|e| e.to_string())?;
        let size: i64 = row.try_get(1).map_err(|e| e.to_string())?;
        let size = u64::try_from(size).map_err(|e| e.to_string())?;
        Ok(name.as_deref().and_then(|n| segment_start(n, size)).unwrap_or(u64::MAX))
    }
}

/// Where the WAL segment file `name` (`TTTTTTTTLLLLLLLLSSSSSSSS`: timeline, then the segment number as a
/// 4 GiB "log" and a segment within it) of `size`-byte segments begins, in bytes.
fn segment_start(name: &str, size: u64) -> Option<u64> {
    let log = u64::from_str_radix(name.get(8..16)?, 16).ok()?;
    let segment = u64::from_str_radix(name.get(16..24)?, 16).ok()?;
    Some((log << 32) + segment * size)
}

/// Drops slot `name`.
async fn drop_slot(client: &Client, name: &str) -> Result<(), tokio_postgres::Error> {
    client.execute("SELECT pg_drop_replication_slot($1::text::name)", &[&name]).await.map(drop)
}

/// The server's message, or the error as it prints.
fn message(e: &tokio_postgres::Error) -> String {
    e.as_db_error().map_or_else(|| e.to_string(), |db| db.message().to_owned())
}

impl Postgres {
    /// [`crate::db::Database::retain_for`] on PostgreSQL.
    pub(super) async fn keep_slots_now(&self, retained: &Retained) -> Result<BTreeMap<String, u64>, DbError> {
        let failed = |e: &dyn std::fmt::Display| DbError::new("sync slots", e.to_string());
        let session = self.connect_local(CONNECT_TIMEOUT).await.map_err(|e| failed(&e))?;
        let client = &session.client;
        let primary = !sql::in_recovery(client).await.map_err(|e| failed(&e))?;
        let existing = slots(client).await.map_err(|e| failed(&e))?;
        let in_use =
            self.keep_physical(client, &existing, retained, primary).await.map_err(|e| failed(&e))?;
        let positions = if primary {
            self.keep_logical_on_primary(&existing, retained).await
        } else {
            self.keep_logical_copies(session, &existing, retained).await?;
            BTreeMap::new()
        };
        // Not done yet: the caller tries again (a demoted primary's slot is in use by a former replica
        // for a moment after the failover, until that one is promoted or follows someone else).
        if !in_use.is_empty() {
            let in_use = in_use.join(", ");
            return Err(DbError::new(
                "sync slots",
                format!("{in_use} in use by a standby: dropped once released"),
            ));
        }
        Ok(positions)
    }

    /// Creates a physical slot (reserving WAL at once) for each member listed and, on the primary, each
    /// permanent physical slot; drops inactive physical slots nobody wants: those of members present at
    /// once, the others (a member that is gone) on a primary only once `member_slots_ttl` has passed since
    /// it first missed them. Returns the unwanted slots still in use.
    async fn keep_physical(
        &self,
        client: &Client,
        existing: &[Slot],
        retained: &Retained,
        primary: bool,
    ) -> Result<Vec<String>, tokio_postgres::Error> {
        let own = super::render::slot_name(&self.settings.name);
        let members = retained.members.iter().map(|m| super::render::slot_name(m));
        let mut wanted: BTreeSet<String> = members.filter(|n| !n.is_empty() && *n != own).collect();
        if primary {
            let permanent = retained.permanent.iter().filter(|(_, s)| **s == PermanentSlot::Physical);
            wanted.extend(permanent.map(|(name, _)| name.clone()));
        }
        let present: BTreeSet<String> =
            retained.present.iter().map(|m| super::render::slot_name(m)).collect();
        let mut gone_since = self.slot_gone_since.lock().unwrap_or_else(|e| e.into_inner()).clone();
        gone_since.retain(|name, _| !wanted.contains(name) && existing.iter().any(|s| &s.name == name));
        let (mut created, mut dropped, mut in_use) = (Vec::new(), Vec::new(), Vec::new());
        for slot in existing.iter().filter(|s| !s.logical && !wanted.contains(&s.name)) {
            if slot.ignored(&retained.ignored) {
                continue;
            }
            if slot.active {
                in_use.push(slot.name.clone());
                continue;
            }
            let since = *gone_since.entry(slot.name.clone()).or_insert_with(Instant::now);
            if primary && !present.contains(&slot.name) && since.elapsed() < retained.member_slots_ttl {
                continue;
            }
            drop_slot(client, &slot.name).await?;
            gone_since.remove(&slot.name);
            dropped.push(slot.name.clone());
        }
        for name in wanted.iter().filter(|n| !existing.iter().any(|s| &s.name == *n)) {
            client
                .execute("SELECT pg_create_physical_replication_slot($1::text::name, true)", &[name])
                .await?;
            created.push(name.clone());
        }
        *self.slot_gone_since.lock().unwrap_or_else(|e| e.into_inner()) = gone_since;
        if !created.is_empty() || !dropped.is_empty() {
            tracing::info!(member = %self.settings.name, ?created, ?dropped, "replication slots changed");
        }
        Ok(in_use)
    }

    /// On the primary: creates the permanent logical slots it lacks (in their database) and returns their
    /// confirmed positions. Other logical slots are left alone (Patroni drops those `ignore_slots` does not
    /// match; a consumer's slot made outside Vigil is kept here), and so is a slot of a permanent slot's
    /// name whose database or plugin differ, with an error to say so.
    async fn keep_logical_on_primary(&self, existing: &[Slot], retained: &Retained) -> BTreeMap<String, u64> {
        let mut positions = BTreeMap::new();
        let mut kept = BTreeSet::new();
        for slot in existing.iter().filter(|s| s.logical) {
            let Some(wanted) = retained.permanent.get(&slot.name) else { continue };
            kept.insert(slot.name.clone());
            if slot.is(wanted) {
                positions.extend(slot.confirmed.map(|at| (slot.name.clone(), at)));
            } else {
                tracing::error!(member = %self.settings.name, slot = %slot.name, database = ?slot.database, plugin = ?slot.plugin, "a slot of this name exists, but slots.{} describes another one: drop it by hand to have it made as configured", slot.name);
            }
        }
        for (name, wanted) in &retained.permanent {
            let PermanentSlot::Logical { database, plugin } = wanted else { continue };
            if kept.contains(name) {
                continue;
            }
            let session = self.connect_local_to(database).await;
            let created = match &session {
                Ok(session) => session
                    .client
                    .execute(
                        "SELECT pg_create_logical_replication_slot($1::text::name, $2::text::name)",
                        &[name, plugin],
                    )
                    .await
                    .map(|_| ())
                    .map_err(|e| message(&e)),
                Err(e) => Err(e.clone()),
            };
            match created {
                Ok(()) => {
                    tracing::info!(member = %self.settings.name, slot = %name, %database, %plugin, "permanent logical slot created")
                }
                Err(e) => {
                    tracing::error!(member = %self.settings.name, slot = %name, %database, error = %e, "permanent logical slot not created")
                }
            }
        }
        positions
    }

    /// On a replica: runs with `hot_standby_feedback` while there are permanent logical slots, copies
    /// those the primary has and this server lacks (a restart), advances the others to the primary's
    /// confirmed position (never past this server's replay position), and drops inactive logical slots
    /// that are neither permanent nor ignored.
    async fn keep_logical_copies(
        &self,
        session: Session,
        existing: &[Slot],
        retained: &Retained,
    ) -> Result<(), DbError> {
        let logical: BTreeMap<&String, &PermanentSlot> =
            retained.permanent.iter().filter(|(_, s)| matches!(s, PermanentSlot::Logical { .. })).collect();
        let failed = |e: &dyn std::fmt::Display| DbError::new("sync logical slot copies", e.to_string());
        for slot in existing.iter().filter(|s| s.logical && !s.active) {
            let wanted = logical.get(&slot.name).is_some_and(|w| slot.is(w));
            if !wanted && !slot.ignored(&retained.ignored) {
                drop_slot(&session.client, &slot.name).await.map_err(|e| failed(&e))?;
                tracing::info!(member = %self.settings.name, slot = %slot.name, "logical slot dropped on a replica: not a permanent slot");
            }
        }
        if logical.is_empty() {
            return Ok(());
        }
        let replayed: Option<i64> = session
            .client
            .query_one("SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::bigint", &[])
            .await
            .and_then(|row| row.try_get(0))
            .map_err(|e| failed(&e))?;
        let replayed = replayed.and_then(|r| u64::try_from(r).ok()).unwrap_or(0);
        drop(session);
        self.apply_runtime("hot_standby_feedback", "on".to_owned(), |r| r.standby_feedback = true).await?;
        let Some((primary, positions)) = &retained.primary else { return Ok(()) };
        let missing: Vec<String> = logical
            .keys()
            .filter(|name| positions.contains_key(**name) && !existing.iter().any(|s| &s.name == **name))
            .map(|name| name.to_string())
            .collect();
        if !missing.is_empty() {
            return self.copy_logical_slots(primary, &missing).await;
        }
        for slot in existing.iter().filter(|s| s.logical && logical.contains_key(&s.name)) {
            let Some(target) = positions.get(&slot.name).map(|at| (*at).min(replayed)) else { continue };
            if slot.confirmed.is_some_and(|at| at >= target) {
                continue;
            }
            let Some(database) = &slot.database else { continue };
            let session = self.connect_local_to(database).await.map_err(|e| failed(&e))?;
            let advanced = session
                .client
                .execute(
                    "SELECT pg_replication_slot_advance($1::text::name, $2::text::pg_lsn)",
                    &[&slot.name, &Position::wal(target).to_string()],
                )
                .await;
            let Err(e) = advanced else { continue };
            tracing::warn!(member = %self.settings.name, slot = %slot.name, error = %message(&e), "logical slot copy not advanced");
            // Its WAL is gone here, or it was invalidated: it is copied from the primary again.
            if e.code().is_some_and(|c| matches!(c.code(), "58P01" | "55000")) {
                let dropped = drop_slot(&session.client, &slot.name).await.is_ok();
                tracing::info!(member = %self.settings.name, slot = %slot.name, dropped, "stale logical slot copy dropped: it is copied again");
            }
        }
        Ok(())
    }

    /// Copies the state files of the logical slots `names` from `primary` (read with
    /// `pg_read_binary_file`, as the superuser) into this replica's `pg_replslot`, restarting it to load
    /// them. A slot that restarts before this replica's oldest WAL is not copied yet (the copy could not
    /// be decoded): it is once its consumer has moved it on.
    async fn copy_logical_slots(&self, primary: &Upstream, names: &[String]) -> Result<(), DbError> {
        let failed = |e: &dyn std::fmt::Display| DbError::new("copy logical slots", e.to_string());
        let oldest = self.oldest_wal().await.map_err(|e| failed(&e))?;
        let target = super::render::Target::Tcp(primary.host.clone());
        let session = sql::connect(&target, primary.port, &self.settings.superuser, CONNECT_TIMEOUT)
            .await
            .map_err(|e| failed(&format!("{}: {e}", primary.name)))?;
        let rows = session
            .client
            .query(
                "SELECT slot_name::text, pg_read_binary_file('pg_replslot/' || slot_name || '/state'), \
                 pg_wal_lsn_diff(restart_lsn, '0/0')::bigint FROM pg_replication_slots \
                 WHERE slot_type = 'logical' AND slot_name::text = ANY($1) AND NOT pg_is_in_recovery()",
                &[&names],
            )
            .await
            .map_err(|e| failed(&message(&e)))?;
        let mut states: Vec<(String, Vec<u8>)> = Vec::new();
        for row in &rows {
            let read = || -> Result<(String, Vec<u8>, Option<i64>), tokio_postgres::Error> {
                Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
            };
            let (name, state, restart) = read().map_err(|e| failed(&e))?;
            match restart.and_then(|r| u64::try_from(r).ok()) {
                Some(restart) if restart >= oldest => states.push((name, state)),
                _ => {
                    tracing::debug!(member = %self.settings.name, slot = %name, "logical slot not copied yet: it restarts before this replica's oldest WAL")
                }
            }
        }
        if states.is_empty() {
            return Ok(());
        }
        let copied: Vec<&str> = states.iter().map(|(name, _)| name.as_str()).collect();
        tracing::info!(member = %self.settings.name, from = %primary.name, slots = ?copied, "copying logical slots from the primary: restarting the replica to load them");
        self.stop_now(StopMode::Fast).await?;
        let owner = self.tools.owner()?;
        let dir = self.data_dir().join("pg_replslot");
        let written = self
            .blocking("write the logical slots' state", move |_| {
                for (name, state) in &states {
                    let slot_dir = dir.join(name);
                    if slot_dir.exists() {
                        std::fs::remove_dir_all(&slot_dir)?;
                    }
                    std::fs::DirBuilder::new().mode(0o700).create(&slot_dir)?;
                    std::fs::set_permissions(&slot_dir, std::fs::Permissions::from_mode(0o700))?;
                    if let Some(o) = owner {
                        std::os::unix::fs::chown(&slot_dir, Some(o.uid), Some(o.gid))?;
                    }
                    super::files::write_file(&slot_dir.join("state"), state, owner)?;
                }
                Ok(())
            })
            .await;
        let started = self.start().await;
        written.and(started)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wal_file_names_and_positions() {
        const MIB16: u64 = 16 << 20;
        assert_eq!(segment_start("000000010000000000000002", MIB16), Some(2 * MIB16));
        assert_eq!(segment_start("0000000300000001000000FF", MIB16), Some((1 << 32) + 0xFF * MIB16));
        assert_eq!(segment_start("00000001", MIB16), None);
        assert_eq!(Position::wal(0x1_0000_0028).to_string(), "1/28");
        assert_eq!(Position::wal(0x50189F0).to_string(), "0/50189F0");
    }
}
