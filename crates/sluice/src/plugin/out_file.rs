//! `@type file`: writes events to files, one file per flushed chunk.
//!
//! The path is built as Fluentd builds it (`generate_path_template`):
//! `path` gets the time format of its timekey (`%Y%m%d` for a day, …) unless
//! it has its own, then `_N` (the first free index) unless `append`, then
//! `path_suffix` and `.gz`/`.zstd`. A `*` in `path` marks where the time goes.
//! `${tag}`, `${tag[N]}`, `${key}` and `${chunk_id}` come from chunk keys.
//! Default buffer: `@type file`, chunk key `time`, `timekey 1d`.

use super::formatter;
use super::inject::Inject;
use super::{BuildCx, Formatter, Output};
use crate::buffer::metadata::{ChunkKeys, Template, has_strftime};
use crate::buffer::output::{BufferDefaults, ChunkOutput, ChunkView, EventFormat, WriteError, WriteFuture};
use sluice_config::{Element, ParamEnum, Params, TimeSpan};
use sluice_event::EventTime;
use sluice_event::strftime::{Strftime, Tm, Zone};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Compression of output files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ParamEnum)]
pub enum FileCompress {
    Text,
    Gz,
    Gzip,
    Zstd,
}

/// Writes events to files.
#[derive(Debug, Params)]
pub struct FileOutputParams {
    /// Path of the output files (time format, `_N` index and suffix are added; `*` marks where the time goes).
    pub path: String,
    /// Add `path_suffix` to file names.
    #[param(default = "true")]
    pub add_path_suffix: bool,
    /// Suffix of output files.
    #[param(default = ".log")]
    pub path_suffix: String,
    /// Append to one file per time slice instead of a new `_N` file per flush.
    #[param(default = "false")]
    pub append: bool,
    /// Compress output files: text, gz (gzip) or zstd.
    #[param(default = "text")]
    pub compress: FileCompress,
    /// Compress even if the buffer chunks are already compressed.
    #[param(default = "false")]
    pub recompress: bool,
    /// Keep a symlink at this path to the newest buffer chunk file.
    pub symlink_path: Option<String>,
    /// Make the symlink relative.
    #[param(default = "false")]
    pub symlink_path_use_relative: bool,
    /// Warn when writing one chunk takes longer than this.
    #[param(default = "20.0")]
    pub slow_flush_log_threshold: f64,
    /// How events are rendered (default `out_file`: time, tag, JSON).
    #[section(name = "format")]
    pub format: Option<Element>,
    /// Fields added before formatting.
    #[section(name = "inject")]
    pub inject: Option<Element>,
    /// Buffering (default `@type file`, chunk key `time`, `timekey 1d`).
    #[section(name = "buffer", params = crate::buffer::BufferParams)]
    pub buffer: Option<Element>,
    /// Where chunks go when writing keeps failing.
    #[section(name = "secondary")]
    pub secondary: Option<Element>,
}

/// out_file's `<buffer>` defaults.
const DEFAULTS: BufferDefaults = BufferDefaults {
    chunk_keys: "time",
    buffer_type: "file",
    timekey: Some("86400"),
    flush_at_shutdown: None,
    chunk_limit_size: None,
};

/// The time format a timekey implies.
fn time_format(timekey: i64) -> &'static str {
    if timekey < 60 {
        "%Y%m%d%H%M%S"
    } else if timekey < 3600 {
        "%Y%m%d%H%M"
    } else if timekey < 86_400 {
        "%Y%m%d%H"
    } else {
        "%Y%m%d"
    }
}

