//! Which files are shipped and how far each has been read: glob expansion, file identity,
//! rotation, truncation, and reading whole lines into records.
//!
//! Files are polled (every `poll_interval`, 250 ms by default) rather than watched: polling
//! is the same on every file system, including NFS and overlay mounts where inotify is
//! silent, and it costs one `stat` and one `fstat` per file per poll.
//!
//! - A file is known by (device, inode). A glob match is attached to its path; the open
//!   descriptor is kept, so a file renamed or deleted under the agent can still be read.
//! - Rename and create (logrotate's default): the path now names another inode. The old file
//!   is detached and read to its end, before the new file's lines in every poll, then kept
//!   for [`DETACHED_GRACE`] in case its writer still appends before reopening, and finished.
//! - Copytruncate: the file is now shorter than what was read, or the bytes just before the
//!   read offset changed (it was truncated and refilled between two polls). Reading starts
//!   again at 0. Lines written between the copy and the truncation, and lines the agent had
//!   not read yet when the file was truncated, are in the copy only: that race belongs to
//!   copytruncate itself and is why rename and create is the safe choice.
//! - A known file found under another matching name (a glob like `app.log*` matches the
//!   rotated names) stays attached and is read as long as it is there, under its first name.
//! - A file that appears later is found at the next glob expansion and read from its start.
//! - A deleted file is read to its end through the open descriptor, then finished.
//! - A finished file's last bytes without a newline are shipped as a last line: nothing will
//!   complete them. A file still being written waits for its newline.
//!
//! Limitations: a path with a newline in it is not tracked (the positions file is one line
//! per file); a file whose inode is reused by a new file after a deletion while the agent was
//! down is taken for the old one if it is at least as long as the old position (the same as
//! Promtail).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::config::FilesConfig;
use super::positions::{FileId, Positions};
use super::records::{Assembler, Line, Record, split_lines};

/// How long a detached file stays open after the agent found it at its end: a writer may
/// append between the rename and its reopen, and those lines belong to the old file.
pub const DETACHED_GRACE: Duration = Duration::from_secs(1);
/// Bytes read from one file per poll at most (beyond `line_bytes_max`): one busy file cannot
/// starve the others, and the batch is cut in time.
const READ_BYTES_MAX: usize = 1024 * 1024;
/// Bytes before the read offset remembered to notice a truncated and refilled file.
const FINGERPRINT_BYTES: usize = 32;

/// What happened to a file's position, in file order with its records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A record ready to ship; the position may advance to its end once it is safe.
    Record { id: FileId, record: Record },
    /// The file was truncated: its position goes back to 0.
    Truncated { id: FileId },
    /// The file is finished and no glob matches it any more: its position is dropped.
    Forget { id: FileId, path: PathBuf },
}

/// One tracked file.
#[derive(Debug)]
pub struct Tailer {
    pub id: FileId,
    /// The path it was found under: its `filename` label, kept across renames so that the
    /// stream does not change when the file is rotated.
    pub path: PathBuf,
    /// Which `[[files]]` table matched it: its labels and multiline rules.
    pub group: usize,
    file: Option<File>,
    /// Bytes handed to the assembler (always at a line boundary).
    pub read_offset: u64,
    /// The size at the last poll.
    pub size: u64,
    /// Lines read since the last [`Files::read`] took the count.
    lines_new: u64,
    assembler: Assembler,
    state: State,
    fingerprint: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// A glob matches it at `path`.
    Attached,
    /// Its path is gone or names another file; read to the end, then finished.
    Detached { since: Instant },
    /// Read to its end and closed; remembered while a glob still matches it (under another
    /// name), so that it is not shipped again from the start.
    Finished,
}

/// Every tracked file of the agent.
pub struct Files {
    groups: Vec<FilesConfig>,
    line_bytes_max: usize,
    tailers: BTreeMap<FileId, Tailer>,
    /// The file each matched path names now.
    by_path: HashMap<PathBuf, FileId>,
    /// Lines read under each path (a rotated file and its successor share one).
    lines_read: BTreeMap<PathBuf, u64>,
    /// Where the round of attached files starts in the next [`Files::read`].
    first: usize,
    buffer: Vec<u8>,
}

