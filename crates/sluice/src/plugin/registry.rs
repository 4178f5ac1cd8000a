//! The built-in plugins, listed explicitly: one line per `@type`.

use super::{BuildCx, Filter, Formatter, Input, Output, parser::Parser};
use sluice_config::{Element, SectionSpec};
use std::sync::OnceLock;

/// Builds an input from its section.
pub type InputBuild = fn(&Element, &mut BuildCx<'_, '_>) -> Option<Box<dyn Input>>;
/// Builds an output from its section.
pub type OutputBuild = fn(&Element, &mut BuildCx<'_, '_>) -> Option<Box<dyn Output>>;
/// Builds a filter from its section.
pub type FilterBuild = fn(&Element, &mut BuildCx<'_, '_>) -> Option<Box<dyn Filter>>;
/// Builds a formatter from its section.
pub type FormatterBuild = fn(&Element, &mut BuildCx<'_, '_>) -> Option<Box<dyn Formatter>>;
/// Builds a parser from its `<parse>` section.
pub type ParserBuild = fn(&Element, &mut BuildCx<'_, '_>) -> Option<Box<dyn Parser>>;
/// Builds an output as a chunk writer (for `<secondary>` and `<store>`s of buffered outputs).
pub type ChunkBuild =
    fn(&Element, &mut BuildCx<'_, '_>) -> Option<std::sync::Arc<dyn crate::buffer::output::ChunkOutput>>;

/// One registered plugin.
pub struct PluginDef<B> {
    /// The `@type`.
    pub name: &'static str,
    /// Other accepted `@type` names.
    pub aliases: &'static [&'static str],
    /// Its parameters.
    pub spec: fn() -> &'static SectionSpec,
    /// Its factory.
    pub build: B,
    /// Can run in several workers at once.
    pub multi_workers: bool,
    /// For outputs: how to build it as a chunk writer, if it can be one.
    pub chunk: Option<ChunkBuild>,
}

impl<B> PluginDef<B> {
    fn named(&self, n: &str) -> bool {
        self.name == n || self.aliases.contains(&n)
    }
}

/// Every built-in plugin by kind.
pub struct Registry {
    pub inputs: Vec<PluginDef<InputBuild>>,
    pub outputs: Vec<PluginDef<OutputBuild>>,
    pub filters: Vec<PluginDef<FilterBuild>>,
    pub formatters: Vec<PluginDef<FormatterBuild>>,
    pub parsers: Vec<PluginDef<ParserBuild>>,
}

macro_rules! def {
    ($name:expr, $aliases:expr, $params:ty, $build:path, $multi:expr) => {
        def!($name, $aliases, $params, $build, $multi, None)
    };
    ($name:expr, $aliases:expr, $params:ty, $build:path, $multi:expr, $chunk:expr) => {
        PluginDef {
            name: $name,
            aliases: $aliases,
            spec: <$params as sluice_config::Params>::spec,
            build: $build,
            multi_workers: $multi,
            chunk: $chunk,
        }
    };
}

