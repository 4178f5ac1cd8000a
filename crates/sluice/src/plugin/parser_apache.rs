//! `<parse> @type apache`: Apache common/combined log lines, every field a string.

use super::BuildCx;
use super::parser::Parser;
use sluice_config::Element;

/// Fluentd's apache expression, verbatim.
pub const EXPRESSION: &str = r#"/^(?<host>[^ ]*) [^ ]* (?<user>[^ ]*) \[(?<time>[^\]]*)\] "(?<method>\S+)(?: +(?<path>[^ ]*) +\S*)?" (?<code>[^ ]*) (?<size>[^ ]*)(?: "(?<referer>[^\"]*)" "(?<agent>[^\"]*)")?$/"#;

/// Factory.
pub fn build(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Box<dyn Parser>> {
    super::parser_regexp::build_with(
        el,
        &[("expression", EXPRESSION), ("time_format", "%d/%b/%Y:%H:%M:%S %z"), ("time_key", "time")],
        cx,
    )
}
