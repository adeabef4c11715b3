//! RFC 6962 Merkle tree over a practice's events: hashes, proofs, verifiers, and the
//! incremental builder the sequencer uses.
//!
//! # Hashes (RFC 6962 §2.1, exactly)
//!
//! ```text
//! leaf_hash(entry) = SHA-256(0x00 || entry)        entry = canonical(event)
//! node_hash(l, r)  = SHA-256(0x01 || l || r)
//! MTH({})          = SHA-256()                      (the empty string)
//! MTH({d0})        = leaf_hash(d0)
//! MTH(D[n])        = node_hash(MTH(D[0:k]), MTH(D[k:n]))   k = largest power of two < n
//! ```
//!
//! Leaf `i` is the event with `seq = i`. Inclusion proofs are RFC 6962 §2.1.1 `PATH`,
//! consistency proofs §2.1.2 `PROOF`; both are verified with the algorithms of RFC 9162
//! §2.1.3.2 and §2.1.4.2.
//!
//! # Storage model
//!
//! The server stores every **complete, aligned subtree**: node `(level, index)` is the
//! hash of leaves `[index·2^level, (index+1)·2^level)`. Level 0 is the leaf hashes (kept
//! with each sequenced event), levels ≥ 1 are what [`TreeBuilder::push`] reports as it
//! completes them (the `audit_node` rows). Any range `[a, b)` met while computing a root
//! or a proof starts at a multiple of a power of two at least as large as the range, so it
//! splits into at most 64 complete aligned subtrees (the binary digits of `b - a`), and
//! its hash is the right fold of theirs:
//!
//! ```text
//! MTH([a, b)) = node_hash(s0, node_hash(s1, … node_hash(s_{k-1}, s_k)))   s0 largest
//! ```
//!
//! A root takes `popcount(size)` lookups; an inclusion or consistency proof O(log n):
//! once the proof walk steps into a left (complete) subtree every further sibling is one
//! stored node, and before that each step's sibling is one stored node except the one
//! right-hand sibling met at the step where the walk turns left. The `nodes_needed_for_*`
//! functions list exactly the nodes a computation reads, so the server fetches them in one
//! query and calls the `*_from` function with an in-memory [`NodeSource`].

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};

pub use crate::chain::Hash;

/// Root of the empty tree: SHA-256 of the empty string (RFC 6962 §2.1).
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// Why a Merkle computation or verification failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    /// A leaf index at or past the tree size.
    #[error("leaf index {index} is not in a tree of size {size}")]
    IndexOutOfRange {
        /// The index asked for.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// A consistency proof from a larger tree to a smaller one.
    #[error("cannot prove consistency from size {first} to the smaller size {second}")]
    SizeOrder {
        /// The first (older) size.
        first: u64,
        /// The second (newer) size.
        second: u64,
    },
    /// The node source does not hold a node the computation needs.
    #[error("stored node (level {level}, index {index}) is missing")]
    MissingNode {
        /// Level of the node.
        level: u8,
        /// Index of the node within its level.
        index: u64,
    },
    /// A proof has the wrong number of hashes for its sizes.
    #[error("proof has the wrong length")]
    ProofLength,
    /// A proof does not lead to the expected root(s).
    #[error("proof does not match the root hash")]
    RootMismatch,
    /// A right edge that does not have one hash per binary digit of the size.
    #[error("a right edge for size {size} has {expected} hashes, not {got}")]
    RightEdge {
        /// The tree size.
        size: u64,
        /// `popcount(size)`.
        expected: usize,
        /// What was given.
        got: usize,
    },
    /// The tree already holds 2^64 − 1 leaves.
    #[error("the tree is full")]
    TreeFull,
}

/// `SHA-256(0x00 || entry)`: the leaf hash of one log entry (RFC 6962 §2.1).
#[must_use]
pub fn leaf_hash(entry: &[u8]) -> Hash {
    Sha256::new()
        .chain_update([0x00])
        .chain_update(entry)
        .finalize()
        .into()
}

/// `SHA-256(0x01 || left || right)`: an interior node (RFC 6962 §2.1).
#[must_use]
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Sha256::new()
        .chain_update([0x01])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

/// The largest power of two strictly less than `n` (`n ≥ 2`).
fn split_point(n: u64) -> u64 {
    1u64 << (n - 1).ilog2()
}

fn split(leaves: &[Hash], k: u64) -> (&[Hash], &[Hash]) {
    let k = usize::try_from(k).unwrap_or(usize::MAX);
    leaves.split_at_checked(k).unwrap_or((leaves, &[]))
}