impl Files {
    pub fn new(groups: Vec<FilesConfig>, line_bytes_max: usize) -> Files {
        Files {
            groups,
            line_bytes_max,
            tailers: BTreeMap::new(),
            by_path: HashMap::new(),
            lines_read: BTreeMap::new(),
            first: 0,
            buffer: Vec::new(),
        }
    }

    pub fn groups(&self) -> &[FilesConfig] {
        &self.groups
    }

    pub fn tailers(&self) -> impl Iterator<Item = &Tailer> {
        self.tailers.values()
    }

    pub fn get(&self, id: FileId) -> Option<&Tailer> {
        self.tailers.get(&id)
    }

    /// Lines read under each path since the start.
    pub fn lines_read(&self) -> &BTreeMap<PathBuf, u64> {
        &self.lines_read
    }

    /// First start: attaches every matching file at its saved position, and finds the files
    /// of saved positions that were renamed away from their glob while the agent was down
    /// (rotation during a crash), so that they are read to their end too. Positions whose
    /// file is gone are dropped from `positions`.
    pub fn resume(&mut self, positions: &mut Positions, now: Instant) {
        self.discover(positions, now, &mut Vec::new());
        let lost: Vec<FileId> = positions
            .files
            .keys()
            .filter(|id| !self.tailers.contains_key(id))
            .copied()
            .collect();
        for id in lost {
            let saved = positions.files[&id].clone();
            let found = find_by_inode(&saved.path, id);
            let group = self.group_of(&saved.path);
            match (found, group) {
                (Some((file, meta)), Some(group)) => {
                    eprintln!(
                        "shardlog agent: {} was renamed while the agent was down; reading the old file to its end",
                        saved.path.display()
                    );
                    let mut t = self.tailer(id, saved.path, group, file, &meta, saved.offset);
                    t.state = State::Detached { since: now };
                    self.tailers.insert(id, t);
                }
                _ => {
                    positions.files.remove(&id);
                }
            }
        }
    }

    /// Expands the globs again: attaches new files, detaches files whose path is gone or
    /// names another file now, forgets finished files no glob matches.
    pub fn discover(&mut self, positions: &Positions, now: Instant, events: &mut Vec<Event>) {
        let mut seen: HashMap<PathBuf, (usize, FileId)> = HashMap::new();
        for (group, g) in self.groups.iter().enumerate() {
            for pattern in &g.paths {
                let Ok(paths) = glob::glob(pattern) else {
                    continue;
                };
                for path in paths.flatten() {
                    if seen.contains_key(&path)
                        || path.to_string_lossy().contains('\n')
                        || excluded(g, &path)
                    {
                        continue;
                    }
                    if let Ok(meta) = std::fs::metadata(&path)
                        && meta.is_file()
                    {
                        seen.insert(path, (group, FileId::of(&meta)));
                    }
                }
            }
        }
        // Paths that are gone or name another file now: their files are detached.
        let moved: Vec<PathBuf> = self
            .by_path
            .iter()
            .filter(|(path, id)| seen.get(*path).is_none_or(|s| s.1 != **id))
            .map(|(path, _)| path.clone())
            .collect();
        for path in moved {
            let id = self.by_path.remove(&path).expect("listed above");
            if let Some(t) = self.tailers.get_mut(&id)
                && t.state == State::Attached
            {
                t.state = State::Detached { since: now };
            }
        }
        let matched: std::collections::HashSet<FileId> = seen.values().map(|s| s.1).collect();
        for (path, (group, id)) in seen {
            if let Some(t) = self.tailers.get_mut(&id) {
                // Known, perhaps renamed into another matching name (a glob like `app.log*`
                // matches the rotated names too) or moved back: a glob matches it, so it is
                // read as long as it is there, where it is, under its first name.
                if t.state != State::Finished {
                    t.state = State::Attached;
                    self.by_path.insert(path, id);
                }
                continue;
            }
            // Open, then fstat: the identity is the open file's, whatever the path names a
            // moment later; if it changed in between, the next expansion sees it.
            let Ok(file) = File::open(&path) else {
                continue;
            };
            let Ok(meta) = file.metadata() else {
                continue;
            };
            if FileId::of(&meta) != id {
                continue;
            }
            let offset = positions.files.get(&id).map_or(0, |p| p.offset);
            let t = self.tailer(id, path.clone(), group, file, &meta, offset);
            self.tailers.insert(id, t);
            self.by_path.insert(path, id);
        }
        // Finished files that no glob matches are forgotten, with their position.
        let gone: Vec<FileId> = self
            .tailers
            .values()
            .filter(|t| t.state == State::Finished && !matched.contains(&t.id))
            .map(|t| t.id)
            .collect();
        for id in gone {
            let t = self.tailers.remove(&id).expect("listed above");
            // The per-path line count goes with the last file shipped under that path, so
            // that a host that names files by date does not grow the metrics for ever.
            if !self.tailers.values().any(|o| o.path == t.path) {
                self.lines_read.remove(&t.path);
            }
            events.push(Event::Forget { id, path: t.path });
        }
    }

