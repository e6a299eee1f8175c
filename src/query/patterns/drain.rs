//! Drain, the online log clustering Loki's pattern ingester runs per stream and level
//! (pkg/pattern/drain/drain.go, after the paper by He et al., ICWS 2017), with the sample
//! chunks of each cluster (pkg/pattern/drain/chunk.go).
//!
//! Which question it answers: "which earlier lines does this line look like?" Lines are
//! grouped first by token count, then by their first tokens down a prefix tree (at most 28
//! levels, 15 children a node; tokens with digits go down a `<_>` branch), and at the leaf
//! the cluster with the most equal tokens wins if at least 30% of its tokens equal the
//! line's; the tokens that differ become `<_>`. At most 300 clusters are kept, the least
//! recently used evicted; when evictions exceed a quarter of the lines, training pauses for
//! ten minutes (here: ten minutes of log time). Each cluster counts its lines in 10 s
//! buckets.
//!
//! Bounds: tokens per line 4 to 80 (others are not mined), line length (3000 bytes by
//! default), clusters per tree, and tree nodes: the tree is pruned of branches without live
//! clusters when it outgrows what its live clusters can use (Loki prunes on a timer).

use std::collections::BTreeMap;

use ahash::AHashMap;

use super::tokenizer::{self, LogFormat, PARAM, Tokens};

/// Fewer tokens than this and a line is not mined (Loki's `TooFewTokens`).
const TOKENS_MIN: usize = 4;
/// More tokens than this and a line is not mined (Loki's `TooManyTokens`).
pub(crate) const TOKENS_MAX: usize = 80;
/// How long training pauses once evictions exceed the ratio (Loki's limiter block).
const PAUSE_NS: i64 = 10 * 60 * 1_000_000_000;

/// The settings of one tree, from [`super::PatternConfig`].
#[derive(Clone, Debug)]
pub(crate) struct DrainConfig {
    /// Tree depth in tokens below the token-count layer (Loki: `LogClusterDepth - 2`).
    pub max_node_depth: usize,
    pub similarity_threshold: f64,
    pub max_children: usize,
    pub max_clusters: usize,
    pub max_eviction_ratio: f64,
    pub max_line_length: usize,
    pub sample_interval_ms: i64,
}

/// Line counts per sample bucket (milliseconds since the epoch), sorted by bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Samples(Vec<(i64, u64)>);

impl Samples {
    fn one(bucket: i64) -> Samples {
        Samples(vec![(bucket, 1)])
    }

    /// Counts `n` lines in `bucket`; lines usually come in time order, so the last bucket is
    /// tried first.
    fn add(&mut self, bucket: i64, n: u64) {
        match self.0.last_mut() {
            Some(last) if last.0 == bucket => last.1 = last.1.saturating_add(n),
            Some(last) if last.0 > bucket => match self.0.binary_search_by_key(&bucket, |s| s.0) {
                Ok(i) => self.0[i].1 = self.0[i].1.saturating_add(n),
                Err(i) => self.0.insert(i, (bucket, n)),
            },
            _ => self.0.push((bucket, n)),
        }
    }

