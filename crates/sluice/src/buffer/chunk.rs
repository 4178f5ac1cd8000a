//! Chunks: where a buffer keeps events until an output writes them.
//!
//! A memory chunk is a byte vector; a file chunk is a file in the
//! [`chunk_file`](super::chunk_file) format whose name says whether it is
//! staged (`buffer.b<id>.log`) or queued (`buffer.q<id>.log`). Each append
//! is one block, compressed on its own when `compress` is set (gzip members
//! and zstd frames concatenate, so reading is one pass).

use super::chunk_file::{self, FLAG_GZIP, FLAG_ZSTD, KIND_META, KIND_RECORDS, Meta};
use super::metadata::{Metadata, hex};
use super::params::{ChunkCompress, FsyncPolicy};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A fresh 128-bit chunk id: microseconds since the epoch, then random bytes
/// (time-ordered, like Fluentd's `unique_id`).
pub fn new_id() -> [u8; 16] {
    let micros =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0);
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&micros.to_be_bytes());
    if getrandom::fill(&mut id[8..]).is_err() {
        // Extremely unlikely; fall back to something unique per process.
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed) ^ u64::from(std::process::id()) << 32;
        id[8..].copy_from_slice(&n.to_be_bytes());
    }
    id
}

/// Unix time now, in seconds.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Compress one append.
fn compress_block(c: ChunkCompress, data: &[u8]) -> std::io::Result<(u8, Vec<u8>)> {
    match c {
        ChunkCompress::Text => Ok((0, data.to_vec())),
        ChunkCompress::Gzip => {
            let mut e =
                flate2::write::GzEncoder::new(Vec::with_capacity(data.len() / 3 + 32), flate2::Compression::default());
            e.write_all(data)?;
            Ok((FLAG_GZIP, e.finish()?))
        }
        ChunkCompress::Zstd => Ok((FLAG_ZSTD, zstd::bulk::compress(data, 3)?)),
    }
}

/// Decompress one stored block (bounded by `limit` output bytes).
pub fn decompress_block(flags: u8, data: &[u8], limit: u64, out: &mut Vec<u8>) -> std::io::Result<()> {
    let before = out.len();
    match flags {
        0 => out.extend_from_slice(data),
        FLAG_GZIP => {
            flate2::read::MultiGzDecoder::new(data).take(limit).read_to_end(out)?;
        }
        FLAG_ZSTD => {
            zstd::stream::read::Decoder::new(data)?.take(limit).read_to_end(out)?;
        }
        f => return Err(std::io::Error::other(format!("unknown block compression flag {f}"))),
    }
    if (out.len() - before) as u64 >= limit && limit > 0 {
        return Err(std::io::Error::other("decompressed block is larger than the chunk limit"));
    }
    Ok(())
}

/// Where a chunk's bytes are.
pub enum Store {
    /// Appended blocks in memory: `(flags, payload)`; plain payloads share the emitted bytes.
    Memory(Vec<(u8, bytes::Bytes)>),
    /// A chunk file.
    File {
        /// Current path (`b` or `q` name).
        path: PathBuf,
        /// Open for appending.
        file: File,
    },
}

/// One chunk.
pub struct Chunk {
    /// 128-bit id.
    pub id: [u8; 16],
    /// Chunk key values.
    pub meta: Metadata,
    /// Creation time (unix seconds).
    pub created: f64,
    /// Event bytes appended (before compression): what limits count.
    pub bytes: u64,
    /// Events appended.
    pub records: u64,
    /// Storage.
    pub store: Store,
}

impl std::fmt::Debug for Chunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunk")
            .field("id", &hex(&self.id))
            .field("meta", &self.meta)
            .field("bytes", &self.bytes)
            .field("records", &self.records)
            .finish()
    }
}

/// The file layout of a file buffer.
#[derive(Debug, Clone)]
pub struct FileDir {
    /// Directory of chunk files.
    pub dir: PathBuf,
    /// File name prefix (`buffer`, or the `*` prefix of `path dir/prefix.*`).
    pub prefix: String,
    /// File name suffix (`path_suffix`, default `.log`).
    pub suffix: String,
    /// When to fsync.
    pub fsync: FsyncPolicy,
    /// Mode of created files.
    pub file_mode: u32,
    /// Mode of created directories.
    pub dir_mode: u32,
}

impl FileDir {
    /// The path of chunk `id` in state `b` (staged) or `q` (queued).
    pub fn path(&self, state: char, id: &[u8; 16]) -> PathBuf {
        self.dir.join(format!("{}.{state}{}{}", self.prefix, hex(id), self.suffix))
    }

    /// Create the directory (and parents) with `dir_mode`.
    pub fn ensure_dir(&self) -> std::io::Result<()> {
        create_dir_all_mode(&self.dir, self.dir_mode)
    }