    fn tailer(
        &self,
        id: FileId,
        path: PathBuf,
        group: usize,
        file: File,
        meta: &std::fs::Metadata,
        offset: u64,
    ) -> Tailer {
        // A saved offset beyond the end: the file was truncated while the agent was down.
        let offset = if offset > meta.len() { 0 } else { offset };
        let mut t = Tailer {
            id,
            path,
            group,
            file: Some(file),
            read_offset: offset,
            size: meta.len(),
            lines_new: 0,
            assembler: Assembler::new(self.groups[group].multiline.clone(), self.line_bytes_max),
            state: State::Attached,
            fingerprint: Vec::new(),
        };
        t.fingerprint = t.read_fingerprint();
        t
    }

    fn group_of(&self, path: &Path) -> Option<usize> {
        self.groups.iter().position(|g| {
            g.paths
                .iter()
                .any(|p| glob::Pattern::new(p).is_ok_and(|p| p.matches_path(path)))
        })
    }

    /// Reads new lines, about `budget` bytes of them at most (at least one line, and whole
    /// lines only): detached files first, so that a rotated file's lines go before its
    /// successor's, then the attached ones from a starting point that moves at each call, so
    /// that one busy file cannot starve the others. Returns the bytes read.
    pub fn read(&mut self, now: Instant, budget: usize, events: &mut Vec<Event>) -> u64 {
        let mut order: Vec<FileId> = self
            .tailers
            .values()
            .filter(|t| matches!(t.state, State::Detached { .. }))
            .map(|t| t.id)
            .collect();
        let mut attached: Vec<FileId> = self
            .tailers
            .values()
            .filter(|t| t.state == State::Attached)
            .map(|t| t.id)
            .collect();
        if !attached.is_empty() {
            self.first = (self.first + 1) % attached.len();
            attached.rotate_left(self.first);
        }
        order.extend(attached);
        let mut total = 0u64;
        for id in order {
            let t = self.tailers.get_mut(&id).expect("listed above");
            let left = budget.saturating_sub(total as usize);
            total += t.read(now, left, self.line_bytes_max, &mut self.buffer, events);
            if t.lines_new > 0 {
                *self.lines_read.entry(t.path.clone()).or_default() += t.lines_new;
                t.lines_new = 0;
            }
        }
        total
    }
}