    fn merge(&mut self, other: Samples) {
        if other.0.is_empty() {
            return;
        }
        let mine = std::mem::take(&mut self.0);
        let mut merged = Vec::with_capacity(mine.len() + other.0.len());
        let (mut a, mut b) = (mine.into_iter().peekable(), other.0.into_iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x.0 == y.0 => {
                    let (x, y) = (a.next(), b.next());
                    x.zip(y).map(|(x, y)| (x.0, x.1.saturating_add(y.1)))
                }
                (Some(x), Some(y)) if x.0 < y.0 => a.next(),
                (Some(_), Some(_)) => b.next(),
                (Some(_), None) => a.next(),
                (None, Some(_)) => b.next(),
                (None, None) => break,
            };
            merged.extend(next);
        }
        self.0 = merged;
    }

    pub fn total(&self) -> u64 {
        self.0.iter().fold(0u64, |t, s| t.saturating_add(s.1))
    }

    /// Adds this cluster's counts in `[from_ms, through_ms)` to `out`, per `step_ms` bucket,
    /// as Loki's `Chunks.Iterator` and `Chunk.ForRange` read them: samples are cut into
    /// chunks of `chunk_age_ms` from each chunk's first sample; within a chunk, a step other
    /// than the sample interval sums samples per step bucket (aligned on the epoch) and adds
    /// zero-valued buckets across gaps.
    pub fn add_range(
        &self,
        range: &SampleRange,
        sample_interval_ms: i64,
        out: &mut BTreeMap<i64, u64>,
    ) {
        let mut chunk_start = 0;
        while chunk_start < self.0.len() {
            let first = self.0[chunk_start].0;
            let chunk_len = self.0[chunk_start..]
                .iter()
                .take_while(|s| s.0.saturating_sub(first) < range.chunk_age_ms)
                .count()
                .max(1);
            let chunk = &self.0[chunk_start..chunk_start + chunk_len];
            chunk_start += chunk_len;
            let in_range = chunk
                .iter()
                .filter(|s| s.0 >= range.from_ms && s.0 < range.through_ms);
            if range.step_ms == sample_interval_ms {
                for &(ts, n) in in_range {
                    let slot = out.entry(ts).or_insert(0);
                    *slot = slot.saturating_add(n);
                }
                continue;
            }
            let step = range.step_ms;
            let mut current: Option<i64> = None;
            for &(ts, n) in in_range {
                let bucket = truncate(ts, step);
                match current {
                    None => {
                        out.entry(bucket).or_insert(0);
                        current = Some(bucket);
                    }
                    Some(cur) if ts >= cur.saturating_add(step) => {
                        // The gap's buckets, with zero lines. A chunk spans at most
                        // `chunk_age_ms`, which bounds this loop.
                        let mut gap = cur.saturating_add(step);
                        while gap < bucket {
                            out.entry(gap).or_insert(0);
                            gap = gap.saturating_add(step);
                        }
                        current = Some(bucket);
                    }
                    Some(_) => {}
                }
                let slot = out.entry(current.unwrap_or(bucket)).or_insert(0);
                *slot = slot.saturating_add(n);
            }
        }
    }
}

/// What [`Samples::add_range`] reads: Loki's `from`, `through` and `step` in milliseconds,
/// and its chunk length.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SampleRange {
    pub from_ms: i64,
    pub through_ms: i64,
    pub step_ms: i64,
    pub chunk_age_ms: i64,
}

/// Go's `ts - ts%step` (truncation toward zero, as Loki's `TruncateTimestamp`).
pub(crate) fn truncate(ts: i64, step: i64) -> i64 {
    if step <= 0 { ts } else { ts - ts % step }
}

/// One cluster: its template tokens, the spacing of the line that created it, its counts.
#[derive(Clone, Debug)]
pub(crate) struct Cluster {
    pub tokens: Vec<Box<[u8]>>,
    pub spaces_after: Box<[i32]>,
    pub samples: Samples,
    /// When it was last used, for the least-recently-used eviction.
    last_used: u64,
}

#[derive(Debug, Default)]
struct Node {
    children: Vec<(Box<[u8]>, Node)>,
    cluster_ids: Vec<u64>,
}

impl Node {
    fn child_index(&self, key: &[u8]) -> Option<usize> {
        self.children.iter().position(|(k, _)| **k == *key)
    }

    fn child(&self, key: &[u8]) -> Option<&Node> {
        self.child_index(key).map(|i| &self.children[i].1)
    }

    fn push_child(&mut self, key: &[u8]) -> &mut Node {
        self.children.push((key.into(), Node::default()));
        let last = self.children.len() - 1;
        &mut self.children[last].1
    }
}

/// Loki's eviction limiter, on log time: once evictions exceed `max_ratio` of the lines let
/// through, no line is let through for ten minutes around the one that tripped it.
#[derive(Clone, Debug)]
struct Limiter {
    added: u64,
    evicted: u64,
    max_ratio: f64,
    paused_at: Option<i64>,
}

