//! Property tests: proofs computed from stored nodes equal proofs computed from all leaves,
//! read only the nodes listed (O(log n) of them), and verify; tampered proofs fail.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

use audit::chain::Hash;
use audit::merkle::{
    NodeSource, TreeBuilder, consistency_proof, consistency_proof_from, inclusion_proof,
    inclusion_proof_from, leaf_hash, nodes_needed_for_consistency, nodes_needed_for_inclusion,
    nodes_needed_for_root, root, root_from, verify_consistency, verify_inclusion,
};
use proptest::prelude::*;

use crate::merkle_vectors::all_nodes;

/// A node source that records every lookup.
struct Counting<'a> {
    nodes: &'a HashMap<(u8, u64), Hash>,
    seen: RefCell<Vec<(u8, u64)>>,
}

impl NodeSource for Counting<'_> {
    fn node(&self, level: u8, index: u64) -> Option<Hash> {
        self.seen.borrow_mut().push((level, index));
        self.nodes.node(level, index)
    }
}

fn leaves(n: u64, salt: u64) -> Vec<Hash> {
    (0..n)
        .map(|i| leaf_hash(&[i.to_be_bytes(), salt.to_be_bytes()].concat()))
        .collect()
}

fn bits(n: u64) -> usize {
    64 - n.leading_zeros() as usize
}

fn tamper(proof: &mut [Hash], which: usize, byte: usize) {
    let i = which % proof.len();
    proof[i][byte % 32] ^= 0x01;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn inclusion_from_nodes_matches_reference(
        n in 1u64..600, pick in any::<u64>(), salt in any::<u64>(), t in any::<(usize, usize)>()
    ) {
        let leaves = leaves(n, salt);
        let nodes = all_nodes(&leaves);
        let size = 1 + pick % n;
        let index = (pick / 7) % size;
        let sz = usize::try_from(size).unwrap();
        let want = inclusion_proof(&leaves[..sz], index).unwrap();
        let src = Counting { nodes: &nodes, seen: RefCell::new(Vec::new()) };
        let got = inclusion_proof_from(&src, index, size).unwrap();
        prop_assert_eq!(&got, &want);
        let seen: BTreeSet<_> = src.seen.into_inner().into_iter().collect();
        let needed: BTreeSet<_> = nodes_needed_for_inclusion(index, size).into_iter().collect();
        prop_assert_eq!(&seen, &needed);
        prop_assert!(needed.len() <= 2 * bits(size), "{} lookups for size {}", needed.len(), size);

        let r = root(&leaves[..sz]);
        let leaf = leaves[usize::try_from(index).unwrap()];
        prop_assert!(verify_inclusion(&leaf, index, size, &got, &r).is_ok());
        // Tampering: a flipped bit, a wrong index, a dropped or an extra hash, a wrong leaf.
        if !got.is_empty() {
            let mut bad = got.clone();
            tamper(&mut bad, t.0, t.1);
            prop_assert!(verify_inclusion(&leaf, index, size, &bad, &r).is_err());
            prop_assert!(verify_inclusion(&leaf, index, size, &got[1..], &r).is_err());
        }
        if size > 1 {
            let other = (index + 1) % size;
            prop_assert!(verify_inclusion(&leaf, other, size, &got, &r).is_err());
        }
        let mut longer = got.clone();
        longer.push([0xab; 32]);
        prop_assert!(verify_inclusion(&leaf, index, size, &longer, &r).is_err());
        prop_assert!(verify_inclusion(&[0; 32], index, size, &got, &r).is_err());
    }

    #[test]
    fn consistency_from_nodes_matches_reference(
        n in 1u64..600, pick in any::<u64>(), salt in any::<u64>(), t in any::<(usize, usize)>()
    ) {
        let leaves = leaves(n, salt);
        let nodes = all_nodes(&leaves);
        let second = 1 + pick % n;
        let first = (pick / 7) % (second + 1);
        let (f, s) = (usize::try_from(first).unwrap(), usize::try_from(second).unwrap());
        let want = consistency_proof(&leaves[..s], first).unwrap();
        let src = Counting { nodes: &nodes, seen: RefCell::new(Vec::new()) };
        let got = consistency_proof_from(&src, first, second).unwrap();
        prop_assert_eq!(&got, &want);
        let seen: BTreeSet<_> = src.seen.into_inner().into_iter().collect();
        let needed: BTreeSet<_> = nodes_needed_for_consistency(first, second).into_iter().collect();
        prop_assert_eq!(&seen, &needed);
        prop_assert!(needed.len() <= 2 * bits(second), "{} lookups for {}..{}", needed.len(), first, second);

        let (r1, r2) = (root(&leaves[..f]), root(&leaves[..s]));
        prop_assert!(verify_consistency(first, second, &r1, &r2, &got).is_ok());
        if !got.is_empty() {
            let mut bad = got.clone();
            tamper(&mut bad, t.0, t.1);
            prop_assert!(verify_consistency(first, second, &r1, &r2, &bad).is_err());
            prop_assert!(verify_consistency(first, second, &r1, &r2, &got[..got.len() - 1]).is_err());
            let mut longer = got.clone();
            longer.push([0xcd; 32]);
            prop_assert!(verify_consistency(first, second, &r1, &r2, &longer).is_err());
            // A different old root (a fork) does not verify.
            let mut forked = r1;
            forked[0] ^= 1;
            prop_assert!(verify_consistency(first, second, &forked, &r2, &got).is_err());
        }
    }

    #[test]
    fn builder_resumes_from_stored_right_edge(n in 1u64..700, cut in any::<u64>(), salt in any::<u64>()) {
        let leaves = leaves(n, salt);
        let nodes = all_nodes(&leaves);
        let cut = cut % (n + 1);
        let mut resumed = TreeBuilder::from_source(&nodes, cut).unwrap();
        prop_assert_eq!(resumed.right_edge().len(), nodes_needed_for_root(cut).len());
        prop_assert_eq!(resumed.root(), root_from(&nodes, cut).unwrap());
        let mut fresh_nodes = HashMap::new();
        for leaf in &leaves[usize::try_from(cut).unwrap()..] {
            for (level, index, hash) in resumed.push(*leaf).unwrap() {
                fresh_nodes.insert((level, index), hash);
            }
        }
        prop_assert_eq!(resumed.size(), n);
        prop_assert_eq!(resumed.root(), root(&leaves));
        // Exactly the stored nodes of level >= 1 that complete after `cut`.
        let want: HashMap<_, _> = nodes
            .iter()
            .filter(|((level, index), _)| *level >= 1 && ((index + 1) << level) > cut)
            .map(|(k, v)| (*k, *v))
            .collect();
        prop_assert_eq!(fresh_nodes, want);
    }
}
