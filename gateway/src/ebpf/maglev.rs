//! Maglev consistent hashing (Eisenbud et al., NSDI 2016): the lookup table the
//! XDP program indexes with `ClientKey::maglev_index()` to find a client's owner.
//!
//! Every node must build the same table from the same membership, so the
//! permutations come from SHA-256 of the node *name* (stable across processes,
//! versions and config order) and nodes are filled in name order. Each entry holds
//! a node's stable slot in the `NODES` map. With table size M prime and N nodes,
//! every node gets ⌊M/N⌋ or ⌈M/N⌉ entries, and removing a node moves its own
//! entries plus a small fraction of the others' (measured in the tests).

use sha2::{Digest, Sha256};

use gateway_common::NO_NODE;

/// One live node: its name (hashed) and its slot (written into the table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member<'a> {
    /// Node name; the only input to its permutation.
    pub name: &'a str,
    /// Slot in the `NODES` map.
    pub slot: u32,
}

/// `(offset, skip)` of a node's permutation `offset + j·skip (mod size)`.
fn permutation(name: &str, size: u32) -> (u64, u64) {
    let digest = Sha256::digest(name.as_bytes());
    let word = |i: usize| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&digest[i..i + 8]);
        u64::from_le_bytes(bytes)
    };
    let size = u64::from(size);
    (word(0) % size, word(8) % (size - 1) + 1)
}

/// The Maglev table of `size` entries (a prime) for `members`; every entry is a
/// member's slot, or [`NO_NODE`] everywhere when there are no members.
pub fn table(members: &[Member<'_>], size: u32) -> Vec<u32> {
    let len = size as usize;
    let mut entries = vec![NO_NODE; len];
    if members.is_empty() || size < 2 {
        return entries;
    }
    let mut sorted: Vec<Member<'_>> = members.to_vec();
    sorted.sort_by(|a, b| a.name.cmp(b.name));
    sorted.dedup_by(|a, b| a.name == b.name);
    let perms: Vec<(u64, u64)> = sorted.iter().map(|m| permutation(m.name, size)).collect();
    let mut next = vec![0u64; sorted.len()];
    let mut filled = 0usize;
    // Each round gives every member one more entry; a member's probe sequence is
    // a full permutation of the table (size is prime, skip < size), so each
    // inner search ends, and the whole fill is at most size × members probes.
    while filled < len {
        for (i, member) in sorted.iter().enumerate() {
            let (offset, skip) = perms[i];
            let mut c = ((offset + next[i] * skip) % u64::from(size)) as usize;
            while entries[c] != NO_NODE {
                next[i] += 1;
                c = ((offset + next[i] * skip) % u64::from(size)) as usize;
            }
            entries[c] = member.slot;
            next[i] += 1;
            filled += 1;
            if filled == len {
                break;
            }
        }
    }
    entries
}

/// Indices where `new` differs from `old` (what must be rewritten in the map).
pub fn changed(old: &[u32], new: &[u32]) -> Vec<u32> {
    new.iter().enumerate().filter(|&(i, v)| old.get(i) != Some(v)).filter_map(|(i, _)| u32::try_from(i).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_common::MAGLEV_SIZE;

    fn members(names: &[String]) -> Vec<Member<'_>> {
        names.iter().enumerate().map(|(i, n)| Member { name: n, slot: i as u32 }).collect()
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("node-{i}")).collect()
    }

    fn shares(table: &[u32], nodes: usize) -> Vec<usize> {
        let mut counts = vec![0usize; nodes];
        for &slot in table {
            counts[slot as usize] += 1;
        }
        counts
    }

    #[test]
    fn every_node_gets_an_equal_share() {
        for n in [1, 2, 3, 5, 10, 64] {
            let names = names(n);
            let t = table(&members(&names), MAGLEV_SIZE);
            assert!(t.iter().all(|&s| (s as usize) < n));
            let counts = shares(&t, n);
            let (min, max) = (*counts.iter().min().unwrap(), *counts.iter().max().unwrap());
            assert!(max - min <= 1, "{n} nodes: shares {min}..{max}");
        }
    }

    #[test]
    fn no_members_means_no_owner() {
        assert!(table(&[], 7).iter().all(|&s| s == NO_NODE));
    }

    #[test]
    fn the_table_depends_on_names_not_on_config_order() {
        let a = [Member { name: "a", slot: 0 }, Member { name: "b", slot: 1 }];
        let b = [Member { name: "b", slot: 1 }, Member { name: "a", slot: 0 }];
        assert_eq!(table(&a, 251), table(&b, 251));
    }

    #[test]
    fn removing_a_node_moves_few_other_clients() {
        let all = names(10);
        let before = table(&members(&all), MAGLEV_SIZE);
        // Remove node-3; the others keep their slots.
        let remaining: Vec<Member<'_>> = members(&all).into_iter().filter(|m| m.slot != 3).collect();
        let after = table(&remaining, MAGLEV_SIZE);
        let moved_from_survivors = before.iter().zip(&after).filter(|&(b, a)| *b != 3 && b != a).count();
        let size = MAGLEV_SIZE as usize;
        assert!(after.iter().all(|&s| s != 3));
        // Only the removed node's tenth must move; Maglev moves a little more.
        assert!(moved_from_survivors * 100 < size * 3, "{moved_from_survivors} of {size} entries moved needlessly");
        let changes = changed(&before, &after).len();
        assert!(changes * 100 < size * 14, "{changes} entries changed");
    }

    #[test]
    fn adding_a_node_takes_about_its_share() {
        let all = names(5);
        let before = table(&members(&all[..4]), MAGLEV_SIZE);
        let after = table(&members(&all), MAGLEV_SIZE);
        let moved = changed(&before, &after).len();
        let size = MAGLEV_SIZE as usize;
        // The new node takes a fifth; anything moved between old nodes is disruption.
        let to_new = after.iter().filter(|&&s| s == 4).count();
        assert!(moved - to_new < size * 3 / 100, "{} needless moves", moved - to_new);
    }
}
