//! The labels builder: the labels of one line as the stages change them (Loki's
//! `LabelsBuilder`, pkg/logql/log/labels.go).
//!
//! Which question it answers: "what are this line's labels now, and where did each come
//! from?" A builder starts from a stream's labels (category [`LabelCategory::Stream`]); per
//! line, [`LabelsBuilder::reset`] adds that line's structured metadata and the stages add
//! parsed labels, delete labels and set the error. The rules are Loki's: a parsed label hides
//! a structured-metadata or stream label of the same name, structured metadata hides a stream
//! label, a metadata key that collides with a stream label becomes `<key>_extracted`, and
//! `__error__`/`__error_details__` are kept apart from the other labels and appended last.
//!
//! Cheap on the common path: the strings of a line's labels are kept and overwritten on the
//! next line instead of being freed and allocated again, and [`LabelsBuilder::labels_hash`]
//! answers "which output series?" without building a [`Labels`], so a caller builds one per
//! distinct hash, not one per line.

use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::model::Labels;

/// The label a failing stage sets: `JSONParserErr`, `LogfmtParserErr`, `LabelFilterErr`...
pub const ERROR_LABEL: &str = "__error__";
/// The label that says why a stage failed.
pub const ERROR_DETAILS_LABEL: &str = "__error_details__";
/// Loki's marker that a metric query asked to keep errors; `keep` never removes it.
pub const PRESERVE_ERROR_LABEL: &str = "__preserve_error__";
/// What a parsed or metadata label is renamed to when a stream label has its name.
pub(crate) const DUPLICATE_SUFFIX: &str = "_extracted";

/// The seed of [`LabelsBuilder::labels_hash`]; any value works, it only has to stay fixed
/// while a query runs (the hash is never stored).
const LABELS_HASH_SEED: u64 = 0x4c42_4c53_4841_5348; // "LBLSHASH"

/// Where a label comes from. Ordered as Loki orders them: a later category wins a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LabelCategory {
    Stream = 0,
    StructuredMetadata = 1,
    Parsed = 2,
}

const CATEGORIES: [LabelCategory; 3] = [
    LabelCategory::Stream,
    LabelCategory::StructuredMetadata,
    LabelCategory::Parsed,
];

/// A line's labels split by origin, for Loki's `categorize-labels` response encoding: the
/// stream's own labels, the entry's structured metadata, and what the stages parsed (the
/// error labels count as parsed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CategorizedLabels {
    pub stream: Labels,
    pub structured_metadata: Labels,
    pub parsed: Labels,
}

/// Above this many pairs, [`Pairs`] keeps a hash index: a line may hold thousands of keys,
/// and a linear search per key would make its cost quadratic.
const PAIRS_INDEXED_FROM: usize = 32;

/// Name/value pairs whose strings outlive [`Pairs::clear`]: the next line overwrites them in
/// place, so a stream's lines share a handful of allocations. Unordered (a removal moves the
/// last pair into the gap): nothing reads a category in order, output is sorted.
#[derive(Clone, Debug, Default)]
pub(crate) struct Pairs {
    slots: Vec<(String, String)>,
    len: usize,
    /// Name to slot, once there are more than [`PAIRS_INDEXED_FROM`] pairs.
    index: Option<ahash::AHashMap<String, usize>>,
}

impl Pairs {
    pub fn clear(&mut self) {
        self.len = 0;
        self.index = None;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.slots[..self.len]
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    fn position(&self, name: &str) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(name).copied(),
            None => self.slots[..self.len].iter().position(|(k, _)| k == name),
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.position(name).map(|i| self.slots[i].1.as_str())
    }

    /// Appends a pair (the caller knows `name` is absent), reusing the strings of a slot a
    /// previous line left behind.
    pub fn push(&mut self, name: &str, value: &str) {
        if let Some((k, v)) = self.slots.get_mut(self.len) {
            k.clear();
            k.push_str(name);
            v.clear();
            v.push_str(value);
        } else {
            self.slots.push((name.to_owned(), value.to_owned()));
        }
        self.len += 1;
        match &mut self.index {
            Some(index) => {
                index.insert(name.to_owned(), self.len - 1);
            }
            None if self.len > PAIRS_INDEXED_FROM => {
                let index = self.slots[..self.len]
                    .iter()
                    .enumerate()
                    .map(|(i, (k, _))| (k.clone(), i))
                    .collect();
                self.index = Some(index);
            }
            None => {}
        }
    }