impl Limiter {
    fn allow(&mut self, ts_ns: i64) -> bool {
        if let Some(at) = self.paused_at {
            if ts_ns.saturating_sub(at).saturating_abs() < PAUSE_NS {
                return false;
            }
            self.added = 0;
            self.evicted = 0;
            self.paused_at = None;
        }
        if self.added == 0 {
            self.added = 1;
            return true;
        }
        if self.evicted as f64 / self.added as f64 > self.max_ratio {
            self.paused_at = Some(ts_ns);
            return false;
        }
        self.added += 1;
        true
    }
}

/// One Drain tree and its clusters, for one format and level.
#[derive(Debug)]
pub(crate) struct Drain {
    format: LogFormat,
    config: DrainConfig,
    /// The first layer: one subtree per token count.
    roots: Vec<Option<Node>>,
    clusters: AHashMap<u64, Cluster>,
    next_id: u64,
    tick: u64,
    limiter: Limiter,
    nodes: usize,
}

/// Marks a cluster used now; false when it was evicted.
fn touch(clusters: &mut AHashMap<u64, Cluster>, tick: &mut u64, id: u64) -> bool {
    match clusters.get_mut(&id) {
        Some(cluster) => {
            *tick += 1;
            cluster.last_used = *tick;
            true
        }
        None => false,
    }
}

/// Loki's `getSeqDistance`: the share of the cluster's tokens equal to the line's, and how
/// many of them are `<_>` (`-1`: a token starting with a NUL byte must match exactly and
/// does not).
fn seq_distance<T: AsRef<[u8]>>(cluster: &[Box<[u8]>], tokens: &[T]) -> (f64, i64) {
    if cluster.len() != tokens.len() || cluster.is_empty() {
        return (0.0, -1);
    }
    let (mut similar, mut params) = (0usize, 0i64);
    for (mine, theirs) in cluster.iter().zip(tokens) {
        let theirs = theirs.as_ref();
        if mine.first() == Some(&0) && **mine != *theirs {
            return (0.0, -1);
        }
        if **mine == *PARAM {
            params += 1;
        } else if **mine == *theirs {
            similar += 1;
        }
    }
    (similar as f64 / cluster.len() as f64, params)
}

fn has_numbers(token: &[u8]) -> bool {
    String::from_utf8_lossy(token)
        .chars()
        .any(tokenizer::is_number)
}

impl Drain {
    pub fn new(format: LogFormat, config: DrainConfig) -> Drain {
        let max_ratio = config.max_eviction_ratio;
        Drain {
            format,
            config,
            roots: (0..=TOKENS_MAX).map(|_| None).collect(),
            clusters: AHashMap::new(),
            next_id: 0,
            tick: 0,
            limiter: Limiter {
                added: 0,
                evicted: 0,
                max_ratio,
                paused_at: None,
            },
            nodes: 0,
        }
    }

    pub fn clusters(&self) -> impl Iterator<Item = &Cluster> {
        self.clusters.values()
    }

    /// Takes the clusters out, oldest first by id (for a merge).
    pub fn into_clusters(self) -> Vec<Cluster> {
        let mut clusters: Vec<(u64, Cluster)> = self.clusters.into_iter().collect();
        clusters.sort_by_key(|(id, _)| *id);
        clusters.into_iter().map(|(_, c)| c).collect()
    }

    fn bucket(&self, ts_ns: i64) -> i64 {
        truncate(ts_ns / 1_000_000, self.config.sample_interval_ms)
    }