/// Fluentd's `generate_path_template`.
///
/// # Errors
/// "insufficient timestamp placeholders in path" when the path has some of
/// the time format's directives but not all.
pub fn path_template(
    path: &str,
    timekey: Option<i64>,
    append: bool,
    compress: FileCompress,
    suffix: &str,
) -> Result<String, String> {
    let idx = if append { "" } else { "_**" };
    let cs = match compress {
        FileCompress::Text => "",
        FileCompress::Gz | FileCompress::Gzip => ".gz",
        FileCompress::Zstd => ".zstd",
    };
    if path.contains('*') {
        let Some(tk) = timekey else {
            return Err("a path with '*' needs the time chunk key (the '*' is replaced by the time)".into());
        };
        return Ok(format!("{}{cs}", path.replace('*', &format!("{}{idx}", time_format(tk)))));
    }
    match timekey {
        Some(tk) => {
            let fmt = time_format(tk);
            let parts: Vec<&str> = fmt.as_bytes().chunks(2).map(|c| std::str::from_utf8(c).unwrap_or("")).collect();
            let present = parts.iter().filter(|p| path.contains(**p)).count();
            if present == 0 {
                Ok(format!("{path}.{fmt}{idx}{suffix}{cs}"))
            } else if present == parts.len() {
                Ok(format!("{path}{idx}{suffix}{cs}"))
            } else {
                Err("insufficient timestamp placeholders in path".into())
            }
        }
        None => Ok(format!("{path}{idx}{suffix}{cs}")),
    }
}

/// The smallest time unit a strftime template distinguishes (seconds), if any.
fn time_unit(template: &str) -> Option<i64> {
    let f = Strftime::new(template);
    let at = |s: i64| f.format_string(&Tm::new(EventTime::new(1_451_606_400 + s, 0), 0), &Zone::Utc);
    let base = at(0);
    [1, 60, 3600, 86_400].into_iter().find(|d| at(*d) != base)
}

/// The file output.
pub struct FileOutput {
    template: Template,
    append: bool,
    compress: FileCompress,
    file_mode: u32,
    dir_mode: u32,
    multi_worker: bool,
}

impl FileOutput {
    fn write_file(&self, path: &Path, data: &[u8]) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            crate::buffer::chunk::create_dir_all_mode(dir, self.dir_mode)?;
        }
        let file = std::fs::OpenOptions::new().create(true).append(true).mode(self.file_mode).open(path)?;
        if self.append && self.multi_worker {
            // Workers share append targets: one writer at a time.
            file.lock()?;
        }
        let mut w = std::io::BufWriter::with_capacity(1 << 16, &file);
        match self.compress {
            FileCompress::Text => w.write_all(data)?,
            FileCompress::Gz | FileCompress::Gzip => {
                let mut e = flate2::write::GzEncoder::new(&mut w, flate2::Compression::default());
                e.write_all(data)?;
                e.finish()?;
            }
            FileCompress::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(&mut w, 3)?;
                e.write_all(data)?;
                e.finish()?;
            }
        }
        w.flush()?;
        drop(w);
        if self.append && self.multi_worker {
            let _ = file.unlock();
        }
        Ok(())
    }

    /// The path for a chunk: `_**` becomes the first free `_N` (reserved with a
    /// `.lock` directory so concurrent flushes never share a file).
    fn target(&self, rendered: &str) -> std::io::Result<(PathBuf, Option<PathBuf>)> {
        if !rendered.contains("_**") {
            return Ok((PathBuf::from(rendered), None));
        }
        if let Some(dir) = Path::new(rendered).parent() {
            crate::buffer::chunk::create_dir_all_mode(dir, self.dir_mode)?;
        }
        for i in 0.. {
            let p = PathBuf::from(rendered.replacen("_**", &format!("_{i}"), 1));
            if p.exists() {
                continue;
            }
            let lock = PathBuf::from(format!("{}.lock", p.display()));
            if std::fs::create_dir(&lock).is_err() {
                continue;
            }
            if p.exists() {
                let _ = std::fs::remove_dir(&lock);
                continue;
            }
            return Ok((p, Some(lock)));
        }
        unreachable!("the loop returns")
    }
}

