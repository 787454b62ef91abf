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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
