//! Reading a journal back: each whole line is a record applied to the
//! state ([`State::apply`], as when it was written). A last line a crash
//! cut short is left out (the writer then cuts it off); a damaged line
//! anywhere else stops the start, naming it, since records were lost.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::{Context, Result};

use super::state::State;
use crate::store::record::Record;

/// The state the journal at `path` holds (empty if there is none), and the
/// length of the journal up to its last whole record.
pub(crate) fn replay(path: &Path, mut state: State) -> Result<(State, u64)> {
    let mut whole = 0;
    if !path.exists() {
        return Ok((state, whole));
    }
    let mut reader =
        BufReader::new(File::open(path).with_context(|| format!("opening {}", path.display()))?);
    // A whole line that does not parse is damage; only as the last line
    // can it be a write the crash cut short (and is then cut off).
    let mut damaged: Option<(usize, String)> = None;
    let mut number = 0;
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .with_context(|| format!("reading {}", path.display()))?;
        // A line cut short by a crash mid-write is the last one, with no
        // newline: left out.
        if read == 0 || line.last() != Some(&b'\n') {
            break;
        }
        number += 1;
        if let Some((at, why)) = damaged.take() {
            anyhow::bail!(
                "{} line {at} is damaged ({why}) and is not the last line: the spool will not start on a journal that lost a record in its middle; move the file aside to start empty, or repair that line",
                path.display()
            );
        }
        match serde_json::from_slice::<Record>(&line) {
            Ok(record) => {
                whole += read as u64;
                state.apply(record, read as u64);
            }
            Err(e) => damaged = Some((number, e.to_string())),
        }
    }
    Ok((state, whole))
}