impl Tailer {
    /// Reads what is new, hands whole lines to the assembler, and passes on complete records
    /// (see the module doc for truncation and finishing).
    fn read(
        &mut self,
        now: Instant,
        budget: usize,
        line_bytes_max: usize,
        buffer: &mut Vec<u8>,
        events: &mut Vec<Event>,
    ) -> u64 {
        let Some(file) = &self.file else {
            return 0;
        };
        let Ok(meta) = file.metadata() else {
            return 0;
        };
        let size = meta.len();
        if size < self.read_offset || (size != self.size && self.fingerprint_changed()) {
            eprintln!(
                "shardlog agent: {} was truncated (copytruncate?); reading it again from the start",
                self.path.display()
            );
            self.read_offset = 0;
            self.fingerprint.clear();
            self.assembler.reset();
            events.push(Event::Truncated { id: self.id });
        }
        self.size = size;
        let mut read = 0u64;
        let mut records = Vec::new();
        while self.read_offset < size && (read as usize) < budget.min(READ_BYTES_MAX) {
            let want =
                ((size - self.read_offset) as usize).min(READ_BYTES_MAX.max(line_bytes_max + 1));
            buffer.resize(want, 0);
            let got = match file.read_at(buffer, self.read_offset) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let (lines, _) = split_lines(&buffer[..got], self.read_offset, line_bytes_max);
            if lines.is_empty() {
                break;
            }
            for line in lines {
                let used = line.end_offset - self.read_offset;
                self.read_offset = line.end_offset;
                read += used;
                self.lines_new += 1;
                self.assembler.push(line, now, &mut records);
                if read as usize >= budget {
                    break;
                }
            }
        }
        if read > 0 {
            self.fingerprint = self.read_fingerprint();
        }
        self.assembler.flush_expired(now, &mut records);
        // Finished only when a read found nothing more, not when it had no budget.
        if let State::Detached { since } = self.state
            && read == 0
            && budget > 0
            && now.saturating_duration_since(since) >= DETACHED_GRACE
        {
            self.finish(size, line_bytes_max, &mut records);
        }
        events.extend(records.into_iter().map(|record| Event::Record {
            id: self.id,
            record,
        }));
        read
    }

    /// Ships the unterminated last bytes and the record being assembled, closes the file.
    fn finish(&mut self, size: u64, line_bytes_max: usize, records: &mut Vec<Record>) {
        if let Some(file) = &self.file
            && size > self.read_offset
            && size - self.read_offset < line_bytes_max as u64
        {
            let mut rest = vec![0; (size - self.read_offset) as usize];
            if file.read_exact_at(&mut rest, self.read_offset).is_ok() {
                let text = rest.strip_suffix(b"\r").unwrap_or(&rest);
                self.lines_new += 1;
                self.assembler.push(
                    Line {
                        text: String::from_utf8_lossy(text).into_owned(),
                        end_offset: size,
                    },
                    Instant::now(),
                    records,
                );
                self.read_offset = size;
            }
        }
        self.assembler.flush(records);
        self.file = None;
        self.state = State::Finished;
    }

    fn read_fingerprint(&self) -> Vec<u8> {
        let Some(file) = &self.file else {
            return Vec::new();
        };
        let start = self.read_offset.saturating_sub(FINGERPRINT_BYTES as u64);
        let mut bytes = vec![0; (self.read_offset - start) as usize];
        match file.read_exact_at(&mut bytes, start) {
            Ok(()) => bytes,
            Err(_) => Vec::new(),
        }
    }

    fn fingerprint_changed(&self) -> bool {
        !self.fingerprint.is_empty() && self.read_fingerprint() != self.fingerprint
    }

    pub fn is_finished(&self) -> bool {
        self.state == State::Finished
    }
}

fn excluded(g: &FilesConfig, path: &Path) -> bool {
    g.exclude
        .iter()
        .any(|p| glob::Pattern::new(p).is_ok_and(|p| p.matches_path(path)))
}

