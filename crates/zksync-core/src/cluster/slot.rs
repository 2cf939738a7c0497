//! Hash slots as Redis Cluster computes them: CRC16 (XMODEM: polynomial
//! 0x1021, initial value 0) of the key, or of its hash tag, modulo 16384.
//! Redis 7.0's module API cannot tell a module a key's slot, so zksync
//! computes it.

/// Hash slots in a cluster.
pub const SLOTS: usize = 16384;

/// One hash slot, `0..16384`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot(u16);

impl Slot {
    /// `None` past the last slot.
    pub fn new(n: u32) -> Option<Slot> {
        (n < SLOTS as u32).then_some(Slot(n as u16))
    }

    pub fn number(self) -> u16 {
        self.0
    }

    /// The slot of `key`: only the part between the first `{` and the next
    /// `}` counts when that part is not empty.
    pub fn of_key(key: &[u8]) -> Slot {
        Slot(crc16(hash_tag(key)) % SLOTS as u16)
    }
}

/// What of `key` is hashed: its hash tag `{tag}` if it has a non-empty one.
fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return key;
    };
    match key[open + 1..].iter().position(|&b| b == b'}') {
        Some(0) | None => key,
        Some(len) => &key[open + 1..open + 1 + len],
    }
}

/// CRC16-XMODEM, a table lookup per byte.
fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, &b| {
        (crc << 8) ^ CRC16_TABLE[usize::from(((crc >> 8) as u8) ^ b)]
    })
}

const CRC16_TABLE: [u16; 256] = crc16_table();

const fn crc16_table() -> [u16; 256] {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

/// A set of hash slots (2 KB).
#[derive(Clone, PartialEq, Eq)]
pub struct Slots {
    words: Box<[u64; SLOTS / 64]>,
}

impl Default for Slots {
    fn default() -> Slots {
        Slots {
            words: Box::new([0; SLOTS / 64]),
        }
    }
}

impl std::fmt::Debug for Slots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter().map(Slot::number)).finish()
    }
}

impl Slots {
    pub fn insert(&mut self, slot: Slot) {
        self.words[usize::from(slot.0 / 64)] |= 1 << (slot.0 % 64);
    }

    /// Inserts `first..=last` (nothing when `last < first`).
    pub fn insert_range(&mut self, first: Slot, last: Slot) {
        for n in first.0..=last.0 {
            self.insert(Slot(n));
        }
    }

    pub fn contains(&self, slot: Slot) -> bool {
        self.words[usize::from(slot.0 / 64)] & (1 << (slot.0 % 64)) != 0
    }

    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// The slots of `self` that `other` lacks.
    pub fn minus(&self, other: &Slots) -> Slots {
        let mut out = self.clone();
        for (w, o) in out.words.iter_mut().zip(other.words.iter()) {
            *w &= !o;
        }
        out
    }

    pub fn iter(&self) -> impl Iterator<Item = Slot> + '_ {
        (0..SLOTS as u16).map(Slot).filter(|&s| self.contains(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_of_keys_as_redis_computes_them() {
        // Checked against CLUSTER KEYSLOT on redis-server 7.0.
        let cases: [(&[u8], u16); 10] = [
            (b"foo", 12182),
            (b"bar", 5061),
            (b"", 0),
            (b"123456789", 12739),
            (b"zk:/app/k5", 6907),
            (b"{user1000}.following", 3443),
            (b"{user1000}.followers", 3443),
            (b"foo{}{bar}", 8363),
            (b"foo{{bar}}zap", 4015),
            (b"foo{bar}{zap}", 5061),
        ];
        for (key, slot) in cases {
            assert_eq!(Slot::of_key(key).number(), slot, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn hash_tags() {
        let cases: [(&[u8], &[u8]); 6] = [
            (b"plain", b"plain"),
            (b"{a}b", b"a"),
            (b"x{}y", b"x{}y"),
            (b"x{y", b"x{y"),
            (b"x}y{z}", b"z"),
            (b"{{a}}", b"{a"),
        ];
        for (key, tag) in cases {
            assert_eq!(hash_tag(key), tag, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn slot_sets() {
        let s = |n| Slot::new(n).unwrap();
        let mut a = Slots::default();
        assert!(a.is_empty());
        a.insert_range(s(10), s(12));
        a.insert(s(16383));
        a.insert_range(s(5), s(4));
        assert_eq!(a.len(), 4);
        assert!(a.contains(s(11)) && a.contains(s(16383)) && !a.contains(s(13)));
        let mut b = Slots::default();
        b.insert(s(11));
        let gained: Vec<u16> = a.minus(&b).iter().map(Slot::number).collect();
        assert_eq!(gained, [10, 12, 16383]);
        assert_eq!(Slot::new(16384), None);
    }
}
