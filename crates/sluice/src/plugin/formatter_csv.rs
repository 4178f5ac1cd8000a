//! `<format> @type csv`: chosen fields as one CSV row.

use super::formatter::TimeParams;
use super::record_accessor::{Accessor, decode_value};
use super::{BuildCx, Formatter};
use sluice_config::{Element, Params};
use sluice_event::{EventTime, RecordRef, Value, rubyfmt};

/// Formats selected fields as a CSV row (quoting as Ruby's CSV writer does).
#[derive(Debug, Params)]
pub struct CsvFormatParams {
    /// Field separator (`\t` or `TAB` for a tab).
    #[param(default = ",")]
    pub delimiter: String,
    /// Quote every field.
    #[param(default = "true")]
    pub force_quotes: bool,
    /// Fields to output, in order; `$.a.b` reaches into nested records.
    pub fields: Vec<String>,
    /// End each row with a newline.
    #[param(default = "true")]
    pub add_newline: bool,
    /// Time parameters (unused by this formatter).
    #[flatten]
    pub time: TimeParams,
}

/// The csv formatter.
pub struct CsvFormatter {
    delimiter: String,
    force_quotes: bool,
    fields: Vec<Accessor>,
    add_newline: bool,
}

impl Formatter for CsvFormatter {
    fn format(&self, _tag: &str, _time: EventTime, record: RecordRef<'_>, out: &mut Vec<u8>) {
        for (i, f) in self.fields.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(self.delimiter.as_bytes());
            }
            let v = f.get_raw(record).map(decode_value);
            let text = match &v {
                None | Some(Value::Nil) => None,
                Some(v) => Some(rubyfmt::to_s(v)),
            };
            let quote = self.force_quotes
                || text.as_deref().is_some_and(|t| {
                    t.is_empty() || t.contains(['\r', '\n', '"']) || self.delimiter.chars().any(|d| t.contains(d))
                });
            if quote {
                out.push(b'"');
                out.extend_from_slice(text.unwrap_or_default().replace('"', "\"\"").as_bytes());
                out.push(b'"');
            } else if let Some(t) = text {
                out.extend_from_slice(t.as_bytes());
            }
        }
        if self.add_newline {
            out.push(b'\n');
        }
    }
}

/// Factory.
pub fn build(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Box<dyn Formatter>> {
    let p = CsvFormatParams::from_element(el, cx.cfg)?;
    let names: Vec<&String> = p.fields.iter().filter(|f| !f.trim().is_empty()).collect();
    if names.is_empty() {
        cx.cfg.error(
            el.param("fields").map_or(el.span, |p| p.value_span),
            "empty value is specified in fields parameter",
        );
        return None;
    }
    let nested = names.iter().any(|f| f.starts_with("$.") || f.starts_with("$["));
    let mut fields = Vec::new();
    for f in names {
        let acc = if nested { Accessor::parse(f.trim()) } else { Ok(Accessor::key(f.trim())) };
        match acc {
            Ok(a) => fields.push(a),
            Err(e) => {
                cx.cfg.error(el.param("fields").map_or(el.span, |p| p.value_span), e);
                return None;
            }
        }
    }
    let delimiter = match p.delimiter.as_str() {
        "\\t" | "TAB" => "\t".to_string(),
        d => d.to_string(),
    };
    Some(Box::new(CsvFormatter { delimiter, force_quotes: p.force_quotes, fields, add_newline: p.add_newline }))
}