    /// Mines one line (Loki's `Train`).
    pub fn train(&mut self, line: &str, ts_ns: i64) {
        if !self.limiter.allow(ts_ns) {
            return;
        }
        let mut tokens = Tokens::default();
        if !tokenizer::tokenize(self.format, line, self.config.max_line_length, &mut tokens) {
            return;
        }
        let count = tokens.tokens.len();
        if !(TOKENS_MIN..=TOKENS_MAX).contains(&count) {
            return;
        }
        let bucket = self.bucket(ts_ns);
        match self.tree_search(&tokens.tokens) {
            Some(id) => {
                if let Some(cluster) = self.extend(id, &tokens.tokens) {
                    cluster.samples.add(bucket, 1);
                }
            }
            None => {
                let cluster_tokens = tokens.tokens.iter().map(|t| Box::from(&**t)).collect();
                self.create(
                    cluster_tokens,
                    tokens.spaces_after.into_boxed_slice(),
                    Samples::one(bucket),
                );
            }
        }
    }

    /// Adds a cluster of another tree of the same format as if its lines were mined here:
    /// into the most similar cluster (its differing tokens becoming `<_>`), or as a new one.
    pub fn absorb(&mut self, cluster: Cluster) {
        if !(1..=TOKENS_MAX).contains(&cluster.tokens.len()) {
            return;
        }
        match self.tree_search(&cluster.tokens) {
            Some(id) => {
                if let Some(target) = self.extend(id, &cluster.tokens) {
                    target.samples.merge(cluster.samples);
                }
            }
            None => self.create(cluster.tokens, cluster.spaces_after, cluster.samples),
        }
    }

    /// The line matched cluster `id`: its differing tokens become `<_>`; the caller counts
    /// the line.
    fn extend<T: AsRef<[u8]>>(&mut self, id: u64, tokens: &[T]) -> Option<&mut Cluster> {
        touch(&mut self.clusters, &mut self.tick, id);
        let cluster = self.clusters.get_mut(&id)?;
        for (mine, theirs) in cluster.tokens.iter_mut().zip(tokens) {
            if **mine != *theirs.as_ref() {
                *mine = PARAM.into();
            }
        }
        Some(cluster)
    }

    fn create(&mut self, tokens: Vec<Box<[u8]>>, spaces_after: Box<[i32]>, samples: Samples) {
        self.next_id += 1;
        let id = self.next_id;
        if self.clusters.len() >= self.config.max_clusters.max(1) {
            self.evict_least_recently_used();
        }
        // The new cluster is used now, before the tree walk below touches its neighbours
        // (Loki adds it to its cache first).
        self.tick += 1;
        let cluster = Cluster {
            tokens,
            spaces_after,
            samples,
            last_used: self.tick,
        };
        self.add_to_tree(&cluster.tokens, id);
        self.clusters.insert(id, cluster);
        if self.nodes > self.prune_threshold() {
            self.prune();
        }
    }

    fn evict_least_recently_used(&mut self) {
        let oldest = self
            .clusters
            .iter()
            .min_by_key(|(_, c)| c.last_used)
            .map(|(id, _)| *id);
        if let Some(id) = oldest {
            self.clusters.remove(&id);
            self.limiter.evicted += 1;
        }
    }

    /// Loki's `treeSearch` and `fastMatch`: the best cluster at the line's leaf, if similar
    /// enough. Every candidate counts as used, as in Loki's cache.
    fn tree_search<T: AsRef<[u8]>>(&mut self, tokens: &[T]) -> Option<u64> {
        let count = tokens.len();
        let mut node = self.roots.get(count)?.as_ref()?;
        for (depth, token) in (1..).zip(tokens) {
            if depth >= self.config.max_node_depth || depth == count {
                break;
            }
            node = node.child(token.as_ref()).or_else(|| node.child(PARAM))?;
        }
        let (mut best, mut best_similarity, mut best_params) = (None, -1.0, -1);
        for &id in &node.cluster_ids {
            if !touch(&mut self.clusters, &mut self.tick, id) {
                continue;
            }
            let Some(cluster) = self.clusters.get(&id) else {
                continue;
            };
            let (similarity, params) = seq_distance(&cluster.tokens, tokens);
            if params < 0 {
                continue;
            }
            if similarity > best_similarity
                || (similarity == best_similarity && params > best_params)
            {
                best = Some(id);
                best_similarity = similarity;
                best_params = params;
            }
        }
        if best_similarity >= self.config.similarity_threshold {
            best
        } else {
            None
        }
    }