/// The registry.
pub fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| {
        use super::*;
        Registry {
            inputs: vec![
                def!("sample", &["dummy"], in_sample::SampleParams, in_sample::build, true),
                def!("tail", &[], in_tail::TailParams, in_tail::build, true),
                def!("forward", &[], in_forward::ForwardInputParams, in_forward::build, true),
            ],
            outputs: vec![
                def!("stdout", &[], out_stdout::StdoutParams, out_stdout::build, true, Some(out_stdout::build_chunk)),
                def!("null", &[], out_null::NullParams, out_null::build, true, Some(out_null::build_chunk)),
                def!("file", &[], out_file::FileOutputParams, out_file::build, true, Some(out_file::build_chunk)),
                def!(
                    "forward",
                    &[],
                    out_forward::ForwardOutputParams,
                    out_forward::build,
                    true,
                    Some(out_forward::build_chunk)
                ),
                def!("relabel", &[], out_relabel::RelabelParams, out_relabel::build, true),
                def!("copy", &[], out_copy::CopyParams, out_copy::build, true),
                def!("roundrobin", &[], out_roundrobin::RoundRobinParams, out_roundrobin::build, true),
                def!(
                    "secondary_file",
                    &[],
                    out_secondary_file::SecondaryFileParams,
                    out_secondary_file::build,
                    true,
                    Some(out_secondary_file::build_chunk)
                ),
            ],
            filters: vec![
                def!("stdout", &[], filter_stdout::StdoutFilterParams, filter_stdout::build, true),
                def!("grep", &[], filter_grep::GrepParams, filter_grep::build, true),
                def!("parser", &[], filter_parser::ParserFilterParams, filter_parser::build, true),
                def!(
                    "record_transformer",
                    &[],
                    filter_record_transformer::RecordTransformerParams,
                    filter_record_transformer::build,
                    true
                ),
            ],
            formatters: vec![
                def!("json", &[], formatter_json::JsonFormatParams, formatter_json::build, true),
                def!("msgpack", &[], formatter_msgpack::MsgpackFormatParams, formatter_msgpack::build, true),
                def!("ltsv", &[], formatter_ltsv::LtsvFormatParams, formatter_ltsv::build, true),
                def!("csv", &[], formatter_csv::CsvFormatParams, formatter_csv::build, true),
                def!("tsv", &[], formatter_tsv::TsvFormatParams, formatter_tsv::build, true),
                def!(
                    "single_value",
                    &[],
                    formatter_single_value::SingleValueFormatParams,
                    formatter_single_value::build,
                    true
                ),
                def!("hash", &[], formatter_hash::HashFormatParams, formatter_hash::build, true),
                def!("out_file", &[], formatter_out_file::OutFileFormatParams, formatter_out_file::build, true),
                def!("stdout", &[], formatter_stdout::StdoutFormatParams, formatter_stdout::build, true),
            ],
            parsers: vec![
                def!("regexp", &[], parser_regexp::RegexpParserParams, parser_regexp::build, true),
                def!("apache", &[], parser_regexp::RegexpParserParams, parser_apache::build, true),
                def!("apache2", &[], parser_apache2::Apache2ParserParams, parser_apache2::build, true),
                def!("apache_error", &[], parser_regexp::RegexpParserParams, parser_apache_error::build, true),
                def!("nginx", &[], parser_regexp::RegexpParserParams, parser_nginx::build, true),
                def!("syslog", &[], parser_syslog::SyslogParserParams, parser_syslog::build, true),
                def!("json", &[], parser_json::JsonParserParams, parser_json::build, true),
                def!("msgpack", &[], parser_msgpack::MsgpackParserParams, parser_msgpack::build, true),
                def!("csv", &[], parser_csv::CsvParserParams, parser_csv::build, true),
                def!("tsv", &[], parser_tsv::TsvParserParams, parser_tsv::build, true),
                def!("ltsv", &[], parser_ltsv::LtsvParserParams, parser_ltsv::build, true),
                def!("none", &[], parser_none::NoneParserParams, parser_none::build, true),
                def!("multiline", &[], parser_multiline::MultilineParserParams, parser_multiline::build, true),
            ],
        }
    })
}

/// The input registered as `name`.
pub fn input(name: &str) -> Option<&'static PluginDef<InputBuild>> {
    registry().inputs.iter().find(|d| d.named(name))
}

/// The output registered as `name`.
pub fn output(name: &str) -> Option<&'static PluginDef<OutputBuild>> {
    registry().outputs.iter().find(|d| d.named(name))
}

/// The filter registered as `name`.
pub fn filter(name: &str) -> Option<&'static PluginDef<FilterBuild>> {
    registry().filters.iter().find(|d| d.named(name))
}

/// The formatter registered as `name`.
pub fn formatter(name: &str) -> Option<&'static PluginDef<FormatterBuild>> {
    registry().formatters.iter().find(|d| d.named(name))
}

/// The parser registered as `name`.
pub fn parser(name: &str) -> Option<&'static PluginDef<ParserBuild>> {
    registry().parsers.iter().find(|d| d.named(name))
}

/// The declaration of a plugin by kind and name (for docs and masking).
pub fn spec(kind: &str, name: &str) -> Option<&'static SectionSpec> {
    let r = registry();
    let f = match kind {
        "input" | "source" => r.inputs.iter().find(|d| d.named(name)).map(|d| d.spec),
        "output" | "match" => r.outputs.iter().find(|d| d.named(name)).map(|d| d.spec),
        "filter" => r.filters.iter().find(|d| d.named(name)).map(|d| d.spec),
        "formatter" | "format" => r.formatters.iter().find(|d| d.named(name)).map(|d| d.spec),
        "parser" | "parse" => r.parsers.iter().find(|d| d.named(name)).map(|d| d.spec),
        _ => None,
    }?;
    Some(f())
}