    /// `(state, id)` if `name` is one of our chunk file names.
    pub fn parse_name(&self, name: &str) -> Option<(char, [u8; 16])> {
        let rest = name.strip_prefix(&self.prefix)?.strip_prefix('.')?.strip_suffix(self.suffix.as_str())?;
        let state = rest.chars().next().filter(|c| *c == 'b' || *c == 'q')?;
        let hexid = &rest[1..];
        if hexid.len() != 32 {
            return None;
        }
        let mut id = [0u8; 16];
        for (i, b) in id.iter_mut().enumerate() {
            *b = u8::from_str_radix(hexid.get(i * 2..i * 2 + 2)?, 16).ok()?;
        }
        Some((state, id))
    }

    fn sync_dir(&self) {
        if self.fsync != FsyncPolicy::Never
            && let Ok(d) = File::open(&self.dir)
        {
            let _ = d.sync_all();
        }
    }
}

/// `mkdir -p` with a mode for each created directory.
pub fn create_dir_all_mode(dir: &Path, mode: u32) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    std::os::unix::fs::DirBuilderExt::mode(&mut b, mode);
    b.create(dir)
}

impl Chunk {
    /// A new, empty chunk (creates its file for a file buffer).
    ///
    /// # Errors
    /// File creation or the META write.
    pub fn create(meta: Metadata, dir: Option<&FileDir>, format: &str) -> std::io::Result<Chunk> {
        let id = new_id();
        let created = unix_now();
        let store = match dir {
            None => Store::Memory(Vec::new()),
            Some(d) => {
                d.ensure_dir()?;
                let path = d.path('b', &id);
                let mut file =
                    OpenOptions::new().create_new(true).append(true).read(true).mode(d.file_mode).open(&path)?;
                let m = Meta {
                    id,
                    tag: meta.tag.clone(),
                    timekey: meta.timekey,
                    vars: meta.vars.clone(),
                    created,
                    format: format.to_string(),
                };
                let mut block = Vec::with_capacity(128);
                chunk_file::encode_block(KIND_META, 0, 0, &m.encode(), &mut block);
                file.write_all(&block)?;
                if d.fsync == FsyncPolicy::Always {
                    file.sync_data()?;
                    d.sync_dir();
                }
                Store::File { path, file }
            }
        };
        Ok(Chunk { id, meta, created, bytes: 0, records: 0, store })
    }

    /// Append the events `data` (`records` of them) as one block.
    ///
    /// # Errors
    /// Compression or the file write. On a file write error the chunk may
    /// hold a torn block; callers drop the chunk's in-memory accounting of it
    /// and recovery cuts it off.
    pub fn append(
        &mut self,
        data: bytes::Bytes,
        records: u32,
        compress: ChunkCompress,
        dir: Option<&FileDir>,
    ) -> std::io::Result<()> {
        let len = data.len() as u64;
        match &mut self.store {
            Store::Memory(blocks) if compress == ChunkCompress::Text => blocks.push((0, data)),
            Store::Memory(blocks) => {
                let (flags, payload) = compress_block(compress, &data)?;
                blocks.push((flags, bytes::Bytes::from(payload)));
            }
            Store::File { file, .. } => {
                let (flags, payload) = if compress == ChunkCompress::Text {
                    (0, None)
                } else {
                    let (f, p) = compress_block(compress, &data)?;
                    (f, Some(p))
                };
                let payload: &[u8] = payload.as_deref().unwrap_or(&data);
                // One write per append: a crash tears at most the end of this block.
                let mut block = Vec::with_capacity(payload.len() + chunk_file::HEADER_LEN);
                chunk_file::encode_block(KIND_RECORDS, flags, records, payload, &mut block);
                file.write_all(&block)?;
                if dir.is_some_and(|d| d.fsync == FsyncPolicy::Always) {
                    file.sync_data()?;
                }
            }
        }
        self.bytes += len;
        self.records += u64::from(records);
        Ok(())
    }

    /// Mark the chunk queued (`b` → `q` for files), syncing per policy.
    ///
    /// # Errors
    /// The rename.
    pub fn mark_queued(&mut self, dir: Option<&FileDir>) -> std::io::Result<()> {
        if let (Store::File { path, file }, Some(d)) = (&mut self.store, dir) {
            if d.fsync != FsyncPolicy::Never {
                file.sync_data()?;
            }
            let q = d.path('q', &self.id);
            if *path != q {
                std::fs::rename(&*path, &q)?;
                *path = q;
                d.sync_dir();
            }
        }
        Ok(())
    }

