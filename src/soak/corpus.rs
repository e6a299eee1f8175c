//! The text of the soak's lines: real logs (every `*.log` file of a directory, the loghub
//! corpus by default), or the benchmark's generated lines when the default directory is
//! missing, each cut to [`LINE_BYTES_MAX`] and trimmed, so that what a sender writes is what
//! the server stores, byte for byte.

use std::path::{Path, PathBuf};

use super::SoakError;
use super::findings::Findings;
use super::lanes::LINE_BYTES_MAX;
use super::options::CORPUS_DIR_DEFAULT;
use crate::bench::lines::{LineCorpus, LineSource};

/// Lines generated when there is no corpus: enough variety for blooms and compression.
const GENERATED_LINES: usize = 20_000;

/// The lines every sender draws from.
#[derive(Debug, Clone)]
pub struct Corpus {
    pub lines: Vec<String>,
    /// A word in about 5% of the lines, for queries whose filter matches some lines.
    pub common_word: String,
    pub description: String,
}

impl Corpus {
    /// Reads `dir`, or [`CORPUS_DIR_DEFAULT`] when it is `None`. A directory that was asked
    /// for must exist and hold lines; a missing default falls back to generated lines,
    /// with a note.
    pub fn load(dir: Option<&Path>, seed: u64, findings: &Findings) -> Result<Corpus, SoakError> {
        let (dir, explicit) = match dir {
            Some(d) => (d.to_path_buf(), true),
            None => (PathBuf::from(CORPUS_DIR_DEFAULT), false),
        };
        if !dir.is_dir() {
            if explicit {
                return Err(SoakError::new(format!(
                    "--corpus {}: not a directory",
                    dir.display()
                )));
            }
            findings.note(format!(
                "no corpus at {} (run from the repository root, or give --corpus): sending generated lines",
                dir.display()
            ));
            return Ok(Corpus::generated(seed));
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| SoakError::new(format!("--corpus {}: {e}", dir.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(SoakError::new(format!(
                "--corpus {}: no *.log files",
                dir.display()
            )));
        }
        let corpus = LineCorpus::load(&files).map_err(|e| SoakError::new(e.to_string()))?;
        let lines = clean(corpus.lines());
        let description = format!(
            "{} lines of {} files in {}",
            lines.len(),
            files.len(),
            dir.display()
        );
        Ok(Corpus {
            lines,
            common_word: corpus.query_tokens().common,
            description,
        })
    }

    /// The benchmark's generated lines, from the seed.
    pub fn generated(seed: u64) -> Corpus {
        let corpus = LineCorpus::default();
        let mut src = LineSource::new(&corpus, seed);
        let raw: Vec<String> = (0..GENERATED_LINES)
            .map(|i| {
                let mut s = String::new();
                src.next_line(i % corpus.kinds(), &mut s);
                s
            })
            .collect();
        Corpus {
            lines: clean(raw.iter().map(String::as_str)),
            common_word: corpus.query_tokens().common,
            description: format!("{GENERATED_LINES} generated lines"),
        }
    }
}

/// Cut to [`LINE_BYTES_MAX`] on a character boundary, trimmed, empty lines left out.
fn clean<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<String> {
    lines
        .map(|l| {
            let mut end = l.len().min(LINE_BYTES_MAX);
            while !l.is_char_boundary(end) {
                end -= 1;
            }
            l[..end].trim().to_string()
        })
        .filter(|l| !l.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_log_files_and_cuts_long_lines() {
        let dir = tempfile::tempdir().unwrap();
        let long = "é".repeat(LINE_BYTES_MAX);
        std::fs::write(dir.path().join("A_2k.log"), format!("  one  \n\n{long}\n")).unwrap();
        std::fs::write(dir.path().join("ignored.txt"), "x\n").unwrap();
        let f = Findings::default();
        let c = Corpus::load(Some(dir.path()), 1, &f).unwrap();
        assert_eq!(c.lines.len(), 2);
        assert_eq!(c.lines[0], "one");
        assert!(c.lines[1].len() <= LINE_BYTES_MAX && c.lines[1].starts_with('é'));
        assert!(f.notes().is_empty());
    }

    #[test]
    fn a_missing_directory_is_an_error_only_when_asked_for() {
        let f = Findings::default();
        let e = Corpus::load(Some(Path::new("/nonexistent/corpus")), 1, &f).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
        let g = Corpus::generated(3);
        assert_eq!(g.lines.len(), GENERATED_LINES);
        assert!(!g.common_word.is_empty());
    }
}
