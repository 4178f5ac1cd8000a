//! `<parse> @type nginx`: nginx's default access log, every field a string.

use super::BuildCx;
use super::parser::Parser;
use sluice_config::Element;

/// Fluentd's nginx expression, verbatim.
pub const EXPRESSION: &str = r#"/^(?<remote>[^ ]*) (?<host>[^ ]*) (?<user>[^ ]*) \[(?<time>[^\]]*)\] "(?<method>\S+)(?: +(?<path>[^\"]*?)(?: +\S*)?)?" (?<code>[^ ]*) (?<size>[^ ]*)(?: "(?<referer>[^\"]*)" "(?<agent>[^\"]*)"(?:\s+\"?(?<http_x_forwarded_for>[^\"]*)\"?)?)?$/"#;

/// Factory.
pub fn build(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Box<dyn Parser>> {
    super::parser_regexp::build_with(
        el,
        &[("expression", EXPRESSION), ("time_format", "%d/%b/%Y:%H:%M:%S %z"), ("time_key", "time")],
        cx,
    )
}
