//! `<format> @type out_file`: `time<TAB>tag<TAB>json`, out_file's default.

use super::formatter::{Newline, TimeParams, TimeRender};
use super::{BuildCx, Formatter};
use sluice_config::{Element, Params};
use sluice_event::{EventTime, RecordRef, json};

/// Formats `time`, `tag` and the JSON record separated by a delimiter.
#[derive(Debug, Params)]
pub struct OutFileFormatParams {
    /// Include the time.
    #[param(default = "true")]
    pub output_time: bool,
    /// Include the tag.
    #[param(default = "true")]
    pub output_tag: bool,
    /// Separator: `SPACE`, `COMMA` or (anything else) a tab.
    #[param(default = "TAB")]
    pub delimiter: String,
    /// Newline style: lf or crlf.
    #[param(default = "lf")]
    pub newline: Newline,
    /// Time rendering (default ISO 8601 in local time).
    #[flatten]
    pub time: TimeParams,
}

/// The out_file formatter.
pub struct OutFileFormatter {
    output_time: bool,
    output_tag: bool,
    delimiter: &'static [u8],
    newline: Newline,
    time: TimeRender,
}

impl OutFileFormatter {
    fn prefix(&self, tag: &str, time: EventTime, out: &mut Vec<u8>) {
        if self.output_time {
            self.time.write(out, time);
            out.extend_from_slice(self.delimiter);
        }
        if self.output_tag {
            out.extend_from_slice(tag.as_bytes());
            out.extend_from_slice(self.delimiter);
        }
    }
}

impl Formatter for OutFileFormatter {
    fn format_walk(&self, tag: &str, time: EventTime, raw: &[u8], out: &mut Vec<u8>) -> Option<Result<usize, ()>> {
        if raw.first().is_none_or(|m| !(0x80..=0x8f).contains(m) && *m != 0xde && *m != 0xdf) {
            return Some(Err(()));
        }
        let mark = out.len();
        self.prefix(tag, time, out);
        match json::write_json(raw, out) {
            Ok(n) => {
                out.extend_from_slice(self.newline.bytes());
                Some(Ok(n))
            }
            Err(_) => {
                out.truncate(mark);
                Some(Err(()))
            }
        }
    }

    fn format(&self, tag: &str, time: EventTime, record: RecordRef<'_>, out: &mut Vec<u8>) {
        if self.output_time {
            self.time.write(out, time);
            out.extend_from_slice(self.delimiter);
        }
        if self.output_tag {
            out.extend_from_slice(tag.as_bytes());
            out.extend_from_slice(self.delimiter);
        }
        let _ = json::write_json(record.as_bytes(), out);
        out.extend_from_slice(self.newline.bytes());
    }
}

/// Factory.
pub fn build(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Box<dyn Formatter>> {
    let p = OutFileFormatParams::from_element(el, cx.cfg)?;
    let delimiter: &'static [u8] = match p.delimiter.to_ascii_uppercase().as_str() {
        "SPACE" | " " => b" ",
        "COMMA" | "," => b",",
        _ => b"\t",
    };
    let time = p.time.render(el, cx)?;
    Some(Box::new(OutFileFormatter {
        output_time: p.output_time,
        output_tag: p.output_tag,
        delimiter,
        newline: p.newline,
        time,
    }))
}