    /// Sets the value of `name`, appending it if absent; whether it was appended.
    fn set(&mut self, name: &str, value: &str) -> bool {
        match self.position(name) {
            Some(i) => {
                let v = &mut self.slots[i].1;
                v.clear();
                v.push_str(value);
                false
            }
            None => {
                self.push(name, value);
                true
            }
        }
    }

    /// Removes `name`; its strings stay as a spare slot.
    fn remove(&mut self, name: &str) {
        let Some(i) = self.position(name) else {
            return;
        };
        let last = self.len - 1;
        self.slots.swap(i, last);
        self.len = last;
        if let Some(index) = &mut self.index {
            index.remove(name);
            if i != last {
                index.insert(self.slots[i].0.clone(), i);
            }
        }
    }
}

/// Buffers the stages reuse from line to line. A stage takes one out with `std::mem::take`
/// while it also needs the builder, and puts it back.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    /// A label name being built (sanitised, suffixed).
    pub key: String,
    /// A label value being built (unescaped).
    pub value: String,
    /// Bytes being unescaped.
    pub bytes: Vec<u8>,
    /// `json`: the keys of the enclosing objects, back to back, and where each ends.
    pub prefix: Vec<u8>,
    pub prefix_ends: Vec<usize>,
    /// Labels collected before they may be set (`unpack`), or names to delete (`keep`).
    pub pending: Pairs,
}

/// The labels of the current line of one stream. One per stream being scanned; reset per
/// line with that line's structured metadata.
#[derive(Debug)]
pub struct LabelsBuilder {
    /// The stream's labels, sorted (Loki's `base`).
    base: Labels,
    /// [`LabelsBuilder::labels_hash`] of `base` alone.
    base_hash: u64,
    /// One bit per base label name ([`name_bit`]): most names a parser extracts are not
    /// stream labels, and this says so without a search.
    base_names: u64,
    /// Names deleted on this line.
    del: Pairs,
    /// Labels set on this line, per category.
    add: [Pairs; 3],
    err: String,
    err_details: String,
    /// Names set as parsed labels on this line, deleted or not: a later parser stage skips
    /// them, so the first parser to extract a name wins (Loki's `ParserHint.Extracted`).
    extracted: Pairs,
    pub(crate) scratch: Scratch,
}

impl LabelsBuilder {
    /// A builder for the lines of a stream with these labels.
    pub fn new(stream: &Labels) -> LabelsBuilder {
        let base_hash = hash_pairs(stream.pairs().iter().map(|(k, v)| (k.as_str(), v.as_str())));
        LabelsBuilder {
            base: stream.clone(),
            base_hash,
            base_names: stream
                .pairs()
                .iter()
                .fold(0, |bits, (k, _)| bits | name_bit(k)),
            del: Pairs::default(),
            add: Default::default(),
            err: String::new(),
            err_details: String::new(),
            extracted: Pairs::default(),
            scratch: Scratch::default(),
        }
    }

    /// The stream's labels, as given to [`LabelsBuilder::new`].
    pub fn stream(&self) -> &Labels {
        &self.base
    }

    /// [`LabelsBuilder::labels_hash`] of a line that changes nothing: the stream's labels.
    pub fn stream_hash(&self) -> u64 {
        self.base_hash
    }

