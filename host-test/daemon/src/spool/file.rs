//! The journal file: appends, fsyncs, cutting a failed append back off,
//! replacing it whole (compaction), and the lock that keeps one writer per
//! spool. Every operation that touches the disk goes through
//! [`JournalFile`], where tests can make any of them fail ([`Faults`]).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};

/// A disk operation the journal makes, as a fault hook sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskOp {
    /// Appending a batch of records (`bytes` long) to the journal.
    Append { bytes: usize },
    /// fsyncing the journal.
    Sync,
    /// Cutting the journal back to its last durable record.
    Cut,
    /// Writing the compacted journal (`bytes` long) beside the old one.
    Compact { bytes: usize },
}

/// A fault hook: asked before each disk operation; an error it returns is
/// what the operation fails with. An append that fails this way writes
/// half its bytes first, as a disk that fills part-way through does.
pub type Faults = Arc<dyn Fn(DiskOp) -> Option<io::Error> + Send + Sync>;

/// The journal file, opened for appending.
pub(crate) struct JournalFile {
    path: PathBuf,
    file: File,
    /// Its length, and how much of it is known to be on disk.
    len: u64,
    durable: u64,
    /// A cut back to `durable` failed: nothing may be appended until one
    /// succeeds (appends go to the end, after the half-written bytes).
    needs_cut: bool,
    faults: Option<Faults>,
}

impl JournalFile {
    /// Opens (or creates) the journal at `path`, cutting off anything past
    /// `whole` (a last line a crash left torn), so the next record starts
    /// on its own line.
    pub(crate) fn open(path: &Path, whole: u64, faults: Option<Faults>) -> Result<JournalFile> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        let len = file.metadata()?.len();
        let mut journal = JournalFile {
            path: path.to_path_buf(),
            file,
            len,
            durable: whole,
            needs_cut: false,
            faults,
        };
        if len > whole {
            journal
                .cut_back()
                .with_context(|| format!("cutting the torn last line of {}", path.display()))?;
        }
        journal.durable = journal.len;
        Ok(journal)
    }

    /// The journal's length.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    fn fault(&self, op: DiskOp) -> io::Result<()> {
        match self.faults.as_ref().and_then(|f| f(op)) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Appends `bytes` (whole records) in one write. If it fails, the
    /// journal is cut back to where it was, so no part of them stays.
    pub(crate) fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.needs_cut {
            self.cut_back()?;
        }
        let written = match self.fault(DiskOp::Append { bytes: bytes.len() }) {
            Err(e) => {
                let _ = self.file.write_all(&bytes[..bytes.len() / 2]);
                Err(e)
            }
            Ok(()) => self.file.write_all(bytes),
        };
        match written {
            Ok(()) => {
                self.len += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Whatever part of the batch reached the file goes; if even
                // that fails, the next append tries again first.
                let _ = self.cut_back();
                Err(e)
            }
        }
    }

    /// What makes every append so far durable, to run outside the spool's
    /// lock; [`JournalFile::synced`] or [`JournalFile::sync_failed`] after.
    pub(crate) fn sync_job(&self) -> io::Result<impl FnOnce() -> io::Result<()> + Send + 'static> {
        let file = self.file.try_clone()?;
        let faults = self.faults.clone();
        Ok(move || {
            if let Some(e) = faults.as_ref().and_then(|f| f(DiskOp::Sync)) {
                return Err(e);
            }
            file.sync_data()
        })
    }

    /// The sync job succeeded: everything appended before it is durable.
    pub(crate) fn synced(&mut self, through_len: u64) {
        self.durable = self.durable.max(through_len);
    }

    /// The sync job failed: what it was to make durable may or may not be
    /// on disk (Linux may drop the pages), so it is cut off.
    pub(crate) fn sync_failed(&mut self) {
        let _ = self.cut_back();
    }

    /// Cuts the journal back to its last durable record, and makes the cut
    /// durable.
    fn cut_back(&mut self) -> io::Result<()> {
        self.needs_cut = true;
        self.fault(DiskOp::Cut)?;
        self.file.set_len(self.durable)?;
        self.file.sync_data()?;
        self.len = self.durable;
        self.needs_cut = false;
        Ok(())
    }

    /// Replaces the journal with `lines` (each without its newline),
    /// atomically: a new file, fsynced, renamed over the old one. If any
    /// step fails, the old journal stays as it was.
    pub(crate) fn replace(&mut self, lines: impl Iterator<Item = String>) -> io::Result<()> {
        let mut text = Vec::new();
        for line in lines {
            text.extend_from_slice(line.as_bytes());
            text.push(b'\n');
        }
        let fresh = self.path.with_extension("jsonl.new");
        let written = self
            .fault(DiskOp::Compact { bytes: text.len() })
            .and_then(|()| {
                let mut out = File::create(&fresh)?;
                out.write_all(&text)?;
                out.sync_all()
            });
        if let Err(e) = written {
            let _ = std::fs::remove_file(&fresh);
            return Err(e);
        }
        std::fs::rename(&fresh, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        self.len = text.len() as u64;
        self.durable = self.len;
        self.needs_cut = false;
        Ok(())
    }
}

/// Takes the spool directory's lock: one process writes a spool at a time.
pub(crate) fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join("lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "the spool {} is in use by another process (a serve running on it?)",
            dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}
