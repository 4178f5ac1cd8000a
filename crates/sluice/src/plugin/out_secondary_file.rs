//! `@type secondary_file`: inside `<secondary>`, writes chunks that the
//! primary could not deliver to `directory/basename` as they are.

use super::{BuildCx, Output};
use crate::buffer::metadata::{ChunkKeys, Template};
use crate::buffer::output::{ChunkOutput, ChunkView, WriteError, WriteFuture};
use sluice_config::{Element, ParamEnum, Params};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Arc;

/// Compression of dumped chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ParamEnum)]
pub enum DumpCompress {
    Text,
    Gzip,
}

/// Writes the primary's failed chunks to files (only inside `<secondary>`).
#[derive(Debug, Params)]
pub struct SecondaryFileParams {
    /// Directory of the dump files.
    pub directory: String,
    /// File name (`${chunk_id}`, `${tag}` and chunk keys allowed); `.N` is added unless `append`.
    #[param(default = "dump.bin")]
    pub basename: String,
    /// Append to one file instead of a new `.N` file per chunk.
    #[param(default = "false")]
    pub append: bool,
    /// Compress dumps: text or gzip.
    #[param(default = "text")]
    pub compress: DumpCompress,
}

/// The secondary_file output.
pub struct SecondaryFile {
    template: Template,
    append: bool,
    compress: DumpCompress,
    file_mode: u32,
    dir_mode: u32,
}

impl ChunkOutput for SecondaryFile {
    fn write<'a>(&'a self, chunk: &'a ChunkView<'a>) -> WriteFuture<'a> {
        Box::pin(async move {
            let base = self.template.render(chunk.meta, &chunk.id, chunk.timekey_zone);
            let sfx = if self.compress == DumpCompress::Gzip { ".gz" } else { "" };
            let path = if self.append {
                PathBuf::from(format!("{base}{sfx}"))
            } else {
                (0..).map(|i| PathBuf::from(format!("{base}.{i}{sfx}"))).find(|p| !p.exists()).unwrap_or_default()
            };
            let r = (|| -> std::io::Result<()> {
                if let Some(d) = path.parent() {
                    crate::buffer::chunk::create_dir_all_mode(d, self.dir_mode)?;
                }
                let mut f = std::fs::OpenOptions::new().create(true).append(true).mode(self.file_mode).open(&path)?;
                f.lock()?;
                match self.compress {
                    DumpCompress::Text => f.write_all(chunk.data)?,
                    DumpCompress::Gzip => {
                        let mut e = flate2::write::GzEncoder::new(&mut f, flate2::Compression::default());
                        e.write_all(chunk.data)?;
                        e.finish()?;
                    }
                }
                f.flush()
            })();
            r.map_err(|e| WriteError::Retryable(format!("{}: {e}", path.display())))
        })
    }
}

/// Factory outside `<secondary>`: refused.
pub fn build(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Box<dyn Output>> {
    SecondaryFileParams::from_element(el, cx.cfg)?;
    cx.cfg.error(el.span, "This plugin can only be used in the <secondary> section");
    None
}

/// Factory inside `<secondary>`.
pub fn build_chunk(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Arc<dyn ChunkOutput>> {
    let p = SecondaryFileParams::from_element(el, cx.cfg)?;
    if p.basename.contains('/') {
        cx.cfg.error(el.param("basename").map_or(el.span, |x| x.value_span), "basename should not include `/`");
        return None;
    }
    let path = format!("{}/{}", p.directory.trim_end_matches('/'), p.basename);
    // Placeholders are checked against the primary's chunk keys when rendering; accept any here.
    let keys = ChunkKeys {
        tag: true,
        time: Some(crate::buffer::metadata::Timekey { size: 1, zone: sluice_event::Zone::Utc }),
        vars: placeholder_vars(&path),
    };
    let template = match Template::new("directory/basename", &path, &keys) {
        Ok(t) => t,
        Err(e) => {
            cx.cfg.error(el.span, format!("out_secondary_file: {e}"));
            return None;
        }
    };
    let file_mode = crate::buffer::chunk::parse_mode(cx.env.file_permission.as_deref(), 0o600);
    let dir_mode = crate::buffer::chunk::parse_mode(cx.env.dir_permission.as_deref(), 0o700);
    Some(Arc::new(SecondaryFile { template, append: p.append, compress: p.compress, file_mode, dir_mode }))
}

fn placeholder_vars(s: &str) -> Vec<(String, crate::plugin::record_accessor::Accessor)> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        let Some(end) = rest[i..].find('}') else { break };
        let name = rest[i + 2..i + end].trim().to_string();
        if name != "tag"
            && !name.starts_with("tag[")
            && name != "chunk_id"
            && let Ok(a) = crate::plugin::record_accessor::Accessor::parse(&name)
        {
            out.push((name, a));
        }
        rest = &rest[i + end..];
    }
    out
}
