//! This node's view of the cluster, from `CLUSTER NODES`: the slots it
//! serves, those it imports or migrates, and the address serving each slot
//! (for redirections).

use super::slot::{Slot, Slots, SLOTS};

/// Which slots this node serves, and who serves the rest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    /// Served by this node as a master (a replica serves none).
    pub served: Slots,
    /// Being imported into this node (`[slot-<-node]`): not served yet.
    pub importing: Slots,
    /// Being migrated away from this node (`[slot->-node]`): still served.
    pub migrating: Slots,
    /// The index in `addrs` of each slot's master; `NONE` for no master.
    owners: Box<[u16; SLOTS]>,
    /// `host:port` of the masters, as clients reach them.
    addrs: Vec<String>,
}

const NONE: u16 = u16::MAX;

/// Where a command about a key of some slot runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route<'a> {
    /// This node serves the slot (a slot it migrates away included).
    Here,
    /// The master at this `host:port` does.
    Elsewhere(&'a str),
    /// No master serves it.
    Unserved,
}

/// What this node may do to a key of some slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyRule {
    /// Served here: write and delete.
    Write,
    /// Being migrated away or imported: update or delete a key that is
    /// here, never create one. Either side creating a key could make
    /// `MIGRATE` meet a key the target already holds (or leave a key behind
    /// on the source); a key lives on exactly one side, so updating it where
    /// it is cannot. The new owner creates what is missing once it serves
    /// the slot.
    ExistingOnly,
    /// Served elsewhere or unassigned: not touched.
    Skip,
}

impl Topology {
    /// Parses `CLUSTER NODES`; `None` if it has no `myself` line.
    pub fn parse(text: &str) -> Option<Topology> {
        let mut topology = Topology {
            served: Slots::default(),
            importing: Slots::default(),
            migrating: Slots::default(),
            owners: Box::new([NONE; SLOTS]),
            addrs: Vec::new(),
        };
        let mut myself = false;
        for line in text.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [_, addr, flags, _, _, _, _, _, slots @ ..] = fields.as_slice() else {
                continue;
            };
            let me = flags.split(',').any(|f| f == "myself");
            myself |= me;
            let master = flags.split(',').any(|f| f == "master");
            if master && !slots.is_empty() {
                topology.add_master(me, client_addr(addr), slots);
            }
        }
        myself.then_some(topology)
    }

    fn add_master(&mut self, me: bool, addr: String, slots: &[&str]) {
        let index = self.addrs.len() as u16;
        self.addrs.push(addr);
        for field in slots {
            match parse_slot_field(field) {
                Some(SlotField::Range(first, last)) => {
                    for n in first.number()..=last.number() {
                        self.owners[usize::from(n)] = index;
                    }
                    if me {
                        self.served.insert_range(first, last);
                    }
                }
                Some(SlotField::Importing(slot)) if me => self.importing.insert(slot),
                Some(SlotField::Migrating(slot)) if me => self.migrating.insert(slot),
                _ => {}
            }
        }
    }

    /// What this node may do to keys of `slot`.
    pub fn rule(&self, slot: Slot) -> KeyRule {
        if self.importing.contains(slot) || self.migrating.contains(slot) {
            KeyRule::ExistingOnly
        } else if self.served.contains(slot) {
            KeyRule::Write
        } else {
            KeyRule::Skip
        }
    }

    /// The slots this node writes in full: served, not being imported or migrated.
    pub fn writable(&self) -> Slots {
        self.served.minus(&self.importing).minus(&self.migrating)
    }

    /// Where a command about a key of `slot` runs.
    pub fn route(&self, slot: Slot) -> Route<'_> {
        if self.served.contains(slot) {
            return Route::Here;
        }
        self.owner(slot).map_or(Route::Unserved, Route::Elsewhere)
    }

    /// `host:port` of the master serving `slot`, if any.
    pub fn owner(&self, slot: Slot) -> Option<&str> {
        let index = self.owners[usize::from(slot.number())];
        self.addrs.get(usize::from(index)).map(String::as_str)
    }
}

/// `ip:port@cport[,hostname]` → `ip:port`.
fn client_addr(field: &str) -> String {
    let end = field.find(['@', ',']).unwrap_or(field.len());
    field[..end].to_string()
}