    /// A memory chunk's uncompressed blocks (shared, not copied); `None`
    /// for file chunks and compressed blocks.
    pub fn plain_blocks(&self) -> Option<Vec<bytes::Bytes>> {
        match &self.store {
            Store::Memory(blocks) if blocks.iter().all(|(f, _)| *f == 0) => {
                Some(blocks.iter().map(|(_, b)| b.clone()).collect())
            }
            _ => None,
        }
    }

    /// The events, decompressed (`limit` bounds decompression).
    ///
    /// # Errors
    /// Reading the file or a damaged block.
    pub fn read(&self, limit: u64) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.bytes as usize);
        match &self.store {
            Store::Memory(blocks) if blocks.len() == 1 && blocks[0].0 == 0 => out.extend_from_slice(&blocks[0].1),
            Store::Memory(blocks) => {
                for (flags, p) in blocks {
                    decompress_block(*flags, p, limit, &mut out)?;
                }
            }
            Store::File { path, .. } => {
                let buf = std::fs::read(path)?;
                let parsed = chunk_file::parse(&buf);
                if let Some(d) = parsed.damage.filter(|_| parsed.valid_len < buf.len() || parsed.meta.is_none()) {
                    return Err(std::io::Error::other(format!("chunk file {} is damaged: {d}", path.display())));
                }
                for b in &parsed.blocks {
                    decompress_block(b.flags, &buf[b.payload.clone()], limit, &mut out)?;
                }
            }
        }
        Ok(out)
    }

    /// Remove the chunk's file.
    pub fn remove(&self) {
        if let Store::File { path, .. } = &self.store {
            let _ = std::fs::remove_file(path);
        }
    }

    /// The file path, for file chunks.
    pub fn path(&self) -> Option<&Path> {
        match &self.store {
            Store::File { path, .. } => Some(path),
            Store::Memory(_) => None,
        }
    }
}

/// What recovering a file buffer directory found.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Staged chunks, to be appended to again.
    pub staged: Vec<Chunk>,
    /// Queued chunks, oldest first.
    pub queued: Vec<Chunk>,
    /// Files whose torn tail was cut off: (path, bytes cut, reason).
    pub truncated: Vec<(PathBuf, u64, String)>,
    /// Files moved to the backup directory: (from, to, reason).
    pub quarantined: Vec<(PathBuf, PathBuf, String)>,
}

/// Recover every chunk file in `dir`: cut torn tails, move unreadable
/// files to `backup`, and return the chunks. Never fails on a bad chunk.
///
/// # Errors
/// Only if the directory itself cannot be listed.
pub fn recover(dir: &FileDir, backup: &Path) -> std::io::Result<Recovered> {
    let mut out = Recovered::default();
    let entries = match std::fs::read_dir(&dir.dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    let mut files: Vec<(String, PathBuf)> =
        entries.filter_map(Result::ok).map(|e| (e.file_name().to_string_lossy().into_owned(), e.path())).collect();
    files.sort();
    for (name, path) in files {
        let Some((state, id)) = dir.parse_name(&name) else { continue };
        let quarantine = |out: &mut Recovered, reason: String| {
            let _ = create_dir_all_mode(backup, dir.dir_mode);
            let to = backup.join(&name);
            match std::fs::rename(&path, &to) {
                Ok(()) => out.quarantined.push((path.clone(), to, reason)),
                Err(_) => {
                    // A rename across file systems fails: copy, then remove.
                    if std::fs::copy(&path, &to).is_ok() {
                        let _ = std::fs::remove_file(&path);
                        out.quarantined.push((path.clone(), to, reason));
                    }
                }
            }
        };
        let buf = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                quarantine(&mut out, format!("unreadable: {e}"));
                continue;
            }
        };
        let parsed = chunk_file::parse(&buf);
        let Some(meta) = parsed.meta.clone() else {
            quarantine(&mut out, parsed.damage.unwrap_or_else(|| "no chunk header".into()));
            continue;
        };
        if meta.id != id {
            quarantine(&mut out, "file name and chunk id differ".into());
            continue;
        }
        if parsed.valid_len < buf.len() {
            let cut = (buf.len() - parsed.valid_len) as u64;
            match OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(parsed.valid_len as u64).map(|()| f))
            {
                Ok(f) => {
                    let _ = f.sync_all();
                    out.truncated.push((path.clone(), cut, parsed.damage.clone().unwrap_or_default()));
                }
                Err(e) => {
                    quarantine(&mut out, format!("cannot cut the damaged tail: {e}"));
                    continue;
                }
            }
        }
        let file = match OpenOptions::new().append(true).read(true).open(&path) {
            Ok(f) => f,
            Err(e) => {
                quarantine(&mut out, format!("cannot reopen: {e}"));
                continue;
            }
        };
        let mut bytes = 0u64;
        for b in &parsed.blocks {
            // Plain blocks count their size; compressed ones their decompressed size.
            bytes += if b.flags == 0 {
                (b.payload.end - b.payload.start) as u64
            } else {
                let mut tmp = Vec::new();
                let _ = decompress_block(b.flags, &buf[b.payload.clone()], u64::MAX, &mut tmp);
                tmp.len() as u64
            };
        }
        let chunk = Chunk {
            id,
            meta: Metadata { timekey: meta.timekey, tag: meta.tag, vars: meta.vars },
            created: meta.created,
            bytes,
            records: parsed.records(),
            store: Store::File { path: path.clone(), file },
        };
        if state == 'b' { out.staged.push(chunk) } else { out.queued.push(chunk) }
    }
    out.queued.sort_by(|a, b| a.created.total_cmp(&b.created).then(a.id.cmp(&b.id)));
    out.staged.sort_by(|a, b| a.created.total_cmp(&b.created).then(a.id.cmp(&b.id)));
    Ok(out)
}

