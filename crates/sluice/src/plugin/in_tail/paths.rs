//! Which files in_tail follows: `path` patterns (strftime, globs per
//! `glob_policy`), `exclude_path`, `limit_recently_modified`; and the tag
//! each file's events get.

use sluice_config::ParamEnum;
use sluice_event::{EventTime, TimeFormatter, Zone};
use std::time::SystemTime;

/// When a path is treated as a glob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ParamEnum)]
pub enum GlobPolicy {
    /// Only paths with `*`.
    BackwardCompatible,
    /// Also `?` and `[…]`.
    Extended,
    /// Also `{a,b}` (needs a `path_delimiter` other than `,`).
    Always,
}

/// True if `p` is globbed under `policy`.
pub fn use_glob(p: &str, policy: GlobPolicy) -> bool {
    let star = p.contains('*');
    let extended = star || p.contains('?') || (p.contains('[') && p[p.find('[').unwrap_or(0)..].contains(']'));
    let brace = p.find('{').is_some_and(|i| p[i..].contains(',') && p[i..].contains('}'));
    match policy {
        GlobPolicy::BackwardCompatible => star,
        GlobPolicy::Extended => extended,
        GlobPolicy::Always => extended || brace,
    }
}

/// Expand `{a,b}` alternatives (nested allowed), in written order.
pub fn expand_braces(p: &str) -> Vec<String> {
    let b = p.as_bytes();
    let Some(open) = p.find('{') else { return vec![p.to_string()] };
    let mut depth = 0;
    let mut close = None;
    let mut commas = Vec::new();
    for (i, &c) in b.iter().enumerate().skip(open) {
        match c {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(i);
                    break;
                }
            }
            b',' if depth == 1 => commas.push(i),
            _ => {}
        }
    }
    let Some(close) = close else { return vec![p.to_string()] };
    let (pre, post) = (&p[..open], &p[close + 1..]);
    let mut bounds = vec![open];
    bounds.extend(&commas);
    bounds.push(close);
    let mut out = Vec::new();
    for w in bounds.windows(2) {
        let alt = &p[w[0] + 1..w[1]];
        out.extend(expand_braces(&format!("{pre}{alt}{post}")));
    }
    out
}

/// Files matching a glob, as Ruby's `Dir.glob` lists them (`*` does not
/// match a leading dot or `/`; each directory's entries sorted).
pub fn glob(pattern: &str) -> Vec<String> {
    let opts =
        glob::MatchOptions { case_sensitive: true, require_literal_separator: true, require_literal_leading_dot: true };
    let mut out = Vec::new();
    for p in expand_braces(pattern) {
        if let Ok(paths) = glob::glob_with(&p, opts) {
            for e in paths.flatten() {
                out.push(e.to_string_lossy().into_owned());
            }
        }
    }
    out
}

/// The tag of a file's events: `tag` with its `*` replaced by the path
/// (slashes to dots, runs of dots squeezed, the leading dot removed).
pub fn expand_tag(tag: &str, path: &str) -> String {
    if !tag.contains('*') {
        return tag.to_string();
    }
    // Ruby's split drops trailing empty parts; only the first two parts count.
    let mut parts: Vec<&str> = tag.split('*').collect();
    while parts.last().is_some_and(|p| p.is_empty()) {
        parts.pop();
    }
    let prefix = parts.first().copied().unwrap_or("");
    let suffix = parts.get(1).copied().unwrap_or("");
    let mut p = String::with_capacity(path.len());
    for c in path.chars() {
        let c = if c == '/' { '.' } else { c };
        if c == '.' && p.ends_with('.') {
            continue;
        }
        p.push(c);
    }
    let p = p.strip_prefix('.').unwrap_or(&p);
    format!("{prefix}{p}{suffix}")
}

/// Facts about one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
}

/// `stat` (following symlinks): identity and size, `None` if missing or unreadable.
pub fn stat(path: &str) -> Option<(FileId, u64, std::fs::Metadata)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((FileId { dev: m.dev(), ino: m.ino() }, m.len(), m))
}

/// The configured set of paths.
#[derive(Debug, Clone)]
pub struct PathSet {
    /// `path`, split.
    pub patterns: Vec<String>,
    /// `exclude_path`.
    pub excludes: Vec<String>,
    /// `glob_policy`.
    pub policy: GlobPolicy,
    /// Zone for strftime placeholders.
    pub zone: Zone,
    /// `limit_recently_modified`.
    pub limit_recently_modified: Option<std::time::Duration>,
}