enum SlotField {
    Range(Slot, Slot),
    Importing(Slot),
    Migrating(Slot),
}

/// `N`, `N-M`, `[N-<-id]` (importing) or `[N->-id]` (migrating).
fn parse_slot_field(field: &str) -> Option<SlotField> {
    let slot = |text: &str| text.parse().ok().and_then(Slot::new);
    if let Some(inner) = field.strip_prefix('[') {
        if let Some((n, _)) = inner.split_once("-<-") {
            return slot(n).map(SlotField::Importing);
        }
        let (n, _) = inner.split_once("->-")?;
        return slot(n).map(SlotField::Migrating);
    }
    match field.split_once('-') {
        Some((first, last)) => Some(SlotField::Range(slot(first)?, slot(last)?)),
        None => slot(field).map(|s| SlotField::Range(s, s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODES: &str = "\
07c3 127.0.0.1:30004@40004 slave e7d1 0 1426238317239 4 connected
67ed 127.0.0.1:30002@40002,host-b master - 0 1426238316232 2 connected 5461-10922 [10923-<-292f]
292f 127.0.0.1:30003@40003 myself,master - 0 1426238318243 3 connected 10923-16383 [93-<-67ed] [10925->-e7d1]
e7d1 127.0.0.1:30001@40001 master - 0 1426238316232 1 connected 0-5460
6ec2 127.0.0.1:30005@40005 master,fail - 0 1426238316232 5 disconnected
";

    fn slot(n: u32) -> Slot {
        Slot::new(n).unwrap()
    }

    #[test]
    fn parses_this_nodes_slots_and_the_owners() {
        let t = Topology::parse(NODES).unwrap();
        assert_eq!(t.served.len(), 16384 - 10923);
        let cases = [
            (0, KeyRule::Skip, Some("127.0.0.1:30001")),
            (93, KeyRule::ExistingOnly, Some("127.0.0.1:30001")),
            (5461, KeyRule::Skip, Some("127.0.0.1:30002")),
            (10923, KeyRule::Write, Some("127.0.0.1:30003")),
            (10925, KeyRule::ExistingOnly, Some("127.0.0.1:30003")),
            (16383, KeyRule::Write, Some("127.0.0.1:30003")),
        ];
        for (n, rule, owner) in cases {
            assert_eq!(t.rule(slot(n)), rule, "slot {n}");
            assert_eq!(t.owner(slot(n)), owner, "slot {n}");
        }
        assert_eq!(t.importing.iter().map(Slot::number).collect::<Vec<_>>(), [93]);
        assert_eq!(t.route(slot(10925)), Route::Here);
        assert_eq!(t.route(slot(93)), Route::Elsewhere("127.0.0.1:30001"));
        let fresh = Topology::parse("abcd 127.0.0.1:7000@17000 myself,master - 0 0 0 connected\n").unwrap();
        assert_eq!(fresh.route(slot(93)), Route::Unserved);
        assert_eq!(t.writable().len(), 16384 - 10923 - 1);
    }

    #[test]
    fn a_replica_or_an_empty_master_serves_nothing() {
        let replica = NODES
            .replace("myself,master", "master")
            .replace(" slave ", " myself,slave ");
        let t = Topology::parse(&replica).unwrap();
        assert!(t.served.is_empty() && t.importing.is_empty());
        assert_eq!(t.rule(slot(16383)), KeyRule::Skip);
        assert_eq!(t.owner(slot(16383)), Some("127.0.0.1:30003"));
        let fresh = Topology::parse("abcd 127.0.0.1:7000@17000 myself,master - 0 0 0 connected\n").unwrap();
        assert!(fresh.served.is_empty());
        assert_eq!(fresh.owner(slot(0)), None);
    }

    #[test]
    fn malformed_text_is_no_topology_or_ignored() {
        assert_eq!(Topology::parse(""), None);
        assert_eq!(Topology::parse("ERR This instance has cluster support disabled"), None);
        let odd = "x 1.2.3.4:5@6 myself,master - 0 0 1 connected 16384 7-x [9-?-y] 3\n";
        let t = Topology::parse(odd).unwrap();
        assert_eq!(t.served.iter().map(Slot::number).collect::<Vec<_>>(), [3]);
    }
}
