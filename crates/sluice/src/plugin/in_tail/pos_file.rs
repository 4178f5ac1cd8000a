//! The `pos_file`, byte-compatible with Fluentd's.
//!
//! One line per followed file: `path\t%016x\t%016x\n` (path, the offset of
//! the first unconsumed byte, the inode). Positions are updated in place:
//! 16 bytes at the entry's `seek` (the byte after the path's tab), or 33
//! bytes when the inode changes too. An entry whose file is no longer
//! followed is marked with position `ffffffffffffffff` and dropped at the
//! next compaction. Fluentd's reader regex is
//! `^([^\t]+)\t([0-9a-fA-F]+)\t([0-9a-fA-F]+)`; anything after the third
//! field is ignored.
//!
//! Differences from Fluentd, all invisible in the format:
//! * compaction rewrites the file from the in-memory entries into a temporary
//!   file and renames it over the old one, so a crash mid-compaction never
//!   leaves a truncated pos_file and no entry keeps a stale offset (Fluentd's
//!   `try_compact` can write past the end after duplicates);
//! * in path mode a rotated file that is still being drained keeps its own
//!   line (the earlier one), and the file that replaced it gets a new line
//!   after it. Fluentd, which keeps the last line for a path, resumes the new
//!   file; sluice also resumes the rotated one after a restart.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The position written for an entry that is no longer followed.
pub const UNWATCHED: u64 = u64::MAX;

/// One parsed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The path column.
    pub path: String,
    /// Offset of the first byte not yet consumed.
    pub pos: u64,
    /// Inode.
    pub ino: u64,
}

/// What reading a pos_file found besides entries.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// Entries in file order, unwatched ones included.
    pub entries: Vec<Entry>,
    /// Lines that do not match Fluentd's regex (without their newline).
    pub unparsable: Vec<String>,
}

fn hex(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    // Fluentd's `to_i(16)` on a longer field would give a bignum; keep the
    // low 64 bits' worth by refusing what does not fit.
    let t = std::str::from_utf8(s).ok()?;
    u64::from_str_radix(t, 16).ok()
}

/// Read pos_file text (pure).
pub fn parse(text: &[u8]) -> Parsed {
    let mut out = Parsed::default();
    for line in text.split(|b| *b == b'\n') {
        if line.is_empty() {
            continue;
        }
        match parse_line(line) {
            Some(e) => out.entries.push(e),
            None => out.unparsable.push(String::from_utf8_lossy(line).into_owned()),
        }
    }
    out
}

fn parse_line(line: &[u8]) -> Option<Entry> {
    let t1 = memchr::memchr(b'\t', line)?;
    if t1 == 0 {
        return None;
    }
    let rest = &line[t1 + 1..];
    let n1 = rest.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if rest.get(n1) != Some(&b'\t') {
        return None;
    }
    let rest2 = &rest[n1 + 1..];
    let n2 = rest2.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    Some(Entry {
        path: String::from_utf8_lossy(&line[..t1]).into_owned(),
        pos: hex(&rest[..n1])?,
        ino: hex(&rest2[..n2])?,
    })
}

/// Append the line for `e`.
pub fn format_entry(path: &str, pos: u64, ino: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(path.as_bytes());
    let _ = writeln!(out, "\t{pos:016x}\t{ino:016x}");
}

/// A live entry.
#[derive(Debug, Clone)]
struct Slot {
    path: String,
    pos: u64,
    ino: u64,
    /// Offset of the pos field in the file; `None` if the path cannot be stored.
    seek: Option<u64>,
}

/// Index of an entry in a [`PosFile`].
pub type EntryId = usize;

/// An open pos_file.
#[derive(Debug)]
pub struct PosFile {
    path: PathBuf,
    file: File,
    len: u64,
    mode: u32,
    slots: Vec<Option<Slot>>,
}

/// How entries with the same key are merged at load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyBy {
    /// Path mode: the last line of a path is its live entry; earlier lines
    /// with other inodes are kept (rotated files still to drain).
    Path,
    /// `follow_inodes`: one entry per inode, the last line wins.
    Inode,
}

