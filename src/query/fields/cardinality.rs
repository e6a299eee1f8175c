//! The count of distinct values of a field or label, in bounded memory, mergeable across
//! cores. Loki keeps a HyperLogLog sketch per field (github.com/axiomhq/hyperloglog); this
//! is the same idea, sized down.
//!
//! Which question it answers: "how many different values did this field take?" Up to 512
//! distinct values the count is exact (a sorted set of 64-bit hashes of the values, 4 KiB at
//! most); past that the hashes fold into a HyperLogLog of 4096 one-byte registers (4 KiB,
//! about 1.6% standard error), read with Ertl's improved estimator (2017), which needs no
//! bias tables at any cardinality.

use xxhash_rust::xxh3::xxh3_64;

/// Distinct hashes kept exactly before switching to registers.
const EXACT_MAX: usize = 512;
/// log2 of the register count.
const PRECISION: u32 = 12;
const REGISTERS: usize = 1 << PRECISION;
/// Hash bits left after the register index.
const REMAINING_BITS: u32 = 64 - PRECISION;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Sketch {
    /// Sorted, distinct value hashes.
    Exact(Vec<u64>),
    /// HyperLogLog registers: the longest run of leading zeros (plus one) seen per bucket.
    Registers(Box<[u8]>),
}

impl Default for Sketch {
    fn default() -> Sketch {
        Sketch::Exact(Vec::new())
    }
}

impl Sketch {
    pub fn insert(&mut self, value: &str) {
        self.insert_hash(xxh3_64(value.as_bytes()));
    }

    fn insert_hash(&mut self, hash: u64) {
        match self {
            Sketch::Exact(hashes) => {
                if let Err(i) = hashes.binary_search(&hash) {
                    hashes.insert(i, hash);
                    if hashes.len() > EXACT_MAX {
                        let registers = registers_of(hashes);
                        *self = Sketch::Registers(registers);
                    }
                }
            }
            Sketch::Registers(registers) => add_to_registers(registers, hash),
        }
    }

    pub fn merge(&mut self, other: &Sketch) {
        match (&mut *self, other) {
            (_, Sketch::Exact(hashes)) => {
                for &hash in hashes {
                    self.insert_hash(hash);
                }
            }
            (Sketch::Registers(mine), Sketch::Registers(theirs)) => {
                for (m, t) in mine.iter_mut().zip(theirs.iter()) {
                    *m = (*m).max(*t);
                }
            }
            (Sketch::Exact(hashes), Sketch::Registers(theirs)) => {
                let mut registers = theirs.clone();
                for &hash in hashes.iter() {
                    add_to_registers(&mut registers, hash);
                }
                *self = Sketch::Registers(registers);
            }
        }
    }

    /// The number of distinct values: exact up to 512, estimated beyond.
    pub fn estimate(&self) -> u64 {
        match self {
            Sketch::Exact(hashes) => hashes.len() as u64,
            Sketch::Registers(registers) => estimate_registers(registers),
        }
    }
}

fn registers_of(hashes: &[u64]) -> Box<[u8]> {
    let mut registers = vec![0u8; REGISTERS].into_boxed_slice();
    for &hash in hashes {
        add_to_registers(&mut registers, hash);
    }
    registers
}

fn add_to_registers(registers: &mut [u8], hash: u64) {
    let index = (hash >> REMAINING_BITS) as usize;
    let rest = hash << PRECISION;
    let rank = rest.leading_zeros().min(REMAINING_BITS) + 1;
    if let Some(register) = registers.get_mut(index) {
        *register = (*register).max(rank as u8);
    }
}

/// Ertl's improved raw estimator ("New cardinality estimation algorithms for HyperLogLog
/// sketches", algorithm 6).
fn estimate_registers(registers: &[u8]) -> u64 {
    let q = REMAINING_BITS as usize;
    let m = registers.len() as f64;
    let mut histogram = vec![0u32; q + 2];
    for &r in registers {
        histogram[usize::from(r).min(q + 1)] += 1;
    }
    let mut z = m * tau(1.0 - f64::from(histogram[q + 1]) / m);
    for k in (1..=q).rev() {
        z = 0.5 * (z + f64::from(histogram[k]));
    }
    z += m * sigma(f64::from(histogram[0]) / m);
    let alpha_inf = 0.5 / std::f64::consts::LN_2;
    let estimate = alpha_inf * m * m / z;
    if estimate.is_finite() {
        estimate.round() as u64
    } else {
        0
    }
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let previous = z;
        z += x * y;
        y += y;
        if z == previous {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let previous = z;
        y *= 0.5;
        z -= (1.0 - x) * (1.0 - x) * y;
        if z == previous {
            return z / 3.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sketch_of(range: std::ops::Range<u32>) -> Sketch {
        let mut sketch = Sketch::default();
        for i in range {
            sketch.insert(&format!("value-{i}"));
        }
        sketch
    }

    fn within(estimate: u64, truth: u64, percent: u64) -> bool {
        estimate.abs_diff(truth) * 100 <= truth * percent
    }

    #[test]
    fn small_counts_are_exact() {
        let mut sketch = sketch_of(0..300);
        sketch.insert("value-7");
        assert_eq!(sketch.estimate(), 300);
        assert!(matches!(sketch, Sketch::Exact(_)));
        assert_eq!(Sketch::default().estimate(), 0);
    }

    #[test]
    fn large_counts_are_close() {
        for n in [600, 5_000, 100_000] {
            let sketch = sketch_of(0..n);
            assert!(matches!(sketch, Sketch::Registers(_)));
            let estimate = sketch.estimate();
            assert!(within(estimate, u64::from(n), 5), "{n}: {estimate}");
        }
    }

    #[test]
    fn merges_count_the_union() {
        for (a, b) in [
            (0..200, 100..400),
            (0..400, 300..900),
            (0..3000, 2000..6000),
        ] {
            let truth = u64::from(b.end - a.start);
            let mut left = sketch_of(a.clone());
            left.merge(&sketch_of(b.clone()));
            assert!(within(left.estimate(), truth, 5), "{a:?} {b:?}");
            let mut right = sketch_of(b);
            right.merge(&sketch_of(a));
            assert!(within(right.estimate(), truth, 5));
        }
        let mut exact = sketch_of(0..100);
        exact.merge(&sketch_of(50..150));
        assert_eq!(exact.estimate(), 150);
    }
}
