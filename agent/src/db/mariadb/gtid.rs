//! MariaDB GTID positions: `domain-server_id-seq`, one per replication domain, comma-separated
//! (`@@gtid_binlog_pos`, `@@gtid_slave_pos`, `Gtid_IO_Pos`). The cluster replicates in one domain, and
//! with `gtid_strict_mode` the sequence numbers of that domain order its history.

/// One GTID: the domain, the server that wrote the transaction, and its sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gtid {
    /// The replication domain (`gtid_domain_id`).
    pub domain: u32,
    /// The `server_id` of the server that wrote it.
    pub server: u32,
    /// Its sequence number in the domain.
    pub seq: u64,
}

/// Parses a GTID list as MariaDB prints it (empty: none). `Err` names the part that is not a GTID.
pub fn parse_list(text: &str) -> Result<Vec<Gtid>, String> {
    text.split(',').map(str::trim).filter(|part| !part.is_empty()).map(parse_one).collect()
}

fn parse_one(part: &str) -> Result<Gtid, String> {
    let bad = || format!("{part:?} is not a GTID (domain-server_id-seq)");
    let mut fields = part.split('-');
    let mut next = || fields.next().ok_or_else(bad);
    let (domain, server, seq) = (next()?, next()?, next()?);
    if fields.next().is_some() {
        return Err(bad());
    }
    Ok(Gtid {
        domain: domain.parse().map_err(|_| bad())?,
        server: server.parse().map_err(|_| bad())?,
        seq: seq.parse().map_err(|_| bad())?,
    })
}

/// The GTID of `domain` in `list`, if it has one.
pub fn in_domain(list: &[Gtid], domain: u32) -> Option<Gtid> {
    list.iter().copied().find(|g| g.domain == domain)
}

/// The sequence number of `domain` in the GTID list `text`: 0 when it has none (nothing replicated in
/// that domain yet), `Err` when the text is not a GTID list.
pub fn seq_in(text: &str, domain: u32) -> Result<u64, String> {
    Ok(in_domain(&parse_list(text)?, domain).map_or(0, |g| g.seq))
}

/// Transactions a server logged that its upstream lacks: the sequence numbers `first..=last` of
/// `domain`, written by `server` (a former primary's errant transactions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errant {
    /// The replication domain.
    pub domain: u32,
    /// The `server_id` that wrote them.
    pub server: u32,
    /// The first sequence number the upstream lacks.
    pub first: u64,
    /// The last one this server logged.
    pub last: u64,
}

impl std::fmt::Display for Errant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Errant { domain, server, first, last } = *self;
        let count = last - first + 1;
        let plural = if count == 1 { "" } else { "s" };
        match count {
            1 => write!(f, "{domain}-{server}-{last}")?,
            _ => write!(f, "{domain}-{server}-{first}..{domain}-{server}-{last}")?,
        }
        write!(f, " ({count} transaction{plural})")
    }
}

/// What a server logged in `domain` beyond its upstream: `mine` is its `@@gtid_binlog_state` (the last
/// GTID of each server in each domain), `theirs` the upstream's `@@gtid_binlog_state` and
/// `@@gtid_slave_pos` (a clone's data is in its slave position, not its binary log). Both histories
/// share every transaction up to the last one both have of some server; with `gtid_strict_mode` (one
/// sequence per domain) what this server logged after that is its own, written after the histories
/// forked. `None` when the upstream has the last transaction this server logged.
pub fn errant(mine: &[Gtid], theirs: &[Gtid], domain: u32) -> Option<Errant> {
    let mine: Vec<Gtid> = mine.iter().copied().filter(|g| g.domain == domain).collect();
    let last = mine.iter().max_by_key(|g| g.seq)?;
    let has = |server: u32| {
        theirs.iter().filter(|g| g.domain == domain && g.server == server).map(|g| g.seq).max().unwrap_or(0)
    };
    let common = mine.iter().map(|g| g.seq.min(has(g.server))).max().unwrap_or(0);
    (last.seq > common).then_some(Errant { domain, server: last.server, first: common + 1, last: last.seq })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn errant_in(mine: &str, theirs: &str) -> Option<Errant> {
        errant(&parse_list(mine).unwrap(), &parse_list(theirs).unwrap(), 0)
    }

    #[test]
    fn a_former_primary_s_writes_after_the_fork_are_errant() {
        // Server 1 led up to 10; server 2 took over (its term row is 11); server 1 went on to 13.
        let found = errant_in("0-1-13", "0-1-10,0-2-15").unwrap();
        assert_eq!(found, Errant { domain: 0, server: 1, first: 11, last: 13 });
        assert_eq!(found.to_string(), "0-1-11..0-1-13 (3 transactions)");
        assert_eq!(errant_in("0-1-11", "0-1-10,0-2-11").unwrap().to_string(), "0-1-11 (1 transaction)");
        // Led, followed server 2 (up to 10), led again from 11 to 12, unseen by the upstream (server 3).
        let found = errant_in("0-1-12,0-2-10", "0-1-5,0-2-10,0-3-20").unwrap();
        assert_eq!((found.first, found.last), (11, 12));
        // The upstream was cloned (its copy in gtid_slave_pos) and logged only its own writes since.
        assert_eq!(errant_in("0-1-7", "0-1-5,0-2-9").map(|e| (e.first, e.last)), Some((6, 7)));
    }

    #[test]
    fn nothing_is_errant_when_the_upstream_has_it_all() {
        assert_eq!(errant_in("0-1-10", "0-1-10,0-2-15"), None);
        assert_eq!(errant_in("0-1-8", "0-1-10"), None, "behind, not ahead");
        assert_eq!(errant_in("", "0-2-3"), None);
        assert_eq!(errant_in("1-1-50", "0-2-3"), None, "another domain is not the cluster's");
    }

    #[test]
    fn lists_parse_per_domain() {
        let list = parse_list("0-1-42,1-7-3").unwrap();
        assert_eq!(in_domain(&list, 0), Some(Gtid { domain: 0, server: 1, seq: 42 }));
        assert_eq!(in_domain(&list, 1).map(|g| g.seq), Some(3));
        assert_eq!(in_domain(&list, 2), None);
        assert_eq!(parse_list("").unwrap(), vec![]);
        assert_eq!(seq_in("", 0), Ok(0));
        assert_eq!(seq_in(" 0-2-9 ", 0), Ok(9));
    }

    #[test]
    fn what_is_not_a_gtid_is_refused_by_name() {
        for bad in ["0-1", "0-1-2-3", "a-1-2", "0--2", "0-1-x", "-1-0-2"] {
            let err = parse_list(bad).unwrap_err();
            assert!(err.contains(bad), "{err}");
        }
    }

    proptest! {
        #[test]
        fn printed_lists_read_back(gtids in proptest::collection::vec((0u32..4, any::<u32>(), any::<u64>()), 0..4)) {
            let text: Vec<String> = gtids.iter().map(|(d, s, n)| format!("{d}-{s}-{n}")).collect();
            let parsed = parse_list(&text.join(",")).unwrap();
            let expected: Vec<Gtid> = gtids.iter().map(|&(domain, server, seq)| Gtid { domain, server, seq }).collect();
            prop_assert_eq!(parsed, expected);
        }
    }
}