    /// Starts a new line: forgets what the previous line's stages did and adds this line's
    /// structured metadata. A metadata key that is also a stream label becomes
    /// `<key>_extracted`; `__error__` and `__error_details__` set the error instead.
    pub fn reset<'m>(&mut self, metadata: impl IntoIterator<Item = (&'m str, &'m str)>) {
        self.del.clear();
        for pairs in &mut self.add {
            pairs.clear();
        }
        self.err.clear();
        self.err_details.clear();
        self.extracted.clear();
        for (name, value) in metadata {
            if self.base_has(name) {
                let mut key = std::mem::take(&mut self.scratch.key);
                key.clear();
                key.push_str(name);
                key.push_str(DUPLICATE_SUFFIX);
                self.add_metadata(&key, value);
                self.scratch.key = key;
            } else {
                self.add_metadata(name, value);
            }
        }
    }

    fn add_metadata(&mut self, name: &str, value: &str) {
        match name {
            ERROR_LABEL => self.set_error(value),
            ERROR_DETAILS_LABEL => self.set_error_details(value),
            _ => self.set(LabelCategory::StructuredMetadata, name, value),
        }
    }

    /// The current value of a label: set on this line (any category), else the stream's
    /// unless deleted. A label set to the empty string is present with that value. The error
    /// labels are not found here (see [`LabelsBuilder::error`]), as in Loki.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_with_category(name).map(|(v, _)| v)
    }

    /// [`LabelsBuilder::get`] and where the value comes from.
    pub fn get_with_category(&self, name: &str) -> Option<(&str, LabelCategory)> {
        for category in CATEGORIES {
            if let Some(v) = self.add[category as usize].get(name) {
                return Some((v, category));
            }
        }
        if self.del.contains(name) {
            return None;
        }
        self.base
            .get(name)
            .filter(|v| !v.is_empty())
            .map(|v| (v, LabelCategory::Stream))
    }

    /// Whether the stream itself has this label (deleted or not): parsers rename a key that
    /// collides with one to `<key>_extracted`.
    pub fn base_has(&self, name: &str) -> bool {
        self.base_names & name_bit(name) != 0 && self.base.get(name).is_some()
    }

    /// Whether this line set `name` in `category`.
    pub fn has_in_category(&self, name: &str, category: LabelCategory) -> bool {
        self.add[category as usize].contains(name)
    }

    /// Whether a parser stage already set `name` on this line; later parsers skip it.
    pub fn extracted(&self, name: &str) -> bool {
        self.extracted.contains(name)
    }

    /// The name a parser gives an extracted key: `<key>_extracted` when the stream or the
    /// line's structured metadata has the key, else the key.
    pub(crate) fn parsed_name<'k>(&self, key: &'k str, suffixed: &'k str) -> &'k str {
        if self.base_has(key) || self.has_in_category(key, LabelCategory::StructuredMetadata) {
            suffixed
        } else {
            key
        }
    }

    /// Sets a label. A parsed label replaces a metadata or stream label of that name;
    /// metadata replaces a stream label but not a parsed one; a stream label replaces
    /// neither.
    pub fn set(&mut self, category: LabelCategory, name: &str, value: &str) {
        let [stream, metadata, parsed] = &mut self.add;
        match category {
            LabelCategory::Parsed => {
                metadata.remove(name);
                stream.remove(name);
            }
            LabelCategory::StructuredMetadata => {
                stream.remove(name);
                if parsed.contains(name) {
                    return;
                }
            }
            LabelCategory::Stream => {
                if metadata.contains(name) || parsed.contains(name) {
                    return;
                }
            }
        }
        let added = self.add[category as usize].set(name, value);
        if added && category == LabelCategory::Parsed && !self.extracted.contains(name) {
            self.extracted.push(name, "");
        }
    }

    /// Sets a parsed label unless a parser already extracted `name` on this line (then it
    /// returns false and changes nothing): the parsers' "first one wins" in one search.
    pub(crate) fn extract(&mut self, name: &str, value: &str) -> bool {
        if self.extracted.contains(name) {
            return false;
        }
        // Every parsed label was recorded as extracted, so `name` is not parsed yet.
        let [stream, metadata, parsed] = &mut self.add;
        metadata.remove(name);
        stream.remove(name);
        parsed.push(name, value);
        self.extracted.push(name, "");
        true
    }

    /// Deletes a label from every category and from the stream's labels for this line.
    pub fn del(&mut self, name: &str) {
        for pairs in &mut self.add {
            pairs.remove(name);
        }
        if !self.del.contains(name) {
            self.del.push(name, "");
        }
    }

    /// The `__error__` value, empty when there is none.
    pub fn error(&self) -> &str {
        &self.err
    }

    /// The `__error_details__` value, empty when there is none.
    pub fn error_details(&self) -> &str {
        &self.err_details
    }

    pub fn has_error(&self) -> bool {
        !self.err.is_empty()
    }

    pub fn set_error(&mut self, err: &str) {
        self.err.clear();
        self.err.push_str(err);
    }

    pub fn set_error_details(&mut self, details: &str) {
        self.err_details.clear();
        self.err_details.push_str(details);
    }

    pub fn reset_error(&mut self) {
        self.err.clear();
    }

    pub fn reset_error_details(&mut self) {
        self.err_details.clear();
    }

    /// Whether this line's labels are exactly the stream's: nothing set, deleted or failed.
    pub fn is_unchanged(&self) -> bool {
        self.del.is_empty()
            && self.add.iter().all(Pairs::is_empty)
            && self.err.is_empty()
            && self.err_details.is_empty()
    }

    /// Calls `f` with every current label, unsorted, as Loki's `UnsortedLabels` lists them:
    /// the stream's (minus deleted and overridden), then structured metadata, then parsed
    /// labels, then `__error__` and `__error_details__` when set. Values may be empty. This is
    /// the view templates iterate (`.` in `line_format`).
    pub fn for_each(&self, mut f: impl FnMut(&str, &str)) {
        let [stream, metadata, parsed] = &self.add;
        if self.del.is_empty() && stream.is_empty() && metadata.is_empty() && parsed.is_empty() {
            for (k, v) in self.base.pairs() {
                f(k, v);
            }
        } else {
            for (k, v) in self.base.pairs() {
                if self.del.contains(k) || metadata.contains(k) || parsed.contains(k) {
                    continue;
                }
                f(k, stream.get(k).unwrap_or(v));
            }
            for (k, v) in metadata.iter() {
                if !parsed.contains(k) {
                    f(k, v);
                }
            }
            for (k, v) in parsed.iter() {
                f(k, v);
            }
        }
        if !self.err.is_empty() {
            f(ERROR_LABEL, &self.err);
        }
        if !self.err_details.is_empty() {
            f(ERROR_DETAILS_LABEL, &self.err_details);
        }
    }

    /// The line's labels, sorted: everything [`LabelsBuilder::for_each`] lists, empty values
    /// included. Loki's `LabelsResult` keeps a label a stage set to the empty string
    /// (`| json` of `"user": ""`), so `{user=""}` is a series of its own, apart from `{}`;
    /// the stream's own labels are never empty.
    pub fn labels(&self) -> Labels {
        if self.is_unchanged() {
            return self.base.clone();
        }
        let mut pairs = Vec::with_capacity(
            self.base.len() + self.add.iter().map(Pairs::len).sum::<usize>() + 2,
        );
        self.for_each(|k, v| pairs.push((k.to_owned(), v.to_owned())));
        Labels::from_pairs_keeping_empty(pairs)
    }

    /// The line's labels split into stream, structured metadata and parsed, as Loki's
    /// `LabelsResult` splits them: error labels and parsed names are parsed, names this line
    /// set as metadata are metadata, the rest are the stream's.
    pub fn categorized(&self) -> CategorizedLabels {
        let (mut stream, mut metadata, mut parsed) = (Vec::new(), Vec::new(), Vec::new());
        self.for_each(|k, v| {
            let pair = (k.to_owned(), v.to_owned());
            if k == ERROR_LABEL
                || k == ERROR_DETAILS_LABEL
                || self.has_in_category(k, LabelCategory::Parsed)
            {
                parsed.push(pair);
            } else if self.has_in_category(k, LabelCategory::StructuredMetadata) {
                metadata.push(pair);
            } else {
                stream.push(pair);
            }
        });
        CategorizedLabels {
            stream: Labels::from_pairs_keeping_empty(stream),
            structured_metadata: Labels::from_pairs_keeping_empty(metadata),
            parsed: Labels::from_pairs_keeping_empty(parsed),
        }
    }

    /// A hash of [`LabelsBuilder::labels`] without building it: equal label sets hash equal
    /// whatever the order stages set them in, so a caller can keep one output series per
    /// hash. Stable for the life of the process (fixed seed).
    pub fn labels_hash(&self) -> u64 {
        if self.is_unchanged() {
            return self.base_hash;
        }
        let mut sum = 0u64;
        let mut count = 0u64;
        self.for_each(|k, v| {
            sum = sum.wrapping_add(pair_hash(k, v));
            count += 1;
        });
        finish_hash(sum, count)
    }
}

