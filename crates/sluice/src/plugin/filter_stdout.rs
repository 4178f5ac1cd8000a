//! `@type stdout` filter: prints each event and passes the stream on unchanged.

use super::formatter;
use super::inject::Inject;
use super::{BuildCx, Filter, FilterCx, Formatter};
use crate::log::Logger;
use sluice_config::{Element, Params};
use sluice_event::EventStream;

/// Prints events (like the stdout output) and passes them on unchanged.
#[derive(Debug, Params)]
pub struct StdoutFilterParams {
    /// How events are rendered (default `@type stdout`, `output_type json`).
    #[section(name = "format")]
    pub format: Option<Element>,
    /// Fields added to the printed copy (the events passed on are unchanged).
    #[section(name = "inject")]
    pub inject: Option<Element>,
}

/// The stdout filter.
pub struct StdoutFilter {
    formatter: Box<dyn Formatter>,
    inject: Inject,
    log: Logger,
}

impl Filter for StdoutFilter {
    fn filter(&self, tag: &str, es: EventStream, _cx: &FilterCx<'_>) -> EventStream {
        let mut out = Vec::with_capacity(es.as_bytes().len() * 2 + 64);
        super::out_stdout::render(&es, tag, &self.inject, self.formatter.as_ref(), false, &mut out);
        self.log.write_raw(&out);
        es
    }
}

/// Factory.
pub fn build(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Box<dyn Filter>> {
    let p = StdoutFilterParams::from_element(el, cx.cfg)?;
    let formatter = formatter::build(p.format.as_ref(), "stdout", cx)?;
    let inject = Inject::build(p.inject.as_ref(), cx)?;
    Some(Box::new(StdoutFilter { formatter, inject, log: cx.env.log.clone() }))
}