/// Merge duplicate keys (pure): returns the surviving entries in file order
/// and a message per dropped duplicate.
pub fn merge(entries: Vec<Entry>, key_by: KeyBy) -> (Vec<Entry>, Vec<String>) {
    let mut keep: Vec<Option<Entry>> = Vec::with_capacity(entries.len());
    let mut notes = Vec::new();
    for e in entries {
        if e.pos == UNWATCHED {
            continue;
        }
        let dup = keep.iter().position(|k| {
            k.as_ref().is_some_and(|k| match key_by {
                KeyBy::Inode => k.ino == e.ino,
                KeyBy::Path => k.path == e.path && k.ino == e.ino,
            })
        });
        if let Some(i) = dup {
            let old = keep[i].take().expect("checked");
            notes.push(match key_by {
                KeyBy::Inode => {
                    format!(
                        "{} (inode: {}) already exists. use latest one: deleted pos={} ino={}",
                        e.path, e.ino, old.pos, old.ino
                    )
                }
                KeyBy::Path => {
                    format!("{} already exists. use latest one: deleted pos={} ino={}", e.path, old.pos, old.ino)
                }
            });
            // Fluentd writes the survivor in the first slot.
            keep[i] = Some(e);
            keep.push(None);
        } else {
            keep.push(Some(e));
        }
    }
    (keep.into_iter().flatten().collect(), notes)
}