    /// Loki's `addSeqToPrefixTree`.
    fn add_to_tree(&mut self, tokens: &[Box<[u8]>], id: u64) {
        let count = tokens.len();
        let Some(slot) = self.roots.get_mut(count) else {
            return;
        };
        if slot.is_none() {
            self.nodes += 1;
        }
        let mut node = slot.get_or_insert_with(Node::default);
        let max_depth = self.config.max_node_depth;
        let max_children = self.config.max_children;
        for (depth, token) in (1..).zip(tokens) {
            if depth >= max_depth || depth >= count {
                let clusters = &mut self.clusters;
                let tick = &mut self.tick;
                node.cluster_ids.retain(|&old| touch(clusters, tick, old));
                node.cluster_ids.push(id);
                return;
            }
            if let Some(i) = node.child_index(token) {
                node = &mut node.children[i].1;
            } else {
                let param = node.child_index(PARAM);
                let children = node.children.len();
                let next: Option<&[u8]> = if !has_numbers(token) {
                    match param {
                        Some(_) if children < max_children => Some(&token[..]),
                        Some(_) => None,
                        None if children + 1 < max_children => Some(&token[..]),
                        None if children + 1 == max_children => Some(PARAM),
                        // Loki follows a missing node here; it cannot happen, as a node
                        // without a `<_>` child stops growing one short of the limit.
                        None => return,
                    }
                } else if param.is_none() {
                    Some(PARAM)
                } else {
                    None
                };
                node = match (next, param) {
                    (Some(key), _) => {
                        self.nodes += 1;
                        node.push_child(key)
                    }
                    (None, Some(i)) => &mut node.children[i].1,
                    (None, None) => return,
                };
            }
        }
        // Only an empty line ends the loop without reaching a leaf.
        node.cluster_ids.push(id);
    }

    /// Live clusters use at most one path each; prune when the tree holds four times that.
    fn prune_threshold(&self) -> usize {
        4 * self.config.max_clusters.max(1) * self.config.max_node_depth.max(1)
    }

    /// Loki's `Prune`: drops branches that lead to no live cluster, and forgets evicted ids.
    fn prune(&mut self) {
        fn prune_node(node: &mut Node, clusters: &AHashMap<u64, Cluster>) -> (usize, usize) {
            let mut nodes = 0;
            node.children.retain_mut(|(_, child)| {
                let (live, child_nodes) = prune_node(child, clusters);
                nodes += child_nodes;
                live > 0
            });
            node.cluster_ids.retain(|id| clusters.contains_key(id));
            (node.children.len() + node.cluster_ids.len(), nodes + 1)
        }
        let mut nodes = 0;
        for slot in &mut self.roots {
            if let Some(root) = slot {
                let (live, root_nodes) = prune_node(root, &self.clusters);
                if live == 0 {
                    *slot = None;
                } else {
                    nodes += root_nodes;
                }
            }
        }
        self.nodes = nodes;
    }

    /// The pattern of a cluster, printed by this tree's tokenizer.
    pub fn pattern(&self, cluster: &Cluster) -> String {
        tokenizer::join(self.format, &cluster.tokens, &cluster.spaces_after)
    }