/// Looks in `path`'s directory for the file `id` (renamed by a rotation).
fn find_by_inode(path: &Path, id: FileId) -> Option<(File, std::fs::Metadata)> {
    let dir = path.parent()?;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let candidate = entry.path();
        if let Ok(meta) = std::fs::metadata(&candidate)
            && meta.is_file()
            && FileId::of(&meta) == id
        {
            let file = File::open(&candidate).ok()?;
            let meta = file.metadata().ok()?;
            return (FileId::of(&meta) == id).then_some((file, meta));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Real lines of testdata/loghub/OpenSSH_2k.log (Loghub's; its README there has the
    /// licence).
    const LINES: [&str; 4] = [
        "Dec 10 06:55:46 LabSZ sshd[24200]: reverse mapping checking getaddrinfo for ns.marryaldkfaczcz.com [173.234.31.186] failed - POSSIBLE BREAK-IN ATTEMPT!",
        "Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186",
        "Dec 10 06:55:46 LabSZ sshd[24200]: input_userauth_request: invalid user webmaster [preauth]",
        "Dec 10 06:55:46 LabSZ sshd[24200]: pam_unix(sshd:auth): check pass; user unknown",
    ];

    fn files(dir: &Path) -> Files {
        Files::new(
            vec![FilesConfig {
                paths: vec![dir.join("*.log").display().to_string()],
                exclude: vec![],
                labels: vec![],
                multiline: None,
            }],
            1 << 20,
        )
    }

    fn append(path: &Path, lines: &[&str]) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        for l in lines {
            writeln!(f, "{l}").unwrap();
        }
    }

    fn texts(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Record { record, .. } => Some(record.text.clone()),
                _ => None,
            })
            .collect()
    }

    fn poll(f: &mut Files, now: Instant) -> Vec<Event> {
        let mut events = Vec::new();
        f.discover(&Positions::default(), now, &mut events);
        f.read(now, usize::MAX, &mut events);
        events
    }

    #[test]
    fn rename_and_create_reads_the_old_file_to_its_end_first() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        append(&log, &LINES[..1]);
        let mut f = files(dir.path());
        let t0 = Instant::now();
        assert_eq!(texts(&poll(&mut f, t0)), vec![LINES[0]]);
        // The writer adds a line, logrotate renames, the writer adds one more to the old file
        // before it reopens, and writes to the new one.
        append(&log, &LINES[1..2]);
        std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
        append(&dir.path().join("app.log.1"), &LINES[2..3]);
        append(&log, &LINES[3..4]);
        let events = poll(&mut f, t0);
        assert_eq!(texts(&events), vec![LINES[1], LINES[2], LINES[3]]);
        let events = poll(&mut f, t0 + DETACHED_GRACE);
        assert!(texts(&events).is_empty());
        // The old file is finished, then forgotten because no glob matches app.log.1.
        let events = poll(&mut f, t0 + DETACHED_GRACE * 2);
        assert!(
            matches!(events.as_slice(), [Event::Forget { .. }]),
            "{events:?}"
        );
        assert_eq!(f.tailers().count(), 1);
    }

    #[test]
    fn reading_stops_at_the_budget_on_a_line_boundary_and_takes_turns() {
        let dir = tempfile::tempdir().unwrap();
        append(&dir.path().join("a.log"), &LINES);
        append(&dir.path().join("b.log"), &LINES);
        let mut f = files(dir.path());
        let now = Instant::now();
        let mut events = Vec::new();
        f.discover(&Positions::default(), now, &mut events);
        // A budget smaller than a line still reads one whole line; each round starts with
        // the next file.
        let mut seen = Vec::new();
        for _ in 0..3 {
            let mut events = Vec::new();
            let read = f.read(now, 1, &mut events);
            let [Event::Record { id, record }] = events.as_slice() else {
                panic!("one record per round: {events:?}");
            };
            assert_eq!(read, record.text.len() as u64 + 1);
            seen.push((*id, record.text.clone()));
        }
        assert_ne!(seen[0].0, seen[1].0, "{seen:?}");
        assert_eq!(seen[0].0, seen[2].0, "{seen:?}");
        assert_eq!(
            [&seen[0].1, &seen[1].1, &seen[2].1],
            [LINES[0], LINES[0], LINES[1]]
        );
    }

    #[test]
    fn a_file_renamed_to_another_matching_name_is_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        append(&log, &LINES[..1]);
        let mut f = files(dir.path());
        let t0 = Instant::now();
        assert_eq!(texts(&poll(&mut f, t0)), vec![LINES[0]]);
        std::fs::rename(&log, dir.path().join("old.log")).unwrap();
        assert!(texts(&poll(&mut f, t0)).is_empty());
        // Long after the grace, lines appended under the new name are still shipped, once.
        let later = t0 + DETACHED_GRACE * 3;
        assert!(texts(&poll(&mut f, later)).is_empty());
        append(&dir.path().join("old.log"), &LINES[1..2]);
        let events = poll(&mut f, later);
        assert_eq!(texts(&events), vec![LINES[1]]);
        assert!(
            f.tailers().all(|t| t.path == log),
            "the first name stays the label"
        );
    }

    #[test]
    fn copytruncate_starts_again_at_zero() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        append(&log, &LINES[..3]);
        let mut f = files(dir.path());
        let now = Instant::now();
        assert_eq!(texts(&poll(&mut f, now)).len(), 3);
        std::fs::copy(&log, dir.path().join("app.log.1")).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&log)
            .unwrap()
            .set_len(0)
            .unwrap();
        append(&log, &LINES[3..4]);
        let events = poll(&mut f, now);
        assert!(matches!(events[0], Event::Truncated { .. }), "{events:?}");
        assert_eq!(texts(&events), vec![LINES[3]]);
    }

    #[test]
    fn truncated_and_refilled_past_the_offset_is_noticed() {
        // Between two polls the file is truncated and written beyond the old offset: the
        // size alone cannot tell, the bytes before the offset do.
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        append(&log, &LINES[1..2]);
        let mut f = files(dir.path());
        let now = Instant::now();
        assert_eq!(texts(&poll(&mut f, now)), vec![LINES[1]]);
        std::fs::write(&log, "").unwrap();
        append(&log, &[LINES[0], LINES[3]]);
        let events = poll(&mut f, now);
        assert!(matches!(events[0], Event::Truncated { .. }), "{events:?}");
        assert_eq!(texts(&events), vec![LINES[0], LINES[3]]);
    }

    #[test]
    fn files_appearing_later_and_deleted_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = files(dir.path());
        let t0 = Instant::now();
        assert!(poll(&mut f, t0).is_empty());
        let later = dir.path().join("later.log");
        append(&later, &LINES[..2]);
        assert_eq!(texts(&poll(&mut f, t0)), vec![LINES[0], LINES[1]]);
        // Deleted with a last line still unread and without its newline.
        let mut w = std::fs::OpenOptions::new()
            .append(true)
            .open(&later)
            .unwrap();
        write!(w, "{}", LINES[2]).unwrap();
        std::fs::remove_file(&later).unwrap();
        assert!(
            texts(&poll(&mut f, t0)).is_empty(),
            "an unterminated line waits"
        );
        let events = poll(&mut f, t0 + DETACHED_GRACE);
        assert_eq!(texts(&events), vec![LINES[2]]);
    }

    #[test]
    fn resume_starts_at_the_saved_offset_and_finds_renamed_files() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        append(&log, &LINES[..2]);
        let meta = std::fs::metadata(&log).unwrap();
        let mut positions = Positions::default();
        positions.files.insert(
            FileId::of(&meta),
            super::super::positions::Position {
                offset: LINES[0].len() as u64 + 1,
                path: log.clone(),
            },
        );
        // Rotated while the agent was down.
        std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
        append(&log, &LINES[2..3]);
        let mut f = files(dir.path());
        let now = Instant::now();
        f.resume(&mut positions, now);
        let mut events = Vec::new();
        f.read(now, usize::MAX, &mut events);
        assert_eq!(texts(&events), vec![LINES[1], LINES[2]]);
    }
}
