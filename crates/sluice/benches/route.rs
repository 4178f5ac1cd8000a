//! Micro-benchmark: routing plus record_transformer per event.
//!
//! `cargo bench -p sluice --bench route` prints the time per stream of
//! 1000 events and the throughput in events per second.

use sluice::engine::{Engine, build_from_str};
use sluice::router::ROOT;
use sluice_event::{EventStream, EventStreamBuilder, EventTime, json};

const EVENTS: usize = 1000;

fn main() {
    divan::main();
}

fn stream() -> EventStream {
    let mut raw = Vec::new();
    json::json_object_to_msgpack(br#"{"message":"GET /index.html HTTP/1.1","status":200,"bytes":5120,"host":"10.0.0.1","agent":"curl/8.0","path":"/index.html"}"#, &mut raw).unwrap();
    let mut b = EventStreamBuilder::new();
    for i in 0..EVENTS {
        b.push_raw(EventTime::new(1_700_000_000 + i as i64, 0), &raw);
    }
    b.finish()
}

fn engine(conf: &str) -> Engine {
    build_from_str(conf).unwrap_or_else(|e| panic!("{e}"))
}

/// Measure routing `stream()` through the configuration `conf`.
fn run(bencher: divan::Bencher, conf: &str) {
    let e = engine(conf);
    let es = stream();
    bencher
        .counter(divan::counter::ItemsCount::new(EVENTS))
        .bench(|| e.router.emit(ROOT, "app.web.access", es.clone()).unwrap());
}

/// Route to a null output (pattern match cached per tag).
#[divan::bench]
fn route_only(bencher: divan::Bencher) {
    run(bencher, "<match app.**>\n  @type null\n</match>\n");
}

/// Route through record_transformer with placeholders, then null.
#[divan::bench]
fn route_record_transformer(bencher: divan::Bencher) {
    run(
        bencher,
        r#"<filter app.**>
  @type record_transformer
  <record>
    service ${tag_parts[-1]}
    original ${record["message"]}
    host ${hostname}
  </record>
</filter>
<match app.**>
  @type null
</match>
"#,
    );
}

/// The same with `enable_ruby` expressions.
#[divan::bench]
fn route_record_transformer_ruby(bencher: divan::Bencher) {
    run(
        bencher,
        r#"<filter app.**>
  @type record_transformer
  enable_ruby
  <record>
    service ${tag.split('.').last}
    level ${record["status"] >= 400 ? "error" : "info"}
  </record>
</filter>
<match app.**>
  @type null
</match>
"#,
    );
}