impl PosFile {
    /// Open (creating it and its directory) and load `path`: unparsable and
    /// unwatched lines are dropped, duplicates merged, entries `keep` rejects
    /// dropped, and the result written back compacted.
    ///
    /// Returns the file and warnings to log.
    ///
    /// # Errors
    /// I/O errors opening, reading or rewriting the file.
    pub fn load(
        path: &Path,
        file_mode: u32,
        dir_mode: u32,
        key_by: KeyBy,
        keep: impl Fn(&Entry) -> bool,
    ) -> io::Result<(PosFile, Vec<String>)> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::buffer::chunk::create_dir_all_mode(dir, dir_mode)?;
        }
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(file_mode).open(path)?;
        let mut text = Vec::new();
        file.read_to_end(&mut text)?;
        let parsed = parse(&text);
        let mut warnings: Vec<String> =
            parsed.unparsable.iter().map(|l| format!("Unparsable line in pos_file: {l}")).collect();
        let (entries, notes) = merge(parsed.entries, key_by);
        warnings.extend(notes);
        let slots = entries
            .into_iter()
            .filter(|e| keep(e))
            .map(|e| Some(Slot { path: e.path, pos: e.pos, ino: e.ino, seek: None }))
            .collect();
        let mut pf = PosFile { path: path.to_path_buf(), file, len: 0, mode: file_mode, slots };
        pf.compact()?;
        Ok((pf, warnings))
    }

    /// The pos_file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Live entries: id, path, pos, inode.
    pub fn entries(&self) -> impl Iterator<Item = (EntryId, &str, u64, u64)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| s.as_ref().map(|s| (i, s.path.as_str(), s.pos, s.ino)))
    }

    /// Position and inode of a live entry.
    pub fn get(&self, id: EntryId) -> Option<(u64, u64)> {
        self.slots.get(id)?.as_ref().map(|s| (s.pos, s.ino))
    }

    /// The path column of a live entry.
    pub fn entry_path(&self, id: EntryId) -> Option<&str> {
        self.slots.get(id)?.as_ref().map(|s| s.path.as_str())
    }

    /// Append a new entry.
    ///
    /// # Errors
    /// The write failed; the entry is then kept in memory only.
    pub fn insert(&mut self, path: &str, pos: u64, ino: u64) -> (EntryId, io::Result<()>) {
        let storable = !path.is_empty() && !path.contains(['\t', '\n']);
        let mut slot = Slot { path: path.to_string(), pos, ino, seek: None };
        let mut res = Ok(());
        if storable {
            let mut line = Vec::with_capacity(path.len() + 34);
            format_entry(path, pos, ino, &mut line);
            match self.file.write_all_at(&line, self.len) {
                Ok(()) => {
                    slot.seek = Some(self.len + path.len() as u64 + 1);
                    self.len += line.len() as u64;
                }
                Err(e) => res = Err(e),
            }
        } else {
            res = Err(io::Error::new(io::ErrorKind::InvalidInput, "a path with a tab or newline cannot be stored"));
        }
        self.slots.push(Some(slot));
        (self.slots.len() - 1, res)
    }

    /// Set an entry's inode and position (33 bytes in place).
    ///
    /// # Errors
    /// The write failed (the in-memory value is updated anyway).
    pub fn update(&mut self, id: EntryId, ino: u64, pos: u64) -> io::Result<()> {
        let Some(Some(s)) = self.slots.get_mut(id) else { return Ok(()) };
        s.pos = pos;
        s.ino = ino;
        match s.seek {
            Some(at) => self.file.write_all_at(format!("{pos:016x}\t{ino:016x}").as_bytes(), at),
            None => Ok(()),
        }
    }

    /// Set an entry's position (16 bytes in place).
    ///
    /// # Errors
    /// The write failed (the in-memory value is updated anyway).
    pub fn update_pos(&mut self, id: EntryId, pos: u64) -> io::Result<()> {
        let Some(Some(s)) = self.slots.get_mut(id) else { return Ok(()) };
        if s.pos == pos {
            return Ok(());
        }
        s.pos = pos;
        match s.seek {
            Some(at) => {
                let mut buf = [0u8; 16];
                hex16(pos, &mut buf);
                self.file.write_all_at(&buf, at)
            }
            None => Ok(()),
        }
    }

    /// Stop following an entry: its position becomes `ffffffffffffffff`
    /// and it is dropped at the next compaction.
    ///
    /// # Errors
    /// The write failed.
    pub fn unwatch(&mut self, id: EntryId) -> io::Result<()> {
        let Some(slot) = self.slots.get_mut(id) else { return Ok(()) };
        let Some(s) = slot.take() else { return Ok(()) };
        match s.seek {
            Some(at) => self.file.write_all_at(b"ffffffffffffffff", at),
            None => Ok(()),
        }
    }

    /// Rewrite the file from the live entries: into a temporary file, synced,
    /// then renamed over the pos_file. Entry ids stay valid.
    ///
    /// # Errors
    /// I/O errors; the old file is then left as it was.
    pub fn compact(&mut self) -> io::Result<()> {
        let mut text = Vec::new();
        let mut seeks = Vec::with_capacity(self.slots.len());
        for s in &self.slots {
            match s {
                Some(s) if !s.path.is_empty() && !s.path.contains(['\t', '\n']) => {
                    seeks.push(Some(text.len() as u64 + s.path.len() as u64 + 1));
                    format_entry(&s.path, s.pos, s.ino, &mut text);
                }
                _ => seeks.push(None),
            }
        }
        let mut tmp_name = self.path.as_os_str().to_owned();
        tmp_name.push(".compacting");
        let tmp = PathBuf::from(tmp_name);
        let res = (|| {
            let mut f =
                OpenOptions::new().read(true).write(true).create(true).truncate(true).mode(self.mode).open(&tmp)?;
            f.write_all(&text)?;
            f.sync_data()?;
            std::fs::rename(&tmp, &self.path)?;
            Ok(f)
        })();
        match res {
            Ok(f) => {
                self.file = f;
                self.len = text.len() as u64;
                for (s, seek) in self.slots.iter_mut().zip(seeks) {
                    if let Some(s) = s {
                        s.seek = seek;
                    }
                }
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }
}

fn hex16(v: u64, out: &mut [u8; 16]) {
    const D: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in out.iter_mut().enumerate() {
        *b = D[((v >> ((15 - i) * 4)) & 0xf) as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(p: &Path) -> String {
        String::from_utf8(std::fs::read(p).unwrap()).unwrap()
    }

    #[test]
    fn format_is_fluentds() {
        let mut out = Vec::new();
        format_entry("/var/log/app.log", 500, 0x1a2b3c, &mut out);
        format_entry("/var/log/b.log", 12, 42, &mut out);
        assert_eq!(
            out,
            b"/var/log/app.log\t00000000000001f4\t00000000001a2b3c\n/var/log/b.log\t000000000000000c\t000000000000002a\n"
        );
        let mut h = [0u8; 16];
        hex16(UNWATCHED, &mut h);
        assert_eq!(&h, b"ffffffffffffffff");
    }

    #[test]
    fn parse_like_fluentds_regex() {
        let p = parse(b"/a\t1f\tabc trailing junk\ngarbage line\n\t1\t2\n/b\tzz\t1\n/c\tFF\t0A\n");
        assert_eq!(
            p.entries,
            vec![Entry { path: "/a".into(), pos: 0x1f, ino: 0xabc }, Entry { path: "/c".into(), pos: 0xff, ino: 10 }]
        );
        assert_eq!(p.unparsable, vec!["garbage line", "\t1\t2", "/b\tzz\t1"]);
    }

    #[test]
    fn load_compacts_like_fluentd() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/x.pos");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            &path,
            "/var/log/a.log\t0000000000000010\t0000000000001234\n\
             /var/log/b.log\t1f\tabc trailing junk\n\
             garbage line\n\
             /var/log/c.log\tffffffffffffffff\t0000000000000005\n\
             /var/log/a.log\t0000000000000020\t0000000000001234\n\
             /var/log/gone.log\t0000000000000001\t0000000000000009\n",
        )
        .unwrap();
        let (pf, warnings) =
            PosFile::load(&path, 0o644, 0o755, KeyBy::Path, |e| e.path != "/var/log/gone.log").unwrap();
        assert_eq!(
            read(&path),
            "/var/log/a.log\t0000000000000020\t0000000000001234\n/var/log/b.log\t000000000000001f\t0000000000000abc\n"
        );
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].starts_with("Unparsable line in pos_file: garbage line"));
        assert!(warnings[1].starts_with("/var/log/a.log already exists. use latest one"));
        assert_eq!(pf.entries().count(), 2);
    }

    #[test]
    fn updates_in_place_and_unwatch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.pos");
        let (mut pf, _) = PosFile::load(&path, 0o644, 0o755, KeyBy::Path, |_| true).unwrap();
        let (a, r) = pf.insert("/var/log/app.log", 0, 0);
        r.unwrap();
        let (b, r) = pf.insert("/var/log/b.log", 0, 0);
        r.unwrap();
        pf.update(a, 0x1a2b3c, 500).unwrap();
        pf.update(b, 42, 0).unwrap();
        pf.update_pos(b, 12).unwrap();
        assert_eq!(
            read(&path),
            "/var/log/app.log\t00000000000001f4\t00000000001a2b3c\n/var/log/b.log\t000000000000000c\t000000000000002a\n"
        );
        pf.unwatch(b).unwrap();
        assert_eq!(
            read(&path),
            "/var/log/app.log\t00000000000001f4\t00000000001a2b3c\n/var/log/b.log\tffffffffffffffff\t000000000000002a\n"
        );
        pf.compact().unwrap();
        assert_eq!(read(&path), "/var/log/app.log\t00000000000001f4\t00000000001a2b3c\n");
        // Ids survive compaction and updates land on the rewritten line.
        pf.update_pos(a, 501).unwrap();
        let (c, _) = pf.insert("/c", 7, 8);
        assert_eq!(
            read(&path),
            "/var/log/app.log\t00000000000001f5\t00000000001a2b3c\n/c\t0000000000000007\t0000000000000008\n"
        );
        assert_eq!(pf.get(c), Some((7, 8)));
        assert_eq!(pf.get(b), None);
    }

    #[test]
    fn path_mode_keeps_rotated_entries_inode_mode_dedups() {
        let e = |p: &str, pos, ino| Entry { path: p.into(), pos, ino };
        let (k, notes) = merge(vec![e("/a", 10, 1), e("/a", 5, 2), e("/a", 11, 1)], KeyBy::Path);
        assert_eq!(k, vec![e("/a", 11, 1), e("/a", 5, 2)]);
        assert_eq!(notes.len(), 1);
        let (k, _) = merge(vec![e("/a", 10, 1), e("/a.1", 12, 1), e("/b", 3, 2)], KeyBy::Inode);
        assert_eq!(k, vec![e("/a.1", 12, 1), e("/b", 3, 2)]);
    }

    #[test]
    fn unstorable_paths_stay_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.pos");
        let (mut pf, _) = PosFile::load(&path, 0o644, 0o755, KeyBy::Path, |_| true).unwrap();
        let (id, r) = pf.insert("/a\tb", 0, 1);
        assert!(r.is_err());
        pf.update_pos(id, 9).unwrap();
        assert_eq!(pf.get(id), Some((9, 1)));
        assert_eq!(read(&path), "");
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics_and_round_trips(entries in proptest::collection::vec(("/[a-z/._-]{1,20}", proptest::num::u64::ANY, proptest::num::u64::ANY), 0..8), junk in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let mut text = Vec::new();
            for (p, pos, ino) in &entries {
                format_entry(p, *pos, *ino, &mut text);
            }
            let parsed = parse(&text);
            proptest::prop_assert_eq!(parsed.entries.len(), entries.len());
            for (e, (p, pos, ino)) in parsed.entries.iter().zip(&entries) {
                proptest::prop_assert_eq!((&e.path, e.pos, e.ino), (p, *pos, *ino));
            }
            text.extend_from_slice(&junk);
            let _ = parse(&text);
        }
    }
}
