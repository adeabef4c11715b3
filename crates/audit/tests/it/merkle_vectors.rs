//! RFC 6962 known answers (the Certificate Transparency reference leaves) and exhaustive
//! checks over every small tree.

use std::collections::HashMap;

use audit::chain::Hash;
use audit::merkle::{
    EMPTY_ROOT, MerkleError, TreeBuilder, consistency_proof, consistency_proof_from,
    inclusion_proof, inclusion_proof_from, leaf_hash, node_hash, nodes_needed_for_consistency,
    nodes_needed_for_inclusion, nodes_needed_for_root, root, root_from, verify_consistency,
    verify_inclusion,
};

fn h(s: &str) -> Hash {
    hex::decode(s).unwrap().try_into().unwrap()
}

fn ct_leaves() -> Vec<Hash> {
    [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    .iter()
    .map(|e| leaf_hash(&hex::decode(e).unwrap()))
    .collect()
}

const CT_ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// Every complete aligned subtree of `leaves`, as the sequencer stores them.
pub fn all_nodes(leaves: &[Hash]) -> HashMap<(u8, u64), Hash> {
    let mut tree = TreeBuilder::new();
    let mut nodes = HashMap::new();
    for leaf in leaves {
        nodes.insert((0, tree.size()), *leaf);
        for (level, index, hash) in tree.push(*leaf).unwrap() {
            nodes.insert((level, index), hash);
        }
    }
    nodes
}

#[test]
fn ct_roots_for_every_size() {
    let leaves = ct_leaves();
    let nodes = all_nodes(&leaves);
    for (size, want) in CT_ROOTS.iter().enumerate() {
        assert_eq!(hex::encode(root(&leaves[..size])), *want, "root({size})");
        assert_eq!(hex::encode(root_from(&nodes, size as u64).unwrap()), *want);
        let mut tree = TreeBuilder::new();
        for leaf in &leaves[..size] {
            tree.push(*leaf).unwrap();
        }
        assert_eq!(hex::encode(tree.root()), *want, "builder root({size})");
    }
    assert_eq!(hex::encode(EMPTY_ROOT), CT_ROOTS[0]);
    assert_eq!(hex::encode(leaf_hash(b"")), CT_ROOTS[1]);
    assert_eq!(hex::encode(node_hash(&leaves[0], &leaves[1])), CT_ROOTS[2]);
}

#[test]
fn ct_inclusion_proofs() {
    let leaves = ct_leaves();
    let nodes = all_nodes(&leaves);
    let cases: [(u64, &[&str]); 2] = [
        (
            0,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
    ];
    for (index, want) in cases {
        let want: Vec<Hash> = want.iter().map(|s| h(s)).collect();
        assert_eq!(inclusion_proof(&leaves, index).unwrap(), want);
        assert_eq!(inclusion_proof_from(&nodes, index, 8).unwrap(), want);
        let i = usize::try_from(index).unwrap();
        verify_inclusion(&leaves[i], index, 8, &want, &h(CT_ROOTS[8])).unwrap();
    }
}

#[test]
fn ct_consistency_proofs() {
    let leaves = ct_leaves();
    let nodes = all_nodes(&leaves);
    let cases: [(u64, u64, &[&str]); 3] = [
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];
    for (first, second, want) in cases {
        let want: Vec<Hash> = want.iter().map(|s| h(s)).collect();
        let n = usize::try_from(second).unwrap();
        assert_eq!(consistency_proof(&leaves[..n], first).unwrap(), want);
        assert_eq!(consistency_proof_from(&nodes, first, second).unwrap(), want);
        let (r1, r2) = (h(CT_ROOTS[first as usize]), h(CT_ROOTS[n]));
        verify_consistency(first, second, &r1, &r2, &want).unwrap();
    }
}

fn synthetic_leaves(n: u64) -> Vec<Hash> {
    (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
}

/// Every tree up to 70 leaves: every inclusion proof and every consistency proof from
/// stored nodes equals the reference, reads exactly the listed nodes, and verifies.
#[test]
fn every_small_tree_exhaustively() {
    let leaves = synthetic_leaves(70);
    let nodes = all_nodes(&leaves);
    let roots: Vec<Hash> = (0..=leaves.len()).map(|n| root(&leaves[..n])).collect();
    for size in 0..=70u64 {
        let n = size as usize;
        assert_eq!(root_from(&nodes, size).unwrap(), roots[n]);
        assert_eq!(
            nodes_needed_for_root(size).len(),
            size.count_ones() as usize
        );
        for index in 0..size {
            let want = inclusion_proof(&leaves[..n], index).unwrap();
            let needed = nodes_needed_for_inclusion(index, size);
            let only: HashMap<_, _> = needed.iter().map(|k| (*k, nodes[k])).collect();
            assert_eq!(inclusion_proof_from(&only, index, size).unwrap(), want);
            verify_inclusion(&leaves[index as usize], index, size, &want, &roots[n]).unwrap();
        }
        for first in 0..=size {
            let want = consistency_proof(&leaves[..n], first).unwrap();
            let needed = nodes_needed_for_consistency(first, size);
            let only: HashMap<_, _> = needed.iter().map(|k| (*k, nodes[k])).collect();
            assert_eq!(consistency_proof_from(&only, first, size).unwrap(), want);
            verify_consistency(first, size, &roots[first as usize], &roots[n], &want).unwrap();
        }
    }
}

#[test]
fn degenerate_and_invalid_inputs() {
    let leaves = synthetic_leaves(8);
    let r8 = root(&leaves);
    let r4 = root(&leaves[..4]);
    assert_eq!(
        inclusion_proof(&leaves, 8),
        Err(MerkleError::IndexOutOfRange { index: 8, size: 8 })
    );
    assert_eq!(
        verify_inclusion(&leaves[0], 8, 8, &[], &r8),
        Err(MerkleError::IndexOutOfRange { index: 8, size: 8 })
    );
    assert_eq!(
        verify_inclusion(&leaves[0], 0, 0, &[], &EMPTY_ROOT),
        Err(MerkleError::IndexOutOfRange { index: 0, size: 0 })
    );
    assert_eq!(
        consistency_proof(&leaves, 9),
        Err(MerkleError::SizeOrder {
            first: 9,
            second: 8
        })
    );
    assert_eq!(
        verify_consistency(8, 4, &r8, &r4, &[]),
        Err(MerkleError::SizeOrder {
            first: 8,
            second: 4
        })
    );
    // Equal sizes: empty proof and equal roots.
    verify_consistency(4, 4, &r4, &r4, &[]).unwrap();
    assert_eq!(
        verify_consistency(4, 4, &r4, &r8, &[]),
        Err(MerkleError::RootMismatch)
    );
    assert_eq!(
        verify_consistency(4, 4, &r4, &r4, &[r4]),
        Err(MerkleError::ProofLength)
    );
    // From the empty tree: empty proof.
    verify_consistency(0, 8, &EMPTY_ROOT, &r8, &[]).unwrap();
    assert_eq!(
        verify_consistency(0, 8, &EMPTY_ROOT, &r8, &[r4]),
        Err(MerkleError::ProofLength)
    );
    // 0 < m < n needs a proof.
    assert_eq!(
        verify_consistency(4, 8, &r4, &r8, &[]),
        Err(MerkleError::ProofLength)
    );
    // Missing stored nodes are named.
    let empty: HashMap<(u8, u64), Hash> = HashMap::new();
    assert_eq!(
        root_from(&empty, 6),
        Err(MerkleError::MissingNode { level: 1, index: 2 })
    );
    assert_eq!(nodes_needed_for_inclusion(8, 8), vec![]);
    assert_eq!(nodes_needed_for_consistency(9, 8), vec![]);
}

#[test]
fn builder_from_right_edge_rejects_wrong_length() {
    assert_eq!(
        TreeBuilder::from_right_edge(7, vec![[0; 32]; 2]),
        Err(MerkleError::RightEdge {
            size: 7,
            expected: 3,
            got: 2
        })
    );
}

#[test]
fn huge_sizes_do_not_overflow() {
    // Decompositions and proof shapes near 2^64 (no hashing: just the node lists).
    let size = u64::MAX;
    assert_eq!(nodes_needed_for_root(size).len(), 64);
    let needed = nodes_needed_for_inclusion(size - 1, size);
    assert!(needed.len() <= 64);
    let needed = nodes_needed_for_consistency(size - 2, size);
    assert!(!needed.is_empty() && needed.len() <= 128);
    let full = TreeBuilder::from_right_edge(u64::MAX, vec![[0; 32]; 64]).unwrap();
    let mut full = full;
    assert_eq!(full.push([1; 32]), Err(MerkleError::TreeFull));
}