impl ChunkOutput for FileOutput {
    fn write<'a>(&'a self, chunk: &'a ChunkView<'a>) -> WriteFuture<'a> {
        Box::pin(async move {
            let rendered = self.template.render(chunk.meta, &chunk.id, chunk.timekey_zone);
            if let Some(t) = &chunk.meta.tag
                && (t.contains("../") || t.contains("..\\") || t.starts_with('/'))
            {
                return Err(WriteError::Unrecoverable(format!("Invalid path component detected in tag: {t}")));
            }
            let (path, lock) = self.target(&rendered).map_err(|e| WriteError::Retryable(format!("{rendered}: {e}")))?;
            let r = self
                .write_file(&path, chunk.data)
                .map_err(|e| WriteError::Retryable(format!("{}: {e}", path.display())));
            if let Some(l) = lock {
                let _ = std::fs::remove_dir(l);
            }
            r
        })
    }
}

/// Factory.
pub fn build(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Box<dyn Output>> {
    let p = FileOutputParams::from_element(el, cx.cfg)?;
    let (fo, format) = configure(el, &p, cx)?;
    if p.buffer.is_none() {
        cx.cfg.warn(el.span, "default timekey interval (1d) will be used because of missing <buffer> section. To change the output frequency, please modify the timekey value");
    }
    let mut buffer_el = p.buffer.clone().unwrap_or_else(|| Element::new("buffer", "time"));
    let root_dir_layout = cx.info.has_id && cx.env.root_dir.is_some();
    if !buffer_el.has("path") && !root_dir_layout {
        // Fluentd keeps the buffer next to the output: `path` used as a directory.
        buffer_el.set("path", p.path.clone(), el.span);
    }
    let secondary = match &p.secondary {
        Some(s) => Some(crate::buffer::output::build_secondary(s, &format, cx)?),
        None => None,
    };
    let out = crate::buffer::output::build_parts(Some(&buffer_el), DEFAULTS, format, Arc::new(fo), secondary, cx)?;
    if let Some(link) = &p.symlink_path {
        let keys = &out.buffer().keys;
        let template = match Template::new("symlink_path", link, keys) {
            Ok(t) => t,
            Err(e) => {
                cx.cfg.error(el.param("symlink_path").map_or(el.span, |x| x.value_span), e);
                return None;
            }
        };
        if out.buffer().dir.is_none() || keys.time.is_none() {
            cx.cfg.warn(
                el.param("symlink_path").map_or(el.span, |x| x.key_span),
                "symlink_path needs a file buffer with the time chunk key; no symlink is made",
            );
        } else {
            let zone = keys.time.as_ref().map(|t| t.zone.clone());
            let newest = std::sync::atomic::AtomicI64::new(i64::MIN);
            let relative = p.symlink_path_use_relative;
            let log = cx.info.log.clone();
            let hook: crate::buffer::engine::ChunkHook = Box::new(move |meta, path| {
                let tk = meta.timekey.unwrap_or(i64::MIN);
                if newest.fetch_max(tk, std::sync::atomic::Ordering::Relaxed) > tk {
                    return;
                }
                let linkpath = PathBuf::from(template.render(meta, &[0; 16], zone.as_ref()));
                if let Err(e) = symlink(path, &linkpath, relative) {
                    crate::warn!(log, "cannot update symlink_path", "path" => linkpath.display().to_string(), "error" => e.to_string());
                }
            });
            let _ = out.buffer().on_new_chunk.set(hook);
        }
    }
    Some(Box::new(out))
}

fn configure(el: &Element, p: &FileOutputParams, cx: &mut BuildCx<'_, '_>) -> Option<(FileOutput, EventFormat)> {
    // The chunk keys decide the template; read them as the buffer will.
    let (keys_arg, timekey) = match &p.buffer {
        Some(b) => {
            let tk = b
                .get("timekey")
                .and_then(|t| <TimeSpan as sluice_config::ParamValue>::parse(t).ok())
                .map(|t| t.secs() as i64);
            let arg = if b.arg.trim().is_empty() && !b.has("chunk_keys") { "time".to_string() } else { b.arg.clone() };
            if tk.is_none() && arg.split(',').any(|k| k.trim() == "time") {
                cx.cfg.warn(b.span, "default timekey interval (1d) will be used. To change the output frequency, please modify the timekey value");
            }
            (arg, Some(tk.unwrap_or(86_400)))
        }
        None => ("time".to_string(), Some(86_400)),
    };
    let key_list: Vec<String> = keys_arg
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(',')
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty())
        .collect();
    let has_time = key_list.iter().any(|k| k == "time");
    let suffix = if p.add_path_suffix { p.path_suffix.as_str() } else { "" };
    let span = el.param("path").map_or(el.span, |x| x.value_span);
    let tmpl = match path_template(&p.path, has_time.then_some(timekey.unwrap_or(86_400)), p.append, p.compress, suffix)
    {
        Ok(t) => t,
        Err(e) => {
            cx.cfg.error(span, e);
            return None;
        }
    };
    // The zone only matters when rendering; each chunk brings the buffer's.
    let zone_keys = ChunkKeys::parse(
        &key_list,
        has_time.then(|| crate::buffer::metadata::Timekey { size: timekey.unwrap_or(86_400), zone: Zone::Utc }),
    );
    let keys = match zone_keys {
        Ok(k) => k,
        Err(e) => {
            cx.cfg.error(span, e);
            return None;
        }
    };
    let template = match Template::new("path", &tmpl, &keys) {
        Ok(t) => t,
        Err(e) => {
            cx.cfg.error(span, e);
            return None;
        }
    };
    // Every chunk key must appear in the path, or chunks would share files.
    if keys.tag && !tmpl.contains("${tag") {
        cx.cfg.error(span, format!("Parameter 'path: {tmpl}' doesn't have tag placeholder"));
        return None;
    }
    let missing: Vec<&str> =
        keys.vars.iter().map(|(k, _)| k.as_str()).filter(|k| !tmpl.contains(&format!("${{{k}}}"))).collect();
    if !missing.is_empty() {
        cx.cfg.error(
            span,
            format!("Parameter 'path: {tmpl}' doesn't have enough placeholders for keys {}", missing.join(",")),
        );
        return None;
    }
    if let (true, Some(tk)) = (has_time, timekey)
        && has_strftime(&tmpl)
        && let Some(unit) = time_unit(&tmpl.replace("_**", ""))
        && unit > tk
    {
        let name = match unit {
            60 => "minute('%M')",
            3600 => "hour('%H')",
            86_400 => "day('%d')",
            _ => "second('%S')",
        };
        cx.cfg.error(
            span,
            format!("Parameter 'path: {tmpl}' doesn't have timestamp placeholder for {name} for timekey {tk}"),
        );
        return None;
    }
    if p.symlink_path.is_some() {
        cx.cfg.warn(
            el.param("symlink_path").map_or(el.span, |x| x.key_span),
            "symlink_path is not implemented yet in sluice; no symlink is made",
        );
    }
    let formatter: Box<dyn Formatter> = formatter::build(p.format.as_ref(), "out_file", cx)?;
    let inject = Inject::build(p.inject.as_ref(), cx)?;
    let file_mode = crate::buffer::chunk::parse_mode(cx.env.file_permission.as_deref(), 0o644);
    let dir_mode = crate::buffer::chunk::parse_mode(cx.env.dir_permission.as_deref(), 0o755);
    let name = p.format.as_ref().and_then(|f| f.type_name()).unwrap_or("out_file").to_string();
    Some((
        FileOutput {
            template,
            append: p.append,
            compress: p.compress,
            file_mode,
            dir_mode,
            multi_worker: cx.env.workers > 1,
        },
        EventFormat::Formatted { name, formatter, inject: Box::new(inject) },
    ))
}