/// The Merkle tree hash of `leaves` (leaf hashes, in order), from all of them: O(n).
/// The reference against which the stored-node functions are tested.
#[must_use]
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => EMPTY_ROOT,
        [one] => *one,
        _ => {
            let (l, r) = split(leaves, split_point(leaves.len() as u64));
            node_hash(&root(l), &root(r))
        }
    }
}

/// RFC 6962 §2.1.1 `PATH(index, leaves)` computed from all leaves (reference, O(n)).
pub fn inclusion_proof(leaves: &[Hash], index: u64) -> Result<Vec<Hash>, MerkleError> {
    let size = leaves.len() as u64;
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    let mut out = Vec::new();
    path(index, leaves, &mut out);
    Ok(out)
}

fn path(index: u64, leaves: &[Hash], out: &mut Vec<Hash>) {
    let size = leaves.len() as u64;
    if size <= 1 {
        return;
    }
    let k = split_point(size);
    let (left, right) = split(leaves, k);
    if index < k {
        path(index, left, out);
        out.push(root(right));
    } else {
        path(index - k, right, out);
        out.push(root(left));
    }
}

/// RFC 6962 §2.1.2 `PROOF(first, leaves)` computed from all leaves (reference, O(n)).
/// Empty when `first` is 0 or equals the tree size.
pub fn consistency_proof(leaves: &[Hash], first: u64) -> Result<Vec<Hash>, MerkleError> {
    let second = leaves.len() as u64;
    if first > second {
        return Err(MerkleError::SizeOrder { first, second });
    }
    let mut out = Vec::new();
    if first > 0 {
        subproof(first, leaves, true, &mut out);
    }
    Ok(out)
}

fn subproof(first: u64, leaves: &[Hash], whole: bool, out: &mut Vec<Hash>) {
    let size = leaves.len() as u64;
    if first == size {
        if !whole {
            out.push(root(leaves));
        }
        return;
    }
    let k = split_point(size);
    let (left, right) = split(leaves, k);
    if first <= k {
        subproof(first, left, whole, out);
        out.push(root(right));
    } else {
        subproof(first - k, right, false, out);
        out.push(root(left));
    }
}

/// Verifies that `leaf` is leaf `index` of the tree of `size` leaves whose root is `root`,
/// given the inclusion proof `proof` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return Err(MerkleError::ProofLength);
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(MerkleError::ProofLength);
    }
    if &r == root {
        Ok(())
    } else {
        Err(MerkleError::RootMismatch)
    }
}

