//! `allow_from:` lists: which peer addresses may connect to a listener.
//!
//! Entries are single addresses (`192.168.10.5`, `::1`) or networks in CIDR form
//! (`10.0.0.0/8`, `fd00::/8`); an empty list lets anyone connect. IPv4 clients of a listener
//! bound to an IPv6 address arrive as `::ffff:a.b.c.d` and are matched as the IPv4 address.
//! CIDR parsing is the `ipnet` crate's (already in the tree through reqwest).

use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::{Document, Problem};

/// A parsed allow-list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    nets: Vec<IpNet>,
}

/// One entry: an address or a network.
fn parse_entry(entry: &str) -> Option<IpNet> {
    let entry = entry.trim();
    entry
        .parse::<IpNet>()
        .ok()
        .or_else(|| entry.parse::<IpAddr>().ok().map(IpNet::from))
}

impl AllowList {
    /// Parses entries already checked with [`AllowList::check`]; a bad entry is skipped.
    pub fn new(entries: &[String]) -> AllowList {
        AllowList {
            nets: entries.iter().filter_map(|e| parse_entry(e)).collect(),
        }
    }

    /// Pure check: one problem per entry that is neither an address nor a CIDR network.
    pub fn check(entries: &[String], doc: &Document, field: &str) -> Vec<Problem> {
        entries
            .iter()
            .enumerate()
            .filter(|(_, e)| parse_entry(e).is_none())
            .map(|(i, e)| {
                doc.problem(
                    &format!("{field}.{i}"),
                    format!("expected an IP address or a CIDR network such as 10.0.0.0/8, got \"{e}\""),
                )
            })
            .collect()
    }

    /// Whether `peer` may connect.
    pub fn allows(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.nets.is_empty() || self.nets.iter().any(|n| n.contains(&peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> AllowList {
        AllowList::new(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn an_empty_list_allows_everyone() {
        assert!(list(&[]).allows("203.0.113.9".parse().unwrap()));
    }

    #[test]
    fn networks_and_single_addresses_are_matched() {
        let l = list(&["10.0.0.0/8", "192.168.1.5", "fd00::/8"]);
        assert!(l.allows("10.20.30.40".parse().unwrap()));
        assert!(l.allows("192.168.1.5".parse().unwrap()));
        assert!(!l.allows("192.168.1.6".parse().unwrap()));
        assert!(l.allows("fd12::1".parse().unwrap()));
        assert!(!l.allows("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn an_ipv4_client_of_an_ipv6_listener_is_matched_as_ipv4() {
        assert!(list(&["10.0.0.0/8"]).allows("::ffff:10.1.2.3".parse().unwrap()));
    }

    #[test]
    fn check_names_each_bad_entry() {
        let doc = Document::parse("c.yaml", "allow_from:\n  - 10.0.0.0/8\n  - clinic\n").unwrap();
        let entries = vec!["10.0.0.0/8".to_string(), "clinic".to_string()];
        let problems = AllowList::check(&entries, &doc, "allow_from");
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].field, "allow_from.1");
        assert_eq!(problems[0].line, Some(3));
    }
}
