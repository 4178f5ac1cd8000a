//! `<parse> @type apache_error`: Apache error log lines; the time is read
//! with Ruby's `Time.parse` rules (`Wed Oct 11 14:32:52 2000`).

use super::BuildCx;
use super::parser::Parser;
use sluice_config::Element;

/// Fluentd's apache_error expression, verbatim.
pub const EXPRESSION: &str = r"/^\[[^ ]* (?<time>[^\]]*)\] \[(?<level>[^\]]*)\](?: \[pid (?<pid>[^\]]*)\])?( \[client (?<client>[^\]]*)\])? (?<message>.*)$/";

/// Factory.
pub fn build(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Box<dyn Parser>> {
    super::parser_regexp::build_with(el, &[("expression", EXPRESSION), ("time_key", "time")], cx)
}