/// Verifies that the tree of `first` leaves with root `first_root` is a prefix of the tree
/// of `second` leaves with root `second_root`, given the consistency proof `proof`
/// (RFC 9162 §2.1.4.2). Equal sizes need an empty proof and equal roots; `first = 0`
/// needs an empty proof (every tree extends the empty one).
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_root: &Hash,
    second_root: &Hash,
    proof: &[Hash],
) -> Result<(), MerkleError> {
    if first > second {
        return Err(MerkleError::SizeOrder { first, second });
    }
    if first == second || first == 0 {
        if !proof.is_empty() {
            return Err(MerkleError::ProofLength);
        }
        return if first == 0 || first_root == second_root {
            Ok(())
        } else {
            Err(MerkleError::RootMismatch)
        };
    }
    // 0 < first < second.
    let mut path = std::iter::once(*first_root)
        .filter(|_| first.is_power_of_two())
        .chain(proof.iter().copied());
    let Some(start) = path.next() else {
        return Err(MerkleError::ProofLength);
    };
    let (mut f, mut s) = (first - 1, second - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (start, start);
    for c in path {
        if s == 0 {
            return Err(MerkleError::ProofLength);
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(&c, &fr);
            sr = node_hash(&c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, &c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(MerkleError::ProofLength);
    }
    if &fr == first_root && &sr == second_root {
        Ok(())
    } else {
        Err(MerkleError::RootMismatch)
    }
}

/// Where stored complete-subtree hashes come from: node `(level, index)` is the hash of
/// leaves `[index·2^level, (index+1)·2^level)`; level 0 is the leaf hashes.
pub trait NodeSource {
    /// The stored hash of node `(level, index)`, if present.
    fn node(&self, level: u8, index: u64) -> Option<Hash>;
}

impl<S: std::hash::BuildHasher> NodeSource for HashMap<(u8, u64), Hash, S> {
    fn node(&self, level: u8, index: u64) -> Option<Hash> {
        self.get(&(level, index)).copied()
    }
}

impl NodeSource for BTreeMap<(u8, u64), Hash> {
    fn node(&self, level: u8, index: u64) -> Option<Hash> {
        self.get(&(level, index)).copied()
    }
}

impl<T: NodeSource + ?Sized> NodeSource for &T {
    fn node(&self, level: u8, index: u64) -> Option<Hash> {
        (**self).node(level, index)
    }
}

/// A range `[lo, hi)` of leaves whose hash is one proof element (or a root).
type Range = (u64, u64);

/// Appends the complete aligned subtrees that make up `[lo, hi)`, largest first.
/// `lo` must be a multiple of a power of two at least `hi - lo` (true of every range the
/// RFC 6962 recursions produce).
fn decompose(lo: u64, hi: u64, out: &mut Vec<(u8, u64)>) {
    let len = hi - lo;
    let mut cur = lo;
    for level in (0..64u8).rev() {
        if (len >> level) & 1 == 1 {
            out.push((level, cur >> level));
            cur += 1u64 << level;
        }
    }
}

/// The ranges of `PATH(index, D[0:size])`, in proof order (nearest the leaf first).
fn inclusion_ranges(index: u64, size: u64) -> Result<Vec<Range>, MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    let mut top_down = Vec::new();
    let (mut lo, mut hi, mut m) = (0u64, size, index);
    while hi - lo > 1 {
        let k = split_point(hi - lo);
        if m < k {
            top_down.push((lo + k, hi));
            hi = lo + k;
        } else {
            top_down.push((lo, lo + k));
            lo += k;
            m -= k;
        }
    }
    top_down.reverse();
    Ok(top_down)
}

/// The ranges of `PROOF(first, D[0:second])`, in proof order.
fn consistency_ranges(first: u64, second: u64) -> Result<Vec<Range>, MerkleError> {
    if first > second {
        return Err(MerkleError::SizeOrder { first, second });
    }
    if first == 0 || first == second {
        return Ok(Vec::new());
    }
    let mut top_down = Vec::new();
    let (mut lo, mut hi, mut m, mut whole) = (0u64, second, first, true);
    loop {
        let n = hi - lo;
        if m == n {
            if !whole {
                top_down.push((lo, hi));
            }
            break;
        }
        let k = split_point(n);
        if m <= k {
            top_down.push((lo + k, hi));
            hi = lo + k;
        } else {
            top_down.push((lo, lo + k));
            lo += k;
            m -= k;
            whole = false;
        }
    }
    top_down.reverse();
    Ok(top_down)
}

fn needed(ranges: &[Range]) -> Vec<(u8, u64)> {
    let mut out = Vec::new();
    for &(lo, hi) in ranges {
        decompose(lo, hi, &mut out);
    }
    out
}

fn range_hash(src: &impl NodeSource, lo: u64, hi: u64) -> Result<Hash, MerkleError> {
    if lo == hi {
        return Ok(EMPTY_ROOT);
    }
    let mut ids = Vec::with_capacity(8);
    decompose(lo, hi, &mut ids);
    let mut acc: Option<Hash> = None;
    for &(level, index) in ids.iter().rev() {
        let h = src
            .node(level, index)
            .ok_or(MerkleError::MissingNode { level, index })?;
        acc = Some(match acc {
            None => h,
            Some(right) => node_hash(&h, &right),
        });
    }
    Ok(acc.unwrap_or(EMPTY_ROOT))
}

/// The stored nodes [`root_from`] reads for a tree of `size` leaves (the decomposition
/// of `size` into complete aligned subtrees, largest first; also the right edge
/// [`TreeBuilder::from_right_edge`] needs).
#[must_use]
pub fn nodes_needed_for_root(size: u64) -> Vec<(u8, u64)> {
    let mut out = Vec::new();
    decompose(0, size, &mut out);
    out
}

/// The stored nodes [`inclusion_proof_from`] reads (empty if `index >= size`).
#[must_use]
pub fn nodes_needed_for_inclusion(index: u64, size: u64) -> Vec<(u8, u64)> {
    inclusion_ranges(index, size)
        .map(|r| needed(&r))
        .unwrap_or_default()
}

/// The stored nodes [`consistency_proof_from`] reads (empty if `first > second`).
#[must_use]
pub fn nodes_needed_for_consistency(first: u64, second: u64) -> Vec<(u8, u64)> {
    consistency_ranges(first, second)
        .map(|r| needed(&r))
        .unwrap_or_default()
}

/// The root of the tree of `size` leaves, from stored nodes (`popcount(size)` lookups).
pub fn root_from(src: &impl NodeSource, size: u64) -> Result<Hash, MerkleError> {
    range_hash(src, 0, size)
}

/// RFC 6962 `PATH(index, D[0:size])` from stored nodes, O(log n) lookups.
pub fn inclusion_proof_from(
    src: &impl NodeSource,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, MerkleError> {
    inclusion_ranges(index, size)?
        .into_iter()
        .map(|(lo, hi)| range_hash(src, lo, hi))
        .collect()
}

/// RFC 6962 `PROOF(first, D[0:second])` from stored nodes, O(log n) lookups.
pub fn consistency_proof_from(
    src: &impl NodeSource,
    first: u64,
    second: u64,
) -> Result<Vec<Hash>, MerkleError> {
    consistency_ranges(first, second)?
        .into_iter()
        .map(|(lo, hi)| range_hash(src, lo, hi))
        .collect()
}

/// A node the builder completed: `(level, index, hash)`.
pub type Node = (u8, u64, Hash);

/// Incremental RFC 6962 tree: holds only the right edge (one hash per binary digit of the
/// size, O(log n) memory) and reports every complete subtree as it is finished.
///
/// The sequencer starts it from the stored right edge ([`nodes_needed_for_root`] of the
/// sequenced size), pushes the leaf hash of each event it sequences, and stores what
/// [`push`](Self::push) returns. The verifier uses it to recompute roots while streaming.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TreeBuilder {
    size: u64,
    /// Complete subtrees decomposing `[0, size)`, largest (leftmost) first.
    edge: Vec<Hash>,
}

impl TreeBuilder {
    /// An empty tree.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A tree of `size` leaves given its right edge: the hashes of the nodes
    /// [`nodes_needed_for_root`]`(size)`, in that order (largest subtree first).
    pub fn from_right_edge(size: u64, edge: Vec<Hash>) -> Result<Self, MerkleError> {
        let expected = size.count_ones() as usize;
        if edge.len() != expected {
            return Err(MerkleError::RightEdge {
                size,
                expected,
                got: edge.len(),
            });
        }
        Ok(Self { size, edge })
    }

    /// A tree of `size` leaves whose right edge is read from `src`.
    pub fn from_source(src: &impl NodeSource, size: u64) -> Result<Self, MerkleError> {
        let edge = nodes_needed_for_root(size)
            .into_iter()
            .map(|(level, index)| {
                src.node(level, index)
                    .ok_or(MerkleError::MissingNode { level, index })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_right_edge(size, edge)
    }

    /// Number of leaves.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The right edge: hashes of [`nodes_needed_for_root`]`(self.size())`, in that order.
    #[must_use]
    pub fn right_edge(&self) -> &[Hash] {
        &self.edge
    }

    /// The current root (O(log n) hashing).
    #[must_use]
    pub fn root(&self) -> Hash {
        let mut it = self.edge.iter().rev();
        let Some(last) = it.next() else {
            return EMPTY_ROOT;
        };
        it.fold(*last, |acc, h| node_hash(h, &acc))
    }

    /// Appends a leaf hash and returns the nodes of level ≥ 1 it completed, lowest first
    /// (the leaf itself is node `(0, old size)`; it is stored with its event).
    pub fn push(&mut self, leaf: Hash) -> Result<Vec<Node>, MerkleError> {
        let mut done = Vec::new();
        self.push_with(leaf, |level, index, hash| done.push((level, index, *hash)))?;
        Ok(done)
    }

    /// Appends a leaf hash, calling `completed(level, index, hash)` for each node of
    /// level ≥ 1 it completes, lowest first. Allocation-free.
    pub fn push_with(
        &mut self,
        leaf: Hash,
        mut completed: impl FnMut(u8, u64, &Hash),
    ) -> Result<(), MerkleError> {
        let pos = self.size;
        let next = pos.checked_add(1).ok_or(MerkleError::TreeFull)?;
        let mut hash = leaf;
        let mut level = 0u8;
        while (pos >> level) & 1 == 1 {
            // Each 1 bit of `pos` below `level` has its subtree at the end of the edge.
            let left = self.edge.pop().ok_or(MerkleError::RightEdge {
                size: pos,
                expected: pos.count_ones() as usize,
                got: 0,
            })?;
            hash = node_hash(&left, &hash);
            level += 1;
            completed(level, pos >> level, &hash);
        }
        self.edge.push(hash);
        self.size = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        let h: Hash = Sha256::digest(b"").into();
        assert_eq!(h, EMPTY_ROOT);
        assert_eq!(root(&[]), EMPTY_ROOT);
        assert_eq!(TreeBuilder::new().root(), EMPTY_ROOT);
    }

    #[test]
    fn split_point_is_largest_power_below() {
        for (n, k) in [
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 4),
            (8, 4),
            (9, 8),
            (u64::MAX, 1 << 63),
        ] {
            assert_eq!(split_point(n), k, "n = {n}");
        }
    }

    #[test]
    fn decomposition_of_seven() {
        assert_eq!(nodes_needed_for_root(7), vec![(2, 0), (1, 2), (0, 6)]);
        assert_eq!(nodes_needed_for_root(0), vec![]);
    }
}