/// `ln -sf target link` (relative to the link's directory if asked).
fn symlink(target: &Path, link: &Path, relative: bool) -> std::io::Result<()> {
    if let Some(d) = link.parent() {
        std::fs::create_dir_all(d)?;
    }
    let target = if relative {
        let base = link.parent().unwrap_or(Path::new("."));
        relative_path(target, base)
    } else {
        target.to_path_buf()
    };
    let tmp = link.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&target, &tmp)?;
    std::fs::rename(&tmp, link)
}

/// `target` relative to directory `base` (both absolute or both relative).
fn relative_path(target: &Path, base: &Path) -> PathBuf {
    let t: Vec<_> = target.components().collect();
    let b: Vec<_> = base.components().collect();
    let common = t.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c);
    }
    out
}

/// Factory as a chunk writer (`<secondary> @type file`).
pub fn build_chunk(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Arc<dyn ChunkOutput>> {
    let p = FileOutputParams::from_element(el, cx.cfg)?;
    let (fo, _) = configure(el, &p, cx)?;
    Some(Arc::new(fo))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_follow_fluentd() {
        let t = |p: &str, tk: Option<i64>, append: bool, c: FileCompress, s: &str| path_template(p, tk, append, c, s);
        assert_eq!(t("/x/app", Some(86_400), false, FileCompress::Text, ".log").unwrap(), "/x/app.%Y%m%d_**.log");
        assert_eq!(t("/x/app", Some(86_400), false, FileCompress::Gz, ".log").unwrap(), "/x/app.%Y%m%d_**.log.gz");
        assert_eq!(t("/x/app", Some(86_400), true, FileCompress::Text, ".log").unwrap(), "/x/app.%Y%m%d.log");
        assert_eq!(t("/x/app", Some(3600), false, FileCompress::Gzip, ".log").unwrap(), "/x/app.%Y%m%d%H_**.log.gz");
        assert_eq!(t("/x/app", Some(60), false, FileCompress::Text, "").unwrap(), "/x/app.%Y%m%d%H%M_**");
        assert_eq!(t("/x/app.*", Some(86_400), false, FileCompress::Text, ".log").unwrap(), "/x/app.%Y%m%d_**");
        assert_eq!(t("/x/app.*.log", Some(86_400), true, FileCompress::Text, ".log").unwrap(), "/x/app.%Y%m%d.log");
        assert_eq!(
            t("/x/app.%Y-%m-%d", Some(86_400), false, FileCompress::Text, ".log").unwrap(),
            "/x/app.%Y-%m-%d_**.log"
        );
        assert_eq!(
            t("/x/file.%Y%m%d.log", Some(86_400), false, FileCompress::Text, ".log").unwrap(),
            "/x/file.%Y%m%d.log_**.log"
        );
        assert_eq!(t("/x/app", None, false, FileCompress::Text, ".log").unwrap(), "/x/app_**.log");
        assert_eq!(t("/x/app", Some(86_400), false, FileCompress::Zstd, ".log").unwrap(), "/x/app.%Y%m%d_**.log.zstd");
        assert!(
            t("/x/app.%Y%m", Some(86_400), false, FileCompress::Text, ".log")
                .unwrap_err()
                .contains("insufficient timestamp placeholders")
        );
        assert!(t("/x/app.*", None, false, FileCompress::Text, ".log").is_err());
    }

    #[test]
    fn relative_paths() {
        assert_eq!(relative_path(Path::new("/a/b/buf/x.log"), Path::new("/a/c")), PathBuf::from("../b/buf/x.log"));
        assert_eq!(relative_path(Path::new("/a/b/x"), Path::new("/a/b")), PathBuf::from("x"));
    }

    #[test]
    fn time_units() {
        assert_eq!(time_unit("/x/%Y%m%d"), Some(86_400));
        assert_eq!(time_unit("/x/%Y%m%d%H"), Some(3600));
        assert_eq!(time_unit("/x/%M"), Some(60));
        assert_eq!(time_unit("/x/plain"), None);
    }
}