/// Mode bits from Fluentd's octal `file_permission` / `dir_permission` strings.
pub fn parse_mode(s: Option<&str>, default: u32) -> u32 {
    s.and_then(|m| u32::from_str_radix(m.trim_start_matches("0o"), 8).ok()).unwrap_or(default)
}

/// Set a file's mode (used for backups).
pub fn set_mode(path: &Path, mode: u32) {
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(p: &Path) -> FileDir {
        FileDir {
            dir: p.to_path_buf(),
            prefix: "buffer".into(),
            suffix: ".log".into(),
            fsync: FsyncPolicy::Chunk,
            file_mode: 0o600,
            dir_mode: 0o700,
        }
    }

    #[test]
    fn recovery_cuts_torn_tails_and_quarantines_garbage() {
        let t = tempfile::tempdir().unwrap();
        let d = dir(&t.path().join("buf"));
        let meta = Metadata { tag: Some("a".into()), ..Default::default() };
        let mut c = Chunk::create(meta.clone(), Some(&d), "msgpack").unwrap();
        c.append(bytes::Bytes::from_static(b"first"), 1, ChunkCompress::Text, Some(&d)).unwrap();
        c.append(bytes::Bytes::from_static(b"second"), 1, ChunkCompress::Text, Some(&d)).unwrap();
        let path = c.path().unwrap().to_path_buf();
        let len = std::fs::metadata(&path).unwrap().len();
        drop(c);
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(len - 3).unwrap();
        // Garbage under a chunk name, and an unrelated file that must be left alone.
        std::fs::write(d.dir.join(format!("buffer.q{}.log", "0".repeat(32))), b"not a chunk").unwrap();
        std::fs::write(d.dir.join("notes.txt"), b"keep").unwrap();
        let backup = t.path().join("backup");
        let r = recover(&d, &backup).unwrap();
        assert_eq!(r.staged.len(), 1);
        assert_eq!(r.staged[0].records, 1);
        assert_eq!(r.staged[0].read(1 << 20).unwrap(), b"first");
        assert_eq!(r.truncated.len(), 1);
        assert_eq!(r.quarantined.len(), 1);
        assert!(backup.join(format!("buffer.q{}.log", "0".repeat(32))).exists());
        assert!(d.dir.join("notes.txt").exists());
        // The cut file reads cleanly now.
        assert!(chunk_file::parse(&std::fs::read(&path).unwrap()).damage.is_none());
    }

    #[test]
    fn compressed_blocks_round_trip() {
        for c in [ChunkCompress::Gzip, ChunkCompress::Zstd] {
            let t = tempfile::tempdir().unwrap();
            let d = dir(t.path());
            let mut ch = Chunk::create(Metadata::default(), Some(&d), "msgpack").unwrap();
            ch.append(bytes::Bytes::from(vec![b'x'; 10_000]), 3, c, Some(&d)).unwrap();
            ch.append(bytes::Bytes::from_static(b"tail"), 1, c, Some(&d)).unwrap();
            let data = ch.read(1 << 20).unwrap();
            assert_eq!(data.len(), 10_004);
            assert!(std::fs::metadata(ch.path().unwrap()).unwrap().len() < 1000, "{c:?} did not compress");
            let mut m = Chunk::create(Metadata::default(), None, "msgpack").unwrap();
            m.append(bytes::Bytes::from_static(b"abc"), 1, c, None).unwrap();
            m.append(bytes::Bytes::from_static(b"def"), 1, c, None).unwrap();
            assert_eq!(m.read(1 << 20).unwrap(), b"abcdef");
            // Decompression is bounded.
            assert!(ch.read(100).is_err());
        }
    }
}