/// Something to log while expanding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpandNote {
    /// A globbed file cannot be read.
    Unreadable(String),
}

impl PathSet {
    fn strftime(&self, p: &str, now: EventTime) -> String {
        if !p.contains('%') {
            return p.to_string();
        }
        TimeFormatter::new(p, self.zone.clone()).format_string(now)
    }

    /// True if any pattern is globbed or time-dependent (needs refreshing).
    pub fn is_dynamic(&self) -> bool {
        self.patterns.iter().any(|p| use_glob(p, self.policy) || p.contains('%'))
    }

    /// The files to follow now, in pattern order, each once.
    pub fn expand(&self, now: EventTime, notes: &mut Vec<ExpandNote>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let now_sys = SystemTime::now();
        for pat in &self.patterns {
            let p = self.strftime(pat, now);
            if use_glob(&p, self.policy) {
                for f in glob(&p) {
                    let Ok(m) = std::fs::metadata(&f) else { continue };
                    if m.is_dir() {
                        continue;
                    }
                    if std::fs::File::open(&f).is_err() {
                        notes.push(ExpandNote::Unreadable(f));
                        continue;
                    }
                    if let (Some(limit), Ok(mtime)) = (self.limit_recently_modified, m.modified())
                        && now_sys.duration_since(mtime).is_ok_and(|age| age > limit)
                    {
                        continue;
                    }
                    if !out.contains(&f) {
                        out.push(f);
                    }
                }
            } else if !out.contains(&p) {
                out.push(p);
            }
        }
        if !self.excludes.is_empty() {
            let mut ex: Vec<String> = Vec::new();
            for e in &self.excludes {
                let e = self.strftime(e, now);
                if use_glob(&e, self.policy) { ex.extend(glob(&e)) } else { ex.push(e) }
            }
            out.retain(|p| !ex.contains(p));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_like_fluentd() {
        assert_eq!(expand_tag("t1", "/var/log/foo.log"), "t1");
        assert_eq!(expand_tag("*", "/var/log/foo.log"), "var.log.foo.log");
        assert_eq!(expand_tag("pre.*", "/var/log/foo.log"), "pre.var.log.foo.log");
        assert_eq!(expand_tag("*.post", "/var/log/foo.log"), "var.log.foo.log.post");
        assert_eq!(expand_tag("pre.*.post*ignore", "/var/log/foo.log"), "pre.var.log.foo.log.post");
        assert_eq!(expand_tag("a**b", "/var/log/foo.log"), "avar.log.foo.log");
        assert_eq!(expand_tag("x.*", "/var/log//foo..bar.log"), "x.var.log.foo.bar.log");
        assert_eq!(expand_tag("x.*", "./logs/a.log"), "x.logs.a.log");
        // Seed 001.
        assert_eq!(expand_tag("s3.*", "/var/log/go-audit/go-audit.log"), "s3.var.log.go-audit.go-audit.log");
    }

    #[test]
    fn glob_policies() {
        use GlobPolicy::*;
        assert!(use_glob("/a/*.log", BackwardCompatible));
        assert!(!use_glob("/a/?.log", BackwardCompatible));
        assert!(use_glob("/a/?.log", Extended));
        assert!(use_glob("/a/[ab].log", Extended));
        assert!(!use_glob("/a/{x,y}.log", Extended));
        assert!(use_glob("/a/{x,y}.log", Always));
        assert_eq!(expand_braces("/a/{x,y{1,2}}.log"), vec!["/a/x.log", "/a/y1.log", "/a/y2.log"]);
    }

    #[test]
    fn expand_globs_excludes_and_order() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().to_str().unwrap();
        for f in ["b.log", "a.log", ".hidden.log", "c.txt"] {
            std::fs::write(d.path().join(f), "x").unwrap();
        }
        std::fs::create_dir(d.path().join("dir.log")).unwrap();
        let set = PathSet {
            patterns: vec![format!("{root}/*.log"), format!("{root}/static.log")],
            excludes: vec![format!("{root}/b.log")],
            policy: GlobPolicy::BackwardCompatible,
            zone: Zone::Utc,
            limit_recently_modified: None,
        };
        let mut notes = Vec::new();
        assert_eq!(
            set.expand(EventTime::now(), &mut notes),
            vec![format!("{root}/a.log"), format!("{root}/static.log")]
        );
        let set = PathSet { patterns: vec![format!("{root}/%Y.log")], ..set };
        let y = Zone::Utc.tm(EventTime::now()).year;
        assert_eq!(set.expand(EventTime::now(), &mut notes), vec![format!("{root}/{y}.log")]);
    }
}