    #[cfg(test)]
    pub fn node_count(&self) -> usize {
        self.nodes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> DrainConfig {
        DrainConfig {
            max_node_depth: 28,
            similarity_threshold: 0.3,
            max_children: 15,
            max_clusters: 300,
            max_eviction_ratio: 0.25,
            max_line_length: 3000,
            sample_interval_ms: 10_000,
        }
    }

    fn patterns(drain: &Drain) -> Vec<String> {
        let mut out: Vec<String> = drain.clusters().map(|c| drain.pattern(c)).collect();
        out.sort();
        out
    }

    #[test]
    fn similar_lines_share_a_cluster() {
        let mut drain = Drain::new(LogFormat::Unknown, config());
        for line in [
            "server request took 123 ms to complete",
            "server request took 456 ms to complete",
            "server request took 789 ms to complete",
        ] {
            drain.train(line, 0);
        }
        assert_eq!(patterns(&drain), ["server request took <_> ms to complete"]);
        let cluster = drain.clusters().next().unwrap();
        assert_eq!(cluster.samples.total(), 3);
    }

    #[test]
    fn short_and_long_lines_are_not_mined() {
        let mut drain = Drain::new(LogFormat::Unknown, config());
        drain.train("a b c", 0);
        drain.train(&"w ".repeat(100), 0);
        assert!(patterns(&drain).is_empty());
    }

    #[test]
    fn clusters_are_bounded_and_evictions_pause_training() {
        let mut cfg = config();
        cfg.max_clusters = 5;
        let mut drain = Drain::new(LogFormat::Unknown, cfg);
        for i in 0..1000 {
            // Every line its own cluster: nothing in common with the others.
            let line = format!("w{i} x{i} y{i} z{i}");
            drain.train(&line, i64::from(i));
        }
        assert!(drain.clusters.len() <= 5);
        // Training paused once evictions passed a quarter of the lines.
        assert!(drain.limiter.paused_at.is_some());
        // Ten minutes of log time later it resumes.
        drain.train("fresh line with words", PAUSE_NS + 1000);
        assert!(patterns(&drain).contains(&"fresh line with words".to_string()));
    }

    #[test]
    fn the_tree_is_pruned_when_it_outgrows_the_live_clusters() {
        let mut cfg = config();
        cfg.max_clusters = 2;
        cfg.max_eviction_ratio = 1e9;
        let mut drain = Drain::new(LogFormat::Unknown, cfg);
        // Words without digits grow new branches instead of sharing the `<_>` one.
        let word = |mut i: usize| {
            let mut w = String::new();
            loop {
                w.push(char::from(b'a' + (i % 26) as u8));
                i /= 26;
                if i == 0 {
                    return w;
                }
            }
        };
        for i in 0..5000 {
            let line = format!(
                "{} {} {} {} {}",
                word(i),
                word(i + 7),
                word(i * 3),
                word(i * 5),
                word(i * 11)
            );
            drain.train(&line, 0);
        }
        assert!(drain.node_count() <= drain.prune_threshold());
    }

    #[test]
    fn samples_bucket_by_step_with_zero_filled_gaps() {
        let mut samples = Samples::default();
        for (ts, n) in [(0, 1), (10_000, 2), (60_000, 1), (20_000, 1)] {
            samples.add(ts, n);
        }
        assert_eq!(samples.0, [(0, 1), (10_000, 2), (20_000, 1), (60_000, 1)]);
        let range = SampleRange {
            from_ms: 0,
            through_ms: 1_000_000,
            step_ms: 20_000,
            chunk_age_ms: 3_600_000,
        };
        let mut out = BTreeMap::new();
        samples.add_range(&range, 10_000, &mut out);
        let got: Vec<_> = out.into_iter().collect();
        assert_eq!(got, [(0, 3), (20_000, 1), (40_000, 0), (60_000, 1)]);
        let range = SampleRange {
            from_ms: 10_000,
            through_ms: 60_000,
            step_ms: 10_000,
            ..range
        };
        let mut out = BTreeMap::new();
        samples.add_range(&range, 10_000, &mut out);
        let got: Vec<_> = out.into_iter().collect();
        assert_eq!(got, [(10_000, 2), (20_000, 1)]);
    }

    #[test]
    fn samples_merge_by_bucket() {
        let mut a = Samples(vec![(0, 1), (20, 2)]);
        a.merge(Samples(vec![(10, 5), (20, 1), (30, 1)]));
        assert_eq!(a.0, [(0, 1), (10, 5), (20, 3), (30, 1)]);
        assert_eq!(a.total(), 10);
    }
}