/// A bit that depends on a name's length and its first and last bytes.
fn name_bit(name: &str) -> u64 {
    let b = name.as_bytes();
    let mix = b
        .len()
        .wrapping_mul(31)
        .wrapping_add(usize::from(b.first().copied().unwrap_or(0)) * 7)
        .wrapping_add(usize::from(b.last().copied().unwrap_or(0)));
    1 << (mix % 64)
}

/// The hash of one label: the value hashed with the name's hash as seed, so that `a`+`bc`
/// and `ab`+`c` differ.
fn pair_hash(name: &str, value: &str) -> u64 {
    xxh3_64_with_seed(
        value.as_bytes(),
        xxh3_64_with_seed(name.as_bytes(), LABELS_HASH_SEED),
    )
}

/// Mixes the order-independent sum of the pair hashes with their count.
fn finish_hash(sum: u64, count: u64) -> u64 {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&sum.to_le_bytes());
    bytes[8..].copy_from_slice(&count.to_le_bytes());
    xxh3_64_with_seed(&bytes, LABELS_HASH_SEED)
}

fn hash_pairs<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> u64 {
    let (mut sum, mut count) = (0u64, 0u64);
    for (k, v) in pairs {
        sum = sum.wrapping_add(pair_hash(k, v));
        count += 1;
    }
    finish_hash(sum, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(b: &LabelsBuilder) -> Vec<(String, String)> {
        let mut out = Vec::new();
        b.for_each(|k, v| out.push((k.to_owned(), v.to_owned())));
        out.sort();
        out
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut v: Vec<_> = p
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn categories_take_precedence_as_in_loki() {
        let stream = Labels::from_pairs([("app", "foo"), ("env", "prod")]);
        let mut b = LabelsBuilder::new(&stream);
        b.reset([("trace", "t1"), ("app", "meta")]);
        // A metadata key that collides with a stream label is renamed.
        assert_eq!(b.get("app"), Some("foo"));
        assert_eq!(b.get("app_extracted"), Some("meta"));
        b.set(LabelCategory::Parsed, "env", "dev");
        assert_eq!(
            b.get_with_category("env"),
            Some(("dev", LabelCategory::Parsed))
        );
        b.set(LabelCategory::StructuredMetadata, "env", "ignored");
        assert_eq!(b.get("env"), Some("dev"));
        b.set(LabelCategory::Parsed, "trace", "t2");
        assert!(!b.has_in_category("trace", LabelCategory::StructuredMetadata));
        assert_eq!(
            all(&b),
            pairs(&[
                ("app", "foo"),
                ("app_extracted", "meta"),
                ("env", "dev"),
                ("trace", "t2")
            ])
        );
        let c = b.categorized();
        assert_eq!(c.stream.to_string(), r#"{app="foo"}"#);
        assert_eq!(
            c.structured_metadata.to_string(),
            r#"{app_extracted="meta"}"#
        );
        assert_eq!(c.parsed.to_string(), r#"{env="dev", trace="t2"}"#);
    }

    #[test]
    fn delete_error_and_reset() {
        let stream = Labels::from_pairs([("app", "foo"), ("env", "prod")]);
        let mut b = LabelsBuilder::new(&stream);
        b.reset([]);
        b.del("env");
        assert_eq!(b.get("env"), None);
        b.set(LabelCategory::Parsed, "env", "again");
        assert_eq!(b.get("env"), Some("again"));
        b.set_error("JSONParserErr");
        b.set_error_details("boom");
        assert_eq!(
            b.get(ERROR_LABEL),
            None,
            "the error is apart from the labels"
        );
        assert_eq!(
            b.labels().to_string(),
            r#"{__error__="JSONParserErr", __error_details__="boom", app="foo", env="again"}"#
        );
        assert!(b.extracted("env"));
        b.reset([(ERROR_LABEL, "FromMetadata")]);
        assert!(!b.extracted("env"));
        assert_eq!(b.error(), "FromMetadata");
        assert_eq!(b.get("env"), Some("prod"));
    }

    #[test]
    fn parsed_empty_values_stay_in_the_label_set() {
        let mut b = LabelsBuilder::new(&Labels::from_pairs([("app", "foo")]));
        b.reset(std::iter::empty());
        let plain = b.labels_hash();
        assert!(b.extract("user", ""));
        assert_eq!(b.labels().to_string(), r#"{app="foo", user=""}"#);
        assert_eq!(b.categorized().parsed.to_string(), r#"{user=""}"#);
        // `{user=""}` is another series than `{}`.
        assert_ne!(b.labels_hash(), plain);
        b.set(LabelCategory::Parsed, "user", "bob");
        let mut c = LabelsBuilder::new(&Labels::from_pairs([("app", "foo")]));
        c.reset(std::iter::empty());
        c.set(LabelCategory::Parsed, "user", "bob");
        assert_eq!(b.labels_hash(), c.labels_hash());
    }

    #[test]
    fn the_first_extraction_of_a_name_wins() {
        let mut b = LabelsBuilder::new(&Labels::from_pairs([("app", "foo")]));
        b.reset([("level", "meta")]);
        assert!(b.extract("level", "info"));
        assert!(!b.extract("level", "debug"));
        assert_eq!(
            b.get_with_category("level"),
            Some(("info", LabelCategory::Parsed))
        );
        b.del("level");
        assert!(
            !b.extract("level", "again"),
            "deleted, but extracted already"
        );
        assert_eq!(b.get("level"), None);
        assert!(!b.base_has("level") && b.base_has("app"));
    }

    #[test]
    fn hash_follows_the_label_set_not_the_order() {
        let stream = Labels::from_pairs([("app", "foo")]);
        let mut a = LabelsBuilder::new(&stream);
        let mut b = LabelsBuilder::new(&stream);
        a.reset([]);
        b.reset([]);
        assert_eq!(a.labels_hash(), b.labels_hash());
        a.set(LabelCategory::Parsed, "x", "1");
        a.set(LabelCategory::Parsed, "y", "2");
        b.set(LabelCategory::Parsed, "y", "2");
        b.set(LabelCategory::Parsed, "x", "1");
        assert_eq!(a.labels_hash(), b.labels_hash());
        b.set(LabelCategory::Parsed, "x", "3");
        assert_ne!(a.labels_hash(), b.labels_hash());
        // A label a stage set to the empty string is part of the answer, as in Loki: `{z=""}`
        // and no `z` are different series.
        b.set(LabelCategory::Parsed, "x", "1");
        assert_eq!(a.labels_hash(), b.labels_hash());
        b.set(LabelCategory::Parsed, "z", "");
        assert_ne!(a.labels_hash(), b.labels_hash());
        assert_ne!(a.labels(), b.labels());
        b.del("z");
        assert_eq!(a.labels_hash(), b.labels_hash());
        assert_eq!(a.labels(), b.labels());
        // Deleting what was added brings back the stream's own hash.
        a.del("x");
        a.del("y");
        let unchanged = LabelsBuilder::new(&stream);
        assert_eq!(a.labels_hash(), unchanged.labels_hash());
        let ab = LabelsBuilder::new(&Labels::from_pairs([("a", "bc")]));
        let abc = LabelsBuilder::new(&Labels::from_pairs([("ab", "c")]));
        assert_ne!(ab.labels_hash(), abc.labels_hash());
    }

    #[test]
    fn many_labels_stay_linear() {
        let mut b = LabelsBuilder::new(&Labels::from_pairs([("k8", "stream")]));
        b.reset([]);
        let names: Vec<String> = (0..20_000).map(|i| format!("k{i}")).collect();
        for name in &names {
            b.extract(name, "v");
        }
        for name in names.iter().step_by(2) {
            b.del(name);
        }
        assert_eq!(b.get("k8"), None, "deleted");
        assert_eq!(b.get("k1"), Some("v"));
        assert!(!b.extract("k2", "again"));
        let mut n = 0;
        b.for_each(|_, _| n += 1);
        assert_eq!(n, 10_000);
        b.reset([]);
        assert_eq!(b.get("k1"), None);
        assert_eq!(b.get("k8"), Some("stream"));
    }

    #[test]
    fn slots_are_reused_across_lines() {
        let mut b = LabelsBuilder::new(&Labels::default());
        for i in 0..3 {
            b.reset([]);
            b.set(LabelCategory::Parsed, "a", &i.to_string());
            b.set(LabelCategory::Parsed, "b", "x");
            b.del("a");
            assert_eq!(all(&b), pairs(&[("b", "x")]));
        }
        assert_eq!(b.add[LabelCategory::Parsed as usize].slots.len(), 2);
    }
}
