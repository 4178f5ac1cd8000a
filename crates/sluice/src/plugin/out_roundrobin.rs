//! `@type roundrobin`: each stream goes to the next `<store>`, in
//! proportion to their `weight`s (Fluentd: weights reduced by their GCD,
//! expanded, shuffled once when any weight is above 1).

use super::{BoxFuture, BuildCx, EmitError, Output, OutputInstance, StartCx, build_nested_output};
use sluice_config::{Element, Params};
use sluice_event::EventStream;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Sends each event stream to one `<store>` in turn.
#[derive(Debug, Params)]
pub struct RoundRobinParams {
    /// The outputs, each with an optional `weight` (default 1).
    #[section(name = "store")]
    pub stores: Vec<Element>,
}

/// The roundrobin output.
pub struct RoundRobinOutput {
    stores: Vec<OutputInstance>,
    order: Vec<usize>,
    next: AtomicUsize,
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The store index sequence for `weights`: reduced by their GCD, expanded,
/// and shuffled with `seed` when any weight is above 1.
pub fn rotation(weights: &[u64], seed: u64) -> Vec<usize> {
    let g = weights.iter().copied().filter(|w| *w > 0).fold(0, gcd).max(1);
    let mut order: Vec<usize> =
        weights.iter().enumerate().flat_map(|(i, w)| std::iter::repeat_n(i, (*w / g) as usize)).collect();
    if weights.iter().any(|w| *w > 1) {
        // Fisher-Yates with a small xorshift generator.
        let mut x = seed | 1;
        for i in (1..order.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            order.swap(i, (x % (i as u64 + 1)) as usize);
        }
    }
    order
}

impl Output for RoundRobinOutput {
    fn emit(&self, tag: &str, es: &EventStream) -> Result<(), EmitError> {
        if self.order.is_empty() {
            return Err(EmitError::Failed("every store has weight 0".into()));
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.order.len();
        self.stores[self.order[i]].output.emit(tag, es)
    }

    fn preflight(&self) -> super::PreflightFuture<'_> {
        Box::pin(async move {
            for s in &self.stores {
                s.output.preflight().await?;
            }
            Ok(())
        })
    }

    fn start(&self, cx: &StartCx) {
        for s in &self.stores {
            s.output.start(cx);
        }
    }

    fn shutdown(&self) -> BoxFuture {
        let futs: Vec<BoxFuture> = self.stores.iter().map(|s| s.output.shutdown()).collect();
        Box::pin(async move {
            for f in futs {
                f.await;
            }
        })
    }
}

/// Factory.
pub fn build(el: &Element, cx: &mut BuildCx<'_, '_>) -> Option<Box<dyn Output>> {
    let p = RoundRobinParams::from_element(el, cx.cfg)?;
    if p.stores.is_empty() {
        cx.cfg.error(el.span, "'<store>' sections are required");
        return None;
    }
    let mut stores = Vec::new();
    let mut weights = Vec::new();
    for s in &p.stores {
        let mut s = s.clone();
        let weight = match s.remove("weight") {
            Some(w) => match <u64 as sluice_config::ParamValue>::parse(w.str()) {
                Ok(v) => v,
                Err(e) => {
                    cx.cfg.error(w.value_span, format!("'weight' parameter: {e}"));
                    return None;
                }
            },
            None => 1,
        };
        stores.push(build_nested_output(&s, cx)?);
        weights.push(weight);
    }
    let mut seed = [0u8; 8];
    let _ = getrandom::fill(&mut seed);
    let order = rotation(&weights, u64::from_le_bytes(seed));
    Some(Box::new(RoundRobinOutput { stores, order, next: AtomicUsize::new(0) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights() {
        assert_eq!(rotation(&[1, 1], 7), vec![0, 1]);
        let mut r = rotation(&[4, 2], 7);
        r.sort_unstable();
        assert_eq!(r, vec![0, 0, 1]);
        let mut r = rotation(&[10, 1], 99);
        r.sort_unstable();
        assert_eq!(r.iter().filter(|i| **i == 0).count(), 10);
        assert_eq!(rotation(&[0, 3], 1), vec![1]);
    }
}
